package heygen

import (
	"bytes"
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

// RetryPolicy configures the client's retries. Zero fields take the defaults.
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

// Attempt is one HTTP attempt's outcome, as [ShouldRetry] sees it.
type Attempt struct {
	// Method is the request's HTTP method.
	Method string
	// Keyed reports whether the request carries an Idempotency-Key.
	Keyed bool
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Code is HeyGen's error code; the transport reads it only for 409s.
	Code string
	// Err is the transport error, if any.
	Err error
}

// Idempotent reports whether the request may be sent more than once: a
// GET, HEAD or OPTIONS, or a write that carries an Idempotency-Key (HeyGen
// replays the first answer to a repeated key instead of acting twice).
func (a Attempt) Idempotent() bool {
	switch a.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return a.Keyed
}

// ShouldRetry is the retry decision, a pure function of one attempt's
// outcome. Only idempotent requests (see [Attempt.Idempotent]) are ever
// retried: a POST or DELETE without an Idempotency-Key is sent once,
// whatever happens, because a second one could act twice (and bill twice).
// For those: transport errors, HTTP 429, 500, 502, 503 and 504, and a 409
// request_in_progress (the first request with that key is still running)
// are retried; anything else is final. reason is a short label for logs
// and metrics.
func ShouldRetry(a Attempt) (retry bool, reason string) {
	var lerr *LimitError
	switch {
	case errors.As(a.Err, &lerr), !a.Idempotent():
		return false, ""
	case a.Err != nil:
		return true, "transport_error"
	}
	switch a.Status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, "http_" + strconv.Itoa(a.Status)
	case http.StatusConflict:
		if a.Code == "request_in_progress" {
			return true, "request_in_progress"
		}
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

// Schedule returns the backoff schedule of one call: waits uniform in
// [0, min(MaxDelay, BaseDelay*2^n)] before retry n+1, stopping after
// MaxAttempts-1 retries (backoff.Stop).
func (p RetryPolicy) Schedule() backoff.BackOff {
	p = p.withDefaults()
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.BaseDelay),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxInterval(p.MaxDelay),
		backoff.WithMaxElapsedTime(0),
	)
	return backoff.WithMaxRetries(&fullJitter{exp: exp}, uint64(max(p.MaxAttempts-1, 0)))
}

// transport is the outbound interceptor: it retries, and applies the
// breaker (once per call), the retry budget and the concurrency bound
// (per attempt) to every request. It is the only place requests leave
// the process, so it is where they are counted.
type transport struct {
	base    http.RoundTripper
	policy  RetryPolicy
	log     *slog.Logger
	breaker *breaker
	budget  *retryBudget
	sem     *semaphore.Weighted // nil: unbounded
	obs     Observer
	redact  func(string) string
}

func newTransport(opts Options, redact func(string) string) *transport {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	t := &transport{
		base:    opts.Transport,
		policy:  opts.Retry.withDefaults(),
		log:     log,
		breaker: newBreaker(opts.Breaker, obs.BreakerState),
		budget:  newRetryBudget(opts.Budget),
		obs:     obs,
		redact:  redact,
	}
	if opts.MaxConcurrent > 0 {
		t.sem = semaphore.NewWeighted(int64(opts.MaxConcurrent))
	}
	return t
}

// Observer receives what the client does, for metrics. Implementations
// must be fast and safe for concurrent use. Endpoints are the method and
// route template ("GET /v3/avatars/looks/{look_id}"), never paths with ids.
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

// RoundTrip implements http.RoundTripper: one call, with its retries.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	template := endpointFrom(ctx)
	if template == "" {
		template = req.URL.Path
	}
	endpoint := req.Method + " " + template
	body, err := requestBody(req)
	if err != nil {
		return nil, err
	}
	done, err := t.breaker.allow()
	if err != nil {
		t.obs.Refused(endpoint, LimitCircuitOpen)
		return nil, err
	}
	resp, err := t.retry(req, endpoint, body)
	// The breaker counts the call once, by its final outcome, and only
	// HeyGen's own failures: not 4xx, not 429, not a caller who gave up.
	failure := ""
	switch {
	case err != nil && ctx.Err() == nil:
		var lerr *LimitError
		if !errors.As(err, &lerr) {
			failure = TransportCause(err)
		}
	case resp != nil && resp.StatusCode >= 500:
		failure = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	done(failure)
	return resp, err
}

