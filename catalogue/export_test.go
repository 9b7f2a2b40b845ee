package catalogue

import "testing"

// SetLookupHook makes fn run in every lookup between the check of the
// remembered answers and the shared HeyGen call, until t ends.
func SetLookupHook(t *testing.T, fn func(id string)) {
	t.Helper()
	testHookLookup = fn
	t.Cleanup(func() { testHookLookup = nil })
}
