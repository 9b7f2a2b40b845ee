package catalogue

import (
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
	"unique"

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

// ProtoWire keeps messages of type M encoded: each is marshalled once per
// snapshot and answered as a shell holding its bytes (see PreEncode), and
// decoded again only when asked for by id. A snapshot of 50,000 looks
// held both every message and its encoding; it now holds the encodings,
// half its memory, and a refresh reuses those of unchanged items.
func ProtoWire[M proto.Message](newM func() M) *Wire[M] {
	return &Wire[M]{
		Marshal: func(m M) ([]byte, error) { return proto.Marshal(m) },
		Shell: func(b []byte) M {
			shell := newM()
			shell.ProtoReflect().SetUnknown(b)
			return shell
		},
		Bytes: func(shell M) []byte { return shell.ProtoReflect().GetUnknown() },
		Decode: func(b []byte) (M, error) {
			m := newM()
			return m, proto.Unmarshal(b, m)
		},
	}
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

// int32Into is int32Ptr reusing p when it is not nil.
func int32Into(p *int32, v *int64) *int32 {
	if v == nil {
		return nil
	}
	if p == nil {
		p = new(int32)
	}
	*p = clampInt32(*v)
	return p
}

// intern returns the one copy of s the catalogue's filter fields share:
// 50,000 looks have a few genders, engines and tags, and 5,000 groups.
func intern(s string) string { return unique.Make(s).Value() }

// internedSets are the shared copies of the small string sets filter
// fields hold (an avatar's engines and tags), by their joined values;
// bounded, past which sets are kept as they are.
var internedSets struct {
	sync.RWMutex
	m map[string][]string
}

const maxInternedSets = 10_000

// internSet returns the shared copy of set (which it may keep). tolower
// lower-cases the values first.
func internSet(set []string, tolower bool) []string {
	if len(set) == 0 {
		return nil
	}
	// The key: each value's length, then the value (lower-cased), so that
	// no two sets share one.
	var buf, low [256]byte
	key := buf[:0]
	for _, s := range set {
		v := []byte(nil)
		if tolower {
			v = low[:0]
			for _, r := range s {
				v = utf8.AppendRune(v, unicode.ToLower(r))
			}
		} else {
			v = append(low[:0], s...)
		}
		key = binary.AppendUvarint(key, uint64(len(v)))
		key = append(key, v...)
	}
	internedSets.RLock()
	shared, ok := internedSets.m[string(key)] // no allocation: the key is only looked up
	internedSets.RUnlock()
	if ok {
		return shared
	}
	own := make([]string, len(set))
	for i, s := range set {
		if tolower {
			s = strings.ToLower(s)
		}
		own[i] = intern(s)
	}
	internedSets.Lock()
	defer internedSets.Unlock()
	if shared, ok := internedSets.m[string(key)]; ok {
		return shared
	}
	if internedSets.m == nil {
		internedSets.m = map[string][]string{}
	}
	if len(internedSets.m) < maxInternedSets {
		internedSets.m[string(key)] = own
	}
	return own
}

// lowerText is strings.ToLower(name + "\x00" + id), the text a query
// matches, in one allocation.
func lowerText(name, id string) string {
	var b strings.Builder
	b.Grow(len(name) + 1 + len(id))
	for _, s := range []string{name, "\x00", id} {
		for _, r := range s {
			if r < utf8.RuneSelf {
				if 'A' <= r && r <= 'Z' {
					r += 'a' - 'A'
				}
				b.WriteByte(byte(r)) //nolint:gosec // G115: r < utf8.RuneSelf, one byte
			} else {
				b.WriteRune(unicode.ToLower(r))
			}
		}
	}
	return b.String()
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
