package fakeheygen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// ErrorObject is the error object HeyGen attaches to a failed avatar group or look.
type ErrorObject struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Group is an avatar group (a person or character) exactly as HeyGen v3 serialises it.
// Optional fields are pointers and are sent as explicit JSON nulls when nil, as HeyGen does.
type Group struct {
	ID              string       `json:"id"`
	Name            string       `json:"name"`
	CreatedAt       int64        `json:"created_at"`
	LooksCount      int          `json:"looks_count"`
	Gender          *string      `json:"gender"`
	PreviewImageURL *string      `json:"preview_image_url"`
	PreviewVideoURL *string      `json:"preview_video_url"`
	DefaultVoiceID  *string      `json:"default_voice_id"`
	ConsentStatus   *string      `json:"consent_status"`
	Status          *string      `json:"status"`
	Error           *ErrorObject `json:"error"`

	// Ownership is "public" or "private"; it is not serialised and only drives the
	// ownership filter of the list endpoints.
	Ownership string `json:"-"`
}

// Look is one outfit, pose or style of an avatar group exactly as HeyGen v3 serialises it.
// Its ID is what HeyGen's video generation takes as avatar_id. Optional fields are
// pointers or slices and are sent as explicit JSON nulls when nil.
type Look struct {
	ID                   string       `json:"id"`
	Name                 string       `json:"name"`
	AvatarType           string       `json:"avatar_type"`
	GroupID              *string      `json:"group_id"`
	Gender               *string      `json:"gender"`
	DefaultVoiceID       *string      `json:"default_voice_id"`
	PreviewImageURL      *string      `json:"preview_image_url"`
	PreviewVideoURL      *string      `json:"preview_video_url"`
	ImageWidth           *int         `json:"image_width"`
	ImageHeight          *int         `json:"image_height"`
	PreferredOrientation *string      `json:"preferred_orientation"`
	SupportedAPIEngines  []string     `json:"supported_api_engines"`
	Tags                 []string     `json:"tags"`
	Status               *string      `json:"status"`
	Error                *ErrorObject `json:"error"`
	CreatedAt            *int64       `json:"created_at"`

	// Ownership is "public" or "private"; it is not serialised and only drives the
	// ownership filter of the looks list endpoint.
	Ownership string `json:"-"`
}

// Catalogue is the avatar data a Server serves, in the order it is listed.
type Catalogue struct {
	Groups []Group
	Looks  []Look
}

// Values of the enumerations used by the fake.
const (
	OwnershipPublic  = "public"
	OwnershipPrivate = "private"

	AvatarTypeStudio      = "studio_avatar"
	AvatarTypeDigitalTwin = "digital_twin"
	AvatarTypePhoto       = "photo_avatar"
)

type person struct {
	name   string
	gender string
}

var people = []person{
	{"Abigail", "female"}, {"Adrian", "male"}, {"Amelia", "female"}, {"Anna", "female"},
	{"Brandon", "male"}, {"Brent", "male"}, {"Caroline", "female"}, {"Daisy", "female"},
	{"Diego", "male"}, {"Elena", "female"}, {"Emmanuel", "male"}, {"Esmond", "male"},
	{"Georgia", "female"}, {"Harrison", "male"}, {"Imelda", "female"}, {"Jasmine", "female"},
	{"Jin", "male"}, {"Josh", "male"}, {"Kayla", "female"}, {"Kenji", "male"},
	{"Leos", "male"}, {"Lina", "female"}, {"Marcus", "male"}, {"Maya", "female"},
	{"Monica", "female"}, {"Nathan", "male"}, {"Noah", "male"}, {"Olivia", "female"},
	{"Priya", "female"}, {"Rafael", "male"}, {"Riya", "female"}, {"Shawn", "male"},
	{"Sofia", "female"}, {"Tyler", "male"}, {"Valeria", "female"}, {"Wade", "male"},
	{"Yuki", "female"}, {"Zoe", "female"}, {"Aditya", "male"}, {"Hana", "female"},
}

// publicStyles are the middle part of public group slugs (Abigail_expressive_2024112501).
var publicStyles = []struct{ slug, title string }{
	{"expressive", "Expressive"}, {"lite3", "Lite"}, {"public", ""}, {"sitting", "Sitting"},
	{"standing", "Standing"}, {"pro", "Pro"}, {"casual", "Casual"}, {"studio", "Studio"},
}

type lookStyle struct {
	title string
	slug  string
	tags  []string
}

