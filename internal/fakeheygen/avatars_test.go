package fakeheygen_test

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

func lookIDs(looks []fakeheygen.Look, keep func(fakeheygen.Look) bool) []string {
	var out []string
	for _, l := range looks {
		if keep(l) {
			out = append(out, l.ID)
		}
	}
	return out
}

func TestAvatarPaging(t *testing.T) {
	c := fakeheygen.DemoCatalogue()
	s := newServer(t, fakeheygen.Options{Catalogue: c})
	got := ids(t, listAll(t, s, "/v3/avatars/looks", url.Values{"limit": {"50"}}), "id")
	if want := lookIDs(c.Looks, func(fakeheygen.Look) bool { return true }); !reflect.DeepEqual(got, want) {
		t.Fatalf("paged %d looks, want %d in catalogue order", len(got), len(want))
	}
	p := decode[page](t, get(t, s, "/v3/avatars/looks").body)
	if len(p.Data) != fakeheygen.DefaultLimit || !p.HasMore {
		t.Fatalf("default page: %d items, has_more %v", len(p.Data), p.HasMore)
	}
	if groups := listAll(t, s, "/v3/avatars", url.Values{"limit": {"7"}}); len(groups) != len(c.Groups) {
		t.Fatalf("paged %d groups, want %d", len(groups), len(c.Groups))
	}
}

func TestAvatarFilters(t *testing.T) {
	c := fakeheygen.DemoCatalogue()
	s := newServer(t, fakeheygen.Options{Catalogue: c})
	g := c.Groups[3]
	inGroup := func(l fakeheygen.Look) bool { return l.GroupID != nil && *l.GroupID == g.ID }
	for _, tc := range []struct {
		q    url.Values
		keep func(fakeheygen.Look) bool
	}{
		{url.Values{"group_id": {g.ID}}, inGroup},
		{url.Values{"group_id": {"unknown_group"}}, func(fakeheygen.Look) bool { return false }},
		{url.Values{"avatar_type": {fakeheygen.AvatarTypePhoto}}, func(l fakeheygen.Look) bool { return l.AvatarType == fakeheygen.AvatarTypePhoto }},
		{url.Values{"ownership": {"private"}}, func(l fakeheygen.Look) bool { return l.Ownership == "private" }},
		{url.Values{"ownership": {"public"}, "avatar_type": {fakeheygen.AvatarTypeStudio}}, func(l fakeheygen.Look) bool {
			return l.Ownership == "public" && l.AvatarType == fakeheygen.AvatarTypeStudio
		}},
		{url.Values{"group_id": {g.ID}, "ownership": {"private"}}, func(l fakeheygen.Look) bool { return inGroup(l) && l.Ownership == "private" }},
	} {
		tc.q.Set("limit", "13")
		got := ids(t, listAll(t, s, "/v3/avatars/looks", tc.q), "id")
		if want := lookIDs(c.Looks, tc.keep); !slices.Equal(got, want) {
			t.Errorf("%v: got %d looks, want %d", tc.q, len(got), len(want))
		}
	}
	for _, own := range []string{"public", "private"} {
		got := ids(t, listAll(t, s, "/v3/avatars", url.Values{"ownership": {own}, "limit": {"50"}}), "id")
		var want []string
		for _, g := range c.Groups {
			if g.Ownership == own {
				want = append(want, g.ID)
			}
		}
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("groups ownership=%s: got %d, want %d", own, len(got), len(want))
		}
	}
}

