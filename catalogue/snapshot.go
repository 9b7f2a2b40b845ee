package catalogue

import (
	"bytes"
	"slices"
	"strings"
	"time"
)

// Snapshot is one immutable crawl of a resource: its items sorted by id
// (ascending byte order), indexed, with their filter keys prepared and,
// for resources with a Wire, kept only in their wire encoding, computed
// once. It is shared read-only by every answer until the next crawl
// replaces it.
type Snapshot[T, K any] struct {
	// Built is when the crawl started.
	Built time.Time
	// Calls is how many HeyGen requests the crawl made.
	Calls int

	wire     []T                // shells holding each item's encoding, or the items themselves without a Wire
	keys     []*K               // prepared as the crawl's pages arrived (see entry)
	ids      []string           // ascending: found by binary search (a map of 50,000 ids was 3 MiB more)
	groups   map[string][]int32 // secondary key -> ascending positions
	changing []bool             // nil when no item is changing
	codec    *Wire[T]
}

// Len returns the number of items.
func (s *Snapshot[T, K]) Len() int { return len(s.ids) }

// find returns the position of id.
func (s *Snapshot[T, K]) find(id string) (int, bool) {
	return slices.BinarySearch(s.ids, id)
}

// Get returns the item with this id (decoded afresh: the caller may keep
// or change it).
func (s *Snapshot[T, K]) Get(id string) (T, bool) {
	var zero T
	i, ok := s.find(id)
	if !ok {
		return zero, false
	}
	if s.codec == nil {
		return s.wire[i], true
	}
	item, err := s.codec.Decode(s.codec.Bytes(s.wire[i]))
	if err != nil {
		return zero, false // cannot happen: the bytes were marshalled from an item
	}
	return item, true
}

// encoded returns the item with this id in its wire form, and whether it
// may be out of date (see Resource.Changing).
func (s *Snapshot[T, K]) encoded(id string) (item T, changing, ok bool) {
	i, ok := s.find(id)
	if !ok {
		return item, false, false
	}
	return s.wire[i], s.changing != nil && s.changing[i], true
}

// reusable returns the encoding and keys of item id in s when the item
// encodes exactly to b: a crawl keeps those instead of new copies.
func (s *Snapshot[T, K]) reusable(id string, b []byte) (wire T, keys *K, canonID string, ok bool) {
	if s == nil || s.codec == nil {
		return wire, nil, "", false
	}
	i, found := s.find(id)
	if !found || !bytes.Equal(s.codec.Bytes(s.wire[i]), b) {
		return wire, nil, "", false
	}
	return s.wire[i], s.keys[i], s.ids[i], true
}

// missing returns the ids of s that other lacks, in order.
func (s *Snapshot[T, K]) missing(other *Snapshot[T, K]) []string {
	var out []string
	for _, id := range s.ids {
		if _, ok := other.find(id); !ok {
			out = append(out, id)
		}
	}
	return out
}

