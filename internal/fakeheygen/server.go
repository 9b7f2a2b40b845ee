package fakeheygen

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the Options that are zero.
const (
	DefaultRequestLogLimit     = 100_000
	DefaultRequestBodyLogLimit = 16 << 10
	DefaultRenderPending       = 2 * time.Second
	DefaultRenderProcessing    = 6 * time.Second
	DefaultCreateRate          = 1.0 // video creations per second
	DefaultCreateBurst         = 5
)

// Options configures a Server. Every field but APIKey may be left zero.
type Options struct {
	// APIKey is the key the X-Api-Key header must carry. It must not be empty; use
	// SetAPIKey("") afterwards to reject every request.
	APIKey string
	// Catalogue is the avatar data served. A zero Catalogue serves empty lists; use
	// DemoCatalogue for sample data.
	Catalogue Catalogue
	// Voices is the voice library served, public and private voices together. Nil serves
	// empty lists; use DemoVoices for sample data.
	Voices []Voice
	// Account is what GET /v3/users/me returns and video creation debits. A zero Account
	// (empty Username) means DemoAccount(BillingWallet).
	Account Account
	// Videos are videos that exist from the start, listed after any created ones and
	// served as given (their status never changes); see DemoVideos.
	Videos []Video

	// CreateDelay is how long POST /v3/videos takes to answer. A repeat of an
	// Idempotency-Key that arrives meanwhile gets 409 request_in_progress. Real time,
	// not Clock. Zero or negative: no delay.
	CreateDelay time.Duration
	// RenderPending and RenderProcessing are how long a created video stays pending,
	// then processing, before it is completed (or failed), measured on Clock. Zero means
	// DefaultRenderPending and DefaultRenderProcessing; negative means no time at all.
	RenderPending, RenderProcessing time.Duration
	// CreateRate (per second) and CreateBurst limit video creations with a token bucket
	// separate from reads; a creation over the limit gets 429 rate_limit_exceeded with
	// Retry-After. Zero means DefaultCreateRate and DefaultCreateBurst; a negative
	// CreateRate turns the limit off.
	CreateRate  float64
	CreateBurst int
	// Clock is the time the server goes by for render progress, timestamps, idempotency
	// expiry and the create rate limit. Nil means time.Now.
	Clock func() time.Time

	// Middleware, when set, wraps the API handler: it sees every request after the
	// request log and the latency (so requests it answers itself are still logged and
	// delayed) and before the API key check. faults.Injector.Wrap fits here.
	Middleware func(http.Handler) http.Handler

	// RequestLogLimit bounds how many requests Requests keeps (the oldest are dropped).
	// Zero means DefaultRequestLogLimit. Counts stay exact regardless.
	RequestLogLimit int
	// RequestBodyLogLimit is how many bytes of each request body Requests keeps. Zero
	// means DefaultRequestBodyLogLimit; negative records no bodies.
	RequestBodyLogLimit int
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
	// base is the parent of every request's context and is cancelled by Close, which
	// thereby interrupts latency and create delays.
	base       context.Context
	cancelBase context.CancelFunc
	closeOnce  sync.Once
	closeErr   error

	lifeMu sync.Mutex
	idle   *sync.Cond // signalled when active drops to zero after close
	closed bool
	active int

	apiKeys atomic.Pointer[[]string]
	avatars atomic.Pointer[avatarSnapshot]
	voices  atomic.Pointer[voiceSnapshot]
	latency atomic.Int64
	reqSeq  atomic.Uint64
	reqLog  requestLog

	api    http.Handler
	routes []route
	now    func() time.Time

	accountMu sync.Mutex
	account   Account

	videos videoStore
}

// NewServer starts a fake HeyGen API on a free loopback port. Close it when done.
func NewServer(opts Options) (*Server, error) {
	if opts.APIKey == "" {
		return nil, errors.New("fakeheygen: Options.APIKey must not be empty: set the key clients will send")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeheygen: listen on a loopback port: %w", err)
	}
	s := &Server{
		ln:        ln,
		url:       "http://" + ln.Addr().String(),
		serveDone: make(chan struct{}),
		now:       opts.Clock,
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.idle = sync.NewCond(&s.lifeMu)
	if s.now == nil {
		s.now = time.Now
	}
	s.SetAPIKey(opts.APIKey)
	s.SetCatalogue(opts.Catalogue)
	s.SetVoices(opts.Voices)
	if opts.Account.Username == "" {
		opts.Account = DemoAccount(BillingWallet)
	}
	s.SetAccount(opts.Account)
	s.videos.init(opts, s.now())
	s.reqLog.init(orDefault(opts.RequestLogLimit, DefaultRequestLogLimit), orDefault(opts.RequestBodyLogLimit, DefaultRequestBodyLogLimit))
	s.routes = s.routeTable()
	s.api = http.HandlerFunc(s.serveAPI)
	if opts.Middleware != nil {
		s.api = opts.Middleware(s.api)
	}
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
		BaseContext:       func(net.Listener) context.Context { return s.base },
	}
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return s, nil
}

