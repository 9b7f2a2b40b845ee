// Package faults makes an HTTP handler fail the ways HeyGen and the network fail: error
// statuses and bodies, delays, connection resets, raw non-HTTP bytes, redirects,
// oversized and malformed bodies, and seeded random mixes of those.
//
// It is an HTTP middleware, kept apart from package fakeheygen so that the demo binary,
// which imports only fakeheygen, does not ship it. Plug it into the fake with
//
//	inj := faults.New()
//	srv, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: key, Middleware: inj.Wrap})
//
// where it runs after the fake's request log and latency and before its API key check,
// so a fault answers even a request with a wrong key.
//
// The placeholder APIKeyPlaceholder ("{api_key}") in a fault's Body, Header values, Raw
// bytes and Redirect is replaced by the X-Api-Key the request carried, so a test can make
// HeyGen echo the key in every place an error can carry text (see EchoKey) and prove the
// key never reaches a log, an error or a caller.
package faults

import (
	"bufio"
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// APIKeyPlaceholder is replaced by the request's X-Api-Key in Fault.Body, the values of
// Fault.Header, Fault.Raw and Fault.Redirect, verbatim (not JSON-escaped).
const APIKeyPlaceholder = "{api_key}"

// Fault scripts how matching requests are answered instead of by the wrapped handler.
//
// A fault that sets Status, Body, Reset, Raw, Redirect or OversizeBytes answers the
// request itself (after Delay). A fault that sets none of those is a pass-through: it
// waits Delay, then the wrapped handler answers, with Header and ContentType applied.
type Fault struct {
	// Path selects requests by their escaped URL path: an exact path, a prefix ending in
	// "*" ("/v3/avatars/*"), or "" for any path.
	Path string
	// Method selects requests by HTTP method; "" matches any.
	Method string
	// Times is how many matching requests the fault applies to; 0 (or negative) means
	// until ClearFaults.
	Times int
	// Status is the HTTP status to answer with. 0 means 200 when Body is set (302 for a
	// redirect); values outside 200-999 are answered as 500.
	Status int
	// Body is the response body, sent as is (see fakeheygen.V3Error and the other
	// helpers), after APIKeyPlaceholder substitution.
	Body string
	// Header is set on the response, overriding the server's own headers, after
	// APIKeyPlaceholder substitution in the values.
	Header map[string]string
	// ContentType overrides the Content-Type header.
	ContentType string
	// Delay is waited before answering; a cancelled request stops waiting and gets nothing.
	Delay time.Duration
	// Reset closes the TCP connection without any response (with SO_LINGER 0, so the
	// client sees a connection reset or EOF). Go's http.Transport silently retries an
	// idempotent request once when this happens on a reused keep-alive connection.
	Reset bool
	// Raw is written as is on the connection instead of an HTTP response, which is then
	// closed. A line without a space, such as APIKeyPlaceholder+"\r\n\r\n", makes Go's
	// client fail with `malformed HTTP response "<the line>"`.
	Raw string
	// Redirect answers Status (default 302) with Location: Redirect.
	Redirect string
	// OversizeBytes answers Status (default 200) with a syntactically valid v3 list body
	// of at least this many bytes, streamed without being held in memory.
	OversizeBytes int
	// OversizeContentLength announces the oversize body's length in Content-Length;
	// otherwise it is sent chunked and the client learns its size only by reading.
	OversizeContentLength bool
}

// EchoKey returns a fault answering status with the received API key in every field and
// header a HeyGen error can carry: the v3 error's code, message, param and doc_url, and
// the X-Request-Id and Retry-After headers (the latter as garbage no client can parse).
func EchoKey(status int) Fault {
	const k = APIKeyPlaceholder
	return Fault{
		Status: status,
		Body:   `{"error":{"code":"` + k + `","message":"Invalid API key ` + k + `","param":"` + k + `","doc_url":"https://docs.heygen.com/` + k + `"}}`,
		Header: map[string]string{"X-Request-Id": k, "Retry-After": k},
	}
}

func (f *Fault) answers() bool {
	return f.Status != 0 || f.Body != "" || f.Reset || f.Raw != "" || f.Redirect != "" || f.OversizeBytes > 0
}

func (f *Fault) matches(method, path string) bool {
	if f.Method != "" && f.Method != method {
		return false
	}
	if prefix, ok := strings.CutSuffix(f.Path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return f.Path == "" || path == f.Path
}

func (f *Fault) applyHeaders(h http.Header, key string) {
	for k, v := range f.Header {
		h.Set(k, strings.ReplaceAll(v, APIKeyPlaceholder, key))
	}
	if f.ContentType != "" {
		h.Set("Content-Type", f.ContentType)
	}
}

type faultEntry struct {
	f         Fault
	remaining int // meaningful when f.Times > 0
}

// Injector holds the faults to inject. Its methods are safe for concurrent use, also
// while requests are being served.
type Injector struct {
	mu     sync.Mutex
	faults []*faultEntry
	random *randomState
	counts map[string]int
}

// New returns an Injector with no faults: its middleware passes every request on.
func New() *Injector {
	return &Injector{counts: make(map[string]int)}
}

// Wrap returns next with the faults applied, for fakeheygen.Options.Middleware.
func (in *Injector) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.serve(next, w, r)
	})
}

