package catalogue_test

// Tests of the catalogue against a real HTTP fake of HeyGen, through the
// real client: what a misbehaving HeyGen can make a crawl do, and how many
// requests reach HeyGen when callers pile up.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

// idOf reads a listed avatar's id: listed items are pre-encoded, so their
// getters are empty until decoded.
func idOf(t *testing.T, a *heygenv1.Avatar) string {
	t.Helper()
	b, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back heygenv1.Avatar
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back.GetId()
}

const testKey = "sk-CANARY-catalogue-test-key-0123456789"

type env struct {
	fake   *fakeheygen.Server
	faults *faults.Injector
	client *heygen.Client
	obs    *observer
}

// observer records crawl outcomes.
type observer struct {
	mu   sync.Mutex
	last map[string]catalogue.Refresh
}

func (o *observer) Refreshed(resource string, r catalogue.Refresh) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last[resource] = r
}

func (o *observer) get(resource string) catalogue.Refresh {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last[resource]
}

func newEnv(t *testing.T, cat fakeheygen.Catalogue) *env {
	t.Helper()
	inj := faults.New()
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: testKey, Catalogue: cat, Middleware: inj.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: testKey,
		Retry: heygen.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}, Breaker: heygen.BreakerPolicy{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &env{fake: fake, faults: inj, client: client, obs: &observer{last: map[string]catalogue.Refresh{}}}
}

func (e *env) set(opts catalogue.Options) *catalogue.Set {
	opts.Observer = e.obs
	return catalogue.New(e.client, opts)
}

// loopingPage is a list page that always points to the same next page.
const loopingPage = `{"data":[],"has_more":true,"next_token":"again"}`

func TestCrawlStopsOnALoopingTokenAndKeepsTheLastSnapshot(t *testing.T) {
	e := newEnv(t, fakeheygen.DemoCatalogue())
	set := e.set(catalogue.Options{})
	if err := set.Avatars.Refresh(t.Context()); err != nil {
		t.Fatalf("first crawl: %v", err)
	}
	good := set.Avatars.Snapshot()
	e.fake.ResetRequests()
	e.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 200, Body: loopingPage})
	err := set.Avatars.Refresh(t.Context())
	var berr *catalogue.BoundError
	if !errors.As(err, &berr) || berr.Reason != catalogue.ReasonLoopingToken {
		t.Fatalf("crawl of a looping list: %v, want a looping_token BoundError", err)
	}
	// Each partition sees the token twice at most: the first page gives
	// it, the second repeats it.
	if n := e.fake.CountPath("/v3/avatars/looks"); n > 2*2 {
		t.Fatalf("the looping crawl sent %d requests, want at most 4 (2 partitions x 2 pages)", n)
	}
	if set.Avatars.Snapshot() != good || !set.Avatars.Usable() {
		t.Fatal("the last good snapshot was not kept")
	}
	if r := e.obs.get("avatars"); r.Reason != catalogue.ReasonLoopingToken || r.Items != good.Len() {
		t.Fatalf("observer got %+v, want reason %s and the serving snapshot's %d items", r, catalogue.ReasonLoopingToken, good.Len())
	}
}

func TestCrawlBoundsPagesAndItems(t *testing.T) {
	e := newEnv(t, fakeheygen.GenerateCatalogue(7, 20, 10)) // 200 looks: 4 pages of 50 per ownership at most
	for _, tc := range []struct {
		name   string
		opts   catalogue.Options
		reason string
	}{
		{"pages", catalogue.Options{MaxPages: 1}, catalogue.ReasonTooManyPages},
		{"items", catalogue.Options{MaxItems: 60}, catalogue.ReasonTooManyItems},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.set(tc.opts).Avatars.Refresh(t.Context())
			var berr *catalogue.BoundError
			if !errors.As(err, &berr) || berr.Reason != tc.reason {
				t.Fatalf("got %v, want a %s BoundError", err, tc.reason)
			}
		})
	}
	if err := e.set(catalogue.Options{MaxPages: 100, MaxItems: 200}).Avatars.Refresh(t.Context()); err != nil {
		t.Fatalf("a crawl within its bounds failed: %v", err)
	}
}

