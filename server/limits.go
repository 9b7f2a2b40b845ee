package server

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: PerSecond sustained, Burst at once. PerSecond
// 0 means unlimited.
type Limit struct {
	PerSecond float64
	Burst     int
}

// RateLimits are per-caller token buckets (golang.org/x/time/rate: the
// standard, well-kept implementation).
type RateLimits struct {
	// Default applies to every caller without an override.
	Default Limit
	// Callers overrides Default by caller name.
	Callers map[string]Limit
}

// ParseRateLimits parses "name=rps:burst,..." overrides, as given to the
// -caller-rate-limits flag.
func ParseRateLimits(spec string) (map[string]Limit, error) {
	out := map[string]Limit{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, l, ok := strings.Cut(item, "=")
		if !ok || !callerNamePattern.MatchString(strings.TrimSpace(name)) {
			return nil, fmt.Errorf("rate limit %q: want caller=rps:burst", item)
		}
		lim, err := ParseLimit(l)
		if err != nil {
			return nil, fmt.Errorf("rate limit for %s: %w", name, err)
		}
		out[strings.TrimSpace(name)] = lim
	}
	return out, nil
}

// ParseLimit parses "rps:burst" ("5:10"); a bare "rps" takes burst = max(1, rps).
func ParseLimit(s string) (Limit, error) {
	rps, burst, hasBurst := strings.Cut(strings.TrimSpace(s), ":")
	r, err := strconv.ParseFloat(rps, 64)
	if err != nil || r < 0 {
		return Limit{}, fmt.Errorf("%q: want requests per second (>= 0), optionally :burst", s)
	}
	b := max(1, int(r))
	if hasBurst {
		if b, err = strconv.Atoi(burst); err != nil || b < 1 {
			return Limit{}, fmt.Errorf("%q: burst must be a positive integer", s)
		}
	}
	return Limit{PerSecond: r, Burst: b}, nil
}

// SharedLimiter is a rate limiter a fleet of replicas shares (see the
// fleet package): a caller limited to L calls a second gets L across the
// fleet, however many replicas there are.
type SharedLimiter interface {
	// Allow takes one call from caller's fleet-wide budget. An error means
	// the shared store could not be asked.
	Allow(ctx context.Context, caller string, perSecond float64, burst int) (bool, time.Duration, error)
	// Up reports whether the shared store is reachable.
	Up() bool
	// Size is the number of replicas alive recently (at least 1).
	Size() int
}

// rateLimiter keeps one bucket per caller. Callers are the bounded set
// from the callers file (or certificates, or AnonymousCaller), and the map
// is capped regardless. With a shared limiter the buckets are the fleet's;
// while it is unreachable each replica enforces its share of the limit
// (the limit divided by the fleet's last known size) locally, so a caller
// gets about its limit across the fleet, and at most size-now/size-then
// times it if the fleet grew during the outage.
type rateLimiter struct {
	cfg     RateLimits
	shared  SharedLimiter // nil: alone
	metrics *Metrics
	// what the limit counts, for messages ("requests" when empty), and its
	// scope: for error metadata, and the prefix of its keys in the shared
	// limiter ("" for the limit on every call).
	what, scope string
	mu          sync.Mutex
	buckets     map[string]*localBucket
}

// localBucket is a caller's bucket and the share of the fleet it was sized for.
type localBucket struct {
	lim   *rate.Limiter
	share int
}

const maxBuckets = 10000

func newRateLimiter(cfg RateLimits, shared SharedLimiter, m *Metrics) *rateLimiter {
	return &rateLimiter{cfg: cfg, shared: shared, metrics: m, buckets: map[string]*localBucket{}}
}

// rateLimitError is a caller over its limit.
type rateLimitError struct {
	caller      string
	limit       Limit
	delay       time.Duration
	what, scope string // see rateLimiter
}

func (e *rateLimitError) Error() string {
	what := e.what
	if what == "" {
		what = "requests"
	}
	return fmt.Sprintf("caller %s is over its rate limit of %g %s per second (burst %d); retry after %s",
		e.caller, e.limit.PerSecond, what, e.limit.Burst, e.delay.Round(time.Millisecond))
}

// allow takes a token for caller, or says how long until one is free.
func (r *rateLimiter) allow(ctx context.Context, caller string) error {
	lim, ok := r.cfg.Callers[caller]
	if !ok {
		lim = r.cfg.Default
	}
	if lim.PerSecond <= 0 {
		return nil
	}
	share := 1
	if r.shared != nil {
		if r.shared.Up() {
			key := caller
			if r.scope != "" {
				key = r.scope + "/" + caller // a bucket of its own, not the caller's RPC one
			}
			allowed, wait, err := r.shared.Allow(ctx, key, lim.PerSecond, lim.Burst)
			if err == nil {
				if allowed {
					return nil
				}
				return &rateLimitError{caller: caller, limit: lim, delay: wait, what: r.what, scope: r.scope}
			}
		}
		r.metrics.rateLimitFallback()
		share = r.shared.Size()
	}
	r.mu.Lock()
	b, ok := r.buckets[caller]
	if !ok || b.share != share {
		if len(r.buckets) >= maxBuckets {
			clear(r.buckets)
		}
		burst := max(1, int(math.Round(float64(lim.Burst)/float64(share))))
		b = &localBucket{lim: rate.NewLimiter(rate.Limit(lim.PerSecond/float64(share)), burst), share: share}
		r.buckets[caller] = b
	}
	r.mu.Unlock()
	res := b.lim.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return &rateLimitError{caller: caller, limit: lim, delay: d, what: r.what, scope: r.scope}
	}
	return nil
}

// overloadError: the gateway refuses work beyond its bound on RPCs in
// flight instead of queueing it.
type overloadError struct{ limit int }

func (e *overloadError) Error() string {
	return fmt.Sprintf("the gateway is at its limit of %d calls in flight; retry with backoff", e.limit)
}

// inflightLimiter bounds concurrent RPCs; beyond it calls fail fast. It
// never waits, so a counter is all it needs (a semaphore took a lock twice
// a call).
type inflightLimiter struct {
	n     atomic.Int64
	limit int
}

func newInflightLimiter(n int) *inflightLimiter {
	if n <= 0 {
		return nil
	}
	return &inflightLimiter{limit: n}
}

// acquire takes a slot; release returns it.
func (l *inflightLimiter) acquire() error {
	if l == nil {
		return nil
	}
	if l.n.Add(1) > int64(l.limit) {
		l.n.Add(-1)
		return &overloadError{limit: l.limit}
	}
	return nil
}

func (l *inflightLimiter) release() {
	if l != nil {
		l.n.Add(-1)
	}
}
