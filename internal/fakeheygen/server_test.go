package fakeheygen_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

func TestAuthAndHeaders(t *testing.T) {
	s := newServer(t, demoOptions())
	for _, key := range []string{"-", "wrong"} {
		for _, path := range []string{"/v3/users/me", "/v3/videos", "/nope"} {
			r := call{path: path, key: key}.must(t, s)
			if r.status != http.StatusUnauthorized || string(r.body) != `{"code":400112,"message":"Unauthorized"}` {
				t.Fatalf("key %q %s: %d %s", key, path, r.status, r.body)
			}
		}
	}
	seen := map[string]bool{}
	for range 3 {
		r := get(t, s, "/v3/users/me")
		wantOK(t, r)
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		id := r.header.Get("X-Request-Id")
		if id == "" || seen[id] {
			t.Fatalf("X-Request-Id %q not unique", id)
		}
		seen[id] = true
	}
}

func TestSetAPIKeys(t *testing.T) {
	s := newServer(t, fakeheygen.Options{})
	status := func(key string) int { return call{path: "/v3/users/me", key: key}.must(t, s).status }
	s.SetAPIKeys("old-key", "new-key", "")
	if status("old-key") != 200 || status("new-key") != 200 || status(canaryKey) != 401 {
		t.Fatal("rotation: both keys must be accepted, the first one no longer")
	}
	s.SetAPIKey("new-key")
	if status("old-key") != 401 || status("new-key") != 200 {
		t.Fatal("after rotation: the old key must be refused")
	}
	s.SetAPIKey("")
	if status("new-key") != 401 {
		t.Fatal("revoked key accepted")
	}
	if _, err := fakeheygen.NewServer(fakeheygen.Options{}); err == nil {
		t.Fatal("NewServer without key succeeded")
	}
}

func TestRoutingAndMethods(t *testing.T) {
	s := newServer(t, demoOptions())
	for _, tc := range []struct {
		method, path, allow string
	}{
		{http.MethodPost, "/v3/avatars", "GET"},
		{http.MethodDelete, "/v3/avatars/looks/x", "GET"},
		{http.MethodPut, "/v3/users/me", "GET"},
		{http.MethodPost, "/v3/voices", "GET"},
		{http.MethodPatch, "/v3/voices/x", "GET"},
		{http.MethodPut, "/v3/videos", "GET, POST"},
		{http.MethodPost, "/v3/videos/statuses", "GET"},
		{http.MethodPost, "/v3/videos/abc", "DELETE, GET"},
		{http.MethodHead, "/v3/videos", "GET, POST"},
	} {
		r := call{method: tc.method, path: tc.path}.must(t, s)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q, want 405 with %q", tc.method, tc.path, r.status, r.header.Get("Allow"), tc.allow)
			continue
		}
		if tc.method != http.MethodHead {
			wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "")
		}
	}
	for _, p := range []string{"/", "/v3", "/v2/avatars", "/v3/avatars/x/y", "/v3/avatars/looks/x/y",
		"/v3/users/me/x", "/v3/voices/a/b", "/v3/videos/a/b", "/v3/videos/statuses/x"} {
		wantError(t, get(t, s, p), 404, "not_found", "")
	}
	// An escaped slash is part of the segment, not a separator; bad ids are not found.
	wantError(t, get(t, s, "/v3/avatars/a%2Fb"), 404, "avatar_not_found", "group_id")
	wantError(t, get(t, s, "/v3/avatars/looks/"), 404, "avatar_not_found", "look_id")
	wantError(t, get(t, s, "/v3/avatars/"+strings.Repeat("a", 129)), 404, "avatar_not_found", "group_id")
	wantError(t, get(t, s, "/v3/voices/a%2Fb"), 404, "voice_not_found", "voice_id")
	wantError(t, get(t, s, "/v3/videos/"), 404, "video_not_found", "video_id")
}

// TestMiddleware checks that the middleware runs inside the request log and the latency
// and before the key check.
func TestMiddleware(t *testing.T) {
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/teapot" {
				w.WriteHeader(http.StatusTeapot)
				return
			}
			w.Header().Set("X-Wrapped", "yes")
			next.ServeHTTP(w, r)
		})
	}
	s := newServer(t, fakeheygen.Options{Middleware: mw})
	s.SetLatency(80 * time.Millisecond)
	start := time.Now()
	r := call{path: "/teapot", key: "-"}.must(t, s)
	if r.status != http.StatusTeapot {
		t.Fatalf("middleware answer: %d", r.status)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("middleware answer not delayed: %v", d)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Fatal("middleware answer has no X-Request-Id")
	}
	if n := s.CountPath("/teapot"); n != 1 {
		t.Fatalf("middleware answer logged %d times", n)
	}
	r = get(t, s, "/v3/users/me")
	if r.status != 200 || r.header.Get("X-Wrapped") != "yes" {
		t.Fatalf("pass-through: %d %v", r.status, r.header)
	}
}

