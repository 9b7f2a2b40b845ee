package fakeheygen

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Request is one request as the server received it.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is the escaped URL path, as sent on the wire.
	Path string
	// RawQuery is the query string without '?'.
	RawQuery string
	// APIKey is the X-Api-Key header received ("" when absent).
	APIKey string
	// IdempotencyKey is the Idempotency-Key header received ("" when absent).
	IdempotencyKey string
	// Body holds the first Options.RequestBodyLogLimit bytes of the request body.
	Body []byte
	// BodyTruncated reports that the body was longer than Body.
	BodyTruncated bool
	// RequestID is the X-Request-Id the server answered with.
	RequestID string
	// Time is when the request reached the handler.
	Time time.Time
}

// Bounds on what one logged request may hold, so the log's memory stays bounded whatever
// clients send; longer values are cut.
const (
	maxLoggedPath   = 2048
	maxLoggedQuery  = 2048
	maxLoggedHeader = 256
	maxTrackedPaths = 10_000
)

// requestLog is a ring of the latest requests plus exact counts.
type requestLog struct {
	mu        sync.Mutex
	limit     int
	bodyLimit int // < 0: bodies are not recorded
	ring      []Request
	next      int // index of the oldest entry once the ring is full
	total     int
	counts    map[string]int // by path and by "METHOD path"
}

func (l *requestLog) init(limit, bodyLimit int) {
	l.limit = limit
	l.bodyLimit = bodyLimit
	l.counts = make(map[string]int)
}

// cut returns a copy of at most n bytes of s: a copy so that a logged substring does not
// keep the whole request line alive.
func cut(s string, n int) string {
	return strings.Clone(s[:min(len(s), n)])
}

func methodPathKey(method, path string) string { return method + " " + path }

func (l *requestLog) add(r *http.Request, path, id string) {
	req := Request{
		Method:         cut(r.Method, 32),
		Path:           cut(path, maxLoggedPath),
		RawQuery:       cut(r.URL.RawQuery, maxLoggedQuery),
		APIKey:         cut(r.Header.Get("X-Api-Key"), maxLoggedHeader),
		IdempotencyKey: cut(r.Header.Get("Idempotency-Key"), maxLoggedHeader),
		RequestID:      id,
		Time:           time.Now(),
	}
	if l.bodyLimit >= 0 {
		req.Body, req.BodyTruncated = peekBody(r, l.bodyLimit)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	for _, k := range []string{req.Path, methodPathKey(req.Method, req.Path)} {
		if n, ok := l.counts[k]; ok || len(l.counts) < 2*maxTrackedPaths {
			l.counts[k] = n + 1
		}
	}
	if len(l.ring) < l.limit {
		l.ring = append(l.ring, req)
		return
	}
	l.ring[l.next] = req
	l.next = (l.next + 1) % l.limit
}

// peekBody reads up to limit bytes of r's body for the log and puts them back in front of
// the rest, so the handler still reads the whole body.
func peekBody(r *http.Request, limit int) (logged []byte, truncated bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, false
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	rest := io.Reader(r.Body)
	if err != nil {
		rest = errReader{err} // the handler sees the same failure the log did
	}
	r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), rest), r.Body}
	if len(buf) > limit {
		return bytes.Clone(buf[:limit]), true
	}
	if len(buf) == 0 {
		return nil, false
	}
	return bytes.Clone(buf), false
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type readCloser struct {
	io.Reader
	io.Closer
}

// Requests returns a copy of the logged requests, oldest first: all of them since the last
// ResetRequests, or the latest Options.RequestLogLimit if there were more. Paths, queries,
// keys and idempotency keys longer than 2 KiB, 2 KiB, 256 and 256 bytes are cut.
func (s *Server) Requests() []Request {
	l := &s.reqLog
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Request, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

// RequestCount returns the exact number of requests received since the last
// ResetRequests, including those answered by a middleware and with 401.
func (s *Server) RequestCount() int {
	l := &s.reqLog
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// CountPath returns how many requests had exactly this escaped path (any method, any
// query) since the last ResetRequests. The count is exact for the first 10,000 distinct
// paths seen; a path first seen after that is counted from the bounded request log.
func (s *Server) CountPath(path string) int {
	return s.count(path, func(r *Request) bool { return r.Path == path })
}

// CountMethodPath is CountPath restricted to one method, such as
// CountMethodPath("POST", "/v3/videos").
func (s *Server) CountMethodPath(method, path string) int {
	return s.count(methodPathKey(method, path), func(r *Request) bool { return r.Method == method && r.Path == path })
}

func (s *Server) count(key string, match func(*Request) bool) int {
	l := &s.reqLog
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.counts[key]; ok {
		return n
	}
	n := 0
	for i := range l.ring {
		if match(&l.ring[i]) {
			n++
		}
	}
	return n
}

// ResetRequests empties the request log and zeroes the counts. Request ids keep counting.
func (s *Server) ResetRequests() {
	l := &s.reqLog
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring = nil
	l.next = 0
	l.total = 0
	l.counts = make(map[string]int)
}
