package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/internal/watch"
	"github.com/heygen-grpc/heygen-grpc/server"
)

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// callersFile writes a callers file for the given tokens and returns its path.
func callersFile(t *testing.T, dir string, tokens map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test callers\n\n")
	for name, tok := range tokens {
		b.WriteString(name + ": " + server.HashToken(tok) + "\n")
	}
	path := filepath.Join(dir, "callers")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// tokenStore loads a callers file into a TokenStore, as the binary does.
func tokenStore(t *testing.T, path string) *server.TokenStore {
	t.Helper()
	store := server.NewTokenStore()
	if err := store.Apply(readFile(t, path)); err != nil {
		t.Fatal(err)
	}
	return store
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTokenAuth(t *testing.T) {
	dir := t.TempDir()
	alice, _, err := server.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	bob, _, _ := server.NewToken()
	path := callersFile(t, dir, map[string]string{"alice": alice})
	// The callers file is watched as the binary watches it.
	store := server.NewTokenStore()
	watchLog := &syncBuffer{}
	files := &watch.Files{What: "the callers file", Paths: []string{path}, Apply: func(c [][]byte) error { return store.Apply(c[0]) },
		Log: slog.New(slog.NewJSONHandler(watchLog, nil))}
	if err := files.Load(); err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { files.Run(watchCtx, 20*time.Millisecond); close(watchDone) }()
	defer func() { stopWatch(); <-watchDone }()
	// No background health probe: every request the fake counts is this test's.
	h := setup(t, setupOptions{noBackground: true, auth: &server.Authenticator{Tokens: store}, reflection: true})

	req := &heygenv1.ListAvatarsRequest{PageSize: 1}
	for name, c := range map[string]context.Context{
		"missing":                ctx(t),
		"wrong":                  withToken(ctx(t), "hgt_not-a-real-token"),
		"malformed":              metadata.AppendToOutgoingContext(ctx(t), "authorization", "Basic abc"),
		"bob not yet configured": withToken(ctx(t), bob),
	} {
		_, err := h.avatars.ListAvatars(c, req)
		st, info, _, _ := statusParts(t, err)
		if st.Code() != codes.Unauthenticated || info.GetReason() != server.ReasonCallerUnauthenticated || info.GetDomain() != server.GatewayDomain {
			t.Errorf("%s token: %v %v, want UNAUTHENTICATED CALLER_UNAUTHENTICATED", name, st.Code(), info)
		}
	}
	if h.fake.RequestCount() != 0 {
		t.Fatal("unauthenticated calls reached HeyGen")
	}
	if _, err := h.avatars.ListAvatars(withToken(ctx(t), alice), req); err != nil {
		t.Fatalf("alice's token: %v", err)
	}
	// Health stays open.
	if _, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health without a token: %v", err)
	}
	// Reload: bob is added, alice removed.
	callersFile(t, dir, map[string]string{"bob": bob})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := h.avatars.ListAvatars(withToken(ctx(t), bob), req)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob still refused after the callers file changed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.avatars.ListAvatars(withToken(ctx(t), alice), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("alice after removal: %v, want UNAUTHENTICATED", err)
	}
	// A broken file keeps the previous callers. It is replaced whole, as
	// Kubernetes does: written in place, the watcher could read it empty
	// (a valid file with no callers) between the truncation and the write.
	broken := filepath.Join(dir, "callers.tmp")
	if err := os.WriteFile(broken, []byte("garbage line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, filepath.Join(dir, "callers")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(watchLog.String(), "cannot reload the callers file") {
		if time.Now().After(deadline) {
			t.Fatal("the broken callers file was never read")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.avatars.ListAvatars(withToken(ctx(t), bob), req); err != nil {
		t.Fatalf("a broken callers file locked bob out: %v\n%s", err, watchLog.String())
	}
	if !strings.Contains(h.logs.String(), `"caller":"bob"`) {
		t.Error("the caller's name is not in the RPC log line")
	}
	for _, tok := range []string{alice, bob} {
		if strings.Contains(h.logs.String(), tok) {
			t.Error("a caller token appears in the logs")
		}
	}
}

func TestTokenStoreRejectsBadFiles(t *testing.T) {
	for name, content := range map[string]string{
		"no hash":       "alice:\n",
		"bad hex":       "alice: sha256:xyz\n",
		"short":         "alice: sha256:abcd\n",
		"no prefix":     "alice: " + strings.Repeat("a", 64) + "\n",
		"bad name":      "al ice: " + server.HashToken("x") + "\n",
		"duplicate":     "a: " + server.HashToken("x") + "\na: " + server.HashToken("y") + "\n",
		"a plain token": "alice: hgt_abcdef\n",
	} {
		err := server.NewTokenStore().Apply([]byte(content))
		if err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%s: got %v, want an error naming the line", name, err)
		}
	}
}

func TestPerCallerRateLimits(t *testing.T) {
	alice, _, _ := server.NewToken()
	bob, _, _ := server.NewToken()
	store := tokenStore(t, callersFile(t, t.TempDir(), map[string]string{"alice": alice, "bob": bob}))
	metrics := server.NewMetrics()
	// No background health probe: every request the fake counts is this test's.
	h := setup(t, setupOptions{noBackground: true, withCatalogue: true, metrics: metrics, auth: &server.Authenticator{Tokens: store},
		rateLimits: server.RateLimits{Default: server.Limit{PerSecond: 1000, Burst: 1000}, Callers: map[string]server.Limit{"alice": {PerSecond: 0.5, Burst: 2}}}})
	req := &heygenv1.ListAvatarsRequest{PageSize: 1}
	for i := range 2 {
		if _, err := h.avatars.ListAvatars(withToken(ctx(t), alice), req); err != nil {
			t.Fatalf("alice call %d within burst: %v", i, err)
		}
	}
	before := h.fake.RequestCount()
	_, err := h.avatars.GetAvatar(withToken(ctx(t), alice), &heygenv1.GetAvatarRequest{AvatarId: "not_in_catalogue_x"})
	st, info, _, retry := statusParts(t, err)
	if st.Code() != codes.ResourceExhausted || info.GetReason() != server.ReasonCallerRateLimited || info.GetDomain() != server.GatewayDomain {
		t.Fatalf("alice over her limit: %v %v", st.Code(), info)
	}
	var quota *errdetails.QuotaFailure
	for _, d := range st.Details() {
		if q, ok := d.(*errdetails.QuotaFailure); ok {
			quota = q
		}
	}
	if quota == nil || quota.GetViolations()[0].GetSubject() != "alice" {
		t.Errorf("QuotaFailure = %v, want subject alice", quota)
	}
	if d := retry.GetRetryDelay().AsDuration(); d <= 0 || d > 2*time.Second {
		t.Errorf("RetryInfo delay = %v, want about the 2 s until alice's next token", d)
	}
	if h.fake.RequestCount() != before {
		t.Error("a rate-limited call reached HeyGen")
	}
	for i := range 20 {
		if _, err := h.avatars.ListAvatars(withToken(ctx(t), bob), req); err != nil {
			t.Fatalf("bob call %d while alice is throttled: %v", i, err)
		}
	}
	if !strings.Contains(scrape(t, metrics), `heygen_grpc_rate_limited_total{caller="alice"} 1`) {
		t.Error("the rate-limited call is not counted for alice")
	}
	// RPCs are counted as their handlers return, which can be a moment
	// after the client has its answer.
	if !scrapeUntil(t, metrics, `heygen_grpc_caller_rpcs_total{caller="bob",grpc_code="OK",grpc_method="ListAvatars"} 20`) {
		t.Error("bob's calls are not counted by caller")
	}
}

// scrapeUntil scrapes m until its output contains want, for up to 5 s.
func scrapeUntil(t *testing.T, m *server.Metrics, want string) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(scrape(t, m), want) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func scrape(t *testing.T, m *server.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestLoadShedding(t *testing.T) {
	t.Run("calls in flight", func(t *testing.T) {
		// No background health probe: every request the fake counts is this test's.
		h := setup(t, setupOptions{noBackground: true, maxInFlight: 2})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Delay: 500 * time.Millisecond})
		codesSeen := runConcurrently(t, 6, func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
			return err
		})
		if codesSeen[codes.OK] != 2 || codesSeen[codes.ResourceExhausted] != 4 {
			t.Fatalf("codes %v, want 2 OK and 4 RESOURCE_EXHAUSTED", codesSeen)
		}
		if n := h.fake.RequestCount(); n != 2 {
			t.Errorf("HeyGen saw %d calls, want 2", n)
		}
		_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: h.cat.Looks[0].ID})
		if err != nil {
			t.Fatalf("after the burst: %v", err)
		}
	})
	t.Run("concurrent HeyGen calls", func(t *testing.T) {
		// No background health probe: it could hold the one HeyGen slot.
		h := setup(t, setupOptions{noBackground: true, maxConcurrent: 1})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Delay: 500 * time.Millisecond})
		var refused atomic.Int64
		codesSeen := runConcurrently(t, 4, func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
			if _, info, _, _ := partsIfErr(err); info.GetReason() == server.ReasonHeyGenConcurrency {
				refused.Add(1)
			}
			return err
		})
		if codesSeen[codes.OK] != 1 || refused.Load() != 3 {
			t.Fatalf("codes %v (%d refused), want 1 OK and 3 HEYGEN_CONCURRENCY_LIMIT", codesSeen, refused.Load())
		}
	})
}

