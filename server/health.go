package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Health service names the gateway reports, besides "" (the process
// serves: use it for liveness).
var (
	// AvatarsServiceName is SERVING when this replica can answer
	// AvatarsService calls: with the catalogue, when it holds snapshots
	// within the maximum staleness (it stays SERVING while HeyGen is down,
	// so a HeyGen outage does not take every replica out at once), or,
	// cold, while its first crawl runs and HeyGen answers the callers it
	// passes through (see catalogue.Options.ColdPassThrough); without,
	// when HeyGen is reachable and accepts the key. Use it for readiness.
	AvatarsServiceName = heygenv1.AvatarsService_ServiceDesc.ServiceName
	// VoicesServiceName is SERVING when this replica can answer
	// VoicesService calls, as for AvatarsServiceName.
	VoicesServiceName = heygenv1.VoicesService_ServiceDesc.ServiceName
	// VideosServiceName is SERVING while HeyGen is reachable and accepts
	// the key: every VideosService call goes to HeyGen. It is not part of
	// readiness, so that a HeyGen outage does not take every replica out.
	VideosServiceName = heygenv1.VideosService_ServiceDesc.ServiceName
)

const (
	// ReadinessHealthName is SERVING when every service of this replica
	// can answer: the name for a readiness probe.
	ReadinessHealthName = "heygen-grpc.ready"
	// CatalogueHealthName is SERVING while every catalogue resource has a
	// snapshot within its maximum staleness.
	CatalogueHealthName = "heygen-grpc.catalogue"
	// FleetHealthName is SERVING while the fleet's shared store (Redis)
	// is reachable; only reported when one is configured. Never part of
	// readiness: a replica serves alone while the store is down.
	FleetHealthName = "heygen-grpc.fleet"
	// UpstreamHealthName follows HeyGen itself, for dashboards and
	// alerts: NOT_SERVING when HeyGen rejects the key, or after the
	// configured number of consecutive probes that could not reach it.
	UpstreamHealthName = "heygen-grpc.upstream"
	// CreditHealthName is NOT_SERVING while the HeyGen account's balance,
	// as last read, is below the low-balance threshold, so an alert can
	// fire before video creation fails for insufficient credit. SERVING
	// otherwise: with the threshold at 0, and before the balance is known.
	// It is never part of readiness: a low balance is for the account's
	// owners to fix, and taking replicas out would not help.
	CreditHealthName = "heygen-grpc.credit" //nolint:gosec // G101: a health service name, not a credential
)

// upstreamState is what the prober has learnt about HeyGen.
type upstreamState int

const (
	upstreamUnknown     upstreamState = iota // no probe has answered yet
	upstreamOK                               // the last probe succeeded, or HeyGen answered with something other than a key rejection
	upstreamKeyRejected                      // HeyGen rejects the key
	upstreamUnreachable                      // threshold consecutive probes could not reach HeyGen
)

func (u upstreamState) String() string {
	return [...]string{"unknown", "ok", "key_rejected", "unreachable"}[u]
}

// prober keeps track of HeyGen's own state by calling GET /v3/users/me in
// the background (never per RPC): at once, then every interval, and at
// once again when asked (after the API key changed, say).
type prober struct {
	client    *heygen.Client
	log       *slog.Logger
	metrics   *Metrics // nil: metrics off
	interval  time.Duration
	timeout   time.Duration
	threshold int
	kick      chan struct{}
	changed   func() // called after every probe
	// observed receives the account each successful probe read, so the
	// probe's call also refreshes GetAccount's cache and the balance.
	observed func(ctx context.Context, u *heygen.User, start time.Time) *accountReading

	mu       sync.Mutex
	state    upstreamState
	failures int // consecutive unreachable probes
}

func (p *prober) current() upstreamState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// probeNow asks for a probe as soon as possible.
func (p *prober) probeNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run probes at once, then every interval or when kicked, until ctx is done.
func (p *prober) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
			t.Reset(p.interval)
		}
	}
}

