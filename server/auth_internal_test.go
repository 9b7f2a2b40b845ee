package server

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// TestTokenLookupComparesEveryEntry: a lookup that stopped at the first
// match would take less time for callers early in the file, which tells
// an attacker how close a guess is to a real token's position. Every
// entry must be compared, whichever matches, and a miss too.
func TestTokenLookupComparesEveryEntry(t *testing.T) {
	var tokens []string
	var file strings.Builder
	for i := range 6 {
		tok, hash, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
		fmt.Fprintf(&file, "caller-%d: %s\n", i, hash)
	}
	s := NewTokenStore()
	if err := s.Apply([]byte(file.String())); err != nil {
		t.Fatal(err)
	}
	calls := 0
	s.compare = func(a, b []byte) int {
		calls++
		return subtle.ConstantTimeCompare(a, b)
	}
	for i, tok := range append(tokens, "hgt_not-a-token") {
		calls = 0
		name, ok := s.Lookup(tok)
		if want := i < len(tokens); ok != want || (ok && name != fmt.Sprintf("caller-%d", i)) {
			t.Fatalf("Lookup(token %d) = %q, %v", i, name, ok)
		}
		if calls != len(tokens) {
			t.Fatalf("Lookup of token %d compared %d entries, want all %d", i, calls, len(tokens))
		}
	}
}

// TestConnectionRemembersItsToken: a connection's second call with the
// token it authenticated with is answered from its memo (no entry
// compared); another token on the connection, a refused token, or any
// token after the callers file is reloaded is checked against the file.
// A token revoked by a reload is refused on the connection that used it.
func TestConnectionRemembersItsToken(t *testing.T) {
	tokA, hashA, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tokB, hashB, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	s := NewTokenStore()
	if err := s.Apply([]byte("a: " + hashA + "\nb: " + hashB + "\n")); err != nil {
		t.Fatal(err)
	}
	compared := 0
	s.compare = func(a, b []byte) int {
		compared++
		return subtle.ConstantTimeCompare(a, b)
	}
	auth := &Authenticator{Tokens: s}
	conn := newPeerAddr(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 4242})
	other := newPeerAddr(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 8), Port: 4243})
	call := func(addr net.Addr, token string) (string, error) {
		t.Helper()
		ctx := peer.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token)), &peer.Peer{Addr: addr})
		compared = 0
		return auth.authenticate(ctx, nil)
	}
	steps := []struct {
		what     string
		addr     net.Addr
		token    string
		caller   string // "": refused
		compares int
	}{
		{"first call", conn, tokA, "a", 2},
		{"same token, same connection", conn, tokA, "a", 0},
		{"same token, another connection", other, tokA, "a", 2},
		{"another token on the connection", conn, tokB, "b", 2},
		{"the new token again", conn, tokB, "b", 0},
		{"a token the file lacks", conn, "hgt_not-a-token", "", 2},
		{"the remembered token after a refusal", conn, tokB, "b", 0},
	}
	for _, st := range steps {
		got, err := call(st.addr, st.token)
		if (st.caller == "") != (err != nil) || got != st.caller || compared != st.compares {
			t.Fatalf("%s: caller %q, error %v, %d entries compared; want %q and %d compared", st.what, got, err, compared, st.caller, st.compares)
		}
	}
	// Revoke b: the connection that used it is refused at once.
	if err := s.Apply([]byte("a: " + hashA + "\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := call(conn, tokB); err == nil || compared != 1 {
		t.Fatalf("a revoked token on the connection that used it: caller %q, error %v, %d compared; want refused after checking the file", got, err, compared)
	}
	if got, err := call(conn, tokA); err != nil || got != "a" || compared != 1 {
		t.Fatalf("after the reload: caller %q, error %v, %d compared", got, err, compared)
	}
}

func TestConstantTimeEqual(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"", "", true}, {"hgt_x", "hgt_x", true}, {"hgt_x", "hgt_y", false}, {"hgt_x", "hgt_xx", false}, {"a", "", false}} {
		if got := constantTimeEqual(c.a, c.b); got != c.want {
			t.Errorf("constantTimeEqual(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
