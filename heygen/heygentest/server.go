// Package heygentest is an in-process fake of HeyGen's REST API v3 avatar endpoints with
// fault injection, for tests, benchmarks and the service's demo mode.
//
// It is written from HeyGen's API notes, independently of this repository's client, so
// that a decoding bug in the client is not mirrored here. The fake serves real HTTP on a
// loopback port, checks the X-Api-Key header, pages with opaque tokens, answers with the
// JSON shapes HeyGen sends (explicit nulls included), records every request it receives,
// and can be told to fail in the ways HeyGen and the network fail: error statuses and
// bodies, delays, connection resets, redirects, oversized and malformed bodies, and random
// mixes of those.
package heygentest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRequestLogLimit is the number of requests Requests keeps when
// Options.RequestLogLimit is zero.
const DefaultRequestLogLimit = 100_000

// Options configures a Server.
type Options struct {
	// APIKey is the key the X-Api-Key header must carry. It must not be empty; use
	// SetAPIKey("") afterwards to reject every request.
	APIKey string
	// Catalogue is the avatar data served. A zero Catalogue serves empty lists; use
	// DemoCatalogue for sample data.
	Catalogue Catalogue
	// RequestLogLimit bounds how many requests Requests keeps (the oldest are dropped).
	// Zero means DefaultRequestLogLimit. Counts stay exact regardless.
	RequestLogLimit int
	// ErrorLog receives the HTTP server's own errors (accept errors, malformed requests).
	// Nil discards them.
	ErrorLog *log.Logger
}

// Server is a running fake HeyGen API. All methods are safe for concurrent use.
type Server struct {
	ln        net.Listener
	srv       *http.Server
	url       string
	serveDone chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error

	lifeMu sync.Mutex
	idle   *sync.Cond // signalled when active drops to zero after close
	closed bool
	active int

	apiKey  atomic.Pointer[[]string]
	snap    atomic.Pointer[snapshot]
	latency atomic.Int64
	reqSeq  atomic.Uint64

	reqLog requestLog

	faultMu     sync.Mutex
	faults      []*faultEntry
	random      *randomState
	faultCounts map[string]int
}

// NewServer starts a fake HeyGen API on a free loopback port. Close it when done.
func NewServer(opts Options) (*Server, error) {
	if opts.APIKey == "" {
		return nil, errors.New("heygentest: Options.APIKey must not be empty")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("heygentest: listen: %w", err)
	}
	s := &Server{
		ln:          ln,
		url:         "http://" + ln.Addr().String(),
		serveDone:   make(chan struct{}),
		closing:     make(chan struct{}),
		faultCounts: make(map[string]int),
	}
	s.idle = sync.NewCond(&s.lifeMu)
	s.SetAPIKey(opts.APIKey)
	s.SetCatalogue(opts.Catalogue)
	limit := opts.RequestLogLimit
	if limit <= 0 {
		limit = DefaultRequestLogLimit
	}
	s.reqLog.init(limit)
	errLog := opts.ErrorLog
	if errLog == nil {
		errLog = log.New(io.Discard, "", 0)
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return s, nil
}

// URL returns the base URL of the server, such as http://127.0.0.1:41234, to be used in
// place of https://api.heygen.com.
func (s *Server) URL() string { return s.url }

// Handler returns the server's HTTP handler, for mounting the fake in another server.
// It shares all state (key, catalogue, faults, request log) with s.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close stops the server: it closes the listener and every connection, interrupts
// injected delays, and waits for the serve goroutine and all running handlers to return.
// Calling it again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.lifeMu.Lock()
		s.closed = true
		s.lifeMu.Unlock()
		// Connections first, so a handler woken by closing cannot answer on them.
		s.closeErr = s.srv.Close()
		close(s.closing)
		<-s.serveDone
		s.lifeMu.Lock()
		for s.active > 0 {
			s.idle.Wait()
		}
		s.lifeMu.Unlock()
	})
	return s.closeErr
}

// SetAPIKey changes the key the server accepts, effective for the next request. The empty
// key rejects every request (a revoked key).
func (s *Server) SetAPIKey(k string) { s.SetAPIKeys(k) }

// SetAPIKeys accepts any of keys at once, as HeyGen does while an old key
// and its replacement overlap during a rotation. Empty keys are ignored;
// no keys rejects every request.
func (s *Server) SetAPIKeys(keys ...string) {
	var ks []string
	for _, k := range keys {
		if k != "" {
			ks = append(ks, k)
		}
	}
	s.apiKey.Store(&ks)
}

// SetCatalogue atomically replaces the catalogue served. Requests already being answered
// finish with the old one. c is not retained: later changes to it have no effect.
func (s *Server) SetCatalogue(c Catalogue) { s.snap.Store(compile(c)) }

// SetLatency adds d before every response, faults and errors included, as HeyGen's own
// latency would. A cancelled request stops waiting. Zero or negative turns it off.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

func (s *Server) enter() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return false
	}
	s.active++
	return true
}

func (s *Server) leave() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.active--
	if s.active == 0 && s.closed {
		s.idle.Broadcast()
	}
}

