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
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/heygen-grpc/heygen-grpc/heygen"
)

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

// callRecorder records the end of every call: the RPC metrics (under
// go-grpc-middleware's prometheus provider's names and labels), the
// caller's usage (GetUsage and the per-caller metrics), and the one
// "finished call" line. It is a reporter for go-grpc-middleware's
// interceptor framework (interceptors.UnaryServerInterceptor and
// StreamServerInterceptor), the outermost link of both chains, so it sees
// the status every other link and the handler settled on.
//
// Its line is exactly the one the middleware's logging provider writes
// with the options the gateway gave it (same message, level, fields, order
// and formats; TestCallLogMatchesTheMiddleware compares them), but built
// once, at the end, only when its level is enabled, and straight as slog
// attributes: the provider copies and deduplicates its field list four
// times per call and formats two timestamps before it knows whether the
// line is wanted, which profiled at 40-55% of the interceptor chain's CPU.
// Health checks are logged at debug.
//
// The metrics are recorded here rather than by a stats handler, whose
// events cost grpc-go more than the gateway's whole chain (see
// admission.go); the unary calls that never reach an interceptor are
// recorded by the method wrapper (observedRegistrar).
type callRecorder struct {
	log *slog.Logger
	// line, when set, writes info lines without slog (see callline.go).
	line *jsonLine
	// level is the line's level by outcome; health checks are at debug.
	level           func(codes.Code) logging.Level
	starts, expires secondText // the last timestamps formatted
	metrics         *Metrics   // nil: metrics off
	usage           *usage
	// unseen samples the lines about calls the interceptors missed, so a
	// flood of them cannot flood the log.
	unseen sampler
	// methods holds what is kept of each method for calls that come
	// without the tap's (full method -> *methodInfo). Only registered
	// methods reach an interceptor, so it cannot grow past them.
	methods sync.Map
}

// ServerReporter implements interceptors.ServerReportable.
func (l *callRecorder) ServerReporter(ctx context.Context, c interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	st := callStateFrom(ctx)
	if st != nil && st.info != nil {
		st.seen.Store(true)
		r := &st.report
		*r = callReport{l: l, st: st, ctx: ctx, full: st.method, info: st.info}
		if l.metrics != nil {
			l.metrics.startedFor(st.info.labels)
		}
		return r, ctx
	}
	// A chain run without the tap (tests), or a method registered after
	// the tap's table was built.
	full := "/" + c.Service + "/" + c.Method
	info, ok := l.methods.Load(full)
	if !ok {
		info, _ = l.methods.LoadOrStore(full, newMethodInfo(full, string(c.Typ), l.metrics))
	}
	if st != nil {
		st.seen.Store(true)
	}
	r := &callReport{l: l, st: st, ctx: ctx, full: full, info: info.(*methodInfo)}
	if l.metrics != nil {
		l.metrics.startedFor(r.info.labels)
	}
	return r, ctx
}

// ClientReporter implements interceptors.ClientReportable; the gateway
// records no client calls.
func (l *callRecorder) ClientReporter(ctx context.Context, _ interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	return interceptors.NoopReporter{}, ctx
}

// ended records a finished call of a method in the metrics and the
// caller's usage.
func (l *callRecorder) ended(ctx context.Context, st *callState, full string, info *methodInfo, code codes.Code, err error, d time.Duration) {
	caller := st.who()
	if l.metrics != nil {
		l.metrics.handledFor(info.labels, code, d, caller)
		l.metrics.rpcFailed(info.labels, err)
	}
	if !info.open {
		// GetUsage and the per-caller metrics count the same calls.
		var attempts int64
		if st != nil {
			attempts = st.heygen.Attempts()
		} else if s := heygen.CallStatsFrom(ctx); s != nil {
			attempts = s.Attempts()
		}
		l.usage.rpc(caller, full, code, attempts)
		l.metrics.callerUsed(callerOrUnauthenticated(caller), attempts)
	}
}

// callReport is one call's reporter.
type callReport struct {
	l    *callRecorder
	st   *callState // nil without the tap
	ctx  context.Context
	full string
	info *methodInfo
}

func (*callReport) PostMsgSend(any, error, time.Duration)    {}
func (*callReport) PostMsgReceive(any, error, time.Duration) {}

