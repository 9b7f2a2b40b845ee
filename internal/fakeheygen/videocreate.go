package fakeheygen

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of POST /v3/videos.
const (
	MaxScriptChars       = 5000
	MaxCreateBodyBytes   = 1 << 20
	maxIdempotencyKeyLen = 255
)

// createVideoRequest is the union of the avatar and image variants of POST /v3/videos.
// Pointers tell an absent or null field from an empty one. Fields HeyGen documents but
// the fake has no use for (callback_id, motion_prompt, remove_background and the
// engine-specific voice tuning numbers) are still type-checked by decoding.
type createVideoRequest struct {
	Type             *string        `json:"type"`
	AvatarID         *string        `json:"avatar_id"`
	Image            *assetInput    `json:"image"`
	Script           *string        `json:"script"`
	VoiceID          *string        `json:"voice_id"`
	AudioURL         *string        `json:"audio_url"`
	AudioAssetID     *string        `json:"audio_asset_id"`
	Title            *string        `json:"title"`
	AspectRatio      *string        `json:"aspect_ratio"`
	Resolution       *string        `json:"resolution"`
	OutputFormat     *string        `json:"output_format"`
	Expressiveness   *string        `json:"expressiveness"`
	Fit              *string        `json:"fit"`
	MotionPrompt     *string        `json:"motion_prompt"`
	RemoveBackground *bool          `json:"remove_background"`
	Background       *background    `json:"background"`
	Caption          *caption       `json:"caption"`
	Engine           *engineConfig  `json:"engine"`
	VoiceSettings    *voiceSettings `json:"voice_settings"`
	CallbackURL      *string        `json:"callback_url"`
	CallbackID       *string        `json:"callback_id"`
	Watermark        *watermark     `json:"watermark"`
}

// assetInput is an image given by URL, asset id or inline base64, discriminated by type.
type assetInput struct {
	Type      *string `json:"type"`
	URL       *string `json:"url"`
	AssetID   *string `json:"asset_id"`
	Data      *string `json:"data"`
	MediaType *string `json:"media_type"`
}

type background struct {
	Type    *string `json:"type"`
	Value   *string `json:"value"`
	URL     *string `json:"url"`
	AssetID *string `json:"asset_id"`
}

type caption struct {
	FileFormat *string `json:"file_format"`
	Style      *string `json:"style"`
}

type engineConfig struct {
	Type            *string `json:"type"`
	ReferenceLookID *string `json:"reference_look_id"`
}

type voiceSettings struct {
	Speed          *float64        `json:"speed"`
	Pitch          *float64        `json:"pitch"`
	Volume         *float64        `json:"volume"`
	Locale         *string         `json:"locale"`
	EngineSettings *engineSettings `json:"engine_settings"`
}

type engineSettings struct {
	EngineType      *string  `json:"engine_type"`
	Model           *string  `json:"model"`
	Stability       *float64 `json:"stability"`
	Similarity      *float64 `json:"similarity"`
	SimilarityBoost *float64 `json:"similarity_boost"`
	Style           *float64 `json:"style"`
	UseSpeakerBoost *bool    `json:"use_speaker_boost"`
}

type watermark struct {
	Image     *assetInput `json:"image"`
	Opacity   *float64    `json:"opacity"`
	Scale     *float64    `json:"scale"`
	Placement *struct {
		Position *string  `json:"position"`
		OffsetX  *float64 `json:"offset_x"`
		OffsetY  *float64 `json:"offset_y"`
	} `json:"placement"`
}

// reqError is an error answer of the create endpoint.
type reqError struct {
	status               int
	code, message, param string
}

func badParam(param, format string, args ...any) *reqError {
	return &reqError{http.StatusBadRequest, "invalid_parameter", fmt.Sprintf(format, args...), param}
}

// Enumerations of the request, from HeyGen's schema.
var (
	aspectRatios    = []string{"16:9", "9:16", "4:5", "5:4", "1:1", "auto"}
	resolutions     = []string{"4k", "1080p", "720p"}
	outputFormats   = []string{"mp4", "webm"}
	expressiveness  = []string{"high", "medium", "low"}
	fits            = []string{"contain", "cover"}
	videoEngines    = []string{"avatar_v", "avatar_iv", "avatar_iii"}
	positions       = []string{"top_left", "top_right", "bottom_left", "bottom_right"}
	assetTypes      = []string{"url", "asset_id", "base64"}
	engineModels    = map[string][]string{EngineElevenLabs: {"eleven_multilingual_v2", "eleven_turbo_v2_5", "eleven_flash_v2_5", "eleven_v3"}, EngineFish: {"s1", "s2-pro"}, EngineStarfish: nil}
	supportedTypes  = []string{"avatar", "image"}
	otherVideoTypes = []string{"cinematic_avatar", "studio"}
)

