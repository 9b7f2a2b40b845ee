package catalogue

// Fuzz targets for page tokens: the only opaque input the service decodes
// for callers.
//
// FuzzPageTokenRoundTrip builds tokens with the encoder and checks that they
// round-trip, are bound to their list kind and filters, and that any
// corruption is refused. FuzzDecodePageToken feeds arbitrary strings to the
// decoder. The seed corpora live in testdata/fuzz/<FuzzName>/ and are
// generated (with the real encoder) from the tables at the bottom of this
// file:
//
//	FUZZ_WRITE_SEEDS=1 go test -run '^TestPageTokenFuzzSeedCorpus$' ./catalogue
//
// Without FUZZ_WRITE_SEEDS, TestPageTokenFuzzSeedCorpus checks that the
// committed files match the tables.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/heygen-grpc/heygen-grpc/internal/fuzzseed"
)

// The list kinds seeds use: the avatar and group kinds, cached and
// passed through.
const (
	kindAvatars     byte = 'A'
	kindGroups      byte = 'G'
	kindPassAvatars byte = 'a'
	kindPassGroups  byte = 'g'
)

// maxTokenPayload is the largest payload whose token fits maxPageTokenLen.
const maxTokenPayload = maxPageTokenLen/4*3 - tokenHeaderLen - tokenChecksumLen

// FuzzPageTokenRoundTrip checks tokens made by encodeToken.
func FuzzPageTokenRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind, otherKind byte, filters, otherFilters uint64, payload []byte, pos uint16, mask byte, cut uint16) {
		tok := encodeToken(kind, filters, payload)
		if again := encodeToken(kind, filters, payload); again != tok {
			t.Fatalf("encodeToken is not deterministic: %q then %q", tok, again)
		}
		if i := strings.IndexFunc(tok, func(r rune) bool { return !isBase64URL(r) }); i >= 0 {
			t.Fatalf("token %q has %q at %d: not unpadded base64url", tok, tok[i], i)
		}

		if len(tok) > maxPageTokenLen {
			// The decoder's length limit: the encoder does not enforce it,
			// so the caller must keep payloads within maxTokenPayload.
			if len(payload) <= maxTokenPayload {
				t.Fatalf("a %d-byte payload gave a %d-character token, over the %d limit", len(payload), len(tok), maxPageTokenLen)
			}
			if _, err := decodeToken(tok, kind, filters); !errors.Is(err, errBadToken) {
				t.Fatalf("decode of a %d-character token: err = %v, want errBadToken", len(tok), err)
			}
			return
		}

		// Round trip; an empty payload is never a valid page position.
		got, err := decodeToken(tok, kind, filters)
		if len(payload) == 0 {
			if !errors.Is(err, errBadToken) {
				t.Fatalf("decode of a token with an empty payload: err = %v, want errBadToken", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("decode(encode(%q, %#x, %q)) failed: %v", kind, filters, payload, err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("decode(encode(%q, %#x, %q)) = %q", kind, filters, payload, got)
		}

		// Bound to the list kind and the filters.
		if otherKind != kind {
			for _, fp := range []uint64{filters, otherFilters} {
				if p, err := decodeToken(tok, otherKind, fp); !errors.Is(err, errBadToken) || p != nil {
					t.Fatalf("token for kind %q decoded as kind %q (filters %#x): (%q, %v), want errBadToken", kind, otherKind, fp, p, err)
				}
			}
		}
		if otherFilters != filters {
			if p, err := decodeToken(tok, kind, otherFilters); !errors.Is(err, errTokenFilters) || p != nil {
				t.Fatalf("token for filters %#x decoded with filters %#x: (%q, %v), want errTokenFilters", filters, otherFilters, p, err)
			}
		}

		m := mask
		if m == 0 {
			m = 1
		}
		// Any change of one character of the token is refused.
		flipped := []byte(tok)
		i := int(pos) % len(flipped)
		flipped[i] ^= m
		if p, err := decodeToken(string(flipped), kind, filters); err == nil {
			t.Fatalf("token %q with byte %d flipped (^%#02x) to %q still decodes, to %q", tok, i, m, flipped, p)
		}
		// Any change of one byte of the sealed bytes is refused.
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatal(err)
		}
		j := int(pos) % len(raw)
		raw[j] ^= m
		if p, err := decodeToken(base64.RawURLEncoding.EncodeToString(raw), kind, filters); err == nil {
			t.Fatalf("token %q with sealed byte %d flipped (^%#02x) still decodes, to %q", tok, j, m, p)
		}
		raw[j] ^= m
		// Any truncation is refused, of the text or of the sealed bytes.
		c := 1 + int(cut)%len(tok)
		if p, err := decodeToken(tok[:len(tok)-c], kind, filters); err == nil {
			t.Fatalf("token %q cut by %d characters still decodes, to %q", tok, c, p)
		}
		c = 1 + int(cut)%len(raw)
		if p, err := decodeToken(base64.RawURLEncoding.EncodeToString(raw[:len(raw)-c]), kind, filters); err == nil {
			t.Fatalf("token %q cut by %d sealed bytes still decodes, to %q", tok, c, p)
		}
	})
}

