package server

import (
	"sort"
	"sync"

	"google.golang.org/grpc/codes"
)

// maxUsageCallers bounds the callers usage is kept for: callers are names
// from the operator's callers file, certificate identities or "anonymous",
// but a bound costs nothing and rules out surprises.
const maxUsageCallers = 10_000

// otherCallers collects usage past the bound.
const otherCallers = "other"

// usage counts, per caller, what the gateway did on its behalf since it
// started: RPCs by method and code, HeyGen requests made for them, and the
// operations that spend HeyGen credits. AccountService.GetUsage reports it;
// the same numbers are Prometheus counters (see Metrics).
type usage struct {
	mu      sync.Mutex
	callers map[string]*callerUsage
}

// callerUsage is one caller's counts.
type callerUsage struct {
	RPCs           map[rpcKey]int64
	HeyGenRequests int64
	VideosCreated  int64
}

type rpcKey struct {
	Method string // full: /service/method (only registered methods reach the stats handler's End)
	Code   codes.Code
}

func newUsage() *usage { return &usage{callers: map[string]*callerUsage{}} }

// of returns caller's counts, creating them; u.mu must be held.
func (u *usage) of(caller string) *callerUsage {
	if caller == "" {
		caller = "unauthenticated"
	}
	c, ok := u.callers[caller]
	if !ok {
		if len(u.callers) >= maxUsageCallers {
			caller = otherCallers
			if c, ok = u.callers[caller]; ok {
				return c
			}
		}
		c = &callerUsage{RPCs: map[rpcKey]int64{}}
		u.callers[caller] = c
	}
	return c
}

// rpc counts one finished RPC of a full method name and the HeyGen
// requests it made.
func (u *usage) rpc(caller, method string, code codes.Code, heygenRequests int64) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.of(caller)
	c.RPCs[rpcKey{method, code}]++
	c.HeyGenRequests += heygenRequests
}

// videoCreated counts one video HeyGen accepted to render for caller.
func (u *usage) videoCreated(caller string) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.of(caller).VideosCreated++
}

// callerCounts is a copy of one caller's counts.
type callerCounts struct {
	Caller string
	callerUsage
}

// counts returns a copy of the counts of the given callers (every caller
// when all is set), sorted by name.
func (u *usage) counts(all bool, callers ...string) []callerCounts {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []callerCounts
	add := func(name string, c *callerUsage) {
		cp := callerUsage{RPCs: make(map[rpcKey]int64, len(c.RPCs)), HeyGenRequests: c.HeyGenRequests, VideosCreated: c.VideosCreated}
		for k, v := range c.RPCs {
			cp.RPCs[k] = v
		}
		out = append(out, callerCounts{Caller: name, callerUsage: cp})
	}
	if all {
		for name, c := range u.callers {
			add(name, c)
		}
	} else {
		for _, name := range callers {
			if c, ok := u.callers[name]; ok {
				add(name, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Caller < out[j].Caller })
	return out
}
