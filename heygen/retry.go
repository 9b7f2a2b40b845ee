package heygen

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/sync/semaphore"
)

// RetryPolicy configures [NewRetryTransport]. Zero fields take the defaults.
type RetryPolicy struct {
	// MaxAttempts is the most HTTP attempts per call, the first included
	// (default 3; 1 disables retries).
	MaxAttempts int
	// BaseDelay is the backoff before the first retry, doubled for each
	// further retry before full jitter is applied (default 1s).
	BaseDelay time.Duration
	// MaxDelay caps every wait, including one asked for by Retry-After
	// (default 30s).
	MaxDelay time.Duration
	// AttemptTimeout bounds one attempt, response body included (default 10s).
	AttemptTimeout time.Duration
}

// Default retry settings, after HeyGen's own CLI: 3 attempts, 1s doubling,
// capped at 30s.
const (
	DefaultMaxAttempts    = 3
	DefaultBaseDelay      = time.Second
	DefaultMaxDelay       = 30 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = DefaultAttemptTimeout
	}
	return p
}

// ShouldRetry is the retry decision, a pure function of one attempt's
// outcome: transport errors and HTTP 429, 500, 502, 503 and 504 are retried
// (every call this client makes is an idempotent GET); anything else is
// final. reason is a short label for logs and metrics.
func ShouldRetry(resp *http.Response, err error) (retry bool, reason string) {
	var lerr *LimitError
	switch {
	case errors.As(err, &lerr):
		return false, ""
	case err != nil:
		return true, "transport_error"
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, "http_" + strconv.Itoa(resp.StatusCode)
	}
	return false, ""
}

// fullJitter turns an exponential schedule into AWS-style "full jitter":
// each wait is uniform in [0, the exponential ceiling].
type fullJitter struct{ exp backoff.BackOff }

func (f *fullJitter) NextBackOff() time.Duration {
	d := f.exp.NextBackOff()
	if d == backoff.Stop || d <= 0 {
		return d
	}
	return rand.N(d + 1) //nolint:gosec // G404: jitter spreads retries; it protects nothing
}

func (f *fullJitter) Reset() { f.exp.Reset() }

// newSchedule returns the backoff schedule for one call: full jitter over
// a doubling ceiling capped at MaxDelay, stopping after MaxAttempts-1 retries.
func (p RetryPolicy) newSchedule() backoff.BackOff {
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.BaseDelay),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxInterval(p.MaxDelay),
		backoff.WithMaxElapsedTime(0),
	)
	return backoff.WithMaxRetries(&fullJitter{exp: exp}, uint64(max(p.MaxAttempts-1, 0)))
}

// retryTransport is the outbound interceptor: it retries, and applies the
// breaker, the retry budget and the concurrency bound to every attempt.
type retryTransport struct {
	base    http.RoundTripper
	policy  RetryPolicy
	log     *slog.Logger
	breaker *breaker
	budget  *retryBudget
	sem     *semaphore.Weighted // nil: unbounded
	obs     Observer
}

// Observer receives what the client does, for metrics. Implementations
// must be fast and safe for concurrent use. Endpoints are route templates
// ("/v3/avatars/looks/{look_id}"), never paths with ids.
type Observer interface {
	// Attempt is one HTTP attempt: its HTTP status (0 when no response
	// arrived) and duration.
	Attempt(endpoint string, status int, d time.Duration)
	// Retry is a retry about to be made, with its reason (see ShouldRetry).
	Retry(endpoint, reason string)
	// Refused is an attempt not sent: LimitCircuitOpen, LimitConcurrency,
	// or "retry_budget" for a retry the budget did not allow.
	Refused(endpoint, reason string)
	// BreakerState is a circuit breaker state change.
	BreakerState(state string)
}

type nopObserver struct{}

func (nopObserver) Attempt(string, int, time.Duration) {}
func (nopObserver) Retry(string, string)               {}
func (nopObserver) Refused(string, string)             {}
func (nopObserver) BreakerState(string)                {}

type endpointKey struct{}

// EndpointFrom returns the route template of the HeyGen call a request
// context belongs to ("/v3/avatars/looks/{look_id}"), for instrumentation
// that must not record ids; "" outside a client call.
func EndpointFrom(ctx context.Context) string { return endpointFrom(ctx) }

func endpointFrom(ctx context.Context) string {
	e, _ := ctx.Value(endpointKey{}).(string)
	return e
}

