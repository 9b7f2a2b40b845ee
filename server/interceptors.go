package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// slogLogger adapts slog to the middleware's logger interface.
func slogLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// codeToLevel: the gateway's own failures and HeyGen outages are errors,
// everything a caller or HeyGen's verdict explains is info or warn.
func codeToLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK, codes.NotFound, codes.InvalidArgument, codes.Canceled, codes.AlreadyExists:
		return logging.LevelInfo
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return logging.LevelError
	}
	return logging.LevelWarn
}

func isHealth(_ context.Context, c interceptors.CallMeta) bool {
	return c.Service == healthgrpc.Health_ServiceDesc.ServiceName
}

func notHealth(ctx context.Context, c interceptors.CallMeta) bool { return !isHealth(ctx, c) }

// healthLogged matches health calls when their lines (at debug) would be
// written: at info and above they are skipped altogether. Health checks
// are the most frequent RPC a mesh sends, and the logging interceptor
// builds its fields (timestamps, peer, context) before the level check:
// profiled, it was more than half of a health check's server CPU.
func healthLogged(log *slog.Logger) selector.Matcher {
	return selector.MatchFunc(func(ctx context.Context, c interceptors.CallMeta) bool {
		return isHealth(ctx, c) && log.Enabled(ctx, slog.LevelDebug)
	})
}

// logged matches the calls whose line may be written: every call but
// health checks while debug lines are off (see healthLogged).
func logged(log *slog.Logger) selector.Matcher {
	return selector.MatchFunc(func(ctx context.Context, c interceptors.CallMeta) bool {
		return !isHealth(ctx, c) || log.Enabled(ctx, slog.LevelDebug)
	})
}

// callLog writes the one "finished call" line of a unary call. It is a
// reporter for go-grpc-middleware's interceptor framework
// (interceptors.UnaryServerInterceptor) that writes exactly the line the
// middleware's logging provider writes with loggingOptions (same message,
// level, fields, order and formats; TestCallLogMatchesTheMiddleware
// compares them), but builds it once, at the end, only when its level is
// enabled, and straight as slog attributes: the provider copies and
// deduplicates its field list four times per call and formats two
// timestamps before it knows whether the line is wanted, which profiled
// at 40-55% of the interceptor chain's CPU. Streaming calls (few, long)
// keep the provider itself.
type callLog struct {
	log *slog.Logger
	// line, when set, writes info lines without slog (see callline.go).
	line *jsonLine
	// level is the line's level by outcome; health checks are at debug.
	level           func(codes.Code) logging.Level
	starts, expires secondText // the last timestamps formatted
}

// ServerReporter implements interceptors.ServerReportable.
func (l *callLog) ServerReporter(ctx context.Context, c interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	return &callReport{l: l, ctx: ctx, service: c.Service, method: c.Method, typ: string(c.Typ), start: time.Now()}, ctx
}

// ClientReporter implements interceptors.ClientReportable; the gateway
// logs no client calls.
func (l *callLog) ClientReporter(ctx context.Context, _ interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	return interceptors.NoopReporter{}, ctx
}

// callReport is one call's reporter.
type callReport struct {
	l                    *callLog
	ctx                  context.Context
	service, method, typ string
	start                time.Time
}

func (*callReport) PostMsgSend(any, error, time.Duration)    {}
func (*callReport) PostMsgReceive(any, error, time.Duration) {}

