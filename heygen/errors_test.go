package heygen

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func response(status int, body string, header map[string]string) *http.Response {
	h := http.Header{}
	for k, v := range header {
		h.Set(k, v)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

// TestCheckResponseShapes runs every body shape from the HeyGen notes and
// every row of the mapping table through CheckResponse.
func TestCheckResponseShapes(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		header      map[string]string
		wantOK      bool
		wantKind    Kind
		wantCode    string
		wantMessage string
	}{
		{name: "v3 success", status: 200, body: `{"data":{"id":"x"}}`, wantOK: true},
		{name: "v2 success with null error", status: 200, body: `{"error":null,"data":{"id":"x"}}`, wantOK: true},
		{name: "v1 success code 100", status: 200, body: `{"code":100,"data":{"id":"x"},"message":"Success"}`, wantOK: true},
		{name: "v3 object not found", status: 404, body: `{"error":{"code":"avatar_not_found","message":"Avatar 6c64 not found","param":"look_id","doc_url":"https://x"}}`,
			wantKind: KindNotFound, wantCode: "avatar_not_found", wantMessage: "Avatar 6c64 not found"},
		{name: "avatar_not_found under HTTP 400", status: 400, body: `{"error":{"code":"avatar_not_found","message":"Avatar x not found"}}`,
			wantKind: KindNotFound, wantCode: "avatar_not_found"},
		{name: "v2 object internal_error forbidden", status: 200, body: `{"data":null,"error":{"code":"internal_error","message":"forbidden"}}`,
			wantKind: KindPermissionDenied, wantCode: "internal_error", wantMessage: "forbidden"},
		{name: "internal_error not found under 500", status: 500, body: `{"data":null,"error":{"code":"internal_error","message":"Avatar looks not found."}}`,
			wantKind: KindNotFound, wantCode: "internal_error"},
		{name: "internal_error not found under 200", status: 200, body: `{"error":{"code":"internal_error","message":"Avatar looks not found."}}`,
			wantKind: KindNotFound},
		{name: "v2 string error", status: 401, body: `{"data":null,"error":"Invalid API key"}`,
			wantKind: KindKeyRejected, wantMessage: "Invalid API key"},
		{name: "v2 string error on 2xx", status: 200, body: `{"data":null,"error":"something odd"}`,
			wantKind: KindBadResponse, wantMessage: "something odd"},
		{name: "flat numeric 401", status: 401, body: `{"code":400112,"message":"Unauthorized"}`,
			wantKind: KindKeyRejected, wantCode: "400112"},
		{name: "flat numeric 40009 under 400", status: 400, body: `{"code":40009,"message":"invalid credentials"}`,
			wantKind: KindKeyRejected, wantCode: "40009"},
		{name: "flat 401056 token expired", status: 400, body: `{"code":401056,"message":"token expired"}`, wantKind: KindKeyRejected},
		{name: "flat 401057 invalid token", status: 200, body: `{"code":401057,"message":"invalid token"}`, wantKind: KindKeyRejected},
		{name: "flat other 400599", status: 403, body: `{"code":400599,"message":"Your account doesn't have API access"}`,
			wantKind: KindPermissionDenied, wantCode: "400599"},
		{name: "flat 400599 on 2xx", status: 200, body: `{"code":400599,"message":"Your account doesn't have API access"}`, wantKind: KindPermissionDenied},
		{name: "flat 400562 forbidden", status: 400, body: `{"code":400562,"message":"forbidden"}`, wantKind: KindPermissionDenied},
		{name: "flat 400573", status: 400, body: `{"code":400573,"message":"permission denied"}`, wantKind: KindPermissionDenied},
		{name: "flat 400631 blocked", status: 400, body: `{"code":400631,"message":"user blocked"}`, wantKind: KindPermissionDenied},
		{name: "flat string code", status: 400, body: `{"code":"400175","message":"invalid parameter"}`,
			wantKind: KindInvalidArgument, wantCode: "400175"},
		{name: "flat 40001 missing params", status: 400, body: `{"code":40001,"message":"missing params"}`, wantKind: KindInvalidArgument},
		{name: "flat 400123 rate limit under 400", status: 400, body: `{"code":400123,"message":"exceed rate limit"}`, wantKind: KindRateLimited},
		{name: "v3 invalid_parameter", status: 400, body: `{"error":{"code":"invalid_parameter","message":"limit too large","param":"limit"}}`, wantKind: KindInvalidArgument},
		{name: "v3 unauthorized", status: 401, body: `{"error":{"code":"unauthorized","message":"no"}}`, wantKind: KindKeyRejected},
		{name: "v3 forbidden", status: 403, body: `{"error":{"code":"forbidden","message":"no"}}`, wantKind: KindPermissionDenied},
		{name: "v3 resource_access_denied", status: 403, body: `{"error":{"code":"resource_access_denied","message":"no"}}`, wantKind: KindPermissionDenied},
		{name: "missing scope", status: 400, body: `{"error":{"code":"bad_scope","message":"missing user-read to execute this operation"}}`, wantKind: KindPermissionDenied},
		{name: "v3 resource_not_found", status: 404, body: `{"error":{"code":"resource_not_found","message":"gone"}}`, wantKind: KindNotFound},
		{name: "v3 voice_not_found under 200", status: 200, body: `{"error":{"code":"voice_not_found","message":"x"}}`, wantKind: KindNotFound},
		{name: "v3 insufficient_credit", status: 402, body: `{"error":{"code":"insufficient_credit","message":"top up"}}`, wantKind: KindInsufficientCredit},
		{name: "plain 402", status: 402, body: `{}`, wantKind: KindInsufficientCredit},
		{name: "v3 rate_limit_exceeded", status: 429, body: `{"error":{"code":"rate_limit_exceeded","message":"slow down"}}`, header: map[string]string{"Retry-After": "7"}, wantKind: KindRateLimited},
		{name: "v3 quota_exceeded", status: 429, body: `{"error":{"code":"quota_exceeded","message":"quota"}}`, wantKind: KindRateLimited},
		{name: "429 empty body", status: 429, body: ``, wantKind: KindRateLimited},
		{name: "500 internal_error", status: 500, body: `{"error":{"code":"internal_error","message":"boom"}}`, wantKind: KindUnavailable},
		{name: "503 html from a proxy", status: 503, body: `<html><body>Service Unavailable</body></html>`, wantKind: KindUnavailable},
		{name: "502 empty", status: 502, body: ``, wantKind: KindUnavailable},
		{name: "504 timeout code", status: 504, body: `{"error":{"code":"timeout","message":"upstream"}}`, wantKind: KindUnavailable},
		{name: "2xx not JSON", status: 200, body: `<html>hello</html>`, wantKind: KindBadResponse},
		{name: "2xx empty", status: 200, body: ``, wantKind: KindBadResponse},
		{name: "2xx unknown error code", status: 200, body: `{"error":{"code":"mystery","message":"?"}}`, wantKind: KindBadResponse, wantCode: "mystery"},
		{name: "2xx timeout code is still a bad response", status: 200, body: `{"error":{"code":"timeout","message":"?"}}`, wantKind: KindBadResponse},
		{name: "redirect", status: 302, body: ``, header: map[string]string{"Location": "https://evil.example/"}, wantKind: KindBadResponse},
		{name: "404 html", status: 404, body: `<html>nope</html>`, wantKind: KindNotFound},
		{name: "conflict 409", status: 409, body: `{"error":{"code":"conflict","message":"x"}}`, wantKind: KindConflict},
		{name: "request in progress 409", status: 409, body: `{"error":{"code":"request_in_progress","message":"x"}}`, wantKind: KindInProgress},
		{name: "payload too large 413", status: 413, body: `{"error":{"code":"payload_too_large","message":"x"}}`, wantKind: KindPayloadTooLarge},
		{name: "bare 413", status: 413, body: `not json`, wantKind: KindPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"X-Request-Id": "req_42"}
			for k, v := range tt.header {
				hdr[k] = v
			}
			err := CheckResponse(response(tt.status, tt.body, hdr), 1<<20)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("CheckResponse() = %v, want success", err)
				}
				return
			}
			var herr *Error
			if !errors.As(err, &herr) {
				t.Fatalf("CheckResponse() = %T %v, want *Error", err, err)
			}
			if herr.Kind != tt.wantKind {
				t.Errorf("Kind = %v, want %v", herr.Kind, tt.wantKind)
			}
			if herr.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", herr.HTTPStatus, tt.status)
			}
			if herr.RequestID != "req_42" {
				t.Errorf("RequestID = %q, want req_42", herr.RequestID)
			}
			if tt.wantCode != "" && herr.Code != tt.wantCode {
				t.Errorf("Code = %q, want %q", herr.Code, tt.wantCode)
			}
			if tt.wantMessage != "" && herr.Message != tt.wantMessage {
				t.Errorf("Message = %q, want %q", herr.Message, tt.wantMessage)
			}
			if strings.Contains(herr.Error(), "<html") || strings.Contains(herr.Error(), "evil.example") {
				t.Errorf("Error() leaks the raw body or redirect target: %q", herr.Error())
			}
		})
	}
}

