package server_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// expectedIDs applies a filter to the fake's catalogue independently of
// the gateway's implementation and returns the matching ids in id order.
func expectedIDs(cat fakeheygen.Catalogue, keep func(l fakeheygen.Look) bool) []string {
	var ids []string
	for _, l := range cat.Looks {
		if keep(l) {
			ids = append(ids, l.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// listAll pages through ListAvatars with req's filters and returns the ids in order.
func listAll(t *testing.T, h *harness, req *heygenv1.ListAvatarsRequest) []string {
	t.Helper()
	var ids []string
	req = proto.Clone(req).(*heygenv1.ListAvatarsRequest)
	for i := 0; ; i++ {
		resp, err := h.avatars.ListAvatars(ctx(t), req)
		if err != nil {
			t.Fatalf("ListAvatars(%v): %v", req, err)
		}
		for _, a := range resp.GetAvatars() {
			ids = append(ids, a.GetId())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return ids
		}
		if i > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestCatalogueFiltersAndOrder(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	cat := h.cat
	// Pick filter values that exist in the demo catalogue.
	someGroup := str(cat.Looks[10].GroupID)
	var someTag, someEngine string
	for _, l := range cat.Looks {
		if len(l.Tags) > 0 && someTag == "" {
			someTag = l.Tags[0]
		}
		if len(l.SupportedAPIEngines) > 0 && someEngine == "" {
			someEngine = l.SupportedAPIEngines[0]
		}
	}
	word := strings.Fields(cat.Looks[3].Name)[1] // a word from a name
	var pp fakeheygen.Look                       // a private photo avatar with a tag and an engine
	for _, l := range cat.Looks {
		if l.Ownership == "private" && l.AvatarType == "photo_avatar" && len(l.Tags) > 0 && len(l.SupportedAPIEngines) > 0 {
			pp = l
			break
		}
	}
	ppTag, ppEngine := "", ""
	if pp.ID != "" {
		ppTag, ppEngine = pp.Tags[0], pp.SupportedAPIEngines[0]
	}
	orient := map[string]heygenv1.Orientation{"portrait": 1, "landscape": 2, "square": 3}
	hasTag := func(l fakeheygen.Look, tag string) bool {
		for _, t := range l.Tags {
			if strings.EqualFold(t, tag) {
				return true
			}
		}
		return false
	}
	tests := []struct {
		name string
		req  *heygenv1.ListAvatarsRequest
		keep func(fakeheygen.Look) bool
	}{
		{"everything", &heygenv1.ListAvatarsRequest{}, func(fakeheygen.Look) bool { return true }},
		{"query on name, any case", &heygenv1.ListAvatarsRequest{Query: strings.ToUpper(word)},
			func(l fakeheygen.Look) bool {
				return strings.Contains(strings.ToLower(l.Name), strings.ToLower(word)) || strings.Contains(strings.ToLower(l.ID), strings.ToLower(word))
			}},
		{"query on id", &heygenv1.ListAvatarsRequest{Query: cat.Looks[7].ID[2:12]},
			func(l fakeheygen.Look) bool {
				q := strings.ToLower(cat.Looks[7].ID[2:12])
				return strings.Contains(strings.ToLower(l.Name), q) || strings.Contains(strings.ToLower(l.ID), q)
			}},
		{"gender", &heygenv1.ListAvatarsRequest{Gender: "FEMALE"}, func(l fakeheygen.Look) bool { return strings.EqualFold(str(l.Gender), "female") }},
		{"engine", &heygenv1.ListAvatarsRequest{SupportedEngine: someEngine}, func(l fakeheygen.Look) bool { return slices.Contains(l.SupportedAPIEngines, someEngine) }},
		{"orientation", &heygenv1.ListAvatarsRequest{PreferredOrientation: heygenv1.Orientation_ORIENTATION_LANDSCAPE},
			func(l fakeheygen.Look) bool {
				return orient[str(l.PreferredOrientation)] == heygenv1.Orientation_ORIENTATION_LANDSCAPE
			}},
		{"tag", &heygenv1.ListAvatarsRequest{Tag: strings.ToUpper(someTag)}, func(l fakeheygen.Look) bool { return hasTag(l, someTag) }},
		{"group", &heygenv1.ListAvatarsRequest{GroupId: someGroup}, func(l fakeheygen.Look) bool { return str(l.GroupID) == someGroup }},
		{"public studio female landscape", &heygenv1.ListAvatarsRequest{Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC,
			AvatarType: heygenv1.AvatarType_AVATAR_TYPE_STUDIO_AVATAR, Gender: "female", PreferredOrientation: heygenv1.Orientation_ORIENTATION_LANDSCAPE},
			func(l fakeheygen.Look) bool {
				return l.Ownership == "public" && l.AvatarType == "studio_avatar" && str(l.Gender) == "female" && str(l.PreferredOrientation) == "landscape"
			}},
		{"private photo with tag and engine", &heygenv1.ListAvatarsRequest{Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE,
			AvatarType: heygenv1.AvatarType_AVATAR_TYPE_PHOTO_AVATAR, Tag: ppTag, SupportedEngine: ppEngine},
			func(l fakeheygen.Look) bool {
				return l.Ownership == "private" && l.AvatarType == "photo_avatar" && hasTag(l, ppTag) && slices.Contains(l.SupportedAPIEngines, ppEngine)
			}},
		{"no match", &heygenv1.ListAvatarsRequest{Query: "zzz-no-such-avatar-zzz"}, func(fakeheygen.Look) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := expectedIDs(cat, tt.keep)
			for _, size := range []int32{7, 500} {
				req := proto.Clone(tt.req).(*heygenv1.ListAvatarsRequest)
				req.PageSize = size
				got := listAll(t, h, req)
				if !slices.Equal(got, want) {
					t.Fatalf("page size %d: got %d ids, want %d (in id order)\n got %v\nwant %v", size, len(got), len(want), head(got), head(want))
				}
			}
			if tt.name != "no match" && len(want) == 0 {
				t.Fatal("the test's filter matches nothing in the demo catalogue: it proves nothing")
			}
		})
	}
	if n := h.catalog.Avatars.Crawls(); n != 1 {
		t.Errorf("%d avatar crawls, want 1", n)
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestCatalogueGroupsFilters(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	var want []string
	for _, g := range h.cat.Groups {
		if g.Ownership == "private" && strings.EqualFold(str(g.Gender), "male") {
			want = append(want, g.ID)
		}
	}
	sort.Strings(want)
	var got []string
	req := &heygenv1.ListAvatarGroupsRequest{PageSize: 3, Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE, Gender: "Male"}
	for {
		resp, err := h.avatars.ListAvatarGroups(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range resp.GetAvatarGroups() {
			got = append(got, g.GetId())
			if g.GetOwnership() != heygenv1.Ownership_OWNERSHIP_PRIVATE {
				t.Errorf("group %s has ownership %v", g.GetId(), g.GetOwnership())
			}
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	resp, err := h.avatars.ListAvatarGroups(ctx(t), &heygenv1.ListAvatarGroupsRequest{Query: strings.ToUpper(h.cat.Groups[0].ID[:3])})
	if err != nil || len(resp.GetAvatarGroups()) == 0 {
		t.Fatalf("query on group name: %v, %d groups", err, len(resp.GetAvatarGroups()))
	}
}

func TestCataloguePageSizeAndTokens(t *testing.T) {
	cat := fakeheygen.GenerateCatalogue(7, 30, 25) // 750 looks
	h := setup(t, setupOptions{withCatalogue: true, catalogue: &cat})
	resp, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetAvatars()); n != catalogue.MaxPageSize {
		t.Fatalf("page_size 100000 gave %d avatars, want %d", n, catalogue.MaxPageSize)
	}
	if size := proto.Size(resp); size > 1<<20 {
		t.Errorf("a full page is %d bytes; keep it well under 4 MiB", size)
	}
	token := resp.GetNextPageToken()
	before := h.fake.RequestCount()
	tampered := []byte(token)
	tampered[3] ^= 0x20
	for name, req := range map[string]*heygenv1.ListAvatarsRequest{
		"other query":  {PageToken: token, Query: "x"},
		"other gender": {PageToken: token, Gender: "female"},
		"other tag":    {PageToken: token, Tag: "news"},
		"other engine": {PageToken: token, SupportedEngine: "avatar_iv"},
		"other orient": {PageToken: token, PreferredOrientation: heygenv1.Orientation_ORIENTATION_SQUARE},
		"tampered":     {PageToken: string(tampered)},
		"truncated":    {PageToken: token[:len(token)-3]},
	} {
		_, err := h.avatars.ListAvatars(ctx(t), req)
		st, info, br, _ := statusParts(t, err)
		if st.Code() != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest || br.GetFieldViolations()[0].GetField() != "page_token" {
			t.Errorf("%s: got %v %q, want INVALID_ARGUMENT on page_token", name, st.Code(), st.Message())
		}
	}
	if h.fake.RequestCount() != before {
		t.Error("bad tokens reached HeyGen")
	}
	_, err = h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{Query: strings.Repeat("q", 300)})
	if st, _, _, _ := statusParts(t, err); st.Code() != codes.InvalidArgument {
		t.Errorf("a 300-byte query: %v, want INVALID_ARGUMENT", err)
	}
}

// TestPagingThroughARefresh: a caller pages while the snapshot changes
// under it: no item present in both snapshots is returned twice or missed.
func TestPagingThroughARefresh(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	old := h.cat
	var seen []string
	req := &heygenv1.ListAvatarsRequest{PageSize: 40}
	resp, err := h.avatars.ListAvatars(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range resp.GetAvatars() {
		seen = append(seen, a.GetId())
	}
	// HeyGen changes: every third look disappears, new ones appear on both
	// sides of the cursor.
	next := fakeheygen.Catalogue{Groups: old.Groups}
	for i, l := range old.Looks {
		if i%3 != 0 {
			next.Looks = append(next.Looks, l)
		}
	}
	for _, id := range []string{"000_new_first", "ZZZ_new_middle", "zzz_new_last", seen[len(seen)-1] + "_new"} {
		l := old.Looks[1]
		l.ID = id
		next.Looks = append(next.Looks, l)
	}
	h.fake.SetCatalogue(next)
	if err := h.catalog.Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	req.PageToken = resp.GetNextPageToken()
	for req.PageToken != "" {
		resp, err = h.avatars.ListAvatars(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range resp.GetAvatars() {
			seen = append(seen, a.GetId())
		}
		req.PageToken = resp.GetNextPageToken()
	}
	count := map[string]int{}
	for _, id := range seen {
		count[id]++
		if count[id] > 1 {
			t.Errorf("%s returned twice", id)
		}
	}
	inNext := map[string]bool{}
	for _, l := range next.Looks {
		inNext[l.ID] = true
	}
	for _, l := range old.Looks {
		if inNext[l.ID] && count[l.ID] != 1 {
			t.Errorf("%s is in both snapshots but was returned %d times", l.ID, count[l.ID])
		}
	}
	if !slices.IsSorted(seen) {
		t.Error("ids are not in ascending order across the refresh")
	}
	if count[seen[39]+"_new"] != 1 || count["zzz_new_last"] != 1 {
		t.Error("items added after the cursor were not returned")
	}
	if n := h.catalog.Avatars.Crawls(); n != 2 {
		t.Errorf("%d avatar crawls, want 2", n)
	}
}

func sourceOf(t *testing.T, h *harness, call func(opt grpc.CallOption) error) (string, float64) {
	t.Helper()
	var md metadata.MD
	if err := call(grpc.Header(&md)); err != nil {
		t.Fatal(err)
	}
	src := md.Get(server.HeaderSource)
	if len(src) != 1 {
		t.Fatalf("header %s = %v", server.HeaderSource, src)
	}
	var age float64
	if a := md.Get(server.HeaderCatalogueAgeS); len(a) == 1 {
		var err error
		if age, err = strconv.ParseFloat(a[0], 64); err != nil {
			t.Fatal(err)
		}
	} else {
		age = -1
	}
	return src[0], age
}

func TestStaleServingAndMaximumStaleness(t *testing.T) {
	clock := newFakeClock()
	h := setup(t, setupOptions{withCatalogue: true, clock: clock, refresh: 10 * time.Minute, maxStaleness: 24 * time.Hour, noKeepAlives: true})
	list := func(opt grpc.CallOption) error {
		_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 5}, opt)
		return err
	}
	// The catalogue is healthy only once every resource has a snapshot
	// (avatars and groups alike), so crawl them all, as Run does at start.
	if err := h.catalog.Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	src, age := sourceOf(t, h, list)
	if src != "catalogue-fresh" || age != 0 {
		t.Fatalf("after the first crawl: source %q age %v, want catalogue-fresh 0", src, age)
	}
	clock.Advance(3 * time.Minute)
	if src, age = sourceOf(t, h, list); src != "catalogue-fresh" || age != 180 {
		t.Fatalf("3 minutes later: %q %v, want catalogue-fresh 180", src, age)
	}
	waitHealth(t, h, server.CatalogueHealthName, healthpb.HealthCheckResponse_SERVING)

	// HeyGen breaks; the refresh fails; the old snapshot keeps serving.
	h.faults.Inject(faults.Fault{Path: "/v3/avatars*", Status: 503, Body: fakeheygen.V3Error("internal_error", "down")})
	clock.Advance(20 * time.Minute)
	if err := h.catalog.Refresh(ctx(t)); err == nil {
		t.Fatal("refresh against a failing HeyGen succeeded")
	}
	callsBefore := settledCount(h.fake)
	if src, age = sourceOf(t, h, list); src != "catalogue-stale" || age != 23*60 {
		t.Fatalf("after a failed refresh: %q %v, want catalogue-stale 1380", src, age)
	}
	if h.fake.RequestCount() != callsBefore {
		t.Error("a read while stale called HeyGen")
	}
	if !strings.Contains(h.logs.String(), "catalogue refresh failed") {
		t.Error("the failed refresh was not logged")
	}
	waitHealth(t, h, server.CatalogueHealthName, healthpb.HealthCheckResponse_SERVING)

	// Past the maximum staleness, the mapped upstream error.
	clock.Advance(24 * time.Hour)
	var herr *heygen.Error
	if err := h.catalog.Refresh(ctx(t)); !errors.As(err, &herr) || herr.Kind != heygen.KindUnavailable {
		t.Fatalf("a refresh while HeyGen fails: %v, want HeyGen's unavailable error", err)
	}
	_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
	st, info, _, _ := statusParts(t, err)
	if st.Code() != codes.Unavailable || info.GetReason() != "HEYGEN_UNAVAILABLE" {
		t.Fatalf("past max staleness: %v %v, want UNAVAILABLE HEYGEN_UNAVAILABLE", st.Code(), info)
	}
	waitHealth(t, h, server.CatalogueHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	// With the catalogue on, this replica can no longer answer.
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_NOT_SERVING)

	// HeyGen recovers: fresh again.
	h.faults.ClearFaults()
	if err := h.catalog.Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if src, _ = sourceOf(t, h, list); src != "catalogue-fresh" {
		t.Fatalf("after recovery: %q", src)
	}
	waitHealth(t, h, server.CatalogueHealthName, healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
}

// settledCount waits until requests cancelled by a failed crawl have all
// reached the fake, then returns its request count.
func settledCount(f *fakeheygen.Server) int {
	n := f.RequestCount()
	for {
		time.Sleep(50 * time.Millisecond)
		m := f.RequestCount()
		if m == n {
			return n
		}
		n = m
	}
}

// TestExactlyOneCrawlForConcurrentColdCallers: 200 callers at a cold
// gateway start one crawl per resource, whatever their number. With the
// full crawl only and callers waiting for it, HeyGen sees exactly one
// crawl's pages. By default the first crawl is split (the catalogue's
// looks by ownership and type, or by group) and the callers who arrive
// while it runs are passed through to HeyGen, identical requests sharing
// one call: HeyGen sees exactly the split crawl's pages, and a few pages
// for the callers (their page size, 10, tells them apart).
func TestExactlyOneCrawlForConcurrentColdCallers(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts catalogue.Options
	}{
		{"full crawl, callers wait", catalogue.Options{NoSplitCrawl: true, ColdPassThrough: -1}},
		{"defaults: split crawl, cold callers passed through", catalogue.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, setupOptions{withCatalogue: true, catalogueOpts: tc.opts})
			h.fake.SetLatency(20 * time.Millisecond) // so the callers really overlap the crawl
			const callers = 200
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			start := make(chan struct{})
			// Each resource has a cache of its own, crawled on its first read: half
			// the callers list avatars, half avatar groups.
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					var err error
					if i%2 == 0 {
						_, err = h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 10})
					} else {
						_, err = h.avatars.ListAvatarGroups(ctx(t), &heygenv1.ListAvatarGroupsRequest{PageSize: 10})
					}
					errs <- err
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			crawled, passed := map[string]int{}, map[string]int{}
			for _, r := range h.fake.Requests() {
				if strings.Contains(r.RawQuery, "limit=10") {
					passed[r.Path]++
				} else {
					crawled[r.Path]++
				}
			}
			wantLooks, wantGroups := fullCrawlPages(h.cat)
			if !tc.opts.NoSplitCrawl {
				// The avatars' split crawl lists the groups too.
				wantLooks, wantGroups = splitCrawlPages(h.cat), 2*wantGroups
			}
			if got := crawled["/v3/avatars/looks"]; got != wantLooks {
				t.Errorf("HeyGen saw %d look-page calls of the crawl, want exactly one crawl's %d", got, wantLooks)
			}
			if got := crawled["/v3/avatars"]; got != wantGroups {
				t.Errorf("HeyGen saw %d group-page calls of the crawl, want %d", got, wantGroups)
			}
			n := passed["/v3/avatars/looks"] + passed["/v3/avatars"]
			switch {
			case tc.opts.ColdPassThrough < 0 && n != 0:
				t.Errorf("callers made %d calls to HeyGen with cold pass-through off", n)
			case n > callers/10:
				t.Errorf("%d cold callers made %d calls to HeyGen: identical requests must share one", callers, n)
			}
			if a, g := h.catalog.Avatars.Crawls(), h.catalog.Groups.Crawls(); a != 1 || g != 1 {
				t.Errorf("%d avatar and %d group crawls, want 1 of each", a, g)
			}
		})
	}
}

// pages is how many list calls n items take, 50 a page (an empty list
// takes one).
func pages(n int) int { return max(1, (n+49)/50) }

// fullCrawlPages are the look and group pages of one full crawl of cat:
// each list by ownership.
func fullCrawlPages(cat fakeheygen.Catalogue) (looks, groups int) {
	count := map[string]int{}
	for _, l := range cat.Looks {
		count["l"+l.Ownership]++
	}
	for _, g := range cat.Groups {
		count["g"+g.Ownership]++
	}
	return pages(count["lpublic"]) + pages(count["lprivate"]), pages(count["gpublic"]) + pages(count["gprivate"])
}

// splitCrawlPages are the look pages of a split crawl of cat: by group
// (a list per group with looks) unless that takes more than twice a full
// crawl's pages, else by ownership and avatar type.
func splitCrawlPages(cat fakeheygen.Catalogue) int {
	full, _ := fullCrawlPages(cat)
	byGroup := 0
	for _, g := range cat.Groups {
		if g.LooksCount > 0 {
			byGroup += pages(g.LooksCount)
		}
	}
	if byGroup <= 2*full {
		return byGroup
	}
	byType := map[string]int{}
	for _, l := range cat.Looks {
		byType[l.Ownership+" "+l.AvatarType]++
	}
	n := 0
	for _, own := range []string{"public", "private"} {
		for _, typ := range []string{"studio_avatar", "digital_twin", "photo_avatar"} {
			n += pages(byType[own+" "+typ])
		}
	}
	return n
}

func TestGetMissFallsThroughAndIsRemembered(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	known := h.cat.Looks[5].ID
	get := func(id string) func(grpc.CallOption) error {
		return func(opt grpc.CallOption) error {
			_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: id}, opt)
			return err
		}
	}
	if src, _ := sourceOf(t, h, get(known)); src != "catalogue-fresh" {
		t.Fatalf("known avatar source %q", src)
	}
	if n := h.fake.CountPath("/v3/avatars/looks/" + known); n != 0 {
		t.Fatalf("a snapshot hit called HeyGen %d times", n)
	}
	// A private avatar created after the crawl.
	next := h.cat
	fresh := next.Looks[0]
	fresh.ID = "0123456789abcdef0123456789abcdef"
	fresh.Name = "Brand New"
	next.Looks = append(slices.Clone(next.Looks), fresh)
	h.fake.SetCatalogue(next)
	if src, _ := sourceOf(t, h, get(fresh.ID)); src != "heygen" {
		t.Fatalf("miss source %q, want heygen", src)
	}
	if src, _ := sourceOf(t, h, get(fresh.ID)); src != "catalogue-fresh" {
		t.Fatalf("second get of a miss: source %q, want it remembered", src)
	}
	if n := h.fake.CountPath("/v3/avatars/looks/" + fresh.ID); n != 1 {
		t.Fatalf("HeyGen saw %d gets for the new avatar, want 1", n)
	}
	// A true miss is HeyGen's NOT_FOUND.
	_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "never_existed"})
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.NotFound || info.GetReason() != "HEYGEN_NOT_FOUND" {
		t.Fatalf("unknown avatar: %v", err)
	}
	// Groups too.
	g := h.cat.Groups[2]
	resp, err := h.avatars.GetAvatarGroup(ctx(t), &heygenv1.GetAvatarGroupRequest{GroupId: g.ID})
	if err != nil || resp.GetAvatarGroup().GetName() != g.Name || h.fake.CountPath("/v3/avatars/"+g.ID) != 0 {
		t.Fatalf("group from the snapshot: %v %v", resp, err)
	}
}

