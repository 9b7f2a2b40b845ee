package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// A replica has one watchHub, and while anyone watches, one poller
// goroutine. Every watched video is polled through
// GET /v3/videos/statuses, 100 ids a call, at ticks of a grid of
// PollInterval: however many videos and watchers there are, there is at
// most one poll round per tick, and a round makes one call per 100 videos
// due. A video whose status changed is fetched once (GET /v3/videos/{id})
// and the result fanned out to all its watchers; a video seen for the
// first time is fetched at once (the watcher's first message). A video is
// polled less often the longer its status stays the same (a quarter of the
// time since it last changed, from PollInterval up to MaxPollInterval), so
// long renders cost little. HeyGen's Retry-After pauses all of it. The
// poller stops as soon as nobody watches, and with it every call in flight.
type watchHub struct {
	client  *heygen.Client
	log     *slog.Logger
	metrics *Metrics
	cfg     VideoOptions

	wake chan struct{} // a new video to fetch; buffered 1

	mu        sync.Mutex
	videos    map[string]*watchedVideo
	watchers  int
	perCaller map[string]int
	stop      context.CancelFunc // the running poller's; nil when none runs
	epoch     time.Time          // origin of the running poller's grid
	paused    time.Time          // no HeyGen calls before this (Retry-After)
	failures  int                // consecutive failed polls
	closed    bool               // the server is shutting down
}

// watchedVideo is one video and its watchers.
type watchedVideo struct {
	id       string
	watchers map[*videoWatcher]struct{}
	state    *heygenv1.Video // last fetched; nil before the first fetch
	status   string          // normalised status last seen (fetch or poll)
	changed  time.Time       // when status last changed, or watching began
	due      time.Time       // next poll, on the grid; zero until fetched
	stale    bool            // a poll saw a change the fetch did not get yet
}

// videoWatcher is one WatchVideo stream.
type videoWatcher struct {
	hub    *watchHub
	video  *watchedVideo
	caller string
	events chan watchEvent
}

// watchEvent is the video's new state, or the error that ends the watch.
type watchEvent struct {
	video *heygenv1.Video
	err   error
}

// watchCallTimeout bounds one call of the poller.
const watchCallTimeout = 30 * time.Second

// fetchParallelism bounds the poller's concurrent video fetches.
const fetchParallelism = 4

func newWatchHub(client *heygen.Client, log *slog.Logger, m *Metrics, cfg VideoOptions) *watchHub {
	return &watchHub{client: client, log: log, metrics: m, cfg: cfg, wake: make(chan struct{}, 1),
		videos: map[string]*watchedVideo{}, perCaller: map[string]int{}}
}

// join adds a watcher of video id, within the bounds, and starts the
// poller if none runs. The watcher must leave.
func (h *watchHub) join(caller, id string) (*videoWatcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errShuttingDown
	}
	if h.watchers >= h.cfg.MaxWatches {
		return nil, &watchLimitError{scope: "gateway", limit: h.cfg.MaxWatches}
	}
	if h.perCaller[caller] >= h.cfg.MaxWatchesPerCaller {
		return nil, &watchLimitError{scope: "caller", limit: h.cfg.MaxWatchesPerCaller}
	}
	v := h.videos[id]
	if v == nil {
		v = &watchedVideo{id: id, watchers: map[*videoWatcher]struct{}{}, changed: time.Now()}
		h.videos[id] = v
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
	// Four events of room: a watcher that reads slowly misses
	// intermediate states, never the last one (see send).
	w := &videoWatcher{hub: h, video: v, caller: caller, events: make(chan watchEvent, 4)}
	v.watchers[w] = struct{}{}
	h.watchers++
	h.perCaller[caller]++
	if v.state != nil {
		w.send(watchEvent{video: v.state})
	}
	if h.stop == nil {
		ctx, stop := context.WithCancel(context.Background())
		h.stop, h.epoch = stop, time.Now()
		go h.run(ctx, h.epoch)
	}
	h.gauges()
	return w, nil
}

// leave removes the watcher; the last one out stops the poller, cancelling
// whatever call it has in flight.
func (w *videoWatcher) leave() {
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(w.video.watchers, w)
	h.watchers--
	if h.perCaller[w.caller]--; h.perCaller[w.caller] <= 0 {
		delete(h.perCaller, w.caller)
	}
	if len(w.video.watchers) == 0 && h.videos[w.video.id] == w.video {
		delete(h.videos, w.video.id)
	}
	if len(h.videos) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
	h.gauges()
}

