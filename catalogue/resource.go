package catalogue

import "context"

// Resource describes one HeyGen resource the catalogue can hold: how to
// crawl it, index it, filter it and fetch one item it does not hold. The
// machinery (snapshots, staleness, paging, tokens, misses) is the same for
// every resource; a Resource is only what differs.
//
// T is the item type served to callers (a protobuf message), K the filter
// fields prepared once per snapshot (lower-cased text, say), F the filter a
// list request carries.
type Resource[T, K, F any] struct {
	// Name names the resource in logs, metrics and errors ("avatars").
	Name string
	// Kind is the resource's page-token kind, an upper-case letter unique
	// per resource.
	Kind byte
	// ID returns an item's id, the snapshot's sort and paging key.
	ID func(T) string
	// Partitions are slices of HeyGen's list, crawled side by side and
	// merged in this order: an id seen twice keeps its first item, or, with
	// Merge, the two merged.
	Partitions []Partition[T]
	// Split, if set, lists finer slices of the same items, to fill a cold
	// cache faster: more partitions crawled side by side, each of fewer
	// pages (HeyGen's filters slice the lists, by group, by gender). It
	// may make HeyGen calls of its own (the groups whose looks it slices
	// by). The slices may miss items a filter value they do not know would
	// select (a look in no listed group, a voice of neither gender): the
	// full crawl over Partitions that follows at once finds them, and logs
	// that it did.
	Split func(ctx context.Context) ([]Partition[T], error)
	// Merge, if set, combines two items with one id from different
	// partitions (a voice listed under several engines, say).
	Merge func(first, again T) T
	// Changing, if set, reports items whose snapshot copy may be out of
	// date (a voice still being cloned): Get fetches those from HeyGen.
	Changing func(T) bool
	// Prepare computes an item's filter fields, once per snapshot. The
	// snapshot keeps them and the item's wire encoding (see Wire), not the
	// item: they must hold everything the filter reads.
	Prepare func(T) K
	// Filter describes the filter type.
	Filter FilterSpec[T, K, F]
	// Group, if set, returns an item's secondary key (an avatar's group)
	// from its prepared fields: a filter on it (FilterSpec.Group) then
	// scans only that group's items.
	Group func(keys *K) string
	// Wire, if set, keeps a snapshot's items encoded for the wire only
	// (see ProtoWire): lists answer with the encodings, computed once per
	// snapshot, and gets decode their item. Without it the snapshot keeps
	// the items themselves.
	Wire *Wire[T]
	// Recycle, if set, takes back an item a crawl no longer needs (its
	// encoding and keys are taken), for its partitions' pages to reuse:
	// see lookPages. Only items without Merge are recycled.
	Recycle func(T)
	// Fetch fetches one item by id from HeyGen, for ids the snapshot lacks.
	Fetch func(ctx context.Context, id string) (T, error)
	// Codec, if set and Wire is not, encodes items for a fleet's shared
	// store (only Marshal and Decode are used); a resource with a Wire
	// shares the encodings it keeps.
	Codec *Wire[T]
	// Upstream, if set, lists straight from HeyGen: the pass-through reader
	// uses it when the catalogue is switched off.
	Upstream *Upstream[T, F]
}

// Wire is how a resource's items are kept encoded (see ProtoWire), and how
// a fleet's replicas share snapshots (see Options.Shared and
// Resource.Codec).
type Wire[T any] struct {
	// Marshal encodes an item.
	Marshal func(T) ([]byte, error)
	// Shell returns a value that encodes to exactly b and holds nothing
	// else: what lists answer with.
	Shell func(b []byte) T
	// Bytes returns a shell's encoding.
	Bytes func(shell T) []byte
	// Decode decodes an item from an encoding.
	Decode func(b []byte) (T, error)
}

// FilterSpec is what the catalogue needs to know about a filter type.
type FilterSpec[T, K, F any] struct {
	// Key is the filter's canonical form (see FilterKey), binding page
	// tokens to the filters they were issued for.
	Key func(F) string
	// Match reports whether an item, by its prepared fields, passes the
	// filter. It must pass every item for the zero filter (no filter set):
	// lists with that filter's Key are not matched at all
	// (TestZeroFilterMatchesEverything).
	Match func(f F, keys *K) bool
	// Group returns the secondary key the filter requires, "" for any.
	Group func(F) string
	// Check, if set, refuses filters the catalogue cannot apply (a
	// *FieldError), before anything else.
	Check func(F) error
}

// shareCodec returns how the resource's items travel through a fleet's
// shared store, or nil if they do not.
func (r *Resource[T, K, F]) shareCodec() *Wire[T] {
	if r.Wire != nil {
		return r.Wire
	}
	return r.Codec
}

// Partition is one slice of a resource's list, paged through on its own.
type Partition[T any] struct {
	// Name names it in logs and errors ("public looks").
	Name string
	// Page fetches the page after token ("" for the first) and returns its
	// items (converted) and the next token ("" on the last page).
	Page func(ctx context.Context, token string) (items []T, next string, err error)
}

// Upstream lists a resource straight from HeyGen, page by page.
type Upstream[T, F any] struct {
	// MaxPageSize is the largest page HeyGen serves.
	MaxPageSize int
	// Key is the canonical form of the filters HeyGen applies.
	Key func(F) string
	// Unsupported names the filter fields set in f that only the catalogue
	// can apply (refused with a *DisabledError).
	Unsupported func(f F) []string
	// Page fetches one page from HeyGen.
	Page func(ctx context.Context, f F, token string, size int) (items []T, next string, err error)
}
