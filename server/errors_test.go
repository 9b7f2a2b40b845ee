package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// TestMappingTable drives each row of the mapping table in the HeyGen
// notes through the fake and a real gRPC call, checking code, reason,
// domain, metadata and RetryInfo.
func TestMappingTable(t *testing.T) {
	type row struct {
		name       string
		fault      faults.Fault
		code       codes.Code
		reason     string
		retryInfo  time.Duration // 0: none expected
		heygenCode string
		attempts   string
		cause      string // the classified transport cause in metadata, "" for none
	}
	rows := []row{
		{name: "400 invalid_parameter", fault: faults.Fault{Status: 400, Body: fakeheygen.V3ErrorParam("invalid_parameter", "bad limit", "limit")},
			code: codes.InvalidArgument, reason: "HEYGEN_INVALID_ARGUMENT", heygenCode: "invalid_parameter", attempts: "1"},
		{name: "flat 40001", fault: faults.Fault{Status: 400, Body: fakeheygen.FlatError(40001, "missing params")},
			code: codes.InvalidArgument, reason: "HEYGEN_INVALID_ARGUMENT", heygenCode: "40001"},
		{name: "flat 400175 string code", fault: faults.Fault{Status: 400, Body: fakeheygen.FlatStringError("400175", "invalid parameter")},
			code: codes.InvalidArgument, reason: "HEYGEN_INVALID_ARGUMENT", heygenCode: "400175"},
		{name: "401 flat 400112", fault: faults.Fault{Status: 401, Body: fakeheygen.FlatError(400112, "Unauthorized")},
			code: codes.Unauthenticated, reason: "HEYGEN_API_KEY_REJECTED", heygenCode: "400112", attempts: "1"},
		{name: "v3 unauthorized", fault: faults.Fault{Status: 401, Body: fakeheygen.V3Error("unauthorized", "bad key")},
			code: codes.Unauthenticated, reason: "HEYGEN_API_KEY_REJECTED"},
		{name: "v2 string error 401", fault: faults.Fault{Status: 401, Body: fakeheygen.V2StringError("Invalid API key")},
			code: codes.Unauthenticated, reason: "HEYGEN_API_KEY_REJECTED"},
		{name: "flat 40009", fault: faults.Fault{Status: 400, Body: fakeheygen.FlatError(40009, "invalid credentials")},
			code: codes.Unauthenticated, reason: "HEYGEN_API_KEY_REJECTED"},
		{name: "flat 401056", fault: faults.Fault{Status: 401, Body: fakeheygen.FlatError(401056, "token expired")},
			code: codes.Unauthenticated, reason: "HEYGEN_API_KEY_REJECTED"},
		{name: "flat 401057", fault: faults.Fault{Status: 401, Body: fakeheygen.FlatError(401057, "invalid token")},
			code: codes.Unauthenticated, reason: "HEYGEN_API_KEY_REJECTED"},
		{name: "403 forbidden", fault: faults.Fault{Status: 403, Body: fakeheygen.V3Error("forbidden", "no")},
			code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED"},
		{name: "resource_access_denied", fault: faults.Fault{Status: 403, Body: fakeheygen.V3Error("resource_access_denied", "no")},
			code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED"},
		{name: "flat 400599 no API access", fault: faults.Fault{Status: 403, Body: fakeheygen.FlatError(400599, "Your account doesn't have API access")},
			code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED", heygenCode: "400599"},
		{name: "flat 400562", fault: faults.Fault{Status: 400, Body: fakeheygen.FlatError(400562, "forbidden")}, code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED"},
		{name: "flat 400573", fault: faults.Fault{Status: 400, Body: fakeheygen.FlatError(400573, "permission denied")}, code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED"},
		{name: "flat 400631", fault: faults.Fault{Status: 400, Body: fakeheygen.FlatError(400631, "user blocked")}, code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED"},
		{name: "missing scope", fault: faults.Fault{Status: 400, Body: fakeheygen.V3Error("invalid_scope", "missing user-read to execute this operation")},
			code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED"},
		{name: "v2 internal_error forbidden on 200", fault: faults.Fault{Status: 200, Body: fakeheygen.V2Error("internal_error", "forbidden")},
			code: codes.PermissionDenied, reason: "HEYGEN_PERMISSION_DENIED"},
		{name: "404 avatar_not_found", fault: faults.Fault{Status: 404, Body: fakeheygen.V3Error("avatar_not_found", "Avatar x not found")},
			code: codes.NotFound, reason: "HEYGEN_NOT_FOUND", heygenCode: "avatar_not_found"},
		{name: "avatar_not_found under 400", fault: faults.Fault{Status: 400, Body: fakeheygen.V3Error("avatar_not_found", "Avatar x not found")},
			code: codes.NotFound, reason: "HEYGEN_NOT_FOUND"},
		{name: "internal_error not found under 500", fault: faults.Fault{Status: 500, Body: fakeheygen.V2Error("internal_error", "Avatar looks not found.")},
			code: codes.NotFound, reason: "HEYGEN_NOT_FOUND", heygenCode: "internal_error", attempts: "3"},
		{name: "2xx with internal_error not found", fault: faults.Fault{Status: 200, Body: fakeheygen.V2Error("internal_error", "Avatar looks not found.")},
			code: codes.NotFound, reason: "HEYGEN_NOT_FOUND", attempts: "1"},
		{name: "429 with Retry-After", fault: faults.Fault{Status: 429, Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down"), Header: map[string]string{"Retry-After": "0"}},
			code: codes.ResourceExhausted, reason: "HEYGEN_RATE_LIMITED", retryInfo: -1, attempts: "3"},
		{name: "quota_exceeded", fault: faults.Fault{Status: 429, Body: fakeheygen.V3Error("quota_exceeded", "quota")},
			code: codes.ResourceExhausted, reason: "HEYGEN_RATE_LIMITED"},
		{name: "flat 400123 under 400", fault: faults.Fault{Status: 400, Body: fakeheygen.FlatError(400123, "exceed rate limit")},
			code: codes.ResourceExhausted, reason: "HEYGEN_RATE_LIMITED", attempts: "1"},
		{name: "402 insufficient_credit", fault: faults.Fault{Status: 402, Body: fakeheygen.V3Error("insufficient_credit", "top up")},
			code: codes.FailedPrecondition, reason: "HEYGEN_INSUFFICIENT_CREDIT"},
		{name: "500", fault: faults.Fault{Status: 500, Body: fakeheygen.V3Error("internal_error", "boom")},
			code: codes.Unavailable, reason: "HEYGEN_UNAVAILABLE", attempts: "3"},
		{name: "502 html", fault: faults.Fault{Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html"},
			code: codes.Unavailable, reason: "HEYGEN_UNAVAILABLE"},
		{name: "503 with Retry-After", fault: faults.Fault{Status: 503, Body: "", Header: map[string]string{"Retry-After": "0"}},
			code: codes.Unavailable, reason: "HEYGEN_UNAVAILABLE", retryInfo: -1},
		{name: "504", fault: faults.Fault{Status: 504, Body: fakeheygen.V3Error("timeout", "upstream timeout")}, code: codes.Unavailable, reason: "HEYGEN_UNAVAILABLE"},
		{name: "connection reset", fault: faults.Fault{Reset: true}, code: codes.Unavailable, reason: "HEYGEN_UNAVAILABLE", cause: heygen.CauseReset},
		{name: "2xx not JSON", fault: faults.Fault{Status: 200, Body: "<html>hello</html>", ContentType: "text/html"},
			code: codes.Internal, reason: "HEYGEN_BAD_RESPONSE", attempts: "1"},
		{name: "2xx empty body", fault: faults.Fault{Status: 200, Body: " "}, code: codes.Internal, reason: "HEYGEN_BAD_RESPONSE"},
		{name: "2xx unknown error code", fault: faults.Fault{Status: 200, Body: fakeheygen.V3Error("mystery", "?")}, code: codes.Internal, reason: "HEYGEN_BAD_RESPONSE"},
		{name: "2xx without data", fault: faults.Fault{Status: 200, Body: `{"has_more":false}`}, code: codes.Internal, reason: "HEYGEN_BAD_RESPONSE"},
		{name: "oversized body", fault: faults.Fault{OversizeBytes: 256 << 10}, code: codes.Internal, reason: "HEYGEN_BAD_RESPONSE"},
		{name: "oversized with content-length", fault: faults.Fault{OversizeBytes: 256 << 10, OversizeContentLength: true}, code: codes.Internal, reason: "HEYGEN_BAD_RESPONSE"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			h := setup(t, setupOptions{maxBytes: 64 << 10})
			r.fault.Path = "/v3/avatars/looks"
			h.faults.Inject(r.fault)
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
			st, info, _, retry := statusParts(t, err)
			if st.Code() != r.code || info.GetReason() != r.reason || info.GetDomain() != server.HeyGenDomain {
				t.Fatalf("got %v %s/%s (%q), want %v %s/%s", st.Code(), info.GetDomain(), info.GetReason(), st.Message(), r.code, server.HeyGenDomain, r.reason)
			}
			md := info.GetMetadata()
			if md["endpoint"] != "GET /v3/avatars/looks" {
				t.Errorf("metadata endpoint = %q", md["endpoint"])
			}
			if r.heygenCode != "" && md["heygen_code"] != r.heygenCode {
				t.Errorf("metadata heygen_code = %q, want %q", md["heygen_code"], r.heygenCode)
			}
			if r.attempts != "" && md["attempts"] != r.attempts {
				t.Errorf("metadata attempts = %q, want %q", md["attempts"], r.attempts)
			}
			// The cause is now a classified transport cause (it was the raw
			// error text, which can name addresses).
			if md["cause"] != r.cause {
				t.Errorf("metadata cause = %q, want %q", md["cause"], r.cause)
			}
			if r.fault.Status != 0 && md["http_status"] == "" {
				t.Errorf("metadata has no http_status: %v", md)
			}
			if (r.retryInfo != 0) != (retry != nil) {
				t.Errorf("RetryInfo = %v, want present=%v", retry, r.retryInfo != 0)
			}
			if r.code == codes.Unauthenticated && !strings.Contains(st.Message(), "gateway's own API key") {
				t.Errorf("UNAUTHENTICATED message %q does not say the gateway's key was rejected", st.Message())
			}
			for _, leak := range []string{"<html", "http://127.0.0.1", "127.0.0.1:", h.fake.URL(), "limit="} {
				if strings.Contains(st.Message(), leak) {
					t.Errorf("message %q leaks %q", st.Message(), leak)
				}
				for k, v := range md {
					if strings.Contains(v, leak) {
						t.Errorf("metadata %s=%q leaks %q", k, v, leak)
					}
				}
			}
		})
	}
}

func TestRetriesCountedAtTheFake(t *testing.T) {
	tests := []struct {
		name      string
		fault     faults.Fault
		wantCalls int
		wantCode  codes.Code
	}{
		{"two 503 then success", faults.Fault{Status: 503, Times: 2}, 3, codes.OK},
		{"two 429 then success", faults.Fault{Status: 429, Times: 2, Body: fakeheygen.V3Error("rate_limit_exceeded", "x")}, 3, codes.OK},
		{"500 then success", faults.Fault{Status: 500, Times: 1}, 2, codes.OK},
		{"502 persistent", faults.Fault{Status: 502}, 3, codes.Unavailable},
		{"504 persistent", faults.Fault{Status: 504}, 3, codes.Unavailable},
		{"two resets then success", faults.Fault{Reset: true, Times: 2}, 3, codes.OK},
		{"resets persistent", faults.Fault{Reset: true}, 3, codes.Unavailable},
		{"400 not retried", faults.Fault{Status: 400, Body: fakeheygen.V3Error("invalid_parameter", "x")}, 1, codes.InvalidArgument},
		{"401 not retried", faults.Fault{Status: 401, Body: fakeheygen.FlatError(400112, "Unauthorized")}, 1, codes.Unauthenticated},
		{"403 not retried", faults.Fault{Status: 403, Body: fakeheygen.V3Error("forbidden", "x")}, 1, codes.PermissionDenied},
		{"404 not retried", faults.Fault{Status: 404, Body: fakeheygen.V3Error("not_found", "x")}, 1, codes.NotFound},
		{"501 not retried", faults.Fault{Status: 501, Body: fakeheygen.V3Error("internal_error", "x")}, 1, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, setupOptions{noKeepAlives: true})
			tt.fault.Path = "/v3/avatars/looks"
			h.faults.Inject(tt.fault)
			_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
			if got := codeOf(err); got != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", got, err, tt.wantCode)
			}
			if n := h.fake.CountPath("/v3/avatars/looks"); n != tt.wantCalls {
				t.Fatalf("HeyGen saw %d calls, want %d", n, tt.wantCalls)
			}
			if tt.wantCalls > 1 {
				if got := strings.Count(h.logs.String(), `"msg":"retrying HeyGen call"`); got != tt.wantCalls-1 {
					t.Errorf("logged %d retries, want %d", got, tt.wantCalls-1)
				}
				if !strings.Contains(h.logs.String(), `"reason":"`) {
					t.Error("retry log lines carry no reason")
				}
			}
		})
	}
}

func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	st, _ := statusFromErr(err)
	return st
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Run("delta seconds", func(t *testing.T) {
		h := setup(t, setupOptions{})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Times: 1, Status: 429, Header: map[string]string{"Retry-After": "1"}})
		start := time.Now()
		if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 950*time.Millisecond {
			t.Fatalf("retried after %v, want at least the 1s Retry-After", took)
		}
	})
	t.Run("HTTP date", func(t *testing.T) {
		h := setup(t, setupOptions{})
		at := time.Now().Add(2 * time.Second).UTC()
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Times: 1, Status: 503, Header: map[string]string{"Retry-After": at.Format(http.TimeFormat)}})
		start := time.Now()
		if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{}); err != nil {
			t.Fatal(err)
		}
		// HTTP dates have whole seconds: the wait is between 1 and 2 s.
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Fatalf("retried after %v, want to wait until the Retry-After date", took)
		}
	})
	t.Run("clamped to the cap", func(t *testing.T) {
		h := setup(t, setupOptions{retry: heygen.RetryPolicy{MaxDelay: 100 * time.Millisecond}})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Times: 1, Status: 429, Header: map[string]string{"Retry-After": "3600"}})
		start := time.Now()
		if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 100*time.Millisecond || took > 5*time.Second {
			t.Fatalf("waited %v, want the 100ms cap", took)
		}
	})
	t.Run("not slept on past the deadline", func(t *testing.T) {
		h := setup(t, setupOptions{retry: heygen.RetryPolicy{MaxDelay: 30 * time.Second}})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 429, Body: fakeheygen.V3Error("rate_limit_exceeded", "slow"), Header: map[string]string{"Retry-After": "10"}})
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := h.avatars.ListAvatars(c, &heygenv1.ListAvatarsRequest{})
		took := time.Since(start)
		st, info, _, retry := statusParts(t, err)
		if st.Code() != codes.ResourceExhausted || info.GetReason() != "HEYGEN_RATE_LIMITED" {
			t.Fatalf("got %v %v, want RESOURCE_EXHAUSTED, not DEADLINE_EXCEEDED", st.Code(), info)
		}
		if retry.GetRetryDelay().AsDuration() != 10*time.Second {
			t.Errorf("RetryInfo delay = %v, want 10s", retry.GetRetryDelay().AsDuration())
		}
		if took > time.Second {
			t.Errorf("took %v: it slept although the wait could not fit the deadline", took)
		}
		if n := h.fake.CountPath("/v3/avatars/looks"); n != 1 {
			t.Errorf("HeyGen saw %d calls, want 1", n)
		}
	})
}

