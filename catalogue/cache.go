package catalogue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Defaults of [Options].
const (
	DefaultRefreshInterval = 10 * time.Minute
	DefaultMaxStaleness    = 24 * time.Hour
	DefaultCrawlTimeout    = 5 * time.Minute
	// DefaultMaxPages bounds one partition of a crawl: 10,000 pages of 50
	// are half a million items, far above any real account.
	DefaultMaxPages = 10_000
	// DefaultMaxItems bounds one crawl of one resource.
	DefaultMaxItems = 1_000_000
	// DefaultNotFoundTTL is how long an id HeyGen said does not exist is
	// answered NOT_FOUND without asking again.
	DefaultNotFoundTTL = 30 * time.Second
	// DefaultMaxRemembered bounds the items fetched one by one (misses)
	// kept until the next crawl, and the ids remembered as not found.
	DefaultMaxRemembered = 10_000
	// DefaultLookupTimeout bounds one shared lookup of a missing id.
	DefaultLookupTimeout = 30 * time.Second
	// MaxPageSize is the largest page served from the catalogue: 500
	// avatars are about 250 KB on the wire, well under gRPC's 4 MiB.
	MaxPageSize = 500
	// DefaultCrawlConcurrency bounds the HeyGen calls the crawls of a
	// catalogue (every resource together) make at once.
	DefaultCrawlConcurrency = 32
	// DefaultColdPassThrough bounds the HeyGen calls made at once for
	// callers passed through to HeyGen while a cache is cold.
	DefaultColdPassThrough = 4
	// firstRetry is the backoff after a first failed crawl; it doubles up
	// to the refresh interval.
	firstRetry = 5 * time.Second
)

// Options configures a [Cache]. Zero fields take the defaults above.
type Options struct {
	// RefreshInterval is the time between crawls; each wait gets ±10%
	// jitter so replicas do not crawl in step.
	RefreshInterval time.Duration
	// MaxStaleness is how long the last good snapshot keeps serving while
	// crawls fail; past it, reads return the last crawl's error.
	MaxStaleness time.Duration
	// CrawlTimeout bounds one whole crawl.
	CrawlTimeout time.Duration
	// MaxPages bounds the pages of one partition of a crawl.
	MaxPages int
	// MaxItems bounds the items of one crawl.
	MaxItems int
	// NotFoundTTL is how long a NOT_FOUND answer for an id is remembered.
	NotFoundTTL time.Duration
	// MaxRemembered bounds the misses remembered (found and not found).
	MaxRemembered int
	// LookupTimeout bounds one lookup of an id the snapshot lacks (shared
	// by every caller asking for that id at the time).
	LookupTimeout time.Duration
	// Logger receives crawl outcomes (default: discard).
	Logger *slog.Logger
	// Observer receives crawl outcomes, for metrics and health (optional).
	Observer Observer
	// Now is the clock (default time.Now); tests move it to age snapshots.
	Now func() time.Time
	// Shared, if set, is the store a fleet of replicas shares: one
	// replica crawls per refresh and publishes, the others load.
	Shared Shared
	// VoiceEngines are the speech engines whose voices are indexed for the
	// voice list's engine filter (default DefaultVoiceEngines). Only the
	// catalogue's voices use it.
	VoiceEngines []string
	// CrawlConcurrency bounds the HeyGen calls that the crawls make at once:
	// those of every resource of a Set together, list pages and voice
	// details alike (default DefaultCrawlConcurrency).
	CrawlConcurrency int
	// ColdPassThrough bounds the HeyGen calls made at once for callers
	// passed through to HeyGen while a cache has no snapshot and its first
	// crawl runs (default DefaultColdPassThrough; negative turns it off:
	// cold callers then wait for the crawl). Callers past the bound wait
	// for the crawl.
	ColdPassThrough int
	// NoSplitCrawl turns the split crawl of a cold cache off (see
	// Resource.Split): the first crawl is then a full one, like the others.
	NoSplitCrawl bool

	limits *crawlLimits // shared by the caches of a Set
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.RefreshInterval, DefaultRefreshInterval)
	def(&o.MaxStaleness, DefaultMaxStaleness)
	def(&o.CrawlTimeout, DefaultCrawlTimeout)
	def(&o.NotFoundTTL, DefaultNotFoundTTL)
	def(&o.LookupTimeout, DefaultLookupTimeout)
	defInt(&o.MaxPages, DefaultMaxPages)
	defInt(&o.MaxItems, DefaultMaxItems)
	defInt(&o.MaxRemembered, DefaultMaxRemembered)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	defInt(&o.CrawlConcurrency, DefaultCrawlConcurrency)
	if o.ColdPassThrough == 0 {
		o.ColdPassThrough = DefaultColdPassThrough
	}
	if o.limits == nil {
		o.limits = newCrawlLimits(o)
	}
	return o
}

