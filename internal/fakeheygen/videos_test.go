package fakeheygen_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// demo picks demo data with the properties a test needs.
type demo struct {
	look          fakeheygen.Look // public, completed, with a default voice and avatar_iv
	lookNoVoice   fakeheygen.Look // public, no default voice
	lookNotReady  fakeheygen.Look // private, processing
	voice         fakeheygen.Voice
	voiceNoFish   fakeheygen.Voice // public, not on the fish engine
	voiceCloning  fakeheygen.Voice // private, processing
	voiceFailed   fakeheygen.Voice // private, failed
	voiceComplete fakeheygen.Voice // private, complete
}

func pickDemo(t testing.TB) demo {
	t.Helper()
	var d demo
	looks := fakeheygen.DemoCatalogue().Looks
	find := func(what string, keep func(fakeheygen.Look) bool) fakeheygen.Look {
		i := slices.IndexFunc(looks, keep)
		if i < 0 {
			t.Fatalf("demo catalogue has no %s", what)
		}
		return looks[i]
	}
	d.look = find("usable look", func(l fakeheygen.Look) bool {
		return l.Ownership == "public" && l.DefaultVoiceID != nil && slices.Contains(l.SupportedAPIEngines, "avatar_iv") &&
			!slices.Contains(l.SupportedAPIEngines, "avatar_v")
	})
	d.lookNoVoice = find("look without voice", func(l fakeheygen.Look) bool { return l.Ownership == "public" && l.DefaultVoiceID == nil })
	d.lookNotReady = find("processing look", func(l fakeheygen.Look) bool { return l.Status != nil && *l.Status == "processing" })
	voices := fakeheygen.DemoVoices()
	findV := func(what string, keep func(fakeheygen.Voice) bool) fakeheygen.Voice {
		i := slices.IndexFunc(voices, keep)
		if i < 0 {
			t.Fatalf("demo voices have no %s", what)
		}
		return voices[i]
	}
	status := func(st string) func(fakeheygen.Voice) bool {
		return func(v fakeheygen.Voice) bool { return v.Status != nil && *v.Status == st }
	}
	d.voice = findV("public voice", func(v fakeheygen.Voice) bool { return v.Type == "public" })
	d.voiceNoFish = findV("voice without fish", func(v fakeheygen.Voice) bool {
		return v.Type == "public" && !slices.Contains(v.Engines, fakeheygen.EngineFish)
	})
	d.voiceCloning = findV("processing clone", status(fakeheygen.VoiceStatusProcessing))
	d.voiceFailed = findV("failed clone", status(fakeheygen.VoiceStatusFailed))
	d.voiceComplete = findV("complete clone", status(fakeheygen.VoiceStatusComplete))
	return d
}

type created struct {
	Data struct {
		VideoID      string `json:"video_id"`
		Status       string `json:"status"`
		OutputFormat string `json:"output_format"`
	} `json:"data"`
}

func create(t testing.TB, s *fakeheygen.Server, body string, header map[string]string) response {
	t.Helper()
	return call{method: http.MethodPost, path: "/v3/videos", body: body, header: header}.must(t, s)
}

func mustCreate(t testing.TB, s *fakeheygen.Server, body string) string {
	t.Helper()
	r := create(t, s, body, nil)
	wantOK(t, r)
	c := decode[created](t, r.body)
	if c.Data.VideoID == "" || c.Data.Status != "waiting" {
		t.Fatalf("create answered %s", r.body)
	}
	return c.Data.VideoID
}

func getVideo(t testing.TB, s *fakeheygen.Server, id string) (fakeheygen.Video, map[string]json.RawMessage) {
	t.Helper()
	r := get(t, s, "/v3/videos/"+id)
	wantOK(t, r)
	return decode[struct{ Data fakeheygen.Video }](t, r.body).Data, decode[struct{ Data map[string]json.RawMessage }](t, r.body).Data
}

func avatarBody(look, extra string) string {
	return `{"type":"avatar","avatar_id":"` + look + `","script":"Hello there, this is a test of the fake."` + extra + `}`
}

