package server

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
)

// TestFreshnessAgeIsWrittenAsTheFloatFormatting: the age header is what
// strconv.AppendFloat(age.Seconds(), 'f', 1) writes, for ages on both
// sides of every kind of boundary (halfway points, whole tenths, a
// nanosecond either side) and a million random ones, whichever age came
// before it: the reuse of the last answer's headers never shows a stale
// age.
func TestFreshnessAgeIsWrittenAsTheFloatFormatting(t *testing.T) {
	var ages []time.Duration
	for _, base := range []time.Duration{0, 100 * time.Millisecond, 42 * time.Second, 3*time.Hour + 7*time.Second, 400 * 24 * time.Hour} {
		for _, off := range []time.Duration{0, 1, -1, 50 * time.Millisecond, 50*time.Millisecond - 1, 50*time.Millisecond + 1,
			50*time.Millisecond - time.Microsecond, 50*time.Millisecond + time.Microsecond, 99 * time.Millisecond, 150 * time.Millisecond} {
			if a := base + off; a >= 0 {
				ages = append(ages, a)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		ages = append(ages, time.Duration(r.Int64N(int64(48*time.Hour))))
	}
	var f freshnessHeaders
	for i, age := range ages {
		md := f.header(catalogue.Meta{Source: catalogue.SourceFresh, Age: age, HasAge: true})
		want := strconv.FormatFloat(age.Seconds(), 'f', 1, 64)
		if got := md.Get(HeaderCatalogueAgeS); len(got) != 1 || got[0] != want {
			t.Fatalf("age %v (after %v): header %q, want %q", age, ages[max(i-1, 0)], got, want)
		}
		if got := md.Get(HeaderSource); len(got) != 1 || got[0] != string(catalogue.SourceFresh) {
			t.Fatalf("age %v: source %q", age, got)
		}
	}
	// Without an age, no age header, even right after one with an age.
	if md := f.header(catalogue.Meta{Source: catalogue.SourceHeyGen}); len(md.Get(HeaderCatalogueAgeS)) != 0 ||
		md.Get(HeaderSource)[0] != string(catalogue.SourceHeyGen) {
		t.Fatalf("an answer without an age: %v", md)
	}
	// The same source and tenth: the same metadata, not a new one.
	a := f.header(catalogue.Meta{Source: catalogue.SourceFresh, Age: 42310 * time.Millisecond, HasAge: true})
	b := f.header(catalogue.Meta{Source: catalogue.SourceFresh, Age: 42340 * time.Millisecond, HasAge: true})
	if &a[HeaderSource][0] != &b[HeaderSource][0] {
		t.Fatal("two answers 42.3 s old built their headers twice")
	}
}
