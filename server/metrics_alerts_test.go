package server_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// TestUpstreamStateMetric: the alert on a rejected key reads
// heygen_upstream_state, which must follow the prober as the
// heygen-grpc.upstream health name does, with exactly one state at 1.
func TestUpstreamStateMetric(t *testing.T) {
	metrics := server.NewMetrics()
	states := func(current string) []string {
		var want []string
		for _, s := range []string{"unknown", "ok", "key_rejected", "unreachable"} {
			v := "0"
			if s == current {
				v = "1"
			}
			want = append(want, `heygen_upstream_state{state="`+s+`"} `+v+"\n")
		}
		return want
	}
	expect := func(current string) {
		t.Helper()
		for _, want := range states(current) {
			if !scrapeUntil(t, metrics, want) {
				t.Errorf("state %s: metrics lack %q:\n%s", current, want, grepMetrics(scrape(t, metrics), "heygen_upstream_state"))
			}
		}
	}
	expect("unknown") // before any probe: no state claimed
	h := setup(t, setupOptions{probe: 20 * time.Millisecond, threshold: 2, metrics: metrics})
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_SERVING)
	expect("ok")
	h.fake.SetAPIKey("some-other-key")
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	expect("key_rejected")
	h.fake.SetAPIKey(canaryKey)
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_SERVING)
	expect("ok")
}

// TestRPCErrorsByReason: failed RPCs are counted by their ErrorInfo
// reason, so the dashboard can tell a caller's own mistakes from HeyGen's
// answers; successes are not counted.
func TestRPCErrorsByReason(t *testing.T) {
	metrics := server.NewMetrics()
	h := setup(t, setupOptions{noBackground: true, withCatalogue: true, metrics: metrics})
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "../x"})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("GetAvatar ../x: %v", err)
		}
	}
	if _, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "missing_avatar_42"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetAvatar missing: %v", err)
	}
	for _, want := range []string{
		`heygen_grpc_errors_total{grpc_code="InvalidArgument",grpc_method="GetAvatar",grpc_service="heygen.v1.AvatarsService",reason="INVALID_REQUEST"} 2`,
		`heygen_grpc_errors_total{grpc_code="NotFound",grpc_method="GetAvatar",grpc_service="heygen.v1.AvatarsService",reason="HEYGEN_NOT_FOUND"} 1`,
	} {
		if !scrapeUntil(t, metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepMetrics(scrape(t, metrics), "heygen_grpc_errors_total"))
		}
	}
	if body := scrape(t, metrics); strings.Contains(body, `heygen_grpc_errors_total{grpc_code="OK"`) || strings.Contains(body, `grpc_method="ListAvatars",grpc_service="heygen.v1.AvatarsService",reason=`) {
		t.Errorf("a successful call is counted as an error:\n%s", grepMetrics(body, "heygen_grpc_errors_total"))
	}
}

func grepMetrics(body, name string) string {
	var out []string
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, name) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