func TestAvatarInvalidParameters(t *testing.T) {
	s := newServer(t, fakeheygen.Options{Catalogue: fakeheygen.DemoCatalogue()})
	for _, tc := range []struct{ q, param string }{
		{"limit=0", "limit"}, {"limit=51", "limit"}, {"limit=abc", "limit"}, {"limit=-1", "limit"},
		{"limit=1.5", "limit"}, {"limit=%2B5", "limit"}, {"ownership=mine", "ownership"}, {"avatar_type=robot", "avatar_type"},
		{"group_id=a%2Fb", "group_id"}, {"token=garbage!", "token"}, {"token=bzEyLjEyMzQ", "token"}, {"a=%zz", ""},
	} {
		wantError(t, get(t, s, "/v3/avatars/looks?"+tc.q), 400, "invalid_parameter", tc.param)
	}
	wantError(t, get(t, s, "/v3/avatars?limit=51"), 400, "invalid_parameter", "limit")
	wantError(t, get(t, s, "/v3/avatars?ownership=x"), 400, "invalid_parameter", "ownership")

	// A token is bound to the list and filters it was issued for.
	p := decode[page](t, get(t, s, "/v3/avatars/looks?limit=5&ownership=public").body)
	tok := url.QueryEscape(*p.NextToken)
	for _, q := range []string{"ownership=private", "", "avatar_type=studio_avatar&ownership=public"} {
		wantError(t, get(t, s, "/v3/avatars/looks?token="+tok+"&"+q), 400, "invalid_parameter", "token")
	}
	wantError(t, get(t, s, "/v3/avatars?ownership=public&token="+tok), 400, "invalid_parameter", "token")
	wantOK(t, get(t, s, "/v3/avatars/looks?limit=7&ownership=public&token="+tok))
}

func TestAvatarGetAndNulls(t *testing.T) {
	c := fakeheygen.DemoCatalogue()
	s := newServer(t, fakeheygen.Options{Catalogue: c})
	for _, l := range c.Looks {
		r := get(t, s, "/v3/avatars/looks/"+l.ID)
		wantOK(t, r)
		got := decode[struct{ Data fakeheygen.Look }](t, r.body).Data
		got.Ownership = l.Ownership
		if !reflect.DeepEqual(got, l) {
			t.Fatalf("look %s round trip:\n got %+v\nwant %+v", l.ID, got, l)
		}
	}
	for _, g := range c.Groups {
		r := get(t, s, "/v3/avatars/"+g.ID)
		wantOK(t, r)
		got := decode[struct{ Data fakeheygen.Group }](t, r.body).Data
		got.Ownership = g.Ownership
		if !reflect.DeepEqual(got, g) {
			t.Fatalf("group %s round trip", g.ID)
		}
	}
	r := get(t, s, "/v3/avatars/looks/no_such_look")
	wantError(t, r, 404, "avatar_not_found", "look_id")
	if !strings.Contains(string(r.body), "Avatar no_such_look not found") {
		t.Fatalf("message: %s", r.body)
	}
	wantError(t, get(t, s, "/v3/avatars/no_such_group"), 404, "avatar_not_found", "group_id")

	// Nil fields are explicit JSON nulls, never absent; Ownership is not serialised.
	i := slices.IndexFunc(c.Looks, func(l fakeheygen.Look) bool { return l.Tags == nil && l.PreviewVideoURL == nil })
	if i < 0 {
		t.Fatal("demo has no look with null tags and preview_video_url")
	}
	raw := decode[struct{ Data map[string]json.RawMessage }](t, get(t, s, "/v3/avatars/looks/"+c.Looks[i].ID).body).Data
	for _, f := range []string{"tags", "preview_video_url"} {
		if v, ok := raw[f]; !ok || string(v) != "null" {
			t.Errorf("%s = %q present %v, want null", f, v, ok)
		}
	}
	if _, ok := raw["Ownership"]; ok {
		t.Error("ownership is serialised")
	}
}

