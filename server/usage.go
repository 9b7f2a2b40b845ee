package server

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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
	// With a shared store, the counts not yet added to the fleet's.
	shared  SharedStore
	pending map[string]map[string]int64
}

// callerUsage is one caller's counts.
type callerUsage struct {
	RPCs           map[rpcKey]int64
	HeyGenRequests int64
	VideosCreated  int64
}

type rpcKey struct {
	Method string // full: /service/method (only registered methods reach the call recorder)
	Code   codes.Code
}

func newUsage() *usage { return &usage{callers: map[string]*callerUsage{}} }

// of returns the name caller is counted under and its counts, creating
// them; u.mu must be held.
func (u *usage) of(caller string) (string, *callerUsage) {
	if caller == "" {
		caller = "unauthenticated"
	}
	c, ok := u.callers[caller]
	if !ok {
		if len(u.callers) >= maxUsageCallers {
			caller = otherCallers
			if c, ok = u.callers[caller]; ok {
				return caller, c
			}
		}
		c = &callerUsage{RPCs: map[rpcKey]int64{}}
		u.callers[caller] = c
	}
	return caller, c
}

// rpc counts one finished RPC of a full method name and the HeyGen
// requests it made.
func (u *usage) rpc(caller, method string, code codes.Code, heygenRequests int64) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	name, c := u.of(caller)
	c.RPCs[rpcKey{method, code}]++
	c.HeyGenRequests += heygenRequests
	if u.shared != nil { // the field's name is built only for a fleet
		u.pendingAdd(name, usageRPC+method+":"+strconv.Itoa(int(code)), 1)
		u.pendingAdd(name, usageHeyGen, heygenRequests)
	}
}

// videoCreated counts one video HeyGen accepted to render for caller.
func (u *usage) videoCreated(caller string) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	name, c := u.of(caller)
	c.VideosCreated++
	u.pendingAdd(name, usageVideos, 1)
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

// SharedStore is the state a fleet of replicas shares beyond rate limits
// (see the fleet package): small values with a lifetime (the account's
// last reading, a create cool-down) and usage counts.
type SharedStore interface {
	SharedLimiter
	// GetValue returns the value stored under name.
	GetValue(ctx context.Context, name string) (v []byte, found bool, err error)
	// SetValue stores v under name for ttl.
	SetValue(ctx context.Context, name string, v []byte, ttl time.Duration) error
	// SetValueIfAbsent stores v under name for ttl unless a value is there,
	// and returns the value there afterwards.
	SetValueIfAbsent(ctx context.Context, name string, v []byte, ttl time.Duration) (current []byte, stored bool, err error)
	// AddUsage adds counts to caller's fleet-wide usage.
	AddUsage(ctx context.Context, caller string, counts map[string]int64) error
	// Usage returns the fleet's counts of callers (or of every caller).
	Usage(ctx context.Context, all bool, callers ...string) (map[string]map[string]int64, error)
}

// Usage count names in the shared store.
const (
	usageHeyGen = "heygen_requests"
	usageVideos = "videos_created"
	usageRPC    = "rpc:" // + full method + ":" + code number
)

// usageFlushEvery is how often a replica adds its counts to the fleet's.
const usageFlushEvery = 2 * time.Second

// pendingAdd records counts not yet added to the fleet's; u.mu must be held.
func (u *usage) pendingAdd(caller, field string, n int64) {
	if u.shared == nil || n == 0 {
		return
	}
	if u.pending == nil {
		u.pending = map[string]map[string]int64{}
	}
	m := u.pending[caller]
	if m == nil {
		if len(u.pending) >= maxUsageCallers {
			return
		}
		m = map[string]int64{}
		u.pending[caller] = m
	}
	m[field] += n
}

// flushUsage adds this replica's counts to the fleet's every
// usageFlushEvery until ctx is done (and once more then).
func (u *usage) flushUsage(ctx context.Context) {
	if u.shared == nil {
		return
	}
	t := time.NewTicker(usageFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			u.flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
			u.flush(ctx)
		}
	}
}

// flush adds the pending counts to the fleet's; what cannot be added stays
// pending for the next flush.
func (u *usage) flush(ctx context.Context) {
	u.mu.Lock()
	pending := u.pending
	u.pending = nil
	u.mu.Unlock()
	for caller, counts := range pending {
		if err := u.shared.AddUsage(ctx, caller, counts); err != nil {
			u.mu.Lock()
			for f, n := range counts {
				u.pendingAdd(caller, f, n)
			}
			u.mu.Unlock()
		}
	}
}

// fleetCounts returns the fleet's counts (this replica's pending ones
// included) when the shared store answers; fleet is false when the
// counts are this replica's alone.
func (u *usage) fleetCounts(ctx context.Context, all bool, callers ...string) (out []callerCounts, fleet bool) {
	if u.shared == nil || !u.shared.Up() {
		return u.counts(all, callers...), false
	}
	shared, err := u.shared.Usage(ctx, all, callers...)
	if err != nil {
		return u.counts(all, callers...), false
	}
	u.mu.Lock()
	for caller, counts := range u.pending {
		if !all && !slices.Contains(callers, caller) {
			continue
		}
		m := shared[caller]
		if m == nil {
			m = map[string]int64{}
			shared[caller] = m
		}
		for f, n := range counts {
			m[f] += n
		}
	}
	u.mu.Unlock()
	for caller, counts := range shared {
		c := callerCounts{Caller: caller, callerUsage: callerUsage{RPCs: map[rpcKey]int64{}}}
		for f, n := range counts {
			switch {
			case f == usageHeyGen:
				c.HeyGenRequests = n
			case f == usageVideos:
				c.VideosCreated = n
			case strings.HasPrefix(f, usageRPC):
				method, code, ok := cutLast(strings.TrimPrefix(f, usageRPC), ":")
				if num, err := strconv.ParseUint(code, 10, 32); ok && err == nil {
					c.RPCs[rpcKey{Method: method, Code: codes.Code(num)}] += n
				}
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Caller < out[j].Caller })
	return out, true
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
