package catalogue_test

import (
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/fleet"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/redistest"
)

// TestAFleetCrawlsOnce: replicas sharing a store make one crawl; the
// others load its snapshot, identical, without calling HeyGen.
func TestAFleetCrawlsOnce(t *testing.T) {
	r := redistest.Start(t)
	e := newEnv(t, fakeheygen.DemoCatalogue())
	var sets []*catalogue.Set
	for range 3 {
		s, err := fleet.Open(fleet.Options{URL: "redis://" + r.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		sets = append(sets, e.set(catalogue.Options{Shared: s, RefreshInterval: time.Minute}))
	}
	if err := sets[0].Avatars.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	crawled := e.fake.CountPath("/v3/avatars/looks")
	for _, s := range sets[1:] {
		if err := s.Avatars.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fake.CountPath("/v3/avatars/looks"); n != crawled {
		t.Fatalf("the other replicas sent %d more requests, want 0: they load the shared snapshot", n-crawled)
	}
	if c := sets[1].Avatars.Crawls() + sets[2].Avatars.Crawls(); c != 0 {
		t.Fatalf("%d crawls on the loading replicas, want 0", c)
	}
	a, b := sets[0].Avatars.Snapshot(), sets[2].Avatars.Snapshot()
	if a.Len() != b.Len() || !a.Built.Equal(b.Built) {
		t.Fatalf("loaded snapshot: %d items built %v, published: %d built %v", b.Len(), b.Built, a.Len(), a.Built)
	}
	if r := e.obs.get("avatars"); r.Reason != catalogue.ReasonShared {
		t.Fatalf("the observer saw reason %q for a loaded snapshot, want %q", r.Reason, catalogue.ReasonShared)
	}
	// Served from the loaded snapshot: no HeyGen call.
	p, err := sets[2].Avatars.List(t.Context(), catalogue.AvatarFilter{}, "", 10)
	if err != nil || len(p.Items) != 10 {
		t.Fatalf("List on a loading replica: %d items, %v", len(p.Items), err)
	}
}

// TestAReplicaWithoutItsStoreCrawlsAlone: Redis down, the catalogue works
// as a lone replica's.
func TestAReplicaWithoutItsStoreCrawlsAlone(t *testing.T) {
	r := redistest.Start(t)
	e := newEnv(t, fakeheygen.DemoCatalogue())
	s, err := fleet.Open(fleet.Options{URL: "redis://" + r.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r.Stop(t)
	set := e.set(catalogue.Options{Shared: s})
	start := time.Now()
	if err := set.Avatars.Refresh(t.Context()); err != nil {
		t.Fatalf("refresh with the store down: %v", err)
	}
	if set.Avatars.Crawls() != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("%d crawls in %v, want 1, promptly", set.Avatars.Crawls(), time.Since(start))
	}
}

// TestAFleetFollowsASplitCrawlWithAFullOne: a cold fleet's first crawl is
// split (fast, may miss items) and published as such; a replica that
// loads it treats it as its crawler does, as a snapshot to replace with a
// full crawl's, which it then loads without calling HeyGen.
func TestAFleetFollowsASplitCrawlWithAFullOne(t *testing.T) {
	r := redistest.Start(t)
	e := newEnv(t, fakeheygen.DemoCatalogue())
	var sets []*catalogue.Set
	for range 2 {
		s, err := fleet.Open(fleet.Options{URL: "redis://" + r.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		sets = append(sets, e.set(catalogue.Options{Shared: s, RefreshInterval: time.Minute}))
	}
	step := func(set *catalogue.Set, wantReason string, wantSplit bool) {
		t.Helper()
		if err := set.Avatars.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := e.obs.get("avatars"); got.Reason != wantReason || got.Split != wantSplit {
			t.Fatalf("refresh: reason %q split %v, want %q split %v", got.Reason, got.Split, wantReason, wantSplit)
		}
	}
	step(sets[0], catalogue.ReasonOK, true) // cold: the split crawl
	calls := e.fake.CountPath("/v3/avatars/looks")
	step(sets[1], catalogue.ReasonShared, true) // loads it, knowing it is split
	step(sets[0], catalogue.ReasonOK, false)    // the full crawl, published
	full := e.fake.CountPath("/v3/avatars/looks")
	if full == calls {
		t.Fatal("the second crawl sent no list request")
	}
	step(sets[1], catalogue.ReasonShared, false) // loads the full one
	if n := e.fake.CountPath("/v3/avatars/looks"); n != full {
		t.Fatalf("the loading replica sent %d list requests, want 0", n-full)
	}
	a, b := sets[0].Avatars.Snapshot(), sets[1].Avatars.Snapshot()
	if a.Len() != b.Len() || !a.Built.Equal(b.Built) {
		t.Fatalf("loaded %d items built %v, published %d built %v", b.Len(), b.Built, a.Len(), a.Built)
	}
}
