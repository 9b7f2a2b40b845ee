package heygen_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

const canaryKey = "sk-CANARY-7c1e9f4b2d-heygen-grpc-must-never-log-this"

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// setup returns a client against a fresh fake, the fake's fault
// injector, and the client's log.
func setup(t *testing.T, policy heygen.RetryPolicy) (*heygen.Client, *fakeheygen.Server, *faults.Injector, *lockedBuffer) {
	t.Helper()
	inj := faults.New()
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: canaryKey, Catalogue: fakeheygen.DemoCatalogue(), Middleware: inj.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	if policy.BaseDelay == 0 {
		policy.BaseDelay = time.Millisecond
	}
	logs := &lockedBuffer{}
	tr := heygen.NewTransport()
	tr.DisableKeepAlives = true // exact request counts even across resets
	c, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: canaryKey, Retry: policy, Transport: tr,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), canaryKey) {
			t.Error("the API key appears in the client's log")
		}
	})
	return c, fake, inj, logs
}

func TestNewValidatesOptions(t *testing.T) {
	for _, base := range []string{"ftp://x", "https://", "https://user:pw@api.heygen.com", "https://api.heygen.com/?a=b", "https://api.heygen.com/#f", "::"} {
		if _, err := heygen.New(heygen.Options{APIKey: "k", BaseURL: base}); err == nil {
			t.Errorf("New(BaseURL %q) accepted it", base)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("error repeats credentials: %v", err)
		}
	}
	if _, err := heygen.New(heygen.Options{}); err == nil {
		t.Error("New without a key accepted it")
	}
}

func TestKeyIsSentOnlyAsXApiKey(t *testing.T) {
	c, fake, _, _ := setup(t, heygen.RetryPolicy{})
	if _, err := c.Users.Me(t.Context()); err != nil {
		t.Fatal(err)
	}
	page, err := c.Avatars.ListLooks(t.Context(), heygen.ListLooksOptions{Limit: 3, Ownership: heygen.OwnershipPublic})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 3 || !page.HasMore || page.NextToken == "" {
		t.Fatalf("page = %d looks, has_more %v, token %q", len(page.Items), page.HasMore, page.NextToken)
	}
	for _, r := range fake.Requests() {
		if r.APIKey != canaryKey {
			t.Errorf("%s %s carried X-Api-Key %q", r.Method, r.Path, r.APIKey)
		}
		if strings.Contains(r.RawQuery, canaryKey) || strings.Contains(r.Path, canaryKey) {
			t.Errorf("the key leaked into the URL: %s?%s", r.Path, r.RawQuery)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	c, fake, _, _ := setup(t, heygen.RetryPolicy{})
	fake.SetAPIKey("rotated-key")
	_, err := c.Users.Me(t.Context())
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindKeyRejected {
		t.Fatalf("old key: got %v, want KindKeyRejected", err)
	}
	c.SetAPIKey("rotated-key")
	if _, err := c.Users.Me(t.Context()); err != nil {
		t.Fatalf("after SetAPIKey: %v", err)
	}
}

func TestPathSegmentsAreValidatedBeforeSending(t *testing.T) {
	c, fake, _, _ := setup(t, heygen.RetryPolicy{})
	for _, id := range []string{"../../v3/users/me", "a/b", "%2e%2e", "..", "", "a b", "x?y", strings.Repeat("z", 129)} {
		_, err := c.Avatars.GetLook(t.Context(), id)
		var verr *heygen.ValidationError
		if !errors.As(err, &verr) || verr.Field != "look_id" {
			t.Errorf("GetLook(%q) = %v, want a ValidationError on look_id", id, err)
		}
		if _, err := c.Avatars.GetGroup(t.Context(), id); !errors.As(err, &verr) {
			t.Errorf("GetGroup(%q) = %v, want a ValidationError", id, err)
		}
		if id != "" {
			if _, err := c.Avatars.ListLooks(t.Context(), heygen.ListLooksOptions{GroupID: id}); !errors.As(err, &verr) {
				t.Errorf("ListLooks(group %q) = %v, want a ValidationError", id, err)
			}
		}
	}
	if _, err := c.Avatars.ListLooks(t.Context(), heygen.ListLooksOptions{Limit: 51}); err == nil {
		t.Error("limit 51 accepted")
	}
	if n := fake.RequestCount(); n != 0 {
		t.Fatalf("the fake received %d requests, want 0", n)
	}
}

func TestRetriesAndTheirLogs(t *testing.T) {
	c, fake, inj, logs := setup(t, heygen.RetryPolicy{MaxAttempts: 4})
	inj.Inject(faults.Fault{Path: "/v3/users/me", Times: 1, Status: 503})
	inj.Inject(faults.Fault{Path: "/v3/users/me", Times: 1, Reset: true})
	inj.Inject(faults.Fault{Path: "/v3/users/me", Times: 1, Status: 429, Header: map[string]string{"Retry-After": "0"}})
	ctx, stats := heygen.WithCallStats(t.Context())
	if _, err := c.Users.Me(ctx); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountPath("/v3/users/me"); n != 4 || stats.Attempts() != 4 {
		t.Fatalf("fake saw %d calls, stats %d, want 4", n, stats.Attempts())
	}
	for _, reason := range []string{`"reason":"http_503"`, `"reason":"transport_error"`, `"reason":"http_429"`} {
		if !strings.Contains(logs.String(), reason) {
			t.Errorf("no retry logged with %s", reason)
		}
	}
}

func TestBackoffHasFullJitterAndCap(t *testing.T) {
	c, _, inj, _ := setup(t, heygen.RetryPolicy{MaxAttempts: 3, BaseDelay: 200 * time.Millisecond, MaxDelay: 250 * time.Millisecond})
	inj.Inject(faults.Fault{Path: "/v3/users/me", Status: 503})
	start := time.Now()
	_, err := c.Users.Me(t.Context())
	took := time.Since(start)
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindUnavailable || herr.Attempts != 3 {
		t.Fatalf("got %v, want unavailable after 3 attempts", err)
	}
	// Two waits, each at most min(cap, 200ms*2^n) = 200ms and 250ms.
	if took > 450*time.Millisecond+time.Second {
		t.Fatalf("took %v, more than the capped schedule allows", took)
	}
}

func TestCancelDuringBackoffReturnsPromptly(t *testing.T) {
	c, _, inj, _ := setup(t, heygen.RetryPolicy{MaxAttempts: 3, MaxDelay: time.Minute})
	inj.Inject(faults.Fault{Path: "/v3/users/me", Status: 429, Header: map[string]string{"Retry-After": "30"}})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Users.Me(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cancel took %v to take effect", took)
	}
}

func TestTransportErrorHidesURL(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nothing listens there now
	c, err := heygen.New(heygen.Options{BaseURL: "http://" + addr, APIKey: canaryKey, Retry: heygen.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Avatars.ListLooks(t.Context(), heygen.ListLooksOptions{Limit: 5, Ownership: "public"})
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindUnavailable || herr.Attempts != 2 {
		t.Fatalf("got %v, want unavailable after 2 attempts", err)
	}
	if msg := err.Error(); strings.Contains(msg, "limit=") || strings.Contains(msg, "ownership") || strings.Contains(msg, canaryKey) {
		t.Fatalf("error leaks the query or key: %q", msg)
	}
}

func TestHeyGenMessageEchoingTheKeyIsRedacted(t *testing.T) {
	c, _, inj, _ := setup(t, heygen.RetryPolicy{})
	inj.Inject(faults.Fault{Path: "/v3/users/me", Status: 401, Body: fakeheygen.V3Error("unauthorized", "key "+canaryKey+" is not valid")})
	_, err := c.Users.Me(t.Context())
	if err == nil || strings.Contains(err.Error(), canaryKey) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("got %v, want the key redacted", err)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	c, _, inj, _ := setup(t, heygen.RetryPolicy{})
	var hits atomic.Int64
	other := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) })}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = other.Serve(lis) }()
	defer func() { _ = other.Close() }()
	inj.Inject(faults.Fault{Path: "/v3/users/me", Status: 307, Redirect: "http://" + lis.Addr().String() + "/steal"})
	_, err = c.Users.Me(t.Context())
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindBadResponse || herr.HTTPStatus != 307 {
		t.Fatalf("got %v, want a bad-response error for the redirect", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the redirect target was called")
	}
}

