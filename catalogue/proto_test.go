package catalogue

import (
	"testing"

	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
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