func TestCheckResponseRetryAfter(t *testing.T) {
	err := CheckResponse(response(429, `{"error":{"code":"rate_limit_exceeded","message":"x"}}`, map[string]string{"Retry-After": "7"}), 1<<20)
	herr := asError(t, err)
	if !herr.HasRetryAfter || herr.RetryAfter != 7*time.Second {
		t.Fatalf("RetryAfter = %v (has %v), want 7s", herr.RetryAfter, herr.HasRetryAfter)
	}
	err = CheckResponse(response(429, ``, map[string]string{"Retry-After": "soon"}), 1<<20)
	if herr := asError(t, err); herr.HasRetryAfter {
		t.Fatalf("garbage Retry-After was taken as %v", herr.RetryAfter)
	}
}

func TestCheckResponseSizeCap(t *testing.T) {
	body := `{"data":"` + strings.Repeat("a", 2000) + `"}`
	err := CheckResponse(response(200, body, nil), 1024)
	var herr *Error
	if !errors.As(err, &herr) || herr.Kind != KindBadResponse || !strings.Contains(herr.Message, "1024-byte limit") {
		t.Fatalf("CheckResponse(oversized) = %v, want bad response naming the limit", err)
	}
	if err := CheckResponse(response(200, body, nil), int64(len(body))); err != nil {
		t.Fatalf("a body exactly at the cap must pass, got %v", err)
	}
}

func TestCheckResponseLongMessageCapped(t *testing.T) {
	err := CheckResponse(response(400, `{"error":{"code":"invalid_parameter","message":"`+strings.Repeat("é", 1000)+`"}}`, nil), 1<<20)
	herr := asError(t, err)
	if len(herr.Message) > maxMessageLen+len("…") {
		t.Fatalf("message kept %d bytes, want at most %d", len(herr.Message), maxMessageLen)
	}
	if !strings.HasSuffix(herr.Message, "…") || strings.ContainsRune(herr.Message, '\uFFFD') {
		t.Fatalf("message cut badly: %q", herr.Message[len(herr.Message)-10:])
	}
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var herr *Error
	if !errors.As(err, &herr) {
		t.Fatalf("got %T %v, want *Error", err, err)
	}
	return herr
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"120", 2 * time.Minute, true},
		{"Wed, 21 Oct 2026 07:28:05 GMT", 5 * time.Second, true},
		{"Wed, 21 Oct 2026 07:27:00 GMT", 0, true}, // in the past
		{"Wednesday, 21-Oct-26 07:28:10 GMT", 10 * time.Second, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}
