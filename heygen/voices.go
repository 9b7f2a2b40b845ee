package heygen

import "context"

// MaxVoicePageLimit is the largest page of voices HeyGen serves.
const MaxVoicePageLimit = 100

// Voice types accepted by HeyGen's voice list.
const (
	VoiceTypePublic  = "public"
	VoiceTypePrivate = "private"
)

// Voice is one HeyGen voice: a list item (GET /v3/voices) or a voice's
// details (GET /v3/voices/{voice_id}); each sets the fields its schema has.
// Pointer fields are nil when HeyGen sent them absent or null.
type Voice struct {
	// VoiceID is the voice's id.
	VoiceID string `json:"voice_id"`
	// Name is the display name.
	Name *string `json:"name"`
	// Language is the primary language ("English").
	Language *string `json:"language"`
	// Gender is HeyGen's gender label.
	Gender *string `json:"gender"`
	// Type is public or private (list items only).
	Type *string `json:"type"`
	// PreviewAudioURL is a short sample.
	PreviewAudioURL *string `json:"preview_audio_url"`
	// SupportPause reports SSML pause support.
	SupportPause *bool `json:"support_pause"`
	// SupportLocale reports locale variants (list items only).
	SupportLocale *bool `json:"support_locale"`
	// SupportInteractiveAvatar reports interactive streaming support
	// (details only).
	SupportInteractiveAvatar *bool `json:"support_interactive_avatar"`
	// Status is a cloned voice's status: processing, complete or failed
	// (details only).
	Status *string `json:"status"`
	// FailureMessage says why cloning failed (details only).
	FailureMessage *string `json:"failure_message"`
	// CreatedAt is the creation time in unix seconds (details only).
	CreatedAt *int64 `json:"created_at"`
}

// ListVoicesOptions filters and pages GET /v3/voices. Zero values are omitted.
type ListVoicesOptions struct {
	// Type is public (HeyGen's default) or private (cloned voices).
	Type string
	// Engine keeps only voices compatible with an engine ("starfish").
	Engine string
	// Language keeps only voices of a language ("English").
	Language string
	// Gender keeps only voices of a gender.
	Gender string
	// Limit is the page size, 1 to [MaxVoicePageLimit]; 0 lets HeyGen choose (20).
	Limit int
	// Token is a previous page's NextToken.
	Token string
}

// VoicesService is HeyGen's voice endpoints.
type VoicesService struct{ c *Client }

// List fetches one page of voices (GET /v3/voices).
func (s *VoicesService) List(ctx context.Context, opts ListVoicesOptions) (*Page[Voice], error) {
	q, err := pageQuery(opts.Limit, MaxVoicePageLimit, opts.Token)
	if err != nil {
		return nil, err
	}
	setIf(q, "type", opts.Type)
	setIf(q, "engine", opts.Engine)
	setIf(q, "language", opts.Language)
	setIf(q, "gender", opts.Gender)
	return list[Voice](ctx, s.c, Route("/v3/voices"), q, opts.Limit, nil)
}

// Get fetches one voice's details (GET /v3/voices/{voice_id}).
func (s *VoicesService) Get(ctx context.Context, voiceID string) (*Voice, error) {
	if err := checkID("voice_id", voiceID); err != nil {
		return nil, err
	}
	return get[Voice](ctx, s.c, Route("/v3/voices/{voice_id}", voiceID))
}
