package catalogue_test

// Tests of a cold catalogue: the split crawl and the full crawl that
// checks it, the bound on HeyGen calls at once, and callers passed
// through to HeyGen while the first crawl runs.

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// flight is fake HeyGen middleware that answers every request after a
// delay and records the most requests it held at once.
type flight struct {
	delay     time.Duration
	now, peak atomic.Int64
	gate      chan struct{} // when set, requests wait for it to close
}

func (f *flight) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.now.Add(1)
		defer f.now.Add(-1)
		for p := f.peak.Load(); n > p; p = f.peak.Load() {
			if f.peak.CompareAndSwap(p, n) {
				break
			}
		}
		if f.gate != nil {
			select {
			case <-f.gate:
			case <-r.Context().Done():
				return
			}
		}
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
		next.ServeHTTP(w, r)
	})
}

// slowEnv is a fake HeyGen behind a flight recorder, with cat and voices.
type slowEnv struct {
	fake   *fakeheygen.Server
	client *heygen.Client
	flight *flight
	logs   *syncBuf
	obs    *refreshes
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// refreshes records every crawl outcome, in order.
type refreshes struct {
	mu  sync.Mutex
	got map[string][]catalogue.Refresh
}

func (r *refreshes) Refreshed(resource string, x catalogue.Refresh) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]catalogue.Refresh{}
	}
	r.got[resource] = append(r.got[resource], x)
}

func (r *refreshes) of(resource string) []catalogue.Refresh {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[resource])
}

func newSlowEnv(t *testing.T, cat fakeheygen.Catalogue, voices []fakeheygen.Voice, f *flight) *slowEnv {
	t.Helper()
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: testKey, Catalogue: cat, Voices: voices, Middleware: f.wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: testKey, Breaker: heygen.BreakerPolicy{Disabled: true},
		Retry: heygen.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &slowEnv{fake: fake, client: client, flight: f, logs: &syncBuf{}, obs: &refreshes{}}
}

func (e *slowEnv) set(opts catalogue.Options) *catalogue.Set {
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	opts.Observer = e.obs
	return catalogue.New(e.client, opts)
}

// run runs the set until the test ends.
func run(t *testing.T, set *catalogue.Set) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { set.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// fullCrawl waits until the resource's last crawl is a full one and
// returns its outcomes.
func (e *slowEnv) settled(t *testing.T, resource string) []catalogue.Refresh {
	t.Helper()
	waitFor(t, resource+" to be crawled in full", func() bool {
		rs := e.obs.of(resource)
		return len(rs) > 0 && !rs[len(rs)-1].Split && rs[len(rs)-1].Err == nil
	})
	return e.obs.of(resource)
}

// listedIDs lists every avatar of the set's snapshot, in order.
func listedIDs(t *testing.T, set *catalogue.Set) []string {
	t.Helper()
	var ids []string
	token := ""
	for {
		p, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{}, token, catalogue.MaxPageSize)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Items {
			ids = append(ids, idOf(t, a))
		}
		if token = p.NextPageToken; token == "" {
			return ids
		}
	}
}