// quick serves the demo data with renders that take one second each step on a manual
// clock, no create limit, and no create delay.
func quick(t testing.TB, c *clock, opts fakeheygen.Options) *fakeheygen.Server {
	t.Helper()
	def := demoOptions()
	def.Clock = c.Now
	def.RenderPending, def.RenderProcessing = time.Second, time.Second
	def.CreateRate = -1
	def.CreateDelay = opts.CreateDelay
	def.Middleware = opts.Middleware
	if opts.CreateRate != 0 {
		def.CreateRate, def.CreateBurst = opts.CreateRate, opts.CreateBurst
	}
	if opts.Account.Username != "" {
		def.Account = opts.Account
	}
	return newServer(t, def)
}

func TestCreateVideoResponse(t *testing.T) {
	d := pickDemo(t)
	s := quick(t, newClock(), fakeheygen.Options{})
	r := create(t, s, avatarBody(d.look.ID, ""), nil)
	wantOK(t, r)
	raw := decode[struct{ Data map[string]json.RawMessage }](t, r.body).Data
	if len(raw) != 3 || string(raw["status"]) != `"waiting"` || string(raw["output_format"]) != `"mp4"` || len(raw["video_id"]) != 34 {
		t.Fatalf("create response %s", r.body)
	}
	r = create(t, s, avatarBody(d.look.ID, `,"output_format":"webm","voice_id":"`+d.voiceComplete.VoiceID+`"`), nil)
	wantOK(t, r)
	if c := decode[created](t, r.body); c.Data.OutputFormat != "webm" {
		t.Fatalf("webm create %s", r.body)
	}
	img := `{"type":"image","image":{"type":"url","url":"https://example.com/me.png"},"script":"Hi","voice_id":"` + d.voice.VoiceID + `"}`
	mustCreate(t, s, img)
	mustCreate(t, s, `{"type":"image","image":{"type":"base64","data":"aGVsbG8=","media_type":"image/png"},"audio_url":"https://example.com/a.mp3"}`)
}

func TestRenderProgression(t *testing.T) {
	d := pickDemo(t)
	c := newClock()
	s := quick(t, c, fakeheygen.Options{})
	start := c.Now().Unix()
	ok := mustCreate(t, s, avatarBody(d.look.ID, `,"title":"Quarterly","caption":{"style":"default"}`))
	bad := mustCreate(t, s, avatarBody(d.look.ID, `,"script":"Please FAIL_RENDER now"`))
	audio := mustCreate(t, s, `{"type":"avatar","avatar_id":"`+d.look.ID+`","audio_asset_id":"asset123"}`)

	statuses := func() map[string]string {
		t.Helper()
		r := get(t, s, "/v3/videos/statuses?video_ids="+ok+","+bad+",nope")
		wantOK(t, r)
		p := decode[statusPage](t, r.body)
		m := map[string]string{}
		for _, it := range p.Data {
			m[*it.VideoID] = it.Status
			if (it.Status == "failed") != (it.Error != nil) || it.Error != nil && it.Error.Code != fakeheygen.RenderFailureCode {
				t.Fatalf("statuses item %+v", it)
			}
		}
		return m
	}
	for _, step := range []struct {
		advance             time.Duration
		okStatus, badStatus string
		bulkOK, bulkBad     string
	}{
		{0, "pending", "pending", "queued", "queued"},
		{time.Second, "processing", "processing", "processing", "processing"},
		{time.Second, "completed", "failed", "completed", "failed"},
	} {
		c.Add(step.advance)
		v, raw := getVideo(t, s, ok)
		if v.Status != step.okStatus {
			t.Fatalf("after %v: status %s, want %s", step.advance, v.Status, step.okStatus)
		}
		done := v.Status == "completed"
		for _, f := range []string{"video_url", "captioned_video_url", "subtitle_url", "thumbnail_url", "gif_url", "video_page_url", "duration", "completed_at"} {
			if (string(raw[f]) != "null") != done {
				t.Fatalf("%s: %s = %s", v.Status, f, raw[f])
			}
		}
		if _, has := raw["failure_code"]; has {
			t.Fatalf("%s video has failure_code", v.Status)
		}
		if *v.Title != "Quarterly" || *v.CreatedAt != start {
			t.Fatalf("title %v created_at %v", v.Title, v.CreatedAt)
		}
		fv, _ := getVideo(t, s, bad)
		if fv.Status != step.badStatus {
			t.Fatalf("failing video: %s, want %s", fv.Status, step.badStatus)
		}
		if got := statuses(); got[ok] != step.bulkOK || got[bad] != step.bulkBad || got["nope"] != "not_found" {
			t.Fatalf("bulk statuses %v", got)
		}
	}
	v, _ := getVideo(t, s, ok)
	if *v.CompletedAt != start+2 || *v.Duration <= 0 || !strings.Contains(*v.VideoURL, ok) || !strings.HasSuffix(strings.Split(*v.VideoURL, "?")[0], ".mp4") {
		t.Fatalf("completed video %+v", v)
	}
	fv, raw := getVideo(t, s, bad)
	if *fv.FailureCode != fakeheygen.RenderFailureCode || !strings.Contains(*fv.FailureMessage, "FAIL_RENDER") || string(raw["video_url"]) != "null" {
		t.Fatalf("failed video %+v", fv)
	}
	// No caption style: no captioned video, but a subtitle file all the same.
	av, _ := getVideo(t, s, audio)
	if av.Status != "completed" || av.CaptionedVideoURL != nil || av.SubtitleURL == nil {
		t.Fatalf("audio video %+v", av)
	}
}

