package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

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
		if st := stateFrom(ctx); st != nil {
			st.caller.Store(&caller)
		}
		if limits != nil {
			if err := limits.allow(ctx, caller); err != nil {
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

// admittedCaller is the caller the tap authenticated (see admission), or,
// for a server built without the tap, the one auth finds now.
func admittedCaller(ctx context.Context, auth *Authenticator) (string, error) {
	if c, ok := ctx.Value(callerKey{}).(string); ok {
		return c, nil
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
		if st := stateFrom(ss.Context()); st != nil {
			st.caller.Store(&caller)
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
// and marks the call as seen by the interceptors.
func errorsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if st := stateFrom(ctx); st != nil {
		st.seen.Store(true)
	}
	resp, err := handler(ctx, req)
	return resp, toStatus(ctx, err)
}

func errorsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if st := stateFrom(ss.Context()); st != nil {
		st.seen.Store(true)
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
	log      *slog.Logger
	auth     *Authenticator
	limits   *rateLimiter
	inflight *inflightLimiter
	metrics  *Metrics
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
	unary := []grpc.UnaryServerInterceptor{
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(infoLog, loggingOptions(codeToLevel)...), selector.MatchFunc(notHealth)),
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(infoLog, loggingOptions(healthLevel)...), selector.MatchFunc(isHealth)),
		errorsUnary,
		selector.UnaryServerInterceptor(protectUnary(c.auth, c.limits, c.inflight, c.metrics), selector.MatchFunc(notOpen)),
		recovery.UnaryServerInterceptor(recoveryOpt),
	}
	stream := []grpc.StreamServerInterceptor{
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(codeToLevel)...), selector.MatchFunc(notHealth)),
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(healthLevel)...), selector.MatchFunc(isHealth)),
		errorsStream,
		selector.StreamServerInterceptor(protectStream(c.auth, c.limits, c.metrics), selector.MatchFunc(notOpen)),
		recovery.StreamServerInterceptor(recoveryOpt),
	}
	return unary, stream
}