func lookIDs(cat fakeheygen.Catalogue) []string {
	var ids []string
	for _, l := range cat.Looks {
		ids = append(ids, l.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// TestSplitCrawlMissesNothing: the split crawl slices the looks by group
// (large groups) or by ownership and avatar type (small ones); a look no
// slice selects (in no group; of a type HeyGen adds later) is missing from
// the split snapshot, and the full crawl that follows at once finds it,
// serves it and says so in the log. Voices of neither gender likewise.
func TestSplitCrawlMissesNothing(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name    string
		cat     fakeheygen.Catalogue
		odd     fakeheygen.Look // selected by no slice
		byGroup bool
	}{
		{"by group, a look in no group", fakeheygen.GenerateCatalogue(7, 20, 50),
			fakeheygen.Look{ID: "legacy_look_without_group", Name: "Legacy", AvatarType: fakeheygen.AvatarTypeStudio, Ownership: fakeheygen.OwnershipPublic}, true},
		{"by type, a look of a new type", fakeheygen.GenerateCatalogue(7, 300, 1),
			fakeheygen.Look{ID: "look_of_a_new_type", Name: "Hologram", AvatarType: "hologram", GroupID: str("zz_group"), Ownership: fakeheygen.OwnershipPrivate}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat := tc.cat
			cat.Looks = append(cat.Looks, tc.odd)
			voices := fakeheygen.GenerateVoices(3, 60)
			voices = append(voices, fakeheygen.Voice{VoiceID: "voice_of_no_gender", Name: "Robot", Language: "English", Gender: "unknown",
				Type: fakeheygen.VoiceTypePublic, Engines: []string{fakeheygen.EngineStarfish}})
			e := newSlowEnv(t, cat, voices, &flight{delay: 5 * time.Millisecond})
			set := e.set(catalogue.Options{})
			run(t, set)
			rs := e.settled(t, "avatars")
			if len(rs) != 2 || !rs[0].Split || rs[0].Err != nil || rs[1].Split {
				t.Fatalf("avatar crawls %+v, want a split crawl then a full one", rs)
			}
			all := lookIDs(cat)
			if rs[0].Items != len(all)-1 || rs[1].Items != len(all) {
				t.Errorf("split crawl %d items, full crawl %d; want %d then %d", rs[0].Items, rs[1].Items, len(all)-1, len(all))
			}
			if got := listedIDs(t, set); !slices.Equal(got, all) {
				t.Errorf("after the full crawl the catalogue lists %d looks, want all %d", len(got), len(all))
			}
			if _, _, err := set.Avatars.Get(t.Context(), tc.odd.ID); err != nil {
				t.Errorf("GetAvatar(%s): %v", tc.odd.ID, err)
			}
			// The slices were the ones expected: HeyGen saw one look list per
			// group, or none with a group filter.
			byGroup := 0
			for _, r := range e.fake.Requests() {
				if r.Path == "/v3/avatars/looks" && strings.Contains(r.RawQuery, "group_id=") {
					byGroup++
				}
			}
			if tc.byGroup != (byGroup > 0) {
				t.Errorf("%d look lists by group; want the split by group: %v", byGroup, tc.byGroup)
			}
			vs := e.settled(t, "voices")
			if !vs[0].Split || vs[0].Items != len(voices)-1 || vs[len(vs)-1].Items != len(voices) {
				t.Errorf("voice crawls %+v: want the split one to miss the voice of no gender, the full one to find it", vs)
			}
			logs := e.logs.String()
			for _, want := range []string{tc.odd.ID, "voice_of_no_gender"} {
				if !strings.Contains(logs, "the split crawl of the cold catalogue missed") || !strings.Contains(logs, want) {
					t.Errorf("the log does not report that the split crawl missed %s:\n%s", want, logs)
				}
			}
		})
	}
}

// TestCrawlsStayWithinTheirBound: every crawl of a cold catalogue (looks,
// groups, voices and their details, split and full) together never makes
// more HeyGen calls at once than CrawlConcurrency.
func TestCrawlsStayWithinTheirBound(t *testing.T) {
	f := &flight{delay: 15 * time.Millisecond}
	e := newSlowEnv(t, fakeheygen.GenerateCatalogue(7, 40, 60), fakeheygen.GenerateVoices(5, 400), f)
	set := e.set(catalogue.Options{CrawlConcurrency: 5, ColdPassThrough: -1})
	run(t, set)
	for _, r := range []string{"avatars", "avatar_groups", "voices"} {
		e.settled(t, r)
	}
	if p := f.peak.Load(); p > 5 || p < 4 {
		t.Errorf("the crawls made up to %d HeyGen calls at once, want at most the bound, 5 (and to use it)", p)
	}
	var calls int
	for _, r := range []string{"avatars", "avatar_groups", "voices"} {
		for _, x := range e.obs.of(r) {
			calls += x.Calls
		}
	}
	if n := e.fake.RequestCount(); calls != n {
		t.Errorf("the crawls counted %d HeyGen calls, the fake received %d", calls, n)
	}
}

// TestColdCallersArePassedThrough: while a cold catalogue's first crawl
// runs, a list HeyGen can filter is answered from HeyGen at once (one call
// for every caller asking the same page), its next page continues there
// even once the snapshot serves, a get is asked of HeyGen, and a filter
// only the catalogue applies waits for the crawl. No more calls than
// ColdPassThrough are passed through at once.
func TestColdCallersArePassedThrough(t *testing.T) {
	f := &flight{delay: 2 * time.Millisecond, gate: make(chan struct{})}
	cat := fakeheygen.GenerateCatalogue(7, 20, 20)
	e := newSlowEnv(t, cat, nil, f)
	set := e.set(catalogue.Options{ColdPassThrough: 2})
	// The crawl is held at the gate; passed-through calls are not (they
	// ask with page sizes the crawl never uses).
	go func() { _ = set.Avatars.Refresh(context.Background()) }()
	waitFor(t, "the crawl to start", set.Avatars.PassingThrough)
	var wg sync.WaitGroup
	results := make(chan *catalogue.Page[*heygenv1.Avatar], 50)
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			p, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC}, "", 7)
			if err != nil {
				errs <- err
				return
			}
			results <- p
		})
	}
	// Open the gate for the passed-through call only: it is the one
	// request with limit=7.
	waitFor(t, "the passed-through call", func() bool {
		for _, r := range e.fake.Requests() {
			if strings.Contains(r.RawQuery, "limit=7") {
				return true
			}
		}
		return false
	})
	close(f.gate)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var first *catalogue.Page[*heygenv1.Avatar]
	for p := range results {
		first = p
		if p.Meta.Source != catalogue.SourceHeyGen || len(p.Items) != 7 || p.NextPageToken == "" {
			t.Fatalf("a cold list: source %s, %d items, next %q; want HeyGen's first page of 7 and a next page", p.Meta.Source, len(p.Items), p.NextPageToken)
		}
	}
	passed := 0
	for _, r := range e.fake.Requests() {
		if strings.Contains(r.RawQuery, "limit=7") {
			passed++
		}
	}
	if passed < 1 || passed > 2 {
		t.Errorf("50 cold callers asking one page made %d calls to HeyGen, want them to share (1, or 2 if the crawl outlasted the first)", passed)
	}
	waitFor(t, "the snapshot", set.Avatars.Usable)
	// The list continues at HeyGen, in HeyGen's order, with no duplicate.
	next, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC}, first.NextPageToken, 7)
	if err != nil {
		t.Fatal(err)
	}
	if next.Meta.Source != catalogue.SourceHeyGen || len(next.Items) != 7 || idOf(t, next.Items[0]) == idOf(t, first.Items[0]) {
		t.Errorf("the next page of a passed-through list: source %s, %d items", next.Meta.Source, len(next.Items))
	}
	// Once warm, new lists come from the snapshot.
	if p, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{}, "", 7); err != nil || p.Meta.Source != catalogue.SourceFresh {
		t.Errorf("a warm list: %v, %v", p, err)
	}
}

