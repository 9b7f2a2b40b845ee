package heygen

// Fuzz targets for the two parsers that read whatever HeyGen (or a proxy in
// front of it) sends: the response envelope (CheckResponse and
// decodeEnvelope) and the Retry-After header (ParseRetryAfter).
//
// Each target asserts properties, not just "does not panic". The seed
// corpora live in testdata/fuzz/<FuzzName>/ and are generated from the
// tables at the bottom of this file:
//
//	FUZZ_WRITE_SEEDS=1 go test -run '^TestFuzzSeedCorpus$' ./heygen
//
// Without FUZZ_WRITE_SEEDS, TestFuzzSeedCorpus checks that the committed
// files match the tables. Plain `go test` runs every corpus file (seeds and
// any crasher a fuzzing run saved) through the targets as regression tests;
// scripts/fuzz.sh fuzzes each target for a bounded time.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heygen-grpc/heygen-grpc/internal/fuzzseed"
)

// ellipsis is what cleanMessage appends to a message it cut.
const ellipsis = "…"

// fuzzResponse builds a response the way net/http would hand it to the
// client: a status, no headers that matter, and an in-memory body.
func fuzzResponse(status int, body []byte) *http.Response {
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{},
		Body:       io.NopCloser(bytes.NewReader(body)),
	}
}

// fuzzStatus maps any int onto the statuses net/http can return (100-999),
// leaving those already in range alone so that seeds stay readable.
func fuzzStatus(n int) int {
	if n >= 100 && n <= 999 {
		return n
	}
	return 100 + int(uint(n)%900)
}

