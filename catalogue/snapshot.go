package catalogue

import (
	"slices"
	"strings"
	"time"
)

// Snapshot is one immutable crawl of a resource: its items sorted by id
// (ascending byte order), indexed, with their filter keys prepared and
// their wire encoding computed once. It is shared read-only by every
// answer until the next crawl replaces it.
type Snapshot[T, K any] struct {
	// Built is when the crawl started.
	Built time.Time
	// Calls is how many HeyGen requests the crawl made.
	Calls int

	items  []T
	wire   []T // items[i] pre-encoded (items itself when the resource has no Encode)
	keys   []K
	ids    []string
	index  map[string]int32
	groups map[string][]int32 // secondary key -> ascending positions
}

// Len returns the number of items.
func (s *Snapshot[T, K]) Len() int { return len(s.items) }

// Get returns the item with this id.
func (s *Snapshot[T, K]) Get(id string) (T, bool) {
	if i, ok := s.index[id]; ok {
		return s.items[i], true
	}
	var zero T
	return zero, false
}

// missing returns the ids of s that other lacks, in order.
func (s *Snapshot[T, K]) missing(other *Snapshot[T, K]) []string {
	var out []string
	for _, id := range s.ids {
		if _, ok := other.index[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// build sorts, de-duplicates (the first of a duplicated id wins: crawl
// partitions are merged in priority order), indexes and encodes items.
func build[T, K, F any](r *Resource[T, K, F], built time.Time, items []T) *Snapshot[T, K] {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = r.ID(it)
	}
	order := make([]int32, len(items))
	for i := range order {
		order[i] = int32(i) //nolint:gosec // G115: a snapshot is far below 2^31 items (the crawl bounds it)
	}
	// Stable, so that among equal ids the first crawled comes first.
	slices.SortStableFunc(order, func(a, b int32) int { return strings.Compare(ids[a], ids[b]) })
	s := &Snapshot[T, K]{Built: built, index: make(map[string]int32, len(items))}
	s.items = make([]T, 0, len(items))
	s.ids = make([]string, 0, len(items))
	for _, i := range order {
		id := ids[i]
		if id == "" {
			continue
		}
		if len(s.ids) > 0 && s.ids[len(s.ids)-1] == id {
			if r.Merge != nil {
				s.items[len(s.items)-1] = r.Merge(s.items[len(s.items)-1], items[i])
			}
			continue
		}
		s.index[id] = int32(len(s.items)) //nolint:gosec // G115: as above
		s.items = append(s.items, items[i])
		s.ids = append(s.ids, id)
	}
	s.keys = make([]K, len(s.items))
	for i, it := range s.items {
		s.keys[i] = r.Prepare(it)
	}
	if r.Group != nil {
		s.groups = map[string][]int32{}
		for i, it := range s.items {
			if g := r.Group(it); g != "" {
				s.groups[g] = append(s.groups[g], int32(i)) //nolint:gosec // G115: as above
			}
		}
	}
	s.wire = s.items
	if r.Encode != nil {
		s.wire = make([]T, len(s.items))
		for i, it := range s.items {
			s.wire[i] = r.Encode(it)
		}
	}
	return s
}

// page returns up to size matching items (in their wire form) after the id
// `after`, and the id to continue after ("" on the last page). With a
// group, only that group's positions are scanned.
func (s *Snapshot[T, K]) page(match func(item T, keys *K) bool, group, after string, size int) (page []T, next string) {
	start, found := slices.BinarySearch(s.ids, after)
	if found {
		start++
	}
	var candidates []int32
	n := len(s.items) - start
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
		if !match(s.items[i], &s.keys[i]) {
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
