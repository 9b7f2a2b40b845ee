package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

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
// duration and the number of HeyGen attempts. Payloads are never logged.
func loggingOptions(level func(codes.Code) logging.Level) []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(level),
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			if s := heygen.CallStatsFrom(ctx); s != nil {
				return logging.Fields{"heygen.attempts", s.Attempts()}
			}
			return nil
		}),
	}
}

// statsUnary attaches a heygen.CallStats to each call so the logging
// interceptor (outside it) can report HeyGen attempts.
func statsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, _ = heygen.WithCallStats(ctx)
	return handler(ctx, req)
}

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

// interceptorChain builds the unary and stream chains, outermost first:
// call stats, logging (health at debug only), error mapping, default
// deadline, recovery (innermost, so a panic becomes an error before the
// outer interceptors see the result).
func interceptorChain(log *slog.Logger, defaultTimeout time.Duration) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	infoLog := slogLogger(log)
	healthLevel := func(codes.Code) logging.Level { return logging.LevelDebug }
	recoveryOpt := recovery.WithRecoveryHandlerContext(recoveryHandler(log))
	unary := []grpc.UnaryServerInterceptor{
		statsUnary,
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(infoLog, loggingOptions(codeToLevel)...), selector.MatchFunc(notHealth)),
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(infoLog, loggingOptions(healthLevel)...), selector.MatchFunc(isHealth)),
		errorsUnary,
		deadlineUnary(defaultTimeout),
		recovery.UnaryServerInterceptor(recoveryOpt),
	}
	stream := []grpc.StreamServerInterceptor{
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(codeToLevel)...), selector.MatchFunc(notHealth)),
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(infoLog, loggingOptions(healthLevel)...), selector.MatchFunc(isHealth)),
		errorsStream,
		recovery.StreamServerInterceptor(recoveryOpt),
	}
	return unary, stream
}
