package server_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

// countingObserver counts what the client did.
type countingObserver struct {
	attempts, retries, refused atomic.Int64
}

func (o *countingObserver) Attempt(string, int, time.Duration) { o.attempts.Add(1) }
func (o *countingObserver) Retry(string, string)               { o.retries.Add(1) }
func (o *countingObserver) Refused(string, string)             { o.refused.Add(1) }
func (o *countingObserver) BreakerState(string)                {}

// TestFaultSuite: HeyGen answers with a random mix of 503s, 429s with
// Retry-After, connection resets, slow responses and malformed bodies,
// while many concurrent callers with deadlines run thousands of RPCs.
// Nothing may come back UNKNOWN, panic, overrun its deadline, exceed the
// retry budget (counted at the fake), leak goroutines or log the key.
func TestFaultSuite(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) }) // runs last
	obs := &countingObserver{}
	h := setup(t, setupOptions{
		retry:    heygen.RetryPolicy{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 150 * time.Millisecond, AttemptTimeout: 250 * time.Millisecond},
		breaker:  &heygen.BreakerPolicy{ConsecutiveFailures: 8, OpenFor: 150 * time.Millisecond},
		budget:   heygen.RetryBudget{Ratio: 0.1, MinRetries: 10, Window: 10 * time.Second},
		observer: obs,
	})
	h.faults.SetRandom(&faults.RandomFaults{
		Seed: 20261127, Rate503: 0.12, Rate429: 0.08, RetryAfter: "1", RateReset: 0.04,
		RateSlow: 0.04, SlowDelay: 400 * time.Millisecond, RateMalformed: 0.04,
	})

	const (
		callers  = 24
		perCall  = 125 // RPCs per caller: 3,000 in all
		margin   = 250 * time.Millisecond
		maxTotal = 90 * time.Second
	)
	var (
		mu        sync.Mutex
		byCode    = map[codes.Code]int{}
		overruns  int
		unknowns  int
		badDetail int
		wg        sync.WaitGroup
	)
	ids := []string{h.cat.Looks[1].ID, h.cat.Looks[50].ID, h.cat.Looks[200].ID}
	groups := []string{h.cat.Groups[0].ID, h.cat.Groups[5].ID}
	start := time.Now()
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perCall {
				if time.Since(start) > maxTotal {
					return
				}
				deadline := time.Duration(50+rng.IntN(1450)) * time.Millisecond
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				began := time.Now()
				var err error
				switch i % 4 {
				case 0:
					_, err = h.avatars.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: int32(1 + rng.IntN(50))})
				case 1:
					_, err = h.avatars.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: ids[rng.IntN(len(ids))]})
				case 2:
					_, err = h.avatars.GetAvatarGroup(ctx, &heygenv1.GetAvatarGroupRequest{GroupId: groups[rng.IntN(len(groups))]})
				case 3:
					_, err = h.avatars.ListAvatarGroups(ctx, &heygenv1.ListAvatarGroupsRequest{Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC})
				}
				took := time.Since(began)
				cancel()
				st, _ := status.FromError(err)
				ok := true
				if err != nil && st.Code() != codes.DeadlineExceeded && st.Code() != codes.Canceled {
					// Every error the gateway itself produces carries exactly one ErrorInfo.
					n := 0
					for _, d := range st.Details() {
						if strings.HasSuffix(protoName(d), "ErrorInfo") {
							n++
						}
					}
					ok = n == 1
				}
				mu.Lock()
				byCode[st.Code()]++
				if st.Code() == codes.Unknown {
					unknowns++
					t.Errorf("UNKNOWN: %v", err)
				}
				if took > deadline+margin {
					overruns++
					t.Errorf("an RPC with a %v deadline took %v", deadline, took)
				}
				if !ok {
					badDetail++
					t.Errorf("error without exactly one ErrorInfo: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	atFake := settledCount(h.fake)
	injected := h.faults.Counts()
	h.faults.SetRandom(nil)

	total := 0
	for _, n := range byCode {
		total += n
	}
	// Retries counted at the fake: every request beyond one per call that
	// was sent. The client never lets Go's transport resend a request
	// unseen (after a reset on a reused connection, say), so every request
	// the fake saw is an attempt the client counted, and resets earn no
	// allowance.
	sentCalls := int(obs.attempts.Load() - obs.retries.Load())
	retriesAtFake := atFake - sentCalls
	// The budget is a window of ten 1 s buckets; the run's retries fall in
	// disjoint budget windows (each ending at its last retry), at most one
	// per 10 buckets the run touches, each allowing 10% of its calls and at
	// least 10. Calls: one per RPC plus the health probe's.
	windows := (int(elapsed/time.Second) + 2 + 9) / 10
	allowed := int(0.1*float64(total+1)) + 10*windows
	t.Logf("fault suite: %d RPCs by %d callers in %v", total, callers, elapsed.Round(time.Millisecond))
	t.Logf("fault suite: codes %v", byCode)
	t.Logf("fault suite: fake served %d requests; faults injected %v", atFake, injected)
	t.Logf("fault suite: client attempts %d, retries %d, refused (breaker/budget) %d; retries at the fake %d, allowed %d",
		obs.attempts.Load(), obs.retries.Load(), obs.refused.Load(), retriesAtFake, allowed)
	if total < callers*perCall*9/10 {
		t.Errorf("only %d RPCs ran", total)
	}
	if atFake > int(obs.attempts.Load()) {
		t.Errorf("HeyGen received %d requests but the client made %d attempts: requests were sent unseen", atFake, obs.attempts.Load())
	}
	if retriesAtFake > allowed {
		t.Errorf("retry budget broken: %d retries reached HeyGen for %d calls, allowed %d", retriesAtFake, total, allowed)
	}
	if byCode[codes.OK] == 0 || byCode[codes.Unavailable] == 0 {
		t.Errorf("the mix did not exercise both success and failure: %v", byCode)
	}
	if strings.Contains(h.logs.String(), "panic") {
		t.Error("a panic was logged")
	}
	if unknowns+overruns+badDetail > 0 {
		t.Errorf("%d UNKNOWN, %d deadline overruns, %d bad details", unknowns, overruns, badDetail)
	}
}

func protoName(d any) string {
	if m, ok := d.(interface{ ProtoReflect() protoreflect.Message }); ok {
		return string(m.ProtoReflect().Descriptor().FullName())
	}
	return ""
}
