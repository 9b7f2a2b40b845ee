package server

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// DefaultPageSize is the page size when a request asks for 0 (AIP-158);
// larger requests are coerced to the reader's maximum.
const DefaultPageSize = 20

// Response header metadata describing where an answer came from.
const (
	HeaderSource        = "x-heygen-source"
	HeaderCatalogueAgeS = "x-heygen-catalogue-age-seconds"
)

// maxFilterTextLen bounds free-text filters.
const maxFilterTextLen = 256

// checks gathers a request's field violations, so a caller learns about
// every bad field at once.
type checks struct{ violations []fieldViolation }

func (c *checks) fail(field, reason string) {
	c.violations = append(c.violations, fieldViolation{field, reason})
}

// err returns the violations as one *requestError, or nil.
func (c *checks) err() error {
	if len(c.violations) == 0 {
		return nil
	}
	return &requestError{violations: c.violations}
}

// pageSize applies AIP-158 to a requested page size.
func (c *checks) pageSize(n int32, maxSize int) int {
	switch {
	case n < 0:
		c.fail("page_size", "must not be negative")
	case n == 0:
		return DefaultPageSize
	case int(n) > maxSize:
		return maxSize
	}
	return int(n)
}

// id checks a required HeyGen id.
func (c *checks) id(field, id string) {
	switch {
	case id == "":
		c.fail(field, "is required")
	case !heygen.ValidID(id):
		c.fail(field, heygen.IDRule)
	}
}

// optionalID checks a HeyGen id that may be empty.
func (c *checks) optionalID(field, id string) {
	if id != "" {
		c.id(field, id)
	}
}

// enum checks that an enum value is one the API defines.
func enum[E ~int32](c *checks, field string, v E, names map[int32]string) {
	if _, ok := names[int32(v)]; !ok {
		c.fail(field, "unknown enum value "+strconv.Itoa(int(v)))
	}
}

// text bounds a free-text filter.
func (c *checks) text(field, v string) {
	switch {
	case len(v) > maxFilterTextLen:
		c.fail(field, "must be at most "+strconv.Itoa(maxFilterTextLen)+" bytes")
	case !utf8.ValidString(v):
		c.fail(field, "must be valid UTF-8")
	}
}

// answered sends the header metadata that says where an answer came from
// and counts the read. The headers are advisory: a failure to send them
// (the stream is gone) is not an error for the call.
//
// In a unary call the call recorder runs in, the headers are left in the
// call's state and the recorder sends them as the call ends, right before
// grpc-go writes the response (callReport.PostCall). grpc.SetHeader would
// copy them into a new map (metadata.Join: a map and a slice per key, about
// 0.8 µs of a cached GetAvatar's server CPU), while sending them as the
// stream's first headers takes the prepared metadata as it is.
func (s *Server) answered(ctx context.Context, m catalogue.Meta) {
	s.metrics.catalogueRead(m.Source)
	md := s.freshness.header(m)
	if st := callStateFrom(ctx); st != nil && st.info != nil && !st.info.stream && st.seen.Load() {
		st.header = md
		return
	}
	_ = grpc.SetHeader(ctx, md)
}

// freshnessHeaders reuses the header metadata of the last answer while
// it says the same (the same source and age to the tenth of a second): the
// metadata is only read, and building it was a map, two slices and a
// string on every call.
type freshnessHeaders struct {
	last atomic.Pointer[freshness]
}

type freshness struct {
	source catalogue.Source
	tenths int64 // the age in tenths of a second as written, or noAge, or unsure
	md     metadata.MD
}

// The tenths of a freshness without an age, and of one whose age
// ageTenths could not round with certainty: it is never reused.
const (
	noAge  = -1
	unsure = -2
)

// header returns the freshness headers of an answer with meta m. The age
// is written as strconv.AppendFloat writes its seconds to one decimal; the
// tenths it rounds to are found with integer arithmetic (ageTenths), so
// that a call whose age rounds as the last one's formats nothing: the
// float formatting was 6% of the gateway's machinery per call
// (BenchmarkChain).
func (f *freshnessHeaders) header(m catalogue.Meta) metadata.MD {
	tenths := int64(noAge)
	if m.HasAge {
		tenths = unsure
		if t, ok := ageTenths(m.Age); ok {
			tenths = t
		}
	}
	if last := f.last.Load(); tenths != unsure && last != nil && last.source == m.Source && last.tenths == tenths {
		return last.md
	}
	h := &freshness{source: m.Source, tenths: tenths, md: metadata.MD{HeaderSource: {string(m.Source)}}}
	if m.HasAge {
		var buf [24]byte
		h.md[HeaderCatalogueAgeS] = []string{string(strconv.AppendFloat(buf[:0], m.Age.Seconds(), 'f', 1, 64))}
	}
	f.last.Store(h)
	return h.md
}

// ageTenths returns d in tenths of a second, rounded as
// strconv.AppendFloat(d.Seconds(), 'f', 1) rounds, when that is certain:
// not for a negative d, and not within a microsecond of a halfway point,
// where the float's own rounding decides (ties go to even there).
func ageTenths(d time.Duration) (int64, bool) {
	const tenth, half, margin = int64(100 * time.Millisecond), int64(50 * time.Millisecond), int64(time.Microsecond)
	ns := int64(d)
	if ns < 0 {
		return 0, false
	}
	q, r := ns/tenth, ns%tenth
	switch {
	case r < half-margin:
		return q, true
	case r > half+margin:
		return q + 1, true
	}
	return 0, false
}