func checkEnum(param string, v *string, allowed []string) *reqError {
	if v == nil || slices.Contains(allowed, *v) {
		return nil
	}
	return badParam(param, "%s must be one of: %s", param, strings.Join(allowed, ", "))
}

func checkRange(param string, v *float64, lo, hi float64) *reqError {
	if v == nil || *v >= lo && *v <= hi {
		return nil
	}
	return badParam(param, "%s must be between %g and %g", param, lo, hi)
}

func checkURL(param string, v *string, httpsOnly bool) *reqError {
	if v == nil {
		return nil
	}
	u, err := url.Parse(*v)
	if err == nil && u.Host != "" && (u.Scheme == "https" || !httpsOnly && u.Scheme == "http") {
		return nil
	}
	if httpsOnly {
		return badParam(param, "%s must be a public https URL", param)
	}
	return badParam(param, "%s must be an absolute http or https URL", param)
}

func nonEmpty(param string, v *string) *reqError {
	if v != nil && strings.TrimSpace(*v) == "" {
		return badParam(param, "%s must not be empty", param)
	}
	return nil
}

// firstError returns the first non-nil error, so that checks read as a list.
func firstError(errs ...*reqError) *reqError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// decodeCreate decodes the body, reporting a wrong JSON type with the field's path as
// param, as HeyGen's validation does.
func decodeCreate(body []byte) (*createVideoRequest, *reqError) {
	var req createVideoRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(&req)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return &req, nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return nil, badParam(typeErr.Field, "%s must be %s", typeErr.Field, jsonKind(typeErr.Type))
	case errors.As(err, &typeErr):
		return nil, badParam("", "the request body must be a JSON object")
	}
	return nil, badParam("", "the request body is not valid JSON")
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64:
		return "a number"
	}
	return "an object"
}

// validate checks what needs no data: required and mutually exclusive fields, lengths,
// enumerations and ranges.
func (req *createVideoRequest) validate() *reqError {
	if req.Type == nil {
		return badParam("type", "type is required: avatar or image")
	}
	switch {
	case slices.Contains(otherVideoTypes, *req.Type):
		return badParam("type", "type %s is not supported by the fake HeyGen server; use avatar or image", *req.Type)
	case !slices.Contains(supportedTypes, *req.Type):
		return badParam("type", "type must be one of: avatar, image")
	}
	if err := req.validateVariant(); err != nil {
		return err
	}
	if err := req.validateSpeech(); err != nil {
		return err
	}
	return firstError(
		checkEnum("aspect_ratio", req.AspectRatio, aspectRatios),
		checkEnum("resolution", req.Resolution, resolutions),
		checkEnum("output_format", req.OutputFormat, outputFormats),
		checkEnum("expressiveness", req.Expressiveness, expressiveness),
		checkEnum("fit", req.Fit, fits),
		req.validateBackground(),
		req.validateCaption(),
		req.validateVoiceSettings(),
		checkURL("callback_url", req.CallbackURL, false),
		req.validateWatermark(),
	)
}

func (req *createVideoRequest) validateVariant() *reqError {
	if *req.Type == "image" {
		switch {
		case req.AvatarID != nil:
			return badParam("avatar_id", "avatar_id is not accepted when type is image")
		case req.Engine != nil:
			return badParam("engine", "engine is not accepted when type is image")
		case req.Image == nil:
			return badParam("image", "image is required when type is image")
		}
		return validateAsset("image", req.Image)
	}
	switch {
	case req.Image != nil:
		return badParam("image", "image is not accepted when type is avatar; use avatar_id")
	case req.AvatarID == nil || *req.AvatarID == "":
		return badParam("avatar_id", "avatar_id is required when type is avatar")
	}
	if e := req.Engine; e != nil {
		if e.Type == nil {
			return badParam("engine.type", "engine.type is required: one of %s", strings.Join(videoEngines, ", "))
		}
		if err := checkEnum("engine.type", e.Type, videoEngines); err != nil {
			return err
		}
		if e.ReferenceLookID != nil && *e.Type != "avatar_v" {
			return badParam("engine.reference_look_id", "engine.reference_look_id requires engine.type avatar_v")
		}
		if *e.Type == "avatar_v" && req.Expressiveness != nil {
			return badParam("expressiveness", "expressiveness and engine.type avatar_v are mutually exclusive")
		}
	}
	return nil
}