// TestColdCrawlFailureIsRemembered: with no snapshot yet and HeyGen
// answering 429, a crowd of callers must not each start a crawl: the first
// crawl's failure is answered until its backoff ends, and nothing is sent.
// With the full crawl only and callers waiting for it, HeyGen sees one
// crawl's requests; by default (split crawl, cold callers passed through)
// at most the crawl bound's worth and one passed-through call, whatever
// the number of callers.
func TestColdCrawlFailureIsRemembered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    catalogue.Options
		maxSent int
	}{
		// One crawl: two partitions, each giving up after its first attempt
		// (the 3 s Retry-After is beyond the client's 10 ms cap, so at most
		// 3 attempts each).
		{"full crawl, callers wait", catalogue.Options{NoSplitCrawl: true, ColdPassThrough: -1}, 2 * 3},
		// The split crawl's partitions fail side by side, at most the bound
		// on a crawl's calls at once, 3 attempts each; the callers' one
		// coalesced pass-through call, 3 attempts, stops the pass-through.
		{"defaults", catalogue.Options{}, catalogue.DefaultCrawlConcurrency*3 + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fakeheygen.DemoCatalogue())
			e.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 429, Header: map[string]string{"Retry-After": "3"},
				Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down")})
			set := e.set(tc.opts)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for range 300 {
				wg.Go(func() {
					_, err := set.Avatars.List(ctx, catalogue.AvatarFilter{}, "", 10)
					var cerr *catalogue.ColdError
					var herr *heygen.Error
					switch {
					case errors.As(err, &cerr) && errors.As(err, &herr) && herr.Kind == heygen.KindRateLimited && cerr.RetryAfter > 2*time.Second:
					case tc.opts.ColdPassThrough >= 0 && !errors.As(err, &cerr) && errors.As(err, &herr) && herr.Kind == heygen.KindRateLimited &&
						herr.HasRetryAfter && herr.RetryAfter > 2*time.Second:
						// Passed through to HeyGen while the crawl ran: HeyGen's own answer.
					default:
						t.Errorf("cold List during a 429 storm: %v, want the rate limit, retry after about 3s", err)
					}
				})
			}
			wg.Wait()
			sent := e.fake.CountPath("/v3/avatars/looks")
			if sent == 0 || sent > tc.maxSent {
				t.Fatalf("300 cold callers sent %d requests to HeyGen, want one crawl's (1 to %d)", sent, tc.maxSent)
			}
			if set.Avatars.Crawls() != 1 {
				t.Fatalf("%d crawls started, want 1", set.Avatars.Crawls())
			}
			before := e.fake.RequestCount()
			if tc.opts.NoSplitCrawl && before != sent {
				t.Fatalf("the crawl sent %d requests besides its look pages", before-sent)
			}
			if _, _, err := set.Avatars.Get(ctx, "Abigail_expressive_2024112501"); !errors.As(err, new(*catalogue.ColdError)) {
				t.Fatalf("a Get during the backoff: %v, want the crawl's error", err)
			}
			if _, err := set.Avatars.List(ctx, catalogue.AvatarFilter{}, "", 10); !errors.As(err, new(*catalogue.ColdError)) {
				t.Fatalf("a List during the backoff: %v, want the crawl's error", err)
			}
			if n := e.fake.RequestCount(); n != before {
				t.Fatalf("calls during the backoff sent %d more requests", n-before)
			}
		})
	}
}

// TestMissesAreCoalescedAndRemembered: thousands of lookups of one unknown
// id make one HeyGen call, and NOT_FOUND is remembered for NotFoundTTL.
func TestMissesAreCoalescedAndRemembered(t *testing.T) {
	e := newEnv(t, fakeheygen.DemoCatalogue())
	e.faults.Inject(faults.Fault{Path: "/v3/avatars/looks/no_such_look", Delay: 100 * time.Millisecond}) // callers pile up
	set := e.set(catalogue.Options{NotFoundTTL: 500 * time.Millisecond})
	if err := set.Avatars.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	const path = "/v3/avatars/looks/no_such_look"
	lookup := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				_, _, err := set.Avatars.Get(t.Context(), "no_such_look")
				var herr *heygen.Error
				if !errors.As(err, &herr) || herr.Kind != heygen.KindNotFound {
					t.Errorf("Get(unknown) = %v, want NOT_FOUND", err)
				}
			})
		}
		wg.Wait()
	}
	lookup(5000)
	if n := e.fake.CountPath(path); n != 1 {
		t.Fatalf("5,000 concurrent lookups of one unknown id sent %d requests, want 1", n)
	}
	lookup(1000)
	if n := e.fake.CountPath(path); n != 1 {
		t.Fatalf("lookups within the NOT_FOUND TTL sent %d requests in all, want still 1", n)
	}
	time.Sleep(600 * time.Millisecond)
	lookup(10)
	if n := e.fake.CountPath(path); n != 2 {
		t.Fatalf("after the TTL: %d requests in all, want 2", n)
	}
}

