package server

// Benchmarks of the gateway's per-RPC hot path, run by `benchtool run`
// (scripts/bench.sh) and by hand:
//
//	go test -run '^$' -bench . -benchmem ./server/
//	go test -run '^$' -bench 'Chain/production/list' -cpuprofile cpu.out ./server/ && go tool pprof -top cpu.out
//
// BenchmarkChain measures what the gateway adds to every call, without
// a network: the tap, the method wrapper, the interceptor chain and the handler's freshness headers, around a
// handler that returns a response already built. Its allocs/op are the
// gateway's own allocations per call. BenchmarkRPC drives the real server
// over loopback TCP, for profiles of the whole call.
//
// They live in package server so that the chain can be assembled from its
// parts exactly as New assembles it.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// The benchmark catalogue: 100 groups of 50 looks (5,000 avatars) and
// 2,000 voices, as scripts/bench.sh's fake HeyGen serves them.
const (
	benchSeed      = 20241125
	benchGroups    = 100
	benchLooks     = 50
	benchVoices    = 2000
	benchPageSize  = 50
	benchKey       = "bench-key-not-secret"
	benchToken     = "hgt_bench-token-not-secret"
	benchCallerLog = "bench"
)

// benchWorld is a crawled catalogue, shared by every benchmark of a run.
type benchWorld struct {
	fake   *fakeheygen.Server
	client *heygen.Client
	set    *catalogue.Set
	lookID string
}

var (
	worldOnce sync.Once
	world     *benchWorld
	worldErr  error
)

func loadWorld(tb testing.TB) *benchWorld {
	tb.Helper()
	worldOnce.Do(func() {
		fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: benchKey,
			Catalogue: fakeheygen.GenerateCatalogue(benchSeed, benchGroups, benchLooks),
			Voices:    append(fakeheygen.DemoVoices(), fakeheygen.GenerateVoices(benchSeed, benchVoices-312)...)})
		if err != nil {
			worldErr = err
			return
		}
		client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: benchKey})
		if err != nil {
			worldErr = err
			return
		}
		set := catalogue.New(client, catalogue.Options{RefreshInterval: time.Hour})
		if err := set.Refresh(context.Background()); err != nil {
			worldErr = err
			return
		}
		snap := set.Avatars.Snapshot()
		id := ""
		if a, ok := snap.Get(fakeheygen.GenerateCatalogue(benchSeed, benchGroups, benchLooks).Looks[benchLooks*benchGroups/2].ID); ok {
			id = a.GetId()
		}
		world = &benchWorld{fake: fake, client: client, set: set, lookID: id}
	})
	if worldErr != nil {
		tb.Fatal(worldErr)
	}
	if world.set.Avatars.Snapshot().Len() != benchGroups*benchLooks || world.lookID == "" {
		tb.Fatalf("benchmark catalogue has %d avatars, want %d", world.set.Avatars.Snapshot().Len(), benchGroups*benchLooks)
	}
	return world
}

// benchConfig is a gateway configuration as scripts/bench.sh runs the
// binary: demo (JSON logs at info, no metrics, no caller auth) and
// production (the same logs, metrics, a callers file with a bearer token).
type benchConfig struct {
	name       string
	metrics    bool
	tokens     bool
	logLevel   slog.Level
	logDiscard bool // no log handler at all
}

var benchConfigs = []benchConfig{
	{name: "demo", logLevel: slog.LevelInfo},
	{name: "production", metrics: true, tokens: true, logLevel: slog.LevelInfo},
}

func (c benchConfig) options(tb testing.TB, w *benchWorld) Options {
	tb.Helper()
	// Formatted and discarded: the benchmark measures building the lines.
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: c.logLevel})) //nolint:sloglint // the JSON handler's work is what is measured
	if c.logDiscard {
		log = slog.New(slog.DiscardHandler)
	}
	o := Options{Client: w.client, Catalogue: w.set, Logger: log, ProbeInterval: time.Hour, MaxInFlight: 1024}
	if !c.logDiscard {
		// As the binary runs with JSON logs: the gateway encodes the
		// per-call info lines itself (callline.go).
		o.JSONLogOutput = io.Discard
	}
	if c.metrics {
		o.Metrics = NewMetrics()
	}
	if c.tokens {
		store := NewTokenStore()
		if err := store.Apply([]byte(benchCallerLog + ": " + HashToken(benchToken) + "\n")); err != nil {
			tb.Fatal(err)
		}
		o.Auth = &Authenticator{Tokens: store}
	}
	return o
}

// benchRPC is one RPC of the benchmarks, with its request encoded once.
type benchRPC struct {
	name    string
	method  string
	request func(w *benchWorld) proto.Message
}

