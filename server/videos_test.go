package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// Ids from the demo data: an avatar with a default voice, a public voice,
// and a cloned voice still processing.
const (
	testAvatar          = "Zoe_OutdoorPark_20240523"
	testVoice           = "ffcbbc29b3fc92d5c376a27b249ba6b2"
	testProcessingVoice = "892dfab41524bbc331d5f4d8c0aa6e55"
)

// newVideo is a valid create request.
func newVideo(requestID, text string) *heygenv1.CreateVideoRequest {
	return &heygenv1.CreateVideoRequest{
		RequestId: requestID,
		Visual:    &heygenv1.CreateVideoRequest_Avatar{Avatar: &heygenv1.AvatarVisual{AvatarId: testAvatar}},
		Speech:    &heygenv1.CreateVideoRequest_Script{Script: &heygenv1.Script{Text: text, VoiceId: testVoice}},
		Title:     "test video",
	}
}

const postVideos = "/v3/videos"

// posts is how many POST /v3/videos requests reached the fake.
func posts(h *harness) int { return h.fake.CountMethodPath(http.MethodPost, postVideos) }

// videosAtFake lists the videos the fake holds: how many HeyGen really made.
func videosAtFake(t *testing.T, h *harness) []string {
	t.Helper()
	page, err := h.client.Videos.List(ctx(t), heygen.ListVideosOptions{Limit: heygen.MaxVideoPageLimit})
	if err != nil {
		t.Fatalf("list the fake's videos: %v", err)
	}
	var ids []string
	for _, v := range page.Items {
		ids = append(ids, v.ID)
	}
	return ids
}

// fakeTimes sets the fake's render times and lifts its create limit.
func fakeTimes(pending, processing time.Duration) func(*fakeheygen.Options) {
	return func(o *fakeheygen.Options) {
		o.RenderPending, o.RenderProcessing, o.CreateRate = pending, processing, -1
	}
}

// loseResponses makes HeyGen do the work of the first n creates and then
// lose the answer: the connection is reset after the fake has created the
// video and remembered its Idempotency-Key, exactly as a response lost on
// the network looks to the gateway.
func loseResponses(n int32) func(http.Handler) http.Handler {
	var left atomic.Int32
	left.Store(n)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != postVideos || left.Add(-1) < 0 {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(httptest.NewRecorder(), r) // HeyGen makes the video...
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(http.ErrAbortHandler)
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = conn.Close() // ...and its answer never arrives
		})
	}
}

// replica starts a second gateway on the same HeyGen, as a second replica
// behind the same load balancer.
func replica(t *testing.T, h *harness) heygenv1.VideosServiceClient {
	t.Helper()
	srv, err := server.New(server.Options{Client: h.client, ProbeInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return heygenv1.NewVideosServiceClient(conn)
}

// createUntilDone retries a create the way the proto says callers should:
// on ABORTED, UNAVAILABLE and DEADLINE_EXCEEDED, with the same request.
func createUntilDone(t *testing.T, c heygenv1.VideosServiceClient, req *heygenv1.CreateVideoRequest) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.CreateVideo(ctx(t), req)
		if err == nil {
			return resp.GetVideo().GetId()
		}
		switch status.Code(err) {
		case codes.Aborted, codes.Unavailable, codes.DeadlineExceeded:
		default:
			t.Fatalf("CreateVideo: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("CreateVideo kept failing: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCreateVideoOnceForOneRequestID(t *testing.T) {
	t.Run("a caller's retry gets the same video from the ledger", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true})
		req := newVideo("6a1f3c52-retry", "Hello from the gateway.")
		first, err := h.videos.CreateVideo(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		v := first.GetVideo()
		if v.GetId() == "" || v.GetStatus() != heygenv1.VideoStatus_VIDEO_STATUS_PENDING || v.GetStatusRaw() != "waiting" || v.GetTitle() != "test video" {
			t.Errorf("created video %v, want an id, PENDING (waiting) and the title", v)
		}
		for range 3 {
			again, err := h.videos.CreateVideo(ctx(t), proto.Clone(req).(*heygenv1.CreateVideoRequest))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(again.GetVideo(), v) {
				t.Errorf("a retry returned %v, want %v", again.GetVideo(), v)
			}
		}
		if n := posts(h); n != 1 {
			t.Errorf("HeyGen received %d creates, want 1: retries must be answered by the gateway", n)
		}
		if got := videosAtFake(t, h); !slices.Equal(got, []string{v.GetId()}) {
			t.Errorf("HeyGen holds videos %v, want only %s", got, v.GetId())
		}
	})

	t.Run("concurrent identical creates send one request", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, fake: func(o *fakeheygen.Options) { o.CreateDelay = 200 * time.Millisecond }})
		req := newVideo("concurrent-1", "Said once.")
		ids := make(chan string, 10)
		got := runConcurrently(t, 10, func() error {
			resp, err := h.videos.CreateVideo(ctx(t), proto.Clone(req).(*heygenv1.CreateVideoRequest))
			if err == nil {
				ids <- resp.GetVideo().GetId()
			}
			return err
		})
		close(ids)
		if got[codes.OK] != 10 {
			t.Fatalf("codes %v, want 10 OK", got)
		}
		var distinct []string
		for id := range ids {
			if !slices.Contains(distinct, id) {
				distinct = append(distinct, id)
			}
		}
		if len(distinct) != 1 {
			t.Errorf("10 identical creates returned videos %v, want one", distinct)
		}
		if n := posts(h); n != 1 {
			t.Errorf("HeyGen received %d creates, want 1", n)
		}
	})

	t.Run("two replicas make one video", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, fake: func(o *fakeheygen.Options) { o.CreateDelay = 300 * time.Millisecond }})
		other := replica(t, h)
		req := newVideo("two-replicas", "Said once, on either replica.")
		var a, b string
		var wg sync.WaitGroup
		wg.Go(func() { a = createUntilDone(t, h.videos, proto.Clone(req).(*heygenv1.CreateVideoRequest)) })
		wg.Go(func() { b = createUntilDone(t, other, proto.Clone(req).(*heygenv1.CreateVideoRequest)) })
		wg.Wait()
		if a != b || a == "" {
			t.Errorf("the replicas returned videos %q and %q, want the same one", a, b)
		}
		if got := videosAtFake(t, h); len(got) != 1 {
			t.Errorf("HeyGen made %d videos (%v), want 1", len(got), got)
		}
	})

	t.Run("a lost response is retried by the gateway with the same key", func(t *testing.T) {
		for _, requestID := range []string{"lost-response", ""} {
			t.Run("request_id="+requestID, func(t *testing.T) {
				// Every attempt on its own connection, so that the lost one
				// cannot be resent silently by Go's transport.
				h := setup(t, setupOptions{noBackground: true, noKeepAlives: true, middleware: loseResponses(1)})
				resp, err := h.videos.CreateVideo(ctx(t), newVideo(requestID, "The first answer is lost."))
				if err != nil {
					t.Fatalf("CreateVideo: %v", err)
				}
				var keys []string
				for _, r := range h.fake.Requests() {
					if r.Method == http.MethodPost && r.Path == postVideos {
						keys = append(keys, r.IdempotencyKey)
					}
				}
				if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
					t.Errorf("HeyGen received creates with Idempotency-Keys %q, want two with one key", keys)
				}
				if got := videosAtFake(t, h); !slices.Equal(got, []string{resp.GetVideo().GetId()}) {
					t.Errorf("HeyGen holds videos %v, want only %s", got, resp.GetVideo().GetId())
				}
			})
		}
	})

	t.Run("an attempt that times out while HeyGen creates", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true,
			retry: heygen.RetryPolicy{MaxAttempts: 10, BaseDelay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond},
			fake:  func(o *fakeheygen.Options) { o.CreateDelay = 250 * time.Millisecond }})
		resp, err := h.videos.CreateVideo(ctx(t), newVideo("slow-heygen", "HeyGen takes its time."))
		if err != nil {
			t.Fatalf("CreateVideo: %v", err)
		}
		if n := posts(h); n < 2 {
			t.Errorf("HeyGen received %d creates, want the timed-out one and at least one retry", n)
		}
		if got := videosAtFake(t, h); !slices.Equal(got, []string{resp.GetVideo().GetId()}) {
			t.Errorf("HeyGen holds videos %v, want only %s", got, resp.GetVideo().GetId())
		}
	})

	t.Run("a caller that timed out retries with the same request_id", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, fake: func(o *fakeheygen.Options) { o.CreateDelay = 300 * time.Millisecond }})
		req := newVideo("caller-timeout", "The caller gives up too early.")
		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := h.videos.CreateVideo(short, req)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("CreateVideo with a 50 ms deadline: %v, want DEADLINE_EXCEEDED", err)
		}
		id := createUntilDone(t, h.videos, req)
		if got := videosAtFake(t, h); !slices.Equal(got, []string{id}) {
			t.Errorf("HeyGen holds videos %v, want only %s", got, id)
		}
	})
}