func validateAsset(param string, a *assetInput) *reqError {
	if a.Type == nil {
		return badParam(param+".type", "%s.type is required: one of %s", param, strings.Join(assetTypes, ", "))
	}
	if err := checkEnum(param+".type", a.Type, assetTypes); err != nil {
		return err
	}
	switch *a.Type {
	case "url":
		if a.URL == nil {
			return badParam(param+".url", "%s.url is required when %s.type is url", param, param)
		}
		return checkURL(param+".url", a.URL, true)
	case "asset_id":
		if a.AssetID == nil || *a.AssetID == "" {
			return badParam(param+".asset_id", "%s.asset_id is required when %s.type is asset_id", param, param)
		}
		return nil
	}
	if a.Data == nil || *a.Data == "" {
		return badParam(param+".data", "%s.data is required when %s.type is base64", param, param)
	}
	if _, err := base64.StdEncoding.DecodeString(*a.Data); err != nil {
		return badParam(param+".data", "%s.data is not valid base64", param)
	}
	return checkEnum(param+".media_type", orEmpty(a.MediaType), []string{"image/png", "image/jpeg"})
}

func orEmpty(p *string) *string {
	if p == nil {
		return strp("")
	}
	return p
}

// validateSpeech checks the source of speech: exactly one of script, audio_url and
// audio_asset_id, and the script's length.
func (req *createVideoRequest) validateSpeech() *reqError {
	var given []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"script", req.Script}, {"audio_url", req.AudioURL}, {"audio_asset_id", req.AudioAssetID}} {
		if f.v != nil {
			given = append(given, f.name)
		}
	}
	switch len(given) {
	case 0:
		return badParam("script", "one of script, audio_url or audio_asset_id is required")
	case 1:
	default:
		return badParam(given[1], "%s and %s are mutually exclusive", given[0], given[1])
	}
	if req.Script != nil {
		if strings.TrimSpace(*req.Script) == "" {
			return badParam("script", "script must not be empty")
		}
		if n := utf8.RuneCountInString(*req.Script); n > MaxScriptChars {
			return badParam("script", "script must be at most %d characters, got %d", MaxScriptChars, n)
		}
	}
	return firstError(checkURL("audio_url", req.AudioURL, false), nonEmpty("audio_asset_id", req.AudioAssetID))
}

func (req *createVideoRequest) validateBackground() *reqError {
	b := req.Background
	if b == nil {
		return nil
	}
	if b.Type == nil {
		return badParam("background.type", "background.type is required: color or image")
	}
	if err := checkEnum("background.type", b.Type, []string{"color", "image"}); err != nil {
		return err
	}
	if *b.Type == "color" {
		if b.Value == nil || !isHexColor(*b.Value) {
			return badParam("background.value", "background.value must be a hex color such as #ff0000 when background.type is color")
		}
		return nil
	}
	switch {
	case b.URL != nil && b.AssetID != nil:
		return badParam("background.asset_id", "background.url and background.asset_id are mutually exclusive")
	case b.URL == nil && b.AssetID == nil:
		return badParam("background.url", "background.url or background.asset_id is required when background.type is image")
	}
	return checkURL("background.url", b.URL, false)
}

func isHexColor(s string) bool {
	hex, ok := strings.CutPrefix(s, "#")
	if !ok || len(hex) != 3 && len(hex) != 6 {
		return false
	}
	_, err := strconv.ParseUint(hex, 16, 32)
	return err == nil
}

func (req *createVideoRequest) validateCaption() *reqError {
	if c := req.Caption; c != nil {
		return firstError(checkEnum("caption.file_format", c.FileFormat, []string{"srt"}), checkEnum("caption.style", c.Style, []string{"default"}))
	}
	return nil
}

