package server

import (
	"context"
	"fmt"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// avatarsServer implements heygenv1.AvatarsServiceServer. Handlers
// validate, call a reader (cached or pass-through: they cannot tell), and
// say where the answer came from; errors go back as plain Go errors, which
// the error interceptor turns into statuses (see toStatus).
type avatarsServer struct {
	heygenv1.UnimplementedAvatarsServiceServer
	*Server
}

var _ heygenv1.AvatarsServiceServer = (*avatarsServer)(nil)

// ListAvatars lists one page of avatars (HeyGen looks).
func (s *avatarsServer) ListAvatars(ctx context.Context, req *heygenv1.ListAvatarsRequest) (*heygenv1.ListAvatarsResponse, error) {
	var c checks
	size := c.pageSize(req.GetPageSize(), s.readers.Avatars.MaxPageSize())
	c.optionalID("group_id", req.GetGroupId())
	enum(&c, "avatar_type", req.GetAvatarType(), heygenv1.AvatarType_name)
	enum(&c, "ownership", req.GetOwnership(), heygenv1.Ownership_name)
	enum(&c, "preferred_orientation", req.GetPreferredOrientation(), heygenv1.Orientation_name)
	c.text("query", req.GetQuery())
	c.text("gender", req.GetGender())
	c.text("supported_engine", req.GetSupportedEngine())
	c.text("tag", req.GetTag())
	if err := c.err(); err != nil {
		return nil, err
	}
	page, err := s.readers.Avatars.List(ctx, catalogue.NewAvatarFilter(req), req.GetPageToken(), size)
	if err != nil {
		return nil, fmt.Errorf("list avatars: %w", err)
	}
	s.answered(ctx, page.Meta)
	return &heygenv1.ListAvatarsResponse{Avatars: page.Items, NextPageToken: page.NextPageToken}, nil
}

// GetAvatar returns one avatar.
func (s *avatarsServer) GetAvatar(ctx context.Context, req *heygenv1.GetAvatarRequest) (*heygenv1.GetAvatarResponse, error) {
	var c checks
	c.id("avatar_id", req.GetAvatarId())
	if err := c.err(); err != nil {
		return nil, err
	}
	a, meta, err := s.readers.Avatars.GetEncoded(ctx, req.GetAvatarId())
	if err != nil {
		return nil, fmt.Errorf("get avatar: %w", err)
	}
	s.answered(ctx, meta)
	return &heygenv1.GetAvatarResponse{Avatar: a}, nil
}

// ListAvatarGroups lists one page of avatar groups.
func (s *avatarsServer) ListAvatarGroups(ctx context.Context, req *heygenv1.ListAvatarGroupsRequest) (*heygenv1.ListAvatarGroupsResponse, error) {
	var c checks
	size := c.pageSize(req.GetPageSize(), s.readers.Groups.MaxPageSize())
	enum(&c, "ownership", req.GetOwnership(), heygenv1.Ownership_name)
	c.text("query", req.GetQuery())
	c.text("gender", req.GetGender())
	if err := c.err(); err != nil {
		return nil, err
	}
	page, err := s.readers.Groups.List(ctx, catalogue.NewGroupFilter(req), req.GetPageToken(), size)
	if err != nil {
		return nil, fmt.Errorf("list avatar groups: %w", err)
	}
	s.answered(ctx, page.Meta)
	return &heygenv1.ListAvatarGroupsResponse{AvatarGroups: page.Items, NextPageToken: page.NextPageToken}, nil
}

// GetAvatarGroup returns one avatar group.
func (s *avatarsServer) GetAvatarGroup(ctx context.Context, req *heygenv1.GetAvatarGroupRequest) (*heygenv1.GetAvatarGroupResponse, error) {
	var c checks
	c.id("group_id", req.GetGroupId())
	if req.GetGroupId() == "looks" {
		c.fail("group_id", `"looks" is not a group id`)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	g, meta, err := s.readers.Groups.GetEncoded(ctx, req.GetGroupId())
	if err != nil {
		return nil, fmt.Errorf("get avatar group: %w", err)
	}
	s.answered(ctx, meta)
	return &heygenv1.GetAvatarGroupResponse{AvatarGroup: g}, nil
}
