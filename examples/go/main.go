// Command example is a small Go client of heygen.v1.AvatarsService and
// VoicesService, built on the generated code in gen/. It shows the calls a
// real caller makes:
//
//   - a client retry interceptor (go-grpc-middleware) that retries
//     UNAVAILABLE only, with exponential backoff and jitter; every other
//     code is final (the gateway already retries HeyGen itself);
//   - a deadline on every call;
//   - ListAvatars with a filter (studio avatars), following next_page_token;
//   - GetAvatar by id;
//   - the status code and google.rpc.ErrorInfo reason of failed calls;
//   - ListVoices with filters (language and gender);
//   - CreateVideo with a request_id (a new UUID), sent twice as a retry
//     would be, which makes one video; then WatchVideo to the end.
//
// It checks what it gets and exits 1 on anything unexpected, so CI can run
// it against the demo server (go test -tags e2e ./e2e):
//
//	go run ./cmd/heygen-grpc -demo &
//	HEYGEN_GRPC_ADDR=localhost:50051 go run ./examples/go
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"path"
	"time"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

const (
	// callTimeout bounds each call, retries and backoff included.
	callTimeout = 10 * time.Second
	// pageSize is small so that paging is exercised.
	pageSize = 3
	// pages is how many pages to read: the token is followed pages-1 times.
	pages = 3
	// watchTimeout bounds WatchVideo: longer than the demo's 8 s render.
	watchTimeout = 2 * time.Minute
	// videoAvatar is a demo avatar with a default voice.
	videoAvatar = "Zoe_OutdoorPark_20240523"
)

func main() {
	log.SetFlags(0)
	addr := os.Getenv("HEYGEN_GRPC_ADDR")
	if addr == "" {
		addr = "localhost:50051"
	}
	if err := run(addr); err != nil {
		log.Printf("FAIL: %v", err)
		os.Exit(1)
	}
	fmt.Println("OK: all checks passed")
}

