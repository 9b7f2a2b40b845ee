package heygen_test

// Tests of the client's transport against small raw HTTP servers: what
// leaves the process, when it is retried, what the breaker counts, and
// that the key never comes back out of an error or a log line.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// newTestClient returns a client of base with fast retries and its log.
func newTestClient(t *testing.T, base string, policy heygen.RetryPolicy, breaker heygen.BreakerPolicy) (*heygen.Client, *lockedBuffer) {
	t.Helper()
	if policy.BaseDelay == 0 {
		policy.BaseDelay = time.Millisecond
	}
	logs := &lockedBuffer{}
	c, err := heygen.New(heygen.Options{BaseURL: base, APIKey: canaryKey, Retry: policy, Breaker: breaker,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	t.Cleanup(func() {
		if strings.Contains(logs.String(), canaryKey) {
			t.Error("the API key appears in the client's log")
		}
	})
	return c, logs
}

// resettingServer answers the first request of every connection and
// resets the connection on the second one, after reading it: exactly the
// case where Go's http.Transport would silently resend a request.
func resettingServer(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = &atomic.Int64{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = conn.Close() }()
				br := bufio.NewReader(conn)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					requests.Add(1)
					if n == 2 {
						if tc, ok := conn.(*net.TCPConn); ok {
							_ = tc.SetLinger(0) // RST, not FIN
						}
						return
					}
					body := `{"data":{"billing_type":"wallet"}}`
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}()
		}
	}()
	return "http://" + lis.Addr().String(), requests
}

// TestEveryRequestThatLeavesIsCounted: Go's transport resends a GET (and
// a POST with an Idempotency-Key) once, unseen, when a reused connection
// is reset; the client must not let it, so the server's count and the
// client's attempt count agree.
func TestEveryRequestThatLeavesIsCounted(t *testing.T) {
	url, requests := resettingServer(t)
	c, _ := newTestClient(t, url, heygen.RetryPolicy{MaxAttempts: 3}, heygen.BreakerPolicy{Disabled: true})
	ctx, stats := heygen.WithCallStats(t.Context())
	for range 4 {
		_, _ = c.Users.Me(ctx)
	}
	if got, counted := requests.Load(), stats.Attempts(); got != counted {
		t.Fatalf("the server received %d requests, the client counted %d attempts: some left the process uncounted", got, counted)
	}
	ctx, stats = heygen.WithCallStats(t.Context())
	requests.Store(0)
	for range 3 {
		_, _ = c.Videos.Create(ctx, &heygen.CreateVideo{Type: "avatar", AvatarID: "a"}, "key-1")
	}
	if got, counted := requests.Load(), stats.Attempts(); got != counted {
		t.Fatalf("keyed POST: the server received %d requests, the client counted %d attempts", got, counted)
	}
}

