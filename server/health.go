package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// AvatarsServiceName is the health service name that follows HeyGen.
var AvatarsServiceName = heygenv1.AvatarsService_ServiceDesc.ServiceName

// prober keeps AvatarsService's health in step with HeyGen by calling
// GET /v3/users/me in the background. It never runs per RPC.
type prober struct {
	client    *heygen.Client
	health    *health.Server
	log       *slog.Logger
	interval  time.Duration
	timeout   time.Duration
	threshold int

	failures int // consecutive unreachable probes
	last     healthpb.HealthCheckResponse_ServingStatus
}

// run probes at once, then every interval, until ctx is done.
func (p *prober) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe makes one call and updates the serving status: NOT_SERVING at once
// when HeyGen rejects the key, or after threshold consecutive probes that
// could not reach HeyGen; SERVING on any success. Rate limits, permission
// problems (the key works, a scope is missing) and odd responses leave the
// status as it was: HeyGen answered, so it is reachable and knows the key.
func (p *prober) probe(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	_, err := p.client.Users.Me(heygen.WithQueueing(pctx))
	cancel()
	if ctx.Err() != nil {
		return // shutting down
	}
	next := p.last
	var herr *heygen.Error
	switch {
	case err == nil:
		p.failures = 0
		next = healthpb.HealthCheckResponse_SERVING
	case errors.As(err, &herr) && herr.Kind == heygen.KindKeyRejected:
		p.failures = 0
		next = healthpb.HealthCheckResponse_NOT_SERVING
		p.log.ErrorContext(ctx, "HeyGen rejects the API key; AvatarsService is NOT_SERVING until it is fixed", "error", err)
	case errors.As(err, &herr) && herr.Kind != heygen.KindUnavailable:
		p.failures = 0
		p.log.WarnContext(ctx, "HeyGen health probe failed; serving status unchanged", "error", err)
	default: // unreachable, 5xx or timed out
		p.failures++
		p.log.WarnContext(ctx, "HeyGen health probe could not reach HeyGen", "error", err,
			"consecutive_failures", p.failures, "threshold", p.threshold)
		if p.failures >= p.threshold {
			next = healthpb.HealthCheckResponse_NOT_SERVING
		}
	}
	if next != p.last {
		p.log.InfoContext(ctx, "AvatarsService serving status changed", "from", p.last.String(), "to", next.String())
		p.last = next
		p.health.SetServingStatus(AvatarsServiceName, next)
	}
}
