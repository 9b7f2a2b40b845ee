package server

// Benchmarks of the catalogue's hot paths on a 5,000-avatar catalogue
// (heygentest.GenerateCatalogue with 100 groups of 50 looks), run by
// scripts/bench.sh and by hand:
//
//	go test -run '^$' -bench . -benchmem ./server/
//	go test -run '^$' -bench 'ListAvatarsRPC/log=info' -cpuprofile cpu.out ./server/ && go tool pprof -top cpu.out
//
// They live in package server so that the unexported pieces (the snapshot
// filter, page tokens, buildSnapshot, crawl) can be measured one by one.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/heygen/heygentest"
)

// The benchmark catalogue: 100 groups x 50 looks = 5,000 avatars.
const (
	benchSeed          = 20241125
	benchGroups        = 100
	benchLooksPerGroup = 50
	benchPageSize      = 50
	benchKey           = "bench-key-not-secret"
)

// benchData is the benchmark input, built once: the generated catalogue,
// the same items decoded into the HeyGen client's types (as a crawl
// delivers them to buildSnapshot) and the snapshot built from them.
type benchData struct {
	cat    heygentest.Catalogue
	looks  map[heygenv1.Ownership][]heygen.Look
	groups map[heygenv1.Ownership][]heygen.Group
	snap   *Snapshot
}

var (
	benchOnce sync.Once
	bench     *benchData
)

func loadBench(tb testing.TB) *benchData {
	tb.Helper()
	benchOnce.Do(func() {
		cat := heygentest.GenerateCatalogue(benchSeed, benchGroups, benchLooksPerGroup)
		d := &benchData{cat: cat, looks: map[heygenv1.Ownership][]heygen.Look{}, groups: map[heygenv1.Ownership][]heygen.Group{}}
		own := map[string]heygenv1.Ownership{
			heygentest.OwnershipPublic:  heygenv1.Ownership_OWNERSHIP_PUBLIC,
			heygentest.OwnershipPrivate: heygenv1.Ownership_OWNERSHIP_PRIVATE,
		}
		// Through JSON, as the client decodes HeyGen's answers.
		for i := range cat.Looks {
			var l heygen.Look
			mustRoundTrip(&cat.Looks[i], &l)
			o := own[cat.Looks[i].Ownership]
			d.looks[o] = append(d.looks[o], l)
		}
		for i := range cat.Groups {
			var g heygen.Group
			mustRoundTrip(&cat.Groups[i], &g)
			o := own[cat.Groups[i].Ownership]
			d.groups[o] = append(d.groups[o], g)
		}
		d.snap = buildSnapshot(time.Now(), d.looks, d.groups)
		bench = d
	})
	if n, _ := bench.snap.Len(); n != benchGroups*benchLooksPerGroup {
		tb.Fatalf("benchmark snapshot has %d avatars, want %d", n, benchGroups*benchLooksPerGroup)
	}
	return bench
}

func mustRoundTrip(from, to any) {
	b, err := json.Marshal(from)
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		panic(err)
	}
}

// listCase is one ListAvatars request of the benchmarks.
type listCase struct {
	name string
	req  func(d *benchData) *heygenv1.ListAvatarsRequest
}

// listCases: the first page unfiltered; a selective filter (one group's
// 50 looks among 5,000, so the whole list is scanned); a text query
// (about 1 in 10 match); a tag; and an unfiltered page deep in the list,
// reached with a page token whose cursor is the 4,500th id.
var listCases = []listCase{
	{"no-filter", func(*benchData) *heygenv1.ListAvatarsRequest {
		return &heygenv1.ListAvatarsRequest{PageSize: benchPageSize}
	}},
	{"selective-group", func(d *benchData) *heygenv1.ListAvatarsRequest {
		return &heygenv1.ListAvatarsRequest{PageSize: benchPageSize, GroupId: d.cat.Groups[benchGroups/2].ID}
	}},
	{"selective-private-female-photo", func(*benchData) *heygenv1.ListAvatarsRequest {
		return &heygenv1.ListAvatarsRequest{PageSize: benchPageSize, Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE,
			AvatarType: heygenv1.AvatarType_AVATAR_TYPE_PHOTO_AVATAR, Gender: "female"}
	}},
	{"query", func(*benchData) *heygenv1.ListAvatarsRequest {
		return &heygenv1.ListAvatarsRequest{PageSize: benchPageSize, Query: "sweater"}
	}},
	{"tag", func(*benchData) *heygenv1.ListAvatarsRequest {
		return &heygenv1.ListAvatarsRequest{PageSize: benchPageSize, Tag: "holiday"}
	}},
	{"deep-page-token", func(d *benchData) *heygenv1.ListAvatarsRequest {
		f := avatarFilter{}
		after := d.snap.avatars[4500-1].GetId()
		return &heygenv1.ListAvatarsRequest{PageSize: benchPageSize,
			PageToken: encodePageToken(catalogueAvatarsKind, filterFingerprint(f.canonical()), []byte(after))}
	}},
}

