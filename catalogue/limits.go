package catalogue

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// crawlLimits bound the HeyGen calls of the caches of one Set: every crawl
// together makes at most CrawlConcurrency at once, and callers passed
// through to HeyGen while a cache is cold at most ColdPassThrough more.
// So a replica never sends HeyGen more than their sum for its catalogue,
// however many resources crawl and however many callers arrive cold.
type crawlLimits struct {
	crawl *semaphore.Weighted
	pass  *semaphore.Weighted // nil: cold callers wait for the crawl
}

func newCrawlLimits(o Options) *crawlLimits {
	l := &crawlLimits{crawl: semaphore.NewWeighted(int64(o.CrawlConcurrency))}
	if o.ColdPassThrough > 0 {
		l.pass = semaphore.NewWeighted(int64(o.ColdPassThrough))
	}
	return l
}

// crawlRun is one crawl's share of the limits, carried by its context to
// every HeyGen call the crawl makes (list pages, voice details, the group
// list of a split crawl), which counts them.
type crawlRun struct {
	slots    *semaphore.Weighted
	calls    atomic.Int64
	maxPages int // Options.MaxPages, for the lists a split crawl pages through itself
}

// crawlMaxPages is the crawl's bound on the pages of one list.
func crawlMaxPages(ctx context.Context) int {
	if r, ok := ctx.Value(crawlRunKey{}).(*crawlRun); ok && r.maxPages > 0 {
		return r.maxPages
	}
	return DefaultMaxPages
}

type crawlRunKey struct{}

func withCrawlRun(ctx context.Context, r *crawlRun) context.Context {
	return context.WithValue(ctx, crawlRunKey{}, r)
}

// crawlCall makes one HeyGen call of a crawl within the crawl's bound on
// calls at once, waiting for a slot; outside a crawl it just calls.
func crawlCall[R any](ctx context.Context, call func(context.Context) (R, error)) (R, error) {
	r, ok := ctx.Value(crawlRunKey{}).(*crawlRun)
	if !ok {
		return call(ctx)
	}
	if err := r.slots.Acquire(ctx, 1); err != nil {
		var zero R
		return zero, err
	}
	defer r.slots.Release(1)
	r.calls.Add(1)
	return call(ctx)
}
