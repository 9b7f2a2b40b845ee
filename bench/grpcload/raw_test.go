package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loadstat"
)

const checkMethod = "/grpc.health.v1.Health/Check"

// healthServer serves grpc-go's health service on loopback, and records
// the authorization header and whether a deadline came with each call.
type healthServer struct {
	addr string
	mu   sync.Mutex
	auth map[string]int
	// noDeadline counts the calls that came without a deadline.
	noDeadline atomic.Int64
}

func startHealth(t *testing.T, opts ...grpc.ServerOption) *healthServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &healthServer{addr: lis.Addr().String(), auth: map[string]int{}}
	opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		hs.mu.Lock()
		hs.auth[strings.Join(md.Get("authorization"), ",")]++
		hs.mu.Unlock()
		if _, ok := ctx.Deadline(); !ok {
			hs.noDeadline.Add(1)
		}
		return h(ctx, req)
	}))
	s := grpc.NewServer(opts...)
	h := health.NewServer()
	h.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return hs
}

// rawLoad makes total calls of req over conns connections, callers at a
// time, and returns their report.
func rawLoad(t *testing.T, addr, token string, req proto.Message, conns, callers, total, want int) (loadstat.Report, error) {
	t.Helper()
	return rawLoadWindow(t, addr, token, req, conns, callers, total, want, rawWindow)
}

func rawLoadWindow(t *testing.T, addr, token string, req proto.Message, conns, callers, total, want int, window uint32) (loadstat.Report, error) {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	call := rawRequest(addr, checkMethod, token, 10*time.Second, b)
	if len(call.header) >= len(call.first)/4 {
		t.Fatalf("later calls' header block is %d bytes, the first's %d: want indices into the table", len(call.header), len(call.first))
	}
	var rcs []*rawConn
	for range conns {
		rc, err := dialRaw(addr, call, 10*time.Second, window)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rc.close)
		rcs = append(rcs, rc)
	}
	var left atomic.Int64
	left.Store(int64(total))
	rec := loadstat.NewRecorder(total)
	start := time.Now()
	err = rawPhase(rcs, callers, func() bool { return left.Add(-1) >= 0 }, rec, want)
	return rec.Report(addr, callers, time.Since(start)), err
}

func TestRawClientMakesEveryCallAndChecksItsAnswer(t *testing.T) {
	hs := startHealth(t)
	serving := proto.Size(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})

	// 5,000 calls, 7 at a time over 3 connections: every one answered,
	// counted once, with the answer's bytes, the token and a deadline.
	rep, err := rawLoad(t, hs.addr, "tok", &healthpb.HealthCheckRequest{Service: "svc"}, 3, 7, 5000, serving)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 5000 || rep.OK != 5000 || rep.Errors != 0 {
		t.Fatalf("5,000 calls: %d made, %d OK, %d errors %v", rep.Requests, rep.OK, rep.Errors, rep.ErrorKinds)
	}
	if rep.Bytes != int64(5000*serving) {
		t.Errorf("bytes = %d, want %d", rep.Bytes, 5000*serving)
	}
	hs.mu.Lock()
	if hs.auth["Bearer tok"] != 5000 || len(hs.auth) != 1 {
		t.Errorf("the server saw authorization %v, want \"Bearer tok\" on all 5,000 calls", hs.auth)
	}
	hs.mu.Unlock()
	if n := hs.noDeadline.Load(); n != 0 {
		t.Errorf("%d calls came without a deadline", n)
	}

	// A status other than OK is an error named as grpc-go names it.
	rep, err = rawLoad(t, hs.addr, "", &healthpb.HealthCheckRequest{Service: "unknown"}, 2, 4, 100, serving)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK != 0 || rep.ErrorKinds["NotFound"] != 100 {
		t.Errorf("100 checks of an unknown service: %d OK, errors %v, want 100 NotFound", rep.OK, rep.ErrorKinds)
	}

	// An answer of the wrong size is an error.
	rep, err = rawLoad(t, hs.addr, "", &healthpb.HealthCheckRequest{Service: "svc"}, 1, 1, 10, serving+1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK != 0 || len(rep.ErrorKinds) != 1 || rep.Errors != 10 {
		t.Errorf("10 answers of an unexpected size: %d OK, errors %v, want 10 size errors", rep.OK, rep.ErrorKinds)
	}
}

func TestRawClientKeepsToTheServersStreamLimit(t *testing.T) {
	hs := startHealth(t, grpc.MaxConcurrentStreams(2))
	_, err := rawLoad(t, hs.addr, "", &healthpb.HealthCheckRequest{Service: "svc"}, 1, 3, 10, 2)
	if err == nil || !strings.Contains(err.Error(), "the server allows 2 streams") {
		t.Fatalf("3 calls at a time where the server allows 2: %v, want a refusal", err)
	}
}

func TestRawClientGivesTheConnectionWindowBack(t *testing.T) {
	// Answers of 64 KiB through a window of 1 MiB: 200 of them use the
	// connection's window twelve times over, so the client must give it
	// back as it reads (the product's client gives 2 GiB, the same way).
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answer := &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 64<<10)}
	s := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var req healthpb.HealthCheckRequest
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		return stream.SendMsg(answer)
	}))
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	rep, err := rawLoadWindow(t, lis.Addr().String(), "", &healthpb.HealthCheckRequest{}, 1, 2, 200, proto.Size(answer), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK != 200 {
		t.Fatalf("200 answers of 64 KiB: %d OK, errors %v", rep.OK, rep.ErrorKinds)
	}
}

func TestRawClientKeepsEveryCallerInFlight(t *testing.T) {
	// 7 callers over 3 connections (3, 2 and 2 calls at a time): with
	// every answer held 20 ms, the server sees all 7 at once.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var inFlight, most int
	answer := &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}
	s := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var req healthpb.HealthCheckRequest
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		return stream.SendMsg(answer)
	}))
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	rep, err := rawLoad(t, lis.Addr().String(), "", &healthpb.HealthCheckRequest{}, 3, 7, 70, proto.Size(answer))
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK != 70 {
		t.Fatalf("70 calls: %d OK, errors %v", rep.OK, rep.ErrorKinds)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 7 {
		t.Errorf("at most %d calls in flight, want the 7 callers'", most)
	}
}