func TestOverlongNextTokenIsABadResponse(t *testing.T) {
	c, _, inj, _ := setup(t, heygen.RetryPolicy{})
	inj.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 200,
		Body: `{"data":[],"has_more":true,"next_token":"` + strings.Repeat("t", heygen.MaxNextTokenLen+1) + `"}`})
	_, err := c.Avatars.ListLooks(t.Context(), heygen.ListLooksOptions{})
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindBadResponse {
		t.Fatalf("got %v, want a bad response", err)
	}
}

// TestValidIDIsTheAllowlist: ValidID accepts exactly what the allowlist
// regexp ^[A-Za-z0-9_-]{1,128}$ accepts.
func TestValidIDIsTheAllowlist(t *testing.T) {
	allow := regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	cases := []string{"", "a", "Abigail_expressive_2024112501", "0123456789abcdef0123456789abcdef", "-_-", "..", "a/b", "a%2F",
		"a b", "é", "a\x00", "a\n", strings.Repeat("x", 128), strings.Repeat("x", 129), "looks", "A.B"}
	for c := range 256 {
		cases = append(cases, string(rune(c)), "ok"+string([]byte{byte(c)}))
	}
	for _, id := range cases {
		if got, want := heygen.ValidID(id), allow.MatchString(id); got != want {
			t.Errorf("ValidID(%q) = %v, the allowlist says %v", id, got, want)
		}
	}
}

func FuzzValidIDIsTheAllowlist(f *testing.F) {
	allow := regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	for _, s := range []string{"", "a", "a/b", strings.Repeat("z", 129), "Ab_9-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := heygen.ValidID(id), allow.MatchString(id); got != want {
			t.Errorf("ValidID(%q) = %v, the allowlist says %v", id, got, want)
		}
	})
}