// FuzzCheckResponse feeds arbitrary bodies, statuses and body caps to
// CheckResponse and checks the contract the gRPC mapping relies on.
func FuzzCheckResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, rawStatus int, limit uint16) {
		status := fuzzStatus(rawStatus)
		maxBytes := int64(limit)
		success := status >= 200 && status < 300
		oversized := int64(len(body)) > maxBytes

		err := CheckResponse(fuzzResponse(status, body), maxBytes)
		// Run twice to check determinism: no Retry-After header is sent, so
		// nothing depends on the clock.
		err2 := CheckResponse(fuzzResponse(status, body), maxBytes)

		if err == nil {
			if err2 != nil {
				t.Fatalf("CheckResponse is not deterministic: nil, then %v", err2)
			}
			if !success {
				t.Fatalf("CheckResponse(status %d) = nil; only a 2xx may succeed", status)
			}
			if oversized {
				t.Fatalf("CheckResponse accepted a %d-byte body over the %d-byte cap", len(body), maxBytes)
			}
			// (Leading and trailing Unicode white space is tolerated, as
			// bytes.TrimSpace does; JSON itself allows only SP, HT, CR, LF.)
			if trimmed := bytes.TrimSpace(body); !json.Valid(trimmed) || trimmed[0] != '{' {
				t.Fatalf("CheckResponse accepted a body that is not a JSON object: %q", body)
			}
			return
		}

		// The exact type is the property: *Error itself, not something wrapping it.
		e, ok := err.(*Error) //nolint:errorlint // the dynamic type itself is under test
		if !ok {
			t.Fatalf("CheckResponse returned %T (%v), want *Error", err, err)
		}
		if e2, ok := err2.(*Error); !ok || *e != *e2 { //nolint:errorlint // as above
			t.Fatalf("CheckResponse is not deterministic:\n first: %#v\nsecond: %#v", err, err2)
		}
		if e.Err != nil {
			t.Fatalf("Error.Err = %v; reading an in-memory body cannot fail", e.Err)
		}
		if e.HTTPStatus != status {
			t.Fatalf("Error.HTTPStatus = %d, want %d", e.HTTPStatus, status)
		}
		if e.Kind < KindBadResponse || e.Kind > KindInProgress {
			t.Fatalf("Error.Kind = %v, not one of the defined kinds", e.Kind)
		}
		if strings.HasPrefix(e.Kind.String(), "kind(") {
			t.Fatalf("Error.Kind %d has no name", int(e.Kind))
		}

		// Documented outcomes that do not depend on the body's content.
		redirect := status >= 300 && status < 400
		switch {
		case redirect && e.Kind != KindBadResponse:
			t.Fatalf("redirect %d gave Kind %v, want bad_response", status, e.Kind)
		case !redirect && oversized && e.Kind != KindBadResponse:
			t.Fatalf("%d-byte body over the %d-byte cap gave Kind %v, want bad_response", len(body), maxBytes, e.Kind)
		case !redirect && !oversized && status == http.StatusUnauthorized && e.Kind != KindKeyRejected:
			t.Fatalf("HTTP 401 gave Kind %v, want key_rejected", e.Kind)
		case !redirect && !oversized && status == http.StatusTooManyRequests && e.Kind != KindRateLimited:
			t.Fatalf("HTTP 429 gave Kind %v, want rate_limited", e.Kind)
		case success && e.Kind == KindUnavailable:
			t.Fatalf("a 2xx gave Kind unavailable; a 2xx failure is at worst bad_response")
		}

		checkErrorFields(t, e)

		// No raw body echo: a body longer than the message cap never
		// appears whole in the error text.
		if len(body) > maxMessageLen && strings.Contains(e.Error(), string(body)) {
			t.Fatalf("Error() echoes the whole %d-byte body: %q", len(body), e.Error())
		}

		// Kind follows Classify of what the envelope decoder found, and
		// Classify is deterministic.
		if !redirect && !oversized {
			_, code, message, param, failed, isObject := decodeEnvelope(body)
			if success && isObject && !failed {
				t.Fatalf("CheckResponse failed a 2xx whose envelope reports no failure: %v", e)
			}
			want := KindBadResponse
			switch {
			case !isObject && !success:
				want = Classify(status, "", "")
			case isObject:
				want = Classify(status, code, message)
				if again := Classify(status, code, message); again != want {
					t.Fatalf("Classify(%d, %q, %q) gave %v then %v", status, code, message, want, again)
				}
				if success && want == KindUnavailable {
					want = KindBadResponse
				}
				if e.Message != cleanMessage(message, nil) || e.Code != cleanField(code, 64, nil) || e.Param != cleanField(param, 64, nil) {
					t.Fatalf("Error{Code %q, Message %q, Param %q} differs from the decoded envelope {%q, %q, %q}",
						e.Code, e.Message, e.Param, code, message, param)
				}
			}
			if e.Kind != want {
				t.Fatalf("Error.Kind = %v, want %v (Classify of the decoded envelope)", e.Kind, want)
			}
		}
	})
}

// checkErrorFields checks the text fields of an *Error: capped, valid
// UTF-8, and (for the message) free of control characters.
func checkErrorFields(t *testing.T, e *Error) {
	if n := len(e.Message); n > maxMessageLen+len(ellipsis) {
		t.Fatalf("Error.Message is %d bytes, over the %d-byte cap plus ellipsis", n, maxMessageLen)
	}
	if !utf8.ValidString(e.Message) {
		t.Fatalf("Error.Message is not valid UTF-8: %q", e.Message)
	}
	for i, r := range e.Message {
		if unicode.IsControl(r) {
			t.Fatalf("Error.Message has control character %U at byte %d: %q", r, i, e.Message)
		}
	}
	if len(e.Code) > 64 || len(e.Param) > 64 {
		t.Fatalf("Error.Code (%d bytes) or Error.Param (%d bytes) over 64 bytes", len(e.Code), len(e.Param))
	}
	// Code and Param go into google.rpc.ErrorInfo metadata, a proto3
	// map<string, string>: invalid UTF-8 there makes the detail unmarshalable.
	if !utf8.ValidString(e.Code) {
		t.Fatalf("Error.Code is not valid UTF-8: %q", e.Code)
	}
	if !utf8.ValidString(e.Param) {
		t.Fatalf("Error.Param is not valid UTF-8: %q", e.Param)
	}
}

