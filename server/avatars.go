package server

import (
	"context"
	"fmt"
	"strconv"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Page sizes (AIP-158): 0 means the default, larger values are coerced to
// the maximum, which is what HeyGen serves in one page.
const (
	DefaultPageSize = 20
	MaxPageSize     = heygen.MaxPageLimit
)

// avatarsServer implements heygenv1.AvatarsServiceServer on the HeyGen
// client. Handlers validate first, then call HeyGen; they return plain Go
// errors, which the error interceptor turns into statuses (see toStatus).
type avatarsServer struct {
	heygenv1.UnimplementedAvatarsServiceServer
	client    *heygen.Client
	catalogue *Catalogue // nil: pass every call through to HeyGen
	metrics   *Metrics   // may be nil
}

var _ heygenv1.AvatarsServiceServer = (*avatarsServer)(nil)

// pageSize applies AIP-158 to a requested page size.
func pageSize(n int32, maxSize int) (int, error) {
	switch {
	case n < 0:
		return 0, invalidField("page_size", "must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case int(n) > maxSize:
		return maxSize, nil
	}
	return int(n), nil
}

// maxPageSize is the catalogue's larger maximum, or HeyGen's.
func (s *avatarsServer) maxPageSize() int {
	if s.catalogue != nil {
		return MaxCataloguePageSize
	}
	return MaxPageSize
}

func checkID(field, id string) error {
	if id == "" {
		return invalidField(field, "is required")
	}
	if !heygen.ValidID(id) {
		return invalidField(field, "must be 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'")
	}
	return nil
}

func checkEnum[E ~int32](field string, v E, names map[int32]string) error {
	if _, ok := names[int32(v)]; !ok {
		return invalidField(field, "unknown enum value "+strconv.Itoa(int(v)))
	}
	return nil
}

// upstreamToken opens a caller's page token and returns HeyGen's token.
func upstreamToken(token string, kind byte, filters uint64) (string, error) {
	if token == "" {
		return "", nil
	}
	payload, err := decodePageToken(token, kind, filters)
	if err != nil {
		return "", invalidField("page_token", err.Error())
	}
	if len(payload) == 0 {
		return "", invalidField("page_token", errBadToken.Error())
	}
	return string(payload), nil
}

func nextPageToken(next string, kind byte, filters uint64) string {
	if next == "" {
		return ""
	}
	return encodePageToken(kind, filters, []byte(next))
}

// ListAvatars lists one page of looks.
func (s *avatarsServer) ListAvatars(ctx context.Context, req *heygenv1.ListAvatarsRequest) (*heygenv1.ListAvatarsResponse, error) {
	size, err := pageSize(req.GetPageSize(), s.maxPageSize())
	if err != nil {
		return nil, err
	}
	if req.GetGroupId() != "" {
		if err := checkID("group_id", req.GetGroupId()); err != nil {
			return nil, err
		}
	}
	if err := checkEnum("avatar_type", req.GetAvatarType(), heygenv1.AvatarType_name); err != nil {
		return nil, err
	}
	if err := checkEnum("ownership", req.GetOwnership(), heygenv1.Ownership_name); err != nil {
		return nil, err
	}
	if err := checkEnum("preferred_orientation", req.GetPreferredOrientation(), heygenv1.Orientation_name); err != nil {
		return nil, err
	}
	if err := checkFilterText(textFilter{"query", req.GetQuery()}, textFilter{"gender", req.GetGender()},
		textFilter{"supported_engine", req.GetSupportedEngine()}, textFilter{"tag", req.GetTag()}); err != nil {
		return nil, err
	}
	if s.catalogue != nil {
		return s.listAvatarsFromCatalogue(ctx, req, size)
	}
	if err := catalogueOnly(map[string]bool{"query": req.GetQuery() != "", "gender": req.GetGender() != "",
		"supported_engine": req.GetSupportedEngine() != "", "preferred_orientation": req.GetPreferredOrientation() != 0,
		"tag": req.GetTag() != ""}); err != nil {
		return nil, err
	}
	s.setSource(ctx, SourceHeyGen, nil)
	filters := filterFingerprint(fmt.Sprintf("avatars\x00%s\x00%d\x00%d", req.GetGroupId(), req.GetAvatarType(), req.GetOwnership()))
	token, err := upstreamToken(req.GetPageToken(), listAvatars, filters)
	if err != nil {
		return nil, err
	}
	page, err := s.client.Avatars.ListLooks(ctx, heygen.ListLooksOptions{
		GroupID:    req.GetGroupId(),
		AvatarType: avatarTypeToHeyGen[req.GetAvatarType()],
		Ownership:  ownershipToHeyGen[req.GetOwnership()],
		Limit:      size,
		Token:      token,
	})
	if err != nil {
		return nil, fmt.Errorf("list avatars: %w", err)
	}
	resp := &heygenv1.ListAvatarsResponse{
		Avatars:       make([]*heygenv1.Avatar, 0, len(page.Looks)),
		NextPageToken: nextPageToken(page.NextToken, listAvatars, filters),
	}
	for i := range page.Looks {
		a := avatarFromLook(&page.Looks[i])
		a.Ownership = req.GetOwnership()
		resp.Avatars = append(resp.Avatars, a)
	}
	return resp, nil
}

// GetAvatar fetches one look.
func (s *avatarsServer) GetAvatar(ctx context.Context, req *heygenv1.GetAvatarRequest) (*heygenv1.GetAvatarResponse, error) {
	if err := checkID("avatar_id", req.GetAvatarId()); err != nil {
		return nil, err
	}
	if s.catalogue != nil {
		a, src, snap, err := s.catalogue.avatar(ctx, req.GetAvatarId())
		if err != nil {
			return nil, fmt.Errorf("get avatar: %w", err)
		}
		s.setSource(ctx, src, snap)
		return &heygenv1.GetAvatarResponse{Avatar: a}, nil
	}
	s.setSource(ctx, SourceHeyGen, nil)
	look, err := s.client.Avatars.GetLook(ctx, req.GetAvatarId())
	if err != nil {
		return nil, fmt.Errorf("get avatar: %w", err)
	}
	return &heygenv1.GetAvatarResponse{Avatar: avatarFromLook(look)}, nil
}

// ListAvatarGroups lists one page of groups.
func (s *avatarsServer) ListAvatarGroups(ctx context.Context, req *heygenv1.ListAvatarGroupsRequest) (*heygenv1.ListAvatarGroupsResponse, error) {
	size, err := pageSize(req.GetPageSize(), s.maxPageSize())
	if err != nil {
		return nil, err
	}
	if err := checkEnum("ownership", req.GetOwnership(), heygenv1.Ownership_name); err != nil {
		return nil, err
	}
	if err := checkFilterText(textFilter{"query", req.GetQuery()}, textFilter{"gender", req.GetGender()}); err != nil {
		return nil, err
	}
	if s.catalogue != nil {
		return s.listGroupsFromCatalogue(ctx, req, size)
	}
	if err := catalogueOnly(map[string]bool{"query": req.GetQuery() != "", "gender": req.GetGender() != ""}); err != nil {
		return nil, err
	}
	s.setSource(ctx, SourceHeyGen, nil)
	filters := filterFingerprint(fmt.Sprintf("groups\x00%d", req.GetOwnership()))
	token, err := upstreamToken(req.GetPageToken(), listAvatarGroups, filters)
	if err != nil {
		return nil, err
	}
	page, err := s.client.Avatars.ListGroups(ctx, heygen.ListGroupsOptions{
		Ownership: ownershipToHeyGen[req.GetOwnership()],
		Limit:     size,
		Token:     token,
	})
	if err != nil {
		return nil, fmt.Errorf("list avatar groups: %w", err)
	}
	resp := &heygenv1.ListAvatarGroupsResponse{
		AvatarGroups:  make([]*heygenv1.AvatarGroup, 0, len(page.Groups)),
		NextPageToken: nextPageToken(page.NextToken, listAvatarGroups, filters),
	}
	for i := range page.Groups {
		g := avatarGroupFromGroup(&page.Groups[i])
		g.Ownership = req.GetOwnership()
		resp.AvatarGroups = append(resp.AvatarGroups, g)
	}
	return resp, nil
}

// GetAvatarGroup fetches one group.
func (s *avatarsServer) GetAvatarGroup(ctx context.Context, req *heygenv1.GetAvatarGroupRequest) (*heygenv1.GetAvatarGroupResponse, error) {
	if err := checkID("group_id", req.GetGroupId()); err != nil {
		return nil, err
	}
	if req.GetGroupId() == "looks" {
		return nil, invalidField("group_id", `"looks" is not a group id`)
	}
	if s.catalogue != nil {
		g, src, snap, err := s.catalogue.group(ctx, req.GetGroupId())
		if err != nil {
			return nil, fmt.Errorf("get avatar group: %w", err)
		}
		s.setSource(ctx, src, snap)
		return &heygenv1.GetAvatarGroupResponse{AvatarGroup: g}, nil
	}
	s.setSource(ctx, SourceHeyGen, nil)
	g, err := s.client.Avatars.GetGroup(ctx, req.GetGroupId())
	if err != nil {
		return nil, fmt.Errorf("get avatar group: %w", err)
	}
	return &heygenv1.GetAvatarGroupResponse{AvatarGroup: avatarGroupFromGroup(g)}, nil
}
