package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"
)

// TestAdmittedPlacesAndTheResponseContext: a call with its own deadline
// gives its place back as its handler returns; a call the tap gave the
// default deadline keeps that deadline's context, which grpc-go writes
// the response under, alive until its stream ends, and gives its place
// back then.
func TestAdmittedPlacesAndTheResponseContext(t *testing.T) {
	const method = "/grpc.health.v1.Health/Check" // open: no credentials needed
	a := &admission{maxStreams: 4, maxWatches: 1, defaultTimeout: time.Minute, streaming: map[string]bool{}}
	g := &guard{}
	call := func(base context.Context) context.Context {
		t.Helper()
		ctx, err := a.admit(base, &tap.Info{FullMethodName: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return "ok", nil }); err != nil {
			t.Fatal(err)
		}
		return ctx
	}

	withDeadline, end := context.WithTimeout(context.Background(), time.Hour)
	call(withDeadline)
	if n := a.open.Load(); n != 0 {
		t.Errorf("a call with its own deadline holds %d places after its handler returned, want 0", n)
	}
	end()

	stream, end := context.WithCancel(context.Background())
	ctx := call(stream)
	if err := ctx.Err(); err != nil {
		t.Fatalf("the context of a call given the default deadline ended (%v) before its response was written", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("a call without a deadline was not given the default one")
	}
	end() // the stream ends
	deadline := time.Now().Add(5 * time.Second)
	for a.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a call given the default deadline still holds its place 5 s after its stream ended")
		}
		time.Sleep(time.Millisecond)
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
