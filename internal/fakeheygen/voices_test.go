package fakeheygen_test

import (
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

func voiceIDs(voices []fakeheygen.Voice, keep func(fakeheygen.Voice) bool) []string {
	var out []string
	for _, v := range voices {
		if keep(v) {
			out = append(out, v.VoiceID)
		}
	}
	return out
}

func TestVoiceList(t *testing.T) {
	voices := fakeheygen.DemoVoices()
	s := newServer(t, fakeheygen.Options{Voices: voices})
	public := func(v fakeheygen.Voice) bool { return v.Type == fakeheygen.VoiceTypePublic }
	for _, tc := range []struct {
		q    url.Values
		keep func(fakeheygen.Voice) bool
	}{
		{url.Values{}, public},
		{url.Values{"type": {"public"}}, public},
		{url.Values{"type": {"private"}}, func(v fakeheygen.Voice) bool { return v.Type == fakeheygen.VoiceTypePrivate }},
		{url.Values{"engine": {"starfish"}}, func(v fakeheygen.Voice) bool {
			return public(v) && slices.Contains(v.Engines, fakeheygen.EngineStarfish)
		}},
		{url.Values{"engine": {"fish"}, "type": {"private"}}, func(v fakeheygen.Voice) bool {
			return v.Type == "private" && slices.Contains(v.Engines, fakeheygen.EngineFish)
		}},
		{url.Values{"engine": {"nonesuch"}}, func(fakeheygen.Voice) bool { return false }},
		{url.Values{"language": {"japanese"}}, func(v fakeheygen.Voice) bool { return public(v) && v.Language == "Japanese" }},
		{url.Values{"gender": {"male"}, "language": {"French"}, "engine": {"elevenlabs"}}, func(v fakeheygen.Voice) bool {
			return public(v) && v.Gender == "male" && v.Language == "French" && slices.Contains(v.Engines, fakeheygen.EngineElevenLabs)
		}},
	} {
		tc.q.Set("limit", "17")
		got := ids(t, listAll(t, s, "/v3/voices", tc.q), "voice_id")
		want := voiceIDs(voices, tc.keep)
		if !slices.Equal(got, want) {
			t.Errorf("%v: got %d voices, want %d", tc.q, len(got), len(want))
		}
	}
	p := decode[page](t, get(t, s, "/v3/voices").body)
	if len(p.Data) != fakeheygen.DefaultLimit || !p.HasMore {
		t.Fatalf("default page: %d, has_more %v", len(p.Data), p.HasMore)
	}
	if p := decode[page](t, get(t, s, "/v3/voices?limit=100").body); len(p.Data) != 100 {
		t.Fatalf("limit 100 gave %d", len(p.Data))
	}
	// A list item has exactly the schema's fields: no engines, no status.
	item := decode[map[string]json.RawMessage](t, p.Data[0])
	var keys []string
	for k := range item {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"gender", "language", "name", "preview_audio_url", "support_locale", "support_pause", "type", "voice_id"}
	if !slices.Equal(keys, want) {
		t.Fatalf("list item fields %v, want %v", keys, want)
	}
}

func TestVoiceListInvalid(t *testing.T) {
	s := newServer(t, fakeheygen.Options{Voices: fakeheygen.DemoVoices()})
	for _, tc := range []struct{ q, param string }{
		{"limit=0", "limit"}, {"limit=101", "limit"}, {"type=all", "type"}, {"gender=other", "gender"},
		{"token=xyz", "token"},
	} {
		wantError(t, get(t, s, "/v3/voices?"+tc.q), 400, "invalid_parameter", tc.param)
	}
	p := decode[page](t, get(t, s, "/v3/voices?limit=5&language=English").body)
	tok := url.QueryEscape(*p.NextToken)
	wantError(t, get(t, s, "/v3/voices?language=German&token="+tok), 400, "invalid_parameter", "token")
	// The language filter ignores case, so the token does too.
	wantOK(t, get(t, s, "/v3/voices?language=english&token="+tok))
}

type voiceDetail struct {
	VoiceID                  string  `json:"voice_id"`
	Name                     *string `json:"name"`
	Language                 *string `json:"language"`
	Gender                   *string `json:"gender"`
	PreviewAudioURL          *string `json:"preview_audio_url"`
	Status                   *string `json:"status"`
	SupportPause             bool    `json:"support_pause"`
	SupportInteractiveAvatar bool    `json:"support_interactive_avatar"`
	CreatedAt                *int64  `json:"created_at"`
}

func TestVoiceDetail(t *testing.T) {
	voices := fakeheygen.DemoVoices()
	s := newServer(t, fakeheygen.Options{Voices: voices})
	byStatus := map[string]bool{}
	for _, v := range voices {
		r := get(t, s, "/v3/voices/"+v.VoiceID)
		wantOK(t, r)
		raw := decode[struct{ Data map[string]json.RawMessage }](t, r.body).Data
		d := decode[struct{ Data voiceDetail }](t, r.body).Data
		status := ""
		if v.Status != nil {
			status = *v.Status
		}
		byStatus[status] = true
		if d.VoiceID != v.VoiceID || *d.Name != v.Name || *d.Language != v.Language || *d.Gender != v.Gender ||
			d.SupportPause != v.SupportPause || d.SupportInteractiveAvatar != v.SupportInteractiveAvatar ||
			!reflect.DeepEqual(d.CreatedAt, v.CreatedAt) || !reflect.DeepEqual(d.Status, v.Status) {
			t.Fatalf("voice %s detail %s", v.VoiceID, r.body)
		}
		if string(raw["status"]) == "" {
			t.Fatalf("voice %s: status absent, want a value or null", v.VoiceID)
		}
		msg, hasMsg := raw["failure_message"]
		if hasMsg != (status == fakeheygen.VoiceStatusFailed) || hasMsg && !strings.Contains(string(msg), "failed") {
			t.Fatalf("voice %s (%s): failure_message %s", v.VoiceID, status, msg)
		}
		if (status == "processing" || status == "failed") && d.PreviewAudioURL != nil {
			t.Fatalf("voice %s (%s) has a preview", v.VoiceID, status)
		}
		if _, ok := raw["engines"]; ok {
			t.Fatal("engines are serialised")
		}
	}
	if len(byStatus) != 4 {
		t.Fatalf("demo voices cover statuses %v, want public, processing, complete, failed", byStatus)
	}
	r := get(t, s, "/v3/voices/no_such_voice")
	wantError(t, r, 404, "voice_not_found", "voice_id")
}

func TestDemoVoices(t *testing.T) {
	voices := fakeheygen.DemoVoices()
	if !reflect.DeepEqual(voices, fakeheygen.DemoVoices()) {
		t.Fatal("DemoVoices is not deterministic")
	}
	langs := map[string]bool{}
	types := map[string]int{}
	engines := map[string]int{}
	seen := map[string]bool{}
	for _, v := range voices {
		if seen[v.VoiceID] || len(v.VoiceID) != 32 || v.Name == "" || len(v.Engines) == 0 {
			t.Fatalf("voice %+v: duplicate id, bad id, no name or no engine", v)
		}
		seen[v.VoiceID] = true
		langs[v.Language] = true
		types[v.Type]++
		for _, e := range v.Engines {
			engines[e]++
		}
		if (v.Type == fakeheygen.VoiceTypePrivate) != (v.Status != nil) {
			t.Fatalf("voice %s: type %s with status %v", v.VoiceID, v.Type, v.Status)
		}
	}
	if len(voices) < 200 || len(langs) != 12 || types["public"] == 0 || types["private"] == 0 || len(engines) != 3 {
		t.Fatalf("%d voices, %d languages, types %v, engines %v", len(voices), len(langs), types, engines)
	}
}

func TestGenerateVoices(t *testing.T) {
	a := fakeheygen.GenerateVoices(5, 5000)
	if len(a) != 5000 || !reflect.DeepEqual(a, fakeheygen.GenerateVoices(5, 5000)) {
		t.Fatal("wrong size or not deterministic")
	}
	if reflect.DeepEqual(a[:10], fakeheygen.GenerateVoices(6, 10)) {
		t.Fatal("seed ignored")
	}
	// A large library appended to the demo one keeps the avatars' voices and unique ids.
	all := append(fakeheygen.DemoVoices(), a...)
	seen := map[string]bool{}
	for _, v := range all {
		if seen[v.VoiceID] {
			t.Fatalf("duplicate id %s", v.VoiceID)
		}
		seen[v.VoiceID] = true
	}
	s := newServer(t, fakeheygen.Options{Voices: all})
	if n := len(listAll(t, s, "/v3/voices", url.Values{"limit": {"100"}, "type": {"private"}})); n != len(voiceIDs(all, func(v fakeheygen.Voice) bool { return v.Type == "private" })) {
		t.Fatalf("listed %d private voices", n)
	}
	if len(fakeheygen.GenerateVoices(1, -3)) != 0 {
		t.Fatal("negative size")
	}
}

func TestSetVoices(t *testing.T) {
	s := newServer(t, fakeheygen.Options{})
	if r := get(t, s, "/v3/voices"); string(r.body) != `{"data":[],"has_more":false,"next_token":null}` {
		t.Fatalf("empty library: %s", r.body)
	}
	v := fakeheygen.GenerateVoices(2, 3)
	s.SetVoices(v)
	v[0].Name = "mutated"
	r := get(t, s, "/v3/voices/"+v[0].VoiceID)
	wantOK(t, r)
	if strings.Contains(string(r.body), "mutated") {
		t.Fatal("server retained the caller's voices")
	}
}
