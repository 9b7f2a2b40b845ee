package heygen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind classifies a HeyGen failure by what the caller can do about it. The
// gRPC server maps each Kind to one status code.
type Kind int

// The kinds of HeyGen failure.
const (
	// KindBadResponse: HeyGen answered with something unusable (body not
	// JSON, too large, a redirect, a 2xx carrying an unrecognised error).
	KindBadResponse Kind = iota
	// KindInvalidArgument: HeyGen rejected a request parameter.
	KindInvalidArgument
	// KindKeyRejected: HeyGen does not accept the service's API key.
	KindKeyRejected
	// KindPermissionDenied: the key is valid but not allowed to do this.
	KindPermissionDenied
	// KindNotFound: the avatar, group or resource does not exist.
	KindNotFound
	// KindRateLimited: HeyGen throttled the service.
	KindRateLimited
	// KindInsufficientCredit: the HeyGen account is out of credit.
	KindInsufficientCredit
	// KindUnavailable: HeyGen failed (5xx) or could not be reached.
	KindUnavailable
	// KindConflict: HeyGen refused a write that conflicts with the
	// resource's state (409 conflict).
	KindConflict
	// KindPayloadTooLarge: HeyGen refused a request body as too large (413).
	KindPayloadTooLarge
	// KindInProgress: an earlier request with the same Idempotency-Key is
	// still being processed (409 request_in_progress); retry later with
	// the same key.
	KindInProgress
)

var kindNames = [...]string{
	KindBadResponse:        "bad_response",
	KindInvalidArgument:    "invalid_argument",
	KindKeyRejected:        "key_rejected",
	KindPermissionDenied:   "permission_denied",
	KindNotFound:           "not_found",
	KindRateLimited:        "rate_limited",
	KindInsufficientCredit: "insufficient_credit",
	KindUnavailable:        "unavailable",
	KindConflict:           "conflict",
	KindPayloadTooLarge:    "payload_too_large",
	KindInProgress:         "in_progress",
}

// String returns a short snake_case name for logs.
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is every failure of a call that reached (or tried to reach) HeyGen.
// It never holds the API key, a URL query or a raw response body.
type Error struct {
	// Kind is what the failure means for the caller.
	Kind Kind
	// Method and Endpoint name the call ("GET", "/v3/avatars/looks/{look_id}").
	Method, Endpoint string
	// HTTPStatus is HeyGen's HTTP status, or 0 when no response arrived.
	HTTPStatus int
	// Code is HeyGen's error code as a string ("avatar_not_found", "400112"), if any.
	Code string
	// Message is HeyGen's error message (decoded, trimmed, length-capped), if any.
	Message string
	// Param is the parameter HeyGen blamed, if any.
	Param string
	// RequestID is HeyGen's X-Request-Id, if any.
	RequestID string
	// RetryAfter is HeyGen's Retry-After, when HasRetryAfter is set.
	RetryAfter time.Duration
	// HasRetryAfter reports whether HeyGen sent a usable Retry-After.
	HasRetryAfter bool
	// Attempts is how many HTTP attempts were made, retries included.
	Attempts int
	// Cause classifies a failure to reach HeyGen (see TransportCause): safe
	// to show callers, it never holds an address.
	Cause string
	// Err is the underlying transport error, if any, with its text
	// redacted; it may name addresses, so it is for logs, never for callers.
	Err error
}

// Error describes the failure without any secret, query or raw body.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("heygen ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Endpoint)
	b.WriteString(": ")
	switch {
	case e.HTTPStatus != 0:
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString(e.Kind.String())
	}
	if e.Code != "" {
		b.WriteString(" code ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteByte(')')
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the underlying transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// LastFailure describes the failure for a circuit breaker's record: the
// transport cause, or the HTTP status, never upstream text.
func (e *Error) LastFailure() string {
	switch {
	case e.HTTPStatus != 0:
		return fmt.Sprintf("HTTP %d", e.HTTPStatus)
	case e.Cause != "":
		return e.Cause
	}
	return e.Kind.String()
}

// ValidationError is input the client refused before sending anything.
type ValidationError struct {
	// Field names the offending input ("look_id", "limit").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *ValidationError) Error() string {
	return "heygen: invalid " + e.Field + ": " + e.Reason
}

// maxMessageLen caps how much of HeyGen's message is kept: enough to read,
// not enough to smuggle a whole body through.
const maxMessageLen = 512

// envelope is every body shape HeyGen has been seen to send: v3 and v2
// envelopes ({data, error} with error an object, a string or null) and the
// flat v1 auth-layer shape ({code, message}, code a string or a number).
type envelope struct {
	Data      rawRef          `json:"data"`
	Error     json.RawMessage `json:"error"`
	Code      json.RawMessage `json:"code"`
	Message   *string         `json:"message"`
	HasMore   bool            `json:"has_more"`
	NextToken *string         `json:"next_token"`
}

type errorObject struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Param   string          `json:"param"`
}

// v1SuccessCode is the flat code old HeyGen endpoints sent on success.
const v1SuccessCode = "100"

// decodeEnvelope decodes body and reports HeyGen's failure, if the body
// says there was one, as (code, message, param, failed). ok is false when
// the body is not a JSON object at all.
func decodeEnvelope(body []byte) (env envelope, code, message, param string, failed, ok bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return env, "", "", "", false, false
	}
	if err := json.Unmarshal(trimmed, &env); err != nil {
		return env, "", "", "", false, false
	}
	if isNonNull(env.Error) {
		switch env.Error[0] {
		case '{':
			var obj errorObject
			if err := json.Unmarshal(env.Error, &obj); err == nil {
				code, message, param = rawCode(obj.Code), obj.Message, obj.Param
			}
		case '"':
			_ = json.Unmarshal(env.Error, &message)
		default:
			message = string(env.Error)
		}
		return env, code, message, param, true, true
	}
	if c := rawCode(env.Code); c != "" {
		code = c
		if env.Message != nil {
			message = *env.Message
		}
		// A flat code means failure unless it is v1's success code or data came with it.
		failed = c != v1SuccessCode && !isNonNull(env.Data)
	} else if env.Message != nil {
		message = *env.Message
	}
	return env, code, message, "", failed, true
}