// probe makes one call and updates the state: key rejected at once;
// unreachable after threshold consecutive probes that could not reach
// HeyGen; ok on any success, and on answers that prove HeyGen is up and
// knows the key (a rate limit, a missing scope).
func (p *prober) probe(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	start := time.Now()
	u, err := p.client.Users.Me(heygen.WithQueueing(pctx))
	cancel()
	if ctx.Err() != nil {
		return // shutting down
	}
	if err == nil && p.observed != nil {
		p.observed(ctx, u, start)
	}
	p.mu.Lock()
	prev := p.state
	var herr *heygen.Error
	switch {
	case err == nil:
		p.failures, p.state = 0, upstreamOK
	case errors.As(err, &herr) && herr.Kind == heygen.KindKeyRejected:
		p.failures, p.state = 0, upstreamKeyRejected
		p.log.ErrorContext(ctx, "HeyGen rejects the gateway's API key: calls that need HeyGen fail until HEYGEN_API_KEY is fixed", "error", err)
	case errors.As(err, &herr) && herr.Kind != heygen.KindUnavailable:
		p.failures = 0
		if p.state != upstreamKeyRejected {
			p.state = upstreamOK
		}
		p.log.WarnContext(ctx, "HeyGen health probe failed, but HeyGen answered; state unchanged", "error", err)
	default: // unreachable, 5xx, timed out, or not sent (breaker open)
		p.failures++
		p.log.WarnContext(ctx, "HeyGen health probe could not reach HeyGen", "error", err,
			"consecutive_failures", p.failures, "threshold", p.threshold)
		if p.failures >= p.threshold {
			p.state = upstreamUnreachable
		}
	}
	next := p.state
	p.mu.Unlock()
	p.metrics.setUpstreamState(next)
	if next != prev {
		p.log.InfoContext(ctx, "HeyGen state changed", "from", prev.String(), "to", next.String())
	}
	p.changed()
}

// healthReporter sets every health status from what the gateway knows:
// the prober's view of HeyGen and the catalogue's snapshots. It recomputes
// every second (snapshots age out by time alone) and whenever something
// changed.
type healthReporter struct {
	hs        *health.Server
	prober    *prober
	catalogue *catalogue.Set // nil: catalogue off
	fleet     SharedLimiter  // nil: alone
	kick      chan struct{}
	// lowBalance reports the account's low-balance state (nil: never low).
	lowBalance func() bool

	mu   sync.Mutex
	last map[string]healthpb.HealthCheckResponse_ServingStatus
}

func (h *healthReporter) update() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *healthReporter) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		h.reconcile()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
	}
}

func serving(ok bool) healthpb.HealthCheckResponse_ServingStatus {
	if ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// reconcile computes and sets every status that changed.
func (h *healthReporter) reconcile() {
	upstream := h.prober.current() == upstreamOK
	// Without a catalogue a service can answer while HeyGen can.
	avatars, voices := upstream, upstream
	want := map[string]healthpb.HealthCheckResponse_ServingStatus{UpstreamHealthName: serving(upstream)}
	if c := h.catalogue; c != nil {
		// A cold cache answers through HeyGen while its first crawl runs.
		answers := func(c interface {
			Usable() bool
			PassingThrough() bool
		}) bool {
			return c.Usable() || c.PassingThrough() && upstream
		}
		avatars = answers(c.Avatars) && answers(c.Groups)
		voices = answers(c.Voices)
		want[CatalogueHealthName] = serving(c.Usable())
	}
	want[AvatarsServiceName] = serving(avatars)
	want[VoicesServiceName] = serving(voices)
	want[VideosServiceName] = serving(upstream)
	want[ReadinessHealthName] = serving(avatars && voices)
	if h.fleet != nil {
		want[FleetHealthName] = serving(h.fleet.Up())
	}
	want[CreditHealthName] = serving(h.lowBalance == nil || !h.lowBalance())
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, st := range want {
		if h.last[name] != st {
			h.last[name] = st
			h.hs.SetServingStatus(name, st)
		}
	}
}