var lookStyles = []lookStyle{
	{"in Blue Blazer", "BlueBlazer", []string{"business"}},
	{"Sitting at Desk", "SittingDesk", []string{"business", "office"}},
	{"Casual Sweater", "CasualSweater", []string{"casual"}},
	{"Outdoor Park Walk", "OutdoorPark", []string{"outdoor", "casual"}},
	{"News Anchor", "NewsAnchor", []string{"news", "business"}},
	{"Classroom Lecture", "Classroom", []string{"education"}},
	{"Standing Front", "StandingFront", []string{"business"}},
	{"Kitchen Chat", "KitchenChat", []string{"casual", "lifestyle"}},
	{"Green Screen", "GreenScreen", []string{"studio"}},
	{"Holiday Sweater", "HolidaySweater", []string{"casual", "holiday"}},
	{"in Lab Coat", "LabCoat", []string{"education", "healthcare"}},
	{"at the Beach", "Beach", []string{"outdoor", "lifestyle"}},
	{"Podcast Studio", "Podcast", []string{"news", "casual"}},
	{"Formal Portrait", "FormalPortrait", []string{"business", "formal"}},
}

var privateSuffixes = map[string][]string{
	AvatarTypeDigitalTwin: {"Digital Twin", "Sales Clone", "Onboarding Host", "Support Rep", "CEO Welcome"},
	AvatarTypePhoto:       {"Photo Avatar", "Headshot", "Profile Photo", "Brand Persona"},
}

var privateStatuses = []string{"completed", "completed", "processing", "completed", "pending_consent", "completed", "failed", "completed"}

type orientation struct {
	name string
	w, h int
}

var orientations = []orientation{
	{"landscape", 1920, 1080}, {"landscape", 1920, 1080}, {"portrait", 1080, 1920}, {"square", 1080, 1080},
}

type generator struct {
	r    *rand.Rand
	used map[string]bool
}

func (g *generator) chance(p float64) bool { return g.r.Float64() < p }

func (g *generator) hex32() string {
	for {
		id := fmt.Sprintf("%016x%016x", g.r.Uint64(), g.r.Uint64())
		if !g.used[id] {
			g.used[id] = true
			return id
		}
	}
}

// unique makes id unique within the catalogue by appending a counter if needed.
func (g *generator) unique(id string) string {
	if !g.used[id] {
		g.used[id] = true
		return id
	}
	for n := 2; ; n++ {
		c := fmt.Sprintf("%s_%d", id, n)
		if !g.used[c] {
			g.used[c] = true
			return c
		}
	}
}

func (g *generator) dateSlug(t int64) string {
	d := time.Unix(t, 0).UTC().Format("20060102")
	if g.chance(0.5) {
		d += fmt.Sprintf("%02d", g.r.IntN(9)+1)
	}
	return d
}

// defaultVoice picks a public voice of DemoVoices with the given gender. It draws two
// numbers, as the random 32-hex ids it replaced did, so that every id and name of the
// demo catalogue stays what earlier versions generated: the README and the end-to-end
// tests quote them.
func (g *generator) defaultVoice(gender string) string {
	ids := demoVoiceIDs()[gender]
	n := g.r.Uint64() ^ g.r.Uint64()
	return ids[n%uint64(len(ids))]
}

func strp(s string) *string { return &s }
func intp(i int) *int       { return &i }
func int64p(i int64) *int64 { return &i }

const (
	publicFrom  = 1672531200 // 2023-01-01
	publicTo    = 1751241600 // 2025-06-30
	privateFrom = 1717200000 // 2024-06-01
	privateTo   = 1761955200 // 2025-11-01
)

