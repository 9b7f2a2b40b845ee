package server

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// Response header metadata describing where an answer came from.
const (
	HeaderSource         = "x-heygen-source"
	HeaderCatalogueAgeS  = "x-heygen-catalogue-age-seconds"
	maxFilterTextLen     = 256
	catalogueAvatarsKind = 'A'
	catalogueGroupsKind  = 'G'
)

// setSource sends the freshness headers. They are advisory: a failure to
// send them (the stream is gone) is not an error for the call.
func (s *avatarsServer) setSource(ctx context.Context, src Source, snap *Snapshot) {
	s.metrics.catalogueRead(src)
	md := metadata.Pairs(HeaderSource, string(src))
	if snap != nil && s.catalogue != nil {
		age := s.catalogue.now().Sub(snap.Built).Seconds()
		md.Set(HeaderCatalogueAgeS, strconv.FormatFloat(max(age, 0), 'f', 1, 64))
	}
	_ = grpc.SetHeader(ctx, md)
}

// textFilter is one free-text filter field and its value.
type textFilter struct{ name, value string }

// checkFilterText bounds free-text filters.
func checkFilterText(fields ...textFilter) error {
	for _, f := range fields {
		name, v := f.name, f.value
		if len(v) > maxFilterTextLen {
			return invalidField(name, "must be at most "+strconv.Itoa(maxFilterTextLen)+" bytes")
		}
		if !utf8.ValidString(v) {
			return invalidField(name, "must be valid UTF-8")
		}
	}
	return nil
}

// catalogueOnly refuses, in pass-through mode, the filters HeyGen lacks.
func catalogueOnly(used map[string]bool) error {
	var names []string
	for name, on := range used {
		if on {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	return &catalogueDisabledError{fields: names}
}

// catalogueDisabledError: a filter needs the catalogue, which is off.
type catalogueDisabledError struct{ fields []string }

func (e *catalogueDisabledError) Error() string {
	return "the " + strings.Join(e.fields, ", ") + " filter needs the gateway's catalogue, which is switched off on this gateway; drop the filter or ask its operators to enable the catalogue"
}

func (s *avatarsServer) listAvatarsFromCatalogue(ctx context.Context, req *heygenv1.ListAvatarsRequest, size int) (*heygenv1.ListAvatarsResponse, error) {
	f := avatarFilter{
		groupID:     req.GetGroupId(),
		avatarType:  req.GetAvatarType(),
		ownership:   req.GetOwnership(),
		query:       strings.ToLower(req.GetQuery()),
		gender:      strings.ToLower(req.GetGender()),
		engine:      req.GetSupportedEngine(),
		orientation: req.GetPreferredOrientation(),
		tag:         strings.ToLower(req.GetTag()),
	}
	fp := filterFingerprint(f.canonical())
	after, err := catalogueCursor(req.GetPageToken(), catalogueAvatarsKind, fp)
	if err != nil {
		return nil, err
	}
	snap, src, err := s.catalogue.current(ctx)
	if err != nil {
		return nil, err
	}
	page, next := snap.listAvatarWire(&f, after, size)
	s.setSource(ctx, src, snap)
	resp := &heygenv1.ListAvatarsResponse{Avatars: page}
	if next != "" {
		resp.NextPageToken = encodePageToken(catalogueAvatarsKind, fp, []byte(next))
	}
	return resp, nil
}

func (s *avatarsServer) listGroupsFromCatalogue(ctx context.Context, req *heygenv1.ListAvatarGroupsRequest, size int) (*heygenv1.ListAvatarGroupsResponse, error) {
	f := groupFilter{ownership: req.GetOwnership(), query: strings.ToLower(req.GetQuery()), gender: strings.ToLower(req.GetGender())}
	fp := filterFingerprint(f.canonical())
	after, err := catalogueCursor(req.GetPageToken(), catalogueGroupsKind, fp)
	if err != nil {
		return nil, err
	}
	snap, src, err := s.catalogue.current(ctx)
	if err != nil {
		return nil, err
	}
	page, next := snap.listGroups(&f, after, size)
	s.setSource(ctx, src, snap)
	resp := &heygenv1.ListAvatarGroupsResponse{AvatarGroups: page}
	if next != "" {
		resp.NextPageToken = encodePageToken(catalogueGroupsKind, fp, []byte(next))
	}
	return resp, nil
}

// catalogueCursor opens a catalogue page token: its payload is the id of
// the last item returned, so paging continues correctly across refreshes
// (keyset pagination: no duplicates, no gaps for items in both snapshots).
func catalogueCursor(token string, kind byte, fp uint64) (string, error) {
	if token == "" {
		return "", nil
	}
	payload, err := decodePageToken(token, kind, fp)
	if err != nil {
		return "", invalidField("page_token", err.Error())
	}
	if len(payload) == 0 {
		return "", invalidField("page_token", errBadToken.Error())
	}
	return string(payload), nil
}
