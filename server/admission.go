package server

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Every RPC passes these layers, outermost first:
//
//   - the tap (admission.admit), run by the transport as soon as a
//     stream's headers are in, before any goroutine or decoding: it
//     authenticates calls to the gateway's own services, bounds streams
//     across all connections, bounds health Watch streams, gives unary
//     calls without a deadline the default one (so a stream that never
//     sends its message cannot hold memory for ever), and creates the
//     call's state;
//   - for unary calls, the method wrapper (observedRegistrar), which sees
//     the calls whose request never reached the interceptors (it did not
//     decode, or its deadline passed while it was awaited) and records
//     them;
//   - the interceptors (interceptors.go): the call reporter (metrics,
//     usage, the log line), admission of the caller (rate limits, the
//     in-flight bound) with the one mapping from errors to statuses, and
//     recovery.
//
// There is no stats handler: grpc-go builds seven events a call for one
// (copying the request, response and trailer metadata), which profiled at
// a tenth of a cached call's server CPU, for two facts the tap and the
// interceptors already have: when a call started and how it ended.

// callState is one call's state: the tap creates it when the stream's
// headers arrive, the interceptors and the handler fill it in, and the
// call reporter (or, for a unary call the interceptors never saw, the
// method wrapper) reads it when the call ends.
type callState struct {
	method string // full method name
	// caller is who the call is for: set by the tap for the gateway's own
	// services (pointing at callerName), or by the interceptors.
	caller     atomic.Pointer[string]
	callerName string
	seen       atomic.Bool // the call reporter ran
	heygen     heygen.CallStats
	// report is the call reporter's per-call state, kept here so that it
	// costs no allocation of its own.
	report callReport

	// counter is the pool the stream holds a place in; cancel, when set,
	// releases the default deadline's timer.
	counter *atomic.Int64
	cancel  context.CancelFunc
	// stop is the context.AfterFunc that releases the place when the
	// stream's context ends.
	stop func() bool
}

type callStateKey struct{}

func callStateFrom(ctx context.Context) *callState {
	s, _ := ctx.Value(callStateKey{}).(*callState)
	return s
}

func callerOrUnauthenticated(caller string) string {
	if caller == "" {
		return "unauthenticated"
	}
	return caller
}

// setCaller records the call's caller.
func (s *callState) setCaller(c string) { s.caller.Store(&c) }

func callerOf(ctx context.Context) string {
	if s := callStateFrom(ctx); s != nil {
		if c := s.caller.Load(); c != nil {
			return *c
		}
	}
	return ""
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

// release gives the stream's place back.
func (s *callState) release() {
	s.counter.Add(-1)
	if s.cancel != nil {
		s.cancel()
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
func (s *callState) handled() {
	if s != nil && s.stop != nil && s.cancel == nil && s.stop() {
		s.release()
	}
}

// admission is the tap: it runs in the transport, for every new stream,
// before a goroutine is started or a byte of the message is read. It
// authenticates calls to the gateway's own services (so an
// unauthenticated client cannot make the gateway hold anything for them),
// bounds streams in three pools (the gateway's services, the open
// services, health Watch streams), gives unary calls without a deadline
// the default one, and attaches the call's state (callState) and the
// counter of its HeyGen attempts.
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
	st := &callState{method: method, counter: &a.active}
	limit, what := a.maxStreams, "streams"
	switch {
	case method == healthWatchMethod:
		st.counter, limit, what = &a.watches, a.maxWatches, "health Watch streams"
	case isOpenService(service):
		st.counter, limit, what = &a.open, maxOpenStreams, "open streams"
	default:
		caller, err := a.auth.authenticate(ctx)
		if err != nil {
			a.refused(ctx, method, "unauthenticated", "the stream's credentials were refused", 0)
			return nil, statusOf(err).Err()
		}
		st.callerName = caller
		st.caller.Store(&st.callerName)
	}
	if st.counter.Add(1) > limit {
		st.counter.Add(-1)
		return nil, a.refuse(ctx, method, what, limit)
	}
	// The place is released once: by the interceptors when the handler
	// returns (callState.handled), or when the stream's context ends. The
	// latter is registered on the stream's own context, not the default
	// deadline's, which ends while the handler may still run.
	st.stop = context.AfterFunc(ctx, st.release)
	if _, ok := ctx.Deadline(); !ok && a.defaultTimeout > 0 && !a.streaming[method] {
		ctx, st.cancel = context.WithTimeout(ctx, a.defaultTimeout)
	}
	return &callContext{Context: ctx, st: st}, nil
}

// callContext is a stream's context with its call's state, under the two
// keys every call looks up (the state, and the HeyGen client's attempt
// counter inside it): one layer instead of two context.WithValue.
type callContext struct {
	context.Context
	st *callState
}

// Value implements context.Context.
func (c *callContext) Value(key any) any {
	switch key {
	case callStateKey{}:
		return c.st
	case heygen.CallStatsKey:
		return &c.st.heygen
	}
	return c.Context.Value(key)
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
