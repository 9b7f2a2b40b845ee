// Package watch re-reads files when their content changes: the HeyGen API
// key file, the callers file and the TLS certificate share it.
//
// Files are polled rather than watched with inotify: Kubernetes updates
// secret and config mounts by swapping a symlink to a new directory, which
// file watches easily miss, while a read every few seconds of a few
// hundred bytes costs nothing and never misses a change.
package watch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Files is a set of files applied together (a certificate and its key,
// say). Apply receives their contents, in Paths order, when any changed;
// an error keeps what was applied before.
type Files struct {
	// What names the files in log lines ("the callers file").
	What string
	// Paths are the files' paths.
	Paths []string
	// Apply parses and installs the files' contents.
	Apply func(contents [][]byte) error
	// OnChange, if set, runs after each successful Apply that followed a
	// change (not after Load).
	OnChange func()
	// Log receives reload outcomes (default: discard).
	Log *slog.Logger

	sum [sha256.Size]byte
}

// Load reads and applies the files once; its error names the file that
// failed. Call it at start-up, before Run.
func (f *Files) Load() error {
	_, err := f.reload()
	return err
}

func (f *Files) reload() (changed bool, err error) {
	contents := make([][]byte, len(f.Paths))
	h := sha256.New()
	for i, p := range f.Paths {
		b, err := os.ReadFile(p)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return false, fmt.Errorf("read %s (%s): %w", f.What, p, err)
		}
		contents[i] = b
		h.Write(b)
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	if sum == f.sum {
		return false, nil
	}
	if err := f.Apply(contents); err != nil {
		return false, err
	}
	f.sum = sum
	return true, nil
}

// Run re-reads the files every interval until ctx is done, applying them
// when their content changed and logging what happened. A file that is
// missing or does not parse is logged and the previous content stays.
func (f *Files) Run(ctx context.Context, interval time.Duration) {
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch changed, err := f.reload(); {
		case err != nil:
			log.ErrorContext(ctx, "cannot reload "+f.What+"; keeping the current one", "error", err)
		case changed:
			log.InfoContext(ctx, f.What+" reloaded", "path", f.Paths[0])
			if f.OnChange != nil {
				f.OnChange()
			}
		}
	}
}
