package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

const canaryKey = "sk-CANARY-7c1e9f4b2d-heygen-grpc-must-never-log-this"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaultsAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "test.env")
	if err := os.WriteFile(envFile, []byte("HEYGEN_API_KEY="+canaryKey+"\nGRPC_ADDR=:7000\nLOG_LEVEL=debug\nHEYGEN_RETRY_ATTEMPTS=5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"-env-file", envFile}, env(map[string]string{"GRPC_ADDR": ":8000"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.apiKey != canaryKey {
		t.Error("the key from the .env file was not read")
	}
	if cfg.addr != ":8000" {
		t.Errorf("addr = %q: the real environment must win over .env", cfg.addr)
	}
	if cfg.retryAttempts != 5 || cfg.logLevel.String() != "DEBUG" {
		t.Errorf("retry attempts %d, log level %v: .env values not applied", cfg.retryAttempts, cfg.logLevel)
	}
	cfg, err = parseConfig([]string{"-env-file=" + envFile, "-addr", ":9000", "-heygen-retry-attempts", "2"}, env(map[string]string{"GRPC_ADDR": ":8000"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != ":9000" || cfg.retryAttempts != 2 {
		t.Errorf("flags must win over the environment: addr %q attempts %d", cfg.addr, cfg.retryAttempts)
	}

	// Defaults with only a key.
	_, err = parseConfig([]string{"-env-file", filepath.Join(dir, "missing-but-default.env")}, env(map[string]string{"HEYGEN_API_KEY": "k"}), io.Discard)
	if err == nil {
		t.Fatal("an explicitly named .env file that does not exist must be an error")
	}
	t.Chdir(dir) // no ./.env here
	cfg, err = parseConfig(nil, env(map[string]string{"HEYGEN_API_KEY": "k"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != ":50051" || cfg.baseURL != "https://api.heygen.com" || !cfg.reflection || cfg.logFormat != "json" ||
		cfg.probeInterval != 30*time.Second || cfg.retryMaxDelay != 30*time.Second || cfg.retryAttempts != 3 ||
		cfg.heapFloorMiB != 64 {
		t.Errorf("defaults wrong: %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	key := map[string]string{"HEYGEN_API_KEY": canaryKey}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"missing key", nil, map[string]string{}, "HEYGEN_API_KEY"},
		{"blank key", nil, map[string]string{"HEYGEN_API_KEY": "  "}, "HEYGEN_API_KEY"},
		{"unknown flag", []string{"-api-key", "x"}, key, "flag provided but not defined: -api-key"},
		{"bad url", []string{"-heygen-base-url", "ftp://x"}, key, "-heygen-base-url"},
		{"url with query", []string{"-heygen-base-url", "https://api.heygen.com/?x=1"}, key, "-heygen-base-url"},
		{"url without host", []string{"-heygen-base-url", "https://"}, key, "-heygen-base-url"},
		{"bad duration flag", []string{"-rpc-timeout", "soon"}, key, "-rpc-timeout"},
		{"bad env duration", nil, map[string]string{"HEYGEN_API_KEY": "k", "HEALTH_PROBE_INTERVAL": "often"}, "HEALTH_PROBE_INTERVAL"},
		{"bad env bool", nil, map[string]string{"HEYGEN_API_KEY": "k", "HEYGEN_DEMO": "yes please"}, "HEYGEN_DEMO"},
		{"zero attempts", []string{"-heygen-retry-attempts", "0"}, key, "-heygen-retry-attempts"},
		{"negative timeout", []string{"-heygen-attempt-timeout", "-1s"}, key, "-heygen-attempt-timeout"},
		{"log format", []string{"-log-format", "xml"}, key, "-log-format"},
		{"log level", []string{"-log-level", "loud"}, key, "-log-level"},
		{"stray argument", []string{"serve"}, key, "unexpected argument"},
		{"bad addr", []string{"-addr", "not an address"}, key, "-addr"},
		{"bad port", []string{"-addr", ":99999"}, key, "-addr"},
		{"bad metrics addr", []string{"-metrics-addr", "9090"}, key, "-metrics-addr"},
		{"bad create limit", []string{"-video-create-rate-limit", "fast"}, key, "-video-create-rate-limit"},
		{"bad create limits", []string{"-video-create-rate-limits", "a=1:0"}, key, "-video-create-rate-limits"},
		{"poll max below poll", []string{"-video-poll-interval", "10s", "-video-poll-max-interval", "5s"}, key, "-video-poll-max-interval"},
		{"zero heartbeat", []string{"-video-watch-heartbeat", "0s"}, key, "-video-watch-heartbeat"},
		{"negative watches", []string{"-video-max-watches", "-1"}, key, "-video-max-watches"},
		{"negative heap floor", []string{"-gc-heap-floor-mib", "-1"}, key, "-gc-heap-floor-mib"},
		{"bad env heap floor", nil, map[string]string{"HEYGEN_API_KEY": "k", "GC_HEAP_FLOOR_MIB": "64MiB"}, "GC_HEAP_FLOOR_MIB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, env(tt.env), io.Discard)
			var cerr *configError
			if !errors.As(err, &cerr) {
				t.Fatalf("got %v, want a configError", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), canaryKey) {
				t.Error("the error repeats the API key")
			}
		})
	}
	// A bad environment value is fine when a flag replaces it.
	if _, err := parseConfig([]string{"-health-probe-interval", "5s"}, env(map[string]string{"HEYGEN_API_KEY": "k", "HEALTH_PROBE_INTERVAL": "often"}), io.Discard); err != nil {
		t.Errorf("flag should override the bad env value: %v", err)
	}
	// Demo mode needs no key.
	if _, err := parseConfig([]string{"-demo"}, env(nil), io.Discard); err != nil {
		t.Errorf("-demo without a key: %v", err)
	}
	if _, err := parseConfig(nil, env(map[string]string{"HEYGEN_DEMO": "1"}), io.Discard); err != nil {
		t.Errorf("HEYGEN_DEMO=1 without a key: %v", err)
	}
	var usage bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, env(nil), &usage); !errors.Is(err, errHelp) || !strings.Contains(usage.String(), "-addr") {
		t.Errorf("-h: err %v, usage %q", err, usage.String())
	}
}

// lineWriter hands complete log lines to a channel as the binary writes them.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	all   bytes.Buffer
	lines chan map[string]any
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil {
			w.buf.Write(line)
			return len(p), nil
		}
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			select {
			case w.lines <- m:
			default:
			}
		}
	}
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// startRun runs the program in-process and returns the address it serves on.
func startRun(t *testing.T, args []string, environ map[string]string) (addr string, stop context.CancelFunc, done <-chan error, logs *lineWriter) {
	t.Helper()
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	logs = &lineWriter{lines: make(chan map[string]any, 1000)}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), env(environ), io.Discard, logs)
	}()
	timeout := time.After(10 * time.Second)
	for addr == "" {
		select {
		case l := <-logs.lines:
			if l["msg"] == "serving heygen.v1.AvatarsService" {
				addr, _ = l["addr"].(string)
			}
		case err := <-errc:
			t.Fatalf("run returned early: %v\n%s", err, logs.String())
		case <-timeout:
			t.Fatalf("the server did not start:\n%s", logs.String())
		}
	}
	t.Cleanup(cancel)
	return addr, cancel, errc, logs
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitServing waits (up to 10 s) until health reports service SERVING.
func waitServing(t *testing.T, conn *grpc.ClientConn, service string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && h.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %q: %v %v, want SERVING", service, h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDemoModeServes(t *testing.T) {
	addr, stop, done, logs := startRun(t, []string{"-demo"}, nil)
	conn := dial(t, addr)
	c := heygenv1.NewAvatarsServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetAvatars()) != 50 || resp.GetNextPageToken() == "" {
		t.Fatalf("demo ListAvatars returned %d avatars, next token %q", len(resp.GetAvatars()), resp.GetNextPageToken())
	}
	got, err := c.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: resp.GetAvatars()[0].GetId()})
	if err != nil || got.GetAvatar().GetId() != resp.GetAvatars()[0].GetId() {
		t.Fatalf("GetAvatar: %v %v", got, err)
	}
	// Health is recomputed every second: SERVING once the catalogue holds
	// every resource.
	waitServing(t, conn, "heygen.v1.AvatarsService")
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after shutdown, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown did not finish")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no 'stopped' log line:\n%s", logs.String())
	}
}

