package catalogue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// This file is everything the catalogue knows about avatars (HeyGen
// looks) and avatar groups: how to crawl them, convert them, and filter them.

var (
	avatarTypeFromHeyGen = map[string]heygenv1.AvatarType{
		heygen.AvatarTypeStudio:      heygenv1.AvatarType_AVATAR_TYPE_STUDIO_AVATAR,
		heygen.AvatarTypeDigitalTwin: heygenv1.AvatarType_AVATAR_TYPE_DIGITAL_TWIN,
		heygen.AvatarTypePhoto:       heygenv1.AvatarType_AVATAR_TYPE_PHOTO_AVATAR,
	}
	avatarTypeToHeyGen = invert(avatarTypeFromHeyGen)

	ownershipToHeyGen = map[heygenv1.Ownership]string{
		heygenv1.Ownership_OWNERSHIP_PUBLIC:  heygen.OwnershipPublic,
		heygenv1.Ownership_OWNERSHIP_PRIVATE: heygen.OwnershipPrivate,
	}

	avatarStatusFromHeyGen = map[string]heygenv1.AvatarStatus{
		"processing":      heygenv1.AvatarStatus_AVATAR_STATUS_PROCESSING,
		"pending_consent": heygenv1.AvatarStatus_AVATAR_STATUS_PENDING_CONSENT,
		"failed":          heygenv1.AvatarStatus_AVATAR_STATUS_FAILED,
		"completed":       heygenv1.AvatarStatus_AVATAR_STATUS_COMPLETED,
	}

	orientationFromHeyGen = map[string]heygenv1.Orientation{
		"portrait":  heygenv1.Orientation_ORIENTATION_PORTRAIT,
		"landscape": heygenv1.Orientation_ORIENTATION_LANDSCAPE,
		"square":    heygenv1.Orientation_ORIENTATION_SQUARE,
	}

	// owners lists the ownerships in crawl priority: an id seen in both
	// keeps its public item.
	owners = []heygenv1.Ownership{heygenv1.Ownership_OWNERSHIP_PUBLIC, heygenv1.Ownership_OWNERSHIP_PRIVATE}
)

