package server

import (
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

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

	statusFromHeyGen = map[string]heygenv1.AvatarStatus{
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
)

func invert[K comparable, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// avatarFromLook converts a HeyGen look. Unknown enum values become
// *_UNSPECIFIED with the upstream string kept in the *_raw field.
func avatarFromLook(l *heygen.Look) *heygenv1.Avatar {
	a := &heygenv1.Avatar{
		Id:                  l.ID,
		Name:                l.Name,
		AvatarType:          avatarTypeFromHeyGen[l.AvatarType],
		AvatarTypeRaw:       l.AvatarType,
		GroupId:             l.GroupID,
		Gender:              l.Gender,
		DefaultVoiceId:      l.DefaultVoiceID,
		PreviewImageUrl:     l.PreviewImageURL,
		PreviewVideoUrl:     l.PreviewVideoURL,
		ImageWidth:          int32Ptr(l.ImageWidth),
		ImageHeight:         int32Ptr(l.ImageHeight),
		SupportedApiEngines: l.SupportedAPIEngines,
		Tags:                l.Tags,
		Error:               avatarError(l.Error),
	}
	if l.PreferredOrientation != nil {
		a.PreferredOrientation = orientationFromHeyGen[*l.PreferredOrientation]
		a.PreferredOrientationRaw = l.PreferredOrientation
	}
	if l.Status != nil {
		a.Status = statusFromHeyGen[*l.Status]
		a.StatusRaw = l.Status
	}
	if l.CreatedAt != nil {
		a.CreatedAt = timestamp(*l.CreatedAt)
	}
	return a
}

// avatarGroupFromGroup converts a HeyGen group.
func avatarGroupFromGroup(g *heygen.Group) *heygenv1.AvatarGroup {
	out := &heygenv1.AvatarGroup{
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
	}
	if g.Status != nil {
		out.Status = statusFromHeyGen[*g.Status]
		out.StatusRaw = g.Status
	}
	return out
}

func avatarError(e *heygen.AvatarError) *heygenv1.AvatarError {
	if e == nil {
		return nil
	}
	return &heygenv1.AvatarError{Code: e.Code, Message: e.Message}
}

func timestamp(unix int64) *timestamppb.Timestamp {
	return timestamppb.New(time.Unix(unix, 0))
}

func int32Ptr(v *int64) *int32 {
	if v == nil {
		return nil
	}
	c := clampInt32(*v)
	return &c
}

func clampInt32(v int64) int32 {
	return int32(max(math.MinInt32, min(math.MaxInt32, v)))
}