// TestALookupThatArrivesAsTheFlightEnds: a caller that found no remembered
// answer, then joined the lookups just after another caller's lookup of the
// same id ended, must take that lookup's answer, not make a second HeyGen
// call. Seen in CI under -race: 5,000 lookups sent 2 requests, because a
// starved caller sat between the two steps for the whole first lookup.
func TestALookupThatArrivesAsTheFlightEnds(t *testing.T) {
	e, set, extra := crawledThenALookAdded(t, catalogue.Options{NotFoundTTL: time.Minute})
	for _, id := range []string{"no_such_look", extra.ID} {
		var started atomic.Bool
		catalogue.SetLookupHook(t, func(string) {
			// The first caller, between its check and its lookup: another
			// caller makes the whole lookup and its answer is remembered.
			if !started.CompareAndSwap(false, true) {
				return
			}
			if _, _, err := set.Avatars.Get(t.Context(), id); err != nil && id == extra.ID {
				t.Errorf("Get(%s) = %v", id, err)
			}
		})
		_, _, err := set.Avatars.Get(t.Context(), id)
		var herr *heygen.Error
		if id == extra.ID && err != nil {
			t.Fatalf("Get(%s) = %v, want the look", id, err)
		}
		if id != extra.ID && (!errors.As(err, &herr) || herr.Kind != heygen.KindNotFound) {
			t.Fatalf("Get(%s) = %v, want NOT_FOUND", id, err)
		}
		if n := e.fake.CountPath("/v3/avatars/looks/" + id); n != 1 {
			t.Fatalf("Get(%s) by a caller that arrived as another's lookup ended: %d requests, want 1", id, n)
		}
	}
}

// crawledThenALookAdded crawls the demo catalogue with opts, then adds a
// look to the fake HeyGen (extra, "created_after_the_crawl") that the
// snapshot does not hold.
func crawledThenALookAdded(t *testing.T, opts catalogue.Options) (*env, *catalogue.Set, fakeheygen.Look) {
	t.Helper()
	cat := fakeheygen.DemoCatalogue()
	e := newEnv(t, cat)
	set := e.set(opts)
	if err := set.Avatars.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	extra := cat.Looks[0]
	extra.ID = "created_after_the_crawl"
	cat.Looks = append(cat.Looks, extra)
	e.fake.SetCatalogue(cat)
	return e, set, extra
}

func TestFoundMissIsRememberedUntilTheNextCrawl(t *testing.T) {
	e, set, extra := crawledThenALookAdded(t, catalogue.Options{})
	for range 3 {
		a, meta, err := set.Avatars.Get(t.Context(), extra.ID)
		if err != nil || a.GetId() != extra.ID {
			t.Fatalf("Get(new look) = %v, %v", a, err)
		}
		_ = meta
	}
	if n := e.fake.CountPath("/v3/avatars/looks/" + extra.ID); n != 1 {
		t.Fatalf("3 lookups of a look missing from the snapshot sent %d requests, want 1", n)
	}
	_, meta, _ := set.Avatars.Get(t.Context(), fakeheygen.DemoCatalogue().Looks[0].ID)
	if meta.Source != catalogue.SourceFresh || !meta.HasAge {
		t.Fatalf("a snapshot hit reports %+v, want catalogue-fresh with an age", meta)
	}
	if err := set.Avatars.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := set.Avatars.Snapshot().Get(extra.ID); !ok {
		t.Fatal("the next crawl does not hold the new look")
	}
}

// TestPagingThroughARefresh: keyset tokens hold the last id, so paging
// across a new snapshot gives no duplicates and no gaps.
func TestPagingThroughARefresh(t *testing.T) {
	cat := fakeheygen.DemoCatalogue()
	e := newEnv(t, cat)
	set := e.set(catalogue.Options{})
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		p, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC}, token, 37)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Items {
			id := idOf(t, a)
			if seen[id] {
				t.Fatalf("page %d repeats %s", page, id)
			}
			seen[id] = true
		}
		if page == 2 {
			if err := set.Avatars.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if p.NextPageToken == "" {
			break
		}
		token = p.NextPageToken
	}
	want := 0
	for _, l := range cat.Looks {
		if l.Ownership == fakeheygen.OwnershipPublic {
			want++
		}
	}
	if len(seen) != want {
		t.Fatalf("paging saw %d public avatars, want %d", len(seen), want)
	}
	// A token is bound to its filters.
	p, _ := set.Avatars.List(t.Context(), catalogue.AvatarFilter{}, "", 5)
	_, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{Query: "x"}, p.NextPageToken, 5)
	var ferr *catalogue.FieldError
	if !errors.As(err, &ferr) || ferr.Field != "page_token" || !strings.Contains(ferr.Reason, "different filters") {
		t.Fatalf("a token reused with other filters: %v", err)
	}
}