func partsIfErr(err error) (*status.Status, *errdetails.ErrorInfo, *errdetails.BadRequest, *errdetails.RetryInfo) {
	st, _ := status.FromError(err)
	var info *errdetails.ErrorInfo
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	return st, info, nil, retry
}

// runConcurrently starts n calls at once and counts their codes.
func runConcurrently(t *testing.T, n int, call func() error) map[codes.Code]int {
	t.Helper()
	var (
		mu  sync.Mutex
		out = map[codes.Code]int{}
		wg  sync.WaitGroup
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c := status.Code(call())
			mu.Lock()
			out[c]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func TestCircuitBreaker(t *testing.T) {
	metrics := server.NewMetrics()
	// No background health probe: a successful probe between the failures
	// would reset the breaker's count, and it would add to the fake's.
	h := setup(t, setupOptions{
		noBackground: true,
		retry:        heygen.RetryPolicy{MaxAttempts: 1},
		breaker:      &heygen.BreakerPolicy{ConsecutiveFailures: 3, OpenFor: 500 * time.Millisecond},
		observer:     metrics.HeyGenObserver(),
		metrics:      metrics,
	})
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 503})
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/*", Status: 429, Body: fakeheygen.V3Error("rate_limit_exceeded", "x")})
	// 4xx and 429 never open it.
	for range 5 {
		if _, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "x1"}); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("429: %v", err)
		}
	}
	// Three 5xx open it.
	for range 3 {
		if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("503: %v", err)
		}
	}
	if h.client.BreakerState() != "open" {
		t.Fatalf("breaker %s after 3 failures, want open", h.client.BreakerState())
	}
	before := h.fake.RequestCount()
	var slowest time.Duration
	for range 20 {
		start := time.Now()
		_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "x2"})
		slowest = max(slowest, time.Since(start))
		st, info, _, retry := statusParts(t, err)
		if st.Code() != codes.Unavailable || info.GetReason() != server.ReasonCircuitOpen {
			t.Fatalf("while open: %v %v, want UNAVAILABLE CIRCUIT_OPEN", st.Code(), info)
		}
		if d := retry.GetRetryDelay().AsDuration(); d <= 0 || d > 500*time.Millisecond {
			t.Fatalf("RetryInfo %v, want the time until half-open (<= 500ms)", d)
		}
	}
	if n := h.fake.RequestCount() - before; n != 0 {
		t.Fatalf("%d calls reached HeyGen while the breaker was open", n)
	}
	// The whole RPC, over loopback gRPC, stays fast; the refusal itself is
	// far under a millisecond (see BenchmarkBreakerOpen in heygen).
	if slowest > 50*time.Millisecond {
		t.Errorf("slowest refused RPC took %v", slowest)
	}
	// Half-open after OpenFor: one probe; HeyGen has recovered; closed.
	h.faults.ClearFaults()
	time.Sleep(600 * time.Millisecond)
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{}); err != nil {
		t.Fatalf("probe call: %v", err)
	}
	if h.client.BreakerState() != "closed" {
		t.Fatalf("breaker %s after a successful probe, want closed", h.client.BreakerState())
	}
	body := scrape(t, metrics)
	for _, want := range []string{
		`heygen_upstream_refused_total{endpoint="GET /v3/avatars/looks/{look_id}",reason="circuit_open"} 20`,
		`heygen_upstream_circuit_breaker_state{state="closed"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetricsNamesAndLabels(t *testing.T) {
	metrics := server.NewMetrics()
	h := setup(t, setupOptions{withCatalogue: true, metrics: metrics, observer: metrics.HeyGenObserver(), noKeepAlives: true})
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks/*", Status: 503, Times: 1})
	id := h.cat.Looks[3].ID
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{}); err != nil {
		t.Fatal(err)
	}
	// Each resource is crawled on its first read: read groups too.
	if _, err := h.avatars.ListAvatarGroups(ctx(t), &heygenv1.ListAvatarGroupsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "missing_avatar_42"}); status.Code(err) != codes.NotFound {
		t.Fatal(err)
	}
	_, _ = h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: id})
	next := h.cat
	added := next.Looks[0]
	added.ID = "added_after_the_crawl"
	next.Looks = append(append([]fakeheygen.Look(nil), next.Looks...), added)
	h.fake.SetCatalogue(next)
	if _, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: added.ID}); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, metrics)
	for _, name := range []string{
		"grpc_server_handled_total", "grpc_server_handling_seconds_bucket", "heygen_grpc_caller_rpcs_total",
		"heygen_upstream_requests_total", "heygen_upstream_request_duration_seconds_bucket", "heygen_upstream_retries_total",
		"heygen_upstream_circuit_breaker_state", "heygen_catalogue_age_seconds", "heygen_catalogue_items",
		"heygen_catalogue_reads_total", "heygen_catalogue_refreshes_total", "go_goroutines",
	} {
		if !regexp.MustCompile(`(?m)^` + name + `\b`).MatchString(body) {
			t.Errorf("metric %s missing", name)
		}
	}
	// The catalogue metrics are per resource (they were one metric per
	// resource before the redesign).
	for res, items := range map[string]int{"avatars": len(h.cat.Looks), "avatar_groups": len(h.cat.Groups)} {
		for _, want := range []string{
			`heygen_catalogue_items{resource="` + res + `"} ` + strconv.Itoa(items) + "\n",
			`heygen_catalogue_age_seconds{resource="` + res + `"} `,
			`heygen_catalogue_refreshes_total{resource="` + res + `",result="ok"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	}
	if !strings.Contains(body, `grpc_server_handling_seconds_bucket{grpc_method="ListAvatars",grpc_service="heygen.v1.AvatarsService",grpc_type="unary",le="60"}`) {
		t.Error("the gRPC latency histogram has no 60 s bucket")
	}
	if !strings.Contains(body, `heygen_upstream_retries_total{endpoint="GET /v3/avatars/looks/{look_id}",reason="http_503"} 1`) {
		t.Error("the retry is not counted by endpoint template and reason")
	}
	if !strings.Contains(body, `heygen_catalogue_reads_total{source="heygen"} 1`) {
		t.Error("the snapshot miss is not counted")
	}
	for _, forbidden := range []string{"missing_avatar_42", id, added.ID, canaryKey, "sk-CANARY", "hgt_"} {
		if strings.Contains(body, forbidden) {
			t.Errorf("a metric label carries %q", forbidden)
		}
	}
}

// TestGRPCServerOptionsApplied guards the keepalive policy: a client that
// pings every 10 s (a common mesh setting) must not be told too_many_pings.
func TestGRPCServerOptionsApplied(t *testing.T) {
	h := setup(t, setupOptions{})
	conn, err := grpc.NewClient(h.conn.Target(), grpc.WithTransportCredentials(insecureCreds()),
		grpc.WithKeepaliveParams(keepaliveClient(10*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := heygenv1.NewAvatarsServiceClient(conn).ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestEveryCallIsCountedOnce: unary calls, a health check, a stream and a
// request that never reaches an interceptor are each counted once, as
// started and as handled, with their type; and the per-call line names
// the caller's address.
func TestEveryCallIsCountedOnce(t *testing.T) {
	m := server.NewMetrics()
	h := setup(t, setupOptions{withCatalogue: true, metrics: m})
	id := h.cat.Looks[0].ID
	for range 3 {
		if _, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "no_such_look"}); status.Code(err) != codes.NotFound {
		t.Fatalf("a missing avatar: %v, want NOT_FOUND", err)
	}
	if _, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := h.conn.Invoke(ctx(t), "/heygen.v1.AvatarsService/GetAvatar", []byte{0xff, 0xff, 0xff}, &out, grpc.ForceCodec(rawCodec{})); status.Code(err) != codes.Internal {
		t.Fatalf("an undecodable request: %v, want INTERNAL", err)
	}
	wctx, cancel := context.WithCancel(ctx(t))
	w, err := h.health.Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	const get, check, watch = `grpc_method="GetAvatar",grpc_service="heygen.v1.AvatarsService",grpc_type="unary"`,
		`grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"`,
		`grpc_method="Watch",grpc_service="grpc.health.v1.Health",grpc_type="server_stream"`
	for _, want := range []string{
		`grpc_server_started_total{` + get + `} 5`,
		`grpc_server_handled_total{grpc_code="OK",` + get + `} 3`,
		`grpc_server_handled_total{grpc_code="NotFound",` + get + `} 1`,
		`grpc_server_handled_total{grpc_code="Internal",` + get + `} 1`,
		`grpc_server_handling_seconds_count{` + get + `} 5`,
		`grpc_server_started_total{` + check + `} 1`,
		`grpc_server_handled_total{grpc_code="OK",` + check + `} 1`,
		`grpc_server_started_total{` + watch + `} 1`,
		`grpc_server_handled_total{grpc_code="Canceled",` + watch + `} 1`,
		`heygen_grpc_caller_rpcs_total{caller="anonymous",grpc_code="OK",grpc_method="GetAvatar"} 3`,
	} {
		if body := scrape(t, m); !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	waitFor(t, func() bool {
		return regexp.MustCompile(`"grpc.method":"GetAvatar".*"peer.address":"127\.0\.0\.1:\d+"`).MatchString(h.logs.String())
	}, "a GetAvatar line with the caller's address")
}
