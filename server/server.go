// Package server is the gateway's gRPC server: the heygen.v1 services on
// the catalogue's readers and the HeyGen REST client, standard health
// checking and reflection, and what a production gRPC server needs around
// them (admission bounds, caller auth and limits, logging, metrics,
// recovery, and the one mapping from errors to statuses).
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Options configures [New].
type Options struct {
	// Client calls HeyGen. Required.
	Client *heygen.Client
	// Catalogue, when set, answers list and get calls from memory (see
	// catalogue.New; run it with its Run method); nil passes every call
	// through to HeyGen.
	Catalogue *catalogue.Set
	// Logger receives one line per RPC and the server's own events
	// (default: discard).
	Logger *slog.Logger
	// JSONLogOutput, when set, must be the writer of Logger's handler, a
	// slog.JSONHandler without options (it may be wrapped by handlers that
	// pass lines without durations through unchanged): the per-RPC info
	// lines are then encoded by the gateway, byte for byte as that handler
	// would, and written to it directly (see callline.go).
	JSONLogOutput io.Writer
	// Reflection registers the server reflection service (v1 and v1alpha).
	Reflection bool
	// ProbeInterval is how often HeyGen's health is probed (default 30s).
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe (default 10s).
	ProbeTimeout time.Duration
	// ProbeFailureThreshold is how many consecutive probes must fail to
	// reach HeyGen before it counts as unreachable (default 3).
	ProbeFailureThreshold int
	// DefaultTimeout bounds unary calls that arrive without a deadline,
	// from the moment their headers arrive (default 30s).
	DefaultTimeout time.Duration
	// Auth identifies callers (bearer tokens or mTLS); nil lets everyone
	// in as AnonymousCaller. Health and reflection are always open.
	Auth *Authenticator
	// RateLimits are per-caller token buckets; zero values mean unlimited.
	RateLimits RateLimits
	// Fleet, when set, is the state the replicas of a fleet share: the
	// rate limits hold across the fleet, usage counts and the account's
	// last reading are the fleet's, and the store's health is reported.
	Fleet SharedStore
	// MaxInFlight bounds concurrent calls to the gateway's own services;
	// beyond it calls fail fast with RESOURCE_EXHAUSTED (0: unbounded).
	MaxInFlight int
	// Limits bound what any client, authenticated or not, can make the
	// gateway hold; zero fields take the defaults.
	Limits TransportLimits
	// Metrics, when set, records gRPC, caller, HeyGen and catalogue metrics.
	Metrics *Metrics
	// Videos configures VideosService: its create limits and its watch
	// poller.
	Videos VideoOptions
	// ServerOptions are appended to the gRPC server's options.
	ServerOptions []grpc.ServerOption
	// AccountCacheTTL is how long GetAccount answers from its last reading
	// of the account (default DefaultAccountCacheTTL).
	AccountCacheTTL time.Duration
	// LowBalanceThreshold, when positive, is the balance (in the account's
	// own unit: dollars or credits) below which the gateway logs a warning,
	// sets heygen_account_low_balance and reports CreditHealthName
	// NOT_SERVING. 0 disables the signal.
	LowBalanceThreshold float64
	// AdminCallers may ask GetUsage for every caller's usage.
	AdminCallers []string
}

// TransportLimits bound the memory any client can make the gateway hold
// before it knows who the client is: a stream's headers are read, and its
// message waited for, before any interceptor runs.
type TransportLimits struct {
	// MaxConnections bounds open connections; beyond it new ones are
	// closed at once (default 512).
	MaxConnections int
	// MaxConcurrentStreams bounds streams per HTTP/2 connection; beyond it
	// the transport refuses new streams (default 256).
	MaxConcurrentStreams uint32
	// MaxStreams bounds streams across all connections, health Watch
	// streams apart; beyond it new streams get RESOURCE_EXHAUSTED (default
	// DefaultMaxStreams). Health checks get a small reserve past it.
	MaxStreams int
	// MaxWatchStreams bounds health Watch streams (default DefaultMaxWatchStreams).
	MaxWatchStreams int
	// MaxHeaderBytes bounds a stream's header list (default 32 KiB; gRPC's
	// own default is 16 MiB).
	MaxHeaderBytes uint32
	// MaxRecvMsgBytes bounds a request message (default 64 KiB: the
	// largest request, a video with a 5,000-character script, is far
	// smaller; gRPC's own default is 4 MiB).
	MaxRecvMsgBytes int
}

// Defaults of [TransportLimits].
const (
	DefaultMaxConnections       = 512
	DefaultMaxConcurrentStreams = 256
	DefaultMaxHeaderBytes       = 32 << 10
	DefaultMaxRecvMsgBytes      = 64 << 10
)