func isNonNull(raw []byte) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// rawRef is a JSON value left undecoded, as a slice of the body it came
// from (json.RawMessage copies it): the body outlives it (see [body]).
type rawRef []byte

// UnmarshalJSON keeps b, a slice of the decoded input.
func (r *rawRef) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// bodies recycles response body buffers. A crawl reads a thousand pages of
// tens of kilobytes each; reading each into a new, doubling slice, then
// copying its data out, was most of what a crawl allocated. A bounded free
// list, not a sync.Pool: every garbage collection empties a pool, several
// times a crawl.
var bodies = make(chan *bytes.Buffer, 16)

// maxPooledBody is the largest buffer kept for reuse (16 of them at most
// stay allocated).
const maxPooledBody = 256 << 10

// body is a response body read into a recycled buffer.
type body struct{ buf *bytes.Buffer }

func readBody(r io.Reader, sizeHint, maxBytes int64) (body, error) {
	var b body
	select {
	case b.buf = <-bodies:
		b.buf.Reset()
	default:
		b.buf = new(bytes.Buffer)
	}
	if sizeHint > 0 && sizeHint <= maxBytes {
		b.buf.Grow(int(sizeHint))
	}
	_, err := b.buf.ReadFrom(io.LimitReader(r, maxBytes+1))
	return b, err
}

func (b body) bytes() []byte { return b.buf.Bytes() }

// release returns the buffer for reuse: nothing may use the body, or
// anything sliced from it (an envelope's Data), afterwards.
func (b body) release() {
	if b.buf != nil && b.buf.Cap() <= maxPooledBody {
		select {
		case bodies <- b.buf:
		default:
		}
	}
}