var benchRPCs = []benchRPC{
	{"list", "/heygen.v1.AvatarsService/ListAvatars", func(*benchWorld) proto.Message {
		return &heygenv1.ListAvatarsRequest{PageSize: benchPageSize}
	}},
	{"get", "/heygen.v1.AvatarsService/GetAvatar", func(w *benchWorld) proto.Message {
		return &heygenv1.GetAvatarRequest{AvatarId: w.lookID}
	}},
	{"voices", "/heygen.v1.VoicesService/ListVoices", func(*benchWorld) proto.Message {
		return &heygenv1.ListVoicesRequest{PageSize: benchPageSize}
	}},
	{"health", "/grpc.health.v1.Health/Check", func(*benchWorld) proto.Message {
		return &healthpb.HealthCheckRequest{}
	}},
}

// rawCodec sends pre-encoded requests and only counts the bytes of
// responses, so that the benchmark's client costs little next to the
// server. Its name is "proto": the server sees ordinary protobuf calls.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*int) = data.Len()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// BenchmarkRPC drives the real server (New, with the benchmark catalogue)
// over loopback TCP: 8 callers on 4 connections, the client sending
// pre-encoded requests and not decoding responses. ns/op is per call
// with client and server sharing the machine.
func BenchmarkRPC(b *testing.B) {
	w := loadWorld(b)
	for _, cfg := range benchConfigs {
		b.Run(cfg.name, func(b *testing.B) {
			srv, err := New(cfg.options(b, w))
			if err != nil {
				b.Fatal(err)
			}
			srv.reporter.hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = srv.Serve(lis) }()
			defer srv.Stop()
			conns := make([]*grpc.ClientConn, 4)
			for i := range conns {
				conns[i], err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = conns[i].Close() }()
			}
			ctx := context.Background()
			if cfg.tokens {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+benchToken)
			}
			for _, rpc := range benchRPCs {
				b.Run(rpc.name, func(b *testing.B) {
					req, err := proto.Marshal(rpc.request(w))
					if err != nil {
						b.Fatal(err)
					}
					var size int
					if err := conns[0].Invoke(ctx, rpc.method, &req, &size, grpc.ForceCodecV2(rawCodec{})); err != nil || size == 0 {
						b.Fatalf("%s: %d bytes, %v", rpc.method, size, err)
					}
					var next sync.Mutex
					conn := 0
					b.SetParallelism(4) // 8 callers on 2 CPUs
					b.ReportAllocs()
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						next.Lock()
						c := conns[conn%len(conns)]
						conn++
						next.Unlock()
						for pb.Next() {
							var n int
							if err := c.Invoke(ctx, rpc.method, &req, &n, grpc.ForceCodecV2(rawCodec{})); err != nil || n != size {
								b.Errorf("%s: %d bytes (want %d), %v", rpc.method, n, size, err)
								return
							}
						}
					})
				})
			}
		})
	}
}

// chainBench is the gateway's per-call machinery, outside grpc-go: the
// tap, the method wrapper and the interceptor chain of a server built by
// New with a configuration.
type chainBench struct {
	srv   *Server
	unary grpc.UnaryServerInterceptor
	info  map[string]*grpc.UnaryServerInfo
	// header is the incoming metadata of the context headerOf.
	headerOf context.Context
	header   metadata.MD
}

func newChainBench(tb testing.TB, w *benchWorld, cfg benchConfig) *chainBench {
	tb.Helper()
	srv, err := New(cfg.options(tb, w))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Stop)
	cb := &chainBench{srv: srv, unary: chainUnary(srv.layers.unary), info: map[string]*grpc.UnaryServerInfo{}}
	for _, rpc := range benchRPCs {
		cb.info[rpc.name] = &grpc.UnaryServerInfo{FullMethod: rpc.method}
	}
	return cb
}

// chainUnary chains interceptors as grpc.ChainUnaryInterceptor does.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var next func(i int) grpc.UnaryHandler
		next = func(i int) grpc.UnaryHandler {
			if i == len(ics) {
				return handler
			}
			return func(ctx context.Context, req any) (any, error) { return ics[i](ctx, req, info, next(i+1)) }
		}
		return next(0)(ctx, req)
	}
}

// call runs one call through the machinery the way grpc-go does: the tap,
// the method wrapper around a handler shaped as the generated ones are,
// the interceptors, and the end of the stream.
func (cb *chainBench) call(base context.Context, method string, info *grpc.UnaryServerInfo, req any, handler grpc.UnaryHandler) error {
	ctx, cancel := context.WithCancel(base)
	defer cancel() // the stream ends
	ctx = grpc.NewContextWithServerTransportStream(ctx, &benchStream{method: method})
	l := cb.srv.layers
	// grpc-go gives the tap the incoming metadata it put in the context
	// (the same map; copied here once per base context, not per call).
	if cb.headerOf != base {
		cb.headerOf = base
		cb.header, _ = metadata.FromIncomingContext(base)
	}
	ctx, err := l.adm.admit(ctx, &tap.Info{FullMethodName: method, Header: cb.header})
	if err != nil {
		return err
	}
	generated := func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		if err := dec(req); err != nil {
			return nil, err
		}
		return ic(ctx, req, info, handler)
	}
	_, err = l.rec.observeUnary(method, generated)(nil, ctx, func(any) error { return nil }, cb.unary)
	return err
}