// close ends every watch with errShuttingDown, stops the poller and
// refuses new watches: the server is shutting down.
func (h *watchHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, v := range h.videos {
		h.drop(v, watchEvent{err: errShuttingDown})
	}
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// shuttingDownError ends the watches of a replica that is shutting down.
type shuttingDownError struct{}

func (shuttingDownError) Error() string {
	return "this gateway replica is shutting down; call WatchVideo again (another replica will answer)"
}

var errShuttingDown error = shuttingDownError{}

// send delivers ev without ever blocking the poller: when the watcher has
// not read its earlier events, the oldest is dropped. The last event a
// watcher gets (a final state, an error) is therefore never lost. h.mu is
// held, so only one goroutine sends.
func (w *videoWatcher) send(ev watchEvent) {
	for {
		select {
		case w.events <- ev:
			return
		default:
		}
		select {
		case <-w.events:
		default:
		}
	}
}

// gauges updates the watch gauges; h.mu is held.
func (h *watchHub) gauges() {
	h.metrics.watching(len(h.videos), h.watchers)
}

// run is the poller: it fetches new videos as they come and polls at the
// grid's ticks, until ctx is cancelled (nobody watches any more).
func (h *watchHub) run(ctx context.Context, epoch time.Time) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var next time.Time // the next tick to poll at
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		case <-timer.C:
		}
		h.fetchNew(ctx)
		if !next.IsZero() && !time.Now().Before(next) {
			h.poll(ctx, next)
		}
		if ctx.Err() != nil {
			return
		}
		next = h.nextTick(epoch)
		if next.IsZero() {
			timer.Stop() // nothing to poll yet: wait for a wake
			continue
		}
		timer.Reset(time.Until(next))
	}
}

// call returns the context of one poller call: background work that may
// wait for a concurrency slot, that ends at a 429 (the poller pauses for
// the Retry-After itself), and is bounded.
func (h *watchHub) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(heygen.WithRateLimitsReturned(heygen.WithQueueing(ctx)), watchCallTimeout)
}

// fetchNew fetches the videos with no state yet, and those whose change a
// poll saw but whose fetch failed.
func (h *watchHub) fetchNew(ctx context.Context) {
	h.mu.Lock()
	if ctx.Err() != nil || time.Now().Before(h.paused) {
		h.mu.Unlock()
		return
	}
	var ids []string
	for id, v := range h.videos {
		if v.state == nil || v.stale {
			ids = append(ids, id)
		}
	}
	h.mu.Unlock()
	h.fetch(ctx, ids)
}

// fetch gets each video once, a few at a time, and publishes the result.
func (h *watchHub) fetch(ctx context.Context, ids []string) {
	var g errgroup.Group
	g.SetLimit(fetchParallelism)
	for _, id := range ids {
		g.Go(func() error {
			cctx, cancel := h.call(ctx)
			v, err := h.client.Videos.Get(cctx, id)
			cancel()
			h.metrics.videoFetched(err)
			h.fetched(ctx, id, v, err)
			return nil
		})
	}
	_ = g.Wait()
}

// fetched publishes one fetch's outcome to the video's watchers.
func (h *watchHub) fetched(ctx context.Context, id string, got *heygen.Video, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.videos[id]
	if ctx.Err() != nil || v == nil {
		return // the poller stopped, or nobody watches this one any more
	}
	now := time.Now()
	if err != nil {
		switch {
		case h.rateLimited(err, now):
			// Try again after the pause: the watchers wait, HeyGen asked for it.
		case v.state == nil || isNotFound(err):
			// No first state to show, or the video is gone: the watch ends
			// with HeyGen's answer (UNAVAILABLE, NOT_FOUND, ...).
			h.drop(v, watchEvent{err: err})
		default:
			v.stale = true // fetch again next time; the watchers keep the old state
			h.log.WarnContext(ctx, "could not fetch a watched video after its status changed; trying again", "error", err)
		}
		return
	}
	state := videoProto(got)
	if s := normalStatus(state.GetStatusRaw()); s != v.status {
		v.status, v.changed = s, now
	}
	v.state, v.stale = state, false
	for w := range v.watchers {
		w.send(watchEvent{video: state})
	}
	switch {
	case finished(state):
		delete(h.videos, id) // its watchers end; a new watcher starts afresh
		h.gauges()
	case v.due.IsZero():
		v.due = h.align(now.Add(h.cfg.PollInterval))
	}
}

// drop ends a video's watch with ev; h.mu is held.
func (h *watchHub) drop(v *watchedVideo, ev watchEvent) {
	for w := range v.watchers {
		w.send(ev)
	}
	delete(h.videos, v.id)
	h.gauges()
}

