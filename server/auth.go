package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// AnonymousCaller names callers when caller authentication is off.
const AnonymousCaller = "anonymous"

// tokenHashPrefix marks a token hash in the callers file.
const tokenHashPrefix = "sha256:"

var callerNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// NewToken returns a new random caller token (256 bits, URL-safe) and the
// hash to put in the callers file.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	token = "hgt_" + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken returns the callers-file form of a token's hash. Tokens are
// long random strings, so a plain SHA-256 is safe: there is nothing to
// brute-force, and it keeps each check to one hash.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return tokenHashPrefix + hex.EncodeToString(sum[:])
}

// callerEntry is one line of the callers file.
type callerEntry struct {
	name string
	hash [sha256.Size]byte
}

// TokenStore holds the callers: one `caller-name: sha256:<hex>` per line
// of the callers file, # comments and blank lines allowed. Load it from
// the file with [TokenStore.Apply] (the file watcher calls it again when
// the file changes); a file that fails to parse leaves the previous
// callers in force.
type TokenStore struct {
	entries atomic.Pointer[[]callerEntry]
	// compare, when set, replaces subtle.ConstantTimeCompare: a test counts
	// its calls.
	compare func(a, b []byte) int
}

// NewTokenStore returns a store with no callers: every token is refused
// until [TokenStore.Apply] loads some.
func NewTokenStore() *TokenStore {
	s := &TokenStore{}
	s.entries.Store(&[]callerEntry{})
	return s
}

// Apply parses a callers file's content and, if it is valid, replaces the
// callers. The error names the bad line.
func (s *TokenStore) Apply(data []byte) error {
	entries, err := parseCallers(data)
	if err != nil {
		return err
	}
	s.entries.Store(&entries)
	return nil
}

// ValidCallerName reports whether name may name a caller: letters, digits,
// '.', '_' or '-', starting with a letter or digit, at most 64.
func ValidCallerName(name string) bool { return callerNamePattern.MatchString(name) }

func parseCallers(data []byte) ([]callerEntry, error) {
	var entries []callerEntry
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		name, hash = strings.TrimSpace(name), strings.TrimSpace(hash)
		if !ok || !callerNamePattern.MatchString(name) {
			return nil, fmt.Errorf("line %d: want `caller-name: sha256:<64 hex digits>` with a name of letters, digits, '.', '_' or '-'", n)
		}
		raw, err := hex.DecodeString(strings.TrimPrefix(hash, tokenHashPrefix))
		if !strings.HasPrefix(hash, tokenHashPrefix) || err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("line %d (%s): the hash must be sha256:<64 hex digits>, as printed by `heygen-grpc new-token`", n, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d: caller %s appears twice", n, name)
		}
		seen[name] = true
		e := callerEntry{name: name}
		copy(e.hash[:], raw)
		entries = append(entries, e)
	}
	return entries, sc.Err()
}

// Lookup returns the caller whose token this is. Every entry is compared,
// each in constant time, and the loop never stops early, so timing
// reveals neither how close a guess was nor which entry matched.
func (s *TokenStore) Lookup(token string) (string, bool) {
	return s.lookupIn(s.entries.Load(), token)
}

// tokenMemo is the last token a connection presented that the store
// accepted, and its caller. A connection's calls nearly always carry the
// same token, and comparing it with the memo (in constant time) costs a
// fraction of hashing it and comparing the hash with every entry (0.5 of
// the 0.9 µs authentication took in a cached GetAvatar's profile). A memo
// holds only against the entries it was checked with: after a reload of
// the callers file (a revoked token, say) the token is checked afresh.
type tokenMemo struct {
	token   string
	caller  string
	entries *[]callerEntry
}

// lookupMemo is Lookup, remembered in memo (a connection's; nil: none).
// A token the store refuses is not remembered.
func (s *TokenStore) lookupMemo(token string, memo *atomic.Pointer[tokenMemo]) (string, bool) {
	entries := s.entries.Load()
	if memo != nil {
		if m := memo.Load(); m != nil && m.entries == entries && constantTimeEqual(m.token, token) {
			return m.caller, true
		}
	}
	name, ok := s.lookupIn(entries, token)
	if ok && memo != nil {
		memo.Store(&tokenMemo{token: strings.Clone(token), caller: name, entries: entries})
	}
	return name, ok
}

