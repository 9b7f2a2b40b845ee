package fakeheygen

import (
	"encoding/json"
	"net/http"
)

// Account is the authenticated user as GET /v3/users/me returns it. Exactly one of Wallet,
// Subscription and UsageBased is set, as BillingType says. Nil pointers are sent as
// explicit JSON nulls.
type Account struct {
	Username     string        `json:"username"`
	Email        *string       `json:"email"`
	FirstName    *string       `json:"first_name"`
	LastName     *string       `json:"last_name"`
	BillingType  *string       `json:"billing_type"`
	Wallet       *Wallet       `json:"wallet"`
	Subscription *Subscription `json:"subscription"`
	UsageBased   *UsageBased   `json:"usage_based"`
}

// Wallet is a prepaid balance, in US dollars or in credits (Currency "usd" or "credits").
type Wallet struct {
	Currency         string      `json:"currency"`
	RemainingBalance *float64    `json:"remaining_balance"`
	AutoReload       *AutoReload `json:"auto_reload"`
}

// AutoReload is a wallet's automatic top-up setting.
type AutoReload struct {
	Enabled      bool     `json:"enabled"`
	AmountUSD    *float64 `json:"amount_usd"`
	ThresholdUSD *float64 `json:"threshold_usd"`
}

// Subscription is a plan (free, starter, creator, pro, team, enterprise, business_plus)
// with its credit pools.
type Subscription struct {
	Plan    string              `json:"plan"`
	Credits SubscriptionCredits `json:"credits"`
}

// SubscriptionCredits are a subscription's two credit pools.
type SubscriptionCredits struct {
	PremiumCredits *CreditPool `json:"premium_credits"`
	AddOnCredits   *CreditPool `json:"add_on_credits"`
}

// CreditPool is a number of credits and when they reset (RFC 3339), either of them null.
type CreditPool struct {
	Remaining *int    `json:"remaining"`
	ResetsAt  *string `json:"resets_at"`
}

// UsageBased is pay-as-you-go billing: included credits, then spending up to a cap.
type UsageBased struct {
	IncludedCredits    *float64 `json:"included_credits"`
	RemainingCredits   *float64 `json:"remaining_credits"`
	SpendingCapUSD     *float64 `json:"spending_cap_usd"`
	SpendingCurrentUSD *float64 `json:"spending_current_usd"`
}

// Billing types of Account.BillingType.
const (
	BillingWallet       = "wallet"
	BillingSubscription = "subscription"
	BillingUsageBased   = "usage_based"
)

// VideoCost is what one created video costs, in the unit of the account's billing: one
// dollar or one credit of a wallet, one subscription credit (premium credits first, then
// add-on credits), one usage-based credit, or, once those are spent, one dollar of
// usage-based spending.
const VideoCost = 1

func float64p(f float64) *float64 { return &f }

// DemoAccount returns a sample account of the given billing type: a $100 wallet, a "pro"
// subscription with 200 premium and 50 add-on credits, or usage-based billing with 80 of
// 100 included credits left and $12.50 spent of a $500 cap. It carries an email, first
// and last name, which a gateway must not pass on. Another billingType is sent as is with
// no billing details, as a value this API version does not know.
func DemoAccount(billingType string) Account {
	a := Account{
		Username:    "demo",
		Email:       strp("demo.user@example.com"),
		FirstName:   strp("Demo"),
		LastName:    strp("User"),
		BillingType: strp(billingType),
	}
	switch billingType {
	case BillingWallet:
		a.Wallet = &Wallet{Currency: "usd", RemainingBalance: float64p(100), AutoReload: &AutoReload{Enabled: false}}
	case BillingSubscription:
		a.Subscription = &Subscription{Plan: "pro", Credits: SubscriptionCredits{
			PremiumCredits: &CreditPool{Remaining: intp(200), ResetsAt: strp("2026-08-01T00:00:00Z")},
			AddOnCredits:   &CreditPool{Remaining: intp(50)},
		}}
	case BillingUsageBased:
		a.UsageBased = &UsageBased{IncludedCredits: float64p(100), RemainingCredits: float64p(80),
			SpendingCapUSD: float64p(500), SpendingCurrentUSD: float64p(12.5)}
	}
	return a
}

// clone deep-copies a through JSON, which is exactly what the account's fields are.
func (a Account) clone() Account {
	var c Account
	if err := json.Unmarshal(marshal(a), &c); err != nil {
		return a // not reachable: marshal of an Account always decodes
	}
	return c
}

// SetAccount replaces the account GET /v3/users/me returns and video creation debits.
// a is copied: later changes to it have no effect.
func (s *Server) SetAccount(a Account) {
	c := a.clone()
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	s.account = c
}

// Account returns a copy of the account as it is now, debits included.
func (s *Server) Account() Account {
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	return s.account.clone()
}

func (s *Server) getAccount(w http.ResponseWriter, _ *http.Request, _ string) {
	s.accountMu.Lock()
	b := marshal(s.account)
	s.accountMu.Unlock()
	writeData(w, http.StatusOK, b)
}

// debit charges one video to the account. It reports false, changing nothing, when the
// account cannot pay; a balance that is null is not tracked and always pays.
func (s *Server) debit() bool {
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	a := &s.account
	switch deref(a.BillingType) {
	case BillingWallet:
		if a.Wallet == nil || a.Wallet.RemainingBalance == nil {
			return true
		}
		if *a.Wallet.RemainingBalance < VideoCost {
			return false
		}
		*a.Wallet.RemainingBalance -= VideoCost
	case BillingSubscription:
		if a.Subscription == nil {
			return true
		}
		tracked := false
		for _, p := range []*CreditPool{a.Subscription.Credits.PremiumCredits, a.Subscription.Credits.AddOnCredits} {
			if p == nil || p.Remaining == nil {
				continue
			}
			tracked = true
			if *p.Remaining >= VideoCost {
				*p.Remaining -= VideoCost
				return true
			}
		}
		return !tracked
	case BillingUsageBased:
		u := a.UsageBased
		if u == nil {
			return true
		}
		if u.RemainingCredits != nil && *u.RemainingCredits >= VideoCost {
			*u.RemainingCredits -= VideoCost
			return true
		}
		spent := 0.0
		if u.SpendingCurrentUSD != nil {
			spent = *u.SpendingCurrentUSD
		}
		if u.SpendingCapUSD != nil && spent+VideoCost > *u.SpendingCapUSD {
			return false
		}
		u.SpendingCurrentUSD = float64p(spent + VideoCost)
	}
	return true
}
