package server_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/server"
)

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }
func intp(v int) *int        { return &v }

// getAccount calls GetAccount and returns the account and where it came from.
func getAccount(t *testing.T, c heygenv1.AccountServiceClient) (*heygenv1.Account, string) {
	t.Helper()
	var md metadata.MD
	resp, err := c.GetAccount(ctx(t), &heygenv1.GetAccountRequest{}, grpc.Header(&md))
	if err != nil {
		t.Fatalf("GetAccount: %v", err)
	}
	src := md.Get(server.HeaderSource)
	if len(src) != 1 || len(md.Get(server.HeaderAccountAgeS)) != 1 {
		t.Fatalf("GetAccount headers %v, want %s and %s", md, server.HeaderSource, server.HeaderAccountAgeS)
	}
	return resp.GetAccount(), src[0]
}

func TestGetAccountEachBillingType(t *testing.T) {
	other := fakeheygen.DemoAccount("enterprise_invoice") // a billing type this API version does not know
	credits := fakeheygen.DemoAccount(fakeheygen.BillingWallet)
	credits.Wallet = &fakeheygen.Wallet{Currency: "credits", RemainingBalance: f64(42.5),
		AutoReload: &fakeheygen.AutoReload{Enabled: true, AmountUSD: f64(50), ThresholdUSD: f64(10)}}
	nulls := fakeheygen.DemoAccount(fakeheygen.BillingSubscription)
	nulls.Subscription = &fakeheygen.Subscription{Plan: "galaxy", Credits: fakeheygen.SubscriptionCredits{
		PremiumCredits: &fakeheygen.CreditPool{}, AddOnCredits: nil}}
	tests := []struct {
		name     string
		account  fakeheygen.Account
		want     *heygenv1.Account
		balances map[string]float64 // heygen_account_balance by unit
	}{
		{"wallet", fakeheygen.DemoAccount(fakeheygen.BillingWallet), &heygenv1.Account{
			BillingType: heygenv1.BillingType_BILLING_TYPE_WALLET, BillingTypeRaw: "wallet",
			Billing: &heygenv1.Account_Wallet{Wallet: &heygenv1.Wallet{Currency: heygenv1.Currency_CURRENCY_USD, CurrencyRaw: "usd",
				RemainingBalance: f64(100), AutoReload: &heygenv1.AutoReload{}}},
		}, map[string]float64{"usd": 100}},
		{"wallet in credits", credits, &heygenv1.Account{
			BillingType: heygenv1.BillingType_BILLING_TYPE_WALLET, BillingTypeRaw: "wallet",
			Billing: &heygenv1.Account_Wallet{Wallet: &heygenv1.Wallet{Currency: heygenv1.Currency_CURRENCY_CREDITS, CurrencyRaw: "credits",
				RemainingBalance: f64(42.5), AutoReload: &heygenv1.AutoReload{Enabled: true, AmountUsd: f64(50), ThresholdUsd: f64(10)}}},
		}, map[string]float64{"credits": 42.5}},
		{"subscription", fakeheygen.DemoAccount(fakeheygen.BillingSubscription), &heygenv1.Account{
			BillingType: heygenv1.BillingType_BILLING_TYPE_SUBSCRIPTION, BillingTypeRaw: "subscription",
			Billing: &heygenv1.Account_Subscription{Subscription: &heygenv1.Subscription{Plan: heygenv1.Plan_PLAN_PRO, PlanRaw: "pro",
				PremiumCredits: &heygenv1.CreditBucket{Remaining: i64(200), ResetTime: timestamppb.New(time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC))},
				AddOnCredits:   &heygenv1.CreditBucket{Remaining: i64(50)}}},
		}, map[string]float64{"credits": 250}},
		{"subscription with an unknown plan and nulls", nulls, &heygenv1.Account{
			BillingType: heygenv1.BillingType_BILLING_TYPE_SUBSCRIPTION, BillingTypeRaw: "subscription",
			Billing: &heygenv1.Account_Subscription{Subscription: &heygenv1.Subscription{Plan: heygenv1.Plan_PLAN_UNSPECIFIED, PlanRaw: "galaxy",
				PremiumCredits: &heygenv1.CreditBucket{}}},
		}, map[string]float64{}},
		{"usage-based", fakeheygen.DemoAccount(fakeheygen.BillingUsageBased), &heygenv1.Account{
			BillingType: heygenv1.BillingType_BILLING_TYPE_USAGE_BASED, BillingTypeRaw: "usage_based",
			Billing: &heygenv1.Account_UsageBased{UsageBased: &heygenv1.UsageBased{IncludedCredits: f64(100), RemainingCredits: f64(80),
				SpendingCapUsd: f64(500), SpendingCurrentUsd: f64(12.5)}},
		}, map[string]float64{"credits": 80, "usd": 487.5}},
		{"unknown billing type", other, &heygenv1.Account{BillingTypeRaw: "enterprise_invoice"}, map[string]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metrics := server.NewMetrics()
			h := setup(t, setupOptions{noBackground: true, account: &tt.account, metrics: metrics})
			got, src := getAccount(t, heygenv1.NewAccountServiceClient(h.conn))
			if !proto.Equal(got, tt.want) {
				t.Fatalf("GetAccount:\n got %v\nwant %v", prototext.Format(got), prototext.Format(tt.want))
			}
			if src != "heygen" {
				t.Errorf("the first GetAccount came from %q, want heygen", src)
			}
			// The same reading is the balance gauge; no threshold, never low.
			if got := balances(scrape(t, metrics)); !maps.Equal(got, tt.balances) {
				t.Errorf("heygen_account_balance %v, want %v", got, tt.balances)
			}
			if !strings.Contains(scrape(t, metrics), "heygen_account_low_balance 0\n") {
				t.Error("heygen_account_low_balance is not 0 without a threshold")
			}
		})
	}
}

