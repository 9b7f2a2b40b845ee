package fakeheygen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// canaryKey is recognisable wherever it would leak.
const canaryKey = "canary-KEY-7f3a9c"

// newServer starts a server with the demo data, modified by opts, closed at cleanup.
func newServer(t testing.TB, opts fakeheygen.Options) *fakeheygen.Server {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = canaryKey
	}
	s, err := fakeheygen.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// demoOptions serves every demo data set.
func demoOptions() fakeheygen.Options {
	return fakeheygen.Options{
		Catalogue: fakeheygen.DemoCatalogue(),
		Voices:    fakeheygen.DemoVoices(),
		Videos:    fakeheygen.DemoVideos(),
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// call is one request; a zero key sends canaryKey, "-" sends none.
type call struct {
	method, path, key string
	body              string
	header            map[string]string
	client            *http.Client
	ctx               context.Context
}

func (c call) do(s *fakeheygen.Server) (response, error) {
	if c.method == "" {
		c.method = http.MethodGet
	}
	if c.ctx == nil {
		c.ctx = context.Background()
	}
	if c.client == nil {
		c.client = http.DefaultClient
	}
	var body io.Reader
	if c.body != "" {
		body = bytes.NewBufferString(c.body)
	}
	req, err := http.NewRequestWithContext(c.ctx, c.method, s.URL()+c.path, body)
	if err != nil {
		return response{}, err
	}
	switch c.key {
	case "":
		req.Header.Set("X-Api-Key", canaryKey)
	case "-":
	default:
		req.Header.Set("X-Api-Key", c.key)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
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

func (c call) must(t testing.TB, s *fakeheygen.Server) response {
	t.Helper()
	r, err := c.do(s)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	return r
}

// get sends a GET with the canary key.
func get(t testing.TB, s *fakeheygen.Server, path string) response {
	t.Helper()
	return call{path: path}.must(t, s)
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %.300q: %v", b, err)
	}
	return v
}

type page struct {
	Data      []json.RawMessage `json:"data"`
	HasMore   bool              `json:"has_more"`
	NextToken *string           `json:"next_token"`
}

type v3err struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Param   string `json:"param"`
	} `json:"error"`
}

func wantOK(t testing.TB, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
	}
}

func wantError(t testing.TB, r response, status int, code, param string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	e := decode[v3err](t, r.body)
	if e.Error.Code != code || e.Error.Param != param || e.Error.Message == "" {
		t.Fatalf("error = %+v, want code %q param %q; body %s", e.Error, code, param, r.body)
	}
}

// listAll pages through path with query q and returns the raw items in order.
func listAll(t testing.TB, s *fakeheygen.Server, path string, q url.Values) []json.RawMessage {
	t.Helper()
	var items []json.RawMessage
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		r := get(t, s, path+"?"+q.Encode())
		wantOK(t, r)
		p := decode[page](t, r.body)
		items = append(items, p.Data...)
		if !p.HasMore {
			if p.NextToken != nil {
				t.Fatalf("last page has next_token %q", *p.NextToken)
			}
			return items
		}
		if p.NextToken == nil || *p.NextToken == "" {
			t.Fatal("has_more without next_token")
		}
		q.Set("token", *p.NextToken)
	}
}

// ids extracts the field named key ("id", "voice_id") of every item.
func ids(t testing.TB, items []json.RawMessage, key string) []string {
	t.Helper()
	out := make([]string, 0, len(items))
	for _, raw := range items {
		m := decode[map[string]any](t, raw)
		id, _ := m[key].(string)
		out = append(out, id)
	}
	return out
}

// clock is a manual Options.Clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
