package catalogue

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// zeroMatchesAll checks the contract lists without filters rely on:
// Match passes every item of the snapshot for the zero filter.
func zeroMatchesAll[T, K, F any](t *testing.T, c *Cache[T, K, F]) {
	t.Helper()
	snap := c.Snapshot()
	if snap == nil || len(snap.keys) == 0 {
		t.Fatalf("%s: no snapshot to check", c.Name())
	}
	var zero F
	for i, k := range snap.keys {
		if !c.res.Filter.Match(zero, k) {
			t.Fatalf("%s: the zero filter does not match item %s, but unfiltered lists take every item", c.Name(), snap.ids[i])
		}
	}
	if c.unfiltered != c.res.Filter.Key(zero) || c.unfiltered == "" {
		t.Fatalf("%s: unfiltered key %q, want the zero filter's", c.Name(), c.unfiltered)
	}
	if !c.comparable {
		t.Fatalf("%s: its filter type cannot be compared with its zero value, so unfiltered lists build their key", c.Name())
	}
}

// TestZeroFilterMatchesEverything: lists without filters skip Match, which
// is right only while Match passes every item for the zero filter.
func TestZeroFilterMatchesEverything(t *testing.T) {
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: benchKey,
		Catalogue: fakeheygen.GenerateCatalogue(11, 40, 5), Voices: fakeheygen.GenerateVoices(11, 300)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fake.Close() }()
	client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: benchKey})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	set := New(client, Options{NoSplitCrawl: true})
	if err := set.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	zeroMatchesAll(t, set.Avatars)
	zeroMatchesAll(t, set.Groups)
	zeroMatchesAll(t, set.Voices)
}

// TestIssuedTokensAreRemembered: a remembered token is the token sealing
// would give, for any kind, filter and payload, however the table's slots
// are shared, and it decodes to its own payload only.
func TestIssuedTokensAreRemembered(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	kinds := []byte{'A', 'a', 'G', 'V'}
	keys := []string{FilterKey("avatars"), FilterKey("avatars", "g1"), FilterKey("voices", "", "en")}
	for i := range 20000 {
		kind := kinds[r.IntN(len(kinds))]
		key := keys[r.IntN(len(keys))]
		payload := []byte(fmt.Sprintf("id-%d", r.IntN(2000)))
		got := EncodeToken(kind, key, payload)
		if want := encodeToken(kind, fingerprint(key), payload); got != want {
			t.Fatalf("call %d: kind %c, key %q, payload %q: token %q, want %q", i, kind, key, payload, got, want)
		}
		back, err := DecodeToken(got, kind, key)
		if err != nil || string(back) != string(payload) {
			t.Fatalf("call %d: token decodes to %q, %v; want %q", i, back, err, payload)
		}
	}
	// Lists that share a slot of the table for the same payload (other
	// filters, another kind) take turns in it.
	slotOf := func(kind byte, key string) uint64 { return (fingerprint(key) ^ uint64(kind)) % uint64(len(issued)) }
	seen := map[uint64][2]any{}
	for n := 0; ; n++ {
		kind, key := kinds[n%len(kinds)], FilterKey("avatars", strconv.Itoa(n))
		other, ok := seen[slotOf(kind, key)]
		if !ok {
			seen[slotOf(kind, key)] = [2]any{kind, key}
			continue
		}
		payload := []byte("the same last id")
		for range 3 {
			for _, l := range [][2]any{other, {kind, key}} {
				k, fk := l[0].(byte), l[1].(string)
				if got, want := EncodeToken(k, fk, payload), encodeToken(k, fingerprint(fk), payload); got != want {
					t.Fatalf("kind %c, key %q sharing a slot: token %q, want %q", k, fk, got, want)
				}
			}
		}
		break
	}
}