func TestCreateWithoutKeyIsNeverRetried(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, noKeepAlives: true})
	body := &heygen.CreateVideo{Type: "avatar", AvatarID: testAvatar, Script: ptr("No key.")}
	for _, f := range []faults.Fault{
		{Method: http.MethodPost, Path: postVideos, Times: 1, Status: http.StatusServiceUnavailable, Body: fakeheygen.V3Error("internal_error", "down")},
		{Method: http.MethodPost, Path: postVideos, Times: 1, Reset: true},
		{Method: http.MethodPost, Path: postVideos, Times: 1, Status: http.StatusTooManyRequests, Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down")},
	} {
		before := posts(h)
		h.faults.Inject(f)
		if _, err := h.client.Videos.Create(ctx(t), body, ""); err == nil {
			t.Fatalf("Create without a key under %+v succeeded", f)
		}
		if n := posts(h) - before; n != 1 {
			t.Errorf("a create without a key was sent %d times under fault %d/%v/reset=%v, want exactly once", n, f.Status, f.Body, f.Reset)
		}
	}
	// The same failure with a key is retried (so the test above can fail).
	before := posts(h)
	h.faults.Inject(faults.Fault{Method: http.MethodPost, Path: postVideos, Times: 1, Status: http.StatusServiceUnavailable})
	if _, err := h.client.Videos.Create(ctx(t), body, "keyed-1"); err != nil {
		t.Fatal(err)
	}
	if n := posts(h) - before; n != 2 {
		t.Errorf("a keyed create was sent %d times after a 503, want 2", n)
	}
}

func ptr[T any](v T) *T { return &v }