// Inject queues f. Faults are checked in the order injected; the first active one that
// matches a request applies to it (one fault per request), and one with Times > 0 is used
// up after Times requests.
func (in *Injector) Inject(f Fault) {
	f.Header = maps.Clone(f.Header) // the caller may reuse its map
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = append(in.faults, &faultEntry{f: f, remaining: f.Times})
}

// ClearFaults removes every queued fault. Random faults (SetRandom) stay.
func (in *Injector) ClearFaults() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = nil
}

// RandomFaults makes a share of requests fail at random. Each request not answered by a
// scripted fault draws one outcome with the given probabilities (in the order listed;
// the remainder is a normal answer). Outcomes are drawn from one generator seeded with
// Seed, so the sequence of outcomes is the same for the same sequence of requests.
type RandomFaults struct {
	Seed int64
	// Rate503 answers 503 with a v3 internal_error body.
	Rate503 float64
	// Rate429 answers 429 with a v3 rate_limit_exceeded body and RetryAfter.
	Rate429 float64
	// RateReset closes the connection without a response.
	RateReset float64
	// RateSlow waits SlowDelay, then answers normally.
	RateSlow float64
	// RateMalformed answers 200 with a truncated JSON body.
	RateMalformed float64
	// RetryAfter is the Retry-After header value of the 429s; empty sends none.
	RetryAfter string
	// SlowDelay is the wait of the slow outcome; 0 means one second.
	SlowDelay time.Duration
}

type randomState struct {
	cfg RandomFaults
	rng *rand.Rand
}

type outcome int

const (
	outcomeNone outcome = iota // random faults off, or a scripted fault answered
	outcomeOK
	outcome503
	outcome429
	outcomeReset
	outcomeSlow
	outcomeMalformed
)

var outcomeNames = [...]string{outcomeOK: "ok", outcome503: "503", outcome429: "429",
	outcomeReset: "reset", outcomeSlow: "slow", outcomeMalformed: "malformed"}

// SetRandom turns random faults on with r (copied), or off with nil. It restarts the
// generator from r.Seed and zeroes Counts.
func (in *Injector) SetRandom(r *RandomFaults) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.counts = make(map[string]int)
	if r == nil {
		in.random = nil
		return
	}
	in.random = &randomState{cfg: *r, rng: rand.New(rand.NewPCG(uint64(r.Seed), 0x5851f42d4c957f2d))} //nolint:gosec // a reproducible test sequence, not a secret
}

// Counts returns how many requests got each random outcome since the last SetRandom:
// keys "ok", "503", "429", "reset", "slow", "malformed"; plus "scripted", the number of
// requests a scripted fault (Inject) applied to.
func (in *Injector) Counts() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return maps.Clone(in.counts)
}

func rate(p float64) float64 {
	if math.IsNaN(p) || p < 0 {
		return 0
	}
	return p
}

