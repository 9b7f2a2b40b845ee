package catalogue

import (
	"context"
	"slices"
)

// Reader is what a handler calls to list and get one resource, whether the
// catalogue holds it ([Cache]) or every call goes to HeyGen
// ([PassThrough]): handlers never need to know which.
type Reader[T, F any] interface {
	// List returns one page: the items matching f after the page token,
	// at most pageSize of them (at most MaxPageSize).
	List(ctx context.Context, f F, pageToken string, pageSize int) (*Page[T], error)
	// Get returns one item by id.
	Get(ctx context.Context, id string) (T, Meta, error)
	// GetEncoded is Get for answering with the item: it may return it in
	// its wire form, which encodes exactly as the item but whose fields
	// read as empty (see Resource.Wire).
	GetEncoded(ctx context.Context, id string) (T, Meta, error)
	// MaxPageSize is the largest page List serves.
	MaxPageSize() int
}

// Page is one page of a list.
type Page[T any] struct {
	// Items are the page's items.
	Items []T
	// NextPageToken continues the list; empty on the last page.
	NextPageToken string
	// Meta says where the page came from.
	Meta Meta
}

// PassThrough is the [Reader] of a gateway whose catalogue is off: every
// call goes to HeyGen, in HeyGen's order and page sizes. Filters only the
// catalogue can apply are refused with a *DisabledError.
type PassThrough[T, K, F any] struct {
	res *Resource[T, K, F]
}

// NewPassThrough returns the pass-through reader of res, which must have
// an Upstream.
func NewPassThrough[T, K, F any](res *Resource[T, K, F]) *PassThrough[T, K, F] {
	return &PassThrough[T, K, F]{res: res}
}

// passThroughKind is the token kind of a resource's pass-through pages:
// their payload is HeyGen's token, not an id, so the two kinds of page
// must never be mixed up.
func passThroughKind(kind byte) byte { return kind | 0x20 }

// MaxPageSize implements [Reader].
func (p *PassThrough[T, K, F]) MaxPageSize() int { return p.res.Upstream.MaxPageSize }

// List implements [Reader].
func (p *PassThrough[T, K, F]) List(ctx context.Context, f F, pageToken string, pageSize int) (*Page[T], error) {
	up := p.res.Upstream
	if bad := up.Unsupported(f); len(bad) > 0 {
		slices.Sort(bad)
		return nil, &DisabledError{Fields: bad}
	}
	key := up.Key(f)
	kind := passThroughKind(p.res.Kind)
	token := ""
	if pageToken != "" {
		payload, err := DecodeToken(pageToken, kind, key)
		if err != nil {
			return nil, err
		}
		token = string(payload)
	}
	items, next, err := up.Page(ctx, f, token, min(pageSize, up.MaxPageSize))
	if err != nil {
		return nil, err
	}
	page := &Page[T]{Items: items, Meta: Meta{Source: SourceHeyGen}}
	if next != "" {
		page.NextPageToken = EncodeToken(kind, key, []byte(next))
	}
	return page, nil
}

// Get implements [Reader].
func (p *PassThrough[T, K, F]) Get(ctx context.Context, id string) (T, Meta, error) {
	item, err := p.res.Fetch(ctx, id)
	return item, Meta{Source: SourceHeyGen}, err
}

// GetEncoded implements [Reader]: the item fetched, as Get.
func (p *PassThrough[T, K, F]) GetEncoded(ctx context.Context, id string) (T, Meta, error) {
	return p.Get(ctx, id)
}
