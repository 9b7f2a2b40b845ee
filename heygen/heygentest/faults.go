package heygentest

import (
	"bufio"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault scripts how the server answers matching requests instead of the normal handler.
//
// A fault that sets Status, Body, Reset, Redirect or OversizeBytes answers the request
// itself (after Delay). A fault that sets none of those is a pass-through: it waits
// Delay, then the normal handler answers, with Header and ContentType applied on top.
type Fault struct {
	// Path selects requests by their escaped URL path: an exact path, a prefix ending in
	// "*" ("/v3/avatars/*"), or "" for any path.
	Path string
	// Times is how many matching requests the fault applies to; 0 (or negative) means
	// until ClearFaults.
	Times int
	// Status is the HTTP status to answer with. 0 means 200 when Body is set (302 for a
	// redirect); values outside 200-999 are answered as 500.
	Status int
	// Body is the response body, sent as is (see V3Error and the other helpers).
	Body string
	// Header is set on the response, overriding the server's own headers.
	Header map[string]string
	// Delay is waited before answering; a cancelled request stops waiting and gets nothing.
	Delay time.Duration
	// Reset closes the TCP connection without any response (with SO_LINGER 0, so the
	// client sees a connection reset or EOF). Go's http.Transport silently retries an
	// idempotent request once when this happens on a reused keep-alive connection.
	Reset bool
	// Redirect answers Status (default 302) with Location: Redirect.
	Redirect string
	// OversizeBytes answers Status (default 200) with a syntactically valid v3 list body
	// of at least this many bytes, streamed without being held in memory.
	OversizeBytes int
	// OversizeContentLength announces the oversize body's length in Content-Length;
	// otherwise it is sent chunked and the client learns its size only by reading.
	OversizeContentLength bool
	// ContentType overrides the Content-Type header (application/json by default).
	ContentType string
}

func (f *Fault) answers() bool {
	return f.Status != 0 || f.Body != "" || f.Reset || f.Redirect != "" || f.OversizeBytes > 0
}

func (f *Fault) matches(path string) bool {
	switch {
	case f.Path == "":
		return true
	case strings.HasSuffix(f.Path, "*"):
		return strings.HasPrefix(path, f.Path[:len(f.Path)-1])
	}
	return path == f.Path
}

func (f *Fault) applyHeaders(h http.Header) {
	for k, v := range f.Header {
		h.Set(k, v)
	}
	if f.ContentType != "" {
		h.Set("Content-Type", f.ContentType)
	}
}

type faultEntry struct {
	f         Fault
	remaining int // meaningful when f.Times > 0
}

// Inject queues f. Faults are checked in the order injected; the first active one that
// matches a request applies to it (one fault per request), and one with Times > 0 is used
// up after Times requests.
func (s *Server) Inject(f Fault) {
	if f.Header != nil { // the caller may reuse its map
		h := make(map[string]string, len(f.Header))
		for k, v := range f.Header {
			h[k] = v
		}
		f.Header = h
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = append(s.faults, &faultEntry{f: f, remaining: f.Times})
}

// ClearFaults removes every queued fault. Random faults (SetRandomFaults) stay.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = nil
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

// SetRandomFaults turns random faults on with r (copied), or off with nil. It restarts the
// generator from r.Seed and zeroes FaultCounts.
func (s *Server) SetRandomFaults(r *RandomFaults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faultCounts = make(map[string]int)
	if r == nil {
		s.random = nil
		return
	}
	s.random = &randomState{cfg: *r, rng: rand.New(rand.NewPCG(uint64(r.Seed), 0x5851f42d4c957f2d))}
}

// FaultCounts returns how many requests got each random outcome since the last
// SetRandomFaults: keys "ok", "503", "429", "reset", "slow", "malformed"; plus "scripted",
// the number of requests a scripted fault (Inject) applied to.
func (s *Server) FaultCounts() map[string]int {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	m := make(map[string]int, len(s.faultCounts))
	for k, v := range s.faultCounts {
		m[k] = v
	}
	return m
}

func rate(p float64) float64 {
	if math.IsNaN(p) || p < 0 {
		return 0
	}
	return p
}

// pickFault consumes the first matching scripted fault, and draws a random outcome unless
// that fault answers the request itself.
func (s *Server) pickFault(path string) (f Fault, scripted bool, o outcome, rf RandomFaults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i, e := range s.faults {
		if !e.f.matches(path) {
			continue
		}
		f, scripted = e.f, true
		if e.f.Times > 0 {
			e.remaining--
			if e.remaining <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		s.faultCounts["scripted"]++
		break
	}
	if s.random == nil || (scripted && f.answers()) {
		return f, scripted, outcomeNone, rf
	}
	c := &s.random.cfg
	x := s.random.rng.Float64()
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
	s.faultCounts[outcomeNames[o]]++
	return f, scripted, o, *c
}

// answerFault writes the response of an answering fault (its Delay already waited).
func (s *Server) answerFault(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.Reset {
		resetConn(w)
		return
	}
	h := w.Header()
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
	if f.Redirect != "" {
		h.Set("Location", f.Redirect)
	}
	f.applyHeaders(h)
	if f.OversizeBytes > 0 {
		s.writeOversize(w, r, status, f)
		return
	}
	writeBody(w, status, []byte(f.Body))
}

// resetConn drops the connection without a response (or with a partial one). It hijacks
// the connection where the ResponseWriter allows it (HTTP/1) and otherwise aborts the
// handler with http.ErrAbortHandler, the sentinel net/http provides for exactly this.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a wrapping writer: the documented way to abort a response.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST instead of FIN
	}
	_ = conn.Close()
}

const (
	oversizeHead = `{"data":[`
	oversizeTail = `],"has_more":false,"next_token":null}`
	// oversizeItem is a look with every field set; %s is a fixed-width counter.
	oversizeItemA = `{"id":"oversize_look_`
	oversizeItemB = `","name":"Oversize Filler Look","avatar_type":"studio_avatar","group_id":"oversize_group",` +
		`"gender":"female","default_voice_id":"00000000000000000000000000000000",` +
		`"preview_image_url":"https://files2.heygen.ai/avatar/v3/oversize/full/2.2/preview_target.webp",` +
		`"preview_video_url":"https://files2.heygen.ai/avatar/v3/oversize/full/2.2/preview_video_target.mp4",` +
		`"image_width":1920,"image_height":1080,"preferred_orientation":"landscape",` +
		`"supported_api_engines":["avatar_iii","avatar_iv"],"tags":["business","filler"],` +
		`"status":null,"error":null,"created_at":1700000000}`
	oversizeDigits = 12
	// maxOversize keeps the item counter within oversizeDigits (1 TiB is plenty).
	maxOversize = 1 << 40
)

// writeOversize streams a valid list body of at least f.OversizeBytes bytes.
func (s *Server) writeOversize(w http.ResponseWriter, r *http.Request, status int, f Fault) {
	itemLen := len(oversizeItemA) + oversizeDigits + len(oversizeItemB)
	need := min(f.OversizeBytes, maxOversize) - len(oversizeHead) - len(oversizeTail)
	n := 1
	if need > itemLen {
		n = (need + 1 + itemLen) / (itemLen + 1) // n items and n-1 commas cover need
	}
	total := len(oversizeHead) + n*itemLen + (n - 1) + len(oversizeTail)
	h := w.Header()
	h.Del("Content-Length")
	if f.OversizeContentLength {
		h.Set("Content-Length", strconv.Itoa(total))
	}
	w.WriteHeader(status)
	if !f.OversizeContentLength {
		// Send the headers now, or net/http computes a Content-Length for small bodies.
		_ = http.NewResponseController(w).Flush()
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(oversizeHead)
	ctx := r.Context()
	num := make([]byte, 0, oversizeDigits)
	for i := range n {
		if i%64 == 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			default:
			}
		}
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.WriteString(oversizeItemA)
		num = strconv.AppendInt(num[:0], int64(i), 10)
		for range oversizeDigits - len(num) {
			_ = bw.WriteByte('0')
		}
		_, _ = bw.Write(num)
		if _, err := bw.WriteString(oversizeItemB); err != nil {
			return // the client went away
		}
	}
	_, _ = bw.WriteString(oversizeTail)
	_ = bw.Flush()
}