// FuzzDecodePageToken checks decodeToken on arbitrary strings: it
// never panics, fails with one of its two errors, and accepts only tokens
// the encoder would have produced, byte for byte.
func FuzzDecodePageToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string, kind byte, filters uint64) {
		p, err := decodeToken(token, kind, filters)
		p2, err2 := decodeToken(token, kind, filters)
		if !bytes.Equal(p, p2) || !errors.Is(err, err2) {
			t.Fatalf("decodeToken(%q) gave (%q, %v) then (%q, %v)", token, p, err, p2, err2)
		}
		if err != nil {
			if !errors.Is(err, errBadToken) && !errors.Is(err, errTokenFilters) && !errors.Is(err, errOldToken) {
				t.Fatalf("decodeToken(%q) failed with %v, want errBadToken, errOldToken or errTokenFilters", token, err)
			}
			if p != nil {
				t.Fatalf("decodeToken(%q) failed but returned payload %q", token, p)
			}
			if len(token) > maxPageTokenLen && !errors.Is(err, errBadToken) {
				t.Fatalf("decodeToken of %d characters: %v, want errBadToken", len(token), err)
			}
			if !errors.Is(err, errTokenFilters) {
				return
			}
			// A token refused only for its filters is a sealed token of this
			// kind: it must open with the filters it names.
			raw, derr := base64.RawURLEncoding.DecodeString(token)
			if derr != nil || len(raw) < tokenHeaderLen+tokenChecksumLen {
				t.Fatalf("decodeToken(%q) = errTokenFilters for a token that is not sealed bytes", token)
			}
			filters = binary.BigEndian.Uint64(raw[2:tokenHeaderLen])
			if p, err = decodeToken(token, kind, filters); err != nil {
				t.Fatalf("decodeToken(%q) with the filters it names (%#x): %v", token, filters, err)
			}
		}
		if len(token) > maxPageTokenLen {
			t.Fatalf("decodeToken accepted a %d-character token", len(token))
		}
		if re := encodeToken(kind, filters, p); re != token {
			t.Fatalf("decodeToken(%q, %q, %#x) accepted a token the encoder would not produce:\n  input:      %q\n  re-encoded: %q\n  payload:    %q",
				token, kind, filters, token, re, p)
		}
	})
}