func TestRequestLog(t *testing.T) {
	s := newServer(t, fakeheygen.Options{RequestBodyLogLimit: 10, Voices: fakeheygen.DemoVoices()})
	get(t, s, "/v3/voices?limit=5")
	call{path: "/v3/voices?limit=6", key: "bad"}.must(t, s)
	body := `{"type":"avatar","avatar_id":"nope","script":"hello"}`
	r := call{method: http.MethodPost, path: "/v3/videos", body: body, header: map[string]string{"Idempotency-Key": "idem-1"}}.must(t, s)
	// The handler still sees the whole body although the log keeps 10 bytes.
	wantError(t, r, 404, "avatar_not_found", "avatar_id")
	call{method: http.MethodPost, path: "/v3/videos", body: "{}"}.must(t, s)

	if n := s.RequestCount(); n != 4 {
		t.Fatalf("RequestCount = %d", n)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{{"", "/v3/voices", 2}, {"", "/v3/videos", 2}, {"POST", "/v3/videos", 2}, {"GET", "/v3/videos", 0}, {"GET", "/v3/voices", 2}} {
		got := s.CountPath(tc.path)
		if tc.method != "" {
			got = s.CountMethodPath(tc.method, tc.path)
		}
		if got != tc.want {
			t.Errorf("count %s %s = %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
	reqs := s.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests logged", len(reqs))
	}
	if q := reqs[0]; q.Method != http.MethodGet || q.Path != "/v3/voices" || q.RawQuery != "limit=5" || q.APIKey != canaryKey ||
		q.RequestID == "" || q.Time.IsZero() || q.Body != nil || q.BodyTruncated {
		t.Errorf("GET logged as %+v", q)
	}
	if reqs[1].APIKey != "bad" {
		t.Errorf("wrong key logged as %q", reqs[1].APIKey)
	}
	if q := reqs[2]; q.Method != http.MethodPost || q.IdempotencyKey != "idem-1" || string(q.Body) != body[:10] || !q.BodyTruncated {
		t.Errorf("POST logged as %+v (body %q)", q, q.Body)
	}
	if q := reqs[3]; string(q.Body) != "{}" || q.BodyTruncated || q.IdempotencyKey != "" {
		t.Errorf("short POST logged as %+v", q)
	}
	s.ResetRequests()
	if s.RequestCount() != 0 || len(s.Requests()) != 0 || s.CountPath("/v3/voices") != 0 || s.CountMethodPath("POST", "/v3/videos") != 0 {
		t.Fatal("ResetRequests left something")
	}
}

func TestRequestLogBounded(t *testing.T) {
	s := newServer(t, fakeheygen.Options{RequestLogLimit: 5, RequestBodyLogLimit: -1})
	for i := range 12 {
		call{method: http.MethodPost, path: fmt.Sprintf("/p/%d", i), body: "x"}.must(t, s)
	}
	reqs := s.Requests()
	if len(reqs) != 5 || reqs[0].Path != "/p/7" || reqs[4].Path != "/p/11" || reqs[4].Body != nil {
		t.Fatalf("ring = %+v", reqs)
	}
	if s.RequestCount() != 12 || s.CountPath("/p/0") != 1 || s.CountMethodPath("POST", "/p/0") != 1 {
		t.Fatalf("counts %d %d", s.RequestCount(), s.CountPath("/p/0"))
	}
}

func TestLatencyAndClose(t *testing.T) {
	s, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: canaryKey})
	if err != nil {
		t.Fatal(err)
	}
	s.SetLatency(60 * time.Millisecond)
	start := time.Now()
	wantOK(t, get(t, s, "/v3/users/me"))
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("latency not applied: %v", d)
	}
	// A cancelled request stops waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.SetLatency(time.Minute)
	if _, err := (call{path: "/v3/users/me", ctx: ctx}).do(s); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled request: %v", err)
	}
	// Close interrupts a request waiting for its latency.
	errc := make(chan error, 1)
	go func() {
		_, err := call{path: "/v3/users/me"}.do(s)
		errc <- err
	}()
	for s.RequestCount() < 3 {
		time.Sleep(time.Millisecond)
	}
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := <-errc; err == nil {
		t.Fatal("request survived Close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestHandlerMounted serves the fake from another server: state is shared.
func TestHandlerMounted(t *testing.T) {
	s := newServer(t, fakeheygen.Options{Voices: fakeheygen.DemoVoices()})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, hs.URL+"/v3/voices?limit=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", canaryKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || s.CountPath("/v3/voices") != 1 {
		t.Fatalf("mounted handler: %d, logged %d", resp.StatusCode, s.CountPath("/v3/voices"))
	}
}

func TestErrorHelpers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fakeheygen.V3Error("not_found", `a "quoted" <msg>`), `{"error":{"code":"not_found","message":"a \"quoted\" \u003cmsg\u003e"}}`},
		{fakeheygen.V3ErrorParam("invalid_parameter", "m", "limit"), `{"error":{"code":"invalid_parameter","message":"m","param":"limit"}}`},
		{fakeheygen.V2Error("internal_error", "forbidden"), `{"data":null,"error":{"code":"internal_error","message":"forbidden"}}`},
		{fakeheygen.V2StringError("Invalid API key"), `{"data":null,"error":"Invalid API key"}`},
		{fakeheygen.FlatError(400599, "no API access"), `{"code":400599,"message":"no API access"}`},
		{fakeheygen.FlatStringError("x", "y"), `{"code":"x","message":"y"}`},
	} {
		if tc.got != tc.want || !json.Valid([]byte(tc.got)) {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}
