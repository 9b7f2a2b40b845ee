package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/server"
)

func TestAccountConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	key := map[string]string{"HEYGEN_API_KEY": canaryKey}
	cfg, err := parseConfig(nil, env(key), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.accountCacheTTL != time.Minute || cfg.lowBalanceThreshold != 0 || len(cfg.adminCallers) != 0 || cfg.demoBillingType != "wallet" {
		t.Errorf("defaults: ttl %v threshold %v admins %v billing %q", cfg.accountCacheTTL, cfg.lowBalanceThreshold, cfg.adminCallers, cfg.demoBillingType)
	}
	cfg, err = parseConfig(nil, env(map[string]string{"HEYGEN_API_KEY": "k", "ACCOUNT_CACHE_TTL": "15s", "LOW_BALANCE_THRESHOLD": "12.5",
		"ADMIN_CALLERS": " ops, spiffe://cluster.local/ns/billing/sa/reports ,ops,", "DEMO_BILLING_TYPE": "usage_based"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.accountCacheTTL != 15*time.Second || cfg.lowBalanceThreshold != 12.5 || cfg.demoBillingType != "usage_based" ||
		!slices.Equal(cfg.adminCallers, []string{"ops", "spiffe://cluster.local/ns/billing/sa/reports"}) {
		t.Errorf("from the environment: ttl %v threshold %v admins %q billing %q", cfg.accountCacheTTL, cfg.lowBalanceThreshold, cfg.adminCallers, cfg.demoBillingType)
	}
	for _, tc := range []struct{ flag, value string }{
		{"-low-balance-threshold", "-1"},
		{"-low-balance-threshold", "lots"},
		{"-account-cache-ttl", "0s"},
		{"-admin-callers", "ops,bad name"},
		{"-demo-billing-type", "prepaid"},
	} {
		_, err := parseConfig([]string{tc.flag, tc.value}, env(key), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s %q: got %v, want an error naming the flag", tc.flag, tc.value, err)
		}
	}
}

// TestDemoAccount: the demo's billing type is selectable, and the binary
// wires the low-balance threshold to the metrics and the credit health name.
func TestDemoAccount(t *testing.T) {
	addr, _, _, logs := startRun(t, []string{"-demo", "-demo-billing-type", "subscription", "-low-balance-threshold", "1000",
		"-health-probe-interval", "100ms", "-admin-callers", "anonymous"}, nil)
	conn := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := heygenv1.NewAccountServiceClient(conn).GetAccount(ctx, &heygenv1.GetAccountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.GetAccount().GetSubscription(); s.GetPlan() != heygenv1.Plan_PLAN_PRO || s.GetPremiumCredits().GetRemaining() != 200 {
		t.Fatalf("the demo subscription account came back as %v", resp.GetAccount())
	}
	// 250 credits is below 1000: the credit health name says so.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: server.CreditHealthName})
		if err == nil && h.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never went NOT_SERVING below the threshold: %v %v\n%s", server.CreditHealthName, h, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// -admin-callers reached the server: anonymous may see everyone's usage.
	if _, err := heygenv1.NewAccountServiceClient(conn).GetUsage(ctx, &heygenv1.GetUsageRequest{AllCallers: true}); status.Code(err) != codes.OK {
		t.Errorf("GetUsage all callers as an admin: %v", err)
	}
}