// V3Error returns a HeyGen v3 error body: {"error":{"code":...,"message":...}}.
func V3Error(code, message string) string {
	return mustJSON(struct {
		Error apiError `json:"error"`
	}{apiError{Code: code, Message: message}})
}

// V3ErrorParam returns a HeyGen v3 error body naming the offending parameter:
// {"error":{"code":...,"message":...,"param":...}}.
func V3ErrorParam(code, message, param string) string {
	return mustJSON(struct {
		Error apiError `json:"error"`
	}{apiError{Code: code, Message: message, Param: param}})
}

// V2Error returns a HeyGen v2 error body: {"data":null,"error":{"code":...,"message":...}}.
func V2Error(code, message string) string {
	return mustJSON(struct {
		Data  *struct{} `json:"data"`
		Error apiError  `json:"error"`
	}{Error: apiError{Code: code, Message: message}})
}

// V2StringError returns the documented v2 string error body: {"data":null,"error":"..."}.
func V2StringError(message string) string {
	return mustJSON(struct {
		Data  *struct{} `json:"data"`
		Error string    `json:"error"`
	}{Error: message})
}

// FlatError returns HeyGen's flat error body with a numeric code, as its auth layer
// sends on every API version: {"code":400112,"message":"Unauthorized"}.
func FlatError(code int, message string) string {
	return mustJSON(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
}

// FlatStringError returns a flat error body with a string code: {"code":"...","message":"..."}.
func FlatStringError(code, message string) string {
	return mustJSON(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, message})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil { // not reachable: only strings and ints are encoded
		return `{"error":{"code":"internal_error","message":"encoding failed"}}`
	}
	return string(b)
}
