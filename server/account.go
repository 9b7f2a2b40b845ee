package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// DefaultAccountCacheTTL is how long GetAccount answers from its last
// reading of the account: long enough that a dashboard polling it, or a
// burst of callers, costs HeyGen one call; short enough that a top-up
// shows within a minute.
const DefaultAccountCacheTTL = time.Minute

// HeaderAccountAgeS is the age of GetAccount's answer, in seconds (its
// x-heygen-source is "heygen" or "cache").
const HeaderAccountAgeS = "x-heygen-account-age-seconds"

// sourceCache is x-heygen-source for an answer from GetAccount's cache.
const sourceCache = "cache"

// accountServer implements heygenv1.AccountServiceServer.
type accountServer struct {
	heygenv1.UnimplementedAccountServiceServer
	*Server
}

var _ heygenv1.AccountServiceServer = (*accountServer)(nil)

// GetAccount returns the account's billing, from the cache when it is
// recent enough.
func (s *accountServer) GetAccount(ctx context.Context, _ *heygenv1.GetAccountRequest) (*heygenv1.GetAccountResponse, error) {
	r, fetched, err := s.account.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	src := sourceCache
	if fetched {
		src = "heygen"
	}
	age := strconv.FormatFloat(max(time.Since(r.at), 0).Seconds(), 'f', 1, 64)
	_ = grpc.SetHeader(ctx, metadata.MD{HeaderSource: {src}, HeaderAccountAgeS: {age}}) // advisory, as in answered
	return &heygenv1.GetAccountResponse{Account: r.account}, nil
}

// notAdminError is a caller asking for every caller's usage without being
// in the admin list.
type notAdminError struct{ caller string }

func (e *notAdminError) Error() string {
	return "caller " + strconv.Quote(e.caller) + " may see only its own usage: all_callers needs a caller in the gateway's admin list (-admin-callers)"
}

// GetUsage returns the calling caller's usage, or every caller's for an admin.
func (s *accountServer) GetUsage(ctx context.Context, req *heygenv1.GetUsageRequest) (*heygenv1.GetUsageResponse, error) {
	caller := callerOrUnauthenticated(callerOf(ctx))
	if req.GetAllCallers() && !s.admins[caller] {
		return nil, &notAdminError{caller: caller}
	}
	counts, fleet := s.usage.fleetCounts(ctx, req.GetAllCallers(), caller)
	if !slices.ContainsFunc(counts, func(c callerCounts) bool { return c.Caller == caller }) {
		// A caller asking before any counted call still learns its name and its zeros.
		counts = append(counts, callerCounts{Caller: caller})
		slices.SortFunc(counts, func(a, b callerCounts) int { return strings.Compare(a.Caller, b.Caller) })
	}
	resp := &heygenv1.GetUsageResponse{StartTime: timestamppb.New(s.started), Fleet: fleet}
	for _, c := range counts {
		cu := &heygenv1.CallerUsage{Caller: c.Caller, HeygenRequests: c.HeyGenRequests, VideosCreated: c.VideosCreated}
		for k, n := range c.RPCs {
			service, method := splitMethod(k.Method)
			cu.Rpcs = append(cu.Rpcs, &heygenv1.MethodUsage{Service: service, Method: method, Code: k.Code.String(), Count: n})
		}
		slices.SortFunc(cu.Rpcs, func(a, b *heygenv1.MethodUsage) int {
			return cmpStrings(a.GetService(), b.GetService(), a.GetMethod(), b.GetMethod(), a.GetCode(), b.GetCode())
		})
		resp.Callers = append(resp.Callers, cu)
	}
	return resp, nil
}

// cmpStrings compares pairs in order: a0 with b0, then a1 with b1, ...
func cmpStrings(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}