type statusPage struct {
	Data []struct {
		VideoID *string `json:"video_id"`
		Status  string  `json:"status"`
		Error   *struct{ Code, Message string }
	} `json:"data"`
}

func TestRenderDefaults(t *testing.T) {
	d := pickDemo(t)
	c := newClock()
	s := newServer(t, fakeheygen.Options{Catalogue: fakeheygen.DemoCatalogue(), Voices: fakeheygen.DemoVoices(), Clock: c.Now})
	id := mustCreate(t, s, avatarBody(d.look.ID, ""))
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{
		{fakeheygen.DefaultRenderPending - time.Millisecond, "pending"},
		{time.Millisecond, "processing"},
		{fakeheygen.DefaultRenderProcessing - time.Millisecond, "processing"},
		{time.Millisecond, "completed"},
	} {
		c.Add(step.advance)
		if v, _ := getVideo(t, s, id); v.Status != step.want {
			t.Fatalf("status %s, want %s", v.Status, step.want)
		}
	}
	// Negative durations render at once, on the real clock.
	s = newServer(t, fakeheygen.Options{Catalogue: fakeheygen.DemoCatalogue(), Voices: fakeheygen.DemoVoices(), RenderPending: -1, RenderProcessing: -1})
	if v, _ := getVideo(t, s, mustCreate(t, s, avatarBody(d.look.ID, ""))); v.Status != "completed" {
		t.Fatalf("instant render: %s", v.Status)
	}
}

