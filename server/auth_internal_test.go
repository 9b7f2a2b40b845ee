package server

import (
	"crypto/subtle"
	"fmt"
	"strings"
	"testing"
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