// PostCall writes the line, with the fields in the provider's order: those
// from the context (caller, heygen.attempts), the call's, then its outcome.
func (r *callReport) PostCall(err error, d time.Duration) {
	if errors.Is(err, io.EOF) {
		err = nil
	}
	code := status.Code(err)
	level := slog.LevelDebug
	if r.service != healthgrpc.Health_ServiceDesc.ServiceName {
		level = slog.Level(r.l.level(code))
	}
	ctx := r.ctx
	if !r.l.log.Enabled(ctx, level) {
		return
	}
	var buf [14]slog.Attr
	a := buf[:0]
	if c := callerOf(ctx); c != "" {
		a = append(a, slog.String("caller", c))
	}
	if s := heygen.CallStatsFrom(ctx); s != nil {
		a = append(a, slog.Int64("heygen.attempts", s.Attempts()))
	}
	a = append(a, slog.String(logging.SystemTag[0], logging.SystemTag[1]), slog.String(logging.ComponentFieldKey, logging.KindServerFieldValue),
		slog.String(logging.ServiceFieldKey, r.service), slog.String(logging.MethodFieldKey, r.method), slog.String(logging.MethodTypeFieldKey, r.typ))
	if addr, ok := peerAddress(ctx); ok {
		a = append(a, slog.String("peer.address", addr))
	}
	a = append(a, slog.String("grpc.start_time", r.l.starts.format(r.start)))
	if dl, ok := ctx.Deadline(); ok {
		a = append(a, slog.String("grpc.request.deadline", r.l.expires.format(dl)))
	}
	a = append(a, slog.String("grpc.code", code.String()))
	if err != nil {
		a = append(a, slog.String("grpc.error", fmt.Sprintf("%v", err)))
	}
	a = append(a, slog.String("grpc.time_ms", timeMillis(d)))
	now := time.Now()
	// Info lines are encoded here when they can be (callline.go); warn and
	// error lines go through slog, whose handler flushes the log for them.
	if r.l.line != nil && level == slog.LevelInfo && r.l.line.write(now, level, "finished call", a) {
		return
	}
	// The record goes to the handler directly: slog's Logger methods take
	// the caller's program counter (runtime.Callers) for every line, about
	// 1% of a cached call's CPU in the profile, for a source the gateway's
	// handlers never print.
	rec := slog.NewRecord(now, level, "finished call", 0)
	rec.AddAttrs(a...)
	_ = r.l.log.Handler().Handle(ctx, rec)
}

// secondText formats times as RFC 3339 (to the second, as the
// middleware's fields are), reusing the last one while the second and
// location are the same: the calls of a second share it.
type secondText struct {
	last atomic.Pointer[formattedSecond]
}

type formattedSecond struct {
	unix int64
	loc  *time.Location
	text string
}

func (c *secondText) format(t time.Time) string {
	u, loc := t.Unix(), t.Location()
	if f := c.last.Load(); f != nil && f.unix == u && f.loc == loc {
		return f.text
	}
	f := &formattedSecond{unix: u, loc: loc, text: t.Format(time.RFC3339)}
	c.last.Store(f)
	return f.text
}

// peerAddress is the caller's address as peer.Addr.String() gives it,
// formatted once per connection by the stats handler (TagConn).
func peerAddress(ctx context.Context) (string, bool) {
	if a, ok := ctx.Value(peerAddrKey{}).(*string); ok {
		return *a, true
	}
	if p, ok := peer.FromContext(ctx); ok {
		return p.Addr.String(), true
	}
	return "", false
}

// timeMillis formats a duration as the provider's grpc.time_ms does
// (fmt's %v of a float32 of milliseconds, to the microsecond).
func timeMillis(d time.Duration) string {
	var b [24]byte
	return string(strconv.AppendFloat(b[:0], float64(float32(d.Nanoseconds()/1000)/1000), 'g', -1, 32))
}

// loggingOptions logs one line per finished RPC with method, code,
// duration, the caller and the number of HeyGen attempts. Payloads are
// never logged.
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

// protectUnary admits a call: it authenticates the caller, applies the
// caller's rate limit, then the bound on calls in flight. Refused calls
// never reach HeyGen.
func protectUnary(auth *Authenticator, limits *rateLimiter, inflight *inflightLimiter, m *Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		caller, err := admittedCaller(ctx, auth)
		if err != nil {
			return nil, err
		}
		if st := stateFrom(ctx); st != nil && st.caller.Load() == nil {
			st.setCaller(caller)
		}
		if limits != nil {
			if err := limits.allow(ctx, caller); err != nil {
				if m != nil {
					m.rateLimited.WithLabelValues(caller).Inc()
				}
				return nil, err
			}
		}
		if err := inflight.acquire(); err != nil {
			if m != nil {
				_, method := splitMethod(info.FullMethod)
				m.shed.WithLabelValues(method).Inc()
			}
			return nil, err
		}
		defer inflight.release()
		return handler(ctx, req)
	}
}

// admittedCaller is the caller the tap authenticated (see admission), or,
// for a server built without the tap, the one auth finds now.
func admittedCaller(ctx context.Context, auth *Authenticator) (string, error) {
	if a := admittedFrom(ctx); a != nil && a.authenticated {
		return a.caller, nil
	}
	return auth.authenticate(ctx)
}

