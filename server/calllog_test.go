package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// orderedLine is a JSON log line's keys in order and its values.
type orderedLine struct {
	keys   []string
	values map[string]any
}

func parseOrdered(t *testing.T, line string) orderedLine {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", line)
	}
	l := orderedLine{values: map[string]any{}}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		l.keys = append(l.keys, k.(string))
		l.values[k.(string)] = v
	}
	return l
}

// slogLogger adapts slog to the middleware's logger interface.
func slogLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// loggingOptions are the options the gateway gave go-grpc-middleware's
// logging provider before callRecorder wrote the line itself: one line
// per finished RPC with method, code, duration, the caller and the number
// of HeyGen attempts.
func loggingOptions(level func(codes.Code) logging.Level) []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(level),
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			var f logging.Fields
			if c := callerOf(ctx); c != "" {
				f = append(f, "caller", c)
			}
			if s := heygen.CallStatsFrom(ctx); s != nil {
				f = append(f, "heygen.attempts", s.Attempts())
			}
			return f
		}),
	}
}

// TestCallLogMatchesTheMiddleware runs the same calls through
// go-grpc-middleware's logging provider (configured as the gateway
// configured it before callRecorder) and through callRecorder, unary and
// streaming, and requires the same line: message, level, every field,
// their order and their formats. Only the clocks may differ.
func TestCallLogMatchesTheMiddleware(t *testing.T) {
	tcp := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}
	type call struct {
		name     string
		method   string
		err      error
		caller   string
		late     bool // the caller is known only when the call ends
		attempts int
		deadline bool
		stream   bool
		level    func(codes.Code) logging.Level
	}
	healthLevel := func(codes.Code) logging.Level { return logging.LevelDebug }
	// Attempts are counted by the HeyGen client: make real calls.
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: benchKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: benchKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	calls := []call{
		{name: "ok", method: "/heygen.v1.AvatarsService/ListAvatars", caller: "svc-a", deadline: true, level: codeToLevel},
		{name: "not found after retries", method: "/heygen.v1.AvatarsService/GetAvatar", err: status.Error(codes.NotFound, "no such avatar"),
			caller: "svc-b", attempts: 3, deadline: true, level: codeToLevel},
		{name: "internal, no deadline", method: "/heygen.v1.VoicesService/ListVoices", err: status.Error(codes.Internal, "boom"),
			caller: "svc-c", level: codeToLevel},
		{name: "unmapped error", method: "/heygen.v1.AvatarsService/ListAvatars", err: errors.New("plain"), level: codeToLevel},
		{name: "unavailable, caller found late", method: "/heygen.v1.AvatarsService/ListAvatarGroups", err: status.Error(codes.Unavailable, "down"),
			caller: "svc-d", late: true, attempts: 1, deadline: true, level: codeToLevel},
		{name: "anonymous", method: "/heygen.v1.AvatarsService/ListAvatars", caller: AnonymousCaller, level: codeToLevel},
		{name: "end of stream", method: "/heygen.v1.AvatarsService/ListAvatars", err: io.EOF, caller: "svc-e", level: codeToLevel},
		{name: "health at debug", method: "/grpc.health.v1.Health/Check", level: healthLevel},
		{name: "stream", method: "/heygen.v1.VideosService/WatchVideo", err: status.Error(codes.Unavailable, "the gateway is shutting down"),
			caller: "svc-f", stream: true, level: codeToLevel},
		{name: "health stream at debug", method: "/grpc.health.v1.Health/Watch", stream: true, deadline: true, level: healthLevel},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			// The middleware's line, callLog's through slog, and callLog's
			// own encoding of it (callline.go).
			var lines [3]string
			for i := range 3 {
				var buf bytes.Buffer
				log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
				var ic grpc.UnaryServerInterceptor
				var sc grpc.StreamServerInterceptor
				if i == 0 {
					ic = logging.UnaryServerInterceptor(slogLogger(log), loggingOptions(c.level)...)
					sc = logging.StreamServerInterceptor(slogLogger(log), loggingOptions(c.level)...)
				} else {
					rec := &callRecorder{log: log, level: codeToLevel, usage: newUsage()}
					if i == 2 {
						rec.line = newJSONLine(&buf)
					}
					ic = interceptors.UnaryServerInterceptor(rec)
					sc = interceptors.StreamServerInterceptor(rec)
				}
				st := &callState{method: c.method}
				if c.caller != "" && !c.late {
					st.caller.Store(&c.caller)
				}
				var ctx context.Context = &callContext{Context: peer.NewContext(context.Background(), &peer.Peer{Addr: tcp}), st: st}
				if c.deadline {
					var cancel context.CancelFunc
					ctx, cancel = context.WithDeadline(ctx, time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC))
					defer cancel()
				}
				handle := func(ctx context.Context) error {
					for range c.attempts {
						if _, err := client.Users.Me(ctx); err != nil {
							t.Error(err)
						}
					}
					if c.late {
						st.caller.Store(&c.caller)
					}
					time.Sleep(1500 * time.Microsecond)
					return c.err
				}
				if c.stream {
					info := &grpc.StreamServerInfo{FullMethod: c.method, IsServerStream: true}
					_ = sc(nil, &ctxStream{ctx: ctx}, info, func(_ any, ss grpc.ServerStream) error { return handle(ss.Context()) })
				} else {
					_, _ = ic(ctx, "req", &grpc.UnaryServerInfo{FullMethod: c.method}, func(ctx context.Context, _ any) (any, error) {
						return "resp", handle(ctx)
					})
				}
				lines[i] = strings.TrimSpace(buf.String())
			}
			for j, name := range []string{"callRecorder", "callRecorder, own encoding"} {
				line := lines[j+1]
				if strings.Count(lines[0], "\n") != 0 || strings.Count(line, "\n") != 0 || lines[0] == "" || line == "" {
					t.Fatalf("want one line each:\nmiddleware: %s\n%s: %s", lines[0], name, line)
				}
				want, got := parseOrdered(t, lines[0]), parseOrdered(t, line)
				if strings.Join(want.keys, ",") != strings.Join(got.keys, ",") {
					t.Fatalf("fields differ:\nmiddleware: %v\n%s: %v", want.keys, name, got.keys)
				}
				for _, k := range want.keys {
					wv, gv := want.values[k], got.values[k]
					switch k {
					case "time", "grpc.time_ms":
						continue // clocks
					case "grpc.start_time":
						a, err1 := time.Parse(time.RFC3339, wv.(string))
						b, err2 := time.Parse(time.RFC3339, gv.(string))
						if err1 != nil || err2 != nil || b.Sub(a).Abs() > time.Second {
							t.Errorf("grpc.start_time: middleware %v, %s %v", wv, name, gv)
						}
						continue
					}
					if wv != gv {
						t.Errorf("%s: middleware %v (%T), %s %v (%T)", k, wv, wv, name, gv, gv)
					}
				}
				if _, ok := got.values["grpc.time_ms"].(string); !ok {
					t.Errorf("%s: grpc.time_ms is %T, want a string as the middleware writes it", name, got.values["grpc.time_ms"])
				}
			}
		})
	}
}