// constantTimeEqual reports whether a and b are equal, in a time that
// depends on their length only: subtle.ConstantTimeCompare on strings,
// without the []byte conversions that would copy a token of more than 32
// bytes to the heap on every call.
func constantTimeEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}

// lookupIn is Lookup against one version of the entries.
func (s *TokenStore) lookupIn(list *[]callerEntry, token string) (string, bool) {
	sum := hashOf(token)
	found := ""
	entries := *list
	for i := range entries {
		var eq int
		if s.compare != nil {
			// Copies, so that only a test's hook makes them escape to the
			// heap, not the hash of every call.
			a, b := sum, entries[i].hash
			eq = s.compare(a[:], b[:])
		} else {
			eq = subtle.ConstantTimeCompare(sum[:], entries[i].hash[:])
		}
		if eq == 1 {
			found = entries[i].name
		}
	}
	return found, found != ""
}

// hashOf is sha256 of a token, without a heap copy of the usual tokens
// (this runs on every authenticated call).
func hashOf(token string) [sha256.Size]byte {
	var buf [128]byte
	if len(token) <= len(buf) {
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// Callers returns the configured caller names.
func (s *TokenStore) Callers() []string {
	var names []string
	for _, e := range *s.entries.Load() {
		names = append(names, e.name)
	}
	return names
}

// authError is a caller the gateway does not accept.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

// Authenticator decides who a caller is: by bearer token when a callers
// file is configured, else by its mTLS client certificate when
// CertIdentity is set, else everyone is AnonymousCaller.
type Authenticator struct {
	// Tokens, when set, makes a bearer token mandatory.
	Tokens *TokenStore
	// CertIdentity names callers after their verified client certificate
	// (first URI SAN, else first DNS SAN, else the subject common name).
	CertIdentity bool
}

// authenticate names the caller of a call: header is the call's incoming
// metadata when the caller has it at hand (the tap's tap.Info.Header),
// nil to read it from ctx.
func (a *Authenticator) authenticate(ctx context.Context, header metadata.MD) (string, error) {
	if a == nil {
		return AnonymousCaller, nil
	}
	if a.Tokens != nil {
		token, err := bearerToken(ctx, header)
		if err != nil {
			return "", err
		}
		var memo *atomic.Pointer[tokenMemo]
		if p, ok := peer.FromContext(ctx); ok {
			if pa, ok := p.Addr.(*peerAddr); ok {
				memo = &pa.token
			}
		}
		name, ok := a.Tokens.lookupMemo(token, memo)
		if !ok {
			return "", &authError{msg: "the bearer token is not valid for this gateway; ask its operators for a token"}
		}
		return name, nil
	}
	if a.CertIdentity {
		if name := certName(ctx); name != "" {
			return name, nil
		}
		return "", &authError{msg: "no verified client certificate; this gateway requires mutual TLS"}
	}
	return AnonymousCaller, nil
}

func bearerToken(ctx context.Context, header metadata.MD) (string, error) {
	// From the tap's header the value is read in place (grpc-go's keys are
	// lower case); from ctx, only the one key: FromIncomingContext would
	// copy all the metadata.
	var vals []string
	if header != nil {
		vals = header["authorization"]
	} else {
		vals = metadata.ValueFromIncomingContext(ctx, "authorization")
	}
	if len(vals) == 0 {
		return "", &authError{msg: "missing credentials: send `authorization: Bearer <token>` metadata"}
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", &authError{msg: "malformed authorization metadata: want `Bearer <token>`"}
	}
	return strings.TrimSpace(token), nil
}

func certName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return identityOf(info.State.VerifiedChains[0][0])
}

func identityOf(c *x509.Certificate) string {
	switch {
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}