func (req *createVideoRequest) validateVoiceSettings() *reqError {
	vs := req.VoiceSettings
	if vs == nil {
		return nil
	}
	if err := firstError(
		checkRange("voice_settings.speed", vs.Speed, 0.5, 1.5),
		checkRange("voice_settings.pitch", vs.Pitch, -50, 50),
		checkRange("voice_settings.volume", vs.Volume, 0, 1),
	); err != nil {
		return err
	}
	es := vs.EngineSettings
	if es == nil {
		return nil
	}
	const p = "voice_settings.engine_settings"
	if es.EngineType == nil {
		return badParam(p+".engine_type", "%s.engine_type is required: elevenlabs, fish or starfish", p)
	}
	models, ok := engineModels[*es.EngineType]
	if !ok {
		return badParam(p+".engine_type", "%s.engine_type must be one of: elevenlabs, fish, starfish", p)
	}
	if es.Model != nil && !slices.Contains(models, *es.Model) {
		return badParam(p+".model", "%s.model is not a model of engine %s", p, *es.EngineType)
	}
	return nil
}

func (req *createVideoRequest) validateWatermark() *reqError {
	wm := req.Watermark
	if wm == nil {
		return nil
	}
	if wm.Image == nil {
		return badParam("watermark.image", "watermark.image is required")
	}
	var pos *string
	if wm.Placement != nil {
		pos = wm.Placement.Position
	}
	return firstError(validateAsset("watermark.image", wm.Image),
		checkRange("watermark.opacity", wm.Opacity, 0, 1),
		checkEnum("watermark.placement.position", pos, positions))
}

// resolve checks the request against the data: the avatar and the voice must exist and
// be usable, and the engines chosen must be theirs. A script without voice_id is spoken
// by the avatar's default voice.
func (s *Server) resolve(req *createVideoRequest) *reqError {
	voiceID := deref(req.VoiceID)
	if *req.Type == "avatar" {
		look, ok := s.avatars.Load().look(*req.AvatarID)
		if !ok {
			return &reqError{http.StatusNotFound, "avatar_not_found", "Avatar " + truncate(*req.AvatarID, 200) + " not found", "avatar_id"}
		}
		if look.status != "" && look.status != "completed" {
			return badParam("avatar_id", "avatar %s is not ready to use (status %s)", look.id, look.status)
		}
		if req.Engine != nil && look.engines != nil && !slices.Contains(look.engines, *req.Engine.Type) {
			return badParam("engine.type", "avatar %s does not support engine %s; see its supported_api_engines", look.id, *req.Engine.Type)
		}
		if voiceID == "" && req.Script != nil {
			voiceID = look.defaultVoice
			if voiceID == "" {
				return badParam("voice_id", "voice_id is required: avatar %s has no default voice", look.id)
			}
		}
	} else if voiceID == "" && req.Script != nil {
		return badParam("voice_id", "voice_id is required with a script when type is image")
	}
	if voiceID == "" {
		return nil
	}
	v, ok := s.voices.Load().voice(voiceID)
	if !ok {
		return &reqError{http.StatusNotFound, "voice_not_found", "Voice " + truncate(voiceID, 200) + " not found", "voice_id"}
	}
	if !v.usable() {
		return &reqError{http.StatusBadRequest, "voice_not_usable", "Voice " + v.id + " cannot be used yet (clone status " + v.status + ")", "voice_id"}
	}
	if vs := req.VoiceSettings; vs != nil && vs.EngineSettings != nil && !slices.Contains(v.engines, *vs.EngineSettings.EngineType) {
		return badParam("voice_settings.engine_settings.engine_type", "voice %s is not available on engine %s", v.id, *vs.EngineSettings.EngineType)
	}
	return nil
}

// validIdempotencyKey reports whether k is 1-255 characters of [A-Za-z0-9_:.-].
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_:.-", c) >= 0) {
			return false
		}
	}
	return true
}