func TestDemoCatalogue(t *testing.T) {
	c := fakeheygen.DemoCatalogue()
	if !reflect.DeepEqual(c, fakeheygen.DemoCatalogue()) {
		t.Fatal("DemoCatalogue is not deterministic")
	}
	// The README and the end-to-end tests quote these.
	if len(c.Groups) != 60 || len(c.Looks) != 425 || !slices.ContainsFunc(c.Looks, func(l fakeheygen.Look) bool { return l.ID == "Zoe_OutdoorPark_20240523" }) {
		t.Fatalf("%d groups, %d looks, or Zoe_OutdoorPark_20240523 missing", len(c.Groups), len(c.Looks))
	}
	voices := map[string]fakeheygen.Voice{}
	for _, v := range fakeheygen.DemoVoices() {
		voices[v.VoiceID] = v
	}
	checkVoice := func(what, id string, vid *string, gender *string) {
		if vid == nil {
			return
		}
		v, ok := voices[*vid]
		switch {
		case !ok:
			t.Errorf("%s %s: default_voice_id %s is not a demo voice", what, id, *vid)
		case v.Type != fakeheygen.VoiceTypePublic:
			t.Errorf("%s %s: default voice %s is not public", what, id, *vid)
		case gender != nil && v.Gender != *gender:
			t.Errorf("%s %s: default voice %s is %s, avatar %s", what, id, *vid, v.Gender, *gender)
		}
	}
	idRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	seen := map[string]bool{}
	statuses := map[string]int{}
	withVoice := 0
	for _, g := range c.Groups {
		if !idRE.MatchString(g.ID) || seen[g.ID] || g.Name == "" || g.CreatedAt <= 0 {
			t.Errorf("group %q: bad or duplicate id, or required field missing", g.ID)
		}
		seen[g.ID] = true
		if g.Status != nil {
			statuses[*g.Status]++
		}
		checkVoice("group", g.ID, g.DefaultVoiceID, g.Gender)
		if g.DefaultVoiceID != nil {
			withVoice++
		}
	}
	for _, st := range []string{"processing", "pending_consent", "failed", "completed", "archived"} {
		if statuses[st] == 0 {
			t.Errorf("no group with status %s (%v)", st, statuses)
		}
	}
	counts := map[string]int{}
	types := map[string]int{}
	for _, l := range c.Looks {
		if !idRE.MatchString(l.ID) || seen[l.ID] {
			t.Errorf("look id %q bad or duplicate", l.ID)
		}
		seen[l.ID] = true
		types[l.AvatarType]++
		if l.GroupID != nil {
			counts[*l.GroupID]++
		}
		checkVoice("look", l.ID, l.DefaultVoiceID, l.Gender)
	}
	for _, g := range c.Groups {
		if g.LooksCount != counts[g.ID] {
			t.Errorf("group %s looks_count %d, has %d", g.ID, g.LooksCount, counts[g.ID])
		}
	}
	if len(types) != 3 || withVoice < len(c.Groups)/2 {
		t.Errorf("avatar types %v; %d groups with a default voice", types, withVoice)
	}
}

func TestGenerateCatalogue(t *testing.T) {
	a := fakeheygen.GenerateCatalogue(7, 100, 50)
	if len(a.Groups) != 100 || len(a.Looks) != 5000 {
		t.Fatalf("%d groups, %d looks", len(a.Groups), len(a.Looks))
	}
	if !reflect.DeepEqual(a, fakeheygen.GenerateCatalogue(7, 100, 50)) {
		t.Fatal("not deterministic")
	}
	if reflect.DeepEqual(a, fakeheygen.GenerateCatalogue(8, 100, 50)) {
		t.Fatal("seed ignored")
	}
	seen := map[string]bool{}
	for _, l := range a.Looks {
		if seen[l.ID] {
			t.Fatalf("duplicate look id %s", l.ID)
		}
		seen[l.ID] = true
	}
	if c := fakeheygen.GenerateCatalogue(1, -1, -1); len(c.Groups) != 0 || len(c.Looks) != 0 {
		t.Fatal("negative sizes")
	}
}

func TestSetCatalogue(t *testing.T) {
	s := newServer(t, fakeheygen.Options{})
	if r := get(t, s, "/v3/avatars/looks"); string(r.body) != `{"data":[],"has_more":false,"next_token":null}` {
		t.Fatalf("empty catalogue page: %s", r.body)
	}
	c := fakeheygen.GenerateCatalogue(3, 10, 3)
	s.SetCatalogue(c)
	c.Looks[0].Name = "mutated after SetCatalogue"
	if n := len(listAll(t, s, "/v3/avatars/looks", url.Values{"limit": {"4"}})); n != 30 {
		t.Fatalf("%d looks after SetCatalogue", n)
	}
	if r := get(t, s, "/v3/avatars/looks/"+c.Looks[0].ID); strings.Contains(string(r.body), "mutated") {
		t.Fatal("server retained the caller's catalogue")
	}
	// A token from a larger catalogue gives an empty last page after shrinking.
	p := decode[page](t, get(t, s, "/v3/avatars/looks?limit=25").body)
	s.SetCatalogue(fakeheygen.GenerateCatalogue(3, 2, 3))
	p = decode[page](t, get(t, s, "/v3/avatars/looks?limit=25&token="+url.QueryEscape(*p.NextToken)).body)
	if len(p.Data) != 0 || p.HasMore {
		t.Fatalf("stale token page %+v", p)
	}
}