// countingServer answers every request with status and body, counting them
// by method.
func countingServer(t *testing.T, status int, body string, header map[string]string) (*httptest.Server, *sync.Map) {
	t.Helper()
	counts := &sync.Map{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := counts.LoadOrStore(r.Method, &atomic.Int64{})
		v.(*atomic.Int64).Add(1)
		for k, val := range header {
			w.Header().Set(k, val)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, counts
}

func count(m *sync.Map, method string) int64 {
	v, ok := m.Load(method)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func TestWritesAreRetriedOnlyWithAnIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"503", 503, `{"error":{"code":"internal_error","message":"down"}}`},
		{"429", 429, `{"error":{"code":"rate_limit_exceeded","message":"slow down"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, counts := countingServer(t, tc.status, tc.body, nil)
			c, _ := newTestClient(t, srv.URL, heygen.RetryPolicy{MaxAttempts: 3}, heygen.BreakerPolicy{Disabled: true})
			in := &heygen.CreateVideo{Type: "avatar", AvatarID: "a"}
			if _, err := c.Videos.Create(t.Context(), in, ""); err == nil {
				t.Fatal("create succeeded against a failing server")
			}
			if n := count(counts, "POST"); n != 1 {
				t.Fatalf("a create without a key was sent %d times, want exactly 1", n)
			}
			if err := c.Videos.Delete(t.Context(), "v1"); err == nil {
				t.Fatal("delete succeeded against a failing server")
			}
			if n := count(counts, "DELETE"); n != 1 {
				t.Fatalf("a delete was sent %d times, want exactly 1", n)
			}
			if _, err := c.Videos.Create(t.Context(), in, "req-1"); err == nil {
				t.Fatal("create succeeded against a failing server")
			}
			if n := count(counts, "POST"); n != 1+3 {
				t.Fatalf("a keyed create was sent %d times in all, want 1+3", n)
			}
		})
	}
}

func TestRequestInProgressIsRetriedThenSucceeds(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") != "req-7" {
			t.Errorf("request without its idempotency key: %q", r.Header.Get("Idempotency-Key"))
		}
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":{"code":"request_in_progress","message":"the first request is still running"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"data":{"video_id":"v1","status":"waiting"}}`)
	}))
	t.Cleanup(srv.Close)
	c, logs := newTestClient(t, srv.URL, heygen.RetryPolicy{MaxAttempts: 3}, heygen.BreakerPolicy{Disabled: true})
	v, err := c.Videos.Create(t.Context(), &heygen.CreateVideo{Type: "avatar", AvatarID: "a"}, "req-7")
	if err != nil || v.VideoID != "v1" {
		t.Fatalf("Create = %+v, %v; want v1 after two 409 request_in_progress", v, err)
	}
	if !strings.Contains(logs.String(), `"reason":"request_in_progress"`) {
		t.Error("the retry after request_in_progress was not logged with its reason")
	}
	// A 409 conflict is final, with a kind of its own.
	srv2, counts := countingServer(t, http.StatusConflict, `{"error":{"code":"conflict","message":"state changed"}}`, nil)
	c2, _ := newTestClient(t, srv2.URL, heygen.RetryPolicy{MaxAttempts: 3}, heygen.BreakerPolicy{Disabled: true})
	_, err = c2.Videos.Create(t.Context(), &heygen.CreateVideo{Type: "avatar", AvatarID: "a"}, "req-8")
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindConflict || count(counts, "POST") != 1 {
		t.Fatalf("409 conflict: %v after %d requests; want KindConflict after 1", err, count(counts, "POST"))
	}
}

func TestShouldRetry(t *testing.T) {
	get := heygen.Attempt{Method: http.MethodGet}
	post := heygen.Attempt{Method: http.MethodPost}
	keyed := heygen.Attempt{Method: http.MethodPost, Keyed: true}
	del := heygen.Attempt{Method: http.MethodDelete}
	with := func(a heygen.Attempt, status int, code string, err error) heygen.Attempt {
		a.Status, a.Code, a.Err = status, code, err
		return a
	}
	for _, tc := range []struct {
		a    heygen.Attempt
		want bool
	}{
		{with(get, 429, "", nil), true}, {with(get, 500, "", nil), true}, {with(get, 502, "", nil), true},
		{with(get, 503, "", nil), true}, {with(get, 504, "", nil), true}, {with(get, 0, "", io.ErrUnexpectedEOF), true},
		{with(get, 400, "", nil), false}, {with(get, 401, "", nil), false}, {with(get, 404, "", nil), false},
		{with(get, 501, "", nil), false}, {with(get, 200, "", nil), false},
		{with(get, 0, "", &heygen.LimitError{Reason: heygen.LimitCircuitOpen}), false},
		{with(post, 429, "", nil), false}, {with(post, 503, "", nil), false}, {with(post, 0, "", io.EOF), false},
		{with(del, 503, "", nil), false},
		{with(keyed, 429, "", nil), true}, {with(keyed, 503, "", nil), true}, {with(keyed, 0, "", io.EOF), true},
		{with(keyed, 409, "request_in_progress", nil), true}, {with(keyed, 409, "conflict", nil), false},
		{with(keyed, 400, "", nil), false},
	} {
		if got, reason := heygen.ShouldRetry(tc.a); got != tc.want || (got && reason == "") {
			t.Errorf("ShouldRetry(%+v) = %v, %q; want %v with a reason", tc.a, got, reason, tc.want)
		}
	}
}