func TestCreateVideoValidation(t *testing.T) {
	d := pickDemo(t)
	s := quick(t, newClock(), fakeheygen.Options{})
	look := d.look.ID
	long := strings.Repeat("é", fakeheygen.MaxScriptChars+1)
	exact := strings.Repeat("é", fakeheygen.MaxScriptChars)
	for _, tc := range []struct {
		name, body  string
		status      int
		code, param string
	}{
		{"not json", `{"type":`, 400, "invalid_parameter", ""},
		{"trailing data", `{"type":"avatar"} {}`, 400, "invalid_parameter", ""},
		{"array", `[]`, 400, "invalid_parameter", ""},
		{"no type", `{}`, 400, "invalid_parameter", "type"},
		{"bad type", `{"type":"movie"}`, 400, "invalid_parameter", "type"},
		{"studio type", `{"type":"studio"}`, 400, "invalid_parameter", "type"},
		{"type not string", `{"type":3}`, 400, "invalid_parameter", "type"},
		{"no avatar", `{"type":"avatar","script":"x"}`, 400, "invalid_parameter", "avatar_id"},
		{"image on avatar", avatarBody(look, `,"image":{"type":"url","url":"https://a.b/c.png"}`), 400, "invalid_parameter", "image"},
		{"no speech", `{"type":"avatar","avatar_id":"` + look + `"}`, 400, "invalid_parameter", "script"},
		{"script and audio", avatarBody(look, `,"audio_url":"https://a.b/c.mp3"`), 400, "invalid_parameter", "audio_url"},
		{"audio url and asset", `{"type":"avatar","avatar_id":"` + look + `","audio_url":"https://a.b/c.mp3","audio_asset_id":"x"}`, 400, "invalid_parameter", "audio_asset_id"},
		{"empty script", `{"type":"avatar","avatar_id":"` + look + `","script":"  "}`, 400, "invalid_parameter", "script"},
		{"long script", `{"type":"avatar","avatar_id":"` + look + `","script":"` + long + `"}`, 400, "invalid_parameter", "script"},
		{"script not string", `{"type":"avatar","avatar_id":"` + look + `","script":5}`, 400, "invalid_parameter", "script"},
		{"bad audio url", `{"type":"avatar","avatar_id":"` + look + `","audio_url":"ftp://x"}`, 400, "invalid_parameter", "audio_url"},
		{"aspect ratio", avatarBody(look, `,"aspect_ratio":"2:1"`), 400, "invalid_parameter", "aspect_ratio"},
		{"resolution", avatarBody(look, `,"resolution":"8k"`), 400, "invalid_parameter", "resolution"},
		{"output format", avatarBody(look, `,"output_format":"avi"`), 400, "invalid_parameter", "output_format"},
		{"fit", avatarBody(look, `,"fit":"stretch"`), 400, "invalid_parameter", "fit"},
		{"engine type", avatarBody(look, `,"engine":{"type":"avatar_ix"}`), 400, "invalid_parameter", "engine.type"},
		{"engine no type", avatarBody(look, `,"engine":{}`), 400, "invalid_parameter", "engine.type"},
		{"reference look without avatar_v", avatarBody(look, `,"engine":{"type":"avatar_iv","reference_look_id":"x"}`), 400, "invalid_parameter", "engine.reference_look_id"},
		{"expressiveness with avatar_v", avatarBody(look, `,"engine":{"type":"avatar_v"},"expressiveness":"high"`), 400, "invalid_parameter", "expressiveness"},
		{"engine unsupported by look", avatarBody(look, `,"engine":{"type":"avatar_v"}`), 400, "invalid_parameter", "engine.type"},
		{"background color no value", avatarBody(look, `,"background":{"type":"color"}`), 400, "invalid_parameter", "background.value"},
		{"background bad color", avatarBody(look, `,"background":{"type":"color","value":"red"}`), 400, "invalid_parameter", "background.value"},
		{"background url and asset", avatarBody(look, `,"background":{"type":"image","url":"https://a.b/c.png","asset_id":"x"}`), 400, "invalid_parameter", "background.asset_id"},
		{"background image nothing", avatarBody(look, `,"background":{"type":"image"}`), 400, "invalid_parameter", "background.url"},
		{"caption style", avatarBody(look, `,"caption":{"style":"fancy"}`), 400, "invalid_parameter", "caption.style"},
		{"speed", avatarBody(look, `,"voice_settings":{"speed":2}`), 400, "invalid_parameter", "voice_settings.speed"},
		{"pitch", avatarBody(look, `,"voice_settings":{"pitch":-51}`), 400, "invalid_parameter", "voice_settings.pitch"},
		{"speed type", avatarBody(look, `,"voice_settings":{"speed":"fast"}`), 400, "invalid_parameter", "voice_settings.speed"},
		{"tts engine", avatarBody(look, `,"voice_settings":{"engine_settings":{"engine_type":"polly"}}`), 400, "invalid_parameter", "voice_settings.engine_settings.engine_type"},
		{"tts model", avatarBody(look, `,"voice_settings":{"engine_settings":{"engine_type":"fish","model":"eleven_v3"}}`), 400, "invalid_parameter", "voice_settings.engine_settings.model"},
		{"callback url", avatarBody(look, `,"callback_url":"not a url"`), 400, "invalid_parameter", "callback_url"},
		{"watermark no image", avatarBody(look, `,"watermark":{}`), 400, "invalid_parameter", "watermark.image"},
		{"watermark opacity", avatarBody(look, `,"watermark":{"image":{"type":"asset_id","asset_id":"a"},"opacity":2}`), 400, "invalid_parameter", "watermark.opacity"},
		{"image no image", `{"type":"image","script":"x","voice_id":"v"}`, 400, "invalid_parameter", "image"},
		{"image with avatar", `{"type":"image","avatar_id":"x","image":{"type":"url","url":"https://a.b/c.png"},"script":"x"}`, 400, "invalid_parameter", "avatar_id"},
		{"image http url", `{"type":"image","image":{"type":"url","url":"http://a.b/c.png"},"script":"x","voice_id":"v"}`, 400, "invalid_parameter", "image.url"},
		{"image bad base64", `{"type":"image","image":{"type":"base64","data":"!!","media_type":"image/png"},"audio_asset_id":"a"}`, 400, "invalid_parameter", "image.data"},
		{"image media type", `{"type":"image","image":{"type":"base64","data":"aGk=","media_type":"image/gif"},"audio_asset_id":"a"}`, 400, "invalid_parameter", "image.media_type"},
		{"image script without voice", `{"type":"image","image":{"type":"asset_id","asset_id":"a"},"script":"x"}`, 400, "invalid_parameter", "voice_id"},
		{"unknown avatar", avatarBody("no_such_look", ""), 404, "avatar_not_found", "avatar_id"},
		{"avatar not ready", avatarBody(d.lookNotReady.ID, ""), 400, "invalid_parameter", "avatar_id"},
		{"no default voice", avatarBody(d.lookNoVoice.ID, ""), 400, "invalid_parameter", "voice_id"},
		{"unknown voice", avatarBody(look, `,"voice_id":"no_such_voice"`), 404, "voice_not_found", "voice_id"},
		{"voice cloning", avatarBody(look, `,"voice_id":"`+d.voiceCloning.VoiceID+`"`), 400, "voice_not_usable", "voice_id"},
		{"voice failed", avatarBody(look, `,"voice_id":"`+d.voiceFailed.VoiceID+`"`), 400, "voice_not_usable", "voice_id"},
		{"voice engine", avatarBody(look, `,"voice_id":"`+d.voiceNoFish.VoiceID+`","voice_settings":{"engine_settings":{"engine_type":"fish"}}`), 400, "invalid_parameter", "voice_settings.engine_settings.engine_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, create(t, s, tc.body, nil), tc.status, tc.code, tc.param)
		})
	}
	if p := decode[page](t, get(t, s, "/v3/videos?limit=100").body); len(p.Data) != len(fakeheygen.DemoVideos()) {
		t.Fatalf("refused creates made %d videos", len(p.Data)-len(fakeheygen.DemoVideos()))
	}
	// The limits themselves are accepted.
	mustCreate(t, s, `{"type":"avatar","avatar_id":"`+look+`","script":"`+exact+`"}`)
	mustCreate(t, s, avatarBody(look, `,"engine":{"type":"avatar_iv"},"expressiveness":"low","voice_settings":{"speed":1.5,"pitch":-50,"volume":0},"background":{"type":"color","value":"#fff"},"caption":{"file_format":"srt"},"callback_url":"https://example.com/hook","aspect_ratio":"9:16"`))
	big := `{"type":"avatar","avatar_id":"` + look + `","script":"x","title":"` + strings.Repeat("a", fakeheygen.MaxCreateBodyBytes) + `"}`
	wantError(t, create(t, s, big, nil), 413, "payload_too_large", "")
}