// protectStream authenticates streaming calls (health and reflection are
// exempt) and applies the caller's rate limit to opening one. Streams are
// long-lived, so they are not counted against the in-flight bound (the
// tap bounds streams, and each service bounds its own).
func protectStream(auth *Authenticator, limits *rateLimiter, m *Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		caller, err := admittedCaller(ss.Context(), auth)
		if err != nil {
			return err
		}
		if st := stateFrom(ss.Context()); st != nil && st.caller.Load() == nil {
			st.setCaller(caller)
		}
		if limits != nil {
			if err := limits.allow(ss.Context(), caller); err != nil {
				m.rateLimitedCall(caller)
				return err
			}
		}
		return handler(srv, ss)
	}
}

// isOpen matches the services every caller may use without credentials:
// health (probes, load balancers) and reflection (grpcurl).
func isOpen(_ context.Context, c interceptors.CallMeta) bool { return isOpenService(c.Service) }

func isOpenService(service string) bool {
	return service == healthgrpc.Health_ServiceDesc.ServiceName || strings.HasPrefix(service, "grpc.reflection.")
}

func notOpen(ctx context.Context, c interceptors.CallMeta) bool { return !isOpen(ctx, c) }

// errorsUnary turns every handler error into a status through toStatus,
// marks the call as seen by the interceptors, and, when the handler
// returns, gives the stream's place in the tap's bounds back
// (admitted.handled).
func errorsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if st := stateFrom(ctx); st != nil {
		st.seen.Store(true)
		defer st.admitted.handled()
	}
	resp, err := handler(ctx, req)
	return resp, toStatus(ctx, err)
}

func errorsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if st := stateFrom(ss.Context()); st != nil {
		st.seen.Store(true)
		defer st.admitted.handled()
	}
	return toStatus(ss.Context(), handler(srv, ss))
}

// recoveryHandler logs a panic with its stack and returns errPanic, which
// toStatus makes INTERNAL. The panic value is logged, never sent to callers.
func recoveryHandler(log *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in RPC handler", "panic", p, "stack", strings.TrimSpace(string(debug.Stack())))
		return errPanic
	}
}

// chainConfig is what the interceptor chain needs.
type chainConfig struct {
	log *slog.Logger
	// callLines, when set, is where log's JSON handler writes: the
	// per-RPC info lines are encoded by the gateway and written there.
	callLines io.Writer
	auth      *Authenticator
	limits    *rateLimiter
	inflight  *inflightLimiter
	metrics   *Metrics
}

// interceptorChain builds the unary and stream chains, outermost first:
// logging (health at debug only), error mapping, admission (auth, rate
// limit, load shedding; health and reflection exempt), and recovery
// (innermost, so a panic becomes an error before the others see it).
// Metrics and the default deadline are not here: the stats handler and
// the transport's tap see every call, including those that never reach an
// interceptor (see stats.go).
func interceptorChain(c chainConfig) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	infoLog := slogLogger(c.log)
	healthLevel := func(codes.Code) logging.Level { return logging.LevelDebug }
	recoveryOpt := recovery.WithRecoveryHandlerContext(recoveryHandler(c.log))
	cl := &callLog{log: c.log, level: codeToLevel}
	if c.callLines != nil {
		cl.line = newJSONLine(c.callLines)
	}
	unary := []grpc.UnaryServerInterceptor{
		// One interceptor for every unary line (health at debug): each link
		// of the chain is a closure per call.
		selector.UnaryServerInterceptor(interceptors.UnaryServerInterceptor(cl), logged(c.log)),
		errorsUnary,
		selector.UnaryServerInterceptor(protectUnary(c.auth, c.limits, c.inflight, c.metrics), selector.MatchFunc(notOpen)),
		recovery.UnaryServerInterceptor(recoveryOpt),
	}
	stream := []grpc.StreamServerInterceptor{
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(codeToLevel)...), selector.MatchFunc(notHealth)),
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(healthLevel)...), healthLogged(c.log)),
		errorsStream,
		selector.StreamServerInterceptor(protectStream(c.auth, c.limits, c.metrics), selector.MatchFunc(notOpen)),
		recovery.StreamServerInterceptor(recoveryOpt),
	}
	return unary, stream
}
