package catalogue

// Benchmarks of the catalogue's hot paths, run by `benchtool run`
// (scripts/bench.sh) and by hand:
//
//	go test -run '^$' -bench . -benchmem ./catalogue/
//
// BenchmarkPage50k: one page out of 50,000 looks; BenchmarkBuild and
// BenchmarkMerge: the snapshot of a crawl and the merge of its partitions;
// BenchmarkCrawl50k: a whole crawl of 50,000 looks, 5,000 groups and 5,000
// voices from a fake HeyGen in another process, with what it allocates
// against what its snapshot keeps; BenchmarkSnapshotReload: what reloading
// a snapshot from a file would take (an option for restarts, measured, not
// built). They live in package catalogue to reach the snapshot directly.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// The 50k catalogue of the memory goal: 5,000 groups of 10 looks, 5,000
// voices.
const (
	bigSeed    = 20241125
	bigGroups  = 5000
	bigLooks   = 10
	bigVoices  = 5000
	benchKey   = "bench-key-not-secret"
	helperEnv  = "CATALOGUE_FAKE_HEYGEN_HELPER"
	benchPages = 50
)

// TestMain serves the fake HeyGen when the test binary is started as its
// helper process (see startHelperFake), so that what a crawl allocates can
// be measured without the fake's own allocations.
func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		serveHelperFake(spec)
		return
	}
	os.Exit(m.Run())
}

// serveHelperFake serves "groups,looks,voices" until stdin closes.
func serveHelperFake(spec string) {
	var groups, looks, voices int
	if _, err := fmt.Sscanf(spec, "%d,%d,%d", &groups, &looks, &voices); err != nil {
		fmt.Fprintln(os.Stderr, "bad helper spec:", err)
		os.Exit(2)
	}
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: benchKey,
		Catalogue: fakeheygen.GenerateCatalogue(bigSeed, groups, looks), Voices: fakeheygen.GenerateVoices(bigSeed, voices)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(fake.URL())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // EOF when the parent goes
	_ = fake.Close()
}

// startHelperFake starts this test binary as a fake HeyGen in its own
// process and returns its URL.
func startHelperFake(tb testing.TB, groups, looks, voices int) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d,%d", helperEnv, groups, looks, voices))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("the helper fake did not start: %v", err)
	}
	return strings.TrimSpace(url)
}

// bigAvatars are the 50k looks as a crawl delivers them to build,
// converted once.
var bigAvatars = sync.OnceValue(func() []*heygenv1.Avatar {
	cat := fakeheygen.GenerateCatalogue(bigSeed, bigGroups, bigLooks)
	out := make([]*heygenv1.Avatar, 0, len(cat.Looks))
	for i := range cat.Looks {
		b, err := json.Marshal(&cat.Looks[i]) // through JSON, as the client decodes HeyGen's answers
		if err != nil {
			panic(err)
		}
		var l heygen.Look
		if err := json.Unmarshal(b, &l); err != nil {
			panic(err)
		}
		a := AvatarFromLook(&l)
		a.Ownership = heygenv1.Ownership_OWNERSHIP_PUBLIC
		if cat.Looks[i].Ownership == fakeheygen.OwnershipPrivate {
			a.Ownership = heygenv1.Ownership_OWNERSHIP_PRIVATE
		}
		out = append(out, a)
	}
	return out
})

// entriesOf prepares items as a crawl does, into chunks (res must not
// recycle them: they are shared by the benchmarks).
func entriesOf[T, K, F any](res *Resource[T, K, F], items []T, prev *Snapshot[T, K]) [][]entry[T, K] {
	var out [][]entry[T, K]
	for i, it := range items {
		if i%chunkSize == 0 {
			out = append(out, make([]entry[T, K], 0, chunkSize))
		}
		out[len(out)-1] = append(out[len(out)-1], prepare(res, it, prev))
	}
	return out
}

// avatarsNoRecycle is the avatar resource without recycling, for
// benchmarks that reuse their items.
func avatarsNoRecycle() *Resource[*heygenv1.Avatar, avatarKeys, AvatarFilter] {
	res := Avatars(nil)
	res.Recycle = nil
	return res
}