func TestIdempotency(t *testing.T) {
	d := pickDemo(t)
	c := newClock()
	s := quick(t, c, fakeheygen.Options{})
	key := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

	first := create(t, s, avatarBody(d.look.ID, ""), key("order-42:v1.a_b-c"))
	wantOK(t, first)
	// A repeat replays the original answer, whatever its body.
	again := create(t, s, avatarBody(d.look.ID, `,"title":"different"`), key("order-42:v1.a_b-c"))
	if again.status != 200 || string(again.body) != string(first.body) {
		t.Fatalf("replay: %d %s, want %s", again.status, again.body, first.body)
	}
	// An error is replayed too, even once the body is fixed.
	wantError(t, create(t, s, avatarBody("no_such_look", ""), key("bad-1")), 404, "avatar_not_found", "avatar_id")
	wantError(t, create(t, s, avatarBody(d.look.ID, ""), key("bad-1")), 404, "avatar_not_found", "avatar_id")
	// Another key makes another video.
	other := decode[created](t, create(t, s, avatarBody(d.look.ID, ""), key("order-43")).body)
	if other.Data.VideoID == decode[created](t, first.body).Data.VideoID {
		t.Fatal("two keys gave one video")
	}
	// After 24 hours the key is forgotten.
	c.Add(fakeheygen.IdempotencyTTL)
	later := create(t, s, avatarBody(d.look.ID, ""), key("order-42:v1.a_b-c"))
	wantOK(t, later)
	if string(later.body) == string(first.body) {
		t.Fatal("key replayed after 24 h")
	}
	if n := len(decode[page](t, get(t, s, "/v3/videos?limit=100").body).Data) - len(fakeheygen.DemoVideos()); n != 3 {
		t.Fatalf("%d videos created, want 3", n)
	}
	for _, k := range []string{"", strings.Repeat("k", 256), "has space", "slash/y", "ünïcode"} {
		wantError(t, create(t, s, avatarBody(d.look.ID, ""), key(k)), 400, "invalid_parameter", "Idempotency-Key")
	}
	wantOK(t, create(t, s, avatarBody(d.look.ID, ""), key(strings.Repeat("k", 255))))
}