func TestRedirectIsNeverFollowed(t *testing.T) {
	var hits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer other.Close()
	for _, code := range []int{301, 302, 307, 308} {
		h := setup(t, setupOptions{})
		h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: code, Redirect: other.URL + "/v3/avatars/looks"})
		_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
		st, info, _, _ := statusParts(t, err)
		if st.Code() != codes.Internal || info.GetReason() != "HEYGEN_BAD_RESPONSE" {
			t.Errorf("redirect %d: got %v %v, want INTERNAL HEYGEN_BAD_RESPONSE", code, st.Code(), info)
		}
		if strings.Contains(st.Message(), other.URL) {
			t.Errorf("message leaks the redirect target: %q", st.Message())
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the redirect target received %d requests, want 0", hits.Load())
	}
}

func TestDeadlineAndCancel(t *testing.T) {
	h := setup(t, setupOptions{})
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Delay: 5 * time.Second})
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := h.avatars.ListAvatars(c, &heygenv1.ListAvatarsRequest{})
	if codeOf(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
	}
}

func TestAttemptTimeoutIsUnavailable(t *testing.T) {
	h := setup(t, setupOptions{retry: heygen.RetryPolicy{AttemptTimeout: 100 * time.Millisecond, MaxAttempts: 2}})
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Delay: 3 * time.Second})
	_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
	st, info, _, _ := statusParts(t, err)
	if st.Code() != codes.Unavailable || info.GetReason() != "HEYGEN_UNAVAILABLE" || info.GetMetadata()["attempts"] != "2" {
		t.Fatalf("got %v %v, want UNAVAILABLE after 2 timed-out attempts", st.Code(), info)
	}
}
