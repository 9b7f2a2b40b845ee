package heygen

import "context"

// Billing types of a HeyGen account.
const (
	BillingWallet       = "wallet"
	BillingSubscription = "subscription"
	BillingUsageBased   = "usage_based"
)

// User is the account that owns the API key (GET /v3/users/me): its
// billing, and exactly one populated billing block. The holder's email and
// names are deliberately not decoded: nothing in the gateway needs them,
// so nothing can leak them.
type User struct {
	// BillingType is wallet, subscription or usage_based (or a newer value).
	BillingType *string `json:"billing_type"`
	// Wallet is set for prepaid accounts.
	Wallet *Wallet `json:"wallet"`
	// Subscription is set for plan accounts.
	Subscription *Subscription `json:"subscription"`
	// UsageBased is set for pay-as-you-go accounts.
	UsageBased *UsageBased `json:"usage_based"`
}

// Wallet is a prepaid balance.
type Wallet struct {
	// Currency is usd or credits (or a newer value).
	Currency string `json:"currency"`
	// RemainingBalance is what is left, in Currency.
	RemainingBalance *float64 `json:"remaining_balance"`
	// AutoReload is the top-up rule, if any.
	AutoReload *AutoReload `json:"auto_reload"`
}

// AutoReload tops a wallet up when it runs low.
type AutoReload struct {
	// Enabled reports whether auto-reload is on.
	Enabled bool `json:"enabled"`
	// AmountUSD is how much each reload adds.
	AmountUSD *float64 `json:"amount_usd"`
	// ThresholdUSD is the balance that triggers a reload.
	ThresholdUSD *float64 `json:"threshold_usd"`
}

// Subscription is a plan with credit buckets.
type Subscription struct {
	// Plan is the plan name (free, starter, creator, pro, team, enterprise,
	// business_plus, or a newer value).
	Plan string `json:"plan"`
	// Credits are the plan's buckets.
	Credits struct {
		// PremiumCredits are the plan's premium credits.
		PremiumCredits *CreditBucket `json:"premium_credits"`
		// AddOnCredits are credits bought on top of the plan.
		AddOnCredits *CreditBucket `json:"add_on_credits"`
	} `json:"credits"`
}

// CreditBucket is credits left and when they reset.
type CreditBucket struct {
	// Remaining is the credits left.
	Remaining *int64 `json:"remaining"`
	// ResetsAt is when the bucket resets (RFC 3339, as HeyGen sends it).
	ResetsAt *string `json:"resets_at"`
}

// UsageBased is pay-as-you-go billing.
type UsageBased struct {
	// IncludedCredits are the credits included in the period.
	IncludedCredits *float64 `json:"included_credits"`
	// RemainingCredits are the included credits left.
	RemainingCredits *float64 `json:"remaining_credits"`
	// SpendingCapUSD caps the period's spend.
	SpendingCapUSD *float64 `json:"spending_cap_usd"`
	// SpendingCurrentUSD is the period's spend so far.
	SpendingCurrentUSD *float64 `json:"spending_current_usd"`
}

// UsersService is HeyGen's account endpoint.
type UsersService struct{ c *Client }

// Me fetches the account that owns the key (GET /v3/users/me): a cheap
// call that proves the key works.
func (s *UsersService) Me(ctx context.Context) (*User, error) {
	return get[User](ctx, s.c, Route("/v3/users/me"))
}