func TestCreateRequestIDReused(t *testing.T) {
	dir := t.TempDir()
	store := tokenStore(t, callersFile(t, dir, map[string]string{"alice": "tok-alice", "bob": "tok-bob"}))
	h := setup(t, setupOptions{noBackground: true, auth: &server.Authenticator{Tokens: store}})
	alice := withToken(ctx(t), "tok-alice")
	first, err := h.videos.CreateVideo(alice, newVideo("order-42", "The first request."))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.videos.CreateVideo(alice, newVideo("order-42", "A different request."))
	st, info, _, _ := statusParts(t, err)
	if st.Code() != codes.FailedPrecondition || info.GetReason() != server.ReasonRequestIDReused || info.GetDomain() != server.GatewayDomain {
		t.Errorf("a reused request_id: %v %s/%s, want FAILED_PRECONDITION %s", st.Code(), info.GetDomain(), info.GetReason(), server.ReasonRequestIDReused)
	}
	var pf *errdetails.PreconditionFailure
	for _, d := range st.Details() {
		if p, ok := d.(*errdetails.PreconditionFailure); ok {
			pf = p
		}
	}
	if len(pf.GetViolations()) != 1 || pf.GetViolations()[0].GetSubject() != "request_id" {
		t.Errorf("PreconditionFailure %v, want one violation for request_id", pf)
	}
	if n := posts(h); n != 1 {
		t.Errorf("HeyGen received %d creates, want 1: the reused request_id must not reach it", n)
	}
	// The same request_id is another caller's own.
	other, err := h.videos.CreateVideo(withToken(ctx(t), "tok-bob"), newVideo("order-42", "A different request."))
	if err != nil {
		t.Fatalf("bob's order-42: %v", err)
	}
	if other.GetVideo().GetId() == first.GetVideo().GetId() {
		t.Error("bob got alice's video for the same request_id")
	}
}

func TestCreateVideoValidation(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true})
	long := strings.Repeat("a", 5001)
	bad := &heygenv1.CreateVideoRequest{
		RequestId: "not a key!",
		Visual: &heygenv1.CreateVideoRequest_Avatar{Avatar: &heygenv1.AvatarVisual{AvatarId: "no_such_avatar",
			Engine: heygenv1.AvatarEngine_AVATAR_ENGINE_AVATAR_V, Expressiveness: heygenv1.Expressiveness_EXPRESSIVENESS_HIGH}},
		Speech: &heygenv1.CreateVideoRequest_Script{Script: &heygenv1.Script{Text: long, VoiceId: "no_such_voice",
			Speed: ptr(2.0), Pitch: ptr(-60.0), Locale: "english please"}},
		AspectRatio: 99,
		Background:  &heygenv1.Background{Background: &heygenv1.Background_ImageUrl{ImageUrl: "http://example.com/bg.png"}},
		CallbackUrl: "ftp://example.com/hook",
	}
	_, err := h.videos.CreateVideo(ctx(t), bad)
	st, info, br, _ := statusParts(t, err)
	if st.Code() != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest {
		t.Fatalf("got %v %s, want INVALID_ARGUMENT %s", st.Code(), info.GetReason(), server.ReasonInvalidRequest)
	}
	var fields []string
	for _, v := range br.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	want := []string{"request_id", "avatar.expressiveness", "script.text", "script.speed", "script.pitch", "script.locale",
		"aspect_ratio", "background.image_url", "callback_url", "avatar.avatar_id", "script.voice_id"}
	if !slices.Equal(fields, want) {
		t.Errorf("field violations %q,\nwant %q", fields, want)
	}

	for name, tc := range map[string]struct {
		req    *heygenv1.CreateVideoRequest
		fields []string
	}{
		"nothing":      {&heygenv1.CreateVideoRequest{}, []string{"visual", "speech"}},
		"blank script": {newVideo("", " \n\t"), []string{"script.text"}},
		"image without voice": {&heygenv1.CreateVideoRequest{
			Visual: &heygenv1.CreateVideoRequest_Image{Image: &heygenv1.ImageVisual{Image: &heygenv1.ImageVisual_Url{Url: "https://example.com/face.png"}}},
			Speech: &heygenv1.CreateVideoRequest_Script{Script: &heygenv1.Script{Text: "hi"}}}, []string{"script.voice_id"}},
		"empty image and audio": {&heygenv1.CreateVideoRequest{
			Visual: &heygenv1.CreateVideoRequest_Image{Image: &heygenv1.ImageVisual{}},
			Speech: &heygenv1.CreateVideoRequest_Audio{Audio: &heygenv1.Audio{}}}, []string{"image", "audio"}},
		"cloned voice still processing": {func() *heygenv1.CreateVideoRequest {
			r := newVideo("", "hi")
			r.GetScript().VoiceId = testProcessingVoice
			return r
		}(), []string{"script.voice_id"}},
		"engine the avatar lacks": {func() *heygenv1.CreateVideoRequest {
			r := newVideo("", "hi")
			r.GetAvatar().AvatarId, r.GetAvatar().Engine = "Zoe_NewsAnchor_2024051409", heygenv1.AvatarEngine_AVATAR_ENGINE_AVATAR_V
			return r
		}(), []string{"avatar.engine"}},
		"bad colour and empty background": {func() *heygenv1.CreateVideoRequest {
			r := newVideo("", "hi")
			r.Background = &heygenv1.Background{Background: &heygenv1.Background_Color{Color: "red"}}
			r.Captions = &heygenv1.Captions{Style: 7}
			return r
		}(), []string{"background.color", "captions.style"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.videos.CreateVideo(ctx(t), tc.req)
			st, _, br, _ := statusParts(t, err)
			var fields []string
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
			if st.Code() != codes.InvalidArgument || !slices.Equal(fields, tc.fields) {
				t.Errorf("got %v with violations %q, want INVALID_ARGUMENT on %q (%s)", st.Code(), fields, tc.fields, st.Message())
			}
		})
	}
	if n := posts(h); n != 0 {
		t.Errorf("HeyGen received %d creates for invalid requests, want none", n)
	}
}