func (l TransportLimits) withDefaults() TransportLimits {
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.MaxWatchStreams == 0 {
		l.MaxWatchStreams = DefaultMaxWatchStreams
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxRecvMsgBytes == 0 {
		l.MaxRecvMsgBytes = DefaultMaxRecvMsgBytes
	}
	return l
}

// Server is the gateway's gRPC server.
type Server struct {
	grpc     *grpc.Server
	health   *health.Server
	prober   *prober
	reporter *healthReporter
	log      *slog.Logger
	readers  catalogue.Readers
	client   *heygen.Client
	metrics  *Metrics // may be nil
	limits   TransportLimits
	conns    *connLimiter
	usage    *usage
	account  *accountBook
	admins   map[string]bool
	started  time.Time
	watches  *watchHub
	layers   *layers
	// freshness caches the freshness response headers.
	freshness freshnessHeaders
}

// layers are the gateway's per-call machinery around the handlers (see
// admission.go), kept so that benchmarks measure exactly what New built.
type layers struct {
	adm    *admission
	rec    *callRecorder
	unary  []grpc.UnaryServerInterceptor
	stream []grpc.StreamServerInterceptor
}

// TransportOptions are the grpc-go server options of every gateway that
// bound what clients can make it hold and make it fast (the stream worker
// pool), without its interceptors or tap: the benchmark's
// bare reference server (bench/bareserver) runs with the same, so that the
// two differ only by what the gateway does per call.
func TransportOptions(limits TransportLimits) []grpc.ServerOption {
	limits = limits.withDefaults()
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(limits.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(limits.MaxHeaderBytes),
		grpc.MaxRecvMsgSize(limits.MaxRecvMsgBytes),
		// A connection must finish its handshake (TLS, HTTP/2 preface)
		// within this, so half-open connections do not linger.
		grpc.ConnectionTimeout(10 * time.Second),
		// A fixed pool of stream workers instead of a goroutine per call:
		// the profile showed 12-15% of CPU growing fresh goroutine stacks.
		grpc.NumStreamWorkers(uint32(max(16, 4*runtime.GOMAXPROCS(0)))), //nolint:gosec // G115: small positive
		// Mesh sidecars and gRPC clients ping at most every 10-30 s when they
		// ping at all; allowing 5 s (and pings without streams) means no
		// well-behaved client is ever sent GOAWAY "too_many_pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			// Recycle connections now and then so new replicas get traffic
			// behind L4 load balancers; calls in flight get a minute to end.
			MaxConnectionAge:      30 * time.Minute,
			MaxConnectionAgeGrace: time.Minute,
			Time:                  time.Minute,
			Timeout:               20 * time.Second,
		}),
	}
}