// benchStream stands for grpc-go's stream in a call's context: it takes
// the response headers as the real one does (merged under a lock).
type benchStream struct {
	method string
	mu     sync.Mutex
	header metadata.MD
}

func (s *benchStream) Method() string { return s.method }

func (s *benchStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}

// SendHeader takes md as the stream's headers when it has none yet, as
// grpc-go's does (and writes them).
func (s *benchStream) SendHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.header.Len() > 0 {
		s.header = metadata.Join(s.header, md)
	} else {
		s.header = md
	}
	return nil
}

func (s *benchStream) SetTrailer(metadata.MD) error { return nil }

// BenchmarkChain measures the gateway's own per-call cost around a
// handler that returns a prepared response (the cached page, the voice
// page, the avatar, SERVING), with the real handler's freshness headers
// for the catalogue calls. Compare with the bare handler (no gateway
// machinery: what a bare grpc-go server pays on top of the transport).
func BenchmarkChain(b *testing.B) {
	w := loadWorld(b)
	responses := map[string]any{}
	for _, rpc := range benchRPCs {
		responses[rpc.name] = prepared(b, w, rpc)
	}
	for _, cfg := range benchConfigs {
		b.Run(cfg.name, func(b *testing.B) {
			cb := newChainBench(b, w, cfg)
			base, cancel := chainBase(cfg)
			defer cancel()
			for _, rpc := range benchRPCs {
				b.Run(rpc.name, func(b *testing.B) {
					resp := responses[rpc.name]
					meta := catalogue.Meta{Source: catalogue.SourceFresh, Age: 42 * time.Second, HasAge: true}
					catalogueCall := rpc.name != "health"
					handler := func(ctx context.Context, _ any) (any, error) {
						if catalogueCall {
							cb.srv.answered(ctx, meta)
						}
						return resp, nil
					}
					info := cb.info[rpc.name]
					req := rpc.request(w)
					b.ReportAllocs()
					for b.Loop() {
						if err := cb.call(base, rpc.method, info, req, handler); err != nil {
							b.Fatal(err)
						}
						// Let anything the stream's end starts run, as
						// the server's would.
						runtime.Gosched()
					}
				})
			}
		})
	}
}

// chainBase is a call's context as grpc-go's stream gives it to the
// gateway: the metadata (the caller's token when cfg has tokens), the
// peer (its address as the gateway's listener gives it), the caller's
// deadline (grpcload and mesh probes send one).
func chainBase(cfg benchConfig) (context.Context, context.CancelFunc) {
	md := metadata.MD{}
	if cfg.tokens {
		md.Set("authorization", "Bearer "+benchToken)
	}
	base := peer.NewContext(metadata.NewIncomingContext(context.Background(), md),
		&peer.Peer{Addr: newPeerAddr(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}), LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50051}})
	return context.WithTimeout(base, time.Hour)
}

// prepared is the response the handler of rpc gives, built once.
func prepared(tb testing.TB, w *benchWorld, rpc benchRPC) any {
	tb.Helper()
	ctx := context.Background()
	switch rpc.name {
	case "list":
		p, err := w.set.Avatars.List(ctx, catalogue.AvatarFilter{}, "", benchPageSize)
		if err != nil {
			tb.Fatal(err)
		}
		return &heygenv1.ListAvatarsResponse{Avatars: p.Items, NextPageToken: p.NextPageToken}
	case "get":
		a, _, err := w.set.Avatars.GetEncoded(ctx, w.lookID)
		if err != nil {
			tb.Fatal(err)
		}
		return &heygenv1.GetAvatarResponse{Avatar: a}
	case "voices":
		p, err := w.set.Voices.List(ctx, catalogue.VoiceFilter{}, "", benchPageSize)
		if err != nil {
			tb.Fatal(err)
		}
		return &heygenv1.ListVoicesResponse{Voices: p.Items, NextPageToken: p.NextPageToken}
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}
}

// BenchmarkHandler measures the handlers alone, without gRPC: validation,
// the catalogue read (filter, page token) and the response; the freshness
// headers cannot be sent outside an RPC and fail fast.
func BenchmarkHandler(b *testing.B) {
	w := loadWorld(b)
	srv, err := New(Options{Client: w.client, Catalogue: w.set})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	av, vs := &avatarsServer{Server: srv}, &voicesServer{Server: srv}
	ctx := context.Background()
	cases := map[string]func() error{
		"list": func() error {
			_, err := av.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: benchPageSize})
			return err
		},
		"get": func() error {
			_, err := av.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: w.lookID})
			return err
		},
		"voices": func() error {
			_, err := vs.ListVoices(ctx, &heygenv1.ListVoicesRequest{PageSize: benchPageSize})
			return err
		},
	}
	for _, name := range []string{"list", "get", "voices"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := cases[name](); err != nil && !strings.Contains(err.Error(), "header") {
					b.Fatal(err)
				}
			}
		})
	}
}