// FuzzParseRetryAfter checks ParseRetryAfter on an arbitrary header value
// v, on the delta-seconds rendering of n, and on the HTTP-date rendering of
// now+delta, where now comes from nowNano.
func FuzzParseRetryAfter(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string, n uint32, nowNano int64, delta int64) {
		now := time.Unix(0, nowNano) // 1677..2262: a four-digit year
		// Keep the date within 200 years of now: a four-digit year, and a
		// difference that fits a time.Duration.
		const span = int64(200 * 365 * 24 * time.Hour)
		delta %= span

		// 1. Any value: never panics, consistent (d, ok), deterministic,
		// and only delta-seconds or an HTTP-date is accepted.
		d, ok := ParseRetryAfter(v, now)
		if d2, ok2 := ParseRetryAfter(v, now); d2 != d || ok2 != ok {
			t.Fatalf("ParseRetryAfter(%q) gave (%v, %v) then (%v, %v)", v, d, ok, d2, ok2)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = (%v, false); a rejected value must give 0", v, d)
		}
		if ok && d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = (%v, true); negative", v, d)
		}
		tv := strings.TrimSpace(v)
		switch {
		case tv == "":
			if ok {
				t.Fatalf("ParseRetryAfter(%q) = (%v, true), want ok=false for an empty value", v, d)
			}
		case tv[0] == '-':
			if ok {
				t.Fatalf("ParseRetryAfter(%q) = (%v, true), want ok=false for a negative value", v, d)
			}
		case allDigits(tv):
			if secs, err := strconv.ParseUint(tv, 10, 32); err == nil {
				if want := time.Duration(secs) * time.Second; !ok || d != want {
					t.Fatalf("ParseRetryAfter(%q) = (%v, %v), want (%v, true)", v, d, ok, want)
				}
			}
		case ok:
			at, err := http.ParseTime(tv)
			if err != nil {
				t.Fatalf("ParseRetryAfter(%q) = (%v, true) for a value that is neither delta-seconds nor an HTTP-date", v, d)
			}
			if want := max(at.Sub(now), 0); d != want {
				t.Fatalf("ParseRetryAfter(%q, %v) = %v, want %v", v, now, d, want)
			}
		}

		// 2. Delta-seconds: any uint32 n is n seconds, with or without the
		// optional whitespace around a header value.
		want := time.Duration(n) * time.Second
		for _, s := range []string{strconv.FormatUint(uint64(n), 10), " " + strconv.FormatUint(uint64(n), 10) + "\t"} {
			if d, ok := ParseRetryAfter(s, now); !ok || d != want {
				t.Fatalf("ParseRetryAfter(%q) = (%v, %v), want (%v, true)", s, d, ok, want)
			}
		}
		if n != 0 {
			s := "-" + strconv.FormatUint(uint64(n), 10)
			if d, ok := ParseRetryAfter(s, now); ok || d != 0 {
				t.Fatalf("ParseRetryAfter(%q) = (%v, %v), want (0, false)", s, d, ok)
			}
		}

		// 3. HTTP-date: the difference to now at the header's one-second
		// resolution; a date in the past is zero.
		at := now.Add(time.Duration(delta))
		date := at.UTC().Format(http.TimeFormat)
		wantDate := max(at.Truncate(time.Second).Sub(now), 0)
		if d, ok := ParseRetryAfter(date, now); !ok || d != wantDate {
			t.Fatalf("ParseRetryAfter(%q, now %v) = (%v, %v), want (%v, true)", date, now.UTC(), d, ok, wantDate)
		}
		if at.After(now) {
			if diff := at.Sub(now); wantDate > diff || diff-wantDate >= time.Second {
				t.Fatalf("date %q: %v is not %v to the second", date, wantDate, diff)
			}
		}
	})
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ---- seed corpora ----------------------------------------------------------