func invert[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// AvatarFromLook converts a HeyGen look. Unknown enum values become
// *_UNSPECIFIED with the upstream string kept in the *_raw field.
func AvatarFromLook(l *heygen.Look) *heygenv1.Avatar {
	a := &heygenv1.Avatar{}
	fillAvatar(a, l)
	return a
}

// fillAvatar sets a to look l, as AvatarFromLook makes it, reusing a's
// timestamp and sizes (the crawl converts 50,000 looks into recycled
// avatars: see recycledAvatars).
func fillAvatar(a *heygenv1.Avatar, l *heygen.Look) {
	created, width, height := a.CreatedAt, a.ImageWidth, a.ImageHeight
	proto.Reset(a)
	a.Id, a.Name = l.ID, l.Name
	a.AvatarType, a.AvatarTypeRaw = avatarTypeFromHeyGen[l.AvatarType], l.AvatarType
	a.GroupId, a.Gender, a.DefaultVoiceId = l.GroupID, l.Gender, l.DefaultVoiceID
	a.PreviewImageUrl, a.PreviewVideoUrl = l.PreviewImageURL, l.PreviewVideoURL
	a.ImageWidth, a.ImageHeight = int32Into(width, l.ImageWidth), int32Into(height, l.ImageHeight)
	a.SupportedApiEngines, a.Tags = l.SupportedAPIEngines, l.Tags
	a.Error = avatarError(l.Error)
	a.PreferredOrientation, a.PreferredOrientationRaw = enumOf(orientationFromHeyGen, l.PreferredOrientation), l.PreferredOrientation
	a.Status, a.StatusRaw = enumOf(avatarStatusFromHeyGen, l.Status), l.Status
	if l.CreatedAt != nil {
		if created == nil {
			created = &timestamppb.Timestamp{}
		}
		created.Seconds, created.Nanos = *l.CreatedAt, 0
		a.CreatedAt = created
	}
}

// recycledAvatars are avatars a crawl converted looks into and no longer
// needs: each is encoded, and its filter fields taken, as its page arrives
// (see Resource.Recycle). A bounded free list rather than a sync.Pool,
// which every garbage collection empties, several times a crawl.
var recycledAvatars = make(chan *heygenv1.Avatar, 1024)

func recycledAvatar() *heygenv1.Avatar {
	select {
	case a := <-recycledAvatars:
		return a
	default:
		return &heygenv1.Avatar{}
	}
}

func recycleAvatar(a *heygenv1.Avatar) {
	select {
	case recycledAvatars <- a:
	default:
	}
}

// AvatarGroupFromGroup converts a HeyGen group.
func AvatarGroupFromGroup(g *heygen.Group) *heygenv1.AvatarGroup {
	return &heygenv1.AvatarGroup{
		Id:              g.ID,
		Name:            g.Name,
		CreatedAt:       timestamp(g.CreatedAt),
		LooksCount:      clampInt32(g.LooksCount),
		Gender:          g.Gender,
		PreviewImageUrl: g.PreviewImageURL,
		PreviewVideoUrl: g.PreviewVideoURL,
		DefaultVoiceId:  g.DefaultVoiceID,
		ConsentStatus:   g.ConsentStatus,
		Error:           avatarError(g.Error),
		Status:          enumOf(avatarStatusFromHeyGen, g.Status),
		StatusRaw:       g.Status,
	}
}

func avatarError(e *heygen.AvatarError) *heygenv1.AvatarError {
	if e == nil {
		return nil
	}
	return &heygenv1.AvatarError{Code: e.Code, Message: e.Message}
}

// AvatarFilter is a ListAvatars request's filters. Text filters are
// compared case-insensitively; build it with [NewAvatarFilter].
type AvatarFilter struct {
	GroupID     string
	AvatarType  heygenv1.AvatarType
	Ownership   heygenv1.Ownership
	Query       string // lower case
	Gender      string // lower case
	Engine      string
	Orientation heygenv1.Orientation
	Tag         string // lower case
}

// NewAvatarFilter takes a (validated) request's filters.
func NewAvatarFilter(req *heygenv1.ListAvatarsRequest) AvatarFilter {
	return AvatarFilter{
		GroupID:     req.GetGroupId(),
		AvatarType:  req.GetAvatarType(),
		Ownership:   req.GetOwnership(),
		Query:       strings.ToLower(req.GetQuery()),
		Gender:      strings.ToLower(req.GetGender()),
		Engine:      req.GetSupportedEngine(),
		Orientation: req.GetPreferredOrientation(),
		Tag:         strings.ToLower(req.GetTag()),
	}
}

// avatarKeys are an avatar's filter fields, prepared once per snapshot.
type avatarKeys struct {
	text        string // lower-case name + "\x00" + id
	gender      string // lower case
	tags        []string
	engines     []string
	groupID     string
	typ         heygenv1.AvatarType
	own         heygenv1.Ownership
	orientation heygenv1.Orientation
}

func itoa[E ~int32](e E) string { return strconv.Itoa(int(e)) }

// lookPages pages through HeyGen's looks with the given filters.
func lookPages(client *heygen.Client, opts heygen.ListLooksOptions, own heygenv1.Ownership) func(context.Context, string, int) ([]*heygenv1.Avatar, string, error) {
	var looks []heygen.Look // a crawl's partition pages one page after another: reused
	return func(ctx context.Context, token string, size int) ([]*heygenv1.Avatar, string, error) {
		o := opts
		o.Token, o.Limit = token, size
		_, crawling := ctx.Value(crawlRunKey{}).(*crawlRun)
		if crawling {
			o.Into = heygen.ResetLooks(looks)
		}
		p, err := crawlCall(ctx, func(ctx context.Context) (*heygen.Page[heygen.Look], error) { return client.Avatars.ListLooks(ctx, o) })
		if err != nil {
			return nil, "", err
		}
		if crawling {
			looks = p.Items
		}
		// A crawl recycles the avatars it converts (see Resource.Recycle);
		// callers passed through keep theirs.
		out := make([]*heygenv1.Avatar, len(p.Items))
		for i := range p.Items {
			if crawling {
				out[i] = recycledAvatar()
				fillAvatar(out[i], &p.Items[i])
			} else {
				out[i] = AvatarFromLook(&p.Items[i])
			}
			out[i].Ownership = own
		}
		return out, p.NextToken, nil
	}
}

// Avatars is the avatar (look) resource: crawled as public and private
// looks side by side (HeyGen does not say which an item is; the list it
// came from does), indexed by group.
func Avatars(client *heygen.Client) *Resource[*heygenv1.Avatar, avatarKeys, AvatarFilter] {
	r := &Resource[*heygenv1.Avatar, avatarKeys, AvatarFilter]{
		Name:    "avatars",
		Kind:    'A',
		ID:      (*heygenv1.Avatar).GetId,
		Group:   func(k *avatarKeys) string { return k.groupID },
		Wire:    ProtoWire(func() *heygenv1.Avatar { return &heygenv1.Avatar{} }),
		Recycle: recycleAvatar,
		Prepare: func(a *heygenv1.Avatar) avatarKeys {
			k := avatarKeys{text: lowerText(a.GetName(), a.GetId()), gender: intern(strings.ToLower(a.GetGender())),
				engines: internSet(a.GetSupportedApiEngines(), false), tags: internSet(a.GetTags(), true), groupID: intern(a.GetGroupId()),
				typ: a.GetAvatarType(), own: a.GetOwnership(), orientation: a.GetPreferredOrientation()}
			return k
		},
		Filter: FilterSpec[*heygenv1.Avatar, avatarKeys, AvatarFilter]{
			Key: func(f AvatarFilter) string {
				return FilterKey("avatars", f.GroupID, itoa(f.AvatarType), itoa(f.Ownership), f.Query, f.Gender, f.Engine,
					itoa(f.Orientation), f.Tag)
			},
			Group: func(f AvatarFilter) string { return f.GroupID },
			Match: func(f AvatarFilter, k *avatarKeys) bool {
				switch {
				case f.GroupID != "" && k.groupID != f.GroupID,
					f.AvatarType != 0 && k.typ != f.AvatarType,
					f.Ownership != 0 && k.own != f.Ownership,
					f.Orientation != 0 && k.orientation != f.Orientation,
					f.Gender != "" && k.gender != f.Gender,
					f.Query != "" && !strings.Contains(k.text, f.Query),
					f.Engine != "" && !slices.Contains(k.engines, f.Engine),
					f.Tag != "" && !slices.Contains(k.tags, f.Tag):
					return false
				}
				return true
			},
		},
		Fetch: func(ctx context.Context, id string) (*heygenv1.Avatar, error) {
			l, err := client.Avatars.GetLook(ctx, id)
			if err != nil {
				return nil, err
			}
			return AvatarFromLook(l), nil
		},
		Upstream: &Upstream[*heygenv1.Avatar, AvatarFilter]{
			MaxPageSize: heygen.MaxPageLimit,
			Key: func(f AvatarFilter) string {
				return FilterKey("avatars", f.GroupID, itoa(f.AvatarType), itoa(f.Ownership))
			},
			Unsupported: func(f AvatarFilter) []string {
				return setFields(map[string]bool{"query": f.Query != "", "gender": f.Gender != "",
					"supported_engine": f.Engine != "", "preferred_orientation": f.Orientation != 0, "tag": f.Tag != ""})
			},
			Page: func(ctx context.Context, f AvatarFilter, token string, size int) ([]*heygenv1.Avatar, string, error) {
				opts := heygen.ListLooksOptions{GroupID: f.GroupID, AvatarType: avatarTypeToHeyGen[f.AvatarType],
					Ownership: ownershipToHeyGen[f.Ownership]}
				return lookPages(client, opts, f.Ownership)(ctx, token, size)
			},
		},
	}
	for _, own := range owners {
		r.Partitions = append(r.Partitions, lookPartition(client, ownershipToHeyGen[own]+" looks", heygen.ListLooksOptions{Ownership: ownershipToHeyGen[own]}, own))
	}
	r.Split = func(ctx context.Context) ([]Partition[*heygenv1.Avatar], error) { return splitLooks(ctx, client) }
	return r
}

func lookPartition(client *heygen.Client, name string, opts heygen.ListLooksOptions, own heygenv1.Ownership) Partition[*heygenv1.Avatar] {
	page := lookPages(client, opts, own)
	return Partition[*heygenv1.Avatar]{
		Name: name,
		Page: func(ctx context.Context, token string) ([]*heygenv1.Avatar, string, error) {
			return page(ctx, token, heygen.MaxPageLimit)
		},
	}
}

// splitLooks slices the looks for a cold crawl. By group: the groups are
// listed first (a few pages), then each group's looks are a list of their
// own, of one page for most groups, all crawled side by side. When groups
// are so small that this would take more than twice the pages of the
// whole lists, by ownership and avatar type instead. Either way a look
// the slices miss (in no listed group, of a type HeyGen adds later) is
// found by the full crawl that follows.
func splitLooks(ctx context.Context, client *heygen.Client) ([]Partition[*heygenv1.Avatar], error) {
	type listed struct {
		own    heygenv1.Ownership
		groups []*heygenv1.AvatarGroup
	}
	lists := make([]listed, len(owners))
	g, gctx := errgroup.WithContext(ctx)
	for i, own := range owners {
		lists[i].own = own
		page := groupPages(client, own)
		g.Go(func() error {
			var err error
			lists[i].groups, err = pageList(gctx, ownershipToHeyGen[own]+" groups", func(ctx context.Context, token string) ([]*heygenv1.AvatarGroup, string, error) {
				return page(ctx, token, heygen.MaxPageLimit)
			}, crawlMaxPages(gctx), nil, 0)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list the groups to slice the looks by: %w", err)
	}
	pages := func(n int64) int { return int(max(1, (n+heygen.MaxPageLimit-1)/heygen.MaxPageLimit)) }
	var byGroup []Partition[*heygenv1.Avatar]
	slicePages, wholePages := 0, 0
	for _, l := range lists {
		var looks int64
		own := ownershipToHeyGen[l.own]
		for _, grp := range l.groups {
			n := int64(grp.GetLooksCount())
			looks += n
			if n == 0 {
				continue // an empty group (HeyGen counts its looks)
			}
			slicePages += pages(n)
			byGroup = append(byGroup, lookPartition(client, own+" looks of group "+grp.GetId(),
				heygen.ListLooksOptions{GroupID: grp.GetId(), Ownership: own}, l.own))
		}
		wholePages += pages(looks)
	}
	if slicePages <= 2*wholePages {
		return byGroup, nil
	}
	var byType []Partition[*heygenv1.Avatar]
	for _, own := range owners {
		for _, typ := range []string{heygen.AvatarTypeStudio, heygen.AvatarTypeDigitalTwin, heygen.AvatarTypePhoto} {
			byType = append(byType, lookPartition(client, ownershipToHeyGen[own]+" "+typ+" looks",
				heygen.ListLooksOptions{Ownership: ownershipToHeyGen[own], AvatarType: typ}, own))
		}
	}
	return byType, nil
}

// setFields returns the names whose flag is set.
func setFields(used map[string]bool) []string {
	var names []string
	for name, on := range used {
		if on {
			names = append(names, name)
		}
	}
	return names
}

// GroupFilter is a ListAvatarGroups request's filters; build it with
// [NewGroupFilter].
type GroupFilter struct {
	Ownership heygenv1.Ownership
	Query     string // lower case
	Gender    string // lower case
}

// NewGroupFilter takes a (validated) request's filters.
func NewGroupFilter(req *heygenv1.ListAvatarGroupsRequest) GroupFilter {
	return GroupFilter{Ownership: req.GetOwnership(), Query: strings.ToLower(req.GetQuery()), Gender: strings.ToLower(req.GetGender())}
}

type groupKeys struct {
	text   string
	gender string
	own    heygenv1.Ownership
}

func groupPages(client *heygen.Client, own heygenv1.Ownership) func(context.Context, string, int) ([]*heygenv1.AvatarGroup, string, error) {
	return func(ctx context.Context, token string, size int) ([]*heygenv1.AvatarGroup, string, error) {
		p, err := crawlCall(ctx, func(ctx context.Context) (*heygen.Page[heygen.Group], error) {
			return client.Avatars.ListGroups(ctx, heygen.ListGroupsOptions{Ownership: ownershipToHeyGen[own], Limit: size, Token: token})
		})
		if err != nil {
			return nil, "", err
		}
		out := make([]*heygenv1.AvatarGroup, len(p.Items))
		for i := range p.Items {
			out[i] = AvatarGroupFromGroup(&p.Items[i])
			out[i].Ownership = own
		}
		return out, p.NextToken, nil
	}
}

// AvatarGroups is the avatar group resource: crawled as public and private
// groups side by side.
func AvatarGroups(client *heygen.Client) *Resource[*heygenv1.AvatarGroup, groupKeys, GroupFilter] {
	r := &Resource[*heygenv1.AvatarGroup, groupKeys, GroupFilter]{
		Name: "avatar_groups",
		Kind: 'G',
		ID:   (*heygenv1.AvatarGroup).GetId,
		// Groups are few: kept as items (a Wire's encodings cost the crawl
		// more than they save), encoded only for the fleet.
		Codec: ProtoWire(func() *heygenv1.AvatarGroup { return &heygenv1.AvatarGroup{} }),
		Prepare: func(g *heygenv1.AvatarGroup) groupKeys {
			return groupKeys{text: lowerText(g.GetName(), g.GetId()), gender: intern(strings.ToLower(g.GetGender())), own: g.GetOwnership()}
		},
		Filter: FilterSpec[*heygenv1.AvatarGroup, groupKeys, GroupFilter]{
			Key: func(f GroupFilter) string {
				return FilterKey("avatar groups", itoa(f.Ownership), f.Query, f.Gender)
			},
			Match: func(f GroupFilter, k *groupKeys) bool {
				return (f.Ownership == 0 || k.own == f.Ownership) && (f.Gender == "" || k.gender == f.Gender) &&
					(f.Query == "" || strings.Contains(k.text, f.Query))
			},
		},
		Fetch: func(ctx context.Context, id string) (*heygenv1.AvatarGroup, error) {
			g, err := client.Avatars.GetGroup(ctx, id)
			if err != nil {
				return nil, err
			}
			return AvatarGroupFromGroup(g), nil
		},
		Upstream: &Upstream[*heygenv1.AvatarGroup, GroupFilter]{
			MaxPageSize: heygen.MaxPageLimit,
			Key:         func(f GroupFilter) string { return FilterKey("avatar groups", itoa(f.Ownership)) },
			Unsupported: func(f GroupFilter) []string {
				return setFields(map[string]bool{"query": f.Query != "", "gender": f.Gender != ""})
			},
			Page: func(ctx context.Context, f GroupFilter, token string, size int) ([]*heygenv1.AvatarGroup, string, error) {
				return groupPages(client, f.Ownership)(ctx, token, size)
			},
		},
	}
	for _, own := range owners {
		page := groupPages(client, own)
		r.Partitions = append(r.Partitions, Partition[*heygenv1.AvatarGroup]{
			Name: ownershipToHeyGen[own] + " groups",
			Page: func(ctx context.Context, token string) ([]*heygenv1.AvatarGroup, string, error) {
				return page(ctx, token, heygen.MaxPageLimit)
			},
		})
	}
	return r
}