// TestTimeMillisMatchesTheMiddleware: grpc.time_ms is formatted exactly as
// the middleware's DurationToTimeMillisFields formats it.
func TestTimeMillisMatchesTheMiddleware(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ds := []time.Duration{0, 999, time.Microsecond, 1500 * time.Microsecond, time.Millisecond, 123456789, time.Hour, 100 * time.Hour}
	for range 20000 {
		ds = append(ds, time.Duration(r.Int64N(int64(10*time.Minute))), time.Duration(r.Int64N(int64(50*time.Millisecond))))
	}
	// Every microsecond under a second (written as decimals), and the
	// edges of that path.
	for us := range int64(1e6) {
		ds = append(ds, time.Duration(us)*time.Microsecond+time.Duration(us%1000))
	}
	ds = append(ds, -time.Microsecond, -time.Nanosecond, time.Second-1, time.Second+time.Microsecond)
	for _, d := range ds {
		if want, got := logging.DurationToTimeMillisFields(d)[1].(string), timeMillis(d); want != got {
			t.Fatalf("%v: middleware %q, callRecorder %q", d, want, got)
		}
	}
}

// TestHealthLinesFollowTheLevel: health checks are logged at debug, and
// not at all (not even built) when the level is above debug.
func TestHealthLinesFollowTheLevel(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
		unary, _ := interceptorChain(&callRecorder{log: log, level: codeToLevel, usage: newUsage()}, &guard{})
		ctx, _ := heygen.WithCallStats(context.Background())
		info := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
		_, err := chainUnary(unary)(ctx, "req", info, func(context.Context, any) (any, error) { return "ok", nil })
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Count(buf.String(), `"msg":"finished call"`)
		if want := map[slog.Level]int{slog.LevelDebug: 1, slog.LevelInfo: 0}[level]; lines != want {
			t.Errorf("log level %v: %d health lines, want %d: %s", level, lines, want, buf.String())
		}
		if level == slog.LevelDebug && !strings.Contains(buf.String(), `"level":"DEBUG"`) {
			t.Errorf("health line not at debug: %s", buf.String())
		}
	}
}

// ctxStream is a server stream with only a context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