// rawCode renders a JSON code, string or number, as a string.
func rawCode(raw json.RawMessage) string {
	if !isNonNull(raw) {
		return ""
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) == nil {
			return strings.TrimSpace(s)
		}
		return ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// cleanMessage makes HeyGen's message safe to show and log (see
// cleanField), marking a cut with an ellipsis.
func cleanMessage(s string, redact func(string) string) string {
	c := cleanText(s, redact)
	if len(c) > maxMessageLen {
		c = truncate(c, maxMessageLen) + "…"
	}
	return c
}

var (
	keyRejectedCodes = codeSet("unauthorized", "invalid_api_key", "40009", "400112", "401056", "401057")
	permissionCodes  = codeSet("forbidden", "resource_access_denied", "permission_denied", "400562", "400573", "400599", "400631")
	rateLimitCodes   = codeSet("rate_limit_exceeded", "quota_exceeded", "too_many_requests", "400123")
	creditCodes      = codeSet("insufficient_credit")
	invalidCodes     = codeSet("invalid_parameter", "invalid_request", "validation_error", "40001", "400175")
	unavailableCodes = codeSet("timeout", "service_unavailable")
)

func codeSet(codes ...string) map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// kindOfCode classifies HeyGen's code alone; ok is false for codes that do
// not say what went wrong by themselves (internal_error, conflict, unknown).
func kindOfCode(code string) (Kind, bool) {
	c := strings.ToLower(code)
	switch {
	case c == "":
		return 0, false
	case keyRejectedCodes[c]:
		return KindKeyRejected, true
	case permissionCodes[c]:
		return KindPermissionDenied, true
	case c == "not_found" || strings.HasSuffix(c, "_not_found"):
		return KindNotFound, true
	case rateLimitCodes[c]:
		return KindRateLimited, true
	case creditCodes[c]:
		return KindInsufficientCredit, true
	case invalidCodes[c]:
		return KindInvalidArgument, true
	case unavailableCodes[c]:
		return KindUnavailable, true
	case c == "request_in_progress":
		return KindInProgress, true
	case c == "payload_too_large":
		return KindPayloadTooLarge, true
	}
	return 0, false
}

// Classify decides what a HeyGen failure means, following the shared
// mapping table: the unambiguous statuses (401, 429) first, then HeyGen's
// code, then its message ("not found" under any status or code; a missing
// scope or a "forbidden" internal_error is a permission problem), and
// finally the HTTP status class.
func Classify(httpStatus int, code, message string) Kind {
	switch httpStatus {
	case http.StatusUnauthorized:
		return KindKeyRejected
	case http.StatusTooManyRequests:
		return KindRateLimited
	}
	if k, ok := kindOfCode(code); ok {
		return k
	}
	msg := strings.ToLower(message)
	switch {
	case strings.Contains(msg, "not found"):
		return KindNotFound
	case strings.Contains(msg, "to execute this operation"), // "missing user-read to execute this operation"
		msg == "forbidden", strings.Contains(msg, "permission denied"):
		return KindPermissionDenied
	}
	switch {
	case httpStatus == http.StatusBadRequest, httpStatus == http.StatusUnprocessableEntity:
		return KindInvalidArgument
	case httpStatus == http.StatusPaymentRequired:
		return KindInsufficientCredit
	case httpStatus == http.StatusForbidden:
		return KindPermissionDenied
	case httpStatus == http.StatusNotFound, httpStatus == http.StatusGone:
		return KindNotFound
	case httpStatus == http.StatusRequestEntityTooLarge:
		return KindPayloadTooLarge
	case httpStatus == http.StatusConflict:
		return KindConflict
	case httpStatus == http.StatusRequestTimeout, httpStatus >= 500:
		return KindUnavailable
	}
	return KindBadResponse
}

// ParseRetryAfter parses a Retry-After value, delta-seconds ("3") or an
// HTTP-date, relative to now. A date in the past is zero. Garbage, negative
// numbers and empty values report ok=false, as if the header were absent.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d = t.Sub(now); d < 0 {
		d = 0
	}
	return d, true
}

// CheckResponse reads resp's body through a cap of maxBytes and decides
// whether HeyGen succeeded: nil on success, otherwise an [*Error] whose Kind
// follows [Classify], or KindBadResponse for a redirect, a body over the
// cap, a body that is not JSON, or a 2xx whose error the mapping does not
// name. It always closes the body. It is a pure function of the response.
func CheckResponse(resp *http.Response, maxBytes int64) error {
	_, b, err := checkResponse(resp, maxBytes, nil)
	b.release()
	return err
}

// checkResponse is [CheckResponse] that also returns the decoded envelope
// and passes every string it keeps from the response through redact (nil:
// none) before cleaning and cutting it.
//
// On success the envelope's Data is a slice of the returned body: release
// the body once Data is decoded. On failure the body is released already.
func checkResponse(resp *http.Response, maxBytes int64, redact func(string) string) (envelope, body, error) {
	defer func() { _ = resp.Body.Close() }()
	e := &Error{
		HTTPStatus: resp.StatusCode,
		RequestID:  cleanField(resp.Header.Get("X-Request-Id"), 128, redact),
	}
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter, e.HasRetryAfter = d, true
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Kind = KindBadResponse
		e.Message = "unexpected redirect; redirects are never followed"
		return envelope{}, body{}, e
	}
	b, err := readBody(resp.Body, resp.ContentLength, maxBytes)
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	if err != nil {
		e.Kind, e.Cause, e.Err = KindUnavailable, TransportCause(err), redactError(fmt.Errorf("read body: %w", err), redact)
		return envelope{}, body{}, e
	}
	if int64(len(b.bytes())) > maxBytes {
		e.Kind = KindBadResponse
		e.Message = fmt.Sprintf("response body exceeds the %d-byte limit", maxBytes)
		err = e
		return envelope{}, body{}, e
	}
	env, code, message, param, failed, ok := decodeEnvelope(b.bytes())
	success := resp.StatusCode >= 200 && resp.StatusCode < 300
	switch {
	case !ok && success:
		e.Kind, e.Message = KindBadResponse, "response body is not a JSON object"
		err = e
		return envelope{}, body{}, e
	case !ok:
		e.Kind = Classify(resp.StatusCode, "", "")
		err = e
		return envelope{}, body{}, e
	case success && !failed:
		return env, b, nil
	}
	e.Code, e.Message, e.Param = cleanField(code, 64, redact), cleanMessage(message, redact), cleanField(param, 64, redact)
	// Classify what HeyGen said, before anything was cut from it.
	e.Kind = Classify(resp.StatusCode, code, message)
	if success && e.Kind == KindUnavailable {
		// A 2xx body claiming a timeout is still a body we cannot use.
		e.Kind = KindBadResponse
	}
	err = e
	return envelope{}, body{}, e
}
