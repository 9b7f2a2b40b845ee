package catalogue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Shared is a store the replicas of a fleet share (see the fleet
// package), so that one replica crawls per refresh and the others load
// what it published. Its errors mean the store cannot be used right now:
// the cache then crawls on its own, as a lone replica would.
type Shared interface {
	// Load returns the newest published snapshot of resource, or
	// ErrNoSharedSnapshot.
	Load(ctx context.Context, resource string) (built time.Time, payload []byte, err error)
	// Lease tries to make this replica the one that crawls resource, for at
	// most ttl; ok is false while another replica holds the lease.
	Lease(ctx context.Context, resource string, ttl time.Duration) (release func(), ok bool, err error)
	// Publish stores a snapshot for the other replicas.
	Publish(ctx context.Context, resource string, built time.Time, payload []byte) error
}

// ErrNoSharedSnapshot means no replica has published a snapshot yet.
var ErrNoSharedSnapshot = errors.New("no shared snapshot")

// sharedPoll is how often a replica waiting for another's crawl looks for
// its snapshot.
const sharedPoll = 250 * time.Millisecond

// A shared snapshot's payload starts with one of these bytes.
const (
	payloadFull  byte = 'F' // from a full crawl
	payloadSplit byte = 'S' // from a split crawl: its loaders check it with a full one at once, as its crawler does
)

// encodeItems writes a snapshot's kind, then its items as length-prefixed
// encodings, in id order: the bytes it keeps when it has a Wire, not
// re-marshalled.
func encodeItems[T, K any](snap *Snapshot[T, K], codec *Wire[T], split bool) ([]byte, error) {
	buf := []byte{payloadFull}
	if split {
		buf[0] = payloadSplit
	}
	for _, w := range snap.wire {
		var b []byte
		if snap.codec != nil {
			b = snap.codec.Bytes(w)
		} else {
			var err error
			if b, err = codec.Marshal(w); err != nil {
				return nil, err
			}
		}
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	return buf, nil
}

// decodeItems turns what encodeItems wrote back into a snapshot's entries,
// in chunks as a crawl keeps them, and its kind; prev is the snapshot
// serving, whose unchanged items are reused (see prepare).
func decodeItems[T, K, F any](r *Resource[T, K, F], buf []byte, prev *Snapshot[T, K]) (chunks [][]entry[T, K], split bool, err error) {
	if len(buf) == 0 || (buf[0] != payloadFull && buf[0] != payloadSplit) {
		return nil, false, errors.New("shared snapshot has no known kind byte (written by another version?)")
	}
	split, buf = buf[0] == payloadSplit, buf[1:]
	codec := r.shareCodec()
	for len(buf) > 0 {
		n, k := binary.Uvarint(buf)
		if k <= 0 || uint64(len(buf)-k) < n { //nolint:gosec // G115: k <= len(buf) here, so the difference is not negative
			return nil, false, errors.New("shared snapshot is truncated")
		}
		b := buf[k : k+int(n) : k+int(n)] //nolint:gosec // G115: n <= len(buf), checked above
		buf = buf[k+int(n):]              //nolint:gosec // G115: as above
		it, err := codec.Decode(b)
		if err != nil {
			return nil, false, fmt.Errorf("shared snapshot item: %w", err)
		}
		e := entry[T, K]{id: r.ID(it), item: it} // prepared by build (see finish) without a Wire
		if r.Wire != nil {
			e.changing, e.prepared = r.Changing != nil && r.Changing(it), true
			if wire, keys, id, ok := prev.reusable(e.id, b); ok {
				e.wire, e.keys, e.id = wire, keys, id
			} else {
				keys := r.Prepare(it)
				e.wire, e.keys = r.Wire.Shell(b), &keys
			}
		}
		if n := len(chunks); n == 0 || len(chunks[n-1]) == chunkSize {
			chunks = append(chunks, make([]entry[T, K], 0, chunkSize))
		}
		chunks[len(chunks)-1] = append(chunks[len(chunks)-1], e)
	}
	return chunks, split, nil
}

// crawlNow crawls (see crawlAll), callers passing through to HeyGen
// meanwhile while the cache is cold (see coldAnswers).
func (c *Cache[T, K, F]) crawlNow(ctx context.Context, start time.Time, split bool) (*Snapshot[T, K], error) {
	c.crawls.Add(1)
	c.crawling.Store(true)
	return c.crawlAll(ctx, start, split)
}

// obtain gets a new snapshot: alone, by crawling; in a fleet, by loading
// the snapshot another replica published, or by taking the lease and
// crawling (and publishing), or by waiting for the replica that holds the
// lease. loaded reports a snapshot that came from the store; isSplit, a
// snapshot from a split crawl (see Resource.Split), this replica's (when
// split) or one it loaded: either way a full crawl follows at once.
func (c *Cache[T, K, F]) obtain(ctx context.Context, start time.Time, split bool) (snap *Snapshot[T, K], isSplit, loaded bool, err error) {
	shared := c.opts.Shared
	if shared == nil || c.res.shareCodec() == nil {
		snap, err = c.crawlNow(ctx, start, split)
		return snap, split, false, err
	}
	// Loading a shared snapshot takes milliseconds: a cold replica's
	// callers wait for it rather than pass through to HeyGen.
	local := c.snap.Load()
	for {
		if s, sp := c.loadShared(ctx, local); s != nil {
			return s, sp, true, nil
		}
		release, ok, lerr := shared.Lease(ctx, c.res.Name, c.opts.CrawlTimeout)
		switch {
		case lerr != nil:
			c.opts.Logger.WarnContext(ctx, "the fleet's shared store is unreachable; crawling alone", "resource", c.res.Name, "error", lerr)
			snap, err = c.crawlNow(ctx, start, split)
			return snap, split, false, err
		case ok:
			defer release()
			snap, err = c.crawlNow(ctx, start, split)
			if err == nil {
				c.publish(ctx, snap, split)
			}
			return snap, split, false, err
		}
		// Another replica is crawling: wait for what it publishes, callers
		// passing through meanwhile as if this one crawled.
		c.crawling.Store(true)
		t := time.NewTimer(sharedPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false, false, fmt.Errorf("waiting for another replica's crawl: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// loadShared returns the published snapshot if it is newer than local
// and not yet due for a refresh (younger than a refresh interval and its
// jitter), or, with no local snapshot at all, if it is within the maximum
// staleness; split reports a split crawl's.
func (c *Cache[T, K, F]) loadShared(ctx context.Context, local *Snapshot[T, K]) (snap *Snapshot[T, K], split bool) {
	built, payload, err := c.opts.Shared.Load(ctx, c.res.Name)
	if err != nil {
		if !errors.Is(err, ErrNoSharedSnapshot) {
			c.opts.Logger.WarnContext(ctx, "cannot load the fleet's shared snapshot", "resource", c.res.Name, "error", err)
		}
		return nil, false
	}
	age := c.opts.Now().Sub(built)
	switch {
	case local != nil && !built.After(local.Built):
		return nil, false
	case local != nil && age > c.opts.RefreshInterval+c.opts.RefreshInterval/5:
		return nil, false
	case age > c.opts.MaxStaleness:
		return nil, false
	}
	chunks, split, err := decodeItems(c.res, payload, local)
	if err != nil {
		c.opts.Logger.WarnContext(ctx, "the fleet's shared snapshot does not decode; ignoring it", "resource", c.res.Name, "error", err)
		return nil, false
	}
	return build(c.res, built, chunks, local), split
}

func (c *Cache[T, K, F]) publish(ctx context.Context, snap *Snapshot[T, K], split bool) {
	payload, err := encodeItems(snap, c.res.shareCodec(), split)
	if err == nil {
		err = c.opts.Shared.Publish(ctx, c.res.Name, snap.Built, payload)
	}
	if err != nil {
		c.opts.Logger.WarnContext(ctx, "cannot publish the snapshot to the fleet; the other replicas will crawl themselves", "resource", c.res.Name, "error", err)
	}
}