// ParseAdminCallers parses the -admin-callers list: caller names separated
// by commas. Names are those of the callers file, or certificate
// identities (which may be URIs), or AnonymousCaller.
func ParseAdminCallers(spec string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			continue
		case len(name) > 256 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return nil, fmt.Errorf("admin caller %q: a caller name has no spaces or control characters and at most 256 bytes", name)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// accountReading is the account as one successful GET /v3/users/me found it.
type accountReading struct {
	account  *heygenv1.Account // never modified once stored: shared by every answer
	at       time.Time         // when the request that read it started
	balances []accountBalance
	// unbounded: the account can spend without limit (usage-based billing
	// without a spending cap), so it is never low.
	unbounded bool
}

// accountBalance is one amount the account can still spend, in its unit.
type accountBalance struct {
	unit  string // "usd", "credits" or another wallet currency
	value float64
}

// accountBook keeps the last reading of the account: GetAccount's cache,
// fed by callers' fetches and by the health probe, which already calls GET
// /v3/users/me in the background, so the balance gauge and the low-balance
// signal cost HeyGen no call of their own. Concurrent fetches are one
// HeyGen call (singleflight).
type accountBook struct {
	client    *heygen.Client
	ttl       time.Duration
	timeout   time.Duration // of one fetch made for callers
	threshold float64       // 0: no low-balance signal
	log       *slog.Logger
	metrics   *Metrics    // may be nil
	changed   func()      // the low-balance state changed: recompute health
	shared    SharedStore // nil: alone; else the fleet shares the last reading

	flight singleflight.Group

	mu   sync.Mutex
	last *accountReading
	low  bool
}

// get returns a reading younger than the TTL, fetching one if there is
// none; fetched reports whether this call waited for HeyGen.
func (b *accountBook) get(ctx context.Context) (r *accountReading, fetched bool, err error) {
	b.mu.Lock()
	last := b.last
	b.mu.Unlock()
	if last != nil && time.Since(last.at) < b.ttl {
		return last, false, nil
	}
	if r := b.loadShared(ctx); r != nil {
		return r, false, nil
	}
	// The fetch outlives any one caller (others may be waiting for it),
	// so it runs on a context of its own, keeping the first caller's
	// values: its HeyGen requests are counted as that caller's.
	ch := b.flight.DoChan("me", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
		defer cancel()
		start := time.Now()
		u, err := b.client.Users.Me(fctx)
		if err != nil {
			return nil, err
		}
		return b.observe(fctx, u, start), nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, false, res.Err
		}
		return res.Val.(*accountReading), true, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// observe records a successful read of the account that started at start,
// updates the metrics, and logs and reports a crossing of the low-balance
// threshold. It returns the reading now current (a newer one may already
// be).
func (b *accountBook) observe(ctx context.Context, u *heygen.User, start time.Time) *accountReading {
	b.share(ctx, u, start)
	return b.record(ctx, u, start)
}

// sharedAccount is the account's last reading as the fleet shares it.
type sharedAccount struct {
	At   time.Time    `json:"at"`
	User *heygen.User `json:"user"`
}

// sharedAccountName names the reading in the fleet's store.
const sharedAccountName = "account"

// share gives the fleet a reading, so no other replica asks HeyGen for
// the account within the TTL.
func (b *accountBook) share(ctx context.Context, u *heygen.User, at time.Time) {
	if b.shared == nil || !b.shared.Up() {
		return
	}
	if v, err := json.Marshal(sharedAccount{At: at, User: u}); err == nil {
		_ = b.shared.SetValue(ctx, sharedAccountName, v, b.ttl) // best effort: each replica can read HeyGen itself
	}
}

// loadShared returns a reading the fleet shared within the TTL, or nil.
func (b *accountBook) loadShared(ctx context.Context) *accountReading {
	if b.shared == nil || !b.shared.Up() {
		return nil
	}
	v, found, err := b.shared.GetValue(ctx, sharedAccountName)
	if err != nil || !found {
		return nil
	}
	var sa sharedAccount
	if json.Unmarshal(v, &sa) != nil || sa.User == nil || time.Since(sa.At) >= b.ttl {
		return nil
	}
	return b.record(ctx, sa.User, sa.At)
}

// record makes u, read at start, the current reading (unless a newer one
// is), updates the metrics and the low-balance state.
func (b *accountBook) record(ctx context.Context, u *heygen.User, start time.Time) *accountReading {
	r := readingOf(u, start)
	b.mu.Lock()
	if b.last != nil && b.last.at.After(r.at) {
		// A slower, older read finishing last must not undo a newer one.
		r = b.last
		b.mu.Unlock()
		return r
	}
	b.last = r
	wasLow := b.low
	b.low = b.threshold > 0 && isLow(r, b.threshold)
	low := b.low
	b.mu.Unlock()

	b.metrics.accountObserved(r.balances, low)
	if low != wasLow {
		attrs := []slog.Attr{slog.String("billing_type", r.account.GetBillingTypeRaw()), slog.Float64("threshold", b.threshold)}
		for _, bal := range r.balances {
			attrs = append(attrs, slog.Float64("balance_"+bal.unit, bal.value))
		}
		if low {
			b.log.LogAttrs(ctx, slog.LevelWarn, "the HeyGen account's balance is below the low-balance threshold: top it up before video creation starts failing for insufficient credit", attrs...)
		} else {
			b.log.LogAttrs(ctx, slog.LevelInfo, "the HeyGen account's balance is back above the low-balance threshold", attrs...)
		}
		if b.changed != nil {
			b.changed()
		}
	}
	return r
}

// isLow reports whether every amount the account can still spend is below
// the threshold, each read in its own unit. An account with no amounts
// (HeyGen sent nulls) or unbounded spending is not low.
func isLow(r *accountReading, threshold float64) bool {
	if r.unbounded || len(r.balances) == 0 {
		return false
	}
	for _, bal := range r.balances {
		if bal.value >= threshold {
			return false
		}
	}
	return true
}

// lowBalance reports whether the last reading is below the threshold.
func (b *accountBook) lowBalance() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.low
}

var (
	billingTypeFromHeyGen = map[string]heygenv1.BillingType{
		heygen.BillingWallet:       heygenv1.BillingType_BILLING_TYPE_WALLET,
		heygen.BillingSubscription: heygenv1.BillingType_BILLING_TYPE_SUBSCRIPTION,
		heygen.BillingUsageBased:   heygenv1.BillingType_BILLING_TYPE_USAGE_BASED,
	}
	currencyFromHeyGen = map[string]heygenv1.Currency{"usd": heygenv1.Currency_CURRENCY_USD, "credits": heygenv1.Currency_CURRENCY_CREDITS}
	planFromHeyGen     = map[string]heygenv1.Plan{
		"free": heygenv1.Plan_PLAN_FREE, "starter": heygenv1.Plan_PLAN_STARTER, "creator": heygenv1.Plan_PLAN_CREATOR,
		"pro": heygenv1.Plan_PLAN_PRO, "team": heygenv1.Plan_PLAN_TEAM, "enterprise": heygenv1.Plan_PLAN_ENTERPRISE,
		"business_plus": heygenv1.Plan_PLAN_BUSINESS_PLUS,
	}
	// unitName keeps a wallet currency HeyGen may add one day a sane
	// metric label; anything else is "other".
	unitName = regexp.MustCompile(`^[a-z_]{1,16}$`)
)

// readingOf converts HeyGen's account and works out what it can still
// spend. Only billing is read: the client never decodes the holder's
// email, username or names.
func readingOf(u *heygen.User, at time.Time) *accountReading {
	raw := deref(u.BillingType)
	typ := billingTypeFromHeyGen[raw]
	a := &heygenv1.Account{BillingType: typ, BillingTypeRaw: raw}
	r := &accountReading{account: a, at: at}
	// The block billing_type names; for a type this version does not
	// know, whichever block HeyGen sent.
	wallet := u.Wallet != nil && (typ == heygenv1.BillingType_BILLING_TYPE_WALLET || typ == 0)
	sub := u.Subscription != nil && (typ == heygenv1.BillingType_BILLING_TYPE_SUBSCRIPTION || typ == 0 && !wallet)
	usage := u.UsageBased != nil && (typ == heygenv1.BillingType_BILLING_TYPE_USAGE_BASED || typ == 0 && !wallet && !sub)
	switch {
	case wallet:
		w := u.Wallet
		out := &heygenv1.Wallet{Currency: currencyFromHeyGen[w.Currency], CurrencyRaw: w.Currency, RemainingBalance: w.RemainingBalance}
		if ar := w.AutoReload; ar != nil {
			out.AutoReload = &heygenv1.AutoReload{Enabled: ar.Enabled, AmountUsd: ar.AmountUSD, ThresholdUsd: ar.ThresholdUSD}
		}
		a.Billing = &heygenv1.Account_Wallet{Wallet: out}
		if w.RemainingBalance != nil {
			unit := w.Currency
			if !unitName.MatchString(unit) {
				unit = "other"
			}
			r.balances = append(r.balances, accountBalance{unit, *w.RemainingBalance})
		}
	case sub:
		s := u.Subscription
		out := &heygenv1.Subscription{Plan: planFromHeyGen[s.Plan], PlanRaw: s.Plan,
			PremiumCredits: bucketOf(s.Credits.PremiumCredits), AddOnCredits: bucketOf(s.Credits.AddOnCredits)}
		a.Billing = &heygenv1.Account_Subscription{Subscription: out}
		// Video creation spends premium credits, then add-on credits: what
		// is left is their sum.
		var credits int64
		tracked := false
		for _, b := range []*heygen.CreditBucket{s.Credits.PremiumCredits, s.Credits.AddOnCredits} {
			if b != nil && b.Remaining != nil {
				credits, tracked = credits+*b.Remaining, true
			}
		}
		if tracked {
			r.balances = append(r.balances, accountBalance{"credits", float64(credits)})
		}
	case usage:
		ub := u.UsageBased
		a.Billing = &heygenv1.Account_UsageBased{UsageBased: &heygenv1.UsageBased{IncludedCredits: ub.IncludedCredits,
			RemainingCredits: ub.RemainingCredits, SpendingCapUsd: ub.SpendingCapUSD, SpendingCurrentUsd: ub.SpendingCurrentUSD}}
		// Included credits are spent first, then dollars up to the cap:
		// two amounts, each in its own unit.
		if ub.RemainingCredits != nil {
			r.balances = append(r.balances, accountBalance{"credits", *ub.RemainingCredits})
		}
		if ub.SpendingCapUSD != nil {
			r.balances = append(r.balances, accountBalance{"usd", math.Max(*ub.SpendingCapUSD-deref(ub.SpendingCurrentUSD), 0)})
		} else {
			r.unbounded = true
		}
	}
	return r
}

func bucketOf(b *heygen.CreditBucket) *heygenv1.CreditBucket {
	if b == nil {
		return nil
	}
	out := &heygenv1.CreditBucket{Remaining: b.Remaining}
	if b.ResetsAt != nil {
		if t, err := time.Parse(time.RFC3339, *b.ResetsAt); err == nil {
			out.ResetTime = timestamppb.New(t)
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