// pick consumes the first matching scripted fault, and draws a random outcome unless
// that fault answers the request itself.
func (in *Injector) pick(method, path string) (f Fault, scripted bool, o outcome, rf RandomFaults) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, e := range in.faults {
		if !e.f.matches(method, path) {
			continue
		}
		f, scripted = e.f, true
		if e.f.Times > 0 {
			e.remaining--
			if e.remaining <= 0 {
				in.faults = append(in.faults[:i:i], in.faults[i+1:]...)
			}
		}
		in.counts["scripted"]++
		break
	}
	if in.random == nil || scripted && f.answers() {
		return f, scripted, outcomeNone, rf
	}
	c := &in.random.cfg
	x := in.random.rng.Float64()
	o = outcomeOK
	for _, cand := range []struct {
		o outcome
		p float64
	}{{outcome503, c.Rate503}, {outcome429, c.Rate429}, {outcomeReset, c.RateReset}, {outcomeSlow, c.RateSlow}, {outcomeMalformed, c.RateMalformed}} {
		if x < rate(cand.p) {
			o = cand.o
			break
		}
		x -= rate(cand.p)
	}
	in.counts[outcomeNames[o]]++
	return f, scripted, o, *c
}

// sleep waits d, reporting false if the request ended first; the caller then returns
// without answering, as nobody reads the answer any more.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var (
	body503       = []byte(fakeheygen.V3Error("internal_error", "Service temporarily unavailable"))
	body429       = []byte(fakeheygen.V3Error("rate_limit_exceeded", "Too many requests, please retry later"))
	bodyMalformed = []byte(`{"data":[{"id":"Abigail_expressive_2024112501","name":"Abig`)
)

func (in *Injector) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	f, scripted, o, rf := in.pick(r.Method, r.URL.EscapedPath())
	key := r.Header.Get("X-Api-Key")
	ctx := r.Context()
	if scripted {
		if !sleep(ctx, f.Delay) {
			return
		}
		if f.answers() {
			answer(w, r, &f, key)
			return
		}
		f.applyHeaders(w.Header(), key)
	}
	switch o {
	case outcome503:
		writeBody(w, http.StatusServiceUnavailable, body503)
		return
	case outcome429:
		if rf.RetryAfter != "" {
			w.Header().Set("Retry-After", rf.RetryAfter)
		}
		writeBody(w, http.StatusTooManyRequests, body429)
		return
	case outcomeReset:
		resetConn(w)
		return
	case outcomeMalformed:
		writeBody(w, http.StatusOK, bodyMalformed)
		return
	case outcomeSlow:
		if !sleep(ctx, cmpOr(rf.SlowDelay, time.Second)) {
			return
		}
	}
	next.ServeHTTP(w, r)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// answer writes the response of an answering fault (its Delay already waited).
func answer(w http.ResponseWriter, r *http.Request, f *Fault, key string) {
	switch {
	case f.Reset:
		resetConn(w)
		return
	case f.Raw != "":
		writeRaw(w, strings.ReplaceAll(f.Raw, APIKeyPlaceholder, key))
		return
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
		if f.Redirect != "" {
			status = http.StatusFound
		}
	}
	if status < 200 || status > 999 {
		status = http.StatusInternalServerError
	}
	h := w.Header()
	if f.Redirect != "" {
		h.Set("Location", strings.ReplaceAll(f.Redirect, APIKeyPlaceholder, key))
	}
	f.applyHeaders(h, key)
	if f.OversizeBytes > 0 {
		writeOversize(w, r, status, f)
		return
	}
	writeBody(w, status, []byte(strings.ReplaceAll(f.Body, APIKeyPlaceholder, key)))
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.Header().Del("Content-Length")
		w.WriteHeader(status) // net/http refuses a body for these
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b) //nolint:gosec // a test's scripted body, sent as scripted
}

// hijack takes the connection over. Where the ResponseWriter cannot (HTTP/2, a wrapping
// writer) it aborts the handler with http.ErrAbortHandler, the sentinel net/http
// provides for dropping a response.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	return conn, rw
}

// resetConn drops the connection without a response.
func resetConn(w http.ResponseWriter) {
	conn, _ := hijack(w)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST instead of FIN
	}
	_ = conn.Close()
}

// writeRaw sends raw instead of an HTTP response and closes the connection.
func writeRaw(w http.ResponseWriter, raw string) {
	conn, rw := hijack(w)
	defer conn.Close()
	_, _ = rw.WriteString(raw)
	_ = rw.Flush()
}
