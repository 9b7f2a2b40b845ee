package fakeheygen

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Page sizes of the list endpoints, as HeyGen documents them.
const (
	DefaultLimit       = 20 // avatars, looks and voices
	MaxLimit           = 50 // avatars and looks
	MaxVoiceLimit      = 100
	DefaultVideoLimit  = 10
	MaxVideoLimit      = 100
	MaxStatusesPerCall = 100
)

// parseQuery parses the query string, answering 400 itself when it is malformed.
func parseQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		invalidParam(w, "", "Malformed query string")
		return nil, false
	}
	return q, true
}

// parseLimit reads "limit" (def when absent), answering 400 itself unless it is an
// integer in 1..maxLimit.
func parseLimit(w http.ResponseWriter, q url.Values, def, maxLimit int) (int, bool) {
	v := q.Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit || v[0] == '+' {
		invalidParam(w, "limit", fmt.Sprintf("limit must be an integer between 1 and %d", maxLimit))
		return 0, false
	}
	return n, true
}

// parseEnum reads an optional query parameter that must be one of allowed.
func parseEnum(w http.ResponseWriter, q url.Values, name string, allowed ...string) (string, bool) {
	v := q.Get(name)
	if v == "" {
		return "", true
	}
	for _, a := range allowed {
		if v == a {
			return v, true
		}
	}
	invalidParam(w, name, fmt.Sprintf("%s must be one of: %s", name, strings.Join(allowed, ", ")))
	return "", false
}

// filterHash binds a page token to the list and filters it was issued for.
func filterHash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

// maxTokenLen bounds the work spent on a token; real ones are about 30 characters.
const maxTokenLen = 128

// encodeToken makes an opaque page token: base64url of "o<position>.<filter hash>". The
// position is an offset for the static lists and a sequence number for videos.
func encodeToken(pos int, hash uint64) string {
	b := make([]byte, 0, 40)
	b = append(b, 'o')
	b = strconv.AppendInt(b, int64(pos), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, hash, 16)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseToken returns the position a token stands for (0 without a token), answering 400
// itself when the token is garbage or was issued for other filters.
func parseToken(w http.ResponseWriter, q url.Values, hash uint64) (int, bool) {
	tok := q.Get("token")
	if tok == "" {
		return 0, true
	}
	bad := func() (int, bool) {
		invalidParam(w, "token", "token is invalid or does not match the request's filters")
		return 0, false
	}
	if len(tok) > maxTokenLen {
		return bad()
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) < 4 || raw[0] != 'o' {
		return bad()
	}
	dot := bytes.IndexByte(raw, '.')
	if dot < 2 {
		return bad()
	}
	pos, err := strconv.ParseUint(string(raw[1:dot]), 10, 31)
	if err != nil {
		return bad()
	}
	h, err := strconv.ParseUint(string(raw[dot+1:]), 16, 64)
	if err != nil || h != hash {
		return bad()
	}
	return int(pos), true
}

// offsetPage cuts the page [off, off+limit) out of n items; next is the token of the
// following page, "" on the last one. An offset past the end (a token from before the
// data shrank) gives an empty last page.
func offsetPage(n, off, limit int, hash uint64) (start, end int, next string) {
	start = min(off, n)
	end = min(start+limit, n)
	if end < n {
		next = encodeToken(end, hash)
	}
	return start, end, next
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