func TestIdempotencyInProgress(t *testing.T) {
	d := pickDemo(t)
	s := quick(t, newClock(), fakeheygen.Options{CreateDelay: 300 * time.Millisecond})
	hdr := map[string]string{"Idempotency-Key": "in-flight"}
	firstc := make(chan response, 1)
	go func() {
		r, err := call{method: http.MethodPost, path: "/v3/videos", body: avatarBody(d.look.ID, ""), header: hdr}.do(s)
		if err != nil {
			t.Errorf("first create: %v", err)
		}
		firstc <- r
	}()
	for s.CountMethodPath("POST", "/v3/videos") == 0 {
		time.Sleep(time.Millisecond)
	}
	r := create(t, s, avatarBody(d.look.ID, ""), hdr)
	wantError(t, r, 409, "request_in_progress", "")
	first := <-firstc
	wantOK(t, first)
	if r := create(t, s, avatarBody(d.look.ID, ""), hdr); string(r.body) != string(first.body) {
		t.Fatalf("replay after completion %s", r.body)
	}
}

// TestCreateOutlivesClient: a client that times out does not stop the creation, and its
// retry with the same key gets the video instead of a second one.
func TestCreateOutlivesClient(t *testing.T) {
	d := pickDemo(t)
	s := quick(t, newClock(), fakeheygen.Options{CreateDelay: 200 * time.Millisecond})
	hdr := map[string]string{"Idempotency-Key": "timeout-retry"}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := (call{method: http.MethodPost, path: "/v3/videos", body: avatarBody(d.look.ID, ""), header: hdr, ctx: ctx}).do(s); err == nil {
		t.Fatal("create did not time out")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := create(t, s, avatarBody(d.look.ID, ""), hdr)
		if r.status == 200 {
			break
		}
		wantError(t, r, 409, "request_in_progress", "")
		if time.Now().After(deadline) {
			t.Fatal("creation never completed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(decode[page](t, get(t, s, "/v3/videos?limit=100").body).Data) - len(fakeheygen.DemoVideos()); n != 1 {
		t.Fatalf("%d videos created, want 1", n)
	}
}

// TestIdempotencyConcurrent: many simultaneous requests with one key make one video.
func TestIdempotencyConcurrent(t *testing.T) {
	d := pickDemo(t)
	s := quick(t, newClock(), fakeheygen.Options{CreateDelay: 20 * time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int]int{}
	ids := map[string]bool{}
	for range 20 {
		wg.Go(func() {
			r, err := call{method: http.MethodPost, path: "/v3/videos", body: avatarBody(d.look.ID, ""), header: map[string]string{"Idempotency-Key": "same"}}.do(s)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			got[r.status]++
			if r.status == 200 {
				ids[string(r.body)] = true
			}
		})
	}
	wg.Wait()
	if got[200] == 0 || got[200]+got[409] != 20 || len(ids) != 1 {
		t.Fatalf("statuses %v, %d distinct answers", got, len(ids))
	}
}

func TestCreateRateLimit(t *testing.T) {
	d := pickDemo(t)
	c := newClock()
	s := quick(t, c, fakeheygen.Options{CreateRate: 0.5, CreateBurst: 2})
	mustCreate(t, s, avatarBody(d.look.ID, ""))
	mustCreate(t, s, avatarBody(d.look.ID, ""))
	r := create(t, s, avatarBody(d.look.ID, ""), map[string]string{"Idempotency-Key": "limited"})
	wantError(t, r, 429, "rate_limit_exceeded", "")
	if r.header.Get("Retry-After") != "2" {
		t.Fatalf("Retry-After %q, want 2", r.header.Get("Retry-After"))
	}
	// Reads are not limited.
	for range 20 {
		wantOK(t, get(t, s, "/v3/videos"))
	}
	c.Add(2 * time.Second)
	// The limited request's key was not remembered: its retry creates the video.
	mustCreate(t, s, avatarBody(d.look.ID, ""))
	wantError(t, create(t, s, avatarBody(d.look.ID, ""), nil), 429, "rate_limit_exceeded", "")
	c.Add(2 * time.Second)
	wantOK(t, create(t, s, avatarBody(d.look.ID, ""), map[string]string{"Idempotency-Key": "limited"}))

	// The default limit applies when none is set.
	def := newServer(t, fakeheygen.Options{Catalogue: fakeheygen.DemoCatalogue(), Voices: fakeheygen.DemoVoices(), Clock: newClock().Now})
	for range fakeheygen.DefaultCreateBurst {
		mustCreate(t, def, avatarBody(d.look.ID, ""))
	}
	wantError(t, create(t, def, avatarBody(d.look.ID, ""), nil), 429, "rate_limit_exceeded", "")
}

func TestCredits(t *testing.T) {
	d := pickDemo(t)
	body := avatarBody(d.look.ID, "")
	for _, tc := range []struct {
		name    string
		account func() fakeheygen.Account
		creates int // before 402
		check   func(fakeheygen.Account) bool
	}{
		{"wallet", func() fakeheygen.Account {
			a := fakeheygen.DemoAccount(fakeheygen.BillingWallet)
			*a.Wallet.RemainingBalance = 2.5
			return a
		}, 2, func(a fakeheygen.Account) bool { return *a.Wallet.RemainingBalance == 0.5 }},
		{"subscription", func() fakeheygen.Account {
			a := fakeheygen.DemoAccount(fakeheygen.BillingSubscription)
			*a.Subscription.Credits.PremiumCredits.Remaining = 1
			*a.Subscription.Credits.AddOnCredits.Remaining = 1
			return a
		}, 2, func(a fakeheygen.Account) bool {
			return *a.Subscription.Credits.PremiumCredits.Remaining == 0 && *a.Subscription.Credits.AddOnCredits.Remaining == 0
		}},
		{"usage based", func() fakeheygen.Account {
			a := fakeheygen.DemoAccount(fakeheygen.BillingUsageBased)
			*a.UsageBased.RemainingCredits = 1
			*a.UsageBased.SpendingCurrentUSD = 498
			return a
		}, 3, func(a fakeheygen.Account) bool {
			return *a.UsageBased.RemainingCredits == 0 && *a.UsageBased.SpendingCurrentUSD == 500
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := quick(t, newClock(), fakeheygen.Options{Account: tc.account()})
			for range tc.creates {
				mustCreate(t, s, body)
			}
			wantError(t, create(t, s, body, nil), 402, "insufficient_credit", "")
			if a := decode[struct{ Data fakeheygen.Account }](t, get(t, s, "/v3/users/me").body).Data; !tc.check(a) {
				t.Fatalf("account after creates: %s", get(t, s, "/v3/users/me").body)
			}
		})
	}
	// A null balance is not tracked.
	a := fakeheygen.DemoAccount(fakeheygen.BillingWallet)
	a.Wallet.RemainingBalance = nil
	s := quick(t, newClock(), fakeheygen.Options{Account: a})
	for range 3 {
		mustCreate(t, s, body)
	}
}

func TestListAndDeleteVideos(t *testing.T) {
	d := pickDemo(t)
	s := quick(t, newClock(), fakeheygen.Options{})
	seeded := fakeheygen.DemoVideos()
	var made []string
	for i := range 12 {
		made = append(made, mustCreate(t, s, avatarBody(d.look.ID, fmt.Sprintf(`,"title":"Weekly Update %d"`, i))))
	}
	var want []string // newest first, then the seeded ones in order
	for i := len(made) - 1; i >= 0; i-- {
		want = append(want, made[i])
	}
	for _, v := range seeded {
		want = append(want, v.ID)
	}
	if got := ids(t, listAll(t, s, "/v3/videos", url.Values{"limit": {"5"}}), "id"); !slices.Equal(got, want) {
		t.Fatalf("list order:\n got %v\nwant %v", got, want)
	}
	p := decode[page](t, get(t, s, "/v3/videos").body)
	if len(p.Data) != fakeheygen.DefaultVideoLimit || !p.HasMore {
		t.Fatalf("default page %d", len(p.Data))
	}
	// A page token survives creations: the next page continues where the first ended.
	first := decode[page](t, get(t, s, "/v3/videos?limit=4").body)
	mustCreate(t, s, avatarBody(d.look.ID, `,"title":"Newest"`))
	second := ids(t, decode[page](t, get(t, s, "/v3/videos?limit=4&token="+url.QueryEscape(*first.NextToken)).body).Data, "id")
	if !slices.Equal(second, want[4:8]) {
		t.Fatalf("second page after a creation %v, want %v", second, want[4:8])
	}
	for _, tc := range []struct {
		q    url.Values
		want int
	}{
		{url.Values{"title": {"weekly update 1"}}, 3}, // 1, 10, 11
		{url.Values{"title": {"Benefits"}}, 1},
		{url.Values{"folder_id": {"onboarding"}}, 3},
		{url.Values{"folder_id": {"marketing"}, "title": {"launch"}}, 1},
		{url.Values{"folder_id": {"nope"}}, 0},
	} {
		tc.q.Set("limit", "2")
		if got := listAll(t, s, "/v3/videos", tc.q); len(got) != tc.want {
			t.Errorf("%v: %d videos, want %d", tc.q, len(got), tc.want)
		}
	}
	for _, q := range []string{"limit=0", "limit=101", "token=abc"} {
		wantError(t, get(t, s, "/v3/videos?"+q), 400, "invalid_parameter", strings.Split(q, "=")[0])
	}
	wantError(t, get(t, s, "/v3/videos?title=x&token="+url.QueryEscape(*first.NextToken)), 400, "invalid_parameter", "token")

	r := call{method: http.MethodDelete, path: "/v3/videos/" + made[0]}.must(t, s)
	wantOK(t, r)
	if string(r.body) != `{"data":{"id":"`+made[0]+`","deleted":true}}` {
		t.Fatalf("delete answered %s", r.body)
	}
	wantError(t, get(t, s, "/v3/videos/"+made[0]), 404, "video_not_found", "video_id")
	wantError(t, call{method: http.MethodDelete, path: "/v3/videos/" + made[0]}.must(t, s), 404, "video_not_found", "video_id")
	if got := ids(t, listAll(t, s, "/v3/videos", url.Values{"limit": {"100"}}), "id"); slices.Contains(got, made[0]) || len(got) != len(want) {
		t.Fatalf("deleted video still listed, or %d listed", len(got))
	}
	st := decode[page](t, get(t, s, "/v3/videos/statuses?video_ids="+made[0]).body)
	if !strings.Contains(string(st.Data[0]), `"status":"not_found"`) {
		t.Fatalf("deleted video status %s", st.Data[0])
	}
	// A seeded video is served as given.
	v, _ := getVideo(t, s, seeded[2].ID)
	if v.Status != "failed" || *v.FailureCode != *seeded[2].FailureCode {
		t.Fatalf("seeded video %+v", v)
	}
}

func TestVideoStatusesParameters(t *testing.T) {
	s := quick(t, newClock(), fakeheygen.Options{})
	wantError(t, get(t, s, "/v3/videos/statuses"), 400, "invalid_parameter", "video_ids")
	wantError(t, get(t, s, "/v3/videos/statuses?video_ids=,,"), 400, "invalid_parameter", "video_ids")
	hundred := strings.Repeat("a,", 99) + "a"
	r := get(t, s, "/v3/videos/statuses?video_ids="+hundred)
	wantOK(t, r)
	if p := decode[page](t, r.body); len(p.Data) != 100 || p.HasMore || p.NextToken != nil {
		t.Fatalf("100 ids: %d items", len(p.Data))
	}
	wantError(t, get(t, s, "/v3/videos/statuses?video_ids="+hundred+"&batch_ids=b"), 400, "invalid_parameter", "video_ids")
	r = get(t, s, "/v3/videos/statuses?batch_ids=b1")
	want := `{"data":[{"video_id":null,"status":"not_found","error":null,"batch_id":"b1","item_index":null}],"has_more":false,"next_token":null}`
	if string(r.body) != want {
		t.Fatalf("batch status %s", r.body)
	}
}

func TestCreateConcurrently(t *testing.T) {
	d := pickDemo(t)
	s := quick(t, newClock(), fakeheygen.Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				switch i % 3 {
				case 0:
					mustCreate(t, s, avatarBody(d.look.ID, fmt.Sprintf(`,"title":"g%d"`, g)))
				case 1:
					wantOK(t, get(t, s, "/v3/videos?limit=3"))
				default:
					wantOK(t, get(t, s, "/v3/users/me"))
				}
			}
		})
	}
	wg.Wait()
	if n := len(listAll(t, s, "/v3/videos", url.Values{"limit": {"100"}})) - len(fakeheygen.DemoVideos()); n != 32 {
		t.Fatalf("%d videos created, want 32", n)
	}
}
