package heygen

import (
	"context"
	"net/http"
	"regexp"
	"strings"
)

// MaxVideoPageLimit is the largest page of videos HeyGen serves.
const MaxVideoPageLimit = 100

// MaxStatusIDs is how many video ids GET /v3/videos/statuses takes at once.
const MaxStatusIDs = 100

// idempotencyKeyPattern is HeyGen's rule for Idempotency-Key values.
var idempotencyKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_:.-]{1,255}$`)

// ValidIdempotencyKey reports whether HeyGen accepts key as an Idempotency-Key.
func ValidIdempotencyKey(key string) bool { return idempotencyKeyPattern.MatchString(key) }

// Video statuses HeyGen reports (GET /v3/videos/{id}); the create response
// and the bulk statuses endpoint use others (waiting, queued, not_found).
const (
	VideoPending    = "pending"
	VideoProcessing = "processing"
	VideoCompleted  = "completed"
	VideoFailed     = "failed"
	VideoNotFound   = "not_found"
)

// CreateVideo is the body of POST /v3/videos for the avatar and image
// video types. Fields left nil or empty are omitted.
type CreateVideo struct {
	// Type is "avatar" or "image".
	Type string `json:"type"`
	// AvatarID is the look to animate (type avatar).
	AvatarID string `json:"avatar_id,omitempty"`
	// Image is the picture to animate (type image).
	Image *AssetInput `json:"image,omitempty"`
	// Script is the text to speak; exclusive with the audio fields.
	Script *string `json:"script,omitempty"`
	// VoiceID speaks the script.
	VoiceID *string `json:"voice_id,omitempty"`
	// VoiceSettings tune the voice.
	VoiceSettings *VoiceSettings `json:"voice_settings,omitempty"`
	// AudioURL is audio to lip-sync; exclusive with Script.
	AudioURL *string `json:"audio_url,omitempty"`
	// AudioAssetID is an uploaded audio asset; exclusive with Script.
	AudioAssetID *string `json:"audio_asset_id,omitempty"`
	// Title shows in HeyGen's dashboard.
	Title *string `json:"title,omitempty"`
	// AspectRatio is 16:9, 9:16, 4:5, 5:4, 1:1 or auto.
	AspectRatio *string `json:"aspect_ratio,omitempty"`
	// Resolution is 4k, 1080p or 720p.
	Resolution *string `json:"resolution,omitempty"`
	// OutputFormat is mp4 or webm.
	OutputFormat *string `json:"output_format,omitempty"`
	// Fit is contain or cover: how the subject fills the frame.
	Fit *string `json:"fit,omitempty"`
	// Background is a colour or an image.
	Background *Background `json:"background,omitempty"`
	// Caption asks for captions.
	Caption *Caption `json:"caption,omitempty"`
	// CallbackURL receives a webhook when the video is ready.
	CallbackURL *string `json:"callback_url,omitempty"`
	// CallbackID is echoed in the webhook.
	CallbackID *string `json:"callback_id,omitempty"`
	// Engine selects the avatar engine.
	Engine *Engine `json:"engine,omitempty"`
	// Expressiveness is high, medium or low (photo avatars).
	Expressiveness *string `json:"expressiveness,omitempty"`
	// MotionPrompt steers body motion.
	MotionPrompt *string `json:"motion_prompt,omitempty"`
	// RemoveBackground removes the avatar's background.
	RemoveBackground *bool `json:"remove_background,omitempty"`
}

// AssetInput is an image or audio given by URL or by uploaded asset id.
type AssetInput struct {
	// Type is "url" or "asset_id".
	Type string `json:"type"`
	// URL is a public HTTPS URL.
	URL string `json:"url,omitempty"`
	// AssetID is an uploaded asset's id.
	AssetID string `json:"asset_id,omitempty"`
}

// VoiceSettings tune a script's voice.
type VoiceSettings struct {
	// Speed is 0.5 to 1.5.
	Speed *float64 `json:"speed,omitempty"`
	// Pitch is -50 to 50 semitones.
	Pitch *float64 `json:"pitch,omitempty"`
	// Locale is an accent hint ("en-US").
	Locale *string `json:"locale,omitempty"`
}

// Background is a solid colour or an image.
type Background struct {
	// Type is "color" or "image".
	Type string `json:"type"`
	// Value is the hex colour (type color).
	Value string `json:"value,omitempty"`
	// URL is the image's URL (type image).
	URL string `json:"url,omitempty"`
	// AssetID is the image's asset id (type image).
	AssetID string `json:"asset_id,omitempty"`
}

// Caption asks for captions: a sidecar file always, burnt in with a style.
type Caption struct {
	// FileFormat is the sidecar's format ("srt").
	FileFormat string `json:"file_format,omitempty"`
	// Style burns captions into the video ("default").
	Style *string `json:"style,omitempty"`
}

// Engine selects the avatar engine: avatar_v, avatar_iv or avatar_iii.
type Engine struct {
	// Type is the engine's name.
	Type string `json:"type"`
}

// CreatedVideo is HeyGen's answer to a create.
type CreatedVideo struct {
	// VideoID is the new video's id.
	VideoID string `json:"video_id"`
	// Status is the initial status ("waiting").
	Status string `json:"status"`
	// OutputFormat is the resolved container.
	OutputFormat *string `json:"output_format"`
}

// Video is one video (GET /v3/videos/{video_id} and list items).
type Video struct {
	// ID is the video's id.
	ID string `json:"id"`
	// Title is its title.
	Title *string `json:"title"`
	// Status is pending, processing, completed or failed (or a newer value).
	Status string `json:"status"`
	// VideoURL is a presigned URL to the video (it expires).
	VideoURL *string `json:"video_url"`
	// CaptionedVideoURL is a presigned URL to the video with captions.
	CaptionedVideoURL *string `json:"captioned_video_url"`
	// ThumbnailURL is a thumbnail.
	ThumbnailURL *string `json:"thumbnail_url"`
	// GIFURL is an animated preview.
	GIFURL *string `json:"gif_url"`
	// SubtitleURL is a presigned URL to the SRT file.
	SubtitleURL *string `json:"subtitle_url"`
	// VideoPageURL is the video's page in HeyGen's app.
	VideoPageURL *string `json:"video_page_url"`
	// Duration is in seconds.
	Duration *float64 `json:"duration"`
	// CreatedAt is the creation time in unix seconds.
	CreatedAt *int64 `json:"created_at"`
	// CompletedAt is when rendering finished, in unix seconds.
	CompletedAt *int64 `json:"completed_at"`
	// FailureCode says why rendering failed.
	FailureCode *string `json:"failure_code"`
	// FailureMessage explains the failure.
	FailureMessage *string `json:"failure_message"`
	// FolderID is the containing folder.
	FolderID *string `json:"folder_id"`
}

// VideoStatus is one entry of GET /v3/videos/statuses.
type VideoStatus struct {
	// VideoID is the video's id.
	VideoID *string `json:"video_id"`
	// Status is queued, processing, completed, failed or not_found (or newer).
	Status string `json:"status"`
	// Error explains a failure.
	Error *AvatarError `json:"error"`
}

// ListVideosOptions filters and pages GET /v3/videos. Zero values are omitted.
type ListVideosOptions struct {
	// Title keeps videos whose title contains it.
	Title string
	// FolderID keeps videos in a folder.
	FolderID string
	// Limit is the page size, 1 to [MaxVideoPageLimit]; 0 lets HeyGen choose (10).
	Limit int
	// Token is a previous page's NextToken.
	Token string
}

// VideosService is HeyGen's video endpoints.
type VideosService struct{ c *Client }

// Create starts rendering a video (POST /v3/videos). With an idempotency
// key (see [ValidIdempotencyKey]) HeyGen answers a repeat of the key with
// the first answer instead of rendering again, and the client may retry;
// without one the request is sent exactly once, whatever happens.
func (s *VideosService) Create(ctx context.Context, in *CreateVideo, idempotencyKey string) (*CreatedVideo, error) {
	if idempotencyKey != "" && !ValidIdempotencyKey(idempotencyKey) {
		return nil, &ValidationError{Field: "idempotency_key", Reason: "must be 1 to 255 characters of A-Z, a-z, 0-9, '_', ':', '.' or '-'"}
	}
	req, err := s.c.NewRequest(ctx, http.MethodPost, Route("/v3/videos"), nil, in)
	if err != nil {
		return nil, err
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	var out CreatedVideo
	if _, err := s.c.Do(req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get fetches one video (GET /v3/videos/{video_id}).
func (s *VideosService) Get(ctx context.Context, videoID string) (*Video, error) {
	if err := checkID("video_id", videoID); err != nil {
		return nil, err
	}
	return get[Video](ctx, s.c, Route("/v3/videos/{video_id}", videoID))
}

// List fetches one page of videos (GET /v3/videos).
func (s *VideosService) List(ctx context.Context, opts ListVideosOptions) (*Page[Video], error) {
	q, err := pageQuery(opts.Limit, MaxVideoPageLimit, opts.Token)
	if err != nil {
		return nil, err
	}
	setIf(q, "title", opts.Title)
	if opts.FolderID != "" {
		if err := checkID("folder_id", opts.FolderID); err != nil {
			return nil, err
		}
		q.Set("folder_id", opts.FolderID)
	}
	return list[Video](ctx, s.c, Route("/v3/videos"), q, opts.Limit, nil)
}

// Delete deletes a video for good (DELETE /v3/videos/{video_id}). It is
// not retried: a second delete of a deleted video would report not found.
func (s *VideosService) Delete(ctx context.Context, videoID string) error {
	if err := checkID("video_id", videoID); err != nil {
		return err
	}
	req, err := s.c.NewRequest(ctx, http.MethodDelete, Route("/v3/videos/{video_id}", videoID), nil, nil)
	if err != nil {
		return err
	}
	_, err = s.c.Do(req, nil)
	return err
}

// Statuses fetches the statuses of up to [MaxStatusIDs] videos in one call
// (GET /v3/videos/statuses).
func (s *VideosService) Statuses(ctx context.Context, videoIDs []string) ([]VideoStatus, error) {
	if len(videoIDs) == 0 || len(videoIDs) > MaxStatusIDs {
		return nil, &ValidationError{Field: "video_ids", Reason: "must name 1 to 100 videos"}
	}
	for _, id := range videoIDs {
		if err := checkID("video_ids", id); err != nil {
			return nil, err
		}
	}
	q := map[string][]string{"video_ids": {strings.Join(videoIDs, ",")}}
	page, err := list[VideoStatus](ctx, s.c, Route("/v3/videos/statuses"), q, len(videoIDs), nil)
	if err != nil {
		return nil, err
	}
	return page.Items, nil
}