// TestColdPassThroughIsBoundedAndWaitsForWhatHeyGenCannotFilter: distinct
// cold lists pass through at most ColdPassThrough at once, the others wait
// for the crawl; a query filter (catalogue only) always waits; a cold get
// asks HeyGen.
func TestColdPassThroughIsBoundedAndWaitsForWhatHeyGenCannotFilter(t *testing.T) {
	f := &flight{delay: 30 * time.Millisecond}
	cat := fakeheygen.GenerateCatalogue(7, 30, 50)
	e := newSlowEnv(t, cat, nil, f)
	set := e.set(catalogue.Options{ColdPassThrough: 2, CrawlConcurrency: 2, NoSplitCrawl: true})
	go func() { _ = set.Avatars.Refresh(context.Background()) }()
	waitFor(t, "the crawl to start", set.Avatars.PassingThrough)
	a, meta, err := set.Avatars.Get(t.Context(), cat.Looks[17].ID)
	if err != nil || meta.Source != catalogue.SourceHeyGen || a.GetId() != cat.Looks[17].ID {
		t.Errorf("a cold get: %v %v %v, want HeyGen's answer while the crawl runs", a.GetId(), meta.Source, err)
	}
	var wg sync.WaitGroup
	var fromHeyGen, fromCatalogue atomic.Int64
	for size := 1; size <= 12; size++ {
		wg.Go(func() {
			p, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{}, "", size)
			switch {
			case err != nil:
				t.Error(err)
			case p.Meta.Source == catalogue.SourceHeyGen:
				fromHeyGen.Add(1)
			default:
				fromCatalogue.Add(1)
			}
		})
	}
	wg.Go(func() {
		p, err := set.Avatars.List(t.Context(), catalogue.AvatarFilter{Query: "sweater"}, "", 5)
		if err != nil || p.Meta.Source != catalogue.SourceFresh {
			t.Errorf("a cold query list: %v, %v; want it answered by the catalogue once crawled", p, err)
		}
	})
	wg.Wait()
	if fromHeyGen.Load() == 0 || fromCatalogue.Load() == 0 {
		t.Errorf("12 distinct cold lists: %d from HeyGen, %d waited for the crawl; want both (2 slots)", fromHeyGen.Load(), fromCatalogue.Load())
	}
	if p := f.peak.Load(); p > 2+2 {
		t.Errorf("%d HeyGen calls at once, want at most the crawl's 2 and the pass-through's 2", p)
	}
}
