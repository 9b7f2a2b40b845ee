package server

import (
	"context"
	"strconv"
	"sync/atomic"
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
	age    string // "" without an age
	md     metadata.MD
}

func (f *freshnessHeaders) header(m catalogue.Meta) metadata.MD {
	var buf [24]byte
	age := buf[:0]
	if m.HasAge {
		age = strconv.AppendFloat(age, m.Age.Seconds(), 'f', 1, 64)
	}
	if last := f.last.Load(); last != nil && last.source == m.Source && last.age == string(age) && (len(age) > 0) == m.HasAge {
		return last.md
	}
	h := &freshness{source: m.Source, age: string(age), md: metadata.MD{HeaderSource: {string(m.Source)}}}
	if m.HasAge {
		h.md[HeaderCatalogueAgeS] = []string{h.age}
	}
	f.last.Store(h)
	return h.md
}
