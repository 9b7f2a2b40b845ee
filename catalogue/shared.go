package catalogue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
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

// Codec encodes a resource's items for the shared store.
type Codec[T any] struct {
	Marshal   func(T) ([]byte, error)
	Unmarshal func([]byte) (T, error)
}

// ProtoCodec is the Codec of a protobuf message type.
func ProtoCodec[M proto.Message](newM func() M) *Codec[M] {
	return &Codec[M]{
		Marshal: func(m M) ([]byte, error) { return proto.Marshal(m) },
		Unmarshal: func(b []byte) (M, error) {
			m := newM()
			err := proto.Unmarshal(b, m)
			return m, err
		},
	}
}

// encodeItems writes items as length-prefixed encodings.
func encodeItems[T any](codec *Codec[T], items []T) ([]byte, error) {
	var buf []byte
	for _, it := range items {
		b, err := codec.Marshal(it)
		if err != nil {
			return nil, err
		}
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	return buf, nil
}

func decodeItems[T any](codec *Codec[T], buf []byte) ([]T, error) {
	var items []T
	for len(buf) > 0 {
		n, k := binary.Uvarint(buf)
		if k <= 0 || uint64(len(buf)-k) < n { //nolint:gosec // G115: k <= len(buf) here, so the difference is not negative
			return nil, errors.New("shared snapshot is truncated")
		}
		it, err := codec.Unmarshal(buf[k : k+int(n)]) //nolint:gosec // G115: n <= len(buf), checked above
		if err != nil {
			return nil, fmt.Errorf("shared snapshot item: %w", err)
		}
		items = append(items, it)
		buf = buf[k+int(n):] //nolint:gosec // G115: as above
	}
	return items, nil
}

// obtain gets a new snapshot: alone, by crawling; in a fleet, by loading
// the snapshot another replica published, or by taking the lease and
// crawling (and publishing), or by waiting for the replica that holds the
// lease. loaded reports a snapshot that came from the store.
func (c *Cache[T, K, F]) obtain(ctx context.Context, start time.Time) (snap *Snapshot[T, K], calls int, loaded bool, err error) {
	shared := c.opts.Shared
	if shared == nil || c.res.Codec == nil {
		c.crawls.Add(1)
		snap, calls, err = c.crawlAll(ctx, start)
		return snap, calls, false, err
	}
	local := c.snap.Load()
	for {
		if s := c.loadShared(ctx, local); s != nil {
			return s, 0, true, nil
		}
		release, ok, lerr := shared.Lease(ctx, c.res.Name, c.opts.CrawlTimeout)
		switch {
		case lerr != nil:
			c.opts.Logger.WarnContext(ctx, "the fleet's shared store is unreachable; crawling alone", "resource", c.res.Name, "error", lerr)
			c.crawls.Add(1)
			snap, calls, err = c.crawlAll(ctx, start)
			return snap, calls, false, err
		case ok:
			defer release()
			c.crawls.Add(1)
			snap, calls, err = c.crawlAll(ctx, start)
			if err == nil {
				c.publish(ctx, snap)
			}
			return snap, calls, false, err
		}
		// Another replica is crawling: wait for what it publishes.
		t := time.NewTimer(sharedPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, false, fmt.Errorf("waiting for another replica's crawl: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// loadShared returns the published snapshot if it is newer than local
// and not yet due for a refresh (younger than a refresh interval and its
// jitter), or, with no local snapshot at all, if it is within the maximum
// staleness.
func (c *Cache[T, K, F]) loadShared(ctx context.Context, local *Snapshot[T, K]) *Snapshot[T, K] {
	built, payload, err := c.opts.Shared.Load(ctx, c.res.Name)
	if err != nil {
		if !errors.Is(err, ErrNoSharedSnapshot) {
			c.opts.Logger.WarnContext(ctx, "cannot load the fleet's shared snapshot", "resource", c.res.Name, "error", err)
		}
		return nil
	}
	age := c.opts.Now().Sub(built)
	switch {
	case local != nil && !built.After(local.Built):
		return nil
	case local != nil && age > c.opts.RefreshInterval+c.opts.RefreshInterval/5:
		return nil
	case age > c.opts.MaxStaleness:
		return nil
	}
	items, err := decodeItems(c.res.Codec, payload)
	if err != nil {
		c.opts.Logger.WarnContext(ctx, "the fleet's shared snapshot does not decode; ignoring it", "resource", c.res.Name, "error", err)
		return nil
	}
	return build(c.res, built, items)
}

func (c *Cache[T, K, F]) publish(ctx context.Context, snap *Snapshot[T, K]) {
	payload, err := encodeItems(c.res.Codec, snap.items)
	if err == nil {
		err = c.opts.Shared.Publish(ctx, c.res.Name, snap.Built, payload)
	}
	if err != nil {
		c.opts.Logger.WarnContext(ctx, "cannot publish the snapshot to the fleet; the other replicas will crawl themselves", "resource", c.res.Name, "error", err)
	}
}