func run(addr string) error {
	// Retry UNAVAILABLE only (the gateway's "HeyGen could not be reached, try
	// again" and connection failures): 5 attempts in all (WithMax counts the
	// first attempt too), waiting about 100ms, 200ms, 400ms, 800ms between
	// them (±20% jitter, capped at 2s). Each attempt gets its own 5s timeout
	// within the call's deadline.
	retryOpts := []retry.CallOption{
		retry.WithCodes(codes.Unavailable),
		retry.WithMax(5),
		retry.WithBackoff(retry.BackoffExponentialWithJitterBounded(100*time.Millisecond, 0.2, 2*time.Second)),
		retry.WithPerRetryTimeout(5 * time.Second),
		retry.WithOnRetryCallback(func(_ context.Context, attempt uint, err error) {
			log.Printf("retry %d after: %v", attempt, err)
		}),
	}
	// Plain text for the local demo server; use TLS credentials (or a mesh's
	// mTLS) anywhere else.
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(retry.UnaryClientInterceptor(retryOpts...)),
	)
	if err != nil {
		return fmt.Errorf("grpc.NewClient(%q): %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	client := heygenv1.NewAvatarsServiceClient(conn)
	fmt.Printf("connected to %s\n", addr)

	first, err := listStudioAvatars(client)
	if err != nil {
		return err
	}
	if err := getAvatar(client, first); err != nil {
		return err
	}
	if err := expectError(client, "no_such_avatar", codes.NotFound, "HEYGEN_NOT_FOUND", "api.heygen.com", false); err != nil {
		return err
	}
	if err := expectError(client, "../x", codes.InvalidArgument, "INVALID_REQUEST", "heygen-grpc.gateway", true); err != nil {
		return err
	}
	if err := listVoices(heygenv1.NewVoicesServiceClient(conn)); err != nil {
		return err
	}
	return createAndWatch(heygenv1.NewVideosServiceClient(conn))
}

// createAndWatch makes a video and follows it until it is rendered. The
// create carries a request_id, made once and reused by every retry of it
// (the UNAVAILABLE retries of the interceptor above, or a second call after
// a timeout, as here): however often it is sent, HeyGen renders and bills
// one video.
func createAndWatch(client heygenv1.VideosServiceClient) error {
	req := &heygenv1.CreateVideoRequest{
		RequestId: uuid.NewString(),
		Visual:    &heygenv1.CreateVideoRequest_Avatar{Avatar: &heygenv1.AvatarVisual{AvatarId: videoAvatar}},
		Speech:    &heygenv1.CreateVideoRequest_Script{Script: &heygenv1.Script{Text: "Hello from the Go example, made through the gateway."}},
		Title:     "Go example",
	}
	fmt.Printf("CreateVideo avatar=%s title=%q request_id=<a new UUID>\n", videoAvatar, req.GetTitle())
	create := func() (*heygenv1.Video, error) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		resp, err := client.CreateVideo(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("CreateVideo: %s", describe(err))
		}
		return resp.GetVideo(), nil
	}
	video, err := create()
	if err != nil {
		return err
	}
	fmt.Printf("  created: %s\n", video.GetStatus())
	again, err := create()
	if err != nil {
		return err
	}
	if again.GetId() != video.GetId() {
		return fmt.Errorf("CreateVideo with the same request_id made a second video: %s, then %s", video.GetId(), again.GetId())
	}
	fmt.Println("  sent again with the same request_id: the same video")

	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel()
	stream, err := client.WatchVideo(ctx, &heygenv1.WatchVideoRequest{VideoId: video.GetId()})
	if err != nil {
		return fmt.Errorf("WatchVideo: %s", describe(err))
	}
	var last *heygenv1.Video
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break // the video is rendered (or failed): the stream ends
		}
		if err != nil {
			return fmt.Errorf("WatchVideo: %s", describe(err))
		}
		v := resp.GetVideo()
		if last != nil && v.GetStatus() == last.GetStatus() {
			last = v // a heartbeat, or a change the example does not print
			continue
		}
		last = v
		fmt.Printf("  WatchVideo: %s\n", v.GetStatus())
	}
	if last.GetStatus() != heygenv1.VideoStatus_VIDEO_STATUS_COMPLETED || last.GetVideoUrl() == "" {
		return fmt.Errorf("WatchVideo ended at %s (%s), want a completed video with its URL", last.GetStatus(), last.GetFailureMessage())
	}
	u, err := url.Parse(last.GetVideoUrl())
	if err != nil {
		return fmt.Errorf("WatchVideo: video_url %q: %w", last.GetVideoUrl(), err)
	}
	valid := last.GetUrlExpireTime().AsTime().Sub(last.GetCompleteTime().AsTime())
	fmt.Printf("  %.1f s of video at https://%s/.../%s, valid for %.0f days\n", last.GetDuration().AsDuration().Seconds(), u.Host, path.Base(u.Path),
		valid.Hours()/24)
	return nil
}

// listVoices reads one page of English female voices.
func listVoices(client heygenv1.VoicesServiceClient) error {
	req := &heygenv1.ListVoicesRequest{PageSize: pageSize, Language: "English", Gender: "female"}
	fmt.Printf("ListVoices language=%s gender=%s page_size=%d\n", req.GetLanguage(), req.GetGender(), pageSize)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := client.ListVoices(ctx, req)
	if err != nil {
		return fmt.Errorf("ListVoices: %s", describe(err))
	}
	if n := len(resp.GetVoices()); n != pageSize {
		return fmt.Errorf("ListVoices: %d voices, want %d", n, pageSize)
	}
	for _, v := range resp.GetVoices() {
		if v.GetLanguage() != "English" || v.GetGender() != "female" {
			return fmt.Errorf("ListVoices: %s is %s %s despite the filters", v.GetId(), v.GetLanguage(), v.GetGender())
		}
		fmt.Printf("    %-34s %s\n", v.GetId(), v.GetName())
	}
	if resp.GetNextPageToken() == "" {
		return errors.New("ListVoices: no next_page_token, but the demo has more English female voices")
	}
	return nil
}