func TestPassThroughRefusesCatalogueFilters(t *testing.T) {
	h := setup(t, setupOptions{})
	var md metadata.MD
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 2}, grpc.Header(&md)); err != nil {
		t.Fatal(err)
	}
	if got := md.Get(server.HeaderSource); len(got) != 1 || got[0] != "heygen" {
		t.Errorf("pass-through source header = %v, want heygen", got)
	}
	for name, req := range map[string]*heygenv1.ListAvatarsRequest{
		"query": {Query: "anna"}, "gender": {Gender: "female"}, "tag": {Tag: "news"},
		"supported_engine": {SupportedEngine: "avatar_iv"}, "preferred_orientation": {PreferredOrientation: heygenv1.Orientation_ORIENTATION_PORTRAIT},
	} {
		_, err := h.avatars.ListAvatars(ctx(t), req)
		st, info, _, _ := statusParts(t, err)
		if st.Code() != codes.FailedPrecondition || info.GetReason() != server.ReasonCatalogueDisabled || info.GetMetadata()["fields"] != name {
			t.Errorf("%s without the catalogue: %v %v", name, st.Code(), info)
		}
	}
	if n := h.fake.CountPath("/v3/avatars/looks"); n != 1 {
		t.Errorf("refused filters reached HeyGen: %d calls", n)
	}
}