func TestCreateVideoChecksTheCatalogueWithoutCallingHeyGen(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, withCatalogue: true})
	// The first call crawls the catalogue; the second must find both ids in it.
	if _, err := h.videos.CreateVideo(ctx(t), newVideo("warm-up", "Warm up.")); err != nil {
		t.Fatal(err)
	}
	before := h.fake.RequestCount()
	req := newVideo("cached", "From the catalogue.")
	req.GetAvatar().Engine = heygenv1.AvatarEngine_AVATAR_ENGINE_AVATAR_V
	req.GetScript().Speed, req.GetScript().Pitch, req.GetScript().Locale = ptr(1.2), ptr(-3.0), "en-US"
	req.AspectRatio, req.Resolution, req.OutputFormat, req.Fit = heygenv1.AspectRatio_ASPECT_RATIO_9_16, heygenv1.Resolution_RESOLUTION_1080P,
		heygenv1.OutputFormat_OUTPUT_FORMAT_WEBM, heygenv1.Fit_FIT_COVER
	req.Background = &heygenv1.Background{Background: &heygenv1.Background_Color{Color: "#0a0b0c"}}
	req.Captions = &heygenv1.Captions{Style: heygenv1.CaptionStyle_CAPTION_STYLE_DEFAULT}
	req.CallbackUrl, req.CallbackId = "https://example.com/hooks/video", "order-7"
	if _, err := h.videos.CreateVideo(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	reqs := h.fake.Requests()[before:]
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost {
		t.Fatalf("HeyGen received %d requests, want only the create", len(reqs))
	}
	for _, want := range []string{`"engine":{"type":"avatar_v"}`, `"voice_settings":{"speed":1.2,"pitch":-3,"locale":"en-US"}`,
		`"aspect_ratio":"9:16"`, `"resolution":"1080p"`, `"output_format":"webm"`, `"fit":"cover"`,
		`"background":{"type":"color","value":"#0a0b0c"}`, `"caption":{"file_format":"srt","style":"default"}`,
		`"callback_url":"https://example.com/hooks/video"`, `"callback_id":"order-7"`} {
		if !strings.Contains(string(reqs[0].Body), want) {
			t.Errorf("the body sent to HeyGen lacks %s:\n%s", want, reqs[0].Body)
		}
	}
}

func TestCreateCooldown(t *testing.T) {
	metrics := server.NewMetrics()
	clock := newFakeClock()
	h := setup(t, setupOptions{noBackground: true, metrics: metrics, videos: server.VideoOptions{Now: clock.Now}})
	recorded, err := h.videos.CreateVideo(ctx(t), newVideo("before-the-429", "Made before."))
	if err != nil {
		t.Fatal(err)
	}
	h.faults.Inject(faults.Fault{Method: http.MethodPost, Path: postVideos, Times: 1, Status: http.StatusTooManyRequests,
		Header: map[string]string{"Retry-After": "30"}, Body: fakeheygen.V3Error("rate_limit_exceeded", "Too many video creations")})

	_, err = h.videos.CreateVideo(ctx(t), newVideo("first", "Rate-limited."))
	st, info, _, retry := statusParts(t, err)
	if st.Code() != codes.ResourceExhausted || info.GetReason() != "HEYGEN_RATE_LIMITED" || retry.GetRetryDelay().AsDuration() != 30*time.Second {
		t.Fatalf("the rate-limited create: %v %s retry %v, want RESOURCE_EXHAUSTED HEYGEN_RATE_LIMITED with RetryInfo 30s", st.Code(), info.GetReason(), retry)
	}
	if n := posts(h); n != 2 {
		t.Fatalf("HeyGen received %d creates, want 2: the 429 must not be retried", n)
	}
	clock.Advance(10 * time.Second)
	for i, req := range []*heygenv1.CreateVideoRequest{newVideo("first", "Rate-limited."), newVideo("second", "Another."), newVideo("", "No key.")} {
		_, err := h.videos.CreateVideo(ctx(t), req)
		st, info, _, retry := statusParts(t, err)
		if st.Code() != codes.ResourceExhausted || info.GetReason() != server.ReasonCreateCooldown || info.GetDomain() != server.GatewayDomain ||
			retry.GetRetryDelay().AsDuration() != 20*time.Second {
			t.Errorf("create %d during the cool-down: %v %s/%s retry %v, want RESOURCE_EXHAUSTED %s with RetryInfo 20s",
				i, st.Code(), info.GetDomain(), info.GetReason(), retry, server.ReasonCreateCooldown)
		}
	}
	if n := posts(h); n != 2 {
		t.Errorf("HeyGen received %d creates, want 2: nothing may reach it during the cool-down", n)
	}
	// A request_id whose video this replica already has costs HeyGen nothing.
	again, err := h.videos.CreateVideo(ctx(t), newVideo("before-the-429", "Made before."))
	if err != nil || again.GetVideo().GetId() != recorded.GetVideo().GetId() {
		t.Errorf("a recorded request_id during the cool-down: %v, %v; want its video", again, err)
	}
	for _, want := range []string{"heygen_grpc_video_create_cooldown_seconds 20", "heygen_grpc_video_create_cooldown_refused_total 3"} {
		if out := scrape(t, metrics); !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	clock.Advance(20 * time.Second)
	if _, err := h.videos.CreateVideo(ctx(t), newVideo("first", "Rate-limited.")); err != nil {
		t.Fatalf("after the cool-down: %v", err)
	}
	if n := posts(h); n != 3 {
		t.Errorf("HeyGen received %d creates, want 3", n)
	}
	if out := scrape(t, metrics); !strings.Contains(out, "heygen_grpc_video_create_cooldown_seconds 0") {
		t.Error("the cool-down gauge is not back to 0")
	}
}

func TestCreateLimits(t *testing.T) {
	t.Run("the per-caller create limit", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, videos: server.VideoOptions{
			CreateRateLimits: server.RateLimits{Default: server.Limit{PerSecond: 0.001, Burst: 1}}}})
		if _, err := h.videos.CreateVideo(ctx(t), newVideo("", "One.")); err != nil {
			t.Fatal(err)
		}
		_, err := h.videos.CreateVideo(ctx(t), newVideo("", "Two."))
		st, info, _, retry := statusParts(t, err)
		if st.Code() != codes.ResourceExhausted || info.GetReason() != server.ReasonCallerRateLimited || info.GetMetadata()["limit"] != "video_create" || retry == nil {
			t.Errorf("over the create limit: %v %s %v, want RESOURCE_EXHAUSTED CALLER_RATE_LIMITED limit=video_create with RetryInfo", st.Code(), info.GetReason(), info.GetMetadata())
		}
		// Reads are not limited by it.
		if _, err := h.videos.ListVideos(ctx(t), &heygenv1.ListVideosRequest{}); err != nil {
			t.Errorf("ListVideos: %v", err)
		}
		if n := posts(h); n != 1 {
			t.Errorf("HeyGen received %d creates, want 1", n)
		}
	})
	t.Run("creates in flight", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, videos: server.VideoOptions{MaxConcurrentCreates: 1},
			fake: func(o *fakeheygen.Options) { o.CreateDelay = 300 * time.Millisecond }})
		var n atomic.Int32
		got := runConcurrently(t, 2, func() error {
			_, err := h.videos.CreateVideo(ctx(t), newVideo(fmt.Sprint("slot-", n.Add(1)), "Slow."))
			if status.Code(err) == codes.ResourceExhausted {
				if _, info, _, _ := statusParts(t, err); info.GetReason() != server.ReasonCreateConcurrency {
					t.Errorf("reason %s, want %s", info.GetReason(), server.ReasonCreateConcurrency)
				}
			}
			return err
		})
		if got[codes.OK] != 1 || got[codes.ResourceExhausted] != 1 {
			t.Errorf("codes %v, want one OK and one RESOURCE_EXHAUSTED", got)
		}
	})
	t.Run("insufficient credit", func(t *testing.T) {
		metrics := server.NewMetrics()
		h := setup(t, setupOptions{noBackground: true, metrics: metrics})
		h.faults.Inject(faults.Fault{Method: http.MethodPost, Path: postVideos, Times: 1, Status: http.StatusPaymentRequired,
			Body: fakeheygen.V3Error("insufficient_credit", "Insufficient credit")})
		_, err := h.videos.CreateVideo(ctx(t), newVideo("broke", "No money."))
		st, info, _, _ := statusParts(t, err)
		if st.Code() != codes.FailedPrecondition || info.GetReason() != "HEYGEN_INSUFFICIENT_CREDIT" {
			t.Errorf("got %v %s, want FAILED_PRECONDITION HEYGEN_INSUFFICIENT_CREDIT", st.Code(), info.GetReason())
		}
		if !scrapeUntil(t, metrics, `heygen_grpc_caller_rpcs_total{caller="anonymous",grpc_code="FailedPrecondition",grpc_method="CreateVideo"} 1`) {
			t.Error("the refused create is not counted in the usage metrics")
		}
		if strings.Contains(scrape(t, metrics), `heygen_grpc_caller_videos_created_total{caller="anonymous"}`) {
			t.Error("a refused create was counted as a video created")
		}
	})
}

