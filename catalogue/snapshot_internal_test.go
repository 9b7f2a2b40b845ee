package catalogue

import (
	"slices"
	"testing"
	"time"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// TestUnfilteredPagesAreRunsOfTheSnapshot pages through a snapshot of
// 1,000 looks with every page size around the edges, unfiltered (the
// snapshot's own run of items) and with a filter that matches everything
// (the scan): both give the same items in the same order and the same
// continuation, every item once, and "" on the last page. The unfiltered
// page allocates nothing, and appending to it cannot reach the snapshot.
func TestUnfilteredPagesAreRunsOfTheSnapshot(t *testing.T) {
	res := avatarsNoRecycle()
	snap := build(res, time.Now(), entriesOf(res, bigAvatars()[:1000], nil), nil)
	all := func(*avatarKeys) bool { return true }
	for _, size := range []int{1, 2, 49, 50, 999, 1000, 1001} {
		after, seen := "", 0
		for pages := 0; ; pages++ {
			if pages > snap.Len() {
				t.Fatalf("size %d: paging does not end", size)
			}
			got, next := snap.page(nil, "", after, size)
			want, wantNext := snap.page(all, "", after, size)
			if !slices.Equal(got, want) || next != wantNext {
				t.Fatalf("size %d after %q: the unfiltered page has %d items and next %q, the scan %d and %q",
					size, after, len(got), next, len(want), wantNext)
			}
			for i, a := range got {
				if a != snap.wire[seen+i] {
					t.Fatalf("size %d: item %d of the page is not the snapshot's item %d", size, i, seen+i)
				}
			}
			seen += len(got)
			if next == "" {
				break
			}
			if next != snap.ids[seen-1] {
				t.Fatalf("size %d: next is %q, want the page's last id %q", size, next, snap.ids[seen-1])
			}
			after = next
		}
		if seen != snap.Len() {
			t.Fatalf("size %d: paging gave %d items, want %d", size, seen, snap.Len())
		}
	}

	first, _ := snap.page(nil, "", "", 50)
	if cap(first) != 50 {
		t.Fatalf("the page's capacity is %d, want 50: an append could write into the snapshot", cap(first))
	}
	kept := snap.wire[50]
	_ = append(first, &heygenv1.Avatar{})
	if snap.wire[50] != kept {
		t.Fatal("an append to a page changed the snapshot")
	}
	if n := testing.AllocsPerRun(100, func() { first, _ = snap.page(nil, "", snap.ids[500], 50) }); n != 0 {
		t.Fatalf("an unfiltered page allocates %.0f times, want 0", n)
	}
}
