package fakeheygen

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
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

// marshal encodes v without HTML escaping (HeyGen's URLs keep their '&').
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte("null") // not reachable for the package's own types
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// writeError writes a v3 error object; param is omitted when empty.
func writeError(w http.ResponseWriter, status int, code, message, param string) {
	writeBody(w, status, []byte(V3ErrorParam(code, message, param)))
}

func invalidParam(w http.ResponseWriter, param, message string) {
	writeError(w, http.StatusBadRequest, "invalid_parameter", message, param)
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b) //nolint:gosec // JSON built by this package, served as application/json: no HTML context
}

// bufPool recycles response buffers: list pages run to tens of kilobytes, and the
// gateway's benchmarks measure against this fake, so its allocations would skew them.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps one huge response from pinning memory in the pool.
const maxPooledBuffer = 1 << 20

func getBuf() *bytes.Buffer {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	return buf
}

func putBuf(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		bufPool.Put(buf)
	}
}

// writeData writes {"data":<item>} where item is already encoded JSON.
func writeData(w http.ResponseWriter, status int, item []byte) {
	buf := getBuf()
	defer putBuf(buf)
	buf.WriteString(`{"data":`)
	buf.Write(item)
	buf.WriteByte('}')
	writeBody(w, status, buf.Bytes())
}

// writeList writes a v3 list page of already encoded items; next "" marks the last page.
func writeList(w http.ResponseWriter, items [][]byte, next string) {
	buf := getBuf()
	defer putBuf(buf)
	buf.WriteString(`{"data":[`)
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	if next == "" {
		buf.WriteString(`],"has_more":false,"next_token":null}`)
	} else {
		buf.WriteString(`],"has_more":true,"next_token":"`)
		buf.WriteString(next)
		buf.WriteString(`"}`)
	}
	writeBody(w, http.StatusOK, buf.Bytes())
}

// truncate shortens s to at most n bytes for echoing in messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