func orDefault[T int | float64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// URL returns the base URL of the server, such as http://127.0.0.1:41234, to be used in
// place of https://api.heygen.com.
func (s *Server) URL() string { return s.url }

// Handler returns the server's HTTP handler (request log, latency, middleware and API),
// for mounting the fake in another server. It shares all state with s.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close stops the server: it closes the listener and every connection, interrupts
// latency and create delays, and waits for the serve goroutine and all running handlers
// to return. Calling it again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.lifeMu.Lock()
		s.closed = true
		s.lifeMu.Unlock()
		// Connections first, so a handler woken by the cancellation cannot answer on them.
		s.closeErr = s.srv.Close()
		s.cancelBase()
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

// SetAPIKeys accepts any of keys at once, as HeyGen does while an old key and its
// replacement overlap during a rotation. Empty keys are ignored; no keys rejects every
// request.
func (s *Server) SetAPIKeys(keys ...string) {
	ks := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "" })
	s.apiKeys.Store(&ks)
}

// SetCatalogue atomically replaces the avatar catalogue. Requests already being answered
// finish with the old one. c is not retained: later changes to it have no effect.
func (s *Server) SetCatalogue(c Catalogue) { s.avatars.Store(compileAvatars(c)) }

// SetVoices atomically replaces the voice library, like SetCatalogue.
func (s *Server) SetVoices(v []Voice) { s.voices.Store(compileVoices(v)) }

// SetLatency adds d before every response, middleware answers and errors included, as
// HeyGen's own latency would. A cancelled request stops waiting. Zero or negative turns
// it off.
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

// wait sleeps d, returning false if ctx ended or the server closed first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.base.Done():
	}
	return false
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	id := "req_" + strconv.FormatUint(s.reqSeq.Add(1), 10)
	h.Set("X-Request-Id", id)
	if !s.enter() {
		writeError(w, http.StatusServiceUnavailable, "internal_error", "The fake HeyGen server is closed", "")
		return
	}
	defer s.leave()
	s.reqLog.add(r, r.URL.EscapedPath(), id)
	// A request whose client left or whose server closed gets no answer: nobody reads it.
	if !s.wait(r.Context(), time.Duration(s.latency.Load())) {
		return
	}
	s.api.ServeHTTP(w, r)
}

// idHandler answers one route; id is the last path segment of a route ending in "/*".
type idHandler func(w http.ResponseWriter, r *http.Request, id string)

// route maps an escaped path to its handlers by method. A path ending in "/*" matches one
// more segment (possibly empty, which no id matches).
type route struct {
	path    string
	methods map[string]idHandler
}

// routeTable lists the routes in match order: exact paths before the "/*" that would
// also match them.
func (s *Server) routeTable() []route {
	get := func(h idHandler) map[string]idHandler { return map[string]idHandler{http.MethodGet: h} }
	return []route{
		{"/v3/users/me", get(s.getAccount)},
		{"/v3/avatars", get(s.listGroups)},
		{"/v3/avatars/looks", get(s.listLooks)},
		{"/v3/avatars/looks/*", get(s.getLook)},
		{"/v3/avatars/*", get(s.getGroup)},
		{"/v3/voices", get(s.listVoices)},
		{"/v3/voices/*", get(s.getVoice)},
		{"/v3/videos", map[string]idHandler{http.MethodGet: s.listVideos, http.MethodPost: s.createVideo}},
		{"/v3/videos/statuses", get(s.videoStatuses)},
		{"/v3/videos/*", map[string]idHandler{http.MethodGet: s.getVideo, http.MethodDelete: s.deleteVideo}},
	}
}

func (rt *route) match(path string) (id string, ok bool) {
	prefix, wildcard := strings.CutSuffix(rt.path, "*")
	if !wildcard {
		return "", path == rt.path
	}
	id, ok = strings.CutPrefix(path, prefix)
	return id, ok && !strings.Contains(id, "/")
}

// serveAPI answers like HeyGen: auth layer first, then route, then method.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r.Header.Get("X-Api-Key")) {
		writeBody(w, http.StatusUnauthorized, []byte(FlatError(400112, "Unauthorized")))
		return
	}
	path := r.URL.EscapedPath()
	for i := range s.routes {
		rt := &s.routes[i]
		id, ok := rt.match(path)
		if !ok {
			continue
		}
		if h := rt.methods[r.Method]; h != nil {
			h(w, r, id)
			return
		}
		allowed := make([]string, 0, len(rt.methods))
		for m := range rt.methods {
			allowed = append(allowed, m)
		}
		slices.Sort(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			"Method "+truncate(r.Method, 32)+" is not allowed on this path; use "+strings.Join(allowed, " or "), "")
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "The requested resource does not exist", "")
}

func (s *Server) authorized(key string) bool {
	ok := false
	for _, want := range *s.apiKeys.Load() {
		// No early exit, so the time taken does not say which key nearly matched.
		if subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1 {
			ok = true
		}
	}
	return ok
}
