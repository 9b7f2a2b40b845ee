package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Limits of a create request the gateway checks before HeyGen sees it.
// HeyGen documents the script's; the text fields' are the gateway's own,
// generous bounds (HeyGen documents none).
const (
	maxScriptChars  = 5000
	maxTitleChars   = 255
	maxPromptChars  = 1000
	maxCallbackID   = 255
	minSpeed        = 0.5
	maxSpeed        = 1.5
	maxPitch        = 50.0
	requestIDRule   = "must be 1 to 255 characters of A-Z, a-z, 0-9, '_', ':', '.' or '-' (a UUID is best)"
	idempotencyTTL  = 24 * time.Hour // HeyGen's replay window
	maxLedgerKeys   = 100_000
	keyPrefix       = "hgw1."
	generatedPrefix = "hgw1-"
)

var (
	localePattern = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$`)
	hexColour     = regexp.MustCompile(`^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$`)
)

// HeyGen's values of the request's enums.
var (
	engineNames         = map[heygenv1.AvatarEngine]string{heygenv1.AvatarEngine_AVATAR_ENGINE_AVATAR_III: "avatar_iii", heygenv1.AvatarEngine_AVATAR_ENGINE_AVATAR_IV: "avatar_iv", heygenv1.AvatarEngine_AVATAR_ENGINE_AVATAR_V: "avatar_v"}
	expressivenessNames = map[heygenv1.Expressiveness]string{heygenv1.Expressiveness_EXPRESSIVENESS_LOW: "low", heygenv1.Expressiveness_EXPRESSIVENESS_MEDIUM: "medium", heygenv1.Expressiveness_EXPRESSIVENESS_HIGH: "high"}
	aspectRatioNames    = map[heygenv1.AspectRatio]string{heygenv1.AspectRatio_ASPECT_RATIO_16_9: "16:9", heygenv1.AspectRatio_ASPECT_RATIO_9_16: "9:16", heygenv1.AspectRatio_ASPECT_RATIO_4_5: "4:5", heygenv1.AspectRatio_ASPECT_RATIO_5_4: "5:4", heygenv1.AspectRatio_ASPECT_RATIO_1_1: "1:1", heygenv1.AspectRatio_ASPECT_RATIO_AUTO: "auto"}
	resolutionNames     = map[heygenv1.Resolution]string{heygenv1.Resolution_RESOLUTION_720P: "720p", heygenv1.Resolution_RESOLUTION_1080P: "1080p", heygenv1.Resolution_RESOLUTION_4K: "4k"}
	outputFormatNames   = map[heygenv1.OutputFormat]string{heygenv1.OutputFormat_OUTPUT_FORMAT_MP4: "mp4", heygenv1.OutputFormat_OUTPUT_FORMAT_WEBM: "webm"}
	fitNames            = map[heygenv1.Fit]string{heygenv1.Fit_FIT_CONTAIN: "contain", heygenv1.Fit_FIT_COVER: "cover"}
)

// creates is what CreateVideo keeps between calls: the ledger of
// request_ids, the shared cool-down, the per-caller create limit, the bound
// on creates in flight, and the creates in flight on this replica.
type creates struct {
	ledger   createLedger
	cooldown createCooldown
	limits   *rateLimiter // nil: unlimited
	slots    *semaphore.Weighted
	maxSlots int
	now      func() time.Time
	metrics  *Metrics

	mu      sync.Mutex
	flights map[string]chan struct{} // by idempotency key; closed when the create ends
}

func newCreates(o VideoOptions, shared SharedStore, m *Metrics) *creates {
	c := &creates{
		ledger:   newMemoryLedger(o.Now, idempotencyTTL, maxLedgerKeys),
		cooldown: &memoryCooldown{},
		slots:    semaphore.NewWeighted(int64(o.MaxConcurrentCreates)),
		maxSlots: o.MaxConcurrentCreates,
		now:      o.Now,
		metrics:  m,
		flights:  map[string]chan struct{}{},
	}
	if shared != nil {
		// A fleet shares the ledger and the cool-down: a request_id is one
		// video on every replica, and HeyGen's hold applies to them all.
		c.ledger = &sharedLedger{store: shared, local: newMemoryLedger(o.Now, idempotencyTTL, maxLedgerKeys), ttl: idempotencyTTL}
		c.cooldown = &sharedCooldown{store: shared, now: o.Now}
	}
	if o.CreateRateLimits.Default.PerSecond > 0 || len(o.CreateRateLimits.Callers) > 0 {
		var limiter SharedLimiter
		if shared != nil {
			limiter = shared
		}
		c.limits = newRateLimiter(o.CreateRateLimits, limiter, m)
		c.limits.what = "video creations"
		c.limits.scope = "video_create"
	}
	m.watchCooldown(func() time.Duration {
		return c.cooldown.until().Sub(c.now())
	})
	return c
}

// create runs one CreateVideo, in this order, so that nothing reaches
// HeyGen that the gateway can refuse itself:
//
//  1. check every field, and that the avatar and the voice exist (one
//     BadRequest with every violation);
//  2. with a request_id: refuse it if it was used for a different request,
//     and answer from the ledger if this replica already made its video;
//  3. wait for a create with the same key already in flight here, then
//     start again from 2 (so identical concurrent creates send one request);
//  4. the shared cool-down, the caller's create limit, a create slot;
//  5. POST /v3/videos with the key as Idempotency-Key, so the client's own
//     retries (and any replica's) are replayed by HeyGen, not rendered again.
//
// Without a request_id the key is random: the gateway's own retries of
// this one call are safe, and nothing is remembered.
func (c *creates) create(ctx context.Context, s *Server, req *heygenv1.CreateVideoRequest) (*heygenv1.Video, error) {
	body, err := s.createBody(ctx, req)
	if err != nil {
		return nil, err
	}
	encoded, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("create video: encode the request: %w", err)
	}
	fp := sha256.Sum256(encoded)
	caller := callerOrUnauthenticated(callerOf(ctx))
	keyed := req.GetRequestId() != ""
	key := generatedKey()
	if keyed {
		key = requestKey(caller, req.GetRequestId())
	}
	for {
		if keyed {
			e, err := c.ledger.remember(ctx, key, fp)
			if err != nil {
				return nil, fmt.Errorf("create video: %w", err)
			}
			if e.fingerprint != fp {
				return nil, &requestIDReusedError{requestID: req.GetRequestId()}
			}
			if e.video != nil {
				return proto.Clone(e.video).(*heygenv1.Video), nil
			}
		}
		done, mine := c.fly(key)
		if mine {
			defer c.land(key, done)
			break
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if wait := c.cooldown.until().Sub(c.now()); wait > 0 {
		c.metrics.cooldownRefused()
		return nil, &cooldownError{wait: wait}
	}
	if c.limits != nil {
		if err := c.limits.allow(ctx, caller); err != nil {
			c.metrics.rateLimitedCall(caller)
			return nil, err
		}
	}
	if !c.slots.TryAcquire(1) {
		return nil, &createSlotsError{limit: c.maxSlots}
	}
	defer c.slots.Release(1)
	made, err := s.client.Videos.Create(heygen.WithRateLimitsReturned(ctx), body, key)
	if err != nil {
		var herr *heygen.Error
		if errors.As(err, &herr) && herr.Kind == heygen.KindRateLimited && herr.HasRetryAfter {
			c.cooldown.hold(c.now().Add(herr.RetryAfter))
		}
		return nil, fmt.Errorf("create video: %w", err)
	}
	v := &heygenv1.Video{Id: made.VideoID, Title: body.Title, Status: videoStatusOf(made.Status), StatusRaw: made.Status}
	if keyed {
		if err := c.ledger.made(ctx, key, v); err != nil {
			s.log.WarnContext(ctx, "could not record the video a request_id made; a retry will still get it from HeyGen", "error", err)
		}
	}
	s.recordVideoCreated(ctx)
	return v, nil
}

// fly registers a create in flight for key. mine is true when the caller
// is the one to make it (and must land it); otherwise done closes when
// the one in flight ends.
func (c *creates) fly(key string) (done chan struct{}, mine bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.flights[key]; ok {
		return ch, false
	}
	ch := make(chan struct{})
	c.flights[key] = ch
	return ch, true
}

func (c *creates) land(key string, done chan struct{}) {
	c.mu.Lock()
	delete(c.flights, key)
	c.mu.Unlock()
	close(done)
}

// requestKey is the Idempotency-Key of a caller's request_id. It is scoped
// to the caller, because the gateway sends every caller's creates with one
// HeyGen key: two callers who chose the same request_id must not get each
// other's videos. It is the same on every replica.
func requestKey(caller, requestID string) string {
	sum := sha256.Sum256([]byte("heygen-grpc create\x00" + caller + "\x00" + requestID))
	return keyPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// generatedKey keys a create that came without a request_id, for the
// gateway's own retries of it only.
func generatedKey() string {
	var b [18]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return generatedPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// createBody checks a create request and builds HeyGen's body: every field
// violation at once, and, for ids that are well-formed, that the avatar and
// the voice exist (from the catalogue; a miss asks HeyGen).
func (s *Server) createBody(ctx context.Context, req *heygenv1.CreateVideoRequest) (*heygen.CreateVideo, error) {
	var c checks
	if id := req.GetRequestId(); id != "" && !heygen.ValidIdempotencyKey(id) {
		c.fail("request_id", requestIDRule)
	}
	body := &heygen.CreateVideo{}
	var avatarID string
	switch v := req.GetVisual().(type) {
	case *heygenv1.CreateVideoRequest_Avatar:
		body.Type = "avatar"
		avatarID = avatarVisual(&c, body, v.Avatar)
	case *heygenv1.CreateVideoRequest_Image:
		body.Type = "image"
		body.Image = assetOf(&c, "image", v.Image.GetUrl(), v.Image.GetAssetId(), v.Image.GetImage() != nil)
	default:
		c.fail("visual", "is required: set avatar or image")
	}
	var voiceID string
	switch sp := req.GetSpeech().(type) {
	case *heygenv1.CreateVideoRequest_Script:
		voiceID = script(&c, body, sp.Script, body.Type == "image")
	case *heygenv1.CreateVideoRequest_Audio:
		a := assetOf(&c, "audio", sp.Audio.GetUrl(), sp.Audio.GetAssetId(), sp.Audio.GetAudio() != nil)
		if a != nil && a.URL != "" {
			body.AudioURL = &a.URL
		} else if a != nil {
			body.AudioAssetID = &a.AssetID
		}
	default:
		c.fail("speech", "is required: set script or audio")
	}
	body.Title = boundedText(&c, "title", req.GetTitle(), maxTitleChars)
	body.AspectRatio = enumValue(&c, "aspect_ratio", req.GetAspectRatio(), aspectRatioNames)
	body.Resolution = enumValue(&c, "resolution", req.GetResolution(), resolutionNames)
	body.OutputFormat = enumValue(&c, "output_format", req.GetOutputFormat(), outputFormatNames)
	body.Fit = enumValue(&c, "fit", req.GetFit(), fitNames)
	if bg := req.GetBackground(); bg != nil {
		body.Background = background(&c, bg)
	}
	if cp := req.GetCaptions(); cp != nil {
		body.Caption = &heygen.Caption{FileFormat: "srt"}
		switch cp.GetStyle() {
		case heygenv1.CaptionStyle_CAPTION_STYLE_UNSPECIFIED:
		case heygenv1.CaptionStyle_CAPTION_STYLE_DEFAULT:
			style := "default"
			body.Caption.Style = &style
		default:
			c.fail("captions.style", "unknown enum value "+strconv.Itoa(int(cp.GetStyle())))
		}
	}
	if u := req.GetCallbackUrl(); u != "" {
		if httpsURL(&c, "callback_url", u) {
			body.CallbackURL = &u
		}
	}
	body.CallbackID = boundedText(&c, "callback_id", req.GetCallbackId(), maxCallbackID)

	// What exists is checked only for ids that are well-formed, after the
	// rest: a request with bad fields costs no lookup.
	if avatarID != "" {
		a, _, err := s.readers.Avatars.Get(ctx, avatarID)
		switch {
		case isNotFound(err):
			c.fail("avatar.avatar_id", "no such avatar: list them with AvatarsService.ListAvatars")
		case err != nil:
			return nil, fmt.Errorf("create video: check the avatar: %w", err)
		default:
			if e := body.Engine; e != nil && len(a.GetSupportedApiEngines()) > 0 && !containsString(a.GetSupportedApiEngines(), e.Type) {
				c.fail("avatar.engine", "avatar "+avatarID+" does not support engine "+e.Type+" (see its supported_api_engines)")
			}
			if body.Script != nil && voiceID == "" && a.GetDefaultVoiceId() == "" {
				c.fail("script.voice_id", "is required: avatar "+avatarID+" has no default voice")
			}
		}
	}
	if voiceID != "" {
		v, _, err := s.readers.Voices.Get(ctx, voiceID)
		switch {
		case isNotFound(err):
			c.fail("script.voice_id", "no such voice: list them with VoicesService.ListVoices")
		case err != nil:
			return nil, fmt.Errorf("create video: check the voice: %w", err)
		case v.GetStatus() == heygenv1.VoiceStatus_VOICE_STATUS_PROCESSING || v.GetStatus() == heygenv1.VoiceStatus_VOICE_STATUS_FAILED:
			c.fail("script.voice_id", "voice "+voiceID+" cannot be used: its cloning is "+strings.ToLower(strings.TrimPrefix(v.GetStatus().String(), "VOICE_STATUS_")))
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return body, nil
}

// avatarVisual checks an avatar and fills the body; it returns the avatar
// id when it is well-formed (to be looked up).
func avatarVisual(c *checks, body *heygen.CreateVideo, a *heygenv1.AvatarVisual) string {
	id := a.GetAvatarId()
	c.id("avatar.avatar_id", id)
	body.AvatarID = id
	if e := a.GetEngine(); e != heygenv1.AvatarEngine_AVATAR_ENGINE_UNSPECIFIED {
		if name, ok := engineNames[e]; ok {
			body.Engine = &heygen.Engine{Type: name}
		} else {
			c.fail("avatar.engine", "unknown enum value "+strconv.Itoa(int(e)))
		}
	}
	body.Expressiveness = enumValue(c, "avatar.expressiveness", a.GetExpressiveness(), expressivenessNames)
	if body.Expressiveness != nil && a.GetEngine() == heygenv1.AvatarEngine_AVATAR_ENGINE_AVATAR_V {
		c.fail("avatar.expressiveness", "cannot be set with AVATAR_ENGINE_AVATAR_V (Avatar IV only)")
	}
	body.MotionPrompt = boundedText(c, "avatar.motion_prompt", a.GetMotionPrompt(), maxPromptChars)
	if a.GetRemoveBackground() {
		t := true
		body.RemoveBackground = &t
	}
	if heygen.ValidID(id) {
		return id
	}
	return ""
}

// script checks a script and fills the body; it returns the voice id when
// it is set and well-formed (to be looked up).
func script(c *checks, body *heygen.CreateVideo, sc *heygenv1.Script, voiceRequired bool) string {
	text := sc.GetText()
	switch n := utf8.RuneCountInString(text); {
	case strings.TrimSpace(text) == "":
		c.fail("script.text", "must not be empty")
	case !utf8.ValidString(text):
		c.fail("script.text", "must be valid UTF-8")
	case n > maxScriptChars:
		c.fail("script.text", fmt.Sprintf("must be at most %d characters (HeyGen's limit), got %d", maxScriptChars, n))
	}
	body.Script = &text
	voiceID := sc.GetVoiceId()
	switch {
	case voiceID == "" && voiceRequired:
		c.fail("script.voice_id", "is required with an image (an avatar may use its default voice)")
	case voiceID != "":
		c.id("script.voice_id", voiceID)
		body.VoiceID = &voiceID
	}
	var vs heygen.VoiceSettings
	if sc.Speed != nil {
		if sp := sc.GetSpeed(); math.IsNaN(sp) || sp < minSpeed || sp > maxSpeed {
			c.fail("script.speed", "must be between 0.5 and 1.5")
		}
		vs.Speed = sc.Speed
	}
	if sc.Pitch != nil {
		if p := sc.GetPitch(); math.IsNaN(p) || p < -maxPitch || p > maxPitch {
			c.fail("script.pitch", "must be between -50 and 50")
		}
		vs.Pitch = sc.Pitch
	}
	if l := sc.GetLocale(); l != "" {
		if !localePattern.MatchString(l) {
			c.fail("script.locale", `must be a locale such as "en-US"`)
		}
		vs.Locale = &l
	}
	if vs != (heygen.VoiceSettings{}) {
		body.VoiceSettings = &vs
	}
	if voiceID != "" && heygen.ValidID(voiceID) {
		return voiceID
	}
	return ""
}

// assetOf checks an image or audio given by URL or asset id.
func assetOf(c *checks, field, u, assetID string, set bool) *heygen.AssetInput {
	switch {
	case !set:
		c.fail(field, "is required: set url or asset_id")
	case u != "":
		if httpsURL(c, field+".url", u) {
			return &heygen.AssetInput{Type: "url", URL: u}
		}
	default:
		c.id(field+".asset_id", assetID)
		return &heygen.AssetInput{Type: "asset_id", AssetID: assetID}
	}
	return nil
}

func background(c *checks, bg *heygenv1.Background) *heygen.Background {
	switch b := bg.GetBackground().(type) {
	case *heygenv1.Background_Color:
		if !hexColour.MatchString(b.Color) {
			c.fail("background.color", `must be a hex colour: "#rgb" or "#rrggbb"`)
		}
		return &heygen.Background{Type: "color", Value: b.Color}
	case *heygenv1.Background_ImageUrl:
		httpsURL(c, "background.image_url", b.ImageUrl)
		return &heygen.Background{Type: "image", URL: b.ImageUrl}
	case *heygenv1.Background_ImageAssetId:
		c.id("background.image_asset_id", b.ImageAssetId)
		return &heygen.Background{Type: "image", AssetID: b.ImageAssetId}
	}
	c.fail("background", "set color, image_url or image_asset_id (or leave background unset)")
	return nil
}

// maxURLLen bounds URLs passed on to HeyGen.
const maxURLLen = 2048

// httpsURL checks that u is an absolute https URL with a host.
func httpsURL(c *checks, field, u string) bool {
	p, err := url.Parse(u)
	switch {
	case len(u) > maxURLLen:
		c.fail(field, "must be at most "+strconv.Itoa(maxURLLen)+" bytes")
	case err != nil || p.Scheme != "https" || p.Host == "" || p.User != nil:
		c.fail(field, "must be an absolute https:// URL (HeyGen fetches it from the internet)")
	default:
		return true
	}
	return false
}

// boundedText checks an optional text field and returns it for the body
// (nil when empty).
func boundedText(c *checks, field, v string, maxChars int) *string {
	switch {
	case v == "":
		return nil
	case !utf8.ValidString(v):
		c.fail(field, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > maxChars:
		c.fail(field, "must be at most "+strconv.Itoa(maxChars)+" characters")
	}
	return &v
}

// enumValue maps an enum to HeyGen's value: nil when unspecified, a
// violation when the number is not one the API defines.
func enumValue[E ~int32](c *checks, field string, v E, names map[E]string) *string {
	if v == 0 {
		return nil
	}
	name, ok := names[v]
	if !ok {
		c.fail(field, "unknown enum value "+strconv.Itoa(int(v)))
		return nil
	}
	return &name
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// createLedger remembers, for 24 hours (HeyGen's replay window), what each
// request_id was first used for: a fingerprint of the request, and the
// video HeyGen made for it. It is an interface so that replicas can later
// share one (in Redis); this replica's memory is the first implementation.
type createLedger interface {
	// remember records fp for key unless key is already known (and not
	// expired), and returns what is recorded for key.
	remember(ctx context.Context, key string, fp [32]byte) (ledgerEntry, error)
	// made records the video HeyGen made for key.
	made(ctx context.Context, key string, v *heygenv1.Video) error
}

// ledgerEntry is what the ledger knows of one key.
type ledgerEntry struct {
	fingerprint [32]byte
	video       *heygenv1.Video // nil until HeyGen made it
}

// memoryLedger is a createLedger in memory, bounded: past max keys the
// oldest is forgotten first (keys expire in the order they came, as the
// TTL is fixed).
type memoryLedger struct {
	now func() time.Time
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]*ledgerItem
	queue   []ledgerRef // oldest first, from head
	head    int
}

type ledgerItem struct {
	ledgerEntry
	at time.Time
}

type ledgerRef struct {
	key string
	at  time.Time
}

func newMemoryLedger(now func() time.Time, ttl time.Duration, maxKeys int) *memoryLedger {
	return &memoryLedger{now: now, ttl: ttl, max: maxKeys, entries: map[string]*ledgerItem{}}
}

func (l *memoryLedger) remember(_ context.Context, key string, fp [32]byte) (ledgerEntry, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	if it, ok := l.entries[key]; ok && now.Sub(it.at) < l.ttl {
		return it.ledgerEntry, nil
	}
	it := &ledgerItem{ledgerEntry: ledgerEntry{fingerprint: fp}, at: now}
	l.entries[key] = it
	l.queue = append(l.queue, ledgerRef{key: key, at: now})
	return it.ledgerEntry, nil
}

func (l *memoryLedger) made(_ context.Context, key string, v *heygenv1.Video) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if it, ok := l.entries[key]; ok {
		it.video = proto.Clone(v).(*heygenv1.Video)
	}
	return nil
}

// expire forgets expired keys, and the oldest past the bound; l.mu is held.
func (l *memoryLedger) expire(now time.Time) {
	for l.head < len(l.queue) {
		ref := l.queue[l.head]
		if now.Sub(ref.at) < l.ttl && len(l.entries) < l.max {
			break
		}
		if it, ok := l.entries[ref.key]; ok && it.at.Equal(ref.at) {
			delete(l.entries, ref.key)
		}
		l.queue[l.head] = ledgerRef{}
		l.head++
	}
	if l.head > 1024 && l.head*2 > len(l.queue) {
		l.queue = append([]ledgerRef(nil), l.queue[l.head:]...)
		l.head = 0
	}
}

// createCooldown is the hold on every create after HeyGen answered one
// with 429 and Retry-After. It is an interface so that replicas can later
// share one; this replica's memory is the first implementation.
type createCooldown interface {
	// until is when the cool-down ends (the zero time when there is none).
	until() time.Time
	// hold makes the cool-down last at least until t.
	hold(t time.Time)
}

// memoryCooldown is a createCooldown in memory.
type memoryCooldown struct{ end atomic.Int64 } // unix nanoseconds; 0: none

func (m *memoryCooldown) until() time.Time {
	if n := m.end.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (m *memoryCooldown) hold(t time.Time) {
	n := t.UnixNano()
	for {
		cur := m.end.Load()
		if cur >= n || m.end.CompareAndSwap(cur, n) {
			return
		}
	}
}

// requestIDReusedError: a request_id used again with a different request.
type requestIDReusedError struct{ requestID string }

func (e *requestIDReusedError) Error() string {
	return "request_id " + strconv.Quote(e.requestID) + " was already used for a different request in the last 24 hours; a request_id names one request: use a new one for a new request"
}

// cooldownError: a create refused during the cool-down.
type cooldownError struct{ wait time.Duration }

func (e *cooldownError) Error() string {
	return fmt.Sprintf("HeyGen rate-limited video creation, so the gateway holds every create for %s more without calling HeyGen; retry after the delay in RetryInfo with the same request_id",
		e.wait.Round(time.Millisecond))
}

// createSlotsError: the bound on creates in flight to HeyGen.
type createSlotsError struct{ limit int }

func (e *createSlotsError) Error() string {
	return fmt.Sprintf("the gateway is at its limit of %d video creations in flight to HeyGen; retry with backoff and the same request_id", e.limit)
}