// watchAll reads a WatchVideo stream to its end.
func watchAll(ctx context.Context, c heygenv1.VideosServiceClient, id string) ([]*heygenv1.Video, error) {
	stream, err := c.WatchVideo(ctx, &heygenv1.WatchVideoRequest{VideoId: id})
	if err != nil {
		return nil, err
	}
	var got []*heygenv1.Video
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, resp.GetVideo())
	}
}

func statuses(vs []*heygenv1.Video) []heygenv1.VideoStatus {
	var out []heygenv1.VideoStatus
	for _, v := range vs {
		out = append(out, v.GetStatus())
	}
	return out
}

var (
	pending    = heygenv1.VideoStatus_VIDEO_STATUS_PENDING
	processing = heygenv1.VideoStatus_VIDEO_STATUS_PROCESSING
	completed  = heygenv1.VideoStatus_VIDEO_STATUS_COMPLETED
	failed     = heygenv1.VideoStatus_VIDEO_STATUS_FAILED
)

func TestWatchVideoToTheEnd(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, fake: fakeTimes(300*time.Millisecond, 400*time.Millisecond),
		videos: server.VideoOptions{PollInterval: 25 * time.Millisecond}})
	for _, tc := range []struct {
		script string
		want   []heygenv1.VideoStatus
	}{
		{"A render that works.", []heygenv1.VideoStatus{pending, processing, completed}},
		{"A render that does not: " + fakeheygen.FailRender, []heygenv1.VideoStatus{pending, processing, failed}},
	} {
		created, err := h.videos.CreateVideo(ctx(t), newVideo("", tc.script))
		if err != nil {
			t.Fatal(err)
		}
		got, err := watchAll(ctx(t), h.videos, created.GetVideo().GetId())
		if err != nil {
			t.Fatalf("WatchVideo: %v", err)
		}
		if !slices.Equal(statuses(got), tc.want) {
			t.Fatalf("statuses seen %v, want %v", statuses(got), tc.want)
		}
		last := got[len(got)-1]
		switch last.GetStatus() {
		case completed:
			if last.GetVideoUrl() == "" || last.GetThumbnailUrl() == "" || last.GetDuration() == nil || last.GetCompleteTime() == nil ||
				last.GetUrlExpireTime() == nil || last.GetUrlExpireTime().AsTime().Before(time.Now().Add(6*24*time.Hour)) {
				t.Errorf("the completed video lacks its URLs, duration, completion or URL expiry: %v", last)
			}
		case failed:
			if last.GetFailureCode() != fakeheygen.RenderFailureCode || last.GetFailureMessage() == "" {
				t.Errorf("the failed video lacks its failure code and message: %v", last)
			}
		}
	}
	// A finished video gives one message and the end.
	page, err := h.videos.ListVideos(ctx(t), &heygenv1.ListVideosRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := watchAll(ctx(t), h.videos, page.GetVideos()[0].GetId())
	if err != nil || len(got) != 1 || !slices.Contains([]heygenv1.VideoStatus{completed, failed}, got[0].GetStatus()) {
		t.Errorf("watching a finished video: %v, %v; want one final message", statuses(got), err)
	}
}

