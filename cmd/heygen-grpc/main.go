// Command heygen-grpc serves heygen.v1.AvatarsService: a gRPC gateway that
// lets internal services use HeyGen's avatar API without holding its key.
//
// Run `heygen-grpc -demo` to serve a built-in fake HeyGen with a sample
// catalogue (no key, no network), or set HEYGEN_API_KEY to serve the real
// one. `heygen-grpc -h` lists every setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/fleet"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/watch"
	"github.com/heygen-grpc/heygen-grpc/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	handled, err := runTokenCommand(os.Args[1:], os.Stdin, os.Stdout)
	if !handled {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}
	stop()
	var cerr *configError
	switch {
	case err == nil, errors.Is(err, errHelp):
	case errors.As(err, &cerr):
		fmt.Fprintln(os.Stderr, "heygen-grpc: "+err.Error())
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "heygen-grpc: "+err.Error())
		os.Exit(1)
	}
}

// demoAPIKey is the key the built-in fake accepts: not a secret.
const demoAPIKey = "demo-key-not-secret" //nolint:gosec // G101: a fixed key for the built-in fake, not a credential

// run is the whole program, testable: it serves until ctx is done, then
// shuts down gracefully and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	logOut := newLogOutput(stderr)
	defer func() { _ = logOut.Close() }() // deferred first, so run last: every line is written
	log := newLogger(cfg, logOut)
	// The Go runtime reads GOGC from the process's environment only (not
	// from a .env file), so the operator's GOGC is looked up there.
	gogc := getenv("GOGC")
	defer server.SetHeapFloor(cfg.heapFloorMiB, gogc)()

	apiKey, baseURL := cfg.apiKey, cfg.baseURL
	var keyFile *watch.Files
	if cfg.apiKeyFile != "" && !cfg.demo {
		keyFile = &watch.Files{What: "the HeyGen API key file", Paths: []string{cfg.apiKeyFile}, Log: log,
			Apply: func(c [][]byte) error {
				key, err := parseKeyFile(cfg.apiKeyFile, c[0])
				if err == nil {
					apiKey = key
				}
				return err
			}}
		if err := keyFile.Load(); err != nil {
			return &configError{msg: err.Error()}
		}
	}
	if cfg.demo {
		fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: demoAPIKey, Catalogue: fakeheygen.DemoCatalogue(),
			Voices: fakeheygen.DemoVoices(), Videos: fakeheygen.DemoVideos(), Account: fakeheygen.DemoAccount(cfg.demoBillingType)})
		if err != nil {
			return fmt.Errorf("start the demo HeyGen: %w", err)
		}
		defer func() { _ = fake.Close() }()
		apiKey, baseURL = demoAPIKey, fake.URL()
		log.Info("demo mode: serving a built-in fake HeyGen with a sample catalogue; HEYGEN_API_KEY and HEYGEN_BASE_URL are ignored",
			"fake_heygen_url", baseURL, "billing_type", cfg.demoBillingType)
	}

	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	tr, err := setupTracing(bg, cfg.otlpEndpoint)
	if err != nil {
		return &configError{msg: err.Error()}
	}
	defer func() { _ = tr.shutdown(context.WithoutCancel(ctx)) }()
	var metrics *server.Metrics
	if cfg.metricsAddr != "" {
		metrics = server.NewMetrics()
	}
	var observer heygen.Observer
	if metrics != nil {
		observer = metrics.HeyGenObserver()
	}
	client, err := heygen.New(heygen.Options{
		BaseURL: baseURL,
		APIKey:  apiKey,
		Retry: heygen.RetryPolicy{
			MaxAttempts:    cfg.retryAttempts,
			BaseDelay:      cfg.retryBaseDelay,
			MaxDelay:       cfg.retryMaxDelay,
			AttemptTimeout: cfg.attemptTimeout,
		},
		Breaker:          heygen.BreakerPolicy{Disabled: cfg.breakerFailures == 0, ConsecutiveFailures: cfg.breakerFailures, OpenFor: cfg.breakerOpenFor},
		Budget:           heygen.RetryBudget{Ratio: budgetRatio(cfg.retryBudget)},
		MaxConcurrent:    cfg.heygenMaxConc,
		MaxResponseBytes: cfg.maxResponseBytes,
		Transport:        tr.wrap(heygen.NewTransport()),
		Observer:         observer,
		Logger:           log,
	})
	if err != nil {
		return &configError{msg: err.Error()}
	}

	var auth *server.Authenticator
	var callersFile *watch.Files
	if cfg.callersFile != "" || cfg.mtlsIdentity {
		auth = &server.Authenticator{CertIdentity: cfg.mtlsIdentity}
		if cfg.callersFile != "" {
			auth.Tokens = server.NewTokenStore()
			callersFile = &watch.Files{What: "the callers file", Paths: []string{cfg.callersFile}, Log: log,
				Apply: func(c [][]byte) error {
					if err := auth.Tokens.Apply(c[0]); err != nil {
						return fmt.Errorf("callers file %s: %w", cfg.callersFile, err)
					}
					return nil
				}}
			if err := callersFile.Load(); err != nil {
				return &configError{msg: err.Error()}
			}
			log.Info("caller authentication: bearer tokens", "callers", len(auth.Tokens.Callers()), "file", cfg.callersFile)
		}
	}
	serverOpts := tr.serverOptions
	var certFiles *watch.Files
	if cfg.tlsCert != "" {
		certs := &certStore{}
		certFiles = &watch.Files{What: "the TLS certificate", Paths: []string{cfg.tlsCert, cfg.tlsKey}, Log: log, Apply: certs.apply}
		if err := certFiles.Load(); err != nil {
			return &configError{msg: err.Error()}
		}
		tc, err := tlsConfig(cfg, certs)
		if err != nil {
			return &configError{msg: err.Error()}
		}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(tc)))
	}

	var store *fleet.Store
	if cfg.redisURL != "" {
		password := cfg.redisPassword
		if cfg.redisPasswordFile != "" {
			b, err := os.ReadFile(cfg.redisPasswordFile)
			if err != nil {
				return configErrorf("read -redis-password-file: %v", unwrapPathError(err))
			}
			password = strings.TrimSpace(string(b))
		}
		store, err = fleet.Open(fleet.Options{URL: cfg.redisURL, Password: password, Logger: log})
		if err != nil {
			return &configError{msg: err.Error()}
		}
		defer func() { _ = store.Close() }()
		metrics.WatchFleet(store)
		log.Info("fleet: sharing state with the other replicas through Redis", "replica", store.ID())
	}

	var cat *catalogue.Set
	if cfg.catalogue {
		copts := catalogue.Options{
			Logger:           log,
			RefreshInterval:  cfg.catalogueRefresh,
			MaxStaleness:     cfg.catalogueMaxAge,
			CrawlTimeout:     cfg.catalogueTimeout,
			MaxPages:         cfg.catalogueMaxPages,
			MaxItems:         cfg.catalogueMaxItems,
			NotFoundTTL:      cfg.notFoundTTL,
			VoiceEngines:     cfg.voiceEngines,
			CrawlConcurrency: cfg.crawlConcurrency,
			ColdPassThrough:  cfg.coldPassThrough,
			NoSplitCrawl:     !cfg.splitCrawl,
		}
		if cfg.coldPassThrough == 0 {
			copts.ColdPassThrough = -1 // the flag's 0 is the catalogue's off
		}
		if metrics != nil {
			copts.Observer = metrics
		}
		if store != nil {
			copts.Shared = store
		}
		cat = catalogue.New(client, copts)
	}
	var jsonLog io.Writer // where the JSON handler writes: the per-RPC lines skip slog (server.Options)
	if cfg.logFormat == "json" {
		jsonLog = logOut
	}
	srv, err := server.New(server.Options{
		Catalogue:             cat,
		Client:                client,
		Logger:                log,
		JSONLogOutput:         jsonLog,
		Reflection:            cfg.reflection,
		ProbeInterval:         cfg.probeInterval,
		ProbeTimeout:          cfg.probeTimeout,
		ProbeFailureThreshold: cfg.probeFailures,
		DefaultTimeout:        cfg.rpcTimeout,
		Auth:                  auth,
		RateLimits:            server.RateLimits{Default: cfg.rateLimit, Callers: cfg.rateLimits},
		Fleet:                 fleetLimiter(store),
		MaxInFlight:           cfg.maxInFlight,
		Limits: server.TransportLimits{
			MaxConnections:       cfg.maxConnections,
			MaxConcurrentStreams: uint32(cfg.maxConcurrentStreams), //nolint:gosec // G115: validated positive and small
			MaxStreams:           cfg.maxStreams,
			MaxWatchStreams:      cfg.maxWatchStreams,
			MaxHeaderBytes:       uint32(cfg.maxHeaderBytes), //nolint:gosec // G115: validated positive and small
			MaxRecvMsgBytes:      cfg.maxRecvMsgBytes,
		},
		Metrics:             metrics,
		ServerOptions:       serverOpts,
		AccountCacheTTL:     cfg.accountCacheTTL,
		LowBalanceThreshold: cfg.lowBalanceThreshold,
		AdminCallers:        cfg.adminCallers,
		Videos: server.VideoOptions{
			CreateRateLimits:     server.RateLimits{Default: cfg.videoCreateLimit, Callers: cfg.videoCreateLimits},
			MaxConcurrentCreates: disabledIfZero(cfg.videoCreateMaxConc),
			PollInterval:         cfg.videoPollInterval,
			MaxPollInterval:      cfg.videoPollMaxInterval,
			Heartbeat:            cfg.videoHeartbeat,
			MaxWatches:           disabledIfZero(cfg.videoMaxWatches),
			MaxWatchesPerCaller:  disabledIfZero(cfg.videoMaxWatchesPer),
		},
	})
	if err != nil {
		return err
	}

	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using the port? set -addr or GRPC_ADDR)", cfg.addr, err)
	}
	if metrics != nil {
		stopMetrics, err := serveMetrics(bg, cfg.metricsAddr, metrics, cfg.pprof, log)
		if err != nil {
			_ = lis.Close()
			return err
		}
		defer stopMetrics()
	}
	go srv.RunBackground(bg)
	if store != nil {
		go store.Run(bg)
	}
	if cat != nil {
		go cat.Run(bg)
	}
	if keyFile != nil {
		keyFile.OnChange = func() {
			client.SetAPIKey(apiKey)
			srv.ProbeNow()
		}
		go keyFile.Run(bg, cfg.reloadInterval)
	}
	if callersFile != nil {
		go callersFile.Run(bg, cfg.reloadInterval)
	}
	if certFiles != nil {
		go certFiles.Run(bg, cfg.reloadInterval)
	}

	// The serving line is written out (not left in the log's buffer)
	// before the first call is accepted: whoever sees an answer, a
	// readiness probe or an operator, finds the line in the log. The
	// listener is bound already; a connection made meanwhile waits in its
	// backlog.
	log.Info("serving heygen.v1.AvatarsService", "addr", lis.Addr().String(), "demo", cfg.demo,
		"reflection", cfg.reflection, "catalogue", cfg.catalogue, "tls", cfg.tlsCert != "", "mtls", cfg.tlsClientCA != "",
		"caller_auth", auth != nil, "tracing", cfg.otlpEndpoint != "", "heygen_base_url", baseURL,
		"gc_heap_floor_mib", heapFloorInEffect(cfg.heapFloorMiB, gogc))
	_ = logOut.Flush()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: health is NOT_SERVING, finishing calls in flight",
		"drain_delay", cfg.drainDelay, "timeout", cfg.shutdownTimeout)
	stopBackground()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.drainDelay+cfg.shutdownTimeout)
	defer cancel()
	start := time.Now()
	graceful := srv.Shutdown(sctx, cfg.drainDelay)
	if err := <-serveErr; err != nil {
		log.Warn("serve ended with an error during shutdown", "error", err)
	}
	log.Info("stopped", "graceful", graceful, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// fleetLimiter is store as the server's shared store, or nil (not a
// typed nil in an interface) when there is no store.
func fleetLimiter(store *fleet.Store) server.SharedStore {
	if store == nil {
		return nil
	}
	return store
}

// disabledIfZero maps a bound flag (0 disables it) to the server's setting
// (negative disables, 0 takes the default).
func disabledIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// budgetRatio maps the flag (0 disables the budget) to heygen's setting
// (negative disables, 0 takes the default).
func budgetRatio(r float64) float64 {
	if r == 0 {
		return -1
	}
	return r
}

// newLogger is the process's logger. Written to a logOutput, its lines at
// warn and above are written out at once, with every line before them
// (see logwriter.go).
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	var h slog.Handler
	if cfg.logFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	if out, ok := w.(*logOutput); ok {
		h = flushAbove{Handler: h, level: slog.LevelWarn, out: out}
	}
	return slog.New(readableDurations{h})
}

