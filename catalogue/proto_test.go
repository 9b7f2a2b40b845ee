package catalogue

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// TestPreEncodeIsByteIdentical: a pre-encoded avatar sends exactly the
// bytes the avatar itself would, and decodes back to an equal message.
func TestPreEncodeIsByteIdentical(t *testing.T) {
	str := func(s string) *string { return &s }
	w, h := int64(1080), int64(1920)
	looks := []heygen.Look{
		{ID: "a", Name: "A", AvatarType: "studio_avatar"},
		{ID: "b_full", Name: "Bé ✓", AvatarType: "photo_avatar", GroupID: str("g"), Gender: str("female"),
			PreviewImageURL: str("https://x/i.png"), ImageWidth: &w, ImageHeight: &h, PreferredOrientation: str("ultrawide"),
			SupportedAPIEngines: []string{"avatar_iv"}, Tags: []string{"news", "studio"}, Status: str("failed"),
			Error: &heygen.AvatarError{Code: "c", Message: "m"}},
	}
	for i := range looks {
		a := AvatarFromLook(&looks[i])
		a.Ownership = heygenv1.Ownership_OWNERSHIP_PRIVATE
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := proto.Marshal(PreEncode(a))
		if err != nil {
			t.Fatal(err)
		}
		back := &heygenv1.Avatar{}
		if err := proto.Unmarshal(got, back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(back, a) {
			t.Errorf("%s: decodes to %v, want %v", a.GetId(), back, a)
		}
		resp, _ := proto.Marshal(&heygenv1.ListAvatarsResponse{Avatars: []*heygenv1.Avatar{PreEncode(a)}})
		direct, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&heygenv1.ListAvatarsResponse{Avatars: []*heygenv1.Avatar{a}})
		if string(resp) != string(direct) || len(want) == 0 {
			t.Errorf("%s: a response with the pre-encoded avatar differs from one with the avatar", a.GetId())
		}
	}
}

// TestRecycledAvatarsConvertAsNewOnes: an avatar a crawl refills look
// after look encodes exactly as a new one made from each look: nothing of
// the previous look stays (its timestamp, sizes, error, tags).
func TestRecycledAvatarsConvertAsNewOnes(t *testing.T) {
	cat := fakeheygen.DemoCatalogue()
	recycled := &heygenv1.Avatar{}
	for i := range cat.Looks {
		b, err := json.Marshal(&cat.Looks[i])
		if err != nil {
			t.Fatal(err)
		}
		var l heygen.Look
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		fillAvatar(recycled, &l)
		got, err := proto.Marshal(recycled)
		if err != nil {
			t.Fatal(err)
		}
		fresh := AvatarFromLook(&l)
		want, err := proto.Marshal(fresh)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || !proto.Equal(recycled, fresh) {
			t.Fatalf("look %s: the recycled avatar differs from a new one:\n got %v\nwant %v", l.ID, recycled, fresh)
		}
	}
}

// TestLowerTextIsToLower: the query text is strings.ToLower of name, NUL,
// id, whatever the bytes.
func TestLowerTextIsToLower(t *testing.T) {
	for _, c := range [][2]string{{"", ""}, {"Abigail Casual", "Abigail_x_1"}, {"ÉCOLE Ünïcode ǅ", "ID"}, {"bad \xff\xfe bytes", "x\xc3"},
		{"İstanbul ΣΑΣ", "ß"}, {"MiXeD\x00", "\x7f"}} {
		if got, want := lowerText(c[0], c[1]), strings.ToLower(c[0]+"\x00"+c[1]); got != want {
			t.Errorf("lowerText(%q, %q) = %q, want %q", c[0], c[1], got, want)
		}
	}
}

// TestInternSetKeepsSetsApart: sets whose values would join alike stay
// distinct, and a set comes back with its values (lower-cased if asked).
func TestInternSetKeepsSetsApart(t *testing.T) {
	sets := [][]string{{"a\x00b"}, {"a", "b"}, {"ab"}, {"a", "", "b"}, {"AB"}, {"\xff", "x"}, {"\xff\x00x"}}
	for _, tolower := range []bool{false, true} {
		for _, set := range sets {
			got := internSet(slices.Clone(set), tolower)
			want := slices.Clone(set)
			if tolower {
				for i := range want {
					want[i] = strings.ToLower(want[i])
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("internSet(%q, %v) = %q, want %q", set, tolower, got, want)
			}
		}
	}
}
