package fakeheygen_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

func TestAccountBillingTypes(t *testing.T) {
	for _, tc := range []struct {
		billing string
		present string // the one billing object that is not null
	}{
		{fakeheygen.BillingWallet, "wallet"},
		{fakeheygen.BillingSubscription, "subscription"},
		{fakeheygen.BillingUsageBased, "usage_based"},
		{"prepaid_v2", ""}, // an enum value this API version does not know
	} {
		t.Run(tc.billing, func(t *testing.T) {
			want := fakeheygen.DemoAccount(tc.billing)
			s := newServer(t, fakeheygen.Options{Account: want})
			r := get(t, s, "/v3/users/me")
			wantOK(t, r)
			raw := decode[struct{ Data map[string]json.RawMessage }](t, r.body).Data
			for _, f := range []string{"username", "email", "first_name", "last_name", "billing_type", "wallet", "subscription", "usage_based"} {
				if _, ok := raw[f]; !ok {
					t.Errorf("field %s absent", f)
				}
			}
			// Personal data is sent, so a test can prove a gateway drops it.
			if string(raw["email"]) != `"demo.user@example.com"` || string(raw["first_name"]) != `"Demo"` || string(raw["last_name"]) != `"User"` {
				t.Errorf("personal fields %s %s %s", raw["email"], raw["first_name"], raw["last_name"])
			}
			for _, f := range []string{"wallet", "subscription", "usage_based"} {
				if isNull := string(raw[f]) == "null"; isNull == (f == tc.present) {
					t.Errorf("%s = %s with billing %s", f, raw[f], tc.billing)
				}
			}
			got := decode[struct{ Data fakeheygen.Account }](t, r.body).Data
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(s.Account(), want) {
				t.Errorf("account = %+v, want %+v", got, want)
			}
		})
	}
	// The default is a wallet.
	s := newServer(t, fakeheygen.Options{})
	if a := s.Account(); a.BillingType == nil || *a.BillingType != fakeheygen.BillingWallet || a.Wallet == nil {
		t.Fatalf("default account %+v", a)
	}
}

func TestSetAccount(t *testing.T) {
	s := newServer(t, fakeheygen.Options{})
	a := fakeheygen.DemoAccount(fakeheygen.BillingSubscription)
	s.SetAccount(a)
	*a.Subscription.Credits.PremiumCredits.Remaining = 1 // the server keeps its own copy
	got := decode[struct{ Data fakeheygen.Account }](t, get(t, s, "/v3/users/me").body).Data
	if *got.Subscription.Credits.PremiumCredits.Remaining != 200 || got.Subscription.Plan != "pro" {
		t.Fatalf("subscription %+v", got.Subscription)
	}
	mine := s.Account()
	*mine.Subscription.Credits.PremiumCredits.Remaining = 0
	if *s.Account().Subscription.Credits.PremiumCredits.Remaining != 200 {
		t.Fatal("Account returned the server's own copy")
	}
}