// GenerateCatalogue returns a deterministic catalogue for seed with the given number of
// groups, each with exactly looksPerGroup looks (negative sizes count as zero). It mixes
// public and private groups, all three avatar types, and null optional fields in the
// proportions seen in HeyGen responses. Every default_voice_id names a public voice of
// DemoVoices with the group's gender. Group i's ownership and avatar type depend only on
// i (see the pattern below), so any catalogue of ten or more groups has all of them.
func GenerateCatalogue(seed int64, groups, looksPerGroup int) Catalogue {
	groups = max(groups, 0)
	looksPerGroup = max(looksPerGroup, 0)
	g := &generator{
		r:    rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)), //nolint:gosec // deterministic sample data, not a secret
		used: make(map[string]bool),
	}
	c := Catalogue{
		Groups: make([]Group, 0, groups),
		Looks:  make([]Look, 0, groups*looksPerGroup),
	}
	privateN := 0
	for i := range groups {
		// Pattern per ten groups: six public (one of them photo avatars), two private
		// digital twins, two private photo avatars.
		var ownership, avatarType string
		switch i % 10 {
		case 0, 1, 2, 3, 4:
			ownership, avatarType = OwnershipPublic, AvatarTypeStudio
		case 5:
			ownership, avatarType = OwnershipPublic, AvatarTypePhoto
		case 6, 7:
			ownership, avatarType = OwnershipPrivate, AvatarTypeDigitalTwin
		default:
			ownership, avatarType = OwnershipPrivate, AvatarTypePhoto
		}
		p := people[g.r.IntN(len(people))]
		grp := Group{Ownership: ownership, LooksCount: looksPerGroup}
		if !g.chance(0.1) {
			grp.Gender = strp(p.gender)
		}
		if !g.chance(0.15) {
			grp.DefaultVoiceID = strp(g.defaultVoice(p.gender))
		}
		status := ""
		if ownership == OwnershipPublic {
			grp.CreatedAt = publicFrom + g.r.Int64N(publicTo-publicFrom)
			st := publicStyles[g.r.IntN(len(publicStyles))]
			slugName := p.name
			if g.chance(0.3) {
				slugName = strings.ToLower(slugName)
			}
			grp.ID = g.unique(slugName + "_" + st.slug + "_" + g.dateSlug(grp.CreatedAt))
			grp.Name = strings.TrimSpace(p.name + " " + st.title)
			hash := g.hex32()
			grp.PreviewImageURL = strp("https://files2.heygen.ai/avatar/v3/" + hash + "/full/2.2/preview_target.webp")
			if avatarType != AvatarTypePhoto && !g.chance(0.2) {
				grp.PreviewVideoURL = strp("https://files2.heygen.ai/avatar/v3/" + hash + "/full/2.2/preview_video_target.mp4")
			}
		} else {
			grp.CreatedAt = privateFrom + g.r.Int64N(privateTo-privateFrom)
			grp.ID = g.hex32()
			suffixes := privateSuffixes[avatarType]
			grp.Name = p.name + " " + suffixes[g.r.IntN(len(suffixes))]
			status = privateStatuses[privateN%len(privateStatuses)]
			privateN++
			grp.Status = strp(status)
			switch {
			case avatarType == AvatarTypePhoto:
				// Photo avatars need no consent.
			case status == "pending_consent":
				grp.ConsentStatus = strp("pending")
			default:
				grp.ConsentStatus = strp("approved")
			}
			if status == "failed" {
				grp.Error = &ErrorObject{Code: "training_failed", Message: "Avatar training failed: no face detected in the footage"}
			}
			if status != "processing" && status != "pending_consent" {
				hash := g.hex32()
				grp.PreviewImageURL = strp("https://resource2.heygen.ai/image/" + hash + "/original.jpg")
				if avatarType == AvatarTypeDigitalTwin && !g.chance(0.3) {
					grp.PreviewVideoURL = strp("https://resource2.heygen.ai/video/" + hash + "/preview.mp4")
				}
			}
		}
		for j, si := range g.r.Perm(max(looksPerGroup, len(lookStyles)))[:looksPerGroup] {
			c.Looks = append(c.Looks, g.look(&grp, p, avatarType, status, si, j))
		}
		c.Groups = append(c.Groups, grp)
	}
	return c
}

// look makes the j-th look of grp using style number si (which may exceed the style list,
// in which case the style repeats with a number).
func (g *generator) look(grp *Group, p person, avatarType, status string, si, j int) Look {
	st := lookStyles[si%len(lookStyles)]
	title := st.title
	slug := st.slug
	if n := si / len(lookStyles); n > 0 {
		title += fmt.Sprintf(" %d", n+1)
		slug += fmt.Sprintf("%d", n+1)
	}
	lk := Look{
		Name:       p.name + " " + title,
		AvatarType: avatarType,
		GroupID:    strp(grp.ID),
		Ownership:  grp.Ownership,
	}
	if g.chance(0.95) {
		lk.CreatedAt = int64p(grp.CreatedAt + g.r.Int64N(90*24*3600))
	}
	if grp.Gender != nil && !g.chance(0.05) {
		lk.Gender = strp(*grp.Gender)
	}
	if grp.DefaultVoiceID != nil && !g.chance(0.1) {
		lk.DefaultVoiceID = strp(*grp.DefaultVoiceID)
	}
	if !g.chance(0.15) {
		lk.Tags = append([]string(nil), st.tags...)
	}
	if grp.Ownership == OwnershipPublic {
		when := grp.CreatedAt
		if lk.CreatedAt != nil {
			when = *lk.CreatedAt
		}
		lk.ID = g.unique(p.name + "_" + slug + "_" + g.dateSlug(when))
		hash := g.hex32()
		lk.PreviewImageURL = strp("https://files2.heygen.ai/avatar/v3/" + hash + "/full/2.2/preview_target.webp")
		if avatarType != AvatarTypePhoto && !g.chance(0.2) {
			lk.PreviewVideoURL = strp("https://files2.heygen.ai/avatar/v3/" + hash + "/full/2.2/preview_video_target.mp4")
		}
	} else {
		lk.ID = g.hex32()
		lk.Name = fmt.Sprintf("%s Look %d", p.name, j+1)
		if g.chance(0.5) {
			lk.Name = p.name + " " + title
		}
		lk.Status = strp(status)
		if grp.Error != nil {
			e := *grp.Error
			lk.Error = &e
		}
		if status != "processing" && status != "pending_consent" {
			hash := g.hex32()
			lk.PreviewImageURL = strp("https://resource2.heygen.ai/image/" + hash + "/original.jpg")
			if avatarType == AvatarTypeDigitalTwin && !g.chance(0.3) {
				lk.PreviewVideoURL = strp("https://resource2.heygen.ai/video/" + hash + "/preview.mp4")
			}
		}
	}
	o := orientations[g.r.IntN(len(orientations))]
	if g.chance(0.15) {
		if g.chance(0.5) {
			lk.PreferredOrientation = strp(o.name)
		}
	} else {
		lk.ImageWidth, lk.ImageHeight = intp(o.w), intp(o.h)
		lk.PreferredOrientation = strp(o.name)
	}
	if !g.chance(0.1) {
		switch avatarType {
		case AvatarTypeStudio:
			if g.chance(0.5) {
				lk.SupportedAPIEngines = []string{"avatar_iii", "avatar_iv", "avatar_v"}
			} else {
				lk.SupportedAPIEngines = []string{"avatar_iii", "avatar_iv"}
			}
		case AvatarTypeDigitalTwin:
			lk.SupportedAPIEngines = []string{"avatar_iv", "avatar_v"}
		default:
			lk.SupportedAPIEngines = []string{"avatar_iv"}
		}
	}
	return lk
}

