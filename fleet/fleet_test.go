package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/fleet"
	"github.com/heygen-grpc/heygen-grpc/internal/redistest"
)

func open(t *testing.T, addr string, opts fleet.Options) *fleet.Store {
	t.Helper()
	opts.URL = "redis://" + addr
	s, err := fleet.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenRefusesAPasswordInTheURL(t *testing.T) {
	for _, u := range []string{"redis://:secret@127.0.0.1:6379", "redis://user:secret@127.0.0.1:6379/0"} {
		_, err := fleet.Open(fleet.Options{URL: u})
		if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "REDIS_PASSWORD") {
			t.Errorf("Open(%s): %v, want a refusal that names REDIS_PASSWORD and not the password", strings.ReplaceAll(u, "secret", "***"), err)
		}
	}
	for _, u := range []string{"http://x", "127.0.0.1:6379", "redis://"} {
		if _, err := fleet.Open(fleet.Options{URL: u}); err == nil {
			t.Errorf("Open(%q) accepted it", u)
		}
	}
}

func TestSnapshotsArePublishedCheckedAndNeverReplacedByOlderOnes(t *testing.T) {
	r := redistest.Start(t)
	a, b := open(t, r.Addr, fleet.Options{}), open(t, r.Addr, fleet.Options{})
	ctx := t.Context()
	if _, _, err := b.Load(ctx, "avatars"); !errors.Is(err, catalogue.ErrNoSharedSnapshot) {
		t.Fatalf("Load before any publish: %v, want ErrNoSharedSnapshot", err)
	}
	t1 := time.Unix(1_800_000_000, 123)
	if err := a.Publish(ctx, "avatars", t1, []byte("first")); err != nil {
		t.Fatal(err)
	}
	built, payload, err := b.Load(ctx, "avatars")
	if err != nil || !built.Equal(t1) || string(payload) != "first" {
		t.Fatalf("Load = %v, %q, %v", built, payload, err)
	}
	if err := b.Publish(ctx, "avatars", t1.Add(-time.Minute), []byte("older")); err != nil {
		t.Fatal(err)
	}
	if _, payload, _ := a.Load(ctx, "avatars"); string(payload) != "first" {
		t.Fatalf("an older snapshot replaced a newer one: %q", payload)
	}
	// A corrupted value is refused.
	r.Command(t, "SETRANGE", "heygen-grpc:catalogue:avatars:snapshot", "45", "X")
	if _, _, err := a.Load(ctx, "avatars"); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Load of a corrupted snapshot: %v, want a checksum error", err)
	}
}

func TestOneReplicaHoldsTheLease(t *testing.T) {
	r := redistest.Start(t)
	a, b := open(t, r.Addr, fleet.Options{}), open(t, r.Addr, fleet.Options{})
	release, ok, err := a.Lease(t.Context(), "avatars", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lease: %v %v", ok, err)
	}
	if _, ok, err := b.Lease(t.Context(), "avatars", time.Minute); err != nil || ok {
		t.Fatalf("second replica got the lease while the first held it: %v %v", ok, err)
	}
	release()
	if _, ok, err := b.Lease(t.Context(), "avatars", time.Minute); err != nil || !ok {
		t.Fatalf("lease after release: %v %v", ok, err)
	}
}

// TestRateLimitsHoldAcrossTheFleet: three replicas, one caller with a
// limit of L calls a second (burst L): about L get through in all.
func TestRateLimitsHoldAcrossTheFleet(t *testing.T) {
	r := redistest.Start(t)
	const limit = 20
	var stores []*fleet.Store
	for range 3 {
		// 3L checks at once open up to 3L fresh connections, and each
		// check's first EVALSHA loads the script: under the race detector
		// that can take more than the 100 ms default. This test is about the
		// limit, not the timeout (TestStoreNoticesRedisGoingAndComing is
		// about failing fast while Redis is gone).
		stores = append(stores, open(t, r.Addr, fleet.Options{OpTimeout: 5 * time.Second}))
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 3 * limit {
		wg.Go(func() {
			ok, _, err := stores[i%3].Allow(t.Context(), "batch", limit, limit)
			if err != nil {
				t.Error(err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	// 3L calls within a fraction of a second: the burst L, plus the few
	// the rate refills meanwhile.
	if n := allowed.Load(); n < limit || n > limit+limit/2 {
		t.Fatalf("%d of %d calls got through a fleet-wide limit of %d/s (burst %d), want about %d", n, 3*limit, limit, limit, limit)
	}
	// A fractional rate works too: 0.5/s, burst 1.
	ok1, _, _ := stores[0].Allow(t.Context(), "slow", 0.5, 1)
	ok2, wait, _ := stores[1].Allow(t.Context(), "slow", 0.5, 1)
	if !ok1 || ok2 || wait < time.Second || wait > 2*time.Second {
		t.Fatalf("0.5/s: first %v, second %v (retry after %v); want allowed, refused for about 2s", ok1, ok2, wait)
	}
}

// TestStoreNoticesRedisGoingAndComing: operations fail fast while Redis
// is down, and the store reports it back up without a restart.
func TestStoreNoticesRedisGoingAndComing(t *testing.T) {
	r := redistest.Start(t)
	var states []bool
	var mu sync.Mutex
	s := open(t, r.Addr, fleet.Options{OnState: func(up bool) { mu.Lock(); states = append(states, up); mu.Unlock() }})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go s.Run(ctx)
	waitUntil(t, s.Up, "the store to be up")
	r.Stop(t)
	start := time.Now()
	if _, _, err := s.Allow(t.Context(), "c", 1, 1); err == nil {
		t.Fatal("Allow succeeded with Redis stopped")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("an operation with Redis down took %v: it must fail fast", took)
	}
	waitUntil(t, func() bool { return !s.Up() }, "the store to notice Redis is down")
	r.Restart(t)
	waitUntil(t, s.Up, "the store to notice Redis is back")
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(states) != "[true false true]" {
		t.Fatalf("state changes %v, want [true false true]", states)
	}
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