// New builds the server; it serves nothing until [Server.Serve], and its
// health stays NOT_SERVING until [Server.RunBackground] runs.
func New(opts Options) (*Server, error) {
	if opts.Client == nil {
		return nil, errors.New("server: a HeyGen client is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 30 * time.Second
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 10 * time.Second
	}
	if opts.ProbeFailureThreshold <= 0 {
		opts.ProbeFailureThreshold = 3
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 30 * time.Second
	}
	if opts.AccountCacheTTL <= 0 {
		opts.AccountCacheTTL = DefaultAccountCacheTTL
	}
	limits := opts.Limits.withDefaults()
	var rl *rateLimiter
	if opts.RateLimits.Default.PerSecond > 0 || len(opts.RateLimits.Callers) > 0 {
		rl = newRateLimiter(opts.RateLimits, opts.Fleet, opts.Metrics)
	}
	use := newUsage()
	use.shared = opts.Fleet
	rec := &callRecorder{log: opts.Logger, level: codeToLevel, metrics: opts.Metrics, usage: use}
	if opts.JSONLogOutput != nil {
		rec.line = newJSONLine(opts.JSONLogOutput)
	}
	l := &layers{
		adm: &admission{
			auth:           opts.Auth,
			maxStreams:     int64(limits.MaxStreams),
			maxWatches:     int64(limits.MaxWatchStreams),
			defaultTimeout: opts.DefaultTimeout,
			methods:        map[string]*methodInfo{},
			metrics:        opts.Metrics,
			log:            opts.Logger,
		},
		rec: rec,
	}
	l.unary, l.stream = interceptorChain(rec, &guard{
		auth:     opts.Auth,
		limits:   rl,
		inflight: newInflightLimiter(opts.MaxInFlight),
		metrics:  opts.Metrics,
	})
	gs := grpc.NewServer(append(append([]grpc.ServerOption{
		grpc.InTapHandle(l.adm.admit),
		grpc.ChainUnaryInterceptor(l.unary...),
		grpc.ChainStreamInterceptor(l.stream...),
	}, TransportOptions(limits)...), opts.ServerOptions...)...)
	// Every service is registered through reg, which wraps unary handlers
	// to record the calls no interceptor sees (observe.go).
	reg := observedRegistrar{gs: gs, rec: rec}

	readers := catalogue.PassThroughReaders(opts.Client)
	if opts.Catalogue != nil {
		readers = opts.Catalogue.Readers()
	}
	s := &Server{
		grpc:    gs,
		log:     opts.Logger,
		readers: readers,
		client:  opts.Client,
		metrics: opts.Metrics,
		limits:  limits,
		conns:   &connLimiter{max: limits.MaxConnections, metrics: opts.Metrics, log: opts.Logger},
		usage:   use,
		admins:  map[string]bool{},
		started: time.Now(),
		layers:  l,
	}
	for _, name := range opts.AdminCallers {
		s.admins[name] = true
	}
	s.account = &accountBook{client: opts.Client, ttl: opts.AccountCacheTTL, timeout: opts.ProbeTimeout,
		threshold: max(opts.LowBalanceThreshold, 0), log: opts.Logger, metrics: opts.Metrics, shared: opts.Fleet}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health = hs
	s.prober = &prober{
		client:    opts.Client,
		log:       opts.Logger,
		metrics:   opts.Metrics,
		interval:  opts.ProbeInterval,
		timeout:   opts.ProbeTimeout,
		threshold: opts.ProbeFailureThreshold,
		kick:      make(chan struct{}, 1),
		observed:  s.account.observe,
	}
	s.reporter = &healthReporter{hs: hs, prober: s.prober, catalogue: opts.Catalogue, fleet: opts.Fleet, kick: make(chan struct{}, 1),
		last: map[string]healthpb.HealthCheckResponse_ServingStatus{}, lowBalance: s.account.lowBalance}
	s.prober.changed = s.reporter.update
	s.account.changed = s.reporter.update
	s.reporter.reconcile() // every name starts NOT_SERVING until there is reason to serve

	healthpb.RegisterHealthServer(reg, hs)
	heygenv1.RegisterAvatarsServiceServer(reg, &avatarsServer{Server: s})
	heygenv1.RegisterVoicesServiceServer(reg, &voicesServer{Server: s})
	heygenv1.RegisterAccountServiceServer(reg, &accountServer{Server: s})
	videoOpts := opts.Videos.withDefaults()
	s.watches = newWatchHub(opts.Client, opts.Logger, opts.Metrics, videoOpts)
	heygenv1.RegisterVideosServiceServer(reg, &videosServer{Server: s,
		create: newCreates(videoOpts, opts.Fleet, opts.Metrics), watch: s.watches})
	if opts.Reflection {
		reflection.Register(reg)
	}
	if opts.Metrics != nil {
		opts.Metrics.initialize(gs)
	}
	for full, typ := range methodTypes(gs) {
		l.adm.methods[full] = newMethodInfo(full, typ, opts.Metrics)
	}
	return s, nil
}

// recordVideoCreated counts a video HeyGen accepted for the calling caller,
// in GetUsage and in the metrics.
func (s *Server) recordVideoCreated(ctx context.Context) {
	caller := callerOrUnauthenticated(callerOf(ctx))
	s.usage.videoCreated(caller)
	s.metrics.videoCreated(caller)
}

// RunBackground runs the HeyGen health probe and keeps the health service
// up to date until ctx is done; run it in its own goroutine.
func (s *Server) RunBackground(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.prober.run(ctx) })
	wg.Go(func() { s.reporter.run(ctx) })
	wg.Go(func() { s.usage.flushUsage(ctx) })
	wg.Wait()
}

// ProbeNow probes HeyGen as soon as possible (after the API key changed,
// say) instead of waiting for the next interval.
func (s *Server) ProbeNow() { s.prober.probeNow() }

// GRPCServer returns the underlying server.
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// RegisterService registers another service, its calls recorded as the
// gateway's own are (register it before Serve). It implements
// grpc.ServiceRegistrar.
func (s *Server) RegisterService(sd *grpc.ServiceDesc, impl any) {
	observedRegistrar{gs: s.grpc, rec: s.layers.rec}.RegisterService(sd, impl)
	for full, typ := range methodTypes(s.grpc) {
		if s.layers.adm.methods[full] == nil {
			s.layers.adm.methods[full] = newMethodInfo(full, typ, s.metrics)
		}
	}
}

// Serve accepts connections on lis until [Server.Shutdown] or
// [Server.Stop]. It returns nil after a shutdown.
func (s *Server) Serve(lis net.Listener) error {
	// The sweeper gives back the stream places of streams that ended
	// before a handler ran (see liveStreams).
	done := make(chan struct{})
	defer close(done)
	go s.layers.adm.live.run(done)
	if err := s.grpc.Serve(s.conns.wrap(lis)); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Shutdown stops serving gracefully: every health status goes NOT_SERVING
// (so load balancers and probes stop sending work), then after drainDelay
// the server stops accepting calls and waits for those in flight, until
// ctx is done, when the remaining calls are cancelled. It reports whether
// the stop was graceful.
func (s *Server) Shutdown(ctx context.Context, drainDelay time.Duration) bool {
	s.health.Shutdown()
	if drainDelay > 0 {
		s.log.InfoContext(ctx, "draining before shutdown", "drain_delay", drainDelay)
		t := time.NewTimer(drainDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	// WatchVideo streams last as long as a render: waiting for them would
	// always end in the timeout. They end now, UNAVAILABLE, and their
	// callers watch again on another replica.
	s.watches.close()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		s.log.WarnContext(context.WithoutCancel(ctx), "graceful stop timed out; cancelling the calls still in flight")
		s.grpc.Stop()
		<-done
		return false
	}
}

// Stop stops the server at once, cancelling calls in flight.
func (s *Server) Stop() { s.grpc.Stop() }
