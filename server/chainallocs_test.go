package server

import (
	"context"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
)

// chainAllocsPerCall bounds the allocations of one cached GetAvatar
// through the gateway's machinery as BenchmarkChain runs it (the tap, the
// method wrapper, the two-link chain, the freshness headers; with metrics
// and a caller token in production), the
// benchmark's own stand-ins for grpc-go included, with the peer address
// as the gateway's listener gives it (formatted once per connection).
// Measured: 9. Each one more is about 1% of the call's server CPU on this
// machine, garbage collection included (bench/RESULTS.md).
const chainAllocsPerCall = 9

// TestChainAllocationsPerCall keeps the gateway's per-call allocations at
// the measured count, in both configurations: a context layer, a chain
// link, a copy of the freshness headers (grpc.SetHeader's join) or, with
// caller tokens, a copy of the authorization metadata added back fails it.
func TestChainAllocationsPerCall(t *testing.T) {
	w := loadWorld(t)
	var get benchRPC
	for _, rpc := range benchRPCs {
		if rpc.name == "get" {
			get = rpc
		}
	}
	resp := prepared(t, w, get)
	for _, cfg := range benchConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			cb := newChainBench(t, w, cfg)
			base, cancel := chainBase(cfg)
			defer cancel()
			meta := catalogue.Meta{Source: catalogue.SourceFresh, Age: 42 * time.Second, HasAge: true}
			handler := func(ctx context.Context, _ any) (any, error) {
				cb.srv.answered(ctx, meta)
				return resp, nil
			}
			req := get.request(w)
			call := func() {
				if err := cb.call(base, get.method, cb.info[get.name], req, handler); err != nil {
					t.Fatal(err)
				}
			}
			call() // warm: the method's cached parts, the pools, the token's memo
			if n := testing.AllocsPerRun(500, call); n > chainAllocsPerCall {
				t.Fatalf("a cached GetAvatar allocates %.1f times in the gateway's machinery, want at most %d", n, chainAllocsPerCall)
			}
		})
	}
}