// Observer receives what a cache does. Implementations must be safe for
// concurrent use.
type Observer interface {
	// Refreshed is called after every crawl attempt.
	Refreshed(resource string, r Refresh)
}

// Refresh is the outcome of one crawl.
type Refresh struct {
	// Err is the crawl's error; nil on success.
	Err error
	// Reason is ReasonOK or why the crawl failed (ReasonHeyGen, ...).
	Reason string
	// Items and Built describe the snapshot serving after the crawl (the
	// previous one when it failed; zero Built when there is none).
	Items int
	Built time.Time
	// Calls is how many HeyGen requests the crawl made.
	Calls int
	// Took is the crawl's duration.
	Took time.Duration
	// Split reports a split crawl (see Resource.Split); a full one checks
	// it next.
	Split bool
}

// Source says where an answer came from; it is sent to callers as
// x-heygen-source.
type Source string

// The sources of an answer.
const (
	// SourceFresh: a snapshot within one refresh cycle.
	SourceFresh Source = "catalogue-fresh"
	// SourceStale: a snapshot older than a refresh cycle (refreshes are
	// failing or late) but within the maximum staleness.
	SourceStale Source = "catalogue-stale"
	// SourceHeyGen: fetched from HeyGen for this call.
	SourceHeyGen Source = "heygen"
)

// Meta describes an answer: where it came from and how old its snapshot is.
type Meta struct {
	// Source is where the answer came from.
	Source Source
	// Age is the snapshot's age, when HasAge.
	Age    time.Duration
	HasAge bool
}

// Cache holds one resource in memory and keeps it fresh. Reads never wait
// for a refresh once a snapshot exists. It is a [Reader].
type Cache[T, K, F any] struct {
	res   *Resource[T, K, F]
	opts  Options
	snap  atomic.Pointer[Snapshot[T, K]]
	crawl singleflight.Group

	mu        sync.Mutex
	lastErr   error     // the last crawl's failure; nil after a success
	lastErrAt time.Time // when it happened
	retryAt   time.Time // no caller starts a crawl before this after a failure
	backoff   time.Duration
	crawls    atomic.Int64

	lookups singleflight.Group
	found   *lru.Cache[string, T]         // misses HeyGen had; purged by every new snapshot
	missing *expirable.LRU[string, error] // misses HeyGen did not have

	// split reports that the serving snapshot came from a split crawl,
	// which a full crawl is still to check.
	split atomic.Bool
	// crawling reports a crawl under way.
	crawling atomic.Bool
	// passFailed stops cold pass-through until the next crawl once HeyGen
	// failed a call passed through (rate limits, an outage, the key): the
	// callers then wait for the crawl rather than add to HeyGen's trouble.
	passFailed atomic.Bool
	// passes coalesces identical lists passed through while cold.
	passes singleflight.Group
	// unfiltered is the Key of the zero filter: lists with it match every
	// item, and are not matched one by one. comparable reports that F
	// can be compared with its zero value, so that an unfiltered list
	// need not build its key.
	unfiltered string
	comparable bool
}

// NewCache returns an empty cache of res; it fills on the first read or
// when [Cache.Run] starts.
func NewCache[T, K, F any](res *Resource[T, K, F], opts Options) *Cache[T, K, F] {
	opts = opts.withDefaults()
	found, err := lru.New[string, T](opts.MaxRemembered)
	if err != nil {
		panic(err) // only for a non-positive size, which withDefaults rules out
	}
	c := &Cache[T, K, F]{
		res:     res,
		opts:    opts,
		found:   found,
		missing: expirable.NewLRU[string, error](opts.MaxRemembered, nil, opts.NotFoundTTL),
	}
	if res.Filter.Key != nil {
		var zero F
		c.unfiltered = res.Filter.Key(zero)
		c.comparable = reflect.TypeFor[F]().Comparable()
	}
	return c
}

