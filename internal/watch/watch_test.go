package watch_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/internal/watch"
)

// write replaces a file the way Kubernetes does: a new file renamed over.
func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestFilesAppliesChangesAndKeepsTheLastGoodContent(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "one")
	write(t, b, "x")
	var applied atomic.Pointer[string]
	var changes atomic.Int64
	f := &watch.Files{What: "the test files", Paths: []string{a, b},
		Apply: func(c [][]byte) error {
			if string(c[0]) == "bad" {
				return errors.New("does not parse")
			}
			v := string(c[0]) + "+" + string(c[1])
			applied.Store(&v)
			return nil
		},
		OnChange: func() { changes.Add(1) }}
	if err := f.Load(); err != nil || *applied.Load() != "one+x" {
		t.Fatalf("Load: %v, applied %q", err, *applied.Load())
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go f.Run(ctx, 10*time.Millisecond)
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for *applied.Load() != want {
			if time.Now().After(deadline) {
				t.Fatalf("applied %q, want %q", *applied.Load(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	write(t, b, "y") // either file's change applies both
	wait("one+y")
	write(t, a, "bad")
	time.Sleep(100 * time.Millisecond)
	if got := *applied.Load(); got != "one+y" {
		t.Fatalf("a file that does not parse replaced the last good one: %q", got)
	}
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	write(t, a, "two")
	wait("two+y")
	if n := changes.Load(); n != 2 {
		t.Fatalf("OnChange ran %d times, want 2 (once per applied change)", n)
	}
	if err := (&watch.Files{What: "missing", Paths: []string{filepath.Join(dir, "none")}, Apply: func([][]byte) error { return nil }}).Load(); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
