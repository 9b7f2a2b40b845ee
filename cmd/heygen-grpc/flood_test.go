package main

// The flood test runs the gateway binary, built as it ships (not with the
// race detector the tests may run under, which multiplies memory), in a
// child process, so that its memory can be read apart from the attackers'.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/server"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// gatewayBinary builds ./cmd/heygen-grpc once per test run.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "heygen-grpc-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "heygen-grpc")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// startChild runs the gateway in a child process and returns its address
// and process.
func startChild(t *testing.T, args ...string) (string, *os.Process) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gatewayBinary(t), append([]string{"-addr", addr}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.Dir = t.TempDir() // no .env file
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("gateway log (last 3000 bytes):\n%s", tail(b, 3000))
		}
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: server.AvatarsServiceName})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return addr, cmd.Process
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not become ready: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// peakRSS returns a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// rawConn is an HTTP/2 connection driven frame by frame, to send what no
// well-behaved gRPC client sends.
type rawConn struct {
	conn net.Conn
	mu   sync.Mutex
	fr   *http2.Framer
	next uint32
	// rst counts streams the server refused or reset; closed, whether the
	// server closed the connection.
	refused atomic.Int64
	closed  atomic.Bool
}

func dialRaw(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		_ = c.Close()
		return nil, err
	}
	r := &rawConn{conn: c, fr: http2.NewFramer(c, c), next: 1}
	r.fr.MaxHeaderListSize = 1 << 20
	if err := r.fr.WriteSettings(); err != nil {
		_ = c.Close()
		return nil, err
	}
	go r.read()
	return r, nil
}

// read answers the server's settings and pings and counts refusals, so
// the server's writes never block on us.
func (r *rawConn) read() {
	defer r.closed.Store(true)
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				r.mu.Lock()
				_ = r.fr.WriteSettingsAck()
				r.mu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				r.mu.Lock()
				_ = r.fr.WritePing(true, f.Data)
				r.mu.Unlock()
			}
		case *http2.RSTStreamFrame:
			r.refused.Add(1)
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() { // a trailers-only answer: refused or failed at once
				r.refused.Add(1)
			}
		}
	}
}

// openSilent opens a stream to method with header bytes of junk metadata
// and never sends its message.
func (r *rawConn) openSilent(authority, method string, junk int) error {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: method},
		{Name: ":authority", Value: authority}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	} {
		_ = enc.WriteField(f)
	}
	if junk > 0 {
		_ = enc.WriteField(hpack.HeaderField{Name: "x-junk", Value: strings.Repeat("j", junk), Sensitive: true})
	}
	block := buf.Bytes()
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.next
	r.next += 2
	const frameMax = 16 << 10
	first := block[:min(len(block), frameMax)]
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(block) <= frameMax}); err != nil {
		return err
	}
	for rest := block[len(first):]; len(rest) > 0; {
		chunk := rest[:min(len(rest), frameMax)]
		rest = rest[len(chunk):]
		if err := r.fr.WriteContinuation(id, len(rest) == 0, chunk); err != nil {
			return err
		}
	}
	return nil
}

// TestFloodBeforeAuthenticationStaysBounded: whatever unauthenticated
// clients do (megabytes of metadata, streams that never send, thousands
// of Watch streams and reflection streams, many idle connections), the
// gateway's memory stays bounded and an authenticated caller is served.
func TestFloodBeforeAuthenticationStaysBounded(t *testing.T) {
	token, hash, err := server.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	callers := filepath.Join(t.TempDir(), "callers")
	if err := os.WriteFile(callers, []byte("legit: "+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, proc := startChild(t, "-demo", "-callers-file", callers, "-log-level", "warn")
	before := peakRSS(t, proc.Pid)

	// The legitimate caller's connection is up before the flood, as a
	// service's long-lived channel would be.
	legit, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = legit.Close() }()
	avatars := heygenv1.NewAvatarsServiceClient(legit)
	call := func() error {
		cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), 10*time.Second)
		defer cancel()
		_, err := avatars.ListAvatars(cctx, &heygenv1.ListAvatarsRequest{PageSize: 50})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("before the flood: %v", err)
	}

	var (
		conns   []*rawConn
		dialErr atomic.Int64
		sent    atomic.Int64
	)
	defer func() {
		for _, c := range conns {
			_ = c.conn.Close()
		}
	}()
	dial := func(n int) []*rawConn {
		var out []*rawConn
		for range n {
			c, err := dialRaw(addr)
			if err != nil {
				dialErr.Add(1)
				continue
			}
			out = append(out, c)
			conns = append(conns, c)
		}
		return out
	}
	// A: unauthenticated calls to the gateway's services with 30 KB of
	// metadata each (270 MB in all, were it held), never sending their message.
	for _, c := range dial(60) {
		for range 150 {
			if c.openSilent(addr, "/heygen.v1.AvatarsService/ListAvatars", 30<<10) == nil {
				sent.Add(1)
			}
		}
	}
	// B: header lists of a megabyte, far past the bound.
	for _, c := range dial(50) {
		for range 20 {
			if c.openSilent(addr, "/heygen.v1.AvatarsService/GetAvatar", 1<<20) == nil {
				sent.Add(1)
			}
		}
	}
	// C: open services: health Watch and reflection streams that never end
	// or never send.
	for _, c := range dial(20) {
		for range 200 {
			_ = c.openSilent(addr, "/grpc.health.v1.Health/Watch", 8<<10)
			_ = c.openSilent(addr, "/"+reflectionpb.ServerReflection_ServiceDesc.ServiceName+"/ServerReflectionInfo", 8<<10)
			sent.Add(2)
		}
	}
	time.Sleep(2 * time.Second)
	if err := call(); err != nil {
		t.Fatalf("an authenticated call during the flood: %v", err)
	}
	// D: idle connections past the bound on connections.
	var idle []net.Conn
	for range 800 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			dialErr.Add(1)
			continue
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			_ = c.Close()
		}
	}()
	time.Sleep(2 * time.Second)
	if err := call(); err != nil {
		t.Fatalf("an authenticated call during the connection flood: %v", err)
	}
	var refused int64
	closed := 0
	for _, c := range conns {
		refused += c.refused.Load()
		if c.closed.Load() {
			closed++
		}
	}
	peak := peakRSS(t, proc.Pid)
	t.Logf("flood: %d streams sent on %d raw connections (%d refused or reset, %d connections closed by the gateway), 800 idle connections, %d dials failed; gateway peak RSS %d MiB (%d MiB before)",
		sent.Load(), len(conns), refused, closed, dialErr.Load(), peak>>20, before>>20)
	const limit = 200 << 20
	if peak > limit {
		t.Fatalf("the gateway's peak RSS was %d MiB under the flood, over the %d MiB goal", peak>>20, limit>>20)
	}
	if refused == 0 {
		t.Fatal("the gateway refused nothing: the flood was not exercised")
	}
}
