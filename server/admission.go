package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
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
	info   *methodInfo
	// caller is who the call is for: set by the tap for the gateway's own
	// services (pointing at callerName), or by the interceptors.
	caller     atomic.Pointer[string]
	callerName string
	seen       atomic.Bool // the call reporter ran
	heygen     heygen.CallStats
	// report is the call reporter's per-call state, kept here so that it
	// costs no allocation of its own.
	report callReport
	// header is the response header metadata the handler left for the
	// call reporter to send (Server.answered); nil: none. It is shared
	// between calls and only read.
	header metadata.MD

	// counter is the pool the stream holds a place in, until released.
	counter  *atomic.Int64
	released atomic.Bool
	// stream is the stream's context: when it ends before the place was
	// released (a stream that never reached a handler), the sweeper
	// releases it.
	stream context.Context
	// cancel releases the default deadline's timer, if the tap set one
	// (grpc-go's end of the stream releases it too: the deadline's
	// context is the stream's child).
	cancel context.CancelFunc
	// The stream's links in its shard of the streams holding a place.
	shard      *liveShard
	prev, next *callState
	// ctx is the context the tap gives the call: kept here, so that the
	// state and its context are one allocation.
	ctx callContext
}

type callStateKey struct{}

// methodInfo is what the gateway keeps of a registered method, found once
// per call by the tap: whether it streams, whether it is open to every
// caller, its part of the log line and its metric series (nil without
// metrics).
type methodInfo struct {
	stream, open bool
	line         *methodLine
	labels       *methodLabels
}

func newMethodInfo(full, typ string, m *Metrics) *methodInfo {
	service, method := splitMethod(full)
	info := &methodInfo{stream: typ != "unary", open: isOpenService(service), line: newMethodLine(service, method, typ)}
	if m != nil {
		info.labels = m.labels(full)
	}
	return info
}

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

// who is the call's caller, "" when none is known (s may be nil).
func (s *callState) who() string {
	if s != nil {
		if c := s.caller.Load(); c != nil {
			return *c
		}
	}
	return ""
}

func callerOf(ctx context.Context) string { return callStateFrom(ctx).who() }

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

// handled gives the stream's place back as its handler returns (for unary
// calls, the method wrapper, which sees even those whose request never
// reached an interceptor; for streams, the guard). A place is given back
// once, by this or by the sweeper.
func (s *callState) handled() {
	if s != nil && s.counter != nil && s.released.CompareAndSwap(false, true) {
		s.shard.remove(s)
		s.counter.Add(-1)
	}
}

// liveStreams are the streams holding a place in the tap's bounds, in
// shards (each a list under a lock), so that the sweeper can find those
// whose stream ended before a handler ran: a request in an encoding the
// gateway cannot decompress, a deadline that passed between the tap and
// grpc-go's own check. Tracking a stream costs two list operations; the
// context.AfterFunc it replaces cost about 0.7 µs and five allocations a
// call, for streams that are rare.
type liveStreams struct {
	shards [16]liveShard
	next   atomic.Uint32
	// lastSweep is when a sweep last ran (Unix ns), so that streams at a
	// bound sweep at most once per sweepAtBoundEvery.
	lastSweep atomic.Int64
}

type liveShard struct {
	mu   sync.Mutex
	head *callState
}

// Sweeps: every sweepEvery, and when a stream finds its bound full, at
// most once per sweepAtBoundEvery.
const (
	sweepEvery        = 100 * time.Millisecond
	sweepAtBoundEvery = 10 * time.Millisecond
)

func (l *liveStreams) add(s *callState) {
	sh := &l.shards[l.next.Add(1)%uint32(len(l.shards))]
	s.shard = sh
	sh.mu.Lock()
	s.next = sh.head
	if sh.head != nil {
		sh.head.prev = s
	}
	sh.head = s
	sh.mu.Unlock()
}

func (sh *liveShard) remove(s *callState) {
	sh.mu.Lock()
	sh.unlink(s)
	sh.mu.Unlock()
}

// unlink takes s out of the shard; sh.mu must be held.
func (sh *liveShard) unlink(s *callState) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		sh.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	}
	s.prev, s.next = nil, nil
}

// sweep gives back the places of streams that ended without their
// handler giving them back, and reports how many.
func (l *liveStreams) sweep() int {
	l.lastSweep.Store(time.Now().UnixNano())
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for s := sh.head; s != nil; {
			next := s.next
			if s.stream.Err() != nil && s.released.CompareAndSwap(false, true) {
				sh.unlink(s)
				s.counter.Add(-1)
				if s.cancel != nil {
					s.cancel()
				}
				n++
			}
			s = next
		}
		sh.mu.Unlock()
	}
	return n
}