// requestBody reads a request's body once, so each attempt can send its
// own copy.
func requestBody(req *http.Request) ([]byte, error) {
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return nil, nil
	case req.GetBody != nil:
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		defer func() { _ = rc.Close() }()
		return io.ReadAll(rc)
	}
	defer func() { _ = req.Body.Close() }()
	return io.ReadAll(req.Body)
}

func (t *transport) retry(req *http.Request, endpoint string, body []byte) (*http.Response, error) {
	ctx := req.Context()
	schedule := t.policy.Schedule()
	counter := attemptCounterFrom(ctx)
	keyed := req.Header.Get("Idempotency-Key") != ""
	t.budget.recordCall()
	var (
		resp *http.Response
		err  error
	)
	for attempt := 1; ; attempt++ {
		r, sent, e := t.attempt(req, endpoint, body, attempt == 1)
		if !sent && attempt > 1 {
			// A protection refused the retry: the caller gets the last real outcome.
			return resp, err
		}
		if sent && counter != nil {
			counter.add()
		}
		resp, err = r, e
		if !sent || ctx.Err() != nil {
			return resp, err
		}
		out := Attempt{Method: req.Method, Keyed: keyed, Err: err}
		if resp != nil {
			out.Status = resp.StatusCode
			if resp.StatusCode == http.StatusConflict {
				out.Code = peekCode(resp)
			}
		}
		retry, reason := ShouldRetry(out)
		if !retry || out.Status == http.StatusTooManyRequests && rateLimitsReturned(ctx) {
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
		attrs := []slog.Attr{slog.String("endpoint", endpoint), slog.Int("attempt", attempt),
			slog.String("reason", reason), slog.Duration("wait", wait)}
		if resp != nil {
			attrs = append(attrs, slog.String("heygen_request_id", cleanField(resp.Header.Get("X-Request-Id"), 128, t.redact)))
		} else {
			attrs = append(attrs, slog.String("cause", TransportCause(err)), slog.String("error", cleanField(err.Error(), 512, t.redact)))
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
// allows it (sent=false and a *LimitError otherwise). The timeout also
// covers reading the body: it is released when the body is closed, and so
// is the concurrency slot.
//
// Each attempt's body is one Go's http.Transport cannot rewind, so the
// transport never silently resends a request on a reused connection that
// was reset (it does that for bodiless GETs and for keyed POSTs): every
// request that leaves the process is one this loop counted and budgeted.
func (t *transport) attempt(req *http.Request, endpoint string, body []byte, first bool) (resp *http.Response, sent bool, err error) {
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
	actx, cancel := context.WithTimeout(ctx, t.policy.AttemptTimeout)
	// A shallow copy (headers shared): only its context and body change,
	// and cloning the headers of every attempt was a crawl's megabytes.
	r := req.WithContext(actx)
	r.GetBody = nil
	if body != nil {
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	} else {
		// Not nil and not http.NoBody: see above. net/http probes it, finds
		// it empty and sends no body.
		r.Body, r.ContentLength = emptyBody{}, 0
	}
	start := time.Now()
	resp, err = t.base.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	t.obs.Attempt(endpoint, status, time.Since(start))
	if err != nil {
		cancel()
		release()
		return nil, true, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(); release() }}
	return resp, true, nil
}

// emptyBody is an empty request body that net/http cannot replay.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// peekCode reads HeyGen's error code from a (small) response body and puts
// the body back for the caller.
func peekCode(resp *http.Response) string {
	buf, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = readCloser{Reader: io.MultiReader(bytes.NewReader(buf), resp.Body), Closer: resp.Body}
	if err != nil {
		return ""
	}
	_, code, _, _, _, _ := decodeEnvelope(buf)
	return code
}

type readCloser struct {
	io.Reader
	io.Closer
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

// CallStatsKey is the context key [CallStatsFrom] looks up (its value a
// *CallStats), for callers that keep a call's CallStats in a context type
// of their own together with other per-call values, rather than add a
// context layer for it with [WithCallStats].
var CallStatsKey any = statsKey{}

// CallStatsFrom returns the CallStats attached by [WithCallStats], or nil.
func CallStatsFrom(ctx context.Context) *CallStats {
	s, _ := ctx.Value(statsKey{}).(*CallStats)
	return s
}

// CloseIdleConnections forwards to the base transport, if it keeps any.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