// Name returns the resource's name.
func (c *Cache[T, K, F]) Name() string { return c.res.Name }

// Crawls returns how many crawls have started: a test and benchmark hook.
func (c *Cache[T, K, F]) Crawls() int64 { return c.crawls.Load() }

// Snapshot returns the serving snapshot, or nil before the first crawl.
func (c *Cache[T, K, F]) Snapshot() *Snapshot[T, K] { return c.snap.Load() }

// Usable reports whether the cache holds a snapshot within the maximum
// staleness: whether it can answer lists without HeyGen.
func (c *Cache[T, K, F]) Usable() bool {
	s := c.snap.Load()
	return s != nil && c.opts.Now().Sub(s.Built) <= c.opts.MaxStaleness
}

// Run refreshes the cache at once and then every RefreshInterval (±10%)
// until ctx is done. After a failure it retries sooner, backing off from
// 5 s up to the interval (or later, when HeyGen said when to come back).
func (c *Cache[T, K, F]) Run(ctx context.Context) {
	for {
		wait := jitter(c.opts.RefreshInterval)
		if err := c.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = max(c.untilRetry(), 0)
		} else if c.split.Load() {
			// A split crawl filled the cold cache: check it with a full
			// crawl at once (see Resource.Split).
			wait = 0
		} else if s := c.snap.Load(); s != nil {
			// A snapshot loaded from the fleet may be older than this
			// replica's schedule: refresh when it falls due.
			wait = max(s.Built.Add(wait).Sub(c.opts.Now()), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func jitter(d time.Duration) time.Duration {
	span := int64(d) / 5 // ±10%
	if span <= 0 {
		return d
	}
	return d - time.Duration(span/2) + time.Duration(rand.Int64N(span)) //nolint:gosec // G404: jitter spreads crawls; it protects nothing
}

// Refresh crawls now (sharing a crawl already under way) and reports how
// it went; the previous snapshot keeps serving if it fails.
func (c *Cache[T, K, F]) Refresh(ctx context.Context) error { return c.refresh(ctx) }

func (c *Cache[T, K, F]) untilRetry() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retryAt.Sub(c.opts.Now())
}

// refresh runs one crawl, shared with any concurrent caller, and installs
// its snapshot. A caller that gives up does not cancel the crawl. A cold
// cache (no snapshot) of a resource with a Split crawls split, unless
// NoSplitCrawl; every other crawl is a full one.
func (c *Cache[T, K, F]) refresh(ctx context.Context) error {
	ch := c.crawl.DoChan("crawl", func() (any, error) {
		c.passFailed.Store(false)
		defer c.crawling.Store(false) // set by obtain while HeyGen is crawled
		cctx, cancel := context.WithTimeout(heygen.WithQueueing(context.WithoutCancel(ctx)), c.opts.CrawlTimeout)
		defer cancel()
		run := &crawlRun{slots: c.opts.limits.crawl, maxPages: c.opts.MaxPages}
		cctx = withCrawlRun(cctx, run)
		split := c.snap.Load() == nil && c.res.Split != nil && !c.opts.NoSplitCrawl
		start := c.opts.Now()
		snap, split, loaded, err := c.obtain(cctx, start, split)
		calls := int(run.calls.Load())
		took := c.opts.Now().Sub(start)
		reason := ReasonOK
		var missed []string
		c.mu.Lock()
		if err != nil {
			reason = failureReason(err)
			c.lastErr, c.lastErrAt = err, c.opts.Now()
			c.backoff = min(max(2*c.backoff, firstRetry), c.opts.RefreshInterval)
			wait := jitter(c.backoff)
			var herr *heygen.Error
			if errors.As(err, &herr) && herr.HasRetryAfter {
				wait = max(wait, herr.RetryAfter)
			}
			c.retryAt = c.lastErrAt.Add(wait)
		} else {
			if prev := c.snap.Load(); prev != nil && c.split.Load() && !split {
				missed = snap.missing(prev)
			}
			c.lastErr, c.backoff, c.retryAt = nil, 0, time.Time{}
			c.snap.Store(snap)
			c.split.Store(split)
			c.found.Purge()
		}
		retryIn := c.retryAt.Sub(c.opts.Now())
		c.mu.Unlock()

		serving := c.snap.Load()
		if loaded {
			reason = ReasonShared
		}
		out := Refresh{Err: err, Reason: reason, Calls: calls, Took: took, Split: split}
		if serving != nil {
			out.Items, out.Built = serving.Len(), serving.Built
		}
		log := c.opts.Logger
		kind := "full"
		if split {
			kind = "split"
		}
		switch {
		case err == nil && loaded:
			log.InfoContext(ctx, "catalogue loaded from the fleet's shared snapshot", "resource", c.res.Name, "items", snap.Len(),
				"snapshot_age_s", int64(c.opts.Now().Sub(snap.Built).Seconds()), "took_ms", took.Milliseconds())
		case err == nil:
			log.InfoContext(ctx, "catalogue refreshed", "resource", c.res.Name, "crawl", kind, "items", snap.Len(),
				"heygen_calls", calls, "took_ms", took.Milliseconds())
		case serving != nil:
			log.WarnContext(ctx, "catalogue refresh failed; the last good snapshot keeps serving up to the maximum staleness",
				"resource", c.res.Name, "crawl", kind, "reason", reason, "error", err, "took_ms", took.Milliseconds(),
				"serving_snapshot_age_s", int64(c.opts.Now().Sub(serving.Built).Seconds()), "next_crawl_in_ms", retryIn.Milliseconds())
		default:
			log.ErrorContext(ctx, "catalogue crawl failed and there is no snapshot yet; calls that need it get this error until the next crawl",
				"resource", c.res.Name, "crawl", kind, "reason", reason, "error", err, "took_ms", took.Milliseconds(),
				"next_crawl_in_ms", retryIn.Milliseconds())
		}
		if len(missed) > 0 {
			log.WarnContext(ctx, "the split crawl of the cold catalogue missed items that the full crawl found (HeyGen returned a value its filters do not partition, such as a new avatar type); they are served since the full crawl",
				"resource", c.res.Name, "missed", len(missed), "first_missed_ids", missed[:min(len(missed), 5)])
		}
		if c.opts.Observer != nil {
			c.opts.Observer.Refreshed(c.res.Name, out)
		}
		return nil, err
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func failureReason(err error) string {
	var berr *BoundError
	switch {
	case errors.As(err, &berr):
		return berr.Reason
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	}
	return ReasonHeyGen
}

// crawlAll pages through every partition side by side (the split ones
// when split) and builds the snapshot. Each page is prepared as it
// arrives (see prepare), so that the crawl holds encodings, not items.
func (c *Cache[T, K, F]) crawlAll(ctx context.Context, built time.Time, split bool) (*Snapshot[T, K], error) {
	parts := c.res.Partitions
	if split {
		var err error
		if parts, err = c.res.Split(ctx); err != nil {
			return nil, fmt.Errorf("split crawl of %s: %w", c.res.Name, err)
		}
	}
	prev := c.snap.Load() // unchanged items reuse its encodings and keys
	results := make([][][]entry[T, K], len(parts))
	var items atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for i := range parts {
		g.Go(func() error {
			all, err := c.pageAll(gctx, &parts[i], &items, prev)
			results[i] = all
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return build(c.res, built, merge(results), prev), nil
}

// merge concatenates the partitions' chunks of entries in partition
// order (the priority order build's de-duplication relies on).
func merge[E any](results [][]E) []E {
	n := 0
	for _, r := range results {
		n += len(r)
	}
	merged := make([]E, 0, n)
	for _, r := range results {
		merged = append(merged, r...)
	}
	return merged
}

// pageAll fetches one partition's pages until HeyGen gives no next token,
// within the crawl's bounds (see pageList), preparing each page's items.
func (c *Cache[T, K, F]) pageAll(ctx context.Context, p *Partition[T], items *atomic.Int64, prev *Snapshot[T, K]) ([][]entry[T, K], error) {
	var all [][]entry[T, K]
	err := eachPage(ctx, p.Name, p.Page, c.opts.MaxPages, items, c.opts.MaxItems, func(page []T) {
		for _, it := range page {
			if n := len(all); n == 0 || len(all[n-1]) == chunkSize {
				all = append(all, make([]entry[T, K], 0, chunkSize))
			}
			all[len(all)-1] = append(all[len(all)-1], prepare(c.res, it, prev))
		}
	})
	return all, err
}

// pageList fetches a list's pages (see eachPage) and returns their items.
func pageList[X any](ctx context.Context, name string, page func(context.Context, string) ([]X, string, error),
	maxPages int, items *atomic.Int64, maxItems int) ([]X, error) {
	var all []X
	err := eachPage(ctx, name, page, maxPages, items, maxItems, func(got []X) { all = append(all, got...) })
	return all, err
}

// eachPage fetches a list's pages until HeyGen gives no next token,
// handing each to keep, within a crawl's bounds: a repeated token (a
// loop), more than maxPages pages, or more than maxItems items across the
// crawl (counted in items, when not nil) stop it.
func eachPage[X any](ctx context.Context, name string, page func(context.Context, string) ([]X, string, error),
	maxPages int, items *atomic.Int64, maxItems int, keep func([]X)) error {
	seen := map[string]struct{}{}
	token := ""
	for pages := 0; ; pages++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("crawl %s: %w", name, err)
		}
		if pages >= maxPages {
			return &BoundError{Partition: name, Reason: ReasonTooManyPages, Pages: pages, Limit: maxPages}
		}
		got, next, err := page(ctx, token)
		if err != nil {
			return fmt.Errorf("crawl %s: %w", name, err)
		}
		keep(got)
		if items != nil && items.Add(int64(len(got))) > int64(maxItems) {
			return &BoundError{Partition: name, Reason: ReasonTooManyItems, Pages: pages + 1, Limit: maxItems}
		}
		if next == "" {
			return nil
		}
		if _, dup := seen[next]; dup || next == token {
			return &BoundError{Partition: name, Reason: ReasonLoopingToken, Pages: pages + 1}
		}
		seen[next] = struct{}{}
		token = next
	}
}

// current returns a usable snapshot and the Meta of an answer from it
// (whether it is fresh, its age: the clock is read once). With no
// snapshot yet it waits for a crawl (shared by every waiting caller),
// unless the last crawl failed and its backoff has not ended: then it
// returns that failure at once (a *ColdError) and sends nothing. Past the
// maximum staleness it returns the last crawl's error (a *StaleError).
func (c *Cache[T, K, F]) current(ctx context.Context) (*Snapshot[T, K], Meta, error) {
	snap := c.snap.Load()
	if snap == nil {
		c.mu.Lock()
		lastErr, wait := c.lastErr, c.retryAt.Sub(c.opts.Now())
		c.mu.Unlock()
		if lastErr != nil && wait > 0 {
			return nil, Meta{}, &ColdError{Resource: c.res.Name, Cause: lastErr, RetryAfter: wait}
		}
		if err := c.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, Meta{}, ctx.Err()
			}
			return nil, Meta{}, &ColdError{Resource: c.res.Name, Cause: err, RetryAfter: max(c.untilRetry(), 0)}
		}
		if snap = c.snap.Load(); snap == nil {
			return nil, Meta{}, errors.New("catalogue: crawl finished without a snapshot")
		}
	}
	age := c.opts.Now().Sub(snap.Built)
	if age > c.opts.MaxStaleness {
		c.mu.Lock()
		err := c.lastErr
		c.mu.Unlock()
		return nil, Meta{}, &StaleError{Resource: c.res.Name, Age: age, Max: c.opts.MaxStaleness, Cause: err}
	}
	// A snapshot is fresh while it is within one refresh cycle (interval
	// plus jitter); past that, refreshes are failing or late.
	if age <= c.opts.RefreshInterval+c.opts.RefreshInterval/10 {
		return snap, Meta{Source: SourceFresh, Age: max(age, 0), HasAge: true}, nil
	}
	return snap, Meta{Source: SourceStale, Age: age, HasAge: true}, nil
}

func (c *Cache[T, K, F]) meta(snap *Snapshot[T, K], src Source) Meta {
	m := Meta{Source: src}
	if snap != nil {
		m.Age, m.HasAge = max(c.opts.Now().Sub(snap.Built), 0), true
	}
	return m
}

// coldAnswers reports that callers can be passed through to HeyGen: the
// cache has no snapshot and its first crawl is under way (after a failed
// one, callers get the failure until the next crawl, and nothing is sent),
// and cold pass-through is on.
func (c *Cache[T, K, F]) coldAnswers() bool {
	return c.opts.limits.pass != nil && c.snap.Load() == nil && c.crawling.Load() && !c.passFailed.Load()
}

// passed notes the outcome of a call passed through while cold: a failure
// that is HeyGen's (not the caller's: an unknown id, a bad filter) stops
// the pass-through until the next crawl.
func (c *Cache[T, K, F]) passed(err error) {
	var herr *heygen.Error
	var lerr *heygen.LimitError
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.As(err, &herr) && (herr.Kind == heygen.KindNotFound || herr.Kind == heygen.KindInvalidArgument):
	case errors.As(err, &herr), errors.As(err, &lerr), errors.Is(err, context.DeadlineExceeded):
		c.passFailed.Store(true)
	}
}

// PassingThrough reports whether the cache, cold, answers callers from
// HeyGen while its first crawl runs (see Options.ColdPassThrough): a
// replica that can reach HeyGen can answer then.
func (c *Cache[T, K, F]) PassingThrough() bool { return c.coldAnswers() }

// errPassBusy: every cold pass-through slot is taken; the caller waits for
// the crawl instead.
var errPassBusy = errors.New("catalogue: no cold pass-through slot free")

// coldPage answers the first page of a list from HeyGen while the cache is
// cold (see coldAnswers), when HeyGen can apply the list's filters: one
// call, shared by every caller asking the same page at the time, within
// the ColdPassThrough bound. ok is false when the caller should wait for
// the crawl instead.
func (c *Cache[T, K, F]) coldPage(ctx context.Context, f F, pageSize int) (page *Page[T], ok bool, err error) {
	up := c.res.Upstream
	if up == nil || !c.coldAnswers() || len(up.Unsupported(f)) > 0 {
		return nil, false, nil
	}
	key := up.Key(f) + "\x00" + strconv.Itoa(pageSize)
	ch := c.passes.DoChan(key, func() (any, error) {
		// Checked again here: a caller that saw the cache cold may get
		// here after a pass-through failed or the crawl ended.
		if !c.coldAnswers() || !c.opts.limits.pass.TryAcquire(1) {
			return nil, errPassBusy
		}
		defer c.opts.limits.pass.Release(1)
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LookupTimeout)
		defer cancel()
		page, err := NewPassThrough(c.res).List(lctx, f, "", pageSize)
		c.passed(err)
		return page, err
	})
	select {
	case r := <-ch:
		if errors.Is(r.Err, errPassBusy) {
			return nil, false, nil
		}
		if r.Err != nil {
			return nil, true, r.Err
		}
		return r.Val.(*Page[T]), true, nil
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
}

// passThrough continues a list passed through to HeyGen, within the
// ColdPassThrough bound (waiting for a slot).
func (c *Cache[T, K, F]) passThrough(ctx context.Context, f F, pageToken string, pageSize int) (*Page[T], error) {
	if pass := c.opts.limits.pass; pass != nil {
		if err := pass.Acquire(ctx, 1); err != nil {
			return nil, err
		}
		defer pass.Release(1)
	}
	return NewPassThrough(c.res).List(ctx, f, pageToken, pageSize)
}

// changing reports an item whose snapshot copy may be out of date.
func (c *Cache[T, K, F]) changing(item T) bool { return c.res.Changing != nil && c.res.Changing(item) }

// MaxPageSize implements [Reader].
func (c *Cache[T, K, F]) MaxPageSize() int { return MaxPageSize }

// List implements [Reader]: one page of the snapshot, ordered by id, after
// the id the page token holds (keyset pagination: paging through a refresh
// gives no duplicates and no gaps for items in both snapshots).
func (c *Cache[T, K, F]) List(ctx context.Context, f F, pageToken string, pageSize int) (*Page[T], error) {
	spec := &c.res.Filter
	if spec.Check != nil {
		if err := spec.Check(f); err != nil {
			return nil, err
		}
	}
	key := c.unfiltered
	var zero F
	if !c.comparable || any(f) != any(zero) {
		key = spec.Key(f)
	}
	after := ""
	if pageToken != "" {
		payload, err := DecodeToken(pageToken, c.res.Kind, key)
		if err != nil {
			// A list passed through to HeyGen while the cache was cold
			// (here or on another replica) continues there, in HeyGen's
			// order.
			if up := c.res.Upstream; up != nil {
				if _, perr := DecodeToken(pageToken, passThroughKind(c.res.Kind), up.Key(f)); perr == nil {
					return c.passThrough(ctx, f, pageToken, pageSize)
				}
			}
			return nil, err
		}
		after = string(payload)
	} else if page, ok, err := c.coldPage(ctx, f, pageSize); ok {
		return page, err
	}
	snap, meta, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	group := ""
	if spec.Group != nil {
		group = spec.Group(f)
	}
	var match func(keys *K) bool // nil: every item
	if key != c.unfiltered {
		match = func(keys *K) bool { return spec.Match(f, keys) }
	}
	items, next := snap.page(match, group, after, pageSize)
	page := &Page[T]{Items: items, Meta: meta}
	if next != "" {
		page.NextPageToken = EncodeToken(c.res.Kind, key, []byte(next))
	}
	return page, nil
}

// Get implements [Reader]: the item from the snapshot, or one remembered
// from an earlier miss, or fetched from HeyGen. Concurrent lookups of one
// id share one HeyGen call; an id HeyGen does not have is remembered as
// NOT_FOUND for NotFoundTTL; an id it has is remembered until the next
// crawl. While there is no snapshot and the last crawl's backoff runs, the
// crawl's error is returned and nothing is sent.
func (c *Cache[T, K, F]) Get(ctx context.Context, id string) (T, Meta, error) {
	return c.get(ctx, id, false)
}

// GetEncoded implements [Reader]: [Cache.Get], with an item from the
// snapshot in its wire form (see Resource.Wire): to answer with, not to
// read.
func (c *Cache[T, K, F]) GetEncoded(ctx context.Context, id string) (T, Meta, error) {
	return c.get(ctx, id, true)
}

func (c *Cache[T, K, F]) get(ctx context.Context, id string, encoded bool) (T, Meta, error) {
	var zero T
	if c.coldAnswers() && c.opts.limits.pass.TryAcquire(1) {
		// Cold, with the first crawl under way: ask HeyGen for this id now
		// rather than wait for the whole crawl.
		defer c.opts.limits.pass.Release(1)
		item, meta, err := c.lookup(ctx, nil, id, false)
		c.passed(err)
		return item, meta, err
	}
	snap, meta, err := c.current(ctx)
	var cold *ColdError
	switch {
	case errors.As(err, &cold):
		return zero, Meta{}, err
	case err == nil:
		if wire, changing, ok := snap.encoded(id); ok && !changing {
			if encoded {
				return wire, meta, nil
			}
			if item, ok := snap.Get(id); ok {
				return item, meta, nil
			}
		}
		if item, ok := c.found.Get(id); ok && !c.changing(item) {
			return item, meta, nil
		}
	case ctx.Err() != nil:
		return zero, Meta{}, ctx.Err()
	}
	// A miss, or a snapshot past its maximum staleness: ask HeyGen.
	return c.lookup(ctx, snap, id, err == nil)
}

// testHookLookup, when set by a test, runs between lookup's check of the
// remembered answers and its shared call.
var testHookLookup func(id string)

// lookup fetches one item from HeyGen: a miss of snap (nil when cold).
// Concurrent lookups of one id share one call; NOT_FOUND is remembered for
// NotFoundTTL, an item found until the next snapshot. useFound says whether
// an item remembered as found may answer (the caller checked it already).
func (c *Cache[T, K, F]) lookup(ctx context.Context, snap *Snapshot[T, K], id string, useFound bool) (T, Meta, error) {
	var zero T
	if nf, ok := c.missing.Get(id); ok {
		return zero, c.meta(snap, SourceHeyGen), nf
	}
	if testHookLookup != nil {
		testHookLookup(id)
	}
	ch := c.lookups.DoChan(id, func() (any, error) {
		// Check the remembered answers again inside the shared call: a
		// caller that checked them just before another caller's lookup
		// ended, then joined after singleflight forgot that lookup, would
		// otherwise call HeyGen a second time. Every lookup remembers its
		// answer before it ends, so this check sees it.
		if nf, ok := c.missing.Get(id); ok {
			return nil, nf
		}
		if useFound {
			if item, ok := c.found.Get(id); ok && !c.changing(item) {
				return item, nil
			}
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LookupTimeout)
		defer cancel()
		item, err := c.res.Fetch(lctx, id)
		if err != nil {
			var herr *heygen.Error
			if errors.As(err, &herr) && herr.Kind == heygen.KindNotFound {
				c.missing.Add(id, err)
			}
			return nil, err
		}
		if !c.changing(item) {
			c.found.Add(id, item)
		}
		return item, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, Meta{}, r.Err
		}
		return r.Val.(T), c.meta(snap, SourceHeyGen), nil
	case <-ctx.Done():
		return zero, Meta{}, ctx.Err()
	}
}
