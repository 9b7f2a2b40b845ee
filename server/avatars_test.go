package server_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/server"
)

func TestListAvatarsPagesThroughEverything(t *testing.T) {
	h := setup(t, setupOptions{})
	seen := map[string]bool{}
	token, pages := "", 0
	for {
		resp, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 50, PageToken: token})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		for _, a := range resp.GetAvatars() {
			if seen[a.GetId()] {
				t.Fatalf("avatar %s returned twice", a.GetId())
			}
			seen[a.GetId()] = true
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		token = resp.GetNextPageToken()
	}
	if len(seen) != len(h.cat.Looks) {
		t.Fatalf("paged through %d avatars, catalogue has %d", len(seen), len(h.cat.Looks))
	}
	wantPages := (len(h.cat.Looks) + 49) / 50
	if pages != wantPages || h.fake.CountPath("/v3/avatars/looks") != wantPages {
		t.Fatalf("took %d pages and %d HeyGen calls, want %d of each", pages, h.fake.CountPath("/v3/avatars/looks"), wantPages)
	}
	for _, r := range h.fake.Requests() {
		if r.APIKey != canaryKey {
			t.Fatalf("HeyGen received X-Api-Key %q, want the configured key", r.APIKey)
		}
	}
}

func TestListAvatarGroupsPagesThroughEverything(t *testing.T) {
	h := setup(t, setupOptions{})
	total, token := 0, ""
	for i := 0; ; i++ {
		resp, err := h.avatars.ListAvatarGroups(ctx(t), &heygenv1.ListAvatarGroupsRequest{PageSize: 7, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		total += len(resp.GetAvatarGroups())
		if token = resp.GetNextPageToken(); token == "" || i > 100 {
			break
		}
	}
	if total != len(h.cat.Groups) {
		t.Fatalf("got %d groups, want %d", total, len(h.cat.Groups))
	}
}

func TestListAvatarsFilters(t *testing.T) {
	h := setup(t, setupOptions{})
	group := h.cat.Looks[0].GroupID
	if group == nil {
		t.Fatal("demo catalogue's first look has no group")
	}
	tests := []struct {
		name string
		req  *heygenv1.ListAvatarsRequest
		keep func(fakeheygen.Look) bool
	}{
		{"studio public", &heygenv1.ListAvatarsRequest{AvatarType: heygenv1.AvatarType_AVATAR_TYPE_STUDIO_AVATAR, Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC},
			func(l fakeheygen.Look) bool { return l.AvatarType == "studio_avatar" && l.Ownership == "public" }},
		{"photo", &heygenv1.ListAvatarsRequest{AvatarType: heygenv1.AvatarType_AVATAR_TYPE_PHOTO_AVATAR},
			func(l fakeheygen.Look) bool { return l.AvatarType == "photo_avatar" }},
		{"private", &heygenv1.ListAvatarsRequest{Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE},
			func(l fakeheygen.Look) bool { return l.Ownership == "private" }},
		{"group", &heygenv1.ListAvatarsRequest{GroupId: *group},
			func(l fakeheygen.Look) bool { return l.GroupID != nil && *l.GroupID == *group }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := 0
			for _, l := range h.cat.Looks {
				if tt.keep(l) {
					want++
				}
			}
			got, token := 0, ""
			for i := 0; i < 100; i++ {
				req := proto.Clone(tt.req).(*heygenv1.ListAvatarsRequest)
				req.PageSize, req.PageToken = 50, token
				resp, err := h.avatars.ListAvatars(ctx(t), req)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range resp.GetAvatars() {
					got++
					if tt.req.AvatarType != 0 && a.GetAvatarType() != tt.req.AvatarType {
						t.Errorf("avatar %s has type %v", a.GetId(), a.GetAvatarType())
					}
					if tt.req.GroupId != "" && a.GetGroupId() != tt.req.GroupId {
						t.Errorf("avatar %s is in group %s", a.GetId(), a.GetGroupId())
					}
				}
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			if want == 0 || got != want {
				t.Fatalf("filter kept %d avatars, want %d (and more than 0)", got, want)
			}
		})
	}
}

func TestPageSizeAIP158(t *testing.T) {
	// No background health probe: every request the fake counts is this test's.
	h := setup(t, setupOptions{noBackground: true})
	resp, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetAvatars()); n != server.DefaultPageSize {
		t.Errorf("page_size 0 returned %d avatars, want the default %d", n, server.DefaultPageSize)
	}
	resp, err = h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	// Without the catalogue every page is one HeyGen page: HeyGen's own maximum.
	if n := len(resp.GetAvatars()); n != heygen.MaxPageLimit {
		t.Errorf("page_size 100000 returned %d avatars, want the maximum %d", n, heygen.MaxPageLimit)
	}
	reqs := h.fake.Requests()
	if q, _ := url.ParseQuery(reqs[len(reqs)-1].RawQuery); q.Get("limit") != "50" {
		t.Errorf("HeyGen was asked for limit=%q, want 50", q.Get("limit"))
	}

	before := h.fake.RequestCount()
	_, err = h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: -1})
	st, info, br, _ := statusParts(t, err)
	if st.Code() != codes.InvalidArgument || info.GetDomain() != server.GatewayDomain || br == nil ||
		br.GetFieldViolations()[0].GetField() != "page_size" {
		t.Fatalf("page_size -1: got %v %v %v, want INVALID_ARGUMENT with a BadRequest on page_size", st.Code(), info, br)
	}
	if h.fake.RequestCount() != before {
		t.Fatal("an invalid request reached HeyGen")
	}
}

