package catalogue

import (
	"math"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// PreEncode returns a message that marshals to exactly m's bytes, with
// those bytes computed now, once per snapshot, instead of on every
// response: an empty message of m's type whose unknown fields hold m's
// encoding. Its getters return zero values, so it is only for handing to
// gRPC as part of a response; profiling showed response encoding was a
// third of the gateway's CPU per cached call. On failure (it cannot fail
// for a valid message) it returns m itself.
func PreEncode[M proto.Message](m M) M {
	b, err := proto.Marshal(m)
	if err != nil {
		return m
	}
	shell, ok := m.ProtoReflect().New().Interface().(M)
	if !ok {
		return m
	}
	shell.ProtoReflect().SetUnknown(b)
	return shell
}

func timestamp(unix int64) *timestamppb.Timestamp {
	return timestamppb.New(time.Unix(unix, 0))
}

func timestampPtr(unix *int64) *timestamppb.Timestamp {
	if unix == nil {
		return nil
	}
	return timestamp(*unix)
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

// enumOf maps HeyGen's string to an enum value; unknown strings map to 0
// (*_UNSPECIFIED) and the caller keeps the string in the *_raw field.
func enumOf[E ~int32](m map[string]E, s *string) E {
	if s == nil {
		return 0
	}
	return m[*s]
}