// poll polls every video due at tick, 100 a call, and fetches the ones
// whose status changed.
func (h *watchHub) poll(ctx context.Context, tick time.Time) {
	h.mu.Lock()
	if ctx.Err() != nil || time.Now().Before(h.paused) {
		h.mu.Unlock()
		return
	}
	var due []string
	for id, v := range h.videos {
		if v.state != nil && !v.stale && !v.due.After(tick) {
			due = append(due, id)
		}
	}
	h.mu.Unlock()
	var changed []string
	for len(due) > 0 {
		n := min(len(due), heygen.MaxStatusIDs)
		batch := due[:n]
		due = due[n:]
		cctx, cancel := h.call(ctx)
		statuses, err := h.client.Videos.Statuses(cctx, batch)
		cancel()
		h.metrics.statusPolled(err)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			h.pollFailed(ctx, err)
			return
		}
		changed = append(changed, h.polled(ctx, tick, statuses)...)
	}
	h.fetch(ctx, changed)
}

// polled applies one statuses answer: the videos whose status changed are
// returned, to be fetched; every video polled is due again after its
// interval.
func (h *watchHub) polled(ctx context.Context, tick time.Time, statuses []heygen.VideoStatus) (changed []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ctx.Err() != nil {
		return nil // this poller was stopped: its answer belongs to nobody
	}
	h.failures = 0
	for _, st := range statuses {
		if st.VideoID == nil {
			continue
		}
		v := h.videos[*st.VideoID]
		if v == nil {
			continue
		}
		// not_found (deleted meanwhile) is a change too: the fetch tells
		// the watchers so.
		if s := normalStatus(st.Status); s != v.status {
			v.status, v.changed = s, tick
			v.stale = true
			changed = append(changed, v.id)
		}
		v.due = tick.Add(h.interval(tick.Sub(v.changed)))
	}
	return changed
}

// pollFailed pauses polling: for HeyGen's Retry-After, or with backoff.
func (h *watchHub) pollFailed(ctx context.Context, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if ctx.Err() != nil || h.rateLimited(err, now) {
		return
	}
	h.failures++
	backoff := min(h.cfg.MaxPollInterval, h.cfg.PollInterval<<min(h.failures, 16))
	h.paused = now.Add(backoff)
	h.log.WarnContext(ctx, "polling the statuses of watched videos failed; backing off", "error", err,
		"consecutive_failures", h.failures, "backoff", backoff)
}

// rateLimited pauses every poller call for HeyGen's Retry-After and
// reports whether err asked for one; h.mu is held.
func (h *watchHub) rateLimited(err error, now time.Time) bool {
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindRateLimited {
		return false
	}
	wait := h.cfg.PollInterval
	if herr.HasRetryAfter {
		wait = max(wait, herr.RetryAfter)
	}
	if t := now.Add(wait); t.After(h.paused) {
		h.paused = t
	}
	return true
}

// interval is how long a video whose status has not changed for unchanged
// waits for its next poll: a quarter of that, between the bounds, rounded
// up to whole ticks.
func (h *watchHub) interval(unchanged time.Duration) time.Duration {
	step := h.cfg.PollInterval
	return ceilTo(min(max(unchanged/4, step), h.cfg.MaxPollInterval), step)
}

// ceilTo rounds d up to a whole number of steps.
func ceilTo(d, step time.Duration) time.Duration {
	steps := int64((d + step - 1) / step)
	return time.Duration(steps) * step
}

// align rounds t up to the grid of the running poller; h.mu is held.
func (h *watchHub) align(t time.Time) time.Time {
	step := h.cfg.PollInterval
	since := t.Sub(h.epoch)
	if since <= 0 {
		return h.epoch
	}
	return h.epoch.Add(ceilTo(since, step))
}

// nextTick is the first tick at which a video is due, not before the
// pause ends; zero when nothing is to be polled.
func (h *watchHub) nextTick(epoch time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first time.Time
	for _, v := range h.videos {
		if v.state != nil && (first.IsZero() || v.due.Before(first)) {
			first = v.due
		}
	}
	if first.IsZero() {
		if time.Now().Before(h.paused) {
			return h.paused // new videos wait out the pause
		}
		return time.Time{}
	}
	for _, t := range []time.Time{h.paused, time.Now()} {
		if t.After(first) {
			first = t
		}
	}
	return epoch.Add(ceilTo(first.Sub(epoch), h.cfg.PollInterval))
}

// normalStatus folds the spellings of one status together: the create's
// "waiting" and the statuses endpoint's "queued" are "pending".
func normalStatus(raw string) string {
	switch raw {
	case "waiting", "queued":
		return heygen.VideoPending
	}
	return raw
}
