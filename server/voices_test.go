package server_test

import (
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// The tests below check the gateway's voices against the fake's voice
// library (fakeheygen.DemoVoices), filtered here independently of the
// catalogue's code.

// demoVoices returns the fake's voice library, the one setup serves.
func demoVoices() []fakeheygen.Voice { return fakeheygen.DemoVoices() }

// voiceIDsWhere returns the ids of the demo voices keep selects, in id order.
func voiceIDsWhere(voices []fakeheygen.Voice, keep func(fakeheygen.Voice) bool) []string {
	var ids []string
	for _, v := range voices {
		if keep(v) {
			ids = append(ids, v.VoiceID)
		}
	}
	sort.Strings(ids)
	return ids
}

// listVoices pages through ListVoices with req's filters and page size.
func listVoices(t *testing.T, c heygenv1.VoicesServiceClient, req *heygenv1.ListVoicesRequest) []*heygenv1.Voice {
	t.Helper()
	req = proto.Clone(req).(*heygenv1.ListVoicesRequest)
	var out []*heygenv1.Voice
	for i := 0; ; i++ {
		resp, err := c.ListVoices(ctx(t), req)
		if err != nil {
			t.Fatalf("ListVoices(%v): %v", req, err)
		}
		out = append(out, resp.GetVoices()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return out
		}
		if i > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

func idsOf(voices []*heygenv1.Voice) []string {
	ids := make([]string, len(voices))
	for i, v := range voices {
		ids[i] = v.GetId()
	}
	return ids
}

// voiceWhere returns the first demo voice keep selects, failing the test
// when there is none (the demo library must have one for the test to mean
// anything).
func voiceWhere(t *testing.T, what string, keep func(fakeheygen.Voice) bool) fakeheygen.Voice {
	t.Helper()
	for _, v := range demoVoices() {
		if keep(v) {
			return v
		}
	}
	t.Fatalf("the demo voice library has no %s", what)
	return fakeheygen.Voice{}
}

func TestListVoicesFilters(t *testing.T) {
	indexed := []string{fakeheygen.EngineStarfish, fakeheygen.EngineFish}
	h := setup(t, setupOptions{withCatalogue: true, catalogueOpts: catalogue.Options{VoiceEngines: indexed}})
	voices := heygenv1.NewVoicesServiceClient(h.conn)
	lib := demoVoices()
	clone := voiceWhere(t, "cloned voice", func(v fakeheygen.Voice) bool { return v.Type == fakeheygen.VoiceTypePrivate })
	word := strings.Fields(lib[4].Name)[0] // a first name: several voices share it
	idPart := lib[11].VoiceID[5:17]
	contains := func(v fakeheygen.Voice, q string) bool {
		q = strings.ToLower(q)
		return strings.Contains(strings.ToLower(v.Name), q) || strings.Contains(strings.ToLower(v.VoiceID), q)
	}
	tests := []struct {
		name string
		req  *heygenv1.ListVoicesRequest
		keep func(fakeheygen.Voice) bool
	}{
		{"everything", &heygenv1.ListVoicesRequest{}, func(fakeheygen.Voice) bool { return true }},
		{"public", &heygenv1.ListVoicesRequest{Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC},
			func(v fakeheygen.Voice) bool { return v.Type == fakeheygen.VoiceTypePublic }},
		{"private (cloned)", &heygenv1.ListVoicesRequest{Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE},
			func(v fakeheygen.Voice) bool { return v.Type == fakeheygen.VoiceTypePrivate }},
		{"language, any case", &heygenv1.ListVoicesRequest{Language: "jAPANESE"},
			func(v fakeheygen.Voice) bool { return v.Language == "Japanese" }},
		{"gender, any case", &heygenv1.ListVoicesRequest{Gender: "FEMALE"},
			func(v fakeheygen.Voice) bool { return v.Gender == "female" }},
		{"engine", &heygenv1.ListVoicesRequest{Engine: fakeheygen.EngineStarfish},
			func(v fakeheygen.Voice) bool { return slices.Contains(v.Engines, fakeheygen.EngineStarfish) }},
		{"another indexed engine, cloned", &heygenv1.ListVoicesRequest{Engine: fakeheygen.EngineFish, Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE},
			func(v fakeheygen.Voice) bool {
				return v.Type == fakeheygen.VoiceTypePrivate && slices.Contains(v.Engines, fakeheygen.EngineFish)
			}},
		{"query on name", &heygenv1.ListVoicesRequest{Query: strings.ToUpper(word)}, func(v fakeheygen.Voice) bool { return contains(v, word) }},
		{"query on id", &heygenv1.ListVoicesRequest{Query: idPart}, func(v fakeheygen.Voice) bool { return contains(v, idPart) }},
		{"query on a clone's name", &heygenv1.ListVoicesRequest{Query: clone.Name}, func(v fakeheygen.Voice) bool { return contains(v, clone.Name) }},
		{"public French male starfish", &heygenv1.ListVoicesRequest{Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC, Language: "french",
			Gender: "male", Engine: fakeheygen.EngineStarfish},
			func(v fakeheygen.Voice) bool {
				return v.Type == fakeheygen.VoiceTypePublic && v.Language == "French" && v.Gender == "male" &&
					slices.Contains(v.Engines, fakeheygen.EngineStarfish)
			}},
		{"no match", &heygenv1.ListVoicesRequest{Query: "zzz-no-such-voice-zzz"}, func(fakeheygen.Voice) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := voiceIDsWhere(lib, tt.keep)
			if tt.name != "no match" && (len(want) == 0 || len(want) == len(lib) && tt.name != "everything") {
				t.Fatalf("the filter keeps %d of %d demo voices: it proves nothing", len(want), len(lib))
			}
			for _, size := range []int32{7, 500} {
				req := proto.Clone(tt.req).(*heygenv1.ListVoicesRequest)
				req.PageSize = size
				got := idsOf(listVoices(t, voices, req))
				if !slices.Equal(got, want) {
					t.Fatalf("page size %d: got %d voices, want %d (in id order)\n got %v\nwant %v", size, len(got), len(want), head(got), head(want))
				}
			}
		})
	}

	// Each voice carries the indexed engines it works with, and its fields.
	byID := map[string]fakeheygen.Voice{}
	for _, v := range lib {
		byID[v.VoiceID] = v
	}
	for _, v := range listVoices(t, voices, &heygenv1.ListVoicesRequest{PageSize: 500}) {
		f := byID[v.GetId()]
		var wantEngines []string
		for _, e := range indexed {
			if slices.Contains(f.Engines, e) {
				wantEngines = append(wantEngines, e)
			}
		}
		slices.Sort(wantEngines)
		wantOwnership := heygenv1.Ownership_OWNERSHIP_PUBLIC
		if f.Type == fakeheygen.VoiceTypePrivate {
			wantOwnership = heygenv1.Ownership_OWNERSHIP_PRIVATE
		}
		if !slices.Equal(v.GetEngines(), wantEngines) || v.GetName() != f.Name || v.GetLanguage() != f.Language ||
			v.GetGender() != f.Gender || v.GetOwnership() != wantOwnership || v.GetSupportsPause() != f.SupportPause ||
			v.GetSupportsLocale() != f.SupportLocale {
			t.Fatalf("voice %s came back as %v, want %+v with engines %v", v.GetId(), v, f, wantEngines)
		}
	}

	// An engine the gateway does not index cannot be answered from memory:
	// refused, naming the field, and nothing is sent to HeyGen.
	before := h.fake.RequestCount()
	_, err := voices.ListVoices(ctx(t), &heygenv1.ListVoicesRequest{Engine: fakeheygen.EngineElevenLabs})
	st, info, br, _ := statusParts(t, err)
	if st.Code() != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest || br.GetFieldViolations()[0].GetField() != "engine" ||
		!strings.Contains(st.Message(), "-voice-engines") {
		t.Errorf("an engine the gateway does not index: %v %q %v, want INVALID_ARGUMENT on engine naming -voice-engines", st.Code(), st.Message(), info)
	}
	if n := h.fake.RequestCount() - before; n != 0 {
		t.Errorf("the refused engine filter sent %d requests to HeyGen", n)
	}
	if n := h.catalog.Voices.Crawls(); n != 1 {
		t.Errorf("%d voice crawls, want 1", n)
	}
}

// TestListVoicesPagingThroughARefresh: a caller pages while HeyGen's voices
// change and the catalogue refreshes under it: no voice present in both
// snapshots is returned twice or missed.
func TestListVoicesPagingThroughARefresh(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	voices := heygenv1.NewVoicesServiceClient(h.conn)
	old := demoVoices()
	req := &heygenv1.ListVoicesRequest{PageSize: 40}
	resp, err := voices.ListVoices(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	seen := idsOf(resp.GetVoices())
	// Every third voice disappears; new ones appear before the cursor,
	// right after it and at the end.
	var next []fakeheygen.Voice
	for i, v := range old {
		if i%3 != 0 {
			next = append(next, v)
		}
	}
	for _, id := range []string{"000000new_first", seen[len(seen)-1] + "_new", "zzzzzznew_last"} {
		v := old[1]
		v.VoiceID = id
		next = append(next, v)
	}
	h.fake.SetVoices(next)
	if err := h.catalog.Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for req.PageToken = resp.GetNextPageToken(); req.PageToken != ""; req.PageToken = resp.GetNextPageToken() {
		if resp, err = voices.ListVoices(ctx(t), req); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, idsOf(resp.GetVoices())...)
	}
	count := map[string]int{}
	for _, id := range seen {
		count[id]++
	}
	inNext := map[string]bool{}
	for _, v := range next {
		inNext[v.VoiceID] = true
	}
	for _, v := range old {
		if inNext[v.VoiceID] && count[v.VoiceID] != 1 {
			t.Errorf("%s is in both snapshots but was returned %d times", v.VoiceID, count[v.VoiceID])
		}
	}
	if !slices.IsSorted(seen) {
		t.Error("ids are not in ascending order across the refresh")
	}
	if count[seen[39]+"_new"] != 1 || count["zzzzzznew_last"] != 1 || count["000000new_first"] != 0 {
		t.Errorf("new voices: after the cursor %d and %d times, before it %d times; want 1, 1 and 0",
			count[seen[39]+"_new"], count["zzzzzznew_last"], count["000000new_first"])
	}
	if n := h.catalog.Voices.Crawls(); n != 2 {
		t.Errorf("%d voice crawls, want 2", n)
	}
}

// getVoice returns a voice and where the answer came from.
func getVoice(t *testing.T, c heygenv1.VoicesServiceClient, id string) (*heygenv1.Voice, string) {
	t.Helper()
	var md metadata.MD
	resp, err := c.GetVoice(ctx(t), &heygenv1.GetVoiceRequest{VoiceId: id}, grpc.Header(&md))
	if err != nil {
		t.Fatalf("GetVoice(%s): %v", id, err)
	}
	src := md.Get(server.HeaderSource)
	if len(src) != 1 {
		t.Fatalf("GetVoice(%s): header %s = %v", id, server.HeaderSource, src)
	}
	return resp.GetVoice(), src[0]
}

func TestGetVoiceMiss(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	voices := heygenv1.NewVoicesServiceClient(h.conn)
	lib := demoVoices()
	public := voiceWhere(t, "public voice", func(v fakeheygen.Voice) bool { return v.Type == fakeheygen.VoiceTypePublic })
	if v, src := getVoice(t, voices, public.VoiceID); src != "catalogue-fresh" || v.GetName() != public.Name {
		t.Fatalf("a voice in the snapshot: source %q, %v", src, v)
	}
	if n := h.fake.CountPath("/v3/voices/" + public.VoiceID); n != 0 {
		t.Fatalf("a snapshot hit called HeyGen %d times", n)
	}

	// A voice cloned since the crawl is not in the snapshot: fetched from
	// HeyGen once, then remembered.
	fresh := voiceWhere(t, "complete clone", func(v fakeheygen.Voice) bool { return str(v.Status) == fakeheygen.VoiceStatusComplete })
	fresh.VoiceID, fresh.Name = "0123456789abcdef0123456789abcdef", "Cloned Since The Crawl"
	h.fake.SetVoices(append(slices.Clone(lib), fresh))
	if v, src := getVoice(t, voices, fresh.VoiceID); src != "heygen" || v.GetName() != fresh.Name ||
		v.GetStatus() != heygenv1.VoiceStatus_VOICE_STATUS_COMPLETE || v.GetOwnership() != heygenv1.Ownership_OWNERSHIP_PRIVATE {
		t.Fatalf("a miss: source %q, %v", src, v)
	}
	if _, src := getVoice(t, voices, fresh.VoiceID); src != "catalogue-fresh" {
		t.Fatalf("the second get of a miss: source %q, want it remembered", src)
	}
	if n := h.fake.CountPath("/v3/voices/" + fresh.VoiceID); n != 1 {
		t.Fatalf("HeyGen saw %d gets of the new voice, want 1", n)
	}

	// A clone still processing is in the snapshot, but it will change:
	// every get asks HeyGen afresh, and sees it complete once it is.
	processing := voiceWhere(t, "processing clone", func(v fakeheygen.Voice) bool { return str(v.Status) == fakeheygen.VoiceStatusProcessing })
	path := "/v3/voices/" + processing.VoiceID
	before := h.fake.CountPath(path) // the crawl read its details
	for range 2 {
		if v, src := getVoice(t, voices, processing.VoiceID); src != "heygen" || v.GetStatus() != heygenv1.VoiceStatus_VOICE_STATUS_PROCESSING {
			t.Fatalf("a processing clone: source %q, %v", src, v)
		}
	}
	if n := h.fake.CountPath(path) - before; n != 2 {
		t.Fatalf("two gets of a processing clone made %d HeyGen calls, want 2", n)
	}
	done := slices.Clone(lib)
	for i := range done {
		if done[i].VoiceID == processing.VoiceID {
			complete := fakeheygen.VoiceStatusComplete
			done[i].Status = &complete
		}
	}
	h.fake.SetVoices(done)
	if v, src := getVoice(t, voices, processing.VoiceID); src != "heygen" || v.GetStatus() != heygenv1.VoiceStatus_VOICE_STATUS_COMPLETE {
		t.Fatalf("the clone once complete: source %q, %v", src, v)
	}

	// A voice HeyGen does not have is HeyGen's NOT_FOUND.
	_, err := voices.GetVoice(ctx(t), &heygenv1.GetVoiceRequest{VoiceId: "never_existed"})
	if st, info, _, _ := statusParts(t, err); st.Code() != codes.NotFound || info.GetReason() != "HEYGEN_NOT_FOUND" {
		t.Fatalf("unknown voice: %v", err)
	}
	// A malformed id never reaches HeyGen.
	before = h.fake.RequestCount()
	_, err = voices.GetVoice(ctx(t), &heygenv1.GetVoiceRequest{VoiceId: "../users/me"})
	if st, _, br, _ := statusParts(t, err); st.Code() != codes.InvalidArgument || br.GetFieldViolations()[0].GetField() != "voice_id" {
		t.Fatalf("malformed voice id: %v", err)
	}
	if h.fake.RequestCount() != before {
		t.Fatal("a malformed voice id reached HeyGen")
	}
}

func TestClonedVoiceInEachStatus(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	voices := heygenv1.NewVoicesServiceClient(h.conn)
	listed := map[string]*heygenv1.Voice{}
	for _, v := range listVoices(t, voices, &heygenv1.ListVoicesRequest{PageSize: 500, Ownership: heygenv1.Ownership_OWNERSHIP_PRIVATE}) {
		listed[v.GetId()] = v
	}
	for status, want := range map[string]heygenv1.VoiceStatus{
		fakeheygen.VoiceStatusProcessing: heygenv1.VoiceStatus_VOICE_STATUS_PROCESSING,
		fakeheygen.VoiceStatusComplete:   heygenv1.VoiceStatus_VOICE_STATUS_COMPLETE,
		fakeheygen.VoiceStatusFailed:     heygenv1.VoiceStatus_VOICE_STATUS_FAILED,
	} {
		t.Run(status, func(t *testing.T) {
			f := voiceWhere(t, status+" clone", func(v fakeheygen.Voice) bool { return str(v.Status) == status })
			got, _ := getVoice(t, voices, f.VoiceID)
			// The list carries what the crawl read from each clone's details.
			for from, v := range map[string]*heygenv1.Voice{"GetVoice": got, "ListVoices": listed[f.VoiceID]} {
				if v.GetStatus() != want || v.GetStatusRaw() != status || v.GetOwnership() != heygenv1.Ownership_OWNERSHIP_PRIVATE {
					t.Errorf("%s: status %v %q ownership %v, want %v %q private", from, v.GetStatus(), v.GetStatusRaw(), v.GetOwnership(), want, status)
				}
				if f.CreatedAt == nil || v.GetCreateTime().GetSeconds() != *f.CreatedAt {
					t.Errorf("%s: create_time %v, want %v", from, v.GetCreateTime(), f.CreatedAt)
				}
				wantFailure := ""
				if status == fakeheygen.VoiceStatusFailed {
					wantFailure = str(f.FailureMessage)
					if wantFailure == "" {
						t.Fatal("the demo's failed clone has no failure message")
					}
				}
				if v.GetFailureMessage() != wantFailure || (v.FailureMessage != nil) != (wantFailure != "") {
					t.Errorf("%s: failure_message %v, want %q", from, v.FailureMessage, wantFailure)
				}
				// HeyGen has no preview until a clone is complete.
				if (v.PreviewAudioUrl != nil) != (status == fakeheygen.VoiceStatusComplete) {
					t.Errorf("%s: preview_audio_url %v for a %s clone", from, v.PreviewAudioUrl, status)
				}
			}
		})
	}
}

func TestVoicesPassThrough(t *testing.T) {
	// No background health probe: every request the fake counts is this test's.
	h := setup(t, setupOptions{noBackground: true})
	voices := heygenv1.NewVoicesServiceClient(h.conn)
	var md metadata.MD
	resp, err := voices.ListVoices(ctx(t), &heygenv1.ListVoicesRequest{PageSize: 1000, Language: "German", Gender: "male",
		Engine: fakeheygen.EngineElevenLabs, Ownership: heygenv1.Ownership_OWNERSHIP_PUBLIC}, grpc.Header(&md))
	if err != nil {
		t.Fatal(err)
	}
	if src := md.Get(server.HeaderSource); len(src) != 1 || src[0] != "heygen" {
		t.Errorf("pass-through source header %v, want heygen", src)
	}
	// HeyGen filters; an engine the catalogue would not index is HeyGen's to answer.
	want := voiceIDsWhere(demoVoices(), func(v fakeheygen.Voice) bool {
		return v.Type == fakeheygen.VoiceTypePublic && v.Language == "German" && v.Gender == "male" && slices.Contains(v.Engines, fakeheygen.EngineElevenLabs)
	})
	got := idsOf(resp.GetVoices())
	sort.Strings(got)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("pass-through filters: got %v, want %v", got, want)
	}
	reqs := h.fake.Requests()
	q, _ := url.ParseQuery(reqs[len(reqs)-1].RawQuery)
	if q.Get("limit") != "100" || q.Get("type") != "public" || q.Get("engine") != fakeheygen.EngineElevenLabs {
		t.Errorf("HeyGen was asked %v, want limit=100 (its maximum), type=public and the engine", q)
	}
	if resp, err := voices.ListVoices(ctx(t), &heygenv1.ListVoicesRequest{PageSize: 1000}); err != nil || len(resp.GetVoices()) != heygen.MaxVoicePageLimit {
		t.Errorf("page_size 1000 passing through: %v, %d voices, want %d", err, len(resp.GetVoices()), heygen.MaxVoicePageLimit)
	}

	before := h.fake.RequestCount()
	_, err = voices.ListVoices(ctx(t), &heygenv1.ListVoicesRequest{Query: "anna"})
	st, info, _, _ := statusParts(t, err)
	if st.Code() != codes.FailedPrecondition || info.GetReason() != server.ReasonCatalogueDisabled || info.GetMetadata()["fields"] != "query" {
		t.Errorf("query without the catalogue: %v %v, want FAILED_PRECONDITION CATALOGUE_DISABLED on query", st.Code(), info)
	}
	if h.fake.RequestCount() != before {
		t.Error("a refused query reached HeyGen")
	}
	clone := voiceWhere(t, "failed clone", func(v fakeheygen.Voice) bool { return str(v.Status) == fakeheygen.VoiceStatusFailed })
	if v, src := getVoice(t, voices, clone.VoiceID); src != "heygen" || v.GetStatus() != heygenv1.VoiceStatus_VOICE_STATUS_FAILED ||
		v.GetFailureMessage() == "" {
		t.Errorf("GetVoice passing through: source %q, %v", src, v)
	}
}

// TestEveryDemoAvatarsDefaultVoiceExists: a caller that picked an avatar
// can check the voice it speaks with by default in one GetVoice.
func TestEveryDemoAvatarsDefaultVoiceExists(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true})
	voices := heygenv1.NewVoicesServiceClient(h.conn)
	ids := map[string]bool{}
	for req := (&heygenv1.ListAvatarsRequest{PageSize: 500}); ; {
		resp, err := h.avatars.ListAvatars(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range resp.GetAvatars() {
			if a.DefaultVoiceId != nil {
				ids[a.GetDefaultVoiceId()] = true
			}
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	if len(ids) < 10 {
		t.Fatalf("the demo avatars name only %d default voices: the test proves little", len(ids))
	}
	for id := range ids {
		v, src := getVoice(t, voices, id)
		if v.GetId() != id || src != "catalogue-fresh" {
			t.Errorf("default voice %s: %v from %q, want it from the catalogue", id, v, src)
		}
	}
	for _, r := range h.fake.Requests() {
		if strings.HasPrefix(r.Path, "/v3/voices/") && ids[strings.TrimPrefix(r.Path, "/v3/voices/")] {
			t.Errorf("default voice %s was fetched from HeyGen: the catalogue should hold it", r.Path)
		}
	}
}
