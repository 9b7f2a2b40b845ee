package fakeheygen

import (
	"net/http"
	"slices"
	"strings"
)

// voiceListItem is a voice as GET /v3/voices lists it.
type voiceListItem struct {
	VoiceID         string  `json:"voice_id"`
	Name            string  `json:"name"`
	Language        string  `json:"language"`
	Gender          string  `json:"gender"`
	Type            string  `json:"type"`
	PreviewAudioURL *string `json:"preview_audio_url"`
	SupportLocale   bool    `json:"support_locale"`
	SupportPause    bool    `json:"support_pause"`
}

// voiceDetail is a voice as GET /v3/voices/{voice_id} returns it. failure_message is
// absent unless the clone failed, and preview_audio_url is null until it completed.
type voiceDetail struct {
	VoiceID                  string  `json:"voice_id"`
	Name                     *string `json:"name"`
	Language                 *string `json:"language"`
	Gender                   *string `json:"gender"`
	PreviewAudioURL          *string `json:"preview_audio_url"`
	Status                   *string `json:"status"`
	FailureMessage           *string `json:"failure_message,omitempty"`
	SupportPause             bool    `json:"support_pause"`
	SupportInteractiveAvatar bool    `json:"support_interactive_avatar"`
	CreatedAt                *int64  `json:"created_at"`
}

type voiceItem struct {
	id, typ, gender, language string
	status                    string // "" for public voices
	engines                   []string
	listJSON, detailJSON      []byte
}

// usable reports whether a video can be spoken with the voice.
func (v *voiceItem) usable() bool { return v.status == "" || v.status == VoiceStatusComplete }

type voiceSnapshot struct {
	items []voiceItem
	byID  map[string]int
}

func compileVoices(voices []Voice) *voiceSnapshot {
	s := &voiceSnapshot{items: make([]voiceItem, len(voices)), byID: make(map[string]int, len(voices))}
	for i := range voices {
		v := &voices[i]
		d := voiceDetail{
			VoiceID: v.VoiceID, Name: strp(v.Name), Language: strp(v.Language), Gender: strp(v.Gender),
			PreviewAudioURL: v.PreviewAudioURL, Status: v.Status, SupportPause: v.SupportPause,
			SupportInteractiveAvatar: v.SupportInteractiveAvatar, CreatedAt: v.CreatedAt,
		}
		status := deref(v.Status)
		if status != "" && status != VoiceStatusComplete {
			d.PreviewAudioURL = nil
		}
		if status == VoiceStatusFailed {
			d.FailureMessage = v.FailureMessage
		}
		s.items[i] = voiceItem{
			id: v.VoiceID, typ: v.Type, gender: v.Gender, language: v.Language, status: status,
			engines: slices.Clone(v.Engines),
			listJSON: marshal(voiceListItem{
				VoiceID: v.VoiceID, Name: v.Name, Language: v.Language, Gender: v.Gender, Type: v.Type,
				PreviewAudioURL: v.PreviewAudioURL, SupportLocale: v.SupportLocale, SupportPause: v.SupportPause,
			}),
			detailJSON: marshal(d),
		}
		if _, dup := s.byID[v.VoiceID]; !dup {
			s.byID[v.VoiceID] = i
		}
	}
	return s
}

func (s *voiceSnapshot) voice(id string) (*voiceItem, bool) {
	i, ok := lookup(s.byID, id)
	if !ok {
		return nil, false
	}
	return &s.items[i], true
}

func (s *Server) listVoices(w http.ResponseWriter, r *http.Request, _ string) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	typ, ok := parseEnum(w, q, "type", VoiceTypePublic, VoiceTypePrivate)
	if !ok {
		return
	}
	if typ == "" {
		typ = VoiceTypePublic
	}
	gender, ok := parseEnum(w, q, "gender", "male", "female")
	if !ok {
		return
	}
	// HeyGen documents no engine values beyond the example "starfish": an unknown engine
	// matches no voice rather than being refused.
	engine := q.Get("engine")
	language := q.Get("language")
	limit, ok := parseLimit(w, q, DefaultLimit, MaxVoiceLimit)
	if !ok {
		return
	}
	hash := filterHash("voices", typ, engine, strings.ToLower(language), gender)
	off, ok := parseToken(w, q, hash)
	if !ok {
		return
	}
	snap := s.voices.Load()
	var match []int
	for i := range snap.items {
		v := &snap.items[i]
		if v.typ == typ && (gender == "" || v.gender == gender) &&
			(language == "" || strings.EqualFold(v.language, language)) &&
			(engine == "" || slices.Contains(v.engines, engine)) {
			match = append(match, i)
		}
	}
	start, end, next := offsetPage(len(match), off, limit, hash)
	page := make([][]byte, 0, end-start)
	for _, i := range match[start:end] {
		page = append(page, snap.items[i].listJSON)
	}
	writeList(w, page, next)
}

func (s *Server) getVoice(w http.ResponseWriter, _ *http.Request, id string) {
	v, ok := s.voices.Load().voice(id)
	if !ok {
		writeError(w, http.StatusNotFound, "voice_not_found", "Voice "+truncate(id, 200)+" not found", "voice_id")
		return
	}
	writeData(w, http.StatusOK, v.detailJSON)
}
