package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// canaryKey is the API key every test uses: recognisable, so a test can
// prove it never shows up anywhere but the X-Api-Key header.
const canaryKey = "sk-CANARY-7c1e9f4b2d-heygen-grpc-must-never-log-this"

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	fake    *fakeheygen.Server
	faults  *faults.Injector
	srv     *server.Server
	addr    string
	conn    *grpc.ClientConn
	avatars heygenv1.AvatarsServiceClient
	videos  heygenv1.VideosServiceClient
	health  healthpb.HealthClient
	logs    *syncBuffer
	cat     fakeheygen.Catalogue
	catalog *catalogue.Set
	client  *heygen.Client
}

type setupOptions struct {
	retry    heygen.RetryPolicy
	maxBytes int64
	// noKeepAlives gives every HTTP attempt its own connection, so Go's
	// transport cannot silently resend a request after a reset and the
	// fake's request count is exactly our attempt count.
	noKeepAlives bool
	probe        time.Duration
	threshold    int
	reflection   bool
	register     func(grpc.ServiceRegistrar)
	catalogue    *fakeheygen.Catalogue
	// withCatalogue serves from a catalogue.Set (not started: the first
	// read crawls; tests call Refresh), using clock.
	withCatalogue bool
	// catalogueOpts are the catalogue's options beyond the clock and refresh.
	catalogueOpts catalogue.Options
	// limits are the server's transport limits.
	limits server.TransportLimits
	// defaultTimeout is the server's default deadline.
	defaultTimeout time.Duration
	// noBackground leaves the health probe and reporter stopped.
	noBackground bool
	// breaker is the client's breaker policy; nil disables it so tests of
	// other behaviour are not cut short by it opening.
	breaker *heygen.BreakerPolicy
	// budget is the client's retry budget; zero: the default.
	budget heygen.RetryBudget
	// maxConcurrent bounds concurrent HeyGen attempts.
	maxConcurrent int
	// observer receives client events.
	observer heygen.Observer
	// auth, rateLimits, maxInFlight and metrics go to server.Options.
	auth         *server.Authenticator
	rateLimits   server.RateLimits
	maxInFlight  int
	metrics      *server.Metrics
	clock        *fakeClock
	refresh      time.Duration
	maxStaleness time.Duration
	// account is the fake's account (default: its wallet); accountTTL,
	// lowBalance and adminCallers go to server.Options.
	account      *fakeheygen.Account
	accountTTL   time.Duration
	lowBalance   float64
	adminCallers []string
	// fake adjusts the fake HeyGen's options (render times, create limit).
	fake func(*fakeheygen.Options)
	// middleware wraps the fake's API handler outside the fault injector.
	middleware func(http.Handler) http.Handler
	// videos configures VideosService.
	videos server.VideoOptions
}