// sleep waits d, returning false if the request was cancelled or the server closed first;
// the caller must then return without answering. The connection is dropped then, since a
// handler that returns without writing would send an empty 200.
func (s *Server) sleep(ctx context.Context, w http.ResponseWriter, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	resetConn(w)
	return false
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Request-Id", "req_"+strconv.FormatUint(s.reqSeq.Add(1), 10))
	if !s.enter() {
		writeBody(w, http.StatusServiceUnavailable, []byte(V3Error("internal_error", "fake HeyGen server is closed")))
		return
	}
	defer s.leave()

	path := r.URL.EscapedPath()
	s.reqLog.add(r, path, h.Get("X-Request-Id"))

	ctx := r.Context()
	if !s.sleep(ctx, w, time.Duration(s.latency.Load())) {
		return
	}

	f, scripted, outcome, rf := s.pickFault(path)
	if scripted {
		if !s.sleep(ctx, w, f.Delay) {
			return
		}
		if f.answers() {
			s.answerFault(w, r, f)
			return
		}
		// A pass-through fault: its headers decorate the normal answer.
		f.applyHeaders(h)
	}
	switch outcome {
	case outcome503:
		writeBody(w, http.StatusServiceUnavailable, []byte(V3Error("internal_error", "Service temporarily unavailable")))
		return
	case outcome429:
		if rf.RetryAfter != "" {
			h.Set("Retry-After", rf.RetryAfter)
		}
		writeBody(w, http.StatusTooManyRequests, []byte(V3Error("rate_limit_exceeded", "Too many requests, please retry later")))
		return
	case outcomeReset:
		resetConn(w)
		return
	case outcomeMalformed:
		writeBody(w, http.StatusOK, []byte(`{"data":[{"id":"Abigail_expressive_2024112501","name":"Abig`))
		return
	case outcomeSlow:
		d := rf.SlowDelay
		if d <= 0 {
			d = time.Second
		}
		if !s.sleep(ctx, w, d) {
			return
		}
	}
	s.serveAPI(w, r, path)
}

// serveAPI answers like HeyGen: auth layer first, then method, then route.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, path string) {
	if !s.authorized(r.Header.Get("X-Api-Key")) {
		writeBody(w, http.StatusUnauthorized, flatUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method "+truncate(r.Method, 32)+" is not allowed; use GET", "")
		return
	}
	snap := s.snap.Load()
	switch {
	case path == "/v3/users/me":
		writeBody(w, http.StatusOK, usersMe)
	case path == "/v3/avatars":
		s.listGroups(w, r, snap)
	case path == "/v3/avatars/looks":
		s.listLooks(w, r, snap)
	case strings.HasPrefix(path, "/v3/avatars/looks/"):
		id := path[len("/v3/avatars/looks/"):]
		if strings.Contains(id, "/") {
			notFoundPath(w)
			return
		}
		i, ok := lookup(snap.lookByID, id)
		if !ok {
			writeError(w, http.StatusNotFound, "avatar_not_found", "Avatar "+truncate(id, 200)+" not found", "look_id")
			return
		}
		writeItem(w, snap.looks[i].json)
	case strings.HasPrefix(path, "/v3/avatars/"):
		id := path[len("/v3/avatars/"):]
		if strings.Contains(id, "/") {
			notFoundPath(w)
			return
		}
		i, ok := lookup(snap.groupByID, id)
		if !ok {
			writeError(w, http.StatusNotFound, "avatar_not_found", "Avatar group "+truncate(id, 200)+" not found", "group_id")
			return
		}
		writeItem(w, snap.groups[i].json)
	default:
		notFoundPath(w)
	}
}

func (s *Server) authorized(key string) bool {
	ok := false
	for _, want := range *s.apiKey.Load() {
		if subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1 {
			ok = true
		}
	}
	return ok
}

var (
	flatUnauthorized = []byte(FlatError(400112, "Unauthorized"))
	usersMe          = []byte(`{"data":{"username":"demo","email":"demo@example.com","billing_type":"wallet",` +
		`"wallet":{"currency":"usd","remaining_balance":100.0},"subscription":null,"usage_based":null}}`)
)

func notFoundPath(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "not_found", "The requested resource does not exist", "")
}

// validID reports whether id has the shape of a HeyGen id: ^[A-Za-z0-9_-]{1,128}$.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func lookup(m map[string]int, id string) (int, bool) {
	if !validID(id) {
		return 0, false
	}
	i, ok := m[id]
	return i, ok
}

// truncate shortens s to at most n bytes for echoing in messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

// writeError writes a v3 error object; param is omitted when empty.
func writeError(w http.ResponseWriter, status int, code, message, param string) {
	b, err := json.Marshal(struct {
		Error apiError `json:"error"`
	}{apiError{code, message, param}})
	if err != nil { // cannot happen for strings; keep the response well-formed anyway
		b = []byte(`{"error":{"code":"internal_error","message":"encoding failed"}}`)
	}
	writeBody(w, status, b)
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.Header().Del("Content-Length")
		w.WriteHeader(status) // net/http refuses a body for these
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps one oversized response from pinning memory in the pool.
const maxPooledBuffer = 1 << 20

func writeItem(w http.ResponseWriter, item []byte) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	buf.WriteString(`{"data":`)
	buf.Write(item)
	buf.WriteByte('}')
	writeBody(w, http.StatusOK, buf.Bytes())
	if buf.Cap() <= maxPooledBuffer {
		bufPool.Put(buf)
	}
}
