package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// VideoOptions configure VideosService. Zero fields take the defaults;
// for the bounds, a negative value means no bound.
type VideoOptions struct {
	// CreateRateLimits are per-caller token buckets for CreateVideo alone,
	// on top of the limits on every call (Options.RateLimits): HeyGen limits
	// video generation more strictly than reads. Zero means unlimited.
	CreateRateLimits RateLimits
	// MaxConcurrentCreates bounds CreateVideo calls in flight to HeyGen;
	// beyond it creates fail fast with RESOURCE_EXHAUSTED (default
	// DefaultMaxConcurrentCreates).
	MaxConcurrentCreates int
	// PollInterval is the shortest time between two status polls of a
	// watched video, and the grid every poll is aligned to (default
	// DefaultPollInterval).
	PollInterval time.Duration
	// MaxPollInterval is the longest, reached as a render grows long
	// (default DefaultMaxPollInterval).
	MaxPollInterval time.Duration
	// Heartbeat is how often a WatchVideo stream repeats the current state
	// while nothing changes (default DefaultWatchHeartbeat).
	Heartbeat time.Duration
	// MaxWatches bounds WatchVideo streams in all (default DefaultMaxWatches).
	MaxWatches int
	// MaxWatchesPerCaller bounds one caller's WatchVideo streams (default
	// DefaultMaxWatchesPerCaller).
	MaxWatchesPerCaller int
	// Now is the clock of the create cool-down and the request_id ledger
	// (default time.Now); tests move it.
	Now func() time.Time
}

// Defaults of [VideoOptions].
const (
	DefaultMaxConcurrentCreates = 8
	// DefaultPollInterval is HeyGen's own CLI's first delay.
	DefaultPollInterval = 2 * time.Second
	// DefaultMaxPollInterval is HeyGen's own CLI's cap.
	DefaultMaxPollInterval = 30 * time.Second
	// DefaultWatchHeartbeat is well under the idle timeouts of common
	// proxies and load balancers (30 s and more).
	DefaultWatchHeartbeat      = 15 * time.Second
	DefaultMaxWatches          = 1024
	DefaultMaxWatchesPerCaller = 256
)

func (o VideoOptions) withDefaults() VideoOptions {
	defaultInt := func(v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = math.MaxInt
		}
	}
	defaultInt(&o.MaxConcurrentCreates, DefaultMaxConcurrentCreates)
	defaultInt(&o.MaxWatches, DefaultMaxWatches)
	defaultInt(&o.MaxWatchesPerCaller, DefaultMaxWatchesPerCaller)
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxPollInterval <= 0 {
		o.MaxPollInterval = DefaultMaxPollInterval
	}
	o.MaxPollInterval = max(o.MaxPollInterval, o.PollInterval)
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultWatchHeartbeat
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// videoTokenKind marks ListVideos page tokens (lower case: HeyGen's own
// next token passed through; see catalogue.EncodeToken).
const videoTokenKind = 'm'

// videosServer implements heygenv1.VideosServiceServer. Reads go straight
// to HeyGen; creates go through the checks and limits of videocreate.go;
// WatchVideo streams share one poller (watch.go).
type videosServer struct {
	heygenv1.UnimplementedVideosServiceServer
	*Server
	create *creates
	watch  *watchHub
}

var _ heygenv1.VideosServiceServer = (*videosServer)(nil)

// GetVideo returns one video.
func (s *videosServer) GetVideo(ctx context.Context, req *heygenv1.GetVideoRequest) (*heygenv1.GetVideoResponse, error) {
	var c checks
	c.id("video_id", req.GetVideoId())
	if err := c.err(); err != nil {
		return nil, err
	}
	v, err := s.client.Videos.Get(ctx, req.GetVideoId())
	if err != nil {
		return nil, fmt.Errorf("get video: %w", err)
	}
	return &heygenv1.GetVideoResponse{Video: videoProto(v)}, nil
}

