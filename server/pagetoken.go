package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Page tokens are opaque to callers. Inside: a version, the list they
// belong to, a fingerprint of the filters they were issued for, and a
// payload (HeyGen's own next token in pass-through mode), sealed with a
// checksum. The checksum catches corrupted or edited tokens; it is not a
// secret, so tokens stay valid across replicas and restarts, and a forged
// token can only ask HeyGen for what the caller could ask anyway.
const (
	tokenVersion     = 1
	maxPageTokenLen  = 4096
	tokenHeaderLen   = 1 + 1 + 8 // version, list kind, filter fingerprint
	tokenChecksumLen = 8
)

// List kinds a token can belong to.
const (
	listAvatars      byte = 'a'
	listAvatarGroups byte = 'g'
)

var errBadToken = errors.New("page_token is malformed or was not issued by this service")

// filterFingerprint hashes a list's canonical filter description.
func filterFingerprint(canonical string) uint64 {
	sum := sha256.Sum256([]byte(canonical))
	return binary.BigEndian.Uint64(sum[:8])
}

// encodePageToken seals payload for the given list and filters.
func encodePageToken(kind byte, filters uint64, payload []byte) string {
	buf := make([]byte, 0, tokenHeaderLen+len(payload)+tokenChecksumLen)
	buf = append(buf, tokenVersion, kind)
	buf = binary.BigEndian.AppendUint64(buf, filters)
	buf = append(buf, payload...)
	sum := sha256.Sum256(buf)
	buf = append(buf, sum[:tokenChecksumLen]...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// errTokenFilters reports a token reused with other filters.
var errTokenFilters = errors.New("page_token was issued for different filters; repeat the first request's filters or start again without a token")

// decodePageToken opens a token for the given list and filters and
// returns its payload.
func decodePageToken(token string, kind byte, filters uint64) ([]byte, error) {
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
	if string(sum) != string(want[:tokenChecksumLen]) || body[0] != tokenVersion || body[1] != kind {
		return nil, errBadToken
	}
	if binary.BigEndian.Uint64(body[2:10]) != filters {
		return nil, errTokenFilters
	}
	return body[tokenHeaderLen:], nil
}