// TestBackoffScheduleHasFullJitterAndCap samples the schedule: wait n is
// uniform in [0, min(cap, base*2^n)], so every wait is in that range and
// the waits spread across it (not all near the top, not all near zero).
func TestBackoffScheduleHasFullJitterAndCap(t *testing.T) {
	p := heygen.RetryPolicy{MaxAttempts: 6, BaseDelay: 100 * time.Millisecond, MaxDelay: 500 * time.Millisecond}
	ceilings := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond} // 100ms*2^n capped at 500ms
	const samples = 2000
	for n, ceil := range ceilings {
		var low, high int
		for range samples {
			s := p.Schedule()
			var d time.Duration
			for range n + 1 {
				d = s.NextBackOff()
			}
			if d < 0 || d > ceil {
				t.Fatalf("wait %d = %v, outside [0, %v]", n+1, d, ceil)
			}
			switch {
			case d < ceil/4:
				low++
			case d > 3*ceil/4:
				high++
			}
		}
		// Uniform: about a quarter below ceil/4 and a quarter above 3/4.
		if low < samples/8 || high < samples/8 {
			t.Errorf("wait %d (ceiling %v): %d of %d below a quarter, %d above three quarters: not spread over the range", n+1, ceil, low, samples, high)
		}
	}
	s := p.Schedule()
	for range 5 {
		s.NextBackOff()
	}
	if d := s.NextBackOff(); d != backoff.Stop {
		t.Fatalf("after MaxAttempts-1 retries the schedule gave %v, want Stop", d)
	}
}

// TestBreakerCountsCallsNotAttempts: two calls of three failing attempts
// each are two failures, not six.
func TestBreakerCountsCallsNotAttempts(t *testing.T) {
	srv, counts := countingServer(t, 503, `{"error":{"code":"internal_error","message":"down"}}`, nil)
	c, _ := newTestClient(t, srv.URL, heygen.RetryPolicy{MaxAttempts: 3}, heygen.BreakerPolicy{ConsecutiveFailures: 3, OpenFor: time.Minute})
	for i := range 2 {
		if _, err := c.Users.Me(t.Context()); err == nil {
			t.Fatal("call succeeded against a failing server")
		}
		if st := c.BreakerState(); st != "closed" {
			t.Fatalf("after %d failed calls (%d attempts) the breaker is %s; it counts calls, so it must stay closed", i+1, count(counts, "GET"), st)
		}
	}
	_, _ = c.Users.Me(t.Context())
	if st := c.BreakerState(); st != "open" {
		t.Fatalf("after 3 failed calls the breaker is %s, want open", st)
	}
	before := count(counts, "GET")
	_, err := c.Users.Me(t.Context())
	var lerr *heygen.LimitError
	if !errors.As(err, &lerr) || lerr.Reason != heygen.LimitCircuitOpen || lerr.LastFailure != "HTTP 503" || count(counts, "GET") != before {
		t.Fatalf("with the breaker open: %v (sent %d); want a circuit_open LimitError naming HTTP 503, nothing sent", err, count(counts, "GET")-before)
	}
}

func TestBreakerSaysWhatTheFailuresWere(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nothing listens there now
	c, _ := newTestClient(t, "http://"+addr, heygen.RetryPolicy{MaxAttempts: 1}, heygen.BreakerPolicy{ConsecutiveFailures: 1})
	_, err = c.Users.Me(t.Context())
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Cause != heygen.CauseRefused {
		t.Fatalf("first call: %v, want a refused connection", err)
	}
	_, err = c.Users.Me(t.Context())
	var lerr *heygen.LimitError
	if !errors.As(err, &lerr) || lerr.LastFailure != heygen.CauseRefused {
		t.Fatalf("second call: %v, want circuit_open with last failure %q", err, heygen.CauseRefused)
	}
	if strings.Contains(err.Error(), addr) {
		t.Fatalf("the error names the upstream address: %v", err)
	}
}