func TestPageTokens(t *testing.T) {
	// No background health probe: every request the fake counts is this test's.
	h := setup(t, setupOptions{noBackground: true})
	first, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 5, Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC})
	if err != nil {
		t.Fatal(err)
	}
	token := first.GetNextPageToken()
	if token == "" {
		t.Fatal("first page has no next_page_token")
	}
	// The same filters with a different page size are fine (AIP-158).
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 9, PageToken: token, Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC}); err != nil {
		t.Fatalf("same filters, other page size: %v", err)
	}
	groupsResp, err := h.avatars.ListAvatarGroups(ctx(t), &heygenv1.ListAvatarGroupsRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	before := h.fake.RequestCount()
	tampered := []byte(token)
	tampered[len(tampered)/2] ^= 0x01
	bad := []struct {
		name string
		call func() error
	}{
		{"other ownership", func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageToken: token, Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE})
			return err
		}},
		{"added filter", func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageToken: token, Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC, AvatarType: heygenv1.AvatarType_AVATAR_TYPE_DIGITAL_TWIN})
			return err
		}},
		{"tampered", func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageToken: string(tampered), Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC})
			return err
		}},
		{"garbage", func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageToken: "not a token!"})
			return err
		}},
		{"group token on avatars", func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageToken: groupsResp.GetNextPageToken()})
			return err
		}},
		{"avatar token on groups", func() error {
			_, err := h.avatars.ListAvatarGroups(ctx(t), &heygenv1.ListAvatarGroupsRequest{PageToken: token})
			return err
		}},
		{"huge", func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageToken: strings.Repeat("A", 10000)})
			return err
		}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			st, info, br, _ := statusParts(t, tt.call())
			if st.Code() != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest || br.GetFieldViolations()[0].GetField() != "page_token" {
				t.Fatalf("got %v %q %v, want INVALID_ARGUMENT on page_token", st.Code(), st.Message(), info)
			}
		})
	}
	if h.fake.RequestCount() != before {
		t.Fatalf("bad tokens caused %d HeyGen calls, want 0", h.fake.RequestCount()-before)
	}
}

func TestPathInjectionNeverReachesHeyGen(t *testing.T) {
	// No background health probe: every request the fake counts is this test's.
	h := setup(t, setupOptions{noBackground: true})
	ids := []string{"../../v3/users/me", "a/b", "%2e%2e", "..", ".", "", "a b", "a?b=c", "a#b", "a%2Fb", "ünï", strings.Repeat("a", 129), "looks/x", "\x00"}
	for _, id := range ids {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: id})
			st, info, br, _ := statusParts(t, err)
			if st.Code() != codes.InvalidArgument || info.GetDomain() != server.GatewayDomain || br.GetFieldViolations()[0].GetField() != "avatar_id" {
				t.Errorf("GetAvatar(%q) = %v, want INVALID_ARGUMENT on avatar_id", id, err)
			}
			_, err = h.avatars.GetAvatarGroup(ctx(t), &heygenv1.GetAvatarGroupRequest{GroupId: id})
			if st, _, br, _ := statusParts(t, err); st.Code() != codes.InvalidArgument || br.GetFieldViolations()[0].GetField() != "group_id" {
				t.Errorf("GetAvatarGroup(%q) = %v, want INVALID_ARGUMENT on group_id", id, err)
			}
			if id != "" {
				_, err = h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{GroupId: id})
				if st, _, _, _ := statusParts(t, err); st.Code() != codes.InvalidArgument {
					t.Errorf("ListAvatars(group_id=%q) = %v, want INVALID_ARGUMENT", id, err)
				}
			}
		})
	}
	_, err := h.avatars.GetAvatarGroup(ctx(t), &heygenv1.GetAvatarGroupRequest{GroupId: "looks"})
	if st, _, _, _ := statusParts(t, err); st.Code() != codes.InvalidArgument {
		t.Errorf(`GetAvatarGroup("looks") = %v, want INVALID_ARGUMENT`, err)
	}
	_, err = h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{AvatarType: 42})
	if st, _, br, _ := statusParts(t, err); st.Code() != codes.InvalidArgument || br.GetFieldViolations()[0].GetField() != "avatar_type" {
		t.Errorf("unknown avatar_type enum = %v, want INVALID_ARGUMENT", err)
	}
	if n := h.fake.RequestCount(); n != 0 {
		t.Fatalf("HeyGen received %d requests, want 0: %+v", n, h.fake.Requests())
	}
}