// bigCache is an avatar cache holding the 50k snapshot (its client is
// never called).
func bigCache(tb testing.TB) *Cache[*heygenv1.Avatar, avatarKeys, AvatarFilter] {
	tb.Helper()
	res := avatarsNoRecycle()
	c := NewCache(res, Options{})
	c.snap.Store(build(res, time.Now(), entriesOf(res, bigAvatars(), nil), nil))
	if n := c.snap.Load().Len(); n != bigGroups*bigLooks {
		tb.Fatalf("the snapshot has %d avatars, want %d", n, bigGroups*bigLooks)
	}
	return c
}

// BenchmarkPage50k lists one page of 50 out of 50,000 looks: unfiltered
// (the first page; and deep, reached with a page token after the
// 45,000th), one group's looks (indexed), a selective combination, a text
// query and a tag (both scan). It includes the filter key, the page token
// (next and given) and the page.
func BenchmarkPage50k(b *testing.B) {
	c := bigCache(b)
	snap := c.snap.Load()
	deep := EncodeToken(c.res.Kind, c.res.Filter.Key(AvatarFilter{}), []byte(snap.ids[45000-1]))
	group := snap.keys[25000].groupID
	cases := []struct {
		name  string
		f     AvatarFilter
		token string
	}{
		{"no-filter", AvatarFilter{}, ""},
		{"deep-page-token", AvatarFilter{}, deep},
		{"group", AvatarFilter{GroupID: group}, ""},
		{"private-female-photo", AvatarFilter{Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE, AvatarType: heygenv1.AvatarType_AVATAR_TYPE_PHOTO_AVATAR,
			Gender: "female"}, ""},
		{"query", AvatarFilter{Query: "sweater"}, ""},
		{"tag", AvatarFilter{Tag: "holiday"}, ""},
	}
	ctx := context.Background()
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			p, err := c.List(ctx, tc.f, tc.token, benchPages)
			if err != nil || len(p.Items) == 0 {
				b.Fatalf("%d items, %v", len(p.Items), err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.List(ctx, tc.f, tc.token, benchPages); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuild prepares (encodes, keys) and builds the snapshot of 5,000
// and of 50,000 crawled looks: sort, de-duplicate, index; and, again, the
// 50,000 with the previous snapshot to reuse (a refresh that found no
// change).
func BenchmarkBuild(b *testing.B) {
	all := bigAvatars()
	res := avatarsNoRecycle()
	for _, n := range []int{5000, 50000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			items := all[:n]
			b.ReportAllocs()
			for b.Loop() {
				_ = build(res, time.Now(), entriesOf(res, items, nil), nil)
			}
		})
	}
	b.Run("50000-unchanged", func(b *testing.B) {
		prev := build(res, time.Now(), entriesOf(res, all, nil), nil)
		b.ReportAllocs()
		for b.Loop() {
			_ = build(res, time.Now(), entriesOf(res, all, prev), prev)
		}
	})
}

// BenchmarkMerge merges the prepared partitions of a split crawl of
// 50,000 looks (by ownership and type: 6 partitions, their entries in
// chunks), in partition order, and builds the snapshot from them: the end
// of every crawl.
func BenchmarkMerge(b *testing.B) {
	res := avatarsNoRecycle()
	var parts [][][]entry[*heygenv1.Avatar, avatarKeys]
	byPart := map[string][]*heygenv1.Avatar{}
	var names []string
	for _, a := range bigAvatars() {
		name := a.GetOwnership().String() + a.GetAvatarType().String()
		if _, ok := byPart[name]; !ok {
			names = append(names, name)
		}
		byPart[name] = append(byPart[name], a)
	}
	for _, name := range names {
		parts = append(parts, entriesOf(res, byPart[name], nil))
	}
	b.Run("merge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = merge(parts)
		}
	})
	b.Run("merge-and-build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = build(res, time.Now(), merge(parts), nil)
		}
	})
}

