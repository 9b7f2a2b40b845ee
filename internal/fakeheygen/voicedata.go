package fakeheygen

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// Voice is one voice of the library. The JSON shapes differ between the list and the
// detail endpoint (see GET /v3/voices and GET /v3/voices/{voice_id}); the server derives
// both from this struct, so it has no JSON tags of its own.
type Voice struct {
	VoiceID  string
	Name     string
	Language string
	Gender   string
	// Type is VoiceTypePublic (the shared library) or VoiceTypePrivate (the account's
	// cloned voices); it drives the type filter and is the list item's "type".
	Type            string
	PreviewAudioURL *string
	SupportLocale   bool
	SupportPause    bool
	// SupportInteractiveAvatar appears only in the detail response.
	SupportInteractiveAvatar bool
	// CreatedAt (unix seconds) appears only in the detail response.
	CreatedAt *int64
	// Status is the clone status of a private voice (VoiceStatusProcessing,
	// VoiceStatusComplete or VoiceStatusFailed); nil for public voices. A video can only
	// use a voice whose status is nil or complete.
	Status *string
	// FailureMessage is sent only when Status is failed.
	FailureMessage *string
	// Engines are the TTS engines that can speak this voice (EngineStarfish,
	// EngineElevenLabs, EngineFish). HeyGen does not list them: they only drive the
	// engine filter and the check of voice_settings.engine_settings on video creation.
	Engines []string
}

// Values of the voice enumerations.
const (
	VoiceTypePublic  = "public"
	VoiceTypePrivate = "private"

	VoiceStatusProcessing = "processing"
	VoiceStatusComplete   = "complete"
	VoiceStatusFailed     = "failed"

	EngineStarfish   = "starfish"
	EngineElevenLabs = "elevenlabs"
	EngineFish       = "fish"
)

type voiceLanguage struct {
	name          string
	supportLocale bool // languages with regional variants (en-US, en-GB, ...)
	female, male  []string
}

// voiceLanguages are the twelve languages of generated libraries.
var voiceLanguages = []voiceLanguage{
	{"English", true, []string{"Allison", "Sara", "Monica", "Jenny", "Aria", "Olivia"}, []string{"Paul", "Christopher", "Ryan", "Jason", "Tony", "Guy"}},
	{"Spanish", true, []string{"Elvira", "Dalia", "Lucia", "Paloma"}, []string{"Alvaro", "Jorge", "Tomas", "Gerardo"}},
	{"French", true, []string{"Denise", "Eloise", "Brigitte", "Sylvie"}, []string{"Henri", "Antoine", "Jerome", "Alain"}},
	{"German", true, []string{"Katja", "Amala", "Ingrid", "Louisa"}, []string{"Conrad", "Killian", "Bernd", "Florian"}},
	{"Italian", false, []string{"Elsa", "Isabella", "Fiamma", "Pierina"}, []string{"Diego", "Benigno", "Gianni", "Rinaldo"}},
	{"Portuguese", true, []string{"Francisca", "Raquel", "Leila", "Thalita"}, []string{"Antonio", "Duarte", "Fabio", "Julio"}},
	{"Japanese", false, []string{"Nanami", "Aoi", "Mayu", "Shiori"}, []string{"Keita", "Daichi", "Naoki", "Takumi"}},
	{"Chinese", true, []string{"Xiaoxiao", "Xiaoyi", "Xiaochen", "Xiaomeng"}, []string{"Yunxi", "Yunjian", "Yunyang", "Yunfeng"}},
	{"Korean", false, []string{"SunHi", "JiMin", "SeoHyeon", "YuJin"}, []string{"InJoon", "BongJin", "GookMin", "Hyunsu"}},
	{"Hindi", false, []string{"Swara", "Ananya", "Kavya", "Aarohi"}, []string{"Madhur", "Arjun", "Kunal", "Rehaan"}},
	{"Arabic", true, []string{"Zariyah", "Salma", "Amany", "Layla"}, []string{"Hamed", "Shakir", "Omar", "Taim"}},
	{"Dutch", true, []string{"Colette", "Fenna", "Maaike", "Dena"}, []string{"Maarten", "Arnaud", "Daan", "Sven"}},
}

var voiceStyles = []string{"Natural", "Friendly", "Professional", "Excited", "Calm", "Narrative", "Warm", "Newscaster", "Lifelike", "Cheerful"}