const bigLimit = uint16(65535)

func envelopeSeed(name string, status int, body string) fuzzseed.Seed {
	return fuzzseed.Seed{Name: name, Vals: []any{[]byte(body), status, bigLimit}}
}

// checkResponseSeeds: every body shape in the HeyGen notes, under the
// statuses they come with, plus malformed, huge, deep and unicode bodies.
func checkResponseSeeds() []fuzzseed.Seed {
	long := strings.Repeat("x", 2*maxMessageLen)
	accents := strings.Repeat("é", maxMessageLen)        // 2-byte runes across the cut
	emoji := strings.Repeat("\U0001F600", maxMessageLen) // 4-byte runes across the cut
	deepArray := `{"data":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`
	deepError := `{"error":` + strings.Repeat(`{"a":`, 600) + `1` + strings.Repeat("}", 600) + `}`
	seeds := []fuzzseed.Seed{
		// Success shapes.
		envelopeSeed("v3_success", 200, `{"data":{"id":"Abigail_expressive_2024112501","name":"Abigail","avatar_type":"studio_avatar","tags":null}}`),
		envelopeSeed("v3_list_page", 200, `{"data":[{"id":"josh_lite3_20230714","name":"Josh"}],"has_more":true,"next_token":"eyJvZmZzZXQiOjIwfQ"}`),
		envelopeSeed("v3_list_last_page", 200, `{"data":[],"has_more":false,"next_token":null}`),
		envelopeSeed("v2_success_null_error", 200, `{"error":null,"data":{"avatars":[]}}`),
		envelopeSeed("v1_success_code_100", 200, `{"code":100,"data":{"id":"x"},"message":"Success"}`),
		envelopeSeed("empty_object_200", 200, `{}`),
		envelopeSeed("message_only_200", 200, `{"message":"ok"}`),
		envelopeSeed("success_204_empty", 204, ``),
		// Error shapes from the notes.
		envelopeSeed("v3_object_not_found", 404, `{"error":{"code":"avatar_not_found","message":"Avatar 6c64b2a8 not found","param":"look_id","doc_url":"https://docs.heygen.com/reference/errors"}}`),
		envelopeSeed("v3_not_found_under_400", 400, `{"error":{"code":"avatar_not_found","message":"Avatar x not found","param":"look_id"}}`),
		envelopeSeed("v3_invalid_parameter", 400, `{"error":{"code":"invalid_parameter","message":"limit must be between 1 and 50","param":"limit"}}`),
		envelopeSeed("v3_insufficient_credit", 402, `{"error":{"code":"insufficient_credit","message":"Insufficient credit"}}`),
		envelopeSeed("v3_rate_limited", 429, `{"error":{"code":"rate_limit_exceeded","message":"Too many requests"}}`),
		envelopeSeed("v3_quota_exceeded_200", 200, `{"error":{"code":"quota_exceeded","message":"quota"}}`),
		envelopeSeed("v3_timeout_200", 200, `{"error":{"code":"timeout","message":"upstream timeout"}}`),
		envelopeSeed("v3_conflict", 409, `{"error":{"code":"conflict","message":"conflict"}}`),
		envelopeSeed("v3_payload_too_large", 413, `{"error":{"code":"payload_too_large","message":"too large"}}`),
		envelopeSeed("v3_missing_scope", 403, `{"error":{"code":"forbidden","message":"missing user-read to execute this operation"}}`),
		envelopeSeed("v2_internal_error_forbidden_200", 200, `{"data":null,"error":{"code":"internal_error","message":"forbidden"}}`),
		envelopeSeed("v2_internal_error_not_found_500", 500, `{"data":null,"error":{"code":"internal_error","message":"Avatar looks not found."}}`),
		envelopeSeed("v2_string_error_401", 401, `{"data":null,"error":"Invalid API key"}`),
		envelopeSeed("v2_string_error_200", 200, `{"data":null,"error":"something odd"}`),
		envelopeSeed("flat_numeric_401", 401, `{"code":400112,"message":"Unauthorized"}`),
		envelopeSeed("flat_numeric_40009_400", 400, `{"code":40009,"message":"invalid credentials"}`),
		envelopeSeed("flat_string_400599_403", 403, `{"code":"400599","message":"Your account doesn't have API access"}`),
		envelopeSeed("flat_numeric_400599_200", 200, `{"code":400599,"message":"Your account doesn't have API access"}`),
		envelopeSeed("flat_400123_rate", 200, `{"code":400123,"message":"exceed rate limit"}`),
		envelopeSeed("flat_40001_missing", 400, `{"code":40001,"message":"missing params"}`),
		envelopeSeed("flat_code_with_data", 200, `{"code":400112,"data":{"id":"x"}}`),
		envelopeSeed("flat_null_message", 401, `{"code":"400112","message":null}`),
		envelopeSeed("html_502", 502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body>\r\n</html>\r\n"),
		envelopeSeed("html_200", 200, `<!doctype html><html><body>Maintenance</body></html>`),
		envelopeSeed("empty_200", 200, ``),
		envelopeSeed("empty_503", 503, ``),
		envelopeSeed("whitespace_only", 200, " \t\r\n "),
		envelopeSeed("redirect_302", 302, `{"data":{"id":"x"}}`),
		// Odd JSON.
		envelopeSeed("json_null", 200, `null`),
		envelopeSeed("json_array", 200, `[{"data":1}]`),
		envelopeSeed("json_string", 500, `"error"`),
		envelopeSeed("trailing_garbage", 200, `{"data":{}}xyz`),
		envelopeSeed("two_objects", 200, `{"data":{}}{"error":"x"}`),
		envelopeSeed("truncated_error", 404, `{"error":{"code":"avatar_not_found","mess`),
		envelopeSeed("truncated_data", 200, `{"data":`),
		envelopeSeed("truncated_string", 200, `{"error":"unterminated`),
		envelopeSeed("error_number", 200, `{"error":42}`),
		envelopeSeed("error_bool", 400, `{"error":true}`),
		envelopeSeed("error_array", 500, `{"error":["a",{"code":"not_found"},null]}`),
		envelopeSeed("error_empty_object", 200, `{"error":{}}`),
		envelopeSeed("error_empty_string", 200, `{"error":""}`),
		envelopeSeed("error_code_number", 400, `{"error":{"code":400175,"message":"invalid parameter"}}`),
		envelopeSeed("error_code_object", 400, `{"error":{"code":{"x":1},"message":"m"}}`),
		envelopeSeed("error_message_number", 500, `{"error":{"code":"internal_error","message":7}}`),
		envelopeSeed("flat_code_float", 400, `{"code":4.00112e5,"message":"x"}`),
		envelopeSeed("flat_code_huge", 400, `{"code":123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890,"message":"x"}`),
		envelopeSeed("flat_code_exp", 400, `{"code":1e999999,"message":"x"}`),
		envelopeSeed("flat_code_negative_zero", 400, `{"code":-0,"message":"x"}`),
		envelopeSeed("flat_code_string_spaces", 403, `{"code":"  400599  ","message":"x"}`),
		envelopeSeed("data_huge_number", 200, `{"data":1e999999999}`),
		envelopeSeed("has_more_wrong_type", 200, `{"data":[],"has_more":"true"}`),
		envelopeSeed("next_token_wrong_type", 200, `{"data":[],"next_token":5}`),
		envelopeSeed("duplicate_error_keys", 200, `{"error":null,"error":{"code":"not_found","message":"x"}}`),
		envelopeSeed("uppercase_keys", 200, `{"ERROR":{"Code":"avatar_not_found","MESSAGE":"x"}}`),
		envelopeSeed("deep_array", 200, deepArray),
		envelopeSeed("deep_error_object", 500, deepError),
		// Messages: long, multi-byte at the cut, control characters, odd UTF-8.
		envelopeSeed("long_ascii_message", 400, `{"error":{"code":"invalid_parameter","message":"`+long+`"}}`),
		envelopeSeed("long_accent_message", 400, `{"error":{"code":"invalid_parameter","message":"`+accents+`"}}`),
		envelopeSeed("long_emoji_message", 400, `{"error":{"code":"invalid_parameter","message":"`+emoji+`"}}`),
		envelopeSeed("long_string_error", 500, `{"error":"`+long+`"}`),
		envelopeSeed("long_flat_message", 403, `{"code":400599,"message":"`+long+`"}`),
		envelopeSeed("long_error_array", 500, `{"error":[`+strings.Repeat(`"abc",`, 200)+`"z"]}`),
		envelopeSeed("long_code_and_param", 400, `{"error":{"code":"`+strings.Repeat("c", 100)+`_not_found","message":"x","param":"`+strings.Repeat("p", 100)+`"}}`),
		envelopeSeed("control_chars_message", 500, `{"error":{"code":"internal_error","message":"line1\nline2\r\u0000\u001b[31mred\u007f\ttab"}}`),
		envelopeSeed("control_chars_string_error", 500, `{"error":"a\nb\u001b[31mc"}`),
		envelopeSeed("c1_control_message", 500, `{"error":{"code":"internal_error","message":"next\u0085line \u009b31mred"}}`),
		envelopeSeed("raw_control_chars", 500, "{\"error\":[\"a\",\n\t\"b\"]}"),
		envelopeSeed("unicode_message", 404, `{"error":{"code":"not_found","message":"Аватар не найден — 头像未找到 🙈 \u202eRTL"}}`),
		envelopeSeed("invalid_utf8_message", 400, "{\"error\":{\"code\":\"invalid_parameter\",\"message\":\"bad \xff\xfe bytes\"}}"),
		envelopeSeed("lone_surrogate", 400, `{"error":{"message":"\ud800 half"}}`),
		envelopeSeed("utf8_bom", 200, "\xef\xbb\xbf{\"data\":{}}"),
		envelopeSeed("nul_body", 500, "\x00\x00\x00"),
		// Body size cap and statuses at the edges.
		{Name: "at_limit", Vals: []any{[]byte(`{"data":{}}`), 200, uint16(11)}},
		{Name: "over_limit_by_one", Vals: []any{[]byte(`{"data":{}}`), 200, uint16(10)}},
		{Name: "zero_limit_empty_body", Vals: []any{[]byte(``), 200, uint16(0)}},
		{Name: "over_limit_error_body", Vals: []any{[]byte(`{"error":{"code":"avatar_not_found","message":"x"}}`), 404, uint16(16)}},
		{Name: "over_limit_401", Vals: []any{[]byte(`{"code":400112,"message":"Unauthorized"}`), 401, uint16(8)}},
		envelopeSeed("status_100", 100, `{"data":{}}`),
		envelopeSeed("status_299", 299, `{"data":{}}`),
		envelopeSeed("status_300", 300, `{"data":{}}`),
		envelopeSeed("status_408", 408, `{}`),
		envelopeSeed("status_410", 410, `{}`),
		envelopeSeed("status_422", 422, `{"error":{"message":"unprocessable"}}`),
		envelopeSeed("status_999", 999, `{}`),
		envelopeSeed("status_out_of_range", -1, `{"data":{}}`),
	}
	return seeds
}

// retryAfterSeeds: both header forms, the three HTTP-date layouts, edges
// of uint32 and garbage. The other values give a realistic clock (2026),
// the epoch and the ends of the int64 nanosecond range.
func retryAfterSeeds() []fuzzseed.Seed {
	const now2026 = int64(1792567680) * int64(time.Second) // 2026-10-21T07:28:00Z
	type v struct {
		name, value string
		n           uint32
		nowNano     int64
		delta       int64
	}
	vs := []v{
		{"delta_3", "3", 3, now2026, int64(3 * time.Second)},
		{"delta_0", "0", 0, now2026, 0},
		{"delta_120_spaces", " 120\t", 120, now2026, int64(120 * time.Second)},
		{"delta_leading_zeros", "0007", 7, now2026, int64(999 * time.Millisecond)},
		{"delta_max_uint32", "4294967295", 4294967295, now2026, int64(time.Nanosecond)},
		{"delta_uint32_overflow", "4294967296", 1, now2026, -int64(time.Second)},
		{"delta_huge", "99999999999999999999999999", 0, 0, 0},
		{"negative", "-1", 1, now2026, -int64(time.Hour)},
		{"negative_zero", "-0", 0, now2026, 0},
		{"plus_sign", "+5", 5, now2026, 0},
		{"fraction", "1.5", 1, now2026, int64(1500 * time.Millisecond)},
		{"unit_suffix", "3s", 3, now2026, 0},
		{"exponent", "1e3", 1000, now2026, 0},
		{"hex", "0x10", 16, now2026, 0},
		{"empty", "", 0, now2026, 0},
		{"spaces", "   ", 0, now2026, 0},
		{"word", "soon", 0, now2026, 0},
		{"arabic_indic_digit", "٣", 3, now2026, 0},
		{"fullwidth_digit", "３", 3, now2026, 0},
		{"nul_after_digit", "5\x00", 5, now2026, 0},
		{"crlf", "\t5\r\n", 5, now2026, 0},
		{"imf_fixdate_now", "Wed, 21 Oct 2026 07:28:00 GMT", 0, now2026, 0},
		{"imf_fixdate_future", "Wed, 21 Oct 2026 07:28:30 GMT", 30, now2026 - int64(500*time.Millisecond), int64(30 * time.Second)},
		{"imf_fixdate_past", "Thu, 01 Jan 1970 00:00:00 GMT", 0, now2026, -int64(24 * time.Hour)},
		{"imf_fixdate_far_future", "Fri, 31 Dec 9999 23:59:59 GMT", 0, now2026, int64(100 * 365 * 24 * time.Hour)},
		{"imf_fixdate_wrong_weekday", "Mon, 21 Oct 2026 07:28:05 GMT", 5, now2026, 0},
		{"imf_fixdate_utc", "Wed, 21 Oct 2026 07:28:00 UTC", 0, now2026, 0},
		{"imf_fixdate_offset", "Wed, 21 Oct 2026 07:28:00 +0000", 0, now2026, 0},
		{"imf_fixdate_truncated", "Wed, 21 Oct 2026 07:28", 0, now2026, 0},
		{"rfc850", "Wednesday, 21-Oct-26 07:28:10 GMT", 10, now2026, 0},
		{"ansic", "Wed Oct 21 07:28:20 2026", 20, now2026, 0},
		{"epoch_clock", "1", 1, 0, int64(time.Second)},
		{"min_clock", "Thu, 01 Jan 1970 00:00:00 GMT", 0, -1 << 63, 1<<63 - 1},
		{"max_clock", "Fri, 11 Apr 2262 23:47:16 GMT", 0, 1<<63 - 1, -1 << 63},
	}
	seeds := make([]fuzzseed.Seed, 0, len(vs))
	for _, s := range vs {
		seeds = append(seeds, fuzzseed.Seed{Name: s.name, Vals: []any{s.value, s.n, s.nowNano, s.delta}})
	}
	return seeds
}

// TestFuzzSeedCorpus writes (FUZZ_WRITE_SEEDS=1) or checks the committed
// seed corpora against the tables above.
func TestFuzzSeedCorpus(t *testing.T) {
	fuzzseed.Check(t, map[string][]fuzzseed.Seed{
		"FuzzCheckResponse":   checkResponseSeeds(),
		"FuzzParseRetryAfter": retryAfterSeeds(),
	}, "go test -run '^TestFuzzSeedCorpus$' ./heygen")
}