// Crawled entries are kept in chunks of chunkSize, which never move: a
// doubling slice would leave a copy of every entry behind.
const (
	chunkBits = 9
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// entry is one crawled item, prepared as its page arrived: its id, keys
// and, for a resource with a Wire and no Merge, its wire form (reused
// from the serving snapshot when the item encodes exactly as there),
// the item itself recycled. The others keep the item, prepared at build
// (after merging duplicates).
type entry[T, K any] struct {
	id       string
	wire     T
	keys     *K
	item     T
	changing bool
	prepared bool
}

// prepare turns a crawled item into its entry; prev is the snapshot
// serving, whose unchanged items are reused.
func prepare[T, K, F any](r *Resource[T, K, F], it T, prev *Snapshot[T, K]) entry[T, K] {
	e := entry[T, K]{id: r.ID(it)}
	if r.Merge != nil || r.Wire == nil {
		e.item = it
		return e
	}
	b, err := r.Wire.Marshal(it)
	if err != nil {
		e.item = it // cannot happen for a valid message; kept as it is
		return e
	}
	e.changing = r.Changing != nil && r.Changing(it)
	if wire, keys, id, ok := prev.reusable(e.id, b); ok {
		e.wire, e.keys, e.id = wire, keys, id
	} else {
		k := r.Prepare(it)
		e.wire, e.keys = r.Wire.Shell(b), &k
	}
	e.prepared = true
	if r.Recycle != nil {
		r.Recycle(it)
	}
	return e
}

// finish prepares an entry kept with its item (see entry).
func finish[T, K, F any](r *Resource[T, K, F], e *entry[T, K], prev *Snapshot[T, K]) {
	it := e.item
	e.changing = r.Changing != nil && r.Changing(it)
	e.wire = it
	if r.Wire != nil {
		if b, err := r.Wire.Marshal(it); err == nil {
			if wire, keys, id, ok := prev.reusable(e.id, b); ok {
				e.wire, e.keys, e.id, e.prepared = wire, keys, id, true
				return
			}
			e.wire = r.Wire.Shell(b)
		}
	}
	k := r.Prepare(it)
	e.keys, e.prepared = &k, true
}

// build sorts, de-duplicates (the first of a duplicated id wins: crawl
// partitions are merged in priority order, or merged by Merge), indexes
// and keeps the crawled entries, in chunks of chunkSize (see pageAll).
// prev is the snapshot serving (see prepare).
func build[T, K, F any](r *Resource[T, K, F], built time.Time, chunks [][]entry[T, K], prev *Snapshot[T, K]) *Snapshot[T, K] {
	// Entry n is chunks[n>>chunkBits][n&chunkMask]: the chunks are not
	// copied into one slice.
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	order := make([]uint32, 0, n)
	for ci, c := range chunks {
		for j := range c {
			order = append(order, uint32(ci)<<chunkBits|uint32(j))
		}
	}
	at := func(x uint32) *entry[T, K] { return &chunks[x>>chunkBits][x&chunkMask] }
	// Stable, so that among equal ids the first crawled comes first.
	slices.SortStableFunc(order, func(a, b uint32) int { return strings.Compare(at(a).id, at(b).id) })
	unique := order[:0]
	for _, x := range order {
		e := at(x)
		if e.id == "" {
			continue
		}
		if n := len(unique); n > 0 && at(unique[n-1]).id == e.id {
			if r.Merge != nil {
				first := at(unique[n-1])
				first.item = r.Merge(first.item, e.item)
			}
			continue
		}
		unique = append(unique, x)
	}
	s := &Snapshot[T, K]{Built: built, codec: r.Wire,
		ids: make([]string, len(unique)), keys: make([]*K, len(unique)), wire: make([]T, len(unique))}
	if r.Group != nil {
		s.groups = map[string][]int32{}
	}
	for k, x := range unique {
		e := at(x)
		if !e.prepared {
			finish(r, e, prev)
		}
		pos := int32(k)
		s.ids[k], s.keys[k], s.wire[k] = e.id, e.keys, e.wire
		if r.Group != nil {
			if g := r.Group(e.keys); g != "" {
				s.groups[g] = append(s.groups[g], pos)
			}
		}
		if e.changing {
			if s.changing == nil {
				s.changing = make([]bool, len(unique))
			}
			s.changing[k] = true
		}
	}
	return s
}

// page returns up to size matching items (in their wire form) after the id
// `after`, and the id to continue after ("" on the last page). With a
// group, only that group's positions are scanned; a nil match takes every
// item.
//
// An unfiltered page is a run of the snapshot's own items, and is returned
// as that run, not copied: the snapshot is immutable and the page is only
// read (marshalled). Its capacity ends with the page, so an append to it
// cannot write into the snapshot. The copy was the cached page's one
// allocation proportional to its size (bench/RESULTS.md, section 6).
func (s *Snapshot[T, K]) page(match func(keys *K) bool, group, after string, size int) (page []T, next string) {
	start, found := slices.BinarySearch(s.ids, after)
	if found {
		start++
	}
	if match == nil && group == "" && size > 0 {
		end := start + min(size, len(s.ids)-start)
		if end < len(s.ids) {
			next = s.ids[end-1]
		}
		return s.wire[start:end:end], next
	}
	var candidates []int32
	n := len(s.ids) - start
	if group != "" {
		candidates = s.groups[group]
		from, _ := slices.BinarySearch(candidates, int32(start)) //nolint:gosec // G115: as above
		candidates = candidates[from:]
		n = len(candidates)
	}
	page = make([]T, 0, min(size, n))
	last := ""
	for j := range n {
		i := start + j
		if group != "" {
			i = int(candidates[j])
		}
		if match != nil && !match(s.keys[i]) {
			continue
		}
		if len(page) == size {
			return page, last
		}
		page = append(page, s.wire[i])
		last = s.ids[i]
	}
	return page, ""
}