// ListVideos lists one page of videos, passed through to HeyGen with the
// gateway's own checksummed page tokens around HeyGen's.
func (s *videosServer) ListVideos(ctx context.Context, req *heygenv1.ListVideosRequest) (*heygenv1.ListVideosResponse, error) {
	var c checks
	size := c.pageSize(req.GetPageSize(), heygen.MaxVideoPageLimit)
	c.text("title", req.GetTitle())
	c.optionalID("folder_id", req.GetFolderId())
	if err := c.err(); err != nil {
		return nil, err
	}
	key := catalogue.FilterKey("videos", req.GetTitle(), req.GetFolderId())
	var token string
	if req.GetPageToken() != "" {
		payload, err := catalogue.DecodeToken(req.GetPageToken(), videoTokenKind, key)
		if err != nil {
			return nil, err
		}
		token = string(payload)
	}
	page, err := s.client.Videos.List(ctx, heygen.ListVideosOptions{Title: req.GetTitle(), FolderID: req.GetFolderId(), Limit: size, Token: token})
	if err != nil {
		return nil, fmt.Errorf("list videos: %w", err)
	}
	out := &heygenv1.ListVideosResponse{Videos: make([]*heygenv1.Video, 0, len(page.Items))}
	for i := range page.Items {
		out.Videos = append(out.Videos, videoProto(&page.Items[i]))
	}
	if page.NextToken != "" {
		out.NextPageToken = catalogue.EncodeToken(videoTokenKind, key, []byte(page.NextToken))
	}
	return out, nil
}

// DeleteVideo deletes a video. It is sent once (see heygen's Delete).
func (s *videosServer) DeleteVideo(ctx context.Context, req *heygenv1.DeleteVideoRequest) (*heygenv1.DeleteVideoResponse, error) {
	var c checks
	c.id("video_id", req.GetVideoId())
	if err := c.err(); err != nil {
		return nil, err
	}
	if err := s.client.Videos.Delete(ctx, req.GetVideoId()); err != nil {
		return nil, fmt.Errorf("delete video: %w", err)
	}
	return &heygenv1.DeleteVideoResponse{}, nil
}

// CreateVideo starts a render; see creates.create.
func (s *videosServer) CreateVideo(ctx context.Context, req *heygenv1.CreateVideoRequest) (*heygenv1.CreateVideoResponse, error) {
	v, err := s.create.create(ctx, s.Server, req)
	if err != nil {
		return nil, err
	}
	return &heygenv1.CreateVideoResponse{Video: v}, nil
}

// WatchVideo sends the video's state at once, then every change the shared
// poller sees, repeating the last state every heartbeat, and ends after a
// final state. The stream's own goroutine does all the sending, so a slow
// reader slows only itself; the poller never waits for it.
func (s *videosServer) WatchVideo(req *heygenv1.WatchVideoRequest, stream grpc.ServerStreamingServer[heygenv1.WatchVideoResponse]) error {
	var c checks
	c.id("video_id", req.GetVideoId())
	if err := c.err(); err != nil {
		return err
	}
	ctx := stream.Context()
	w, err := s.watch.join(callerOrUnauthenticated(callerOf(ctx)), req.GetVideoId())
	if err != nil {
		return err
	}
	defer w.leave()
	heartbeat := time.NewTicker(s.watch.cfg.Heartbeat)
	defer heartbeat.Stop()
	var last *heygenv1.Video
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-w.events:
			if ev.err != nil {
				return fmt.Errorf("watch video: %w", ev.err)
			}
			if last != nil && proto.Equal(last, ev.video) {
				continue
			}
			last = ev.video
			if err := stream.Send(&heygenv1.WatchVideoResponse{Video: last}); err != nil {
				return err
			}
			if finished(last) {
				return nil
			}
			heartbeat.Reset(s.watch.cfg.Heartbeat)
		case <-heartbeat.C:
			if last == nil {
				continue // nothing known yet: the first fetch is still under way
			}
			if err := stream.Send(&heygenv1.WatchVideoResponse{Video: last}); err != nil {
				return err
			}
		}
	}
}

// finished reports whether a video will not change any more.
func finished(v *heygenv1.Video) bool {
	return v.GetStatus() == heygenv1.VideoStatus_VIDEO_STATUS_COMPLETED || v.GetStatus() == heygenv1.VideoStatus_VIDEO_STATUS_FAILED
}