func TestGetAvatarAndGroupConvertEveryField(t *testing.T) {
	h := setup(t, setupOptions{})
	var withNulls, unknownOrientation *fakeheygen.Look
	for i := range h.cat.Looks {
		l := &h.cat.Looks[i]
		if l.Tags == nil && l.PreviewVideoURL == nil && withNulls == nil {
			withNulls = l
		}
		if l.PreferredOrientation != nil && *l.PreferredOrientation == "ultrawide" {
			unknownOrientation = l
		}
	}
	if withNulls == nil || unknownOrientation == nil {
		t.Fatal("demo catalogue lacks a look with null fields or an unknown orientation")
	}
	resp, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: withNulls.ID})
	if err != nil {
		t.Fatal(err)
	}
	a := resp.GetAvatar()
	if a.GetId() != withNulls.ID || a.GetName() != withNulls.Name || a.GetAvatarTypeRaw() != withNulls.AvatarType {
		t.Errorf("got %v, want %+v", a, withNulls)
	}
	if a.PreviewVideoUrl != nil || len(a.GetTags()) != 0 {
		t.Errorf("null upstream fields came back set: preview_video_url=%v tags=%v", a.PreviewVideoUrl, a.GetTags())
	}
	if a.GetAvatarType() == heygenv1.AvatarType_AVATAR_TYPE_UNSPECIFIED {
		t.Errorf("known avatar_type %q mapped to UNSPECIFIED", withNulls.AvatarType)
	}

	resp, err = h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: unknownOrientation.ID})
	if err != nil {
		t.Fatal(err)
	}
	if a := resp.GetAvatar(); a.GetPreferredOrientation() != heygenv1.Orientation_ORIENTATION_UNSPECIFIED || a.GetPreferredOrientationRaw() != "ultrawide" {
		t.Errorf("unknown orientation came back as %v / %q, want UNSPECIFIED / ultrawide", a.GetPreferredOrientation(), a.GetPreferredOrientationRaw())
	}

	var archived, failed *fakeheygen.Group
	for i := range h.cat.Groups {
		g := &h.cat.Groups[i]
		if g.Status != nil && *g.Status == "archived" {
			archived = g
		}
		if g.Status != nil && *g.Status == "failed" && g.Error != nil {
			failed = g
		}
	}
	if archived == nil || failed == nil {
		t.Fatal("demo catalogue lacks an archived or a failed group")
	}
	g, err := h.avatars.GetAvatarGroup(ctx(t), &heygenv1.GetAvatarGroupRequest{GroupId: archived.ID})
	if err != nil {
		t.Fatal(err)
	}
	if gg := g.GetAvatarGroup(); gg.GetStatus() != heygenv1.AvatarStatus_AVATAR_STATUS_UNSPECIFIED || gg.GetStatusRaw() != "archived" ||
		gg.GetCreatedAt().GetSeconds() != archived.CreatedAt || int(gg.GetLooksCount()) != archived.LooksCount {
		t.Errorf("archived group came back as %v", gg)
	}
	g, err = h.avatars.GetAvatarGroup(ctx(t), &heygenv1.GetAvatarGroupRequest{GroupId: failed.ID})
	if err != nil {
		t.Fatal(err)
	}
	if gg := g.GetAvatarGroup(); gg.GetStatus() != heygenv1.AvatarStatus_AVATAR_STATUS_FAILED || gg.GetError().GetCode() != failed.Error.Code {
		t.Errorf("failed group came back as %v", gg)
	}
}

func TestNotFound(t *testing.T) {
	// No background health probe: every request the fake counts is this test's.
	h := setup(t, setupOptions{noBackground: true})
	_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "no_such_avatar_123"})
	st, info, _, _ := statusParts(t, err)
	if st.Code() != codes.NotFound || info.GetReason() != "HEYGEN_NOT_FOUND" || info.GetDomain() != server.HeyGenDomain {
		t.Fatalf("got %v %v, want NOT_FOUND HEYGEN_NOT_FOUND", st.Code(), info)
	}
	if info.GetMetadata()["http_status"] != "404" || info.GetMetadata()["heygen_code"] != "avatar_not_found" ||
		info.GetMetadata()["heygen_request_id"] == "" || info.GetMetadata()["attempts"] != "1" {
		t.Errorf("ErrorInfo metadata = %v", info.GetMetadata())
	}
	if h.fake.RequestCount() != 1 {
		t.Errorf("a 404 was retried: %d requests", h.fake.RequestCount())
	}
}