func TestWatchManyVideosSharesOnePoller(t *testing.T) {
	const (
		videos   = 100
		interval = 50 * time.Millisecond
	)
	metrics := server.NewMetrics()
	// The fake's request log cuts long queries: count the ids here.
	var maxIDs atomic.Int64
	countIDs := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v3/videos/statuses" {
				n := int64(len(strings.Split(r.URL.Query().Get("video_ids"), ",")))
				for cur := maxIDs.Load(); n > cur; cur = maxIDs.Load() {
					if maxIDs.CompareAndSwap(cur, n) {
						break
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	h := setup(t, setupOptions{noBackground: true, metrics: metrics, middleware: countIDs, fake: fakeTimes(1500*time.Millisecond, 1500*time.Millisecond),
		videos: server.VideoOptions{PollInterval: interval, MaxWatchesPerCaller: -1, MaxConcurrentCreates: -1}})
	ids := make([]string, videos)
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			for i := w; i < videos; i += 10 {
				resp, err := h.videos.CreateVideo(ctx(t), newVideo("", fmt.Sprintf("Video number %d.", i)))
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = resp.GetVideo().GetId()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// A second connection: a connection carries at most 256 streams.
	conn2, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn2.Close() }()
	clients := []heygenv1.VideosServiceClient{h.videos, heygenv1.NewVideosServiceClient(conn2)}

	before := h.fake.RequestCount()
	start := time.Now()
	// 100 callers, each watching two videos: every video has two watchers.
	for caller := range videos {
		for _, i := range []int{caller, (caller + 1) % videos} {
			wg.Go(func() {
				got, err := watchAll(ctx(t), clients[caller%2], ids[i])
				if err != nil {
					t.Errorf("watch %s: %v", ids[i], err)
					return
				}
				if !slices.Equal(statuses(got), []heygenv1.VideoStatus{pending, processing, completed}) {
					t.Errorf("watch %s saw %v, want every transition", ids[i], statuses(got))
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	var statusCalls, fetches int
	for _, r := range h.fake.Requests()[before:] {
		switch {
		case r.Path == "/v3/videos/statuses":
			statusCalls++
		case strings.HasPrefix(r.Path, "/v3/videos/"):
			fetches++
		}
	}
	ticks := int(elapsed/interval) + 1
	t.Logf("%d watchers of %d videos for %s: %d statuses calls (up to %d ids each) in %d ticks, %d video fetches",
		2*videos, videos, elapsed.Round(time.Millisecond), statusCalls, maxIDs.Load(), ticks, fetches)
	if statusCalls > ticks {
		t.Errorf("%d statuses calls in %d poll intervals, want at most one per interval", statusCalls, ticks)
	}
	// Videos whose status changed at different ticks back off out of step,
	// so not every call carries all of them; but they are polled together.
	if n := maxIDs.Load(); n < videos/2 {
		t.Errorf("statuses calls carried at most %d ids, want the %d videos polled together", n, videos)
	}
	// Each video: fetched when first watched, and after each of its two changes.
	if fetches > 3*videos {
		t.Errorf("%d video fetches for %d videos, want at most %d (each state once, whatever the watchers)", fetches, videos, 3*videos)
	}
	if !scrapeUntil(t, metrics, "heygen_grpc_watched_videos 0") || !strings.Contains(scrape(t, metrics), "heygen_grpc_watch_streams 0") {
		t.Error("the watch gauges are not back to 0")
	}
}

func TestWatchHeartbeat(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, fake: fakeTimes(time.Hour, time.Hour),
		videos: server.VideoOptions{PollInterval: 20 * time.Millisecond, Heartbeat: 50 * time.Millisecond}})
	created, err := h.videos.CreateVideo(ctx(t), newVideo("", "Pending for an hour."))
	if err != nil {
		t.Fatal(err)
	}
	before := h.fake.RequestCount()
	c, cancel := context.WithTimeout(ctx(t), 600*time.Millisecond)
	defer cancel()
	got, err := watchAll(c, h.videos, created.GetVideo().GetId())
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("watch: %v, want DEADLINE_EXCEEDED", err)
	}
	if len(got) < 5 {
		t.Errorf("%d messages in 600 ms with a 50 ms heartbeat, want at least 5", len(got))
	}
	for _, v := range got[1:] {
		if !proto.Equal(v, got[0]) {
			t.Errorf("a heartbeat differs from the state: %v vs %v", v, got[0])
		}
	}
	fetches := 0
	for _, r := range h.fake.Requests()[before:] {
		if r.Path != "/v3/videos/statuses" {
			fetches++
		}
	}
	if fetches != 1 {
		t.Errorf("%d video fetches, want 1: heartbeats must not call HeyGen", fetches)
	}
}

// pollerRunning reports whether a watch poller goroutine exists.
func pollerRunning() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Contains(string(buf[:n]), "server.(*watchHub).run")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func TestWatchLeavesNothingBehind(t *testing.T) {
	metrics := server.NewMetrics()
	h := setup(t, setupOptions{noBackground: true, metrics: metrics, fake: fakeTimes(time.Hour, time.Hour),
		videos: server.VideoOptions{PollInterval: 20 * time.Millisecond}})
	created, err := h.videos.CreateVideo(ctx(t), newVideo("", "Pending for an hour."))
	if err != nil {
		t.Fatal(err)
	}
	for name, end := range map[string]func(context.Context, context.CancelFunc) error{
		"deadline passes": func(c context.Context, _ context.CancelFunc) error {
			c, cancel := context.WithTimeout(c, 200*time.Millisecond)
			defer cancel()
			_, err := watchAll(c, h.videos, created.GetVideo().GetId())
			if status.Code(err) != codes.DeadlineExceeded {
				return fmt.Errorf("watch: %w, want DEADLINE_EXCEEDED", err)
			}
			return nil
		},
		"caller disconnects": func(c context.Context, cancel context.CancelFunc) error {
			stream, err := h.videos.WatchVideo(c, &heygenv1.WatchVideoRequest{VideoId: created.GetVideo().GetId()})
			if err != nil {
				return err
			}
			if _, err := stream.Recv(); err != nil {
				return err
			}
			if !pollerRunning() {
				return errors.New("no poller runs while a video is watched")
			}
			cancel()
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, cancel := context.WithCancel(ctx(t))
			defer cancel()
			if err := end(c, cancel); err != nil {
				t.Fatal(err)
			}
			waitNoPoller(t)
			if !scrapeUntil(t, metrics, "heygen_grpc_watch_streams 0") || !strings.Contains(scrape(t, metrics), "heygen_grpc_watched_videos 0") {
				t.Error("the watch gauges are not back to 0")
			}
			polls := h.fake.CountPath("/v3/videos/statuses")
			time.Sleep(100 * time.Millisecond) // five poll intervals
			if n := h.fake.CountPath("/v3/videos/statuses"); n != polls {
				t.Errorf("%d statuses polls after the watcher left, want none", n-polls)
			}
		})
	}
}

func TestWatchHonoursRetryAfter(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, fake: fakeTimes(time.Hour, time.Hour),
		videos: server.VideoOptions{PollInterval: 20 * time.Millisecond}})
	created, err := h.videos.CreateVideo(ctx(t), newVideo("", "Pending for an hour."))
	if err != nil {
		t.Fatal(err)
	}
	h.faults.Inject(faults.Fault{Path: "/v3/videos/statuses", Times: 1, Status: http.StatusTooManyRequests,
		Header: map[string]string{"Retry-After": "1"}, Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down")})
	c, cancel := context.WithTimeout(ctx(t), 1500*time.Millisecond)
	defer cancel()
	_, _ = watchAll(c, h.videos, created.GetVideo().GetId())
	var times []time.Time
	for _, r := range h.fake.Requests() {
		if r.Path == "/v3/videos/statuses" {
			times = append(times, r.Time)
		}
	}
	if len(times) < 2 {
		t.Fatalf("%d statuses polls, want the rate-limited one and polls after its Retry-After", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("the poll after a 429 with Retry-After: 1 came %s later, want at least 1s", gap)
	}
}

func TestWatchErrorsAndLimits(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, fake: fakeTimes(time.Hour, time.Hour),
		videos: server.VideoOptions{PollInterval: 20 * time.Millisecond, MaxWatchesPerCaller: 2}})
	_, err := watchAll(ctx(t), h.videos, "no_such_video")
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.NotFound || info.GetReason() != "HEYGEN_NOT_FOUND" {
		t.Errorf("watching an unknown video: %v %s, want NOT_FOUND", st.Code(), info.GetReason())
	}
	_, err = watchAll(ctx(t), h.videos, "../x")
	if st, _, _, _ := statusParts(t, err); st.Code() != codes.InvalidArgument {
		t.Errorf("watching a malformed id: %v, want INVALID_ARGUMENT", st.Code())
	}

	created, err := h.videos.CreateVideo(ctx(t), newVideo("", "Watched, then deleted."))
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetVideo().GetId()
	streams := make([]grpc.ServerStreamingClient[heygenv1.WatchVideoResponse], 2)
	for i := range streams {
		if streams[i], err = h.videos.WatchVideo(ctx(t), &heygenv1.WatchVideoRequest{VideoId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := streams[i].Recv(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = watchAll(ctx(t), h.videos, id)
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.ResourceExhausted || info.GetReason() != server.ReasonWatchLimit || info.GetMetadata()["scope"] != "caller" {
		t.Errorf("a third watch: %v %s %v, want RESOURCE_EXHAUSTED WATCH_LIMIT scope=caller", st.Code(), info.GetReason(), info.GetMetadata())
	}
	if _, err := h.videos.DeleteVideo(ctx(t), &heygenv1.DeleteVideoRequest{VideoId: id}); err != nil {
		t.Fatal(err)
	}
	for i, s := range streams {
		for {
			_, err := s.Recv()
			if err == nil {
				continue // a heartbeat
			}
			if st, _, _, _ := statusParts(t, err); st.Code() != codes.NotFound {
				t.Errorf("watcher %d of a deleted video ended with %v, want NOT_FOUND", i, st.Code())
			}
			break
		}
	}
}

func TestWatchNeedsCredentials(t *testing.T) {
	store := tokenStore(t, callersFile(t, t.TempDir(), map[string]string{"alice": "tok-alice"}))
	h := setup(t, setupOptions{noBackground: true, auth: &server.Authenticator{Tokens: store}})
	_, err := watchAll(ctx(t), h.videos, "any_video")
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.Unauthenticated || info.GetReason() != server.ReasonCallerUnauthenticated {
		t.Errorf("WatchVideo without a token: %v %s, want UNAUTHENTICATED", st.Code(), info.GetReason())
	}
	if n := h.fake.RequestCount(); n != 0 {
		t.Errorf("HeyGen received %d requests for an unauthenticated watch, want none", n)
	}
}

func TestGetListDeleteVideo(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, fake: func(o *fakeheygen.Options) { o.Videos = fakeheygen.DemoVideos() }})
	page, err := h.videos.ListVideos(ctx(t), &heygenv1.ListVideosRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	pages := 0
	for {
		pages++
		for _, v := range page.GetVideos() {
			if seen[v.GetId()] {
				t.Errorf("%s on two pages", v.GetId())
			}
			seen[v.GetId()] = true
		}
		if page.GetNextPageToken() == "" {
			break
		}
		if _, err := h.videos.ListVideos(ctx(t), &heygenv1.ListVideosRequest{PageSize: 2, PageToken: page.GetNextPageToken(), Title: "x"}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("a page token with another filter: %v, want INVALID_ARGUMENT", err)
		}
		if page, err = h.videos.ListVideos(ctx(t), &heygenv1.ListVideosRequest{PageSize: 2, PageToken: page.GetNextPageToken()}); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != len(fakeheygen.DemoVideos()) || pages != 3 {
		t.Errorf("%d videos on %d pages, want %d on 3", len(seen), pages, len(fakeheygen.DemoVideos()))
	}
	onboarding, err := h.videos.ListVideos(ctx(t), &heygenv1.ListVideosRequest{FolderId: "onboarding"})
	if err != nil || len(onboarding.GetVideos()) != 3 {
		t.Errorf("folder onboarding: %d videos, %v; want 3", len(onboarding.GetVideos()), err)
	}

	id := fakeheygen.DemoVideos()[2].ID // the failed one
	got, err := h.videos.GetVideo(ctx(t), &heygenv1.GetVideoRequest{VideoId: id})
	if err != nil {
		t.Fatal(err)
	}
	if v := got.GetVideo(); v.GetStatus() != failed || v.GetFailureCode() == "" || v.GetFolderId() != "onboarding" || v.GetCreateTime() == nil {
		t.Errorf("GetVideo %s: %v", id, v)
	}

	// Presigned URLs in SigV4 form: the earliest expiry of the three.
	h.faults.Inject(faults.Fault{Path: "/v3/videos/signed_video", Times: 1, Body: `{"data":{"id":"signed_video","status":"completed",` +
		`"video_url":"https://s3.example.com/v.mp4?X-Amz-Date=20260102T030405Z&X-Amz-Expires=3600&X-Amz-Signature=abc",` +
		`"subtitle_url":"https://s3.example.com/v.srt?X-Amz-Date=20260102T030405Z&X-Amz-Expires=600",` +
		`"captioned_video_url":"https://cdn.example.com/c.mp4?Expires=1767326645&Signature=x","duration":12.5,"created_at":1767322800,"completed_at":1767323100}}`})
	signed, err := h.videos.GetVideo(ctx(t), &heygenv1.GetVideoRequest{VideoId: "signed_video"})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 2, 3, 14, 5, 0, time.UTC) // the subtitle's: 03:04:05 + 600 s
	if v := signed.GetVideo(); !v.GetUrlExpireTime().AsTime().Equal(want) || v.GetDuration().AsDuration() != 12500*time.Millisecond {
		t.Errorf("url_expire_time %v and duration %v, want %v and 12.5s", v.GetUrlExpireTime().AsTime(), v.GetDuration().AsDuration(), want)
	}

	if _, err := h.videos.DeleteVideo(ctx(t), &heygenv1.DeleteVideoRequest{VideoId: id}); err != nil {
		t.Fatal(err)
	}
	_, err = h.videos.GetVideo(ctx(t), &heygenv1.GetVideoRequest{VideoId: id})
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.NotFound || info.GetReason() != "HEYGEN_NOT_FOUND" {
		t.Errorf("GetVideo after DeleteVideo: %v %s, want NOT_FOUND", st.Code(), info.GetReason())
	}
	h.faults.Inject(faults.Fault{Method: http.MethodDelete, Path: "/v3/videos/*", Times: 1, Status: http.StatusServiceUnavailable})
	before := h.fake.CountMethodPath(http.MethodDelete, "/v3/videos/"+fakeheygen.DemoVideos()[0].ID)
	_, err = h.videos.DeleteVideo(ctx(t), &heygenv1.DeleteVideoRequest{VideoId: fakeheygen.DemoVideos()[0].ID})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("DeleteVideo on a 503: %v, want UNAVAILABLE", err)
	}
	if n := h.fake.CountMethodPath(http.MethodDelete, "/v3/videos/"+fakeheygen.DemoVideos()[0].ID) - before; n != 1 {
		t.Errorf("DeleteVideo was sent %d times, want once", n)
	}
}

func TestWatchEndsAtShutdown(t *testing.T) {
	h := setup(t, setupOptions{noBackground: true, fake: fakeTimes(time.Hour, time.Hour),
		videos: server.VideoOptions{PollInterval: 20 * time.Millisecond}})
	created, err := h.videos.CreateVideo(ctx(t), newVideo("", "Pending for an hour."))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := h.videos.WatchVideo(ctx(t), &heygenv1.WatchVideoRequest{VideoId: created.GetVideo().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if graceful := h.srv.Shutdown(sctx, 0); !graceful {
		t.Error("the shutdown waited for the watch stream until its timeout")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the shutdown took %s with a watch stream open", took)
	}
	_, err = stream.Recv()
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.Unavailable || info.GetReason() != server.ReasonShuttingDown {
		t.Errorf("the watch ended with %v %s, want UNAVAILABLE %s", st.Code(), info.GetReason(), server.ReasonShuttingDown)
	}
	waitNoPoller(t)
}

// waitNoPoller fails the test unless the watch poller is gone within 2 s.
func waitNoPoller(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for pollerRunning() {
		if time.Now().After(deadline) {
			t.Fatal("the watch poller still runs after its last watcher left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestVideosHealthFollowsHeyGen(t *testing.T) {
	h := setup(t, setupOptions{})
	waitHealth(t, h, server.VideosServiceName, healthpb.HealthCheckResponse_SERVING)
	h.fake.SetAPIKey("another-key") // HeyGen now rejects the gateway's key
	h.srv.ProbeNow()
	waitHealth(t, h, server.VideosServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
}