// NewRetryTransport wraps base with the retry policy: each attempt gets its
// own timeout; a retryable outcome is retried after the schedule's wait, or
// after Retry-After (clamped to MaxDelay) when HeyGen sent one; and when
// the next wait would not end before the request context's deadline, it
// stops at once and returns the last outcome, so the caller learns why
// (for example a rate limit) instead of timing out. Every retry is logged
// at warn with its reason, never with request headers.
//
// Only requests without a body are retried: the client sends nothing else.
func NewRetryTransport(base http.RoundTripper, policy RetryPolicy, log *slog.Logger) http.RoundTripper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &retryTransport{base: base, policy: policy.withDefaults(), log: log, obs: nopObserver{}}
}

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	endpoint := endpointFrom(ctx)
	if endpoint == "" {
		endpoint = req.URL.Path
	}
	schedule := t.policy.newSchedule()
	counter := attemptCounterFrom(ctx)
	t.budget.recordCall()
	var (
		resp *http.Response
		err  error
	)
	for attempt := 1; ; attempt++ {
		r, sent, e := t.attempt(req, endpoint, attempt == 1)
		if !sent && attempt > 1 {
			// A protection refused the retry: the caller gets the last real outcome.
			return resp, err
		}
		if sent && counter != nil {
			counter.add()
		}
		resp, err = r, e
		retry, reason := ShouldRetry(resp, err)
		if !sent || !retry || ctx.Err() != nil || (req.Body != nil && req.Body != http.NoBody) {
			return resp, err
		}
		wait := schedule.NextBackOff()
		if wait == backoff.Stop {
			return resp, err
		}
		if resp != nil {
			if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				wait = min(ra, t.policy.MaxDelay)
			}
		}
		if deadline, ok := ctx.Deadline(); ok && !time.Now().Add(wait).Before(deadline) {
			t.log.LogAttrs(ctx, slog.LevelWarn, "not retrying HeyGen call: the caller's deadline falls before the next attempt",
				slog.String("endpoint", endpoint), slog.Int("attempt", attempt),
				slog.String("reason", reason), slog.Duration("wait", wait))
			return resp, err
		}
		if !t.budget.tryRetry() {
			t.obs.Refused(endpoint, "retry_budget")
			t.log.LogAttrs(ctx, slog.LevelWarn, "not retrying HeyGen call: the retry budget is spent (HeyGen is failing widely)",
				slog.String("endpoint", endpoint), slog.Int("attempt", attempt), slog.String("reason", reason))
			return resp, err
		}
		attrs := []slog.Attr{slog.String("endpoint", endpoint), slog.String("path", req.URL.Path), slog.Int("attempt", attempt),
			slog.String("reason", reason), slog.Duration("wait", wait)}
		if resp != nil {
			attrs = append(attrs, slog.String("heygen_request_id", resp.Header.Get("X-Request-Id")))
		} else {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		t.log.LogAttrs(ctx, slog.LevelWarn, "retrying HeyGen call", attrs...)
		t.obs.Retry(endpoint, reason)
		if resp != nil {
			drain(resp.Body)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// attempt sends one try under its own timeout, if the concurrency bound
// and the breaker allow it (sent=false and a *LimitError otherwise). The
// timeout also covers reading the body: it is released when the body is
// closed, and so is the concurrency slot.
func (t *retryTransport) attempt(req *http.Request, endpoint string, first bool) (resp *http.Response, sent bool, err error) {
	ctx := req.Context()
	release := func() {}
	if t.sem != nil {
		switch {
		case t.sem.TryAcquire(1):
		case queueing(ctx) && first:
			if err := t.sem.Acquire(ctx, 1); err != nil {
				return nil, false, err
			}
		default:
			t.obs.Refused(endpoint, LimitConcurrency)
			return nil, false, &LimitError{Reason: LimitConcurrency}
		}
		release = func() { t.sem.Release(1) }
	}
	done, err := t.breaker.allow()
	if err != nil {
		release()
		t.obs.Refused(endpoint, LimitCircuitOpen)
		return nil, false, err
	}
	actx, cancel := context.WithTimeout(ctx, t.policy.AttemptTimeout)
	start := time.Now()
	resp, err = t.base.RoundTrip(req.Clone(actx))
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	t.obs.Attempt(endpoint, status, time.Since(start))
	// Only HeyGen's own failures count against it: not 4xx, not 429, and
	// not a caller who gave up.
	failed := (err != nil && ctx.Err() == nil) || (resp != nil && resp.StatusCode >= 500)
	done(!failed)
	if err != nil {
		cancel()
		release()
		return nil, true, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(); release() }}
	return resp, true, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel func()
	once   sync.Once
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(c.cancel)
	return err
}

// drain reads a little of a discarded body so its connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// attemptCounter counts HTTP attempts for one call, and optionally for the
// whole RPC it belongs to.
type attemptCounter struct {
	n     atomic.Int64
	stats *CallStats
}

func (c *attemptCounter) add() {
	c.n.Add(1)
	if c.stats != nil {
		c.stats.attempts.Add(1)
	}
}

type attemptKey struct{}

func withAttemptCounter(ctx context.Context) (context.Context, *attemptCounter) {
	c := &attemptCounter{stats: CallStatsFrom(ctx)}
	return context.WithValue(ctx, attemptKey{}, c), c
}

func attemptCounterFrom(ctx context.Context) *attemptCounter {
	c, _ := ctx.Value(attemptKey{}).(*attemptCounter)
	return c
}

// CallStats accumulates what the client did on behalf of one unit of work
// (one gRPC call, say) across all its HeyGen calls. It is safe for
// concurrent use.
type CallStats struct {
	attempts atomic.Int64
}

// Attempts returns the number of HTTP attempts made so far.
func (s *CallStats) Attempts() int64 { return s.attempts.Load() }

type statsKey struct{}

// WithCallStats returns a context whose HeyGen calls are counted in the
// returned CallStats.
func WithCallStats(ctx context.Context) (context.Context, *CallStats) {
	s := &CallStats{}
	return context.WithValue(ctx, statsKey{}, s), s
}

// CallStatsFrom returns the CallStats attached by [WithCallStats], or nil.
func CallStatsFrom(ctx context.Context) *CallStats {
	s, _ := ctx.Value(statsKey{}).(*CallStats)
	return s
}

// CloseIdleConnections forwards to the base transport, if it keeps any.
func (t *retryTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