// echoServer echoes the key it receives in every field and header an
// error can carry; the message puts the key across the 512-byte cut.
func echoServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Api-Key")
		w.Header().Set("X-Request-Id", "req-"+key)
		w.Header().Set("Retry-After", key)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		msg := strings.Repeat("m", 500) + key + " tail"
		fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"param":%q}}`, key, msg, "p-"+key)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestKeyEchoedInEveryFieldIsRedacted(t *testing.T) {
	srv := echoServer(t)
	c, _ := newTestClient(t, srv.URL, heygen.RetryPolicy{}, heygen.BreakerPolicy{Disabled: true})
	_, err := c.Users.Me(t.Context())
	var herr *heygen.Error
	if !errors.As(err, &herr) {
		t.Fatalf("got %v, want *heygen.Error", err)
	}
	for name, v := range map[string]string{"Code": herr.Code, "Message": herr.Message, "Param": herr.Param,
		"RequestID": herr.RequestID, "Error()": herr.Error()} {
		if strings.Contains(v, canaryKey) || strings.Contains(v, canaryKey[:16]) || strings.Contains(v, canaryKey[len(canaryKey)-16:]) {
			t.Errorf("%s carries (part of) the key: %q", name, v)
		}
	}
	if !strings.Contains(herr.Code, heygen.Redacted) || !strings.Contains(herr.RequestID, heygen.Redacted) {
		t.Errorf("Code %q / RequestID %q: want the key replaced by %s", herr.Code, herr.RequestID, heygen.Redacted)
	}
	// A key rotated away is still redacted.
	c.SetAPIKey("new-key-0123456789")
	_, err = c.Users.Me(t.Context())
	if strings.Contains(err.Error(), "new-key-0123456789") {
		t.Fatalf("the new key leaks: %v", err)
	}
	if c.Redact("x "+canaryKey) != "x "+heygen.Redacted {
		t.Fatalf("the previous key is no longer redacted")
	}
}

// TestKeyInTransportErrorsIsRedacted: a "server" that answers with the key
// itself, which Go reports as `malformed HTTP response "<key>"`, in the
// error and in the retry's log line.
func TestKeyInTransportErrorsIsRedacted(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = conn.Close() }()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.WriteString(conn, req.Header.Get("X-Api-Key")+"\r\n\r\n")
			}()
		}
	}()
	c, logs := newTestClient(t, "http://"+lis.Addr().String(), heygen.RetryPolicy{MaxAttempts: 2}, heygen.BreakerPolicy{Disabled: true})
	_, err = c.Users.Me(t.Context())
	var herr *heygen.Error
	if !errors.As(err, &herr) || herr.Kind != heygen.KindUnavailable {
		t.Fatalf("got %v, want an unavailable error", err)
	}
	if strings.Contains(err.Error(), canaryKey) {
		t.Fatalf("the error carries the key: %v", err)
	}
	if herr.Cause != heygen.CauseProtocol {
		t.Errorf("Cause = %q, want %q", herr.Cause, heygen.CauseProtocol)
	}
	if !strings.Contains(logs.String(), "retrying HeyGen call") || !strings.Contains(logs.String(), heygen.Redacted) {
		t.Errorf("want a retry log line with the key redacted; log:\n%s", logs.String())
	}
}

func TestTransportCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, heygen.CauseRefused},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, heygen.CauseReset},
		{io.ErrUnexpectedEOF, heygen.CauseReset},
		{&net.DNSError{Err: "no such host", Name: "api.heygen.com", IsNotFound: true}, heygen.CauseDNS},
		{context.DeadlineExceeded, heygen.CauseTimeout},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), heygen.CauseTimeout},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, heygen.CauseTLS},
		{errors.New(`net/http: HTTP/1.x transport connection broken: malformed HTTP response "x"`), heygen.CauseProtocol},
		{errors.New("something else"), heygen.CauseTransport},
	} {
		if got := heygen.TransportCause(tc.err); got != tc.want {
			t.Errorf("TransportCause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