// PostCall records the call and writes its line (record), then sends the
// response headers the handler left in the call's state, if any: last, so
// that grpc-go writes the response right after them, as it writes the
// headers it holds together with the response.
func (r *callReport) PostCall(err error, d time.Duration) {
	r.record(err, d)
	if r.st != nil && r.st.header != nil {
		_ = grpc.SendHeader(r.ctx, r.st.header) // advisory, as in Server.answered
	}
}

// record records the call, and writes its line with the fields in the
// provider's order: those from the context (caller, heygen.attempts), the
// call's, then its outcome.
func (r *callReport) record(err error, d time.Duration) {
	if errors.Is(err, io.EOF) {
		err = nil
	}
	code := status.Code(err)
	ctx := r.ctx
	r.l.ended(ctx, r.st, r.full, r.info, code, err, d)
	level := slog.LevelDebug
	if r.info.line.service != healthgrpc.Health_ServiceDesc.ServiceName {
		level = slog.Level(r.l.level(code))
	}
	if !r.l.log.Enabled(ctx, level) {
		return
	}
	// The framework measured d from the call's start: the start is now - d.
	now := time.Now()
	f := callFields{caller: r.st.who(), method: r.info.line, start: r.l.starts.format(now.Add(-d)),
		code: code.String(), took: d}
	if r.st != nil {
		f.attempts, f.hasAttempts = r.st.heygen.Attempts(), true
	} else if s := heygen.CallStatsFrom(ctx); s != nil {
		f.attempts, f.hasAttempts = s.Attempts(), true
	}
	f.peer, f.hasPeer = peerAddress(ctx)
	if dl, ok := ctx.Deadline(); ok {
		f.deadline = r.l.expires.format(dl)
	}
	if err != nil {
		f.err, f.hasErr = fmt.Sprintf("%v", err), true
	}
	// Info lines are encoded here when they can be (callline.go); warn and
	// error lines go through slog, whose handler flushes the log for them.
	if r.l.line != nil && level == slog.LevelInfo && r.l.line.write(now, level, &f) {
		return
	}
	// The record goes to the handler directly: slog's Logger methods take
	// the caller's program counter (runtime.Callers) for every line, about
	// 1% of a cached call's CPU in the profile, for a source the gateway's
	// handlers never print.
	var buf [14]slog.Attr
	rec := slog.NewRecord(now, level, "finished call", 0)
	rec.AddAttrs(f.attrs(buf[:0])...)
	_ = r.l.log.Handler().Handle(ctx, rec)
}

// secondText formats times as RFC 3339 (to the second, as the
// middleware's fields are), reusing the last one while the second and
// location are the same: the calls of a second share it.
type secondText struct {
	last atomic.Pointer[formattedSecond]
}

type formattedSecond struct {
	unix       int64
	loc        *time.Location
	date, zone string // "2006-01-02T15:04:05", "Z07:00"
	text       string // date + zone: RFC 3339
}

func (c *secondText) format(t time.Time) string { return c.second(t).text }

// second returns t's second, formatted.
func (c *secondText) second(t time.Time) *formattedSecond {
	u, loc := t.Unix(), t.Location()
	if f := c.last.Load(); f != nil && f.unix == u && f.loc == loc {
		return f
	}
	f := &formattedSecond{unix: u, loc: loc, date: t.Format("2006-01-02T15:04:05"), zone: t.Format("Z07:00")}
	f.text = f.date + f.zone
	c.last.Store(f)
	return f
}

// peerAddress is the caller's address as peer.Addr.String() gives it (the
// listener formats it once per connection: see peerAddr).
func peerAddress(ctx context.Context) (string, bool) {
	if p, ok := peer.FromContext(ctx); ok {
		return p.Addr.String(), true
	}
	return "", false
}

// timeMillis formats a duration as the provider's grpc.time_ms does
// (fmt's %v of a float32 of milliseconds, to the microsecond).
func timeMillis(d time.Duration) string {
	var b [24]byte
	return string(appendTimeMillis(b[:0], d))
}

