package server

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// observedRegistrar registers services on the gRPC server with every
// unary method's handler wrapped (callRecorder.observeUnary), so that the
// calls that never reach the interceptors are recorded too: grpc-go's
// generated handlers decode the request before they call the interceptor
// chain, so a request that does not decode, or whose deadline passes
// while it is awaited, fails without any interceptor seeing it. Streaming
// methods need no wrapper: their interceptors run before the first
// message is read.
//
// It implements grpc.ServiceRegistrar and reflection.GRPCServer.
type observedRegistrar struct {
	gs  *grpc.Server
	rec *callRecorder
}

// RegisterService implements grpc.ServiceRegistrar.
func (r observedRegistrar) RegisterService(sd *grpc.ServiceDesc, impl any) {
	d := *sd
	d.Methods = make([]grpc.MethodDesc, len(sd.Methods))
	for i, m := range sd.Methods {
		d.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: r.rec.observeUnary("/"+sd.ServiceName+"/"+m.MethodName, m.Handler)}
	}
	r.gs.RegisterService(&d, impl)
}

// GetServiceInfo implements reflection.ServiceInfoProvider.
func (r observedRegistrar) GetServiceInfo() map[string]grpc.ServiceInfo { return r.gs.GetServiceInfo() }

// observeUnary wraps a unary method's handler: a call that fails without
// the call recorder having seen it is recorded and logged (sampled) here,
// and every call gives its place in the tap's bounds back here as its
// handler returns, whether or not its request reached an interceptor.
func (l *callRecorder) observeUnary(full string, h grpc.MethodHandler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		start := time.Now()
		resp, err := h(srv, ctx, dec, ic)
		if st := callStateFrom(ctx); st != nil {
			if err != nil && !st.seen.Load() {
				l.unseenFailure(ctx, st, full, err, time.Since(start))
			}
			st.handled()
		}
		return resp, err
	}
}

// unseenFailure records a unary call that failed before reaching the
// interceptors, with the status grpc-go sends for err.
func (l *callRecorder) unseenFailure(ctx context.Context, st *callState, full string, err error, d time.Duration) {
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	info := st.info
	if info == nil { // a state built without the tap (tests)
		info = newMethodInfo(full, "unary", l.metrics)
	}
	if l.metrics != nil {
		l.metrics.startedFor(info.labels)
	}
	l.ended(ctx, st, full, info, s.Code(), s.Err(), d)
	if l.unseen.allow() {
		l.log.LogAttrs(ctx, slog.LevelWarn, "RPC failed before reaching the gateway's handlers",
			slog.String("grpc.method", full), slog.String("grpc.code", s.Code().String()),
			slog.String("error", s.Message()),
			slog.Int64("grpc.time_ms", d.Milliseconds()),
			slog.Int64("similar_lines_dropped", l.unseen.dropped()))
	}
}
