package server

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Every RPC passes three layers, outermost first:
//
//   - the tap (admit), run by the transport as soon as a stream's headers
//     are in, before any goroutine or decoding: it bounds streams across
//     all connections, bounds health Watch streams, and gives unary calls
//     without a deadline the default one, so a stream that never sends its
//     message cannot hold memory for ever;
//   - the stats handler (rpcStats), which sees every RPC that got a stream,
//     including those the interceptors never see (a request that does not
//     decode, a deadline that expired before the handler ran): it counts
//     and times them all, and logs the ones the interceptors missed;
//   - the interceptors (interceptors.go): logging, error mapping,
//     admission (auth, rate limits, in-flight bound) and recovery.

// rpcState is per-call state: the stats handler creates it, inner layers
// fill it in, and the stats handler and the logging interceptor read it
// when the call ends.
type rpcState struct {
	method string // full method name
	start  time.Time
	seen   atomic.Bool // the interceptors ran
	caller atomic.Pointer[string]
	heygen *heygen.CallStats
	// admitted is the tap's handle on the stream (nil without the tap).
	admitted *admitted
}

type rpcStateKey struct{}

func stateFrom(ctx context.Context) *rpcState {
	s, _ := ctx.Value(rpcStateKey{}).(*rpcState)
	return s
}

func callerOrUnauthenticated(caller string) string {
	if caller == "" {
		return "unauthenticated"
	}
	return caller
}

// setCaller records the call's caller.
func (s *rpcState) setCaller(c string) { s.caller.Store(&c) }

func callerOf(ctx context.Context) string {
	if s := stateFrom(ctx); s != nil {
		if c := s.caller.Load(); c != nil {
			return *c
		}
	}
	return ""
}

// rpcStats is the stats handler.
type rpcStats struct {
	metrics *Metrics // nil: metrics off
	usage   *usage
	log     *slog.Logger
	// unseen samples log lines about RPCs the interceptors missed, so a
	// flood of them cannot flood the log.
	unseen sampler
}

// peerAddrKey carries a connection's remote address as a *string.
type peerAddrKey struct{}

// TagConn formats the connection's remote address once, for the log
// lines of all its calls.
func (h *rpcStats) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if info == nil || info.RemoteAddr == nil {
		return ctx
	}
	addr := info.RemoteAddr.String()
	return context.WithValue(ctx, peerAddrKey{}, &addr)
}

func (h *rpcStats) HandleConn(context.Context, stats.ConnStats) {}

// TagRPC attaches the call's state, and the counter of its HeyGen attempts.
func (h *rpcStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	ctx, hs := heygen.WithCallStats(ctx)
	st := &rpcState{method: info.FullMethodName, heygen: hs, admitted: admittedFrom(ctx)}
	if ad := st.admitted; ad != nil && ad.authenticated {
		st.caller.Store(&ad.caller)
	}
	return context.WithValue(ctx, rpcStateKey{}, st)
}

// HandleRPC counts a call's start and end; grpc-go calls it for every
// event of a call (headers, payloads), which it ignores.
func (h *rpcStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	switch s := s.(type) {
	case *stats.Begin:
		st := stateFrom(ctx)
		if st == nil {
			return
		}
		st.start = s.BeginTime
		if h.metrics != nil {
			h.metrics.rpcStarted(st.method, s)
		}
	case *stats.End:
		st := stateFrom(ctx)
		if st == nil {
			return
		}
		code := status.Code(s.Error)
		caller := callerOf(ctx)
		if h.metrics != nil {
			h.metrics.rpcHandled(st.method, code, s.EndTime.Sub(s.BeginTime), caller)
			h.metrics.rpcFailed(st.method, s.Error)
		}
		if service, _ := splitMethod(st.method); !isOpenService(service) {
			// GetUsage and the per-caller metrics count the same calls.
			attempts := st.heygen.Attempts()
			h.usage.rpc(caller, st.method, code, attempts)
			h.metrics.callerUsed(callerOrUnauthenticated(caller), attempts)
		}
		if !st.seen.Load() && code != codes.OK && h.unseen.allow() {
			h.log.LogAttrs(ctx, slog.LevelWarn, "RPC failed before reaching the gateway's handlers",
				slog.String("grpc.method", st.method), slog.String("grpc.code", code.String()),
				slog.String("error", status.Convert(s.Error).Message()),
				slog.Int64("grpc.time_ms", s.EndTime.Sub(s.BeginTime).Milliseconds()),
				slog.Int64("similar_lines_dropped", h.unseen.dropped()))
		}
	}
}

// sampler allows one event per second and counts the others.
type sampler struct {
	last atomic.Int64 // unix seconds of the last allowed event
	drop atomic.Int64
}

func (s *sampler) allow() bool {
	now := time.Now().Unix()
	if last := s.last.Load(); last != now && s.last.CompareAndSwap(last, now) {
		return true
	}
	s.drop.Add(1)
	return false
}

// dropped returns and resets the count of events not allowed.
func (s *sampler) dropped() int64 { return s.drop.Swap(0) }