// newBenchCatalogue returns a catalogue already holding snap, with a
// client that is never called.
func newBenchCatalogue(tb testing.TB, snap *Snapshot) *Catalogue {
	tb.Helper()
	client, err := heygen.New(heygen.Options{BaseURL: "http://127.0.0.1:1", APIKey: benchKey})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewCatalogue(CatalogueOptions{Client: client})
	if err != nil {
		tb.Fatal(err)
	}
	c.snap.Store(snap)
	return c
}

// BenchmarkSnapshotList measures the filter alone: one page of 50 out of
// 5,000 avatars from the snapshot, the cursor already decoded.
func BenchmarkSnapshotList(b *testing.B) {
	d := loadBench(b)
	for _, lc := range listCases {
		b.Run(lc.name, func(b *testing.B) {
			req := lc.req(d)
			f := avatarFilter{groupID: req.GetGroupId(), avatarType: req.GetAvatarType(), ownership: req.GetOwnership(),
				query: req.GetQuery(), gender: req.GetGender(), engine: req.GetSupportedEngine(),
				orientation: req.GetPreferredOrientation(), tag: req.GetTag()}
			after, err := catalogueCursor(req.GetPageToken(), catalogueAvatarsKind, filterFingerprint(f.canonical()))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				page, _ := d.snap.listAvatars(&f, after, benchPageSize)
				if len(page) == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
}

// BenchmarkListAvatarsHandler measures the whole handler without gRPC:
// validation, filter fingerprint, page token, the filter and the next
// token (the freshness header cannot be sent outside an RPC and is
// skipped after the metadata is built).
func BenchmarkListAvatarsHandler(b *testing.B) {
	d := loadBench(b)
	s := &avatarsServer{catalogue: newBenchCatalogue(b, d.snap)}
	ctx := context.Background()
	for _, lc := range listCases {
		b.Run(lc.name, func(b *testing.B) {
			req := lc.req(d)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := s.ListAvatars(ctx, req)
				if err != nil || len(resp.GetAvatars()) == 0 {
					b.Fatalf("ListAvatars: %d avatars, %v", len(resp.GetAvatars()), err)
				}
			}
		})
	}
}

// BenchmarkPageToken measures sealing and opening a catalogue page token
// and the filter fingerprint every list call computes.
func BenchmarkPageToken(b *testing.B) {
	f := avatarFilter{ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC, query: "sweater"}
	fp := filterFingerprint(f.canonical())
	payload := []byte("Abigail_CasualSweater_2024112501")
	token := encodePageToken(catalogueAvatarsKind, fp, payload)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = encodePageToken(catalogueAvatarsKind, fp, payload)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodePageToken(token, catalogueAvatarsKind, fp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("filter-fingerprint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = filterFingerprint(f.canonical())
		}
	})
}

// BenchmarkBuildSnapshot measures converting, de-duplicating, sorting and
// indexing 5,000 crawled looks and 100 groups.
func BenchmarkBuildSnapshot(b *testing.B) {
	d := loadBench(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = buildSnapshot(now, d.looks, d.groups)
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkCrawl measures a whole crawl of the 5,000-avatar catalogue from
// an in-process fake HeyGen over loopback HTTP with no added latency:
// 100 look pages and 2 group pages fetched four lists at a time, decoded,
// then indexed. It reports the heap the last crawl's snapshot keeps alive
// (live heap after GC, catalogue installed, minus before): the catalogue's
// steady-state memory.
func BenchmarkCrawl(b *testing.B) {
	d := loadBench(b)
	fake, err := heygentest.NewServer(heygentest.Options{APIKey: benchKey, Catalogue: d.cat})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = fake.Close() }()
	client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var c *Catalogue
	before := heapInUse()
	b.ReportAllocs()
	for b.Loop() {
		c, err = NewCatalogue(CatalogueOptions{Client: client})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := heapInUse()
	if n, _ := c.snap.Load().Len(); n != benchGroups*benchLooksPerGroup {
		b.Fatalf("crawled %d avatars", n)
	}
	b.ReportMetric(float64(int64(after)-int64(before))/(1<<20), "retained-MiB")
	b.ReportMetric(float64(c.snap.Load().calls), "heygen-calls")
	runtime.KeepAlive(c)
}

// rpcBench is a real gateway (server.New with a catalogue holding the
// benchmark snapshot) on a loopback TCP port, and a client connection.
type rpcBench struct {
	srv  *Server
	conn *grpc.ClientConn
}

func startRPCBench(b *testing.B, log *slog.Logger) *rpcBench {
	b.Helper()
	d := loadBench(b)
	cat := newBenchCatalogue(b, d.snap)
	srv, err := New(Options{Client: cat.opts.Client, Catalogue: cat, Logger: log, ProbeInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return &rpcBench{srv: srv, conn: conn}
}

// rawCodec is a client-side codec that sends pre-encoded requests and
// only counts the bytes of responses, so that an in-process RPC benchmark
// spends its time (and its CPU profile) in the server, not in decoding.
// Its name is "proto": the server sees ordinary protobuf calls.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*int) = data.Len()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// nullWriter discards what it is given: a log destination that costs
// nothing, so that a benchmark measures formatting the log lines only.
type nullWriter struct{}

func (nullWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkListAvatarsRPC drives the real gRPC server (server.New with the
// production interceptor chain and a catalogue holding the 5,000-avatar
// snapshot) end to end over loopback TCP: ListAvatars page_size 50 (about
// 28 KB), 8 callers at once on one connection (b.RunParallel with 4
// goroutines per CPU). The client does not decode the responses (see
// rawCodec), so ns/op and a CPU profile are mostly the server's work plus
// the transport. log=info is the production path (one JSON line per call at
// info level, formatted and then discarded); log=off discards logging, to show
// what the per-call log line costs. health is grpc.health.v1.Health/Check
// on the same server, for scale.
func BenchmarkListAvatarsRPC(b *testing.B) {
	loggers := []struct {
		name string
		log  *slog.Logger
	}{
		{"log=info", slog.New(slog.NewJSONHandler(nullWriter{}, &slog.HandlerOptions{Level: slog.LevelInfo}))},
		{"log=off", slog.New(slog.DiscardHandler)},
	}
	reqBytes, err := proto.Marshal(&heygenv1.ListAvatarsRequest{PageSize: benchPageSize})
	if err != nil {
		b.Fatal(err)
	}
	const method = "/heygen.v1.AvatarsService/ListAvatars"
	for _, l := range loggers {
		b.Run(l.name, func(b *testing.B) {
			rb := startRPCBench(b, l.log)
			// Once, decoded: the page is the full one.
			resp, err := heygenv1.NewAvatarsServiceClient(rb.conn).ListAvatars(context.Background(), &heygenv1.ListAvatarsRequest{PageSize: benchPageSize})
			if err != nil || len(resp.GetAvatars()) != benchPageSize {
				b.Fatalf("ListAvatars: %d avatars, %v", len(resp.GetAvatars()), err)
			}
			size := proto.Size(resp)
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					var n int
					if err := rb.conn.Invoke(ctx, method, &reqBytes, &n, grpc.ForceCodecV2(rawCodec{})); err != nil || n != size {
						b.Errorf("ListAvatars: %d bytes (want %d), %v", n, size, err)
						return
					}
				}
			})
			b.SetBytes(int64(size))
		})
	}
	b.Run("health", func(b *testing.B) {
		rb := startRPCBench(b, loggers[0].log)
		client := healthpb.NewHealthClient(rb.conn)
		req := &healthpb.HealthCheckRequest{}
		b.SetParallelism(4)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if _, err := client.Check(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestBenchFixtures keeps the benchmarks honest: every case answers a
// full page without error through the handler, and the deep-page token
// continues after the 4,500th avatar. It checks the responses as callers
// decode them, so it holds however the handler builds them.
func TestBenchFixtures(t *testing.T) {
	d := loadBench(t)
	s := &avatarsServer{catalogue: newBenchCatalogue(t, d.snap)}
	for _, lc := range listCases {
		out, err := s.ListAvatars(context.Background(), lc.req(d))
		if err != nil {
			t.Fatalf("%s: %v", lc.name, err)
		}
		// Check what a caller receives: the response as encoded on the wire.
		b, err := proto.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		resp := &heygenv1.ListAvatarsResponse{}
		if err := proto.Unmarshal(b, resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.GetAvatars()) != benchPageSize {
			t.Errorf("%s: %d avatars, want a full page of %d", lc.name, len(resp.GetAvatars()), benchPageSize)
		}
		if lc.name == "deep-page-token" && resp.GetAvatars()[0].GetId() != d.snap.avatars[4500].GetId() {
			t.Errorf("deep page starts at %s, want %s", resp.GetAvatars()[0].GetId(), d.snap.avatars[4500].GetId())
		}
	}
}