// createVideo answers POST /v3/videos. Order: the Idempotency-Key (malformed: 400; known:
// replay or 409), the create rate limit (429, not remembered, so a retry with the same key
// can succeed later), then the create itself, whose answer, success or error, is what a
// repeat of the key replays for IdempotencyTTL.
func (s *Server) createVideo(w http.ResponseWriter, r *http.Request, _ string) {
	keys, hasKey := r.Header["Idempotency-Key"]
	if hasKey && (len(keys) != 1 || !validIdempotencyKey(keys[0])) {
		invalidParam(w, "Idempotency-Key", "the Idempotency-Key header must be 1-255 characters of A-Z, a-z, 0-9, '_', ':', '.' or '-'")
		return
	}
	now := s.now()
	st := &s.videos
	st.mu.Lock()
	var entry *idemEntry
	if hasKey {
		if e := st.idem[keys[0]]; e != nil && now.Sub(e.at) < IdempotencyTTL {
			done, status, body := e.done, e.status, e.body
			st.mu.Unlock()
			if !done {
				writeError(w, http.StatusConflict, "request_in_progress",
					"A request with this Idempotency-Key is still being processed; retry after it completes", "")
				return
			}
			writeBody(w, status, body)
			return
		}
	}
	if ok, retry := st.allowCreate(now); !ok {
		st.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "Too many video creations; retry after "+strconv.Itoa(retry)+" s", "")
		return
	}
	if hasKey {
		st.pruneIdempotency(now)
		entry = &idemEntry{at: now}
		st.idem[keys[0]] = entry
	}
	st.mu.Unlock()

	status, body, ok := s.performCreate(w, r)
	st.mu.Lock()
	switch {
	case entry != nil && ok:
		entry.done, entry.status, entry.body = true, status, body
	case entry != nil:
		delete(st.idem, keys[0]) // the server closed: nothing was created
	}
	st.mu.Unlock()
	if ok {
		writeBody(w, status, body)
	}
}

// performCreate reads, waits CreateDelay, validates and creates. It reports false when
// the server closed meanwhile. A client that leaves does not stop the creation, as at
// HeyGen: its retry with the same Idempotency-Key then gets the replay.
func (s *Server) performCreate(w http.ResponseWriter, r *http.Request) (status int, body []byte, ok bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCreateBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, []byte(V3Error("payload_too_large", fmt.Sprintf("the request body exceeds %d bytes", MaxCreateBodyBytes))), true
	case err != nil:
		return http.StatusBadRequest, []byte(V3Error("invalid_parameter", "the request body could not be read")), true
	}
	if !s.wait(s.base, s.videos.createDelay) {
		return 0, nil, false
	}
	req, rerr := decodeCreate(raw)
	if rerr == nil {
		rerr = req.validate()
	}
	if rerr == nil {
		rerr = s.resolve(req)
	}
	if rerr == nil && !s.debit() {
		rerr = &reqError{http.StatusPaymentRequired, "insufficient_credit", "Insufficient credit to create this video; top up or upgrade the plan", ""}
	}
	if rerr != nil {
		return rerr.status, []byte(V3ErrorParam(rerr.code, rerr.message, rerr.param)), true
	}
	v := s.addVideo(req, r.Header.Get("Idempotency-Key"))
	format := "mp4"
	if req.OutputFormat != nil {
		format = *req.OutputFormat
	}
	return http.StatusOK, marshal(map[string]any{"data": map[string]string{
		"video_id": v, "status": VideoStatusWaiting, "output_format": format,
	}}), true
}

// addVideo stores a new video rendering on the configured durations and returns its id:
// derived from the Idempotency-Key when there is one (see videoIDFor).
func (s *Server) addVideo(req *createVideoRequest, key string) string {
	now := s.now()
	st := &s.videos
	rec := &videoRecord{rendered: true, processingAt: now.Add(st.pending)}
	rec.doneAt = rec.processingAt.Add(st.processing)
	f := &rec.final
	f.ID = s.videoIDFor(key)
	f.Title = req.Title
	f.CreatedAt = int64p(now.Unix())
	if strings.Contains(deref(req.Script), FailRender) || strings.Contains(deref(req.Title), FailRender) {
		f.Status = VideoStatusFailed
		f.FailureCode = strp(RenderFailureCode)
		f.FailureMessage = strp("Rendering failed: the script or title asked the fake HeyGen server to fail (" + FailRender + ")")
	} else {
		f.Status = VideoStatusCompleted
		format := "mp4"
		if req.OutputFormat != nil {
			format = *req.OutputFormat
		}
		captioned := req.Caption != nil && req.Caption.Style != nil
		fillRender(f, rec.doneAt.Unix(), speechSeconds(req), format, captioned)
	}
	st.mu.Lock()
	st.add(rec)
	st.mu.Unlock()
	return f.ID
}

// speechSeconds estimates the video's duration: 150 words a minute for a script, a
// fixed 15 s for audio the fake does not fetch.
func speechSeconds(req *createVideoRequest) float64 {
	if req.Script == nil {
		return 15
	}
	words := len(strings.Fields(*req.Script))
	return math.Max(1, math.Round(float64(words)/2.5*100)/100)
}
