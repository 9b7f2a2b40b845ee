package heygentest

import (
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
	maxLoggedKey    = 256
	maxTrackedPaths = 10_000
)

// requestLog is a ring of the latest requests plus exact counts.
type requestLog struct {
	mu         sync.Mutex
	limit      int
	ring       []Request
	next       int // index of the oldest entry once the ring is full
	total      int
	pathCounts map[string]int
}

func (l *requestLog) init(limit int) {
	l.limit = limit
	l.pathCounts = make(map[string]int)
}

// cut returns a copy of at most n bytes of s: a copy so that a logged substring does not
// keep the whole request line alive.
func cut(s string, n int) string {
	return strings.Clone(s[:min(len(s), n)])
}

func (l *requestLog) add(r *http.Request, path, id string) {
	req := Request{
		Method:    cut(r.Method, 32),
		Path:      cut(path, maxLoggedPath),
		RawQuery:  cut(r.URL.RawQuery, maxLoggedQuery),
		APIKey:    cut(r.Header.Get("X-Api-Key"), maxLoggedKey),
		RequestID: id,
		Time:      time.Now(),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if n, ok := l.pathCounts[req.Path]; ok || len(l.pathCounts) < maxTrackedPaths {
		l.pathCounts[req.Path] = n + 1
	}
	if len(l.ring) < l.limit {
		l.ring = append(l.ring, req)
		return
	}
	l.ring[l.next] = req
	l.next = (l.next + 1) % l.limit
}

// Requests returns a copy of the logged requests, oldest first: all of them since the last
// ResetRequests, or the latest Options.RequestLogLimit if there were more. Paths, queries
// and keys longer than 2 KiB, 2 KiB and 256 bytes are cut.
func (s *Server) Requests() []Request {
	l := &s.reqLog
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Request, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

// RequestCount returns the exact number of requests received since the last
// ResetRequests, including those answered by faults and with 401.
func (s *Server) RequestCount() int {
	l := &s.reqLog
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// CountPath returns how many requests had exactly this escaped path (any query) since the
// last ResetRequests. The count is exact for the first 10,000 distinct paths seen; a path
// first seen after that is counted from the bounded request log.
func (s *Server) CountPath(path string) int {
	l := &s.reqLog
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.pathCounts[path]; ok {
		return n
	}
	n := 0
	for i := range l.ring {
		if l.ring[i].Path == path {
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
	l.pathCounts = make(map[string]int)
}