// sweepAtBound sweeps for a stream that found its bound full, unless a
// sweep ran within sweepAtBoundEvery, and reports whether places came
// back.
func (l *liveStreams) sweepAtBound() bool {
	last := l.lastSweep.Load()
	now := time.Now().UnixNano()
	if now-last < int64(sweepAtBoundEvery) || !l.lastSweep.CompareAndSwap(last, now) {
		return false
	}
	return l.sweep() > 0
}

// run sweeps every sweepEvery until done is closed.
func (l *liveStreams) run(done <-chan struct{}) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			l.sweep()
		}
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
	methods               map[string]*methodInfo // registered full method -> what the gateway keeps of it
	active, open, watches atomic.Int64
	live                  liveStreams
	metrics               *Metrics
	log                   *slog.Logger
	refusedLog            sampler
}

// admit implements tap.ServerInHandle. It must be fast: the transport
// holds a lock while it runs.
func (a *admission) admit(ctx context.Context, info *tap.Info) (context.Context, error) {
	method := info.FullMethodName
	mi := a.methods[method] // nil: not registered
	st := &callState{method: method, info: mi, counter: &a.active, stream: ctx}
	limit, what := a.maxStreams, "streams"
	switch {
	case method == healthWatchMethod:
		st.counter, limit, what = &a.watches, a.maxWatches, "health Watch streams"
	case isOpenCall(st, method):
		st.counter, limit, what = &a.open, maxOpenStreams, "open streams"
	default:
		caller, err := a.auth.authenticate(ctx, info.Header)
		if err != nil {
			a.refused(ctx, method, "unauthenticated", "the stream's credentials were refused", 0, nil)
			return nil, statusOf(err).Err()
		}
		st.callerName = caller
		st.caller.Store(&st.callerName)
	}
	if mi == nil {
		// grpc-go answers UNIMPLEMENTED at once: nothing to hold or record.
		return ctx, nil
	}
	if !take(st.counter, limit) && (!a.live.sweepAtBound() || !take(st.counter, limit)) {
		return nil, a.refuse(ctx, method, what, limit, st.counter)
	}
	// The place is given back once: when the handler returns
	// (callState.handled), or by the sweeper if the stream ends first.
	a.live.add(st)
	if _, ok := ctx.Deadline(); !ok && a.defaultTimeout > 0 && !mi.stream {
		ctx, st.cancel = context.WithTimeout(ctx, a.defaultTimeout)
	}
	st.ctx = callContext{Context: ctx, st: st}
	return &st.ctx, nil
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

// take takes a place in a pool of limit places, if one is free.
func take(c *atomic.Int64, limit int64) bool {
	if c.Add(1) > limit {
		c.Add(-1)
		return false
	}
	return true
}

// refused counts a refused stream and logs it, sampled; pool, when set,
// is the bound it found full, and the line then says what holds it.
func (a *admission) refused(ctx context.Context, method, reason, msg string, limit int64, pool *atomic.Int64) {
	a.metrics.refusedStream(reason)
	if a.refusedLog.allow() {
		attrs := []slog.Attr{slog.String("grpc.method", method), slog.String("reason", reason), slog.Int64("limit", limit),
			slog.Int64("similar_lines_dropped", a.refusedLog.dropped())}
		if pool != nil {
			attrs = append(attrs, slog.String("held_by", a.live.holders(pool)))
		}
		a.log.LogAttrs(ctx, slog.LevelWarn, "refused a new stream: "+msg, attrs...)
	}
}

// holders says which streams hold places in pool: by method, how many
// are running and how many ended without their handler giving their
// place back (the sweeper's to give back). It walks every live stream:
// it is for the sampled refusal line only.
func (l *liveStreams) holders(pool *atomic.Int64) string {
	type count struct{ running, ended int }
	byMethod := map[string]*count{}
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for s := sh.head; s != nil; s = s.next {
			if s.counter != pool || s.released.Load() {
				continue
			}
			c := byMethod[s.method]
			if c == nil {
				c = &count{}
				byMethod[s.method] = c
			}
			if s.stream.Err() != nil {
				c.ended++
			} else {
				c.running++
			}
		}
		sh.mu.Unlock()
	}
	methods := make([]string, 0, len(byMethod))
	for m := range byMethod {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	var b strings.Builder
	for i, m := range methods {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d running, %d ended awaiting the sweeper", m, byMethod[m].running, byMethod[m].ended)
	}
	if b.Len() == 0 {
		return "none (places were given back while the line was written)"
	}
	return b.String()
}

func (a *admission) refuse(ctx context.Context, method, what string, limit int64, pool *atomic.Int64) error {
	reason := strings.ReplaceAll(what, " ", "_")
	a.refused(ctx, method, reason, "the gateway is at its bound on "+what, limit, pool)
	st := withDetails(status.Newf(codes.ResourceExhausted, "the gateway is at its limit of %d concurrent %s; retry with backoff", limit, what),
		gatewayInfo(ReasonOverloaded, map[string]string{"bound": reason}))
	return st.Err()
}
