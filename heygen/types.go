package heygen

// AvatarError is HeyGen's explanation of why an avatar or group failed.
type AvatarError struct {
	// Code is HeyGen's error code, verbatim.
	Code string `json:"code"`
	// Message is HeyGen's human-readable explanation.
	Message string `json:"message"`
}

// Look is one HeyGen avatar look (an outfit, pose or style of a group).
// Pointer and slice fields are nil when HeyGen sent them absent or null.
type Look struct {
	// ID is what HeyGen's video generation takes as avatar_id.
	ID string `json:"id"`
	// Name is the display name.
	Name string `json:"name"`
	// AvatarType is studio_avatar, digital_twin or photo_avatar (or a newer value).
	AvatarType string `json:"avatar_type"`
	// GroupID is the id of the group the look belongs to.
	GroupID *string `json:"group_id"`
	// Gender is HeyGen's gender label.
	Gender *string `json:"gender"`
	// DefaultVoiceID is the voice HeyGen suggests.
	DefaultVoiceID *string `json:"default_voice_id"`
	// PreviewImageURL is a preview image.
	PreviewImageURL *string `json:"preview_image_url"`
	// PreviewVideoURL is a preview video.
	PreviewVideoURL *string `json:"preview_video_url"`
	// ImageWidth is the source image width in pixels.
	ImageWidth *int64 `json:"image_width"`
	// ImageHeight is the source image height in pixels.
	ImageHeight *int64 `json:"image_height"`
	// PreferredOrientation is portrait, landscape or square (or a newer value).
	PreferredOrientation *string `json:"preferred_orientation"`
	// SupportedAPIEngines lists the engines that can animate the look.
	SupportedAPIEngines []string `json:"supported_api_engines"`
	// Tags are free-form labels.
	Tags []string `json:"tags"`
	// Status is the training status of a private look.
	Status *string `json:"status"`
	// Error says why training failed.
	Error *AvatarError `json:"error"`
	// CreatedAt is the creation time in unix seconds, when HeyGen sends it.
	CreatedAt *int64 `json:"created_at"`
}

// Group is one HeyGen avatar group: a person or character with one or more looks.
// Pointer fields are nil when HeyGen sent them absent or null.
type Group struct {
	// ID is the group id.
	ID string `json:"id"`
	// Name is the display name.
	Name string `json:"name"`
	// CreatedAt is the creation time in unix seconds.
	CreatedAt int64 `json:"created_at"`
	// LooksCount is the number of looks in the group.
	LooksCount int64 `json:"looks_count"`
	// Gender is HeyGen's gender label.
	Gender *string `json:"gender"`
	// PreviewImageURL is a preview image.
	PreviewImageURL *string `json:"preview_image_url"`
	// PreviewVideoURL is a preview video.
	PreviewVideoURL *string `json:"preview_video_url"`
	// DefaultVoiceID is the voice HeyGen suggests.
	DefaultVoiceID *string `json:"default_voice_id"`
	// ConsentStatus is the consent state of the person shown.
	ConsentStatus *string `json:"consent_status"`
	// Status is the training status of a private group.
	Status *string `json:"status"`
	// Error says why training failed.
	Error *AvatarError `json:"error"`
}

// LookPage is one page of looks.
type LookPage struct {
	// Looks are the items on this page.
	Looks []Look
	// HasMore reports whether another page follows.
	HasMore bool
	// NextToken fetches the next page; empty on the last page.
	NextToken string
}

// GroupPage is one page of groups.
type GroupPage struct {
	// Groups are the items on this page.
	Groups []Group
	// HasMore reports whether another page follows.
	HasMore bool
	// NextToken fetches the next page; empty on the last page.
	NextToken string
}

// User is the account that owns the API key (GET /v3/users/me). Only the
// fields the gateway needs are decoded; the rest are ignored.
type User struct {
	// Username is the account's user name.
	Username string `json:"username"`
	// BillingType is the account's billing model.
	BillingType string `json:"billing_type"`
}

// Ownership filter values accepted by HeyGen.
const (
	OwnershipPublic  = "public"
	OwnershipPrivate = "private"
)

// Avatar type filter values accepted by HeyGen.
const (
	AvatarTypeStudio      = "studio_avatar"
	AvatarTypeDigitalTwin = "digital_twin"
	AvatarTypePhoto       = "photo_avatar"
)

// MaxPageLimit is the largest page HeyGen serves.
const MaxPageLimit = 50

// ListLooksOptions filters and pages GET /v3/avatars/looks. Zero values are omitted.
type ListLooksOptions struct {
	// GroupID keeps only looks of this group.
	GroupID string
	// AvatarType keeps only looks of this type (see the AvatarType constants).
	AvatarType string
	// Ownership keeps only public or private looks (see the Ownership constants).
	Ownership string
	// Limit is the page size, 1 to [MaxPageLimit]; 0 lets HeyGen choose (20).
	Limit int
	// Token is a previous page's NextToken.
	Token string
}

// ListGroupsOptions filters and pages GET /v3/avatars. Zero values are omitted.
type ListGroupsOptions struct {
	// Ownership keeps only public or private groups.
	Ownership string
	// Limit is the page size, 1 to [MaxPageLimit]; 0 lets HeyGen choose (20).
	Limit int
	// Token is a previous page's NextToken.
	Token string
}