func TestColdStartFailureThenRecovery(t *testing.T) {
	clock := newFakeClock()
	h := setup(t, setupOptions{withCatalogue: true, noKeepAlives: true, clock: clock})
	h.faults.Inject(faults.Fault{Path: "/v3/avatars*", Status: 401, Body: fakeheygen.FlatError(400112, "Unauthorized")})
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.avatars.ListAvatars(c, &heygenv1.ListAvatarsRequest{})
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.Unauthenticated || info.GetReason() != "HEYGEN_API_KEY_REJECTED" {
		t.Fatalf("cold start with a rejected key: %v", err)
	}
	h.faults.ClearFaults()
	// A failed cold crawl now backs off (5 s, with jitter) before the next
	// one: until then callers get its error at once, with RetryInfo, and
	// nothing is sent to HeyGen.
	before := h.fake.CountPath("/v3/avatars/looks")
	_, err = h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
	st, info, _, retry := statusParts(t, err)
	if st.Code() != codes.Unauthenticated || info.GetReason() != "HEYGEN_API_KEY_REJECTED" {
		t.Fatalf("during the crawl's backoff: %v, want the failed crawl's error", err)
	}
	if d := retry.GetRetryDelay().AsDuration(); d <= 0 || d > 6*time.Second {
		t.Errorf("RetryInfo %v, want the time until the next crawl (at most 5.5 s)", d)
	}
	if n := h.fake.CountPath("/v3/avatars/looks") - before; n != 0 {
		t.Errorf("a call during the crawl's backoff sent %d requests to HeyGen", n)
	}
	clock.Advance(10 * time.Second)
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{}); err != nil {
		t.Fatalf("after HeyGen recovered: %v", err)
	}
}