// Admission bounds (see TransportLimits).
const (
	DefaultMaxStreams      = 2048
	DefaultMaxWatchStreams = 512
	// maxOpenStreams bounds the streams of the services open to everyone
	// (health checks and reflection), so unauthenticated clients cannot
	// fill the bound the gateway's own services use.
	maxOpenStreams = 256
)

var healthWatchMethod = "/" + healthpb.Health_ServiceDesc.ServiceName + "/Watch"

// admitted is what the tap hands the later layers of a stream it let in,
// through the stream's context (admittedKey).
type admitted struct {
	// caller is who the tap authenticated, when authenticated is set (the
	// open services are not authenticated).
	caller        string
	authenticated bool
	// counter is the pool the stream holds a place in; cancel, when set,
	// releases the default deadline's timer.
	counter *atomic.Int64
	cancel  context.CancelFunc
	// stop is the context.AfterFunc that releases the place when the
	// stream's context ends.
	stop func() bool
}

type admittedKey struct{}

func admittedFrom(ctx context.Context) *admitted {
	a, _ := ctx.Value(admittedKey{}).(*admitted)
	return a
}

// release gives the stream's place back.
func (a *admitted) release() {
	a.counter.Add(-1)
	if a.cancel != nil {
		a.cancel()
	}
}

// handled releases the stream's place as the interceptors see its handler
// return. Every admitted stream is also released when its context ends (a
// context.AfterFunc the tap registers, for the streams that never reach a
// handler), but that path starts a goroutine, which profiled at a tenth
// of a cached call's server CPU with the scheduler's wake-ups; stopping it
// here saves that on every call that reaches a handler. stop tells which
// of the two ran, so a place is released exactly once.
//
// A call the tap gave the default deadline keeps the release at its
// stream's end: the deadline's context is the stream's own from then on
// (grpc-go writes the response under it), so it must not be cancelled
// before the response is written.
func (a *admitted) handled() {
	if a != nil && a.stop != nil && a.cancel == nil && a.stop() {
		a.release()
	}
}

// admission is the tap: it runs in the transport, for every new stream,
// before a goroutine is started or a byte of the message is read. It
// authenticates calls to the gateway's own services (so an
// unauthenticated client cannot make the gateway hold anything for them),
// bounds streams in three pools (the gateway's services, the open
// services, health Watch streams), and gives unary calls without a
// deadline the default one.
type admission struct {
	auth                  *Authenticator
	maxStreams            int64
	maxWatches            int64
	defaultTimeout        time.Duration
	streaming             map[string]bool // full method -> is a stream
	active, open, watches atomic.Int64
	metrics               *Metrics
	log                   *slog.Logger
	refusedLog            sampler
}

// admit implements tap.ServerInHandle. It must be fast: the transport
// holds a lock while it runs.
func (a *admission) admit(ctx context.Context, info *tap.Info) (context.Context, error) {
	method := info.FullMethodName
	service, _ := splitMethod(method)
	ad := &admitted{counter: &a.active}
	limit, what := a.maxStreams, "streams"
	switch {
	case method == healthWatchMethod:
		ad.counter, limit, what = &a.watches, a.maxWatches, "health Watch streams"
	case isOpenService(service):
		ad.counter, limit, what = &a.open, maxOpenStreams, "open streams"
	default:
		caller, err := a.auth.authenticate(ctx)
		if err != nil {
			a.refused(ctx, method, "unauthenticated", "the stream's credentials were refused", 0)
			return nil, statusOf(err).Err()
		}
		ad.caller, ad.authenticated = caller, true
	}
	if ad.counter.Add(1) > limit {
		ad.counter.Add(-1)
		return nil, a.refuse(ctx, method, what, limit)
	}
	// The place is released once: by the interceptors when the handler
	// returns (admitted.handled), or when the stream's context ends. The
	// latter is registered on the stream's own context, not the default
	// deadline's, which ends while the handler may still run.
	ad.stop = context.AfterFunc(ctx, ad.release)
	if _, ok := ctx.Deadline(); !ok && a.defaultTimeout > 0 && !a.streaming[method] {
		ctx, ad.cancel = context.WithTimeout(ctx, a.defaultTimeout)
	}
	return context.WithValue(ctx, admittedKey{}, ad), nil
}

// refused counts a refused stream and logs it, sampled.
func (a *admission) refused(ctx context.Context, method, reason, msg string, limit int64) {
	a.metrics.refusedStream(reason)
	if a.refusedLog.allow() {
		a.log.LogAttrs(ctx, slog.LevelWarn, "refused a new stream: "+msg,
			slog.String("grpc.method", method), slog.String("reason", reason), slog.Int64("limit", limit),
			slog.Int64("similar_lines_dropped", a.refusedLog.dropped()))
	}
}

func (a *admission) refuse(ctx context.Context, method, what string, limit int64) error {
	reason := strings.ReplaceAll(what, " ", "_")
	a.refused(ctx, method, reason, "the gateway is at its bound on "+what, limit)
	st := withDetails(status.Newf(codes.ResourceExhausted, "the gateway is at its limit of %d concurrent %s; retry with backoff", limit, what),
		gatewayInfo(ReasonOverloaded, map[string]string{"bound": reason}))
	return st.Err()
}
