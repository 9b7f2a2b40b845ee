package catalogue

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// crawlLimits bound the HeyGen calls of the caches of one Set: every crawl
// together makes at most CrawlConcurrency at once, and callers passed
// through to HeyGen while a cache is cold at most ColdPassThrough more.
// So a replica never sends HeyGen more than their sum for its catalogue,
// however many resources crawl and however many callers arrive cold.
type crawlLimits struct {
	crawl *slots
	pass  *semaphore.Weighted // nil: cold callers wait for the crawl
}

func newCrawlLimits(o Options) *crawlLimits {
	l := &crawlLimits{crawl: newSlots(o.CrawlConcurrency)}
	if o.ColdPassThrough > 0 {
		l.pass = semaphore.NewWeighted(int64(o.ColdPassThrough))
	}
	return l
}

// crawlRun is one crawl's share of the limits, carried by its context to
// every HeyGen call the crawl makes (list pages, voice details, the group
// list of a split crawl), which counts them.
type crawlRun struct {
	slots    *slots
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
// calls at once, waiting for a slot; outside a crawl it just calls. List
// pages go before detail calls (see slots).
func crawlCall[R any](ctx context.Context, call func(context.Context) (R, error)) (R, error) {
	return crawlCallAt(ctx, true, call)
}

// crawlDetail is crawlCall for a detail call (one voice), which waits
// behind list pages.
func crawlDetail[R any](ctx context.Context, call func(context.Context) (R, error)) (R, error) {
	return crawlCallAt(ctx, false, call)
}

func crawlCallAt[R any](ctx context.Context, page bool, call func(context.Context) (R, error)) (R, error) {
	r, ok := ctx.Value(crawlRunKey{}).(*crawlRun)
	if !ok {
		return call(ctx)
	}
	if err := r.slots.acquire(ctx, page); err != nil {
		var zero R
		return zero, err
	}
	defer r.slots.release()
	r.calls.Add(1)
	return call(ctx)
}

// slots is the bound on a catalogue's crawl calls at once, with two
// queues: a free slot goes to a waiting list page before a waiting detail
// call. A list is a chain of pages, one after another, each waiting for a
// slot: behind a burst of voice details in one queue, every page of the
// longest list waited for the whole burst, and a cold crawl took 5 s
// instead of 3.
type slots struct {
	mu           sync.Mutex
	free         int
	pages, other []chan struct{} // waiters, in order; closed when given a slot
}

func newSlots(n int) *slots { return &slots{free: n} }

func (s *slots) acquire(ctx context.Context, page bool) error {
	s.mu.Lock()
	if s.free > 0 && len(s.pages) == 0 && (page || len(s.other) == 0) {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	if page {
		s.pages = append(s.pages, ready)
	} else {
		s.other = append(s.other, ready)
	}
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-ready: // given a slot meanwhile: hand it on
			s.releaseLocked()
		default:
			s.pages = slices.DeleteFunc(s.pages, func(c chan struct{}) bool { return c == ready })
			s.other = slices.DeleteFunc(s.other, func(c chan struct{}) bool { return c == ready })
		}
		return ctx.Err()
	}
}

func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *slots) releaseLocked() {
	switch {
	case len(s.pages) > 0:
		close(s.pages[0])
		s.pages = s.pages[1:]
	case len(s.other) > 0:
		close(s.other[0])
		s.other = s.other[1:]
	default:
		s.free++
	}
}
