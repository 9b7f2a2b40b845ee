package server

import (
	"context"
	"fmt"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// voicesServer implements heygenv1.VoicesServiceServer, as avatarsServer
// does AvatarsService.
type voicesServer struct {
	heygenv1.UnimplementedVoicesServiceServer
	*Server
}

var _ heygenv1.VoicesServiceServer = (*voicesServer)(nil)

// ListVoices lists one page of voices.
func (s *voicesServer) ListVoices(ctx context.Context, req *heygenv1.ListVoicesRequest) (*heygenv1.ListVoicesResponse, error) {
	var c checks
	size := c.pageSize(req.GetPageSize(), s.readers.Voices.MaxPageSize())
	enum(&c, "ownership", req.GetOwnership(), heygenv1.Ownership_name)
	c.text("language", req.GetLanguage())
	c.text("gender", req.GetGender())
	c.text("engine", req.GetEngine())
	c.text("query", req.GetQuery())
	if err := c.err(); err != nil {
		return nil, err
	}
	page, err := s.readers.Voices.List(ctx, catalogue.NewVoiceFilter(req), req.GetPageToken(), size)
	if err != nil {
		return nil, fmt.Errorf("list voices: %w", err)
	}
	s.answered(ctx, page.Meta)
	return &heygenv1.ListVoicesResponse{Voices: page.Items, NextPageToken: page.NextPageToken}, nil
}

// GetVoice returns one voice.
func (s *voicesServer) GetVoice(ctx context.Context, req *heygenv1.GetVoiceRequest) (*heygenv1.GetVoiceResponse, error) {
	var c checks
	c.id("voice_id", req.GetVoiceId())
	if err := c.err(); err != nil {
		return nil, err
	}
	v, meta, err := s.readers.Voices.GetEncoded(ctx, req.GetVoiceId())
	if err != nil {
		return nil, fmt.Errorf("get voice: %w", err)
	}
	s.answered(ctx, meta)
	return &heygenv1.GetVoiceResponse{Voice: v}, nil
}