// TestGracefulShutdownFinishesCallsInFlight: a call that started before
// the signal completes successfully; health turns NOT_SERVING during the
// drain; the program then exits cleanly.
func TestGracefulShutdownFinishesCallsInFlight(t *testing.T) {
	inj := faults.New()
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: canaryKey, Catalogue: fakeheygen.DemoCatalogue(), Middleware: inj.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fake.Close() }()
	// The catalogue is off so that the call in flight really waits on
	// HeyGen (a catalogue answer would be instant).
	addr, stop, done, logs := startRun(t, []string{"-heygen-base-url", fake.URL(), "-catalogue=false", "-shutdown-drain-delay", "300ms", "-shutdown-timeout", "10s"},
		map[string]string{"HEYGEN_API_KEY": canaryKey})
	conn := dial(t, addr)
	c := heygenv1.NewAvatarsServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := c.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 1}); err != nil {
		t.Fatal(err) // warm the connection
	}
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	inj.Inject(faults.Fault{Path: "/v3/avatars/looks", Delay: time.Second})
	inflight := make(chan error, 1)
	go func() {
		_, err := c.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 5})
		inflight <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for fake.CountPath("/v3/avatars/looks") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop() // as SIGTERM does
	if st, err := watch.Recv(); err != nil || st.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health during drain = %v, %v; want NOT_SERVING", st, err)
	}
	if err := <-inflight; err != nil {
		t.Fatalf("the call in flight at shutdown failed: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
	if strings.Contains(logs.String(), canaryKey) {
		t.Error("the API key appears in the logs")
	}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("log line is not JSON: %s", sc.Text())
		}
	}
}

func TestListenErrorIsClear(t *testing.T) {
	t.Chdir(t.TempDir())
	err := run(context.Background(), []string{"-demo", "-addr", "256.0.0.1:1"}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen on 256.0.0.1:1") {
		t.Fatalf("got %v, want a listen error naming the address", err)
	}
}

func TestCatalogueSwitch(t *testing.T) {
	for _, on := range []bool{true, false} {
		args := []string{"-demo"}
		if !on {
			args = append(args, "-catalogue=false")
		}
		addr, _, _, _ := startRun(t, args, nil)
		c := heygenv1.NewAvatarsServiceClient(dial(t, addr))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var md metadata.MD
		resp, err := c.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{Query: "zoe"}, grpc.Header(&md))
		cancel()
		if on {
			if err != nil || len(resp.GetAvatars()) == 0 || md.Get("x-heygen-source")[0] != "catalogue-fresh" {
				t.Fatalf("catalogue on: %v, %d avatars, source %v", err, len(resp.GetAvatars()), md.Get("x-heygen-source"))
			}
			continue
		}
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("catalogue off, query filter: got %v, want FAILED_PRECONDITION", err)
		}
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