// TestColdReplicaAnswersAndIsReadyWhileItCrawls: a fresh replica whose
// HeyGen is slow answers its first ListAvatars from HeyGen while its first
// crawl runs, and is ready then (it can answer); the catalogue's own
// health follows the snapshot, and once it is in, answers come from it.
func TestColdReplicaAnswersAndIsReadyWhileItCrawls(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true, probe: 50 * time.Millisecond, threshold: 1})
	h.fake.SetLatency(250 * time.Millisecond)
	bg, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.catalog.Run(bg); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	start := time.Now()
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
	var hdr metadata.MD
	resp, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 5}, grpc.Header(&hdr))
	if err != nil || len(resp.GetAvatars()) != 5 {
		t.Fatalf("cold ListAvatars: %v, %v", resp, err)
	}
	took := time.Since(start)
	if src := hdr.Get(server.HeaderSource); len(src) != 1 || src[0] != string(catalogue.SourceHeyGen) || took > 2*time.Second {
		t.Fatalf("the first answer came from %v after %v; want HeyGen's, within a few round trips", src, took)
	}
	if h.catalog.Usable() {
		t.Fatal("the crawl finished before the first answer: the test proves nothing (make HeyGen slower)")
	}
	st, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: server.CatalogueHealthName})
	if err != nil || st.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("catalogue health while the first crawl runs: %v, %v; want NOT_SERVING", st, err)
	}
	waitHealth(t, h, server.CatalogueHealthName, healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, h, server.ReadinessHealthName, healthpb.HealthCheckResponse_SERVING)
	hdr = nil
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 5}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if src := hdr.Get(server.HeaderSource); len(src) != 1 || src[0] != string(catalogue.SourceFresh) {
		t.Errorf("once crawled, ListAvatars came from %v, want the catalogue", src)
	}
}
