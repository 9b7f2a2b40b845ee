package catalogue

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// Page tokens are opaque to callers. Inside: a version, the list they
// belong to (a resource's kind byte, upper case for catalogue pages, lower
// case for pages passed through to HeyGen, whose payloads differ), a
// fingerprint of the filters they were issued for, and a payload (the last
// id returned, or HeyGen's own next token), sealed with a checksum. The
// checksum catches corrupted or edited tokens; it is not a secret, so
// tokens stay valid across replicas and restarts, and a forged token can
// only ask for what the caller could ask anyway.
const (
	tokenVersion     = 2
	maxPageTokenLen  = 4096
	tokenHeaderLen   = 1 + 1 + 8 // version, list kind, filter fingerprint
	tokenChecksumLen = 8
)

var (
	errBadToken = errors.New("page_token is malformed or was not issued by this service")
	// errOldToken: a token of an earlier version of the gateway.
	errOldToken = errors.New("page_token was issued by an earlier version of the gateway; start again without a token")
	// errTokenFilters reports a token reused with other filters.
	errTokenFilters = errors.New("page_token was issued for different filters; repeat the first request's filters or start again without a token")
)

// FilterKey joins a list's name and filter values into the canonical
// string a page token is bound to. NUL separates the parts, so no value
// can run into the next.
func FilterKey(list string, parts ...string) string {
	var b strings.Builder
	b.WriteString(list)
	for _, p := range parts {
		b.WriteByte(0)
		b.WriteString(p)
	}
	return b.String()
}

func fingerprint(filterKey string) uint64 {
	slot := &fingerprints[maphash.String(fingerprintSeed, filterKey)%uint64(len(fingerprints))]
	if e := slot.Load(); e != nil && e.key == filterKey {
		return e.fp
	}
	sum := sha256.Sum256([]byte(filterKey))
	fp := binary.BigEndian.Uint64(sum[:8])
	slot.Store(&fingerprinted{key: filterKey, fp: fp})
	return fp
}

// fingerprints remembers the fingerprints of recent filter keys in a
// fixed table (a slot per hash; a newer key replaces an older one): most
// lists are asked with one of a few filters, no filter above all, and a
// sha256 on every list call was a tenth of the handler's time.
var (
	fingerprints    [512]atomic.Pointer[fingerprinted]
	fingerprintSeed = maphash.MakeSeed()
)

type fingerprinted struct {
	key string
	fp  uint64
}

// EncodeToken seals payload for the list kind and filter key.
func EncodeToken(kind byte, filterKey string, payload []byte) string {
	fp := fingerprint(filterKey)
	slot := &issued[(maphash.Bytes(fingerprintSeed, payload)^fp^uint64(kind))%uint64(len(issued))]
	if e := slot.Load(); e != nil && e.kind == kind && e.fp == fp && e.payload == string(payload) {
		return e.token
	}
	token := encodeToken(kind, fp, payload)
	slot.Store(&issuedToken{kind: kind, fp: fp, payload: string(payload), token: token})
	return token
}

// issued remembers recently issued tokens in a fixed table, as
// fingerprints does: a page's next token is the same for every caller
// that reads that page of a snapshot (the first page above all), and
// sealing one (a sha256, base64 and two allocations) was a sixth of a
// cached list's handler time.
var issued [512]atomic.Pointer[issuedToken]

type issuedToken struct {
	kind           byte
	fp             uint64
	payload, token string
}

func encodeToken(kind byte, fp uint64, payload []byte) string {
	buf := make([]byte, 0, tokenHeaderLen+len(payload)+tokenChecksumLen)
	buf = append(buf, tokenVersion, kind)
	buf = binary.BigEndian.AppendUint64(buf, fp)
	buf = append(buf, payload...)
	sum := sha256.Sum256(buf)
	buf = append(buf, sum[:tokenChecksumLen]...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// DecodeToken opens a token for the list kind and filter key and returns
// its payload, which is never empty. Errors are *FieldError for page_token.
func DecodeToken(token string, kind byte, filterKey string) ([]byte, error) {
	payload, err := decodeToken(token, kind, fingerprint(filterKey))
	if err != nil {
		return nil, &FieldError{Field: "page_token", Reason: err.Error()}
	}
	return payload, nil
}

// decodeToken opens a token for the list kind and filter fingerprint.
func decodeToken(token string, kind byte, fp uint64) ([]byte, error) {
	if len(token) > maxPageTokenLen {
		return nil, errBadToken
	}
	buf, err := base64.RawURLEncoding.DecodeString(token)
	// The decoder skips \r and \n and ignores the unused bits of the last
	// character: insist on the one canonical spelling of the bytes.
	if err != nil || len(buf) < tokenHeaderLen+tokenChecksumLen || base64.RawURLEncoding.EncodeToString(buf) != token {
		return nil, errBadToken
	}
	body, sum := buf[:len(buf)-tokenChecksumLen], buf[len(buf)-tokenChecksumLen:]
	want := sha256.Sum256(body)
	switch {
	case string(sum) != string(want[:tokenChecksumLen]):
		return nil, errBadToken
	case body[0] != tokenVersion && body[0] < tokenVersion:
		return nil, errOldToken
	case body[0] != tokenVersion || body[1] != kind:
		return nil, errBadToken
	case binary.BigEndian.Uint64(body[2:10]) != fp:
		return nil, errTokenFilters
	case len(body) == tokenHeaderLen:
		return nil, errBadToken
	}
	return body[tokenHeaderLen:], nil
}