// videoStatusOf maps HeyGen's status values, those of GET /v3/videos/{id}
// and the create's "waiting" and the statuses endpoint's "queued" alike.
func videoStatusOf(raw string) heygenv1.VideoStatus {
	switch raw {
	case heygen.VideoPending, "waiting", "queued":
		return heygenv1.VideoStatus_VIDEO_STATUS_PENDING
	case heygen.VideoProcessing:
		return heygenv1.VideoStatus_VIDEO_STATUS_PROCESSING
	case heygen.VideoCompleted:
		return heygenv1.VideoStatus_VIDEO_STATUS_COMPLETED
	case heygen.VideoFailed:
		return heygenv1.VideoStatus_VIDEO_STATUS_FAILED
	}
	return heygenv1.VideoStatus_VIDEO_STATUS_UNSPECIFIED
}

// maxVideoSeconds bounds a duration HeyGen reports, so that garbage cannot
// overflow a time.Duration: no video is a year long.
const maxVideoSeconds = 365 * 24 * 3600

// videoProto converts a HeyGen video.
func videoProto(v *heygen.Video) *heygenv1.Video {
	out := &heygenv1.Video{
		Id:                v.ID,
		Title:             v.Title,
		Status:            videoStatusOf(v.Status),
		StatusRaw:         v.Status,
		VideoUrl:          v.VideoURL,
		CaptionedVideoUrl: v.CaptionedVideoURL,
		ThumbnailUrl:      v.ThumbnailURL,
		GifUrl:            v.GIFURL,
		SubtitleUrl:       v.SubtitleURL,
		VideoPageUrl:      v.VideoPageURL,
		FailureCode:       v.FailureCode,
		FailureMessage:    v.FailureMessage,
		FolderId:          v.FolderID,
		CreateTime:        unixTime(v.CreatedAt),
		CompleteTime:      unixTime(v.CompletedAt),
	}
	if d := v.Duration; d != nil && *d >= 0 && *d <= maxVideoSeconds {
		out.Duration = durationpb.New(time.Duration(*d * float64(time.Second)))
	}
	var earliest time.Time
	for _, u := range []*string{v.VideoURL, v.CaptionedVideoURL, v.SubtitleURL} {
		if u == nil {
			continue
		}
		if t, ok := presignedExpiry(*u); ok && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	if !earliest.IsZero() {
		out.UrlExpireTime = timestamppb.New(earliest)
	}
	return out
}

func unixTime(sec *int64) *timestamppb.Timestamp {
	if sec == nil || *sec <= 0 {
		return nil
	}
	return timestamppb.New(time.Unix(*sec, 0))
}

// presignedExpiry reads when a presigned URL stops working from its query:
// SigV4's X-Amz-Date plus X-Amz-Expires (and Google's X-Goog- twins), or
// the absolute unix Expires of SigV2 and CloudFront. ok is false when the
// URL says nothing usable.
func presignedExpiry(raw string) (time.Time, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return time.Time{}, false
	}
	q := u.Query()
	for _, p := range []string{"X-Amz-", "X-Goog-"} {
		exp, date := q.Get(p+"Expires"), q.Get(p+"Date")
		if exp == "" || date == "" {
			continue
		}
		secs, err := strconv.ParseInt(exp, 10, 64)
		signed, derr := time.Parse("20060102T150405Z", date)
		if err == nil && derr == nil && secs >= 0 && secs <= maxVideoSeconds {
			return signed.Add(time.Duration(secs) * time.Second), true
		}
	}
	if exp := q.Get("Expires"); exp != "" {
		if unix, err := strconv.ParseInt(exp, 10, 64); err == nil && unix > 0 && unix < 1<<40 {
			return time.Unix(unix, 0), true
		}
	}
	return time.Time{}, false
}

// watchLimitError refuses a WatchVideo stream beyond a bound.
type watchLimitError struct {
	scope string // "caller" or "gateway"
	limit int
}

func (e *watchLimitError) Error() string {
	if e.scope == "caller" {
		return fmt.Sprintf("this caller already has %d WatchVideo streams open, its limit; end one or retry later", e.limit)
	}
	return fmt.Sprintf("the gateway is at its limit of %d WatchVideo streams; retry with backoff", e.limit)
}

// isNotFound reports whether HeyGen said the thing does not exist.
func isNotFound(err error) bool {
	var herr *heygen.Error
	return errors.As(err, &herr) && herr.Kind == heygen.KindNotFound
}