// listStudioAvatars reads `pages` pages of studio avatars and returns the
// first avatar's id.
func listStudioAvatars(client heygenv1.AvatarsServiceClient) (string, error) {
	fmt.Printf("ListAvatars avatar_type=AVATAR_TYPE_STUDIO_AVATAR page_size=%d\n", pageSize)
	seen := map[string]bool{}
	first, token := "", ""
	for page := 1; page <= pages; page++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		resp, err := client.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{
			PageSize:   pageSize,
			PageToken:  token,
			AvatarType: heygenv1.AvatarType_AVATAR_TYPE_STUDIO_AVATAR,
		})
		cancel()
		if err != nil {
			return "", fmt.Errorf("ListAvatars page %d: %s", page, describe(err))
		}
		if n := len(resp.GetAvatars()); n == 0 || n > pageSize {
			return "", fmt.Errorf("ListAvatars page %d: %d avatars, want 1 to %d", page, n, pageSize)
		}
		fmt.Printf("  page %d:\n", page)
		for _, a := range resp.GetAvatars() {
			if a.GetAvatarType() != heygenv1.AvatarType_AVATAR_TYPE_STUDIO_AVATAR {
				return "", fmt.Errorf("ListAvatars page %d: %s is %s despite the filter", page, a.GetId(), a.GetAvatarType())
			}
			if seen[a.GetId()] {
				return "", fmt.Errorf("ListAvatars page %d: %s was already on an earlier page", page, a.GetId())
			}
			seen[a.GetId()] = true
			if first == "" {
				first = a.GetId()
			}
			fmt.Printf("    %-34s %s\n", a.GetId(), a.GetName())
		}
		token = resp.GetNextPageToken()
		if page < pages && token == "" {
			return "", fmt.Errorf("ListAvatars page %d: no next_page_token, but the demo catalogue has more", page)
		}
	}
	fmt.Printf("  %d avatars on %d pages (next_page_token followed %d times)\n", len(seen), pages, pages-1)
	return first, nil
}

func getAvatar(client heygenv1.AvatarsServiceClient, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := client.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: id})
	if err != nil {
		return fmt.Errorf("GetAvatar %s: %s", id, describe(err))
	}
	a := resp.GetAvatar()
	if a.GetId() != id {
		return fmt.Errorf("GetAvatar %s returned %q", id, a.GetId())
	}
	fmt.Printf("GetAvatar %s: %q, %s, engines %v\n", id, a.GetName(), a.GetAvatarType(), a.GetSupportedApiEngines())
	return nil
}

// expectError calls GetAvatar with a bad id and checks the status code and
// the ErrorInfo (and, for gateway-side validation, the BadRequest detail).
func expectError(client heygenv1.AvatarsServiceClient, id string, code codes.Code, reason, domain string, badRequest bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := client.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: id})
	if err == nil {
		return fmt.Errorf("GetAvatar %q succeeded, want %s", id, code)
	}
	st, _ := status.FromError(err)
	info, violations := details(st)
	fmt.Printf("GetAvatar %q: code=%s reason=%s domain=%s", id, st.Code(), info.GetReason(), info.GetDomain())
	for _, v := range violations {
		fmt.Printf(" field_violation=%s", v.GetField())
	}
	fmt.Println()
	switch {
	case st.Code() != code:
		return fmt.Errorf("GetAvatar %q: code %s, want %s (%s)", id, st.Code(), code, st.Message())
	case info == nil:
		return fmt.Errorf("GetAvatar %q: no google.rpc.ErrorInfo in the status details", id)
	case info.GetReason() != reason || info.GetDomain() != domain:
		return fmt.Errorf("GetAvatar %q: ErrorInfo %s/%s, want %s/%s", id, info.GetDomain(), info.GetReason(), domain, reason)
	case badRequest && len(violations) == 0:
		return fmt.Errorf("GetAvatar %q: no google.rpc.BadRequest field violation", id)
	}
	return nil
}

// details returns the status's ErrorInfo and BadRequest field violations.
func details(st *status.Status) (*errdetails.ErrorInfo, []*errdetails.BadRequest_FieldViolation) {
	var info *errdetails.ErrorInfo
	var violations []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			violations = append(violations, d.GetFieldViolations()...)
		}
	}
	return info, violations
}

// describe renders a call error as code, ErrorInfo reason and message.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	if info, _ := details(st); info != nil {
		return fmt.Sprintf("%s %s: %s", st.Code(), info.GetReason(), st.Message())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline exceeded"
	}
	return fmt.Sprintf("%s: %s", st.Code(), st.Message())
}