// readableDurations writes every time.Duration in the log as Go prints it
// ("505ms", "1m30s"): slog's JSON handler would write nanoseconds
// (505000000), which no one reads as a duration. One place, so that no log
// call needs to remember it; fields that carry a number say its unit in
// their name (took_ms).
//
// It is a handler around slog's rather than slog's ReplaceAttr hook: with
// that hook set, slog passes every attribute of every line through it and
// writes the level through encoding/json's reflection, which profiled at
// about 2 µs of each RPC's log line (bench/RESULTS.md). Lines without a
// duration, such as the one every RPC writes, pass through untouched.
type readableDurations struct{ slog.Handler }

// Handle implements slog.Handler.
func (h readableDurations) Handle(ctx context.Context, r slog.Record) error {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = hasDuration(a.Value)
		return !found
	})
	if !found {
		return h.Handler.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(readableAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h readableDurations) WithAttrs(as []slog.Attr) slog.Handler {
	rs := make([]slog.Attr, len(as))
	for i, a := range as {
		rs[i] = readableAttr(a)
	}
	return readableDurations{h.Handler.WithAttrs(rs)}
}

// WithGroup implements slog.Handler.
func (h readableDurations) WithGroup(name string) slog.Handler {
	return readableDurations{h.Handler.WithGroup(name)}
}

func hasDuration(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindDuration:
		return true
	case slog.KindLogValuer:
		return hasDuration(v.Resolve())
	case slog.KindGroup:
		for _, a := range v.Group() {
			if hasDuration(a.Value) {
				return true
			}
		}
	}
	return false
}

func readableAttr(a slog.Attr) slog.Attr {
	v := a.Value
	if v.Kind() == slog.KindLogValuer {
		v = v.Resolve()
	}
	switch v.Kind() {
	case slog.KindDuration:
		a.Value = slog.StringValue(v.Duration().String())
	case slog.KindGroup:
		g := v.Group()
		rs := make([]slog.Attr, len(g))
		for i, ga := range g {
			rs[i] = readableAttr(ga)
		}
		a.Value = slog.GroupValue(rs...)
	default:
		a.Value = v
	}
	return a
}

// heapFloorInEffect is the heap floor in MiB, for the log: 0 when GOGC in
// the environment overrides it.
func heapFloorInEffect(floorMiB int, gogc string) int {
	if gogc != "" {
		return 0
	}
	return floorMiB
}
