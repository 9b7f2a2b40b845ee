package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

// canaryKey is recognisable wherever it would leak.
const canaryKey = "canary-KEY-7f3a9c"

func newFake(t *testing.T) (*fakeheygen.Server, *faults.Injector) {
	t.Helper()
	inj := faults.New()
	s, err := fakeheygen.NewServer(fakeheygen.Options{
		APIKey:     canaryKey,
		Catalogue:  fakeheygen.DemoCatalogue(),
		Voices:     fakeheygen.DemoVoices(),
		CreateRate: -1,
		Middleware: inj.Wrap,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, inj
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// fresh is a client without keep-alives: on a reused connection http.Transport retries
// a reset idempotent request silently.
var fresh = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func do(ctx context.Context, client *http.Client, method, url, key string) (response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return response{}, err
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header, b}, nil
}

func get(t *testing.T, client *http.Client, s *fakeheygen.Server, path, key string) response {
	t.Helper()
	r, err := do(context.Background(), client, http.MethodGet, s.URL()+path, key)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

type v3err struct {
	Error struct {
		Code, Message, Param string
		DocURL               string `json:"doc_url"`
	} `json:"error"`
}

func TestStatusBodyHeaderTimes(t *testing.T) {
	s, inj := newFake(t)
	inj.Inject(faults.Fault{Path: "/v3/avatars/looks", Times: 2, Status: 429, Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down"),
		Header: map[string]string{"Retry-After": "3"}})
	for range 2 {
		r := get(t, nil, s, "/v3/avatars/looks", canaryKey)
		if r.status != 429 || r.header.Get("Retry-After") != "3" || r.header.Get("Content-Type") != "application/json" ||
			!strings.Contains(string(r.body), "slow down") {
			t.Fatalf("fault answer %d %v %s", r.status, r.header, r.body)
		}
	}
	if r := get(t, nil, s, "/v3/avatars/looks", canaryKey); r.status != 200 {
		t.Fatalf("fault not used up: %d", r.status)
	}
	// Faults answer before the key check, with any content type; prefixes match.
	inj.Inject(faults.Fault{Path: "/v3/avatars/*", Status: 502, Body: "<html>bad gateway</html>", ContentType: "text/html"})
	r := get(t, nil, s, "/v3/avatars/looks/x", "")
	if r.status != 502 || r.header.Get("Content-Type") != "text/html" || string(r.body) != "<html>bad gateway</html>" {
		t.Fatalf("prefix fault: %d %v %s", r.status, r.header, r.body)
	}
	if r := get(t, nil, s, "/v3/avatars", canaryKey); r.status != 200 {
		t.Fatalf("prefix matched its parent: %d", r.status)
	}
	if r := get(t, nil, s, "/v3/avatars/looks", canaryKey); r.status != 502 {
		t.Fatalf("Times 0 fault expired: %d", r.status)
	}
	inj.ClearFaults()
	if r := get(t, nil, s, "/v3/avatars/looks", canaryKey); r.status != 200 {
		t.Fatalf("after ClearFaults: %d", r.status)
	}
	// First matching fault wins; empty body; status out of range becomes 500.
	inj.Inject(faults.Fault{Times: 1, Status: 204})
	inj.Inject(faults.Fault{Times: 1, Status: 42})
	if r := get(t, nil, s, "/x", ""); r.status != 204 {
		t.Fatalf("first fault: %d", r.status)
	}
	if r := get(t, nil, s, "/x", ""); r.status != 500 {
		t.Fatalf("bad status fault: %d", r.status)
	}
	// A pass-through header fault decorates the normal answer.
	inj.Inject(faults.Fault{Times: 1, Header: map[string]string{"X-Extra": "1"}})
	if r := get(t, nil, s, "/v3/users/me", canaryKey); r.status != 200 || r.header.Get("X-Extra") != "1" {
		t.Fatalf("pass-through fault: %d %v", r.status, r.header)
	}
	if n := inj.Counts()["scripted"]; n != 7 {
		t.Fatalf("scripted count %d", n)
	}
	// The fake logged every request, faults included.
	if n := s.RequestCount(); n != 10 {
		t.Fatalf("fake logged %d requests", n)
	}
}

func TestMethodMatch(t *testing.T) {
	s, inj := newFake(t)
	inj.Inject(faults.Fault{Method: http.MethodPost, Path: "/v3/videos", Status: 503, Body: fakeheygen.V3Error("internal_error", "down")})
	if r := get(t, nil, s, "/v3/videos", canaryKey); r.status != 200 {
		t.Fatalf("GET hit a POST fault: %d", r.status)
	}
	r, err := do(context.Background(), nil, http.MethodPost, s.URL()+"/v3/videos", canaryKey)
	if err != nil || r.status != 503 {
		t.Fatalf("POST: %v %d", err, r.status)
	}
}

func TestReset(t *testing.T) {
	s, inj := newFake(t)
	inj.Inject(faults.Fault{Path: "/v3/users/me", Times: 1, Reset: true})
	if _, err := do(context.Background(), fresh, http.MethodGet, s.URL()+"/v3/users/me", canaryKey); err == nil {
		t.Fatal("reset fault: no error")
	}
	if r := get(t, fresh, s, "/v3/users/me", canaryKey); r.status != 200 {
		t.Fatalf("after reset: %d", r.status)
	}
	if n := s.CountPath("/v3/users/me"); n != 2 {
		t.Fatalf("CountPath = %d, want 2", n)
	}
}

// TestRaw makes Go's HTTP client fail with an error that quotes the server's bytes: here
// the API key the request carried.
func TestRaw(t *testing.T) {
	s, inj := newFake(t)
	inj.Inject(faults.Fault{Times: 1, Raw: faults.APIKeyPlaceholder + "\r\n\r\n"})
	_, err := do(context.Background(), fresh, http.MethodGet, s.URL()+"/v3/users/me", canaryKey)
	if err == nil || !strings.Contains(err.Error(), `malformed HTTP response "`+canaryKey+`"`) {
		t.Fatalf("raw fault error: %v", err)
	}
	inj.Inject(faults.Fault{Times: 1, Raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"})
	if r := get(t, fresh, s, "/v3/users/me", canaryKey); r.status != 200 || string(r.body) != "ok" {
		t.Fatalf("raw response: %d %s", r.status, r.body)
	}
}

func TestEchoKey(t *testing.T) {
	s, inj := newFake(t)
	inj.Inject(faults.EchoKey(http.StatusUnauthorized))
	r := get(t, nil, s, "/v3/avatars", canaryKey)
	var e v3err
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("echo body %s: %v", r.body, err)
	}
	if r.status != 401 || e.Error.Code != canaryKey || e.Error.Param != canaryKey ||
		!strings.Contains(e.Error.Message, canaryKey) || !strings.Contains(e.Error.DocURL, canaryKey) {
		t.Fatalf("echo body %d %s", r.status, r.body)
	}
	if r.header.Get("X-Request-Id") != canaryKey || r.header.Get("Retry-After") != canaryKey {
		t.Fatalf("echo headers %v", r.header)
	}
	// Each request echoes its own key; a redirect can carry it too.
	inj.ClearFaults()
	inj.Inject(faults.Fault{Redirect: "https://evil.example.com/?k=" + faults.APIKeyPlaceholder})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if r := get(t, noFollow, s, "/v3/avatars", "other-key"); r.header.Get("Location") != "https://evil.example.com/?k=other-key" {
		t.Fatalf("redirect echo %v", r.header)
	}
}

func TestRedirect(t *testing.T) {
	s, inj := newFake(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	inj.Inject(faults.Fault{Times: 1, Redirect: "https://evil.example.com/steal"})
	if r := get(t, noFollow, s, "/v3/avatars", canaryKey); r.status != 302 || r.header.Get("Location") != "https://evil.example.com/steal" {
		t.Fatalf("redirect: %d %v", r.status, r.header)
	}
	inj.Inject(faults.Fault{Times: 1, Status: 308, Redirect: "/v3/users/me"})
	if r := get(t, noFollow, s, "/v3/avatars", canaryKey); r.status != 308 || r.header.Get("Location") != "/v3/users/me" {
		t.Fatalf("redirect 308: %d %v", r.status, r.header)
	}
}

func TestOversize(t *testing.T) {
	s, inj := newFake(t)
	for _, size := range []int{1, 1000, 3 << 20} {
		for _, cl := range []bool{false, true} {
			inj.Inject(faults.Fault{Times: 1, OversizeBytes: size, OversizeContentLength: cl})
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL()+"/v3/avatars/looks", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || len(b) < size || !json.Valid(b) {
				t.Fatalf("oversize %d: status %d, %d bytes, valid %v", size, resp.StatusCode, len(b), json.Valid(b))
			}
			if cl != (resp.ContentLength == int64(len(b))) {
				t.Fatalf("oversize %d content length %d for %d bytes (announce %v)", size, resp.ContentLength, len(b), cl)
			}
			if size > 1000 && len(b) > size+2000 {
				t.Fatalf("oversize %d: %d bytes is far more than asked", size, len(b))
			}
		}
	}
}

func TestDelay(t *testing.T) {
	s, inj := newFake(t)
	inj.Inject(faults.Fault{Path: "/v3/users/me", Times: 1, Delay: 10 * time.Second, Status: 500})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := do(ctx, nil, http.MethodGet, s.URL()+"/v3/users/me", canaryKey); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// A delay-only fault delays, then the fake answers.
	inj.Inject(faults.Fault{Times: 1, Delay: 50 * time.Millisecond})
	start := time.Now()
	if r := get(t, nil, s, "/v3/users/me", canaryKey); r.status != 200 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("delay-only fault: %d after %v", r.status, time.Since(start))
	}
	// Close interrupts a delay in progress.
	inj.Inject(faults.Fault{Times: 1, Delay: time.Minute, Status: 500})
	errc := make(chan error, 1)
	go func() {
		_, err := do(context.Background(), nil, http.MethodGet, s.URL()+"/v3/users/me", canaryKey)
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
		t.Fatal("delayed request survived Close")
	}
}

func TestRandomFaults(t *testing.T) {
	s, inj := newFake(t)
	cfg := &faults.RandomFaults{Seed: 42, Rate503: 0.2, Rate429: 0.2, RateReset: 0.1, RateSlow: 0.1, RateMalformed: 0.1,
		RetryAfter: "1", SlowDelay: time.Millisecond}
	run := func() []string {
		inj.SetRandom(cfg)
		var seq []string
		for range 100 {
			r, err := do(context.Background(), fresh, http.MethodGet, s.URL()+"/v3/users/me", canaryKey)
			switch {
			case err != nil:
				seq = append(seq, "reset")
			case r.status == 429:
				if r.header.Get("Retry-After") != "1" {
					t.Fatal("429 without Retry-After")
				}
				seq = append(seq, "429")
			case r.status == 503:
				seq = append(seq, "503")
			case !json.Valid(r.body):
				seq = append(seq, "malformed")
			default:
				seq = append(seq, "ok") // ok or slow
			}
		}
		return seq
	}
	a := run()
	counts := inj.Counts()
	if b := run(); !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different outcomes")
	}
	total := 0
	for _, k := range []string{"ok", "503", "429", "reset", "slow", "malformed"} {
		if counts[k] == 0 {
			t.Errorf("no %q outcome in 100 requests: %v", k, counts)
		}
		total += counts[k]
	}
	if total != 100 {
		t.Fatalf("counts %v sum to %d", counts, total)
	}
	seen := map[string]int{}
	for _, o := range a {
		seen[o]++
	}
	if seen["503"] != counts["503"] || seen["429"] != counts["429"] || seen["reset"] != counts["reset"] ||
		seen["malformed"] != counts["malformed"] || seen["ok"] != counts["ok"]+counts["slow"] {
		t.Fatalf("observed %v, counted %v", seen, counts)
	}
	// Scripted faults come first and skip the draw.
	inj.SetRandom(&faults.RandomFaults{Seed: 1, Rate503: 1})
	inj.Inject(faults.Fault{Times: 1, Status: 418})
	if r := get(t, fresh, s, "/v3/users/me", canaryKey); r.status != 418 {
		t.Fatalf("scripted under random: %d", r.status)
	}
	if r := get(t, fresh, s, "/v3/users/me", canaryKey); r.status != 503 {
		t.Fatalf("random 503: %d", r.status)
	}
	inj.SetRandom(nil)
	if r := get(t, fresh, s, "/v3/users/me", canaryKey); r.status != 200 {
		t.Fatalf("random off: %d", r.status)
	}
	if len(inj.Counts()) != 0 {
		t.Fatal("counts not reset")
	}
}

func TestConcurrency(t *testing.T) {
	s, inj := newFake(t)
	inj.SetRandom(&faults.RandomFaults{Seed: 9, Rate503: 0.05, Rate429: 0.05})
	inj.Inject(faults.Fault{Path: "/v3/avatars", Times: 30, Status: 500})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 50}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	paths := []string{"/v3/avatars", "/v3/avatars/looks?limit=50&ownership=public", "/v3/voices/no_such", "/v3/users/me"}
	for g := range 50 {
		wg.Go(func() {
			for i := range 20 {
				r, err := do(context.Background(), client, http.MethodGet, s.URL()+paths[i%4], canaryKey)
				if err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
				if g%10 == 0 && i == 10 {
					inj.Inject(faults.Fault{Path: "/never", Times: 1})
					_ = inj.Counts()
				}
			}
		})
	}
	wg.Wait()
	fc := inj.Counts()
	if fc["scripted"] != 30 || fc["ok"]+fc["503"]+fc["429"] != 970 {
		t.Fatalf("fault counts %v", fc)
	}
	if statuses[500] != 30 || statuses[200]+statuses[404]+statuses[503]+statuses[429] != 970 {
		t.Fatalf("statuses %v", statuses)
	}
}