func isBase64URL(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// ---- seed corpora ----------------------------------------------------------

// Filter fingerprints as the service computes them, for realistic seeds.
var (
	seedFPPublic  = fingerprint("ownership=public")
	seedFPPrivate = fingerprint("ownership=private;avatar_type=digital_twin")
	seedFPEmpty   = fingerprint("")
)

// seedPayloads are what tokens carry: HeyGen's opaque next_token in
// pass-through mode, the last item's id in catalogue mode.
func seedPayloads() map[string][]byte {
	return map[string][]byte{
		"empty":           {},
		"one_byte":        []byte("x"),
		"two_bytes":       []byte("xy"),
		"heygen_token":    []byte("eyJvZmZzZXQiOjIwLCJsaW1pdCI6MjB9"),
		"public_look_id":  []byte("Abigail_expressive_2024112501"),
		"private_id":      []byte("6c64b2a8f3e94d2b9c1a0e7f5d3b2a19"),
		"unicode":         []byte("Аватар 头像 🙈"),
		"binary":          {0x00, 0xff, 0x01, 0x80, 0x7f, '\n', 0xc3},
		"max_payload":     bytes.Repeat([]byte("p"), maxTokenPayload),
		"over_max":        bytes.Repeat([]byte("q"), maxTokenPayload+1),
		"four_kb_payload": bytes.Repeat([]byte("0123456789abcdef"), 256),
	}
}

func pageTokenRoundTripSeeds() []fuzzseed.Seed {
	var seeds []fuzzseed.Seed
	add := func(name string, kind, otherKind byte, fp, otherFP uint64, payload []byte, pos uint16, mask byte, cut uint16) {
		seeds = append(seeds, fuzzseed.Seed{Name: name, Vals: []any{kind, otherKind, fp, otherFP, payload, pos, mask, cut}})
	}
	for name, p := range seedPayloads() {
		add("avatars_"+name, kindPassAvatars, kindPassGroups, seedFPPublic, seedFPPrivate, p, uint16(len(p)/2), 0x01, 1)
	}
	p := seedPayloads()
	add("groups_catalogue_cursor", kindGroups, kindAvatars, seedFPEmpty, seedFPPublic, p["public_look_id"], 0, 0x20, 3)
	add("catalogue_avatars_cursor", kindAvatars, kindPassAvatars, seedFPPrivate, seedFPPrivate, p["private_id"], 7, 0x80, 10)
	add("kind_zero_filters_zero", 0, 1, 0, 1, p["heygen_token"], 65535, 0xff, 65535)
	add("kind_ff_filters_max", 0xff, 0xfe, ^uint64(0), ^uint64(0)-1, p["unicode"], 12, 0x04, 2)
	add("flip_first_char", kindPassAvatars, kindPassAvatars, seedFPPublic, seedFPPublic, p["heygen_token"], 0, 0x01, 0)
	add("flip_checksum_byte", kindPassGroups, kindPassAvatars, seedFPPublic, seedFPEmpty, p["empty"], 20, 0x10, 4)
	add("cut_to_one_char", kindPassAvatars, kindPassGroups, seedFPPublic, 0, p["private_id"], 3, 0x40, 999)
	return seeds
}

// sealRaw seals arbitrary bytes the way encodeToken does (checksum
// over everything), to build tokens with a wrong version or no header.
func sealRaw(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(append(append([]byte{}, body...), sum[:tokenChecksumLen]...))
}

func decodeTokenSeeds() []fuzzseed.Seed {
	var seeds []fuzzseed.Seed
	add := func(name, token string, kind byte, fp uint64) {
		seeds = append(seeds, fuzzseed.Seed{Name: name, Vals: []any{token, kind, fp}})
	}
	p := seedPayloads()
	valid := encodeToken(kindPassAvatars, seedFPPublic, p["heygen_token"])
	groups := encodeToken(kindPassGroups, seedFPEmpty, p["private_id"])

	// Valid tokens from the encoder.
	for name, payload := range p {
		add("valid_"+name, encodeToken(kindPassAvatars, seedFPPublic, payload), kindPassAvatars, seedFPPublic)
	}
	add("valid_groups", groups, kindPassGroups, seedFPEmpty)
	add("valid_catalogue", encodeToken(kindAvatars, seedFPPrivate, p["public_look_id"]), kindAvatars, seedFPPrivate)
	add("valid_kind_zero", encodeToken(0, 0, p["binary"]), 0, 0)
	// Bound to kind and filters.
	add("wrong_kind", valid, kindPassGroups, seedFPPublic)
	add("wrong_kind_catalogue", valid, kindAvatars, seedFPPublic)
	add("wrong_filters", valid, kindPassAvatars, seedFPPrivate)
	add("wrong_kind_and_filters", groups, kindPassAvatars, seedFPPublic)
	// Truncated.
	for _, c := range []int{1, 2, 3, 4, 11, len(valid) / 2, len(valid) - 1} {
		add(fmt.Sprintf("truncated_by_%d", c), valid[:len(valid)-c], kindPassAvatars, seedFPPublic)
	}
	add("truncated_header_only", encodeToken(kindPassAvatars, seedFPPublic, nil)[:13], kindPassAvatars, seedFPPublic)
	// Bit-flipped (inside the header, the payload and the checksum).
	for _, i := range []int{0, 2, 5, 14, len(valid) / 2, len(valid) - 6, len(valid) - 3} {
		b := []byte(valid)
		b[i] ^= 0x01
		add(fmt.Sprintf("flipped_at_%d", i), string(b), kindPassAvatars, seedFPPublic)
	}
	b := []byte(groups)
	b[len(b)/2] ^= 0x20 // case flip: still in the alphabet
	add("flipped_case", string(b), kindPassGroups, seedFPEmpty)
	// valid is 50 bytes, 67 characters: the last character carries 4 bits
	// of data and 2 unused bits. Flip an unused one.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, valid[len(valid)-1]) ^ 0x01
	add("flipped_unused_bits", valid[:len(valid)-1]+alphabet[last:last+1], kindPassAvatars, seedFPPublic)
	// Sealed with a valid checksum but not by the encoder.
	header := binary.BigEndian.AppendUint64([]byte{tokenVersion + 1, kindPassAvatars}, seedFPPublic)
	add("other_version", sealRaw(append(header, "next"...)), kindPassAvatars, seedFPPublic)
	oldHeader := binary.BigEndian.AppendUint64([]byte{tokenVersion - 1, kindPassAvatars}, seedFPPublic)
	add("earlier_version", sealRaw(append(oldHeader, "next"...)), kindPassAvatars, seedFPPublic)
	add("sealed_short", sealRaw([]byte{tokenVersion, kindPassAvatars}), kindPassAvatars, seedFPPublic)
	add("sealed_empty", sealRaw(nil), kindPassAvatars, seedFPPublic)
	// Not base64url, or not what the decoder takes.
	add("empty", "", kindPassAvatars, seedFPPublic)
	add("garbage", "not a token!", kindPassAvatars, seedFPPublic)
	add("std_alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid)+"+/", kindPassAvatars, seedFPPublic)
	add("padded", valid+"==", kindPassAvatars, seedFPPublic)
	add("surrounding_space", " "+valid+"\n", kindPassAvatars, seedFPPublic)
	add("inner_newline", valid[:10]+"\n"+valid[10:], kindPassAvatars, seedFPPublic)
	add("unicode", "ÀÉÎõü头像🙈", kindPassAvatars, seedFPPublic)
	add("invalid_utf8", "\xff\xfe\xfd", kindPassAvatars, seedFPPublic)
	add("heygen_raw_token", string(p["heygen_token"]), kindPassAvatars, seedFPPublic)
	add("json", `{"kind":"a","token":"x"}`, kindPassAvatars, seedFPPublic)
	add("limit_all_A", strings.Repeat("A", maxPageTokenLen), kindPassAvatars, seedFPPublic)
	add("over_limit_all_A", strings.Repeat("A", maxPageTokenLen+1), kindPassAvatars, seedFPPublic)
	add("over_limit_valid", encodeToken(kindPassAvatars, seedFPPublic, p["over_max"]), kindPassAvatars, seedFPPublic)
	return seeds
}

// TestPageTokenFuzzSeedCorpus writes (FUZZ_WRITE_SEEDS=1) or checks the
// committed seed corpora against the tables above.
func TestPageTokenFuzzSeedCorpus(t *testing.T) {
	fuzzseed.Check(t, map[string][]fuzzseed.Seed{
		"FuzzPageTokenRoundTrip": pageTokenRoundTripSeeds(),
		"FuzzDecodePageToken":    decodeTokenSeeds(),
	}, "go test -run '^TestPageTokenFuzzSeedCorpus$' ./catalogue")
}