var balanceLine = regexp.MustCompile(`(?m)^heygen_account_balance\{unit="([^"]+)"\} (\S+)$`)

// balances parses heygen_account_balance from a scrape.
func balances(scrape string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range balanceLine.FindAllStringSubmatch(scrape, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

// TestGetAccountNeverReturnsOrLogsPII: HeyGen sends the account holder's
// email, username and names; none of it leaves the gateway.
func TestGetAccountNeverReturnsOrLogsPII(t *testing.T) {
	account := fakeheygen.DemoAccount(fakeheygen.BillingSubscription)
	pii := []string{"pii-canary-user", "pii.canary@example.com", "Piicanaryfirst", "Piicanarylast"}
	account.Username, account.Email, account.FirstName, account.LastName = pii[0], &pii[1], &pii[2], &pii[3]
	metrics := server.NewMetrics()
	h := setup(t, setupOptions{account: &account, metrics: metrics, probe: 20 * time.Millisecond})

	// The fake does send them.
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, h.fake.URL()+"/v3/users/me", nil)
	req.Header.Set("X-Api-Key", canaryKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, s := range pii {
		if !strings.Contains(string(body), s) {
			t.Fatalf("the fake's users/me does not send %q, so this test proves nothing: %s", s, body)
		}
	}

	accounts := heygenv1.NewAccountServiceClient(h.conn)
	var md metadata.MD
	got, err := accounts.GetAccount(ctx(t), &heygenv1.GetAccountRequest{}, grpc.Header(&md))
	if err != nil {
		t.Fatal(err)
	}
	// Let the background probe read the account a few times too.
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_SERVING)
	time.Sleep(100 * time.Millisecond)
	wire, err := proto.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pii {
		for where, text := range map[string]string{
			"the response": prototext.Format(got) + string(wire), "its headers": prototext.Format(metadataProto(md)),
			"the logs": h.logs.String(), "the metrics": scrape(t, metrics),
		} {
			if strings.Contains(text, s) {
				t.Errorf("%q appears in %s", s, where)
			}
		}
	}
	if len(got.ProtoReflect().GetUnknown()) != 0 {
		t.Error("the response carries unknown fields")
	}
	if !strings.Contains(h.logs.String(), "GetAccount") {
		t.Error("the GetAccount call was not logged at all: the log check proves nothing")
	}
}

// metadataProto renders headers for a text search.
func metadataProto(md metadata.MD) proto.Message {
	var b strings.Builder
	for k, vs := range md {
		b.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	return &heygenv1.MethodUsage{Method: b.String()}
}

func TestGetAccountCacheAndSingleflight(t *testing.T) {
	t.Run("100 concurrent callers, one HeyGen call", func(t *testing.T) {
		// No background probe: the only users/me calls are GetAccount's.
		h := setup(t, setupOptions{noBackground: true})
		accounts := heygenv1.NewAccountServiceClient(h.conn)
		h.fake.SetLatency(100 * time.Millisecond) // so the callers overlap the fetch
		const callers = 100
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for range callers {
			wg.Go(func() {
				<-start
				resp, err := accounts.GetAccount(ctx(t), &heygenv1.GetAccountRequest{})
				if err == nil && resp.GetAccount().GetWallet().GetRemainingBalance() != 100 {
					t.Errorf("GetAccount = %v", resp)
				}
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := h.fake.CountPath("/v3/users/me"); n != 1 {
			t.Fatalf("%d concurrent GetAccount calls made %d HeyGen calls, want 1", callers, n)
		}
		// Within the TTL (60 s by default) the cache answers, even after
		// the account changed.
		h.fake.SetLatency(0)
		low := fakeheygen.DemoAccount(fakeheygen.BillingWallet)
		low.Wallet.RemainingBalance = f64(3)
		h.fake.SetAccount(low)
		if a, src := getAccount(t, accounts); src != "cache" || a.GetWallet().GetRemainingBalance() != 100 {
			t.Fatalf("within the TTL: %v from %q, want the cached 100", a, src)
		}
		if n := h.fake.CountPath("/v3/users/me"); n != 1 {
			t.Fatalf("a cached GetAccount called HeyGen: %d calls", n)
		}
	})

	t.Run("past the TTL it is read again", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true, accountTTL: 50 * time.Millisecond})
		accounts := heygenv1.NewAccountServiceClient(h.conn)
		if a, _ := getAccount(t, accounts); a.GetWallet().GetRemainingBalance() != 100 {
			t.Fatalf("GetAccount = %v", a)
		}
		low := fakeheygen.DemoAccount(fakeheygen.BillingWallet)
		low.Wallet.RemainingBalance = f64(3)
		h.fake.SetAccount(low)
		time.Sleep(100 * time.Millisecond)
		if a, src := getAccount(t, accounts); src != "heygen" || a.GetWallet().GetRemainingBalance() != 3 {
			t.Fatalf("past the TTL: %v from %q, want 3 from heygen", a, src)
		}
		if n := h.fake.CountPath("/v3/users/me"); n != 2 {
			t.Fatalf("%d HeyGen calls, want 2", n)
		}
	})

	t.Run("the fetch outlives an impatient caller; failures are not cached", func(t *testing.T) {
		h := setup(t, setupOptions{noBackground: true})
		accounts := heygenv1.NewAccountServiceClient(h.conn)
		h.faults.Inject(faults.Fault{Path: "/v3/users/me", Status: 401, Body: fakeheygen.FlatError(400112, "Unauthorized"), Times: 1})
		_, err := accounts.GetAccount(ctx(t), &heygenv1.GetAccountRequest{})
		if st, info, _, _ := statusParts(t, err); st.Code() != codes.Unauthenticated || info.GetReason() != "HEYGEN_API_KEY_REJECTED" {
			t.Fatalf("a rejected key: %v, want UNAUTHENTICATED HEYGEN_API_KEY_REJECTED", err)
		}
		h.fake.SetLatency(300 * time.Millisecond)
		short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
		defer cancel()
		_, err = accounts.GetAccount(short, &heygenv1.GetAccountRequest{})
		if code, _ := statusFromErr(err); code != codes.DeadlineExceeded { // the client's own status: no details
			t.Fatalf("a caller whose deadline passes: %v, want DEADLINE_EXCEEDED", err)
		}
		time.Sleep(400 * time.Millisecond) // the fetch it started finishes without it
		if a, src := getAccount(t, accounts); src != "cache" || a.GetWallet() == nil {
			t.Fatalf("after the impatient caller: %v from %q, want the account its fetch cached", a, src)
		}
		if n := h.fake.CountPath("/v3/users/me"); n != 2 {
			t.Fatalf("%d HeyGen calls, want 2 (the rejected one, the one the impatient caller started)", n)
		}
	})
}

var callerRPCLine = regexp.MustCompile(`(?m)^heygen_grpc_caller_rpcs_total\{caller="([^"]+)",grpc_code="([^"]+)",grpc_method="([^"]+)"\} (\S+)$`)

var callerHeyGenLine = regexp.MustCompile(`(?m)^heygen_grpc_caller_heygen_requests_total\{caller="([^"]+)"\} (\S+)$`)

// usageCounts is usage by caller, then "method code" (or "heygen" for
// HeyGen requests), from GetUsage or the metrics alike.
type usageCounts map[string]map[string]int64

func (u usageCounts) add(caller, key string, n int64) {
	if n == 0 {
		return
	}
	if u[caller] == nil {
		u[caller] = map[string]int64{}
	}
	u[caller][key] += n
}

func (u usageCounts) total() (n int64) {
	for _, c := range u {
		for _, v := range c {
			n += v
		}
	}
	return n
}

func fromMetrics(scrape string) usageCounts {
	u := usageCounts{}
	for _, m := range callerRPCLine.FindAllStringSubmatch(scrape, -1) {
		v, _ := strconv.ParseFloat(m[4], 64)
		u.add(m[1], m[3]+" "+m[2], int64(v))
	}
	for _, m := range callerHeyGenLine.FindAllStringSubmatch(scrape, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		u.add(m[1], "heygen", int64(v))
	}
	return u
}

func fromUsage(resp *heygenv1.GetUsageResponse) usageCounts {
	u := usageCounts{}
	for _, c := range resp.GetCallers() {
		for _, r := range c.GetRpcs() {
			u.add(c.GetCaller(), r.GetMethod()+" "+r.GetCode(), r.GetCount())
		}
		u.add(c.GetCaller(), "heygen", c.GetHeygenRequests())
		u.add(c.GetCaller(), "videos", c.GetVideosCreated())
	}
	return u
}

// settle waits until the metrics have counted want RPCs and HeyGen
// requests in all (calls are counted as they end, a moment after the
// client has its answer) and returns them.
func settle(t *testing.T, m *server.Metrics, want int64) usageCounts {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u := fromMetrics(scrape(t, m))
		if n := u.total(); n == want {
			return u
		} else if n > want || time.Now().After(deadline) {
			t.Fatalf("the metrics count %d RPCs and HeyGen requests, want %d: %v", n, want, u)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUsagePerCaller(t *testing.T) {
	tokens := map[string]string{"alice": "hgt_alice-test-token", "bob": "hgt_bob-test-token", "ops": "hgt_ops-test-token"}
	store := tokenStore(t, callersFile(t, t.TempDir(), tokens))
	metrics := server.NewMetrics()
	// No background probe, so HeyGen requests are the callers' only.
	h := setup(t, setupOptions{noBackground: true, auth: &server.Authenticator{Tokens: store}, metrics: metrics, adminCallers: []string{"ops"}})
	as := func(name string) context.Context { return withToken(ctx(t), tokens[name]) }
	accounts := heygenv1.NewAccountServiceClient(h.conn)
	voices := heygenv1.NewVoicesServiceClient(h.conn)

	// alice: 3 pages of avatars (3 HeyGen calls), a refused id (none), a
	// voice HeyGen does not have (1), the account (1: the first read).
	for range 3 {
		if _, err := h.avatars.ListAvatars(as("alice"), &heygenv1.ListAvatarsRequest{PageSize: 2}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = h.avatars.GetAvatar(as("alice"), &heygenv1.GetAvatarRequest{AvatarId: "../x"})
	_, _ = voices.GetVoice(as("alice"), &heygenv1.GetVoiceRequest{VoiceId: "no_such_voice"})
	if _, err := accounts.GetAccount(as("alice"), &heygenv1.GetAccountRequest{}); err != nil {
		t.Fatal(err)
	}
	// bob: 2 pages of voices (2), the account (cached: none).
	for range 2 {
		if _, err := voices.ListVoices(as("bob"), &heygenv1.ListVoicesRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := accounts.GetAccount(as("bob"), &heygenv1.GetAccountRequest{}); err != nil {
		t.Fatal(err)
	}
	want := usageCounts{
		"alice": {"ListAvatars OK": 3, "GetAvatar InvalidArgument": 1, "GetVoice NotFound": 1, "GetAccount OK": 1, "heygen": 5},
		"bob":   {"ListVoices OK": 2, "GetAccount OK": 1, "heygen": 2},
	}
	if got := settle(t, metrics, want.total()); !usageEqual(got, want) {
		t.Fatalf("the metrics count %v, want %v", got, want)
	}

	// Each caller sees its own usage only.
	before := time.Now()
	for name, wantOwn := range want {
		resp, err := accounts.GetUsage(as(name), &heygenv1.GetUsageRequest{})
		if err != nil {
			t.Fatalf("%s's GetUsage: %v", name, err)
		}
		if len(resp.GetCallers()) != 1 || resp.GetCallers()[0].GetCaller() != name {
			t.Fatalf("%s's GetUsage shows %v, want only %s", name, resp.GetCallers(), name)
		}
		if got := fromUsage(resp); !usageEqual(got, usageCounts{name: wantOwn}) {
			t.Errorf("%s's GetUsage: %v, want %v", name, got, wantOwn)
		}
		if st := resp.GetStartTime().AsTime(); st.After(before) || time.Since(st) > time.Minute {
			t.Errorf("start_time %v is not when the gateway started", st)
		}
	}
	// A non-admin asking for everyone's is refused, with a reason of its own.
	_, err := accounts.GetUsage(as("bob"), &heygenv1.GetUsageRequest{AllCallers: true})
	st, info, _, _ := statusParts(t, err)
	if st.Code() != codes.PermissionDenied || info.GetReason() != server.ReasonCallerNotAdmin || info.GetDomain() != server.GatewayDomain ||
		info.GetMetadata()["caller"] != "bob" || !strings.Contains(st.Message(), "-admin-callers") {
		t.Fatalf("bob asking for all callers: %v %q %v, want PERMISSION_DENIED CALLER_NOT_ADMIN", st.Code(), st.Message(), info)
	}
	want["alice"]["GetUsage OK"] = 1
	want["bob"]["GetUsage OK"] = 1
	want["bob"]["GetUsage PermissionDenied"] = 1
	settle(t, metrics, want.total())

	// The admin sees everyone's, itself included before its first counted
	// call, and the per-caller metrics count exactly the same.
	resp, err := accounts.GetUsage(as("ops"), &heygenv1.GetUsageRequest{AllCallers: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range resp.GetCallers() {
		names = append(names, c.GetCaller())
	}
	if strings.Join(names, ",") != "alice,bob,ops" {
		t.Fatalf("the admin sees callers %v, want alice, bob and ops in order", names)
	}
	if got := fromUsage(resp); !usageEqual(got, want) {
		t.Errorf("the admin's GetUsage: %v, want %v", got, want)
	}
	want["ops"] = map[string]int64{"GetUsage OK": 1} // its own call, counted once it ended
	if got := settle(t, metrics, want.total()); !usageEqual(got, want) {
		t.Errorf("the metrics count %v, GetUsage %v", got, want)
	}
	// The methods come with their services, in order.
	for _, c := range resp.GetCallers() {
		if c.GetCaller() != "alice" {
			continue
		}
		var got []string
		for _, r := range c.GetRpcs() {
			got = append(got, r.GetService()+"/"+r.GetMethod()+" "+r.GetCode())
		}
		wantOrder := "heygen.v1.AccountService/GetAccount OK,heygen.v1.AccountService/GetUsage OK,heygen.v1.AvatarsService/GetAvatar InvalidArgument," +
			"heygen.v1.AvatarsService/ListAvatars OK,heygen.v1.VoicesService/GetVoice NotFound"
		if strings.Join(got, ",") != wantOrder {
			t.Errorf("alice's rpcs %v, want %s", got, wantOrder)
		}
	}
}

func usageEqual(a, b usageCounts) bool {
	if len(a) != len(b) {
		return false
	}
	for caller, c := range a {
		if !maps.Equal(c, b[caller]) {
			return false
		}
	}
	return true
}

func TestUsageWithoutCallerAuth(t *testing.T) {
	for _, admins := range [][]string{nil, {server.AnonymousCaller}} {
		t.Run(strings.Join(append([]string{"admins"}, admins...), " "), func(t *testing.T) {
			h := setup(t, setupOptions{noBackground: true, adminCallers: admins})
			accounts := heygenv1.NewAccountServiceClient(h.conn)
			resp, err := accounts.GetUsage(ctx(t), &heygenv1.GetUsageRequest{})
			if err != nil {
				t.Fatal(err)
			}
			// Before any counted call: the caller and its zeros.
			if len(resp.GetCallers()) != 1 || resp.GetCallers()[0].GetCaller() != server.AnonymousCaller || len(resp.GetCallers()[0].GetRpcs()) != 0 {
				t.Fatalf("GetUsage before any call: %v, want anonymous with nothing", resp.GetCallers())
			}
			_, err = accounts.GetUsage(ctx(t), &heygenv1.GetUsageRequest{AllCallers: true})
			if admins == nil {
				if st, info, _, _ := statusParts(t, err); st.Code() != codes.PermissionDenied || info.GetReason() != server.ReasonCallerNotAdmin {
					t.Fatalf("all callers, anonymous not an admin: %v", err)
				}
			} else if err != nil {
				t.Fatalf("all callers, anonymous an admin: %v", err)
			}
		})
	}
}

// TestLowBalanceSignal: the health probe's reading of the account drives
// the balance gauge, the low-balance gauge, a warning logged once per
// crossing and the credit health name, for each billing type.
func TestLowBalanceSignal(t *testing.T) {
	metrics := server.NewMetrics()
	h := setup(t, setupOptions{metrics: metrics, lowBalance: 10, probe: 20 * time.Millisecond})
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_SERVING)
	waitMetric(t, metrics, `heygen_account_balance{unit="usd"} 100`)
	waitMetric(t, metrics, "heygen_account_low_balance 0")
	waitHealth(t, h, server.CreditHealthName, healthpb.HealthCheckResponse_SERVING)
	const warning = "below the low-balance threshold"

	wallet := func(balance float64) fakeheygen.Account {
		a := fakeheygen.DemoAccount(fakeheygen.BillingWallet)
		a.Wallet.RemainingBalance = &balance
		return a
	}
	subscription := func(premium, addOn int) fakeheygen.Account {
		a := fakeheygen.DemoAccount(fakeheygen.BillingSubscription)
		a.Subscription.Credits.PremiumCredits.Remaining = intp(premium)
		a.Subscription.Credits.AddOnCredits.Remaining = intp(addOn)
		return a
	}
	usage := func(credits float64, capUSD *float64, spent float64) fakeheygen.Account {
		a := fakeheygen.DemoAccount(fakeheygen.BillingUsageBased)
		a.UsageBased.RemainingCredits, a.UsageBased.SpendingCapUSD, a.UsageBased.SpendingCurrentUSD = &credits, capUSD, &spent
		return a
	}
	steps := []struct {
		name    string
		account fakeheygen.Account
		gauge   string // a heygen_account_balance line the reading shows
		low     bool
	}{
		{"wallet low", wallet(5), `heygen_account_balance{unit="usd"} 5`, true},
		{"wallet topped up", wallet(50), `heygen_account_balance{unit="usd"} 50`, false},
		{"subscription: premium and add-on together low", subscription(3, 4), `heygen_account_balance{unit="credits"} 7`, true},
		{"subscription: add-on credits keep it up", subscription(0, 12), `heygen_account_balance{unit="credits"} 12`, false},
		{"usage-based: credits gone, cap nearly reached", usage(2, f64(500), 495), `heygen_account_balance{unit="usd"} 5`, true},
		{"usage-based: credits gone, room under the cap", usage(0, f64(500), 100), `heygen_account_balance{unit="usd"} 400`, false},
		{"usage-based: credits left, cap reached", usage(30, f64(500), 500), `heygen_account_balance{unit="credits"} 30`, false},
		{"usage-based: no cap", usage(0, nil, 900), `heygen_account_balance{unit="credits"} 0`, false},
	}
	warnings := 0
	for _, s := range steps {
		h.fake.SetAccount(s.account)
		waitMetric(t, metrics, s.gauge)
		want, health := "heygen_account_low_balance 0", healthpb.HealthCheckResponse_SERVING
		if s.low {
			want, health = "heygen_account_low_balance 1", healthpb.HealthCheckResponse_NOT_SERVING
			warnings++
		}
		waitMetric(t, metrics, want)
		waitHealth(t, h, server.CreditHealthName, health)
		// Never part of readiness: a low balance is not this replica's fault.
		waitHealth(t, h, server.ReadinessHealthName, healthpb.HealthCheckResponse_SERVING)
		// Probes keep reading the same balance: the warning is not repeated.
		time.Sleep(100 * time.Millisecond)
		if n := strings.Count(h.logs.String(), warning); n != warnings {
			t.Fatalf("%s: %d warnings logged, want %d (one per crossing)", s.name, n, warnings)
		}
	}
	var warnLine, backLine bool
	for _, line := range strings.Split(h.logs.String(), "\n") {
		switch {
		case strings.Contains(line, warning):
			warnLine = strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, `"threshold":10`)
		case strings.Contains(line, "back above the low-balance threshold"):
			backLine = strings.Contains(line, `"level":"INFO"`)
		}
	}
	if !warnLine || !backLine {
		t.Errorf("the crossing log lines: warning at WARN with the threshold %v, recovery at INFO %v", warnLine, backLine)
	}
}

func waitMetric(t *testing.T, m *server.Metrics, want string) {
	t.Helper()
	if !scrapeUntil(t, m, want+"\n") {
		t.Fatalf("the metrics never showed %q:\n%s", want, grepLines(scrape(t, m), "heygen_account"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
