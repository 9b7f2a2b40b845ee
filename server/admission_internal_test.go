package server

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// TestAdmittedPlacesAndTheResponseContext: a call gives its place back
// as its handler returns, with its own deadline or the default one; the
// default deadline's context, which grpc-go writes the response under,
// stays alive until the stream ends.
func TestAdmittedPlacesAndTheResponseContext(t *testing.T) {
	const method = "/grpc.health.v1.Health/Check" // open: no credentials needed
	a := &admission{maxStreams: 4, maxWatches: 1, defaultTimeout: time.Minute, methods: map[string]*methodInfo{method: newMethodInfo(method, "unary", nil)}}
	rec := &callRecorder{log: slog.New(slog.DiscardHandler), level: codeToLevel, usage: newUsage()}
	g := &guard{}
	_, _ = interceptorChain(rec, g) // gives the guard its recovery links
	info := &grpc.UnaryServerInfo{FullMethod: method}
	generated := func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		if err := dec(nil); err != nil {
			return nil, err
		}
		return ic(ctx, nil, info, func(context.Context, any) (any, error) { return "ok", nil })
	}
	call := func(base context.Context) context.Context {
		t.Helper()
		ctx, err := a.admit(base, &tap.Info{FullMethodName: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rec.observeUnary(method, generated)(nil, ctx, func(any) error { return nil }, g.unary); err != nil {
			t.Fatal(err)
		}
		if n := a.open.Load(); n != 0 {
			t.Fatalf("a call holds %d places after its handler returned, want 0", n)
		}
		return ctx
	}

	withDeadline, end := context.WithTimeout(context.Background(), time.Hour)
	call(withDeadline)
	end()

	stream, end := context.WithCancel(context.Background())
	ctx := call(stream)
	if err := ctx.Err(); err != nil {
		t.Fatalf("the context of a call given the default deadline ended (%v) before its response was written", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("a call without a deadline was not given the default one")
	}
	end() // the stream ends, and with it the default deadline's context
	if ctx.Err() == nil {
		t.Fatal("the default deadline's context outlived its stream")
	}
	if n := a.sweepOnce(); n != 0 || a.open.Load() != 0 {
		t.Fatalf("the sweeper gave back %d places of calls already given back (%d held)", n, a.open.Load())
	}
}

// sweepOnce sweeps the tap's streams now.
func (a *admission) sweepOnce() int { return a.live.sweep() }

// TestPlacesOfStreamsNoHandlerSaw: a stream that ends before any handler
// runs (an encoding the gateway cannot decompress, say) gets its place
// back from the sweeper, once, and at a full bound at once; a method that
// is not registered holds none.
func TestPlacesOfStreamsNoHandlerSaw(t *testing.T) {
	const method = "/grpc.health.v1.Health/Check"
	a := &admission{maxStreams: 4, maxWatches: 1, defaultTimeout: time.Minute, methods: map[string]*methodInfo{method: newMethodInfo(method, "unary", nil)}, log: slog.New(slog.DiscardHandler)}
	var states []*callState
	var ends []context.CancelFunc
	for range maxOpenStreams {
		stream, end := context.WithCancel(context.Background())
		ctx, err := a.admit(stream, &tap.Info{FullMethodName: method})
		if err != nil {
			t.Fatal(err)
		}
		states, ends = append(states, callStateFrom(ctx)), append(ends, end)
	}
	if _, err := a.admit(context.Background(), &tap.Info{FullMethodName: method}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("past the bound: %v, want RESOURCE_EXHAUSTED", err)
	}
	for _, end := range ends[:10] {
		end() // these streams end without a handler
	}
	if n := a.sweepOnce(); n != 10 || a.open.Load() != maxOpenStreams-10 {
		t.Fatalf("the sweep gave back %d places, %d held; want 10 and %d", n, a.open.Load(), maxOpenStreams-10)
	}
	if n := a.sweepOnce(); n != 0 {
		t.Fatalf("a second sweep gave back %d places again", n)
	}
	states[0].handled() // a handler that runs late gives nothing back twice
	states[20].handled()
	if n := a.open.Load(); n != maxOpenStreams-11 {
		t.Fatalf("%d places held, want %d", n, maxOpenStreams-11)
	}
	// At a full bound, a stream sweeps before it is refused.
	for range 11 {
		if _, err := a.admit(context.Background(), &tap.Info{FullMethodName: method}); err != nil {
			t.Fatal(err)
		}
	}
	ends[30]()
	a.live.lastSweep.Store(0)
	if _, err := a.admit(context.Background(), &tap.Info{FullMethodName: method}); err != nil {
		t.Fatalf("at a full bound with an ended stream in it: %v", err)
	}
	if _, err := a.admit(context.Background(), &tap.Info{FullMethodName: "/grpc.health.v1.Health/NoSuchMethod"}); err != nil {
		t.Fatalf("a method grpc-go answers UNIMPLEMENTED: %v, want it let through to that", err)
	}
	if n := a.open.Load(); n != maxOpenStreams {
		t.Fatalf("%d places held, want %d", n, maxOpenStreams)
	}
	for _, end := range ends {
		end()
	}
}

// TestPeerAddressFormattedOnce: the listener formats a connection's remote
// address once, so the per-call line's peer.address costs no allocation.
func TestPeerAddressFormattedOnce(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := (&connLimiter{max: 1}).wrap(lis)
	defer func() { _ = l.Close() }()
	local := make(chan string, 1)
	go func() {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			local <- err.Error()
			return
		}
		defer func() { _ = c.Close() }()
		local <- c.LocalAddr().String()
		time.Sleep(time.Second)
	}()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: conn.RemoteAddr()})
	want := <-local
	var got string
	if n := testing.AllocsPerRun(100, func() { got, _ = peerAddress(ctx) }); n != 0 {
		t.Errorf("peerAddress allocates %v times a call, want 0", n)
	}
	if got != want {
		t.Errorf("peer address %q, want %q", got, want)
	}
}