// cloneStatuses cycles over the private voices so that every library with six or more of
// them has cloned voices in each status.
var cloneStatuses = []string{VoiceStatusComplete, VoiceStatusComplete, VoiceStatusProcessing, VoiceStatusComplete, VoiceStatusFailed, VoiceStatusComplete}

var allEngines = []string{EngineStarfish, EngineElevenLabs, EngineFish}

const (
	demoVoicesSeed  = 20250301
	demoVoicesCount = 312
)

// GenerateVoices returns a deterministic voice library of n voices for seed (negative n
// counts as zero). Voice i speaks voiceLanguages[i%12], so twelve or more voices cover all
// twelve languages; every tenth voice (i%10 == 9) is a private cloned voice, whose clone
// status cycles complete, complete, processing, complete, failed, complete. Each voice
// has a non-empty hidden set of engines; optional fields are null in a share of voices.
func GenerateVoices(seed int64, n int) []Voice {
	n = max(n, 0)
	g := &generator{
		r:    rand.New(rand.NewPCG(uint64(seed), 0xda3e39cb94b95bdb)), //nolint:gosec // deterministic sample data, not a secret
		used: make(map[string]bool),
	}
	out := make([]Voice, 0, n)
	clones := 0
	for i := range n {
		lang := voiceLanguages[i%len(voiceLanguages)]
		gender, names := "female", lang.female
		if g.chance(0.5) {
			gender, names = "male", lang.male
		}
		first := names[g.r.IntN(len(names))]
		v := Voice{
			VoiceID:                  g.hex32(),
			Language:                 lang.name,
			Gender:                   gender,
			Type:                     VoiceTypePublic,
			SupportLocale:            lang.supportLocale && g.chance(0.7),
			SupportPause:             !g.chance(0.15),
			SupportInteractiveAvatar: g.chance(0.3),
		}
		// Any non-empty subset of the three engines, each equally likely.
		mask := 1 + g.r.IntN(1<<len(allEngines)-1)
		for b, e := range allEngines {
			if mask&(1<<b) != 0 {
				v.Engines = append(v.Engines, e)
			}
		}
		if i%10 == 9 {
			v.Type = VoiceTypePrivate
			v.Name = fmt.Sprintf("%s Clone %d", first, clones+1)
			v.CreatedAt = int64p(privateFrom + g.r.Int64N(privateTo-privateFrom))
			st := cloneStatuses[clones%len(cloneStatuses)]
			clones++
			v.Status = strp(st)
			switch st {
			case VoiceStatusComplete:
				v.PreviewAudioURL = strp("https://resource2.heygen.ai/voice_clone/" + g.hex32() + "/preview.mp3")
			case VoiceStatusFailed:
				v.FailureMessage = strp("Voice cloning failed: the sample audio must be at least 30 seconds of clear speech")
			}
		} else {
			v.Name = first + " - " + voiceStyles[g.r.IntN(len(voiceStyles))]
			if !g.chance(0.3) {
				v.CreatedAt = int64p(publicFrom + g.r.Int64N(publicTo-publicFrom))
			}
			if !g.chance(0.05) {
				v.PreviewAudioURL = strp("https://static.heygen.ai/voice_preview/" + g.hex32() + ".wav")
			}
		}
		out = append(out, v)
	}
	return out
}

// DemoVoices returns the fixed sample voice library of demo mode and tests: 312 voices,
// 26 in each of twelve languages, 31 of them private cloned voices in every clone status.
// Every default_voice_id of DemoCatalogue and GenerateCatalogue names one of its public
// voices. To serve a large library that keeps those resolvable, append a generated one:
// append(DemoVoices(), GenerateVoices(seed, 5000)...).
func DemoVoices() []Voice {
	return GenerateVoices(demoVoicesSeed, demoVoicesCount)
}

// demoVoiceIDs indexes the public demo voices by gender ("female", "male"), the pool the
// catalogue generator draws default voices from.
var demoVoiceIDs = sync.OnceValue(func() map[string][]string {
	m := make(map[string][]string)
	for _, v := range DemoVoices() {
		if v.Type == VoiceTypePublic {
			m[v.Gender] = append(m[v.Gender], v.VoiceID)
		}
	}
	return m
})
