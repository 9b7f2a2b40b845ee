package server_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/catalogue"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

// TestFaultSuiteHostile: the hostile cases of the fault suite, each run
// against a fresh gateway and counted: how many requests reached HeyGen,
// how many answers or log lines carried the key, and, at the end, the
// test process's peak memory and any goroutine left behind.
func TestFaultSuiteHostile(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	leaks := func(h *harness, errs []error) int {
		n := 0
		for _, err := range errs {
			if st, ok := status.FromError(err); ok && strings.Contains(st.Message()+prototext.Format(st.Proto()), canaryKey) {
				n++
			}
		}
		if strings.Contains(h.logs.String(), canaryKey) {
			n++
		}
		return n
	}
	calls := func(n int, f func() error) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = f() })
		}
		wg.Wait()
		return errs
	}
	report := func(t *testing.T, name string, requests, leaked int, extra string) {
		t.Helper()
		t.Logf("fault suite: %-13s upstream requests %4d, key leaks %d%s", name, requests, leaked, extra)
		if leaked > 0 {
			t.Errorf("%s: the key leaked %d times", name, leaked)
		}
	}

	t.Run("key echo", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, retry: heygen.RetryPolicy{MaxAttempts: 2}})
		var errs []error
		for _, f := range []faults.Fault{faults.EchoKey(400), faults.EchoKey(429), faults.EchoKey(503), {Raw: faults.APIKeyPlaceholder + "\r\n\r\n"}} {
			f.Path = "/v3/avatars/looks/*"
			h.faults.ClearFaults()
			h.faults.Inject(f)
			errs = append(errs, calls(50, func() error {
				_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "Abigail_expressive_2024112501"})
				return err
			})...)
		}
		report(t, "key echo", h.fake.RequestCount(), leaks(h, errs), ", "+strconv.Itoa(len(errs))+" calls")
	})

	t.Run("looping token", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, withCatalogue: true, catalogueOpts: catalogue.Options{ColdPassThrough: -1, NoSplitCrawl: true}})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 200, Body: `{"data":[],"has_more":true,"next_token":"again"}`})
		errs := calls(100, func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
			return err
		})
		for _, err := range errs {
			if status.Code(err) != codes.Internal {
				t.Fatalf("a cold call during a looping crawl: %v, want INTERNAL HEYGEN_BAD_RESPONSE", err)
			}
		}
		n := h.fake.CountPath("/v3/avatars/looks")
		report(t, "looping token", n, leaks(h, errs), "")
		if n > 4 {
			t.Errorf("the looping list got %d requests, want at most 4", n)
		}
	})

	t.Run("cold 429 storm", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, withCatalogue: true, catalogueOpts: catalogue.Options{ColdPassThrough: -1, NoSplitCrawl: true}})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 429, Header: map[string]string{"Retry-After": "5"},
			Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down")})
		errs := calls(300, func() error {
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
			return err
		})
		n := h.fake.CountPath("/v3/avatars/looks")
		report(t, "cold 429", n, leaks(h, errs), ", 300 calls")
		if n > 6 {
			t.Errorf("300 cold calls during a 429 storm sent %d requests, want one crawl's (at most 6)", n)
		}
	})

	// The same storm as a replica meets it by default: the cold crawl
	// split by filters, and callers passed through to HeyGen while it runs.
	// However many callers come, HeyGen sees the crawl (what a lone caller,
	// who starts it, causes) and one pass-through call (identical calls
	// share it, and the first 429 stops the pass-through until the next
	// crawl): at most heygen.DefaultMaxAttempts requests more.
	t.Run("cold 429 storm, split crawl and pass-through", func(t *testing.T) {
		storm := func(callers int) (int, int) {
			h := setup(t, setupOptions{noBackground: true, withCatalogue: true})
			h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 429, Header: map[string]string{"Retry-After": "5"},
				Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down")})
			errs := calls(callers, func() error {
				_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
				return err
			})
			return h.fake.CountPath("/v3/avatars/looks"), leaks(h, errs)
		}
		// What a lone caller causes depends on timing (whether a
		// partition's retry went out before the first 429 closed the
		// gate: 11 or 12 requests were seen): the most of three.
		one := 0
		for range 3 {
			k, _ := storm(1)
			one = max(one, k)
		}
		n, leaked := storm(300)
		report(t, "cold 429 split", n, leaked, fmt.Sprintf(", 300 calls (one call: at most %d requests in three)", one))
		if n > one+heygen.DefaultMaxAttempts {
			t.Errorf("300 cold calls during a 429 storm sent %d requests, one call %d: callers may add one pass-through call (%d attempts), no more",
				n, one, heygen.DefaultMaxAttempts)
		}
	})

	t.Run("miss storm", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, withCatalogue: true})
		if err := h.catalog.Refresh(ctx(t)); err != nil {
			t.Fatal(err)
		}
		h.fake.ResetRequests()
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks/no_such_look", Delay: 100 * time.Millisecond})
		errs := calls(5000, func() error {
			_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "no_such_look"})
			return err
		})
		n := h.fake.RequestCount()
		report(t, "miss storm", n, leaks(h, errs), ", 5000 calls")
		if n != 1 {
			t.Errorf("5,000 lookups of one unknown id sent %d requests, want 1", n)
		}
	})

	t.Run("reset replays", func(t *testing.T) {
		obs := &countingObserver{}
		h := setup(t, setupOptions{noBackground: true, observer: obs, retry: heygen.RetryPolicy{MaxAttempts: 3}})
		h.faults.SetRandom(&faults.RandomFaults{Seed: 7, RateReset: 0.3})
		var served atomic.Int64
		errs := calls(300, func() error {
			_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "Abigail_expressive_2024112501"})
			if err == nil {
				served.Add(1)
			}
			return err
		})
		n := h.fake.RequestCount()
		report(t, "reset replays", n, leaks(h, errs), ", client attempts "+strconv.FormatInt(obs.attempts.Load(), 10))
		if int64(n) != obs.attempts.Load() {
			t.Errorf("the fake received %d requests, the client made %d attempts: Go's transport resent some unseen", n, obs.attempts.Load())
		}
	})

	t.Logf("fault suite: hostile cases done; peak RSS of the test process (clients, fake and gateway together) %d MiB", peakRSSOfSelf(t)>>20)
}

// peakRSSOfSelf returns this process's peak resident set size (VmHWM).
func peakRSSOfSelf(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
