package heygen

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// MaxPageLimit is the largest page of looks or groups HeyGen serves.
const MaxPageLimit = 50

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

// defaultPageLimit is the page size HeyGen uses when none is asked for.
const defaultPageLimit = 20

// Page is one page of a HeyGen list.
type Page[T any] struct {
	// Items are the items on this page.
	Items []T
	// HasMore reports whether another page follows.
	HasMore bool
	// NextToken fetches the next page; empty on the last page.
	NextToken string
}

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
	// Into, if its capacity holds a page, is the storage the page's items
	// are decoded into (the page's Items then alias it): a caller paging
	// through a list reuses it, instead of a new slice per page. Decoding
	// into a look leaves the fields the JSON omits as they were: the
	// caller resets every look of it first (see ResetLooks).
	Into []Look
}

// ResetLooks readies looks (all of its capacity) to be decoded into again
// (see ListLooksOptions.Into): every field zero, except that the tags and
// engines keep their storage, emptied, for the next look's to reuse.
func ResetLooks(looks []Look) []Look {
	looks = looks[:cap(looks)]
	for i := range looks {
		tags, engines := looks[i].Tags[:0], looks[i].SupportedAPIEngines[:0]
		looks[i] = Look{Tags: tags, SupportedAPIEngines: engines}
	}
	return looks[:0]
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

// pageQuery starts a list query: limit (1 to maxLimit; 0 omitted) and token.
func pageQuery(limit, maxLimit int, token string) (url.Values, error) {
	q := url.Values{}
	if limit < 0 || limit > maxLimit {
		return nil, &ValidationError{Field: "limit", Reason: "must be between 1 and " + strconv.Itoa(maxLimit)}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if token != "" {
		q.Set("token", token)
	}
	return q, nil
}

// setIf sets query parameter k when v is not empty.
func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// list fetches one page of a list endpoint, of up to limit items (0:
// HeyGen's default), decoded into buf's storage when it is large enough.
func list[T any](ctx context.Context, c *Client, path Path, q url.Values, limit int, buf []T) (*Page[T], error) {
	req, err := c.NewRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultPageLimit
	}
	// Sized for the page: decoding appends to it instead of growing it.
	items := buf[:0]
	if cap(buf) < limit {
		items = make([]T, 0, limit)
	}
	resp, err := c.Do(req, &items)
	if err != nil {
		return nil, err
	}
	return &Page[T]{Items: items, HasMore: resp.HasMore, NextToken: resp.NextToken}, nil
}

// get fetches one item.
func get[T any](ctx context.Context, c *Client, path Path) (*T, error) {
	req, err := c.NewRequest(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, err
	}
	var v T
	if _, err := c.Do(req, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// AvatarsService is HeyGen's avatar endpoints.
type AvatarsService struct{ c *Client }

// ListLooks fetches one page of looks (GET /v3/avatars/looks).
func (s *AvatarsService) ListLooks(ctx context.Context, opts ListLooksOptions) (*Page[Look], error) {
	q, err := pageQuery(opts.Limit, MaxPageLimit, opts.Token)
	if err != nil {
		return nil, err
	}
	if opts.GroupID != "" {
		if err := checkID("group_id", opts.GroupID); err != nil {
			return nil, err
		}
		q.Set("group_id", opts.GroupID)
	}
	setIf(q, "avatar_type", opts.AvatarType)
	setIf(q, "ownership", opts.Ownership)
	return list[Look](ctx, s.c, Route("/v3/avatars/looks"), q, opts.Limit, opts.Into)
}

// GetLook fetches one look (GET /v3/avatars/looks/{look_id}).
func (s *AvatarsService) GetLook(ctx context.Context, lookID string) (*Look, error) {
	if err := checkID("look_id", lookID); err != nil {
		return nil, err
	}
	return get[Look](ctx, s.c, Route("/v3/avatars/looks/{look_id}", lookID))
}

// ListGroups fetches one page of avatar groups (GET /v3/avatars).
func (s *AvatarsService) ListGroups(ctx context.Context, opts ListGroupsOptions) (*Page[Group], error) {
	q, err := pageQuery(opts.Limit, MaxPageLimit, opts.Token)
	if err != nil {
		return nil, err
	}
	setIf(q, "ownership", opts.Ownership)
	return list[Group](ctx, s.c, Route("/v3/avatars"), q, opts.Limit, nil)
}

// GetGroup fetches one avatar group (GET /v3/avatars/{group_id}).
func (s *AvatarsService) GetGroup(ctx context.Context, groupID string) (*Group, error) {
	if err := checkID("group_id", groupID); err != nil {
		return nil, err
	}
	if groupID == "looks" {
		// "/v3/avatars/looks" is the look list, not a group.
		return nil, &ValidationError{Field: "group_id", Reason: `"looks" is not a group id`}
	}
	return get[Group](ctx, s.c, Route("/v3/avatars/{group_id}", groupID))
}
