package heygen

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// LimitError is a call the client refused to send because one of its own
// protections said no: nothing reached HeyGen.
type LimitError struct {
	// Reason is LimitCircuitOpen or LimitConcurrency.
	Reason string
	// RetryAfter is when trying again makes sense (the time until the
	// breaker lets a probe through), or 0 when unknown.
	RetryAfter time.Duration
	// LastFailure is, for an open breaker, what the failures that opened
	// it were ("connection refused", "HTTP 503"): never upstream text.
	LastFailure string
}

// Reasons for a LimitError.
const (
	// LimitCircuitOpen: HeyGen failed repeatedly; calls are not sent until
	// the breaker's open period ends and a probe succeeds.
	LimitCircuitOpen = "circuit_open"
	// LimitConcurrency: the bound on concurrent HeyGen calls is reached.
	LimitConcurrency = "concurrency_limit"
)

// Error implements error.
func (e *LimitError) Error() string {
	switch e.Reason {
	case LimitCircuitOpen:
		msg := "circuit breaker open after repeated HeyGen failures"
		if e.LastFailure != "" {
			msg += " (last: " + e.LastFailure + ")"
		}
		return msg + "; not calling HeyGen for " + e.RetryAfter.Round(time.Millisecond).String()
	case LimitConcurrency:
		return "too many concurrent HeyGen calls; refused without queueing"
	}
	return "call refused: " + e.Reason
}

// BreakerPolicy configures the circuit breaker around HeyGen. Zero fields
// take defaults.
type BreakerPolicy struct {
	// Disabled turns the breaker off.
	Disabled bool
	// ConsecutiveFailures opens the breaker (default 5). They are counted
	// per call, after its retries, not per attempt; only transport errors,
	// timeouts and 5xx count: 4xx and 429 never open it.
	ConsecutiveFailures int
	// OpenFor is how long it stays open before letting one probe through
	// (default 30s).
	OpenFor time.Duration
}

// breaker wraps gobreaker (maintained, small, with half-open probing) and
// remembers when it opened, so callers can be told when to come back.
type breaker struct {
	cb          *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor     time.Duration
	openedAt    atomic.Int64 // unix nanos of the last transition to open
	lastFailure atomic.Pointer[string]
}

func newBreaker(p BreakerPolicy, onState func(state string)) *breaker {
	if p.Disabled {
		return nil
	}
	if p.ConsecutiveFailures <= 0 {
		p.ConsecutiveFailures = 5
	}
	trip := uint32(min(p.ConsecutiveFailures, 1<<20)) //nolint:gosec // G115: clamped to a small positive range above
	if p.OpenFor <= 0 {
		p.OpenFor = 30 * time.Second
	}
	b := &breaker{openFor: p.OpenFor}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "heygen",
		MaxRequests: 1,
		Timeout:     p.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= trip },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			if onState != nil {
				onState(to.String())
			}
		},
	})
	return b
}

// allow asks the breaker for permission to make one call (all its
// attempts). done reports the call's outcome: failure is the classified
// cause when HeyGen failed, "" when it did not.
func (b *breaker) allow() (done func(failure string), err error) {
	if b == nil {
		return func(string) {}, nil
	}
	report, err := b.cb.Allow()
	if err != nil {
		wait := b.openFor - time.Since(time.Unix(0, b.openedAt.Load()))
		if errors.Is(err, gobreaker.ErrTooManyRequests) || wait <= 0 {
			wait = 100 * time.Millisecond // a probe is under way
		}
		lerr := &LimitError{Reason: LimitCircuitOpen, RetryAfter: wait}
		if last := b.lastFailure.Load(); last != nil {
			lerr.LastFailure = *last
		}
		return nil, lerr
	}
	return func(failure string) {
		if failure == "" {
			report(nil)
			return
		}
		b.lastFailure.Store(&failure)
		report(errCallFailed)
	}, nil
}

var errCallFailed = errors.New("call failed")

func (b *breaker) state() string {
	if b == nil {
		return "disabled"
	}
	return b.cb.State().String()
}

// RetryBudget bounds retries to a fraction of calls over a sliding window,
// so a HeyGen brown-out does not multiply the traffic sent to it.
type RetryBudget struct {
	// Ratio is the most retries per call (default 0.1: 10%). Negative
	// disables the budget.
	Ratio float64
	// MinRetries is always allowed per window, so a quiet gateway can still
	// retry (default 10).
	MinRetries int
	// Window is the sliding window (default 10s).
	Window time.Duration
}

const budgetBuckets = 10

// retryBudget is a sliding window of call and retry counts in buckets.
type retryBudget struct {
	ratio      float64
	minRetries int
	bucket     time.Duration

	mu      sync.Mutex
	now     func() time.Time
	start   [budgetBuckets]int64 // bucket start, in bucket units
	calls   [budgetBuckets]int
	retries [budgetBuckets]int
}

func newRetryBudget(p RetryBudget) *retryBudget {
	if p.Ratio < 0 {
		return nil
	}
	if p.Ratio == 0 {
		p.Ratio = 0.1
	}
	if p.MinRetries <= 0 {
		p.MinRetries = 10
	}
	if p.Window <= 0 {
		p.Window = 10 * time.Second
	}
	return &retryBudget{ratio: p.Ratio, minRetries: p.MinRetries, bucket: p.Window / budgetBuckets, now: time.Now}
}

// slot returns the current bucket, clearing it if it is from an older window.
func (b *retryBudget) slot() int {
	n := b.now().UnixNano() / int64(b.bucket)
	i := int(n % budgetBuckets)
	if b.start[i] != n {
		b.start[i], b.calls[i], b.retries[i] = n, 0, 0
	}
	return i
}

func (b *retryBudget) totals() (calls, retries int) {
	n := b.now().UnixNano() / int64(b.bucket)
	for i := range budgetBuckets {
		if n-b.start[i] < budgetBuckets {
			calls += b.calls[i]
			retries += b.retries[i]
		}
	}
	return calls, retries
}

// recordCall counts a first attempt.
func (b *retryBudget) recordCall() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.calls[b.slot()]++
	b.mu.Unlock()
}

// tryRetry takes one retry from the budget, if there is one left.
func (b *retryBudget) tryRetry() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.slot()
	calls, retries := b.totals()
	if retries >= b.minRetries && float64(retries+1) > b.ratio*float64(calls) {
		return false
	}
	b.retries[i]++
	return true
}

type queueKey struct{}

// WithQueueing marks ctx's calls as background work (a catalogue crawl, a
// health probe) that may wait for a concurrency slot instead of failing fast.
func WithQueueing(ctx context.Context) context.Context {
	return context.WithValue(ctx, queueKey{}, true)
}

func queueing(ctx context.Context) bool {
	q, _ := ctx.Value(queueKey{}).(bool)
	return q
}

type rateLimitsReturnedKey struct{}

// WithRateLimitsReturned marks ctx's calls as ending at HeyGen's first 429
// instead of waiting out its Retry-After and trying again: for callers that
// act on a rate limit themselves (the gateway holds every video create for
// as long as HeyGen asked, and its video poller pauses), so that the wait
// happens once, where it is visible, and holds no concurrency slot.
func WithRateLimitsReturned(ctx context.Context) context.Context {
	return context.WithValue(ctx, rateLimitsReturnedKey{}, true)
}

func rateLimitsReturned(ctx context.Context) bool {
	r, _ := ctx.Value(rateLimitsReturnedKey{}).(bool)
	return r
}