// liveHeap is the heap in use after full collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// crawlCost crawls a whole Set (avatars, groups, voices: the full crawl
// refreshes make) from the fake at url, and returns the bytes allocated
// meanwhile and the live heap the crawled Set keeps.
func crawlCost(tb testing.TB, url string, opts Options) (allocated, kept uint64, set *Set) {
	tb.Helper()
	client, err := heygen.New(heygen.Options{BaseURL: url, APIKey: benchKey})
	if err != nil {
		tb.Fatal(err)
	}
	defer client.CloseIdleConnections()
	opts.NoSplitCrawl = true
	before := liveHeap()
	a0 := totalAlloc()
	set = New(client, opts)
	if err := set.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	allocated = totalAlloc() - a0
	client.CloseIdleConnections()
	kept = liveHeap() - before
	return allocated, kept, set
}

// BenchmarkCrawl50k crawls 50,000 looks, 5,000 groups and 5,000 voices
// (500 cloned: a detail call each) from a fake HeyGen in another process,
// without latency, and reports what the crawl allocated and what the
// crawled catalogue keeps (live heap after collection, minus before).
func BenchmarkCrawl50k(b *testing.B) {
	url := startHelperFake(b, bigGroups, bigLooks, bigVoices)
	var allocated, kept uint64
	for b.Loop() {
		var set *Set
		allocated, kept, set = crawlCost(b, url, Options{})
		if set.Avatars.Snapshot().Len() != bigGroups*bigLooks || set.Voices.Snapshot().Len() != bigVoices {
			b.Fatalf("crawled %d avatars and %d voices", set.Avatars.Snapshot().Len(), set.Voices.Snapshot().Len())
		}
		runtime.KeepAlive(set)
	}
	b.ReportMetric(float64(allocated)/(1<<20), "alloc-MiB")
	b.ReportMetric(float64(kept)/(1<<20), "snapshot-MiB")
	b.ReportMetric(float64(allocated)/float64(kept), "alloc/snapshot")
}

// TestCrawlAllocatesAtMostTwiceItsSnapshot: crawling the 50k catalogue
// allocates at most twice the memory its snapshot keeps, so a refresh's
// garbage is bounded by the catalogue's size.
func TestCrawlAllocatesAtMostTwiceItsSnapshot(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector's own allocations would be counted; scripts/test.sh runs this test without it")
	}
	url := startHelperFake(t, bigGroups, bigLooks, bigVoices)
	allocated, kept, set := crawlCost(t, url, Options{})
	t.Logf("the 50k crawl allocated %.1f MiB; its snapshot keeps %.1f MiB (%.2fx)", float64(allocated)/(1<<20), float64(kept)/(1<<20),
		float64(allocated)/float64(kept))
	if allocated > 2*kept {
		t.Errorf("the crawl allocated %.1f MiB, more than twice the %.1f MiB its snapshot keeps", float64(allocated)/(1<<20), float64(kept)/(1<<20))
	}
	runtime.KeepAlive(set)
}

// BenchmarkSnapshotReload measures the restart option that was not built:
// reading back 5,000 avatars saved as length-delimited protobuf (as a file
// on a volume would hold them) and building their snapshot.
func BenchmarkSnapshotReload(b *testing.B) {
	all := bigAvatars()[:5000]
	var file []byte
	for _, a := range all {
		m, err := proto.Marshal(a)
		if err != nil {
			b.Fatal(err)
		}
		file = protowire.AppendBytes(file, m)
	}
	res := avatarsNoRecycle()
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		items := make([]*heygenv1.Avatar, 0, len(all))
		for rest := file; len(rest) > 0; {
			m, n := protowire.ConsumeBytes(rest)
			if n < 0 {
				b.Fatal(protowire.ParseError(n))
			}
			rest = rest[n:]
			a := &heygenv1.Avatar{}
			if err := proto.Unmarshal(m, a); err != nil {
				b.Fatal(err)
			}
			items = append(items, a)
		}
		_ = build(res, time.Now(), entriesOf(res, items, nil), nil)
	}
}