// fakeClock is a settable clock for ageing catalogue snapshots.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup starts the fake HeyGen (with the canary key), the gateway on a
// real loopback TCP port, and a gRPC client connection. At cleanup it
// fails the test if the canary key appears in any log line.
func setup(t *testing.T, o setupOptions) *harness {
	t.Helper()
	cat := fakeheygen.DemoCatalogue()
	if o.catalogue != nil {
		cat = *o.catalogue
	}
	inj := faults.New()
	var account fakeheygen.Account
	if o.account != nil {
		account = *o.account
	}
	fopts := fakeheygen.Options{APIKey: canaryKey, Catalogue: cat, Voices: fakeheygen.DemoVoices(),
		Middleware: inj.Wrap, RenderPending: 50 * time.Millisecond, RenderProcessing: 100 * time.Millisecond, Account: account}
	if o.middleware != nil {
		fopts.Middleware = func(next http.Handler) http.Handler { return o.middleware(inj.Wrap(next)) }
	}
	if o.fake != nil {
		o.fake(&fopts)
	}
	fake, err := fakeheygen.NewServer(fopts)
	if err != nil {
		t.Fatalf("start fake HeyGen: %v", err)
	}
	t.Cleanup(func() { _ = fake.Close() })

	if o.retry.BaseDelay == 0 {
		o.retry.BaseDelay = time.Millisecond
	}
	if o.retry.MaxDelay == 0 {
		o.retry.MaxDelay = 2 * time.Second
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := heygen.Options{BaseURL: fake.URL(), APIKey: canaryKey, Retry: o.retry, MaxResponseBytes: o.maxBytes, Logger: log,
		Breaker: heygen.BreakerPolicy{Disabled: true}, Budget: o.budget, MaxConcurrent: o.maxConcurrent, Observer: o.observer}
	if o.breaker != nil {
		opts.Breaker = *o.breaker
	}
	if o.noKeepAlives {
		tr := heygen.NewTransport()
		tr.DisableKeepAlives = true
		opts.Transport = tr
	}
	client, err := heygen.New(opts)
	if err != nil {
		t.Fatalf("heygen.New: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if o.probe == 0 {
		o.probe = time.Hour
	}
	var catalog *catalogue.Set
	if o.withCatalogue {
		if o.clock == nil {
			o.clock = newFakeClock()
		}
		copts := o.catalogueOpts
		copts.Logger, copts.Now, copts.RefreshInterval, copts.MaxStaleness = log, o.clock.Now, o.refresh, o.maxStaleness
		if o.metrics != nil {
			copts.Observer = o.metrics
		}
		catalog = catalogue.New(client, copts)
	}
	srv, err := server.New(server.Options{
		Catalogue:             catalog,
		Auth:                  o.auth,
		RateLimits:            o.rateLimits,
		MaxInFlight:           o.maxInFlight,
		Metrics:               o.metrics,
		Client:                client,
		Logger:                log,
		Reflection:            o.reflection,
		ProbeInterval:         o.probe,
		ProbeTimeout:          2 * time.Second,
		ProbeFailureThreshold: o.threshold,
		Limits:                o.limits,
		DefaultTimeout:        o.defaultTimeout,
		AccountCacheTTL:       o.accountTTL,
		LowBalanceThreshold:   o.lowBalance,
		AdminCallers:          o.adminCallers,
		Videos:                o.videos,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if o.register != nil {
		o.register(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	if !o.noBackground {
		bg, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { srv.RunBackground(bg); close(done) }()
		t.Cleanup(func() { stop(); <-done })
	}

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h := &harness{fake: fake, faults: inj, srv: srv, addr: lis.Addr().String(), conn: conn, logs: logs, cat: cat, catalog: catalog, client: client,
		avatars: heygenv1.NewAvatarsServiceClient(conn), videos: heygenv1.NewVideosServiceClient(conn), health: healthpb.NewHealthClient(conn)}
	t.Cleanup(func() { assertNoCanary(t, "server logs", logs.String()) })
	return h
}

func assertNoCanary(t *testing.T, where, s string) {
	t.Helper()
	// Also look for a fragment, in case something truncates or splits it.
	if strings.Contains(s, canaryKey) || strings.Contains(s, canaryKey[:20]) {
		t.Errorf("the API key appears in %s", where)
	}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// statusParts splits an RPC error into its status, ErrorInfo, BadRequest
// and RetryInfo, failing the test unless there is exactly one ErrorInfo
// and no trace of the API key.
func statusParts(t *testing.T, err error) (*status.Status, *errdetails.ErrorInfo, *errdetails.BadRequest, *errdetails.RetryInfo) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("want a status error, got %v", err)
	}
	if st.Code() == codes.Unknown {
		t.Errorf("got UNKNOWN: %v", err)
	}
	var (
		info  *errdetails.ErrorInfo
		br    *errdetails.BadRequest
		retry *errdetails.RetryInfo
		infos int
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
			infos++
		case *errdetails.BadRequest:
			br = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	if infos != 1 {
		t.Errorf("status %v has %d ErrorInfo details, want exactly 1", st.Code(), infos)
	}
	assertNoCanary(t, "a status", st.Message()+prototext.Format(st.Proto()))
	return st, info, br, retry
}

func statusFromErr(err error) (codes.Code, string) {
	st, _ := status.FromError(err)
	return st.Code(), st.Message()
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

func keepaliveClient(every time.Duration) keepalive.ClientParameters {
	return keepalive.ClientParameters{Time: every, Timeout: 5 * time.Second, PermitWithoutStream: true}
}

// waitHealth waits (up to 10 s) until the health service reports want for
// name, failing the test otherwise.
func waitHealth(t *testing.T, h *harness, name string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last healthpb.HealthCheckResponse_ServingStatus
	for time.Now().Before(deadline) {
		resp, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: name})
		if err == nil {
			last = resp.GetStatus()
			if last == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("health %q stayed %v, want %v", name, last, want)
}
