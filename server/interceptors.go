package server

import (
	"context"
	"log/slog"
	"runtime/debug"
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

// rpcInfo is per-call state that inner interceptors fill in and outer
// ones (logging, metrics) read when the call ends.
type rpcInfo struct {
	caller atomic.Pointer[string]
}

type rpcInfoKey struct{}

func rpcInfoFrom(ctx context.Context) *rpcInfo {
	i, _ := ctx.Value(rpcInfoKey{}).(*rpcInfo)
	return i
}

func callerOf(ctx context.Context) string {
	if i := rpcInfoFrom(ctx); i != nil {
		if c := i.caller.Load(); c != nil {
			return *c
		}
	}
	return ""
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

// statsUnary attaches the per-call state (caller, HeyGen attempts) that
// the logging and metrics interceptors outside report.
func statsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, _ = heygen.WithCallStats(ctx)
	ctx = context.WithValue(ctx, rpcInfoKey{}, &rpcInfo{})
	return handler(ctx, req)
}

// callerMetricsUnary counts RPCs by caller, method and final code.
func callerMetricsUnary(m *Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		caller := callerOf(ctx)
		if caller == "" {
			caller = "unauthenticated"
		}
		_, method := splitMethod(info.FullMethod)
		m.callerRPCs.WithLabelValues(caller, method, status.Code(err).String()).Inc()
		return resp, err
	}
}

func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "", full
}

// protectUnary admits a call: it authenticates the caller, applies the
// caller's rate limit, then the bound on calls in flight. Refused calls
// never reach HeyGen.
func protectUnary(auth *Authenticator, limits *rateLimiter, inflight *inflightLimiter, m *Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		caller, err := auth.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		if ri := rpcInfoFrom(ctx); ri != nil {
			ri.caller.Store(&caller)
		}
		if limits != nil {
			if err := limits.allow(caller); err != nil {
				if m != nil {
					m.rateLimited.WithLabelValues(caller).Inc()
				}
				return nil, err
			}
		}
		release, err := inflight.acquire()
		if err != nil {
			if m != nil {
				_, method := splitMethod(info.FullMethod)
				m.shed.WithLabelValues(method).Inc()
			}
			return nil, err
		}
		defer release()
		return handler(ctx, req)
	}
}

// protectStream authenticates streaming calls (none of AvatarsService's
// are streams today; health and reflection are exempt).
func protectStream(auth *Authenticator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if _, err := auth.authenticate(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// isOpen matches the services every caller may use without credentials:
// health (probes, load balancers) and reflection (grpcurl).
func isOpen(_ context.Context, c interceptors.CallMeta) bool {
	return c.Service == healthgrpc.Health_ServiceDesc.ServiceName ||
		strings.HasPrefix(c.Service, "grpc.reflection.")
}

func notOpen(ctx context.Context, c interceptors.CallMeta) bool { return !isOpen(ctx, c) }

// deadlineUnary bounds calls that arrive without a deadline, so nothing
// the gateway does for a caller can block forever.
func deadlineUnary(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); !ok && d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return handler(ctx, req)
	}
}

// errorsUnary turns every handler error into a status through toStatus.
func errorsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, toStatus(err)
}

func errorsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return toStatus(handler(srv, ss))
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
	log            *slog.Logger
	defaultTimeout time.Duration
	auth           *Authenticator
	limits         *rateLimiter
	inflight       *inflightLimiter
	metrics        *Metrics
}

// interceptorChain builds the unary and stream chains, outermost first:
// call state, metrics, logging (health at debug only), per-caller
// metrics, error mapping, admission (auth, rate limit, load shedding;
// health and reflection exempt), default deadline, and recovery
// (innermost, so a panic becomes an error before the others see it).
func interceptorChain(c chainConfig) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	infoLog := slogLogger(c.log)
	healthLevel := func(codes.Code) logging.Level { return logging.LevelDebug }
	recoveryOpt := recovery.WithRecoveryHandlerContext(recoveryHandler(c.log))
	unary := []grpc.UnaryServerInterceptor{statsUnary}
	stream := []grpc.StreamServerInterceptor{}
	if c.metrics != nil {
		unary = append(unary, c.metrics.grpc.UnaryServerInterceptor())
		stream = append(stream, c.metrics.grpc.StreamServerInterceptor())
	}
	unary = append(unary,
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(infoLog, loggingOptions(codeToLevel)...), selector.MatchFunc(notHealth)),
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(infoLog, loggingOptions(healthLevel)...), selector.MatchFunc(isHealth)),
	)
	stream = append(stream,
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(codeToLevel)...), selector.MatchFunc(notHealth)),
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(healthLevel)...), selector.MatchFunc(isHealth)),
	)
	if c.metrics != nil {
		unary = append(unary, callerMetricsUnary(c.metrics))
	}
	unary = append(unary,
		errorsUnary,
		selector.UnaryServerInterceptor(protectUnary(c.auth, c.limits, c.inflight, c.metrics), selector.MatchFunc(notOpen)),
		deadlineUnary(c.defaultTimeout),
		recovery.UnaryServerInterceptor(recoveryOpt),
	)
	stream = append(stream,
		errorsStream,
		selector.StreamServerInterceptor(protectStream(c.auth), selector.MatchFunc(notOpen)),
		recovery.StreamServerInterceptor(recoveryOpt),
	)
	return unary, stream
}
