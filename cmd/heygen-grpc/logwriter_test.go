package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// writeCounter records each write the log makes, as a file would.
type writeCounter struct {
	mu      sync.Mutex
	writes  int
	largest int // the largest write
	buf     bytes.Buffer
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	w.largest = max(w.largest, len(p))
	return w.buf.Write(p)
}

func (w *writeCounter) state() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.buf.String()
}

// TestLogOutputBatchesInfoAndWritesWarnAtOnce: info lines reach the
// output together, within the flush interval and without anything else
// happening; a warn line is written at once with every line before it,
// in order; Close writes what is left, and lines after it are written
// directly.
func TestLogOutputBatchesInfoAndWritesWarnAtOnce(t *testing.T) {
	w := &writeCounter{}
	out := newLogOutput(w)
	log := newLogger(&config{logFormat: "json", logLevel: slog.LevelInfo}, out)

	for i := range 200 {
		log.Info("finished call", "n", i)
	}
	if n, _ := w.state(); n != 0 {
		t.Fatalf("%d writes right after 200 info lines, want them held for the flush", n)
	}
	deadline := time.Now().Add(5 * logFlushInterval)
	for {
		n, text := w.state()
		if strings.Count(text, "finished call") == 200 {
			if n > 3 {
				t.Fatalf("200 info lines took %d writes, want them batched", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("info lines not written %v after they were logged (flush interval %v): %d of 200", 5*logFlushInterval, logFlushInterval, strings.Count(text, "finished call"))
		}
		time.Sleep(5 * time.Millisecond)
	}

	log.Info("before the warning")
	log.Warn("HeyGen is slow")
	_, text := w.state()
	before, warn := strings.Index(text, "before the warning"), strings.Index(text, "HeyGen is slow")
	if before < 0 || warn < 0 || before > warn {
		t.Fatalf("a warn line must be written at once, after the lines before it: %q", text[max(0, len(text)-300):])
	}

	log.Info("the last line")
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if _, text := w.state(); !strings.Contains(text, "the last line") {
		t.Fatal("Close did not write the buffered lines")
	}
	log.Info("after close")
	if _, text := w.state(); !strings.Contains(text, "after close") {
		t.Fatal("a line logged after Close was not written at once")
	}
}

// TestLogWritesFitInHalfAPipe: 2 MB of info lines reach the output in
// writes of at most 32 KiB, half of a Linux pipe's default capacity, so
// that a flush into a container's output pipe does not wait for the
// runtime to drain it while every call that logs waits for the flush
// (logwriter.go).
func TestLogWritesFitInHalfAPipe(t *testing.T) {
	w := &writeCounter{}
	out := newLogOutput(w)
	log := newLogger(&config{logFormat: "json", logLevel: slog.LevelInfo}, out)
	pad := strings.Repeat("x", 200)
	for i := range 10000 {
		log.Info("finished call", "n", i, "pad", pad)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	writes, text := w.state()
	if n := strings.Count(text, "finished call"); n != 10000 {
		t.Fatalf("%d of 10000 lines written", n)
	}
	w.mu.Lock()
	largest := w.largest
	w.mu.Unlock()
	if largest > 32<<10 {
		t.Fatalf("a write of %d bytes: want at most 32 KiB, half a pipe", largest)
	}
	if want := len(text) / (32 << 10); writes > 2*want+2 {
		t.Fatalf("%d writes for %d bytes: want them batched, about %d", writes, len(text), want)
	}
}

// TestServingLineIsWrittenBeforeTheFirstAnswer: info lines wait in the
// log's buffer, but not the serving line. Whoever gets the first answer
// (a readiness probe, an operator with grpcurl) finds it in the log
// already: the line is written out before the server accepts a call.
func TestServingLineIsWrittenBeforeTheFirstAnswer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &writeCounter{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-demo", "-addr", addr}, env(nil), io.Discard, logs) }()

	// As soon as the port takes connections, ask for health, on a
	// connection that is already open.
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); conn == nil; {
		if conn, err = net.Dial("tcp", addr); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the server did not listen on %s: %v", addr, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return conn, nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if _, err := healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, text := logs.state(); !strings.Contains(text, `"msg":"serving heygen.v1.AvatarsService"`) {
		t.Fatalf("the first call was answered before the serving line was written; the log so far:\n%s", text)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
