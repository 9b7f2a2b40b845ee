// Package fuzzseed keeps a package's committed fuzz seed corpora in step
// with the seed tables its tests declare: one writer and one checker,
// shared by every package that fuzzes.
package fuzzseed

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Seed is one named entry of a fuzz target's corpus: the values passed to
// the fuzz function, in order.
type Seed struct {
	Name string
	Vals []any
}

// File encodes values in the `go test fuzz v1` corpus format. It panics
// on a type the fuzz engine does not accept, which is a bug in the table.
func File(vals ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case int, int64, uint16, uint32, uint64:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		default:
			panic(fmt.Sprintf("fuzzseed.File: unsupported type %T", v))
		}
	}
	return b.Bytes()
}

// Check compares testdata/fuzz/<target>/<seed> with the tables, one error
// per missing or stale file naming the command that regenerates them. With
// FUZZ_WRITE_SEEDS set in the environment it writes the files instead.
func Check(t testing.TB, targets map[string][]Seed, regenerate string) {
	t.Helper()
	write := os.Getenv("FUZZ_WRITE_SEEDS") != ""
	for target, seeds := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			path := filepath.Join(dir, s.Name)
			want := File(s.Vals...)
			if write {
				if err := os.MkdirAll(dir, 0o750); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o600); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path) // #nosec G304 -- a path built from the test's own table
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("seed %s is missing or stale (regenerate: FUZZ_WRITE_SEEDS=1 %s): %v", path, regenerate, err)
			}
		}
	}
}