// DemoCatalogue returns the fixed sample catalogue used by demo mode and tests: 60 groups
// and about 450 looks built by GenerateCatalogue, then hand-edited so that looks_count
// varies (one private group still processing has no looks at all), one group has the
// status "archived" and one look the preferred_orientation "ultrawide" (values this API
// version does not know, which clients must carry through), one look has no created_at,
// and one legacy look belongs to no group (group_id null).
func DemoCatalogue() Catalogue {
	c := GenerateCatalogue(20241125, 60, 8)

	// Vary looks_count: some groups keep fewer looks; the first processing group has none.
	keep := make(map[string]int)
	for i, grp := range c.Groups {
		if i%7 == 3 {
			keep[grp.ID] = i%4 + 1
		}
	}
	for i := range c.Groups {
		grp := &c.Groups[i]
		if grp.Status == nil {
			continue
		}
		if *grp.Status == "processing" {
			if _, ok := keep[grp.ID]; !ok {
				keep[grp.ID] = 0
				break
			}
		}
	}
	for i := range c.Groups {
		grp := &c.Groups[i]
		if _, trimmed := keep[grp.ID]; !trimmed && grp.Status != nil && *grp.Status == "completed" {
			grp.Status = strp("archived")
			break
		}
	}
	seen := make(map[string]int)
	looks := c.Looks[:0]
	for _, lk := range c.Looks {
		gid := *lk.GroupID
		if n, ok := keep[gid]; ok && seen[gid] >= n {
			continue
		}
		seen[gid]++
		looks = append(looks, lk)
	}
	c.Looks = looks

	// Unknown enum value on a look with a known shape.
	for i := range c.Looks {
		lk := &c.Looks[i]
		if lk.Ownership == OwnershipPublic && lk.ImageWidth != nil {
			lk.PreferredOrientation = strp("ultrawide")
			lk.ImageWidth, lk.ImageHeight = intp(2560), intp(1080)
			break
		}
	}
	// created_at null on at least one look.
	c.Looks[len(c.Looks)/2].CreatedAt = nil

	// A legacy look that belongs to no group.
	c.Looks = append(c.Looks, Look{
		ID:                  "Legacy_Presenter_2022_public",
		Name:                "Legacy Presenter",
		AvatarType:          AvatarTypeStudio,
		GroupID:             nil,
		Gender:              strp("male"),
		PreviewImageURL:     strp("https://files2.heygen.ai/avatar/v3/legacy/full/2.2/preview_target.webp"),
		SupportedAPIEngines: []string{"avatar_iii"},
		Tags:                []string{"business"},
		Ownership:           OwnershipPublic,
	})

	recount(&c)
	return c
}

// recount sets every group's looks_count to the number of its looks in c.
func recount(c *Catalogue) {
	n := make(map[string]int)
	for _, lk := range c.Looks {
		if lk.GroupID != nil {
			n[*lk.GroupID]++
		}
	}
	for i := range c.Groups {
		c.Groups[i].LooksCount = n[c.Groups[i].ID]
	}
}