// appendTimeMillis appends timeMillis(d). Under a second (a million
// microseconds, six significant digits, which a float32 holds exactly
// enough that its shortest form is the decimal itself) it writes the
// decimal directly: the float formatting was a tenth of the line's cost.
func appendTimeMillis(b []byte, d time.Duration) []byte {
	us := d.Nanoseconds() / 1000
	if us < 0 || us >= 1e6 {
		return strconv.AppendFloat(b, float64(float32(us)/1000), 'g', -1, 32)
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// guard admits callers to the gateway's own services (health and
// reflection are open to everyone): it authenticates the caller (the tap
// already has, for calls that passed it), applies the caller's rate limit
// and, for unary calls, the bound on calls in flight. Refused calls never
// reach HeyGen. As the link inside the call recorder, it also turns every
// error into a status through toStatus, and gives a stream's place in the
// tap's bounds back when its handler returns (callState.handled; unary
// calls give theirs back in the method wrapper).
type guard struct {
	auth     *Authenticator
	limits   *rateLimiter
	inflight *inflightLimiter
	metrics  *Metrics
	// recoverUnary and recoverStream are go-grpc-middleware's recovery
	// interceptors, which the guard calls itself with the handler it was
	// given, as the innermost link: see interceptorChain.
	recoverUnary  grpc.UnaryServerInterceptor
	recoverStream grpc.StreamServerInterceptor
}

// unary is the guard's unary interceptor.
func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	st := callStateFrom(ctx)
	if !isOpenCall(st, info.FullMethod) {
		if err := g.admit(ctx, st); err != nil {
			return nil, toStatus(ctx, err)
		}
		if err := g.inflight.acquire(); err != nil {
			if g.metrics != nil {
				_, method := splitMethod(info.FullMethod)
				g.metrics.shed.WithLabelValues(method).Inc()
			}
			return nil, toStatus(ctx, err)
		}
		defer g.inflight.release()
	}
	resp, err := g.recoverUnary(ctx, req, info, handler)
	return resp, toStatus(ctx, err)
}

// stream is the guard's stream interceptor. Streams are long-lived, so
// they are not counted against the in-flight bound (the tap bounds
// streams, and each service bounds its own).
func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	st := callStateFrom(ctx)
	if st != nil {
		defer st.handled()
	}
	if !isOpenCall(st, info.FullMethod) {
		if err := g.admit(ctx, st); err != nil {
			return toStatus(ctx, err)
		}
	}
	return toStatus(ctx, g.recoverStream(srv, ss, info, handler))
}

// admit authenticates the call's caller, unless the tap has, and applies
// the caller's rate limit.
func (g *guard) admit(ctx context.Context, st *callState) error {
	caller := st.who()
	if caller == "" {
		var err error
		if caller, err = g.auth.authenticate(ctx, nil); err != nil {
			return err
		}
		if st != nil {
			st.setCaller(caller)
		}
	}
	if g.limits != nil {
		if err := g.limits.allow(ctx, caller); err != nil {
			g.metrics.rateLimitedCall(caller)
			return err
		}
	}
	return nil
}

// isOpenCall reports whether a call is to an open service, from what the
// tap found of its method when it has.
func isOpenCall(st *callState, full string) bool {
	if st != nil && st.info != nil {
		return st.info.open
	}
	service, _ := splitMethod(full)
	return isOpenService(service)
}

func isOpenService(service string) bool {
	return service == healthgrpc.Health_ServiceDesc.ServiceName || strings.HasPrefix(service, "grpc.reflection.")
}

// recoveryHandler logs a panic with its stack and returns errPanic, which
// toStatus makes INTERNAL. The panic value is logged, never sent to callers.
func recoveryHandler(log *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in RPC handler", "panic", p, "stack", strings.TrimSpace(string(debug.Stack())))
		return errPanic
	}
}

// interceptorChain builds the unary and stream chains, outermost first:
// the call recorder (metrics, usage, the log line), the guard (caller
// admission, error mapping), and recovery (innermost, so a panic becomes
// an error before the others see it). The stream bounds and the default
// deadline are the tap's (admission.go). grpc-go's chain allocates a
// closure per link per call, so the guard calls recovery itself, with the
// handler it was given, rather than through the chain: the chain has two
// links, and recovery still wraps the handler alone.
func interceptorChain(rec *callRecorder, g *guard) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	recoveryOpt := recovery.WithRecoveryHandlerContext(recoveryHandler(rec.log))
	g.recoverUnary = recovery.UnaryServerInterceptor(recoveryOpt)
	g.recoverStream = recovery.StreamServerInterceptor(recoveryOpt)
	unary := []grpc.UnaryServerInterceptor{interceptors.UnaryServerInterceptor(rec), g.unary}
	stream := []grpc.StreamServerInterceptor{interceptors.StreamServerInterceptor(rec), g.stream}
	return unary, stream
}
