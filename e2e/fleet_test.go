//go:build e2e

package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/internal/redistest"
	gw "github.com/heygen-grpc/heygen-grpc/server"
)

const fleetKey = "sk-CANARY-fleet-e2e-0123456789"

// fleetEnv is one fake HeyGen, one Redis and the gateways' shared settings.
type fleetEnv struct {
	fake    *fakeheygen.Server
	faults  *faults.Injector
	redis   *redistest.Server
	env     []string
	flags   []string
	token   string
	refresh time.Duration
}

func newFleet(t *testing.T, refresh time.Duration) *fleetEnv {
	t.Helper()
	inj := faults.New()
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: fleetKey, Catalogue: fakeheygen.DemoCatalogue(), Voices: fakeheygen.DemoVoices(),
		Middleware: inj.Wrap, CreateRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	r := redistest.Start(t)
	token, hash, err := gw.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	callers := filepath.Join(t.TempDir(), "callers")
	if err := os.WriteFile(callers, []byte("batch: "+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &fleetEnv{
		fake: fake, faults: inj, redis: r, token: token, refresh: refresh,
		env: append(hermeticEnv(), "HEYGEN_API_KEY="+fleetKey),
		flags: []string{"-heygen-base-url", fake.URL(), "-redis-url", "redis://" + r.Addr, "-callers-file", callers,
			"-caller-rate-limits", "batch=10:10", "-catalogue-refresh-interval", refresh.String(), "-health-probe-interval", "1h"},
	}
}

func (f *fleetEnv) gateway(t *testing.T) *server {
	t.Helper()
	return startGateway(t, f.env, f.flags...)
}

// lists counts the catalogue's list requests at the fake (the health
// probe's /v3/users/me is not a crawl).
func (f *fleetEnv) lists() int {
	return f.fake.CountPath("/v3/avatars/looks") + f.fake.CountPath("/v3/avatars") + f.fake.CountPath("/v3/voices")
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (f *fleetEnv) call(c *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+f.token), 5*time.Second)
	defer cancel()
	_, err := heygenv1.NewAvatarsServiceClient(c).ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 20})
	return err
}

// TestFleet: three gateways against one fake HeyGen and one Redis.
func TestFleet(t *testing.T) {
	needDebianPackages(t)
	f := newFleet(t, 4*time.Second)
	var gws []*server
	for range 3 {
		gws = append(gws, f.gateway(t))
	}
	var conns []*grpc.ClientConn
	for _, g := range gws {
		conns = append(conns, dial(t, g.addr))
	}

	t.Run("one crawl per refresh for the fleet", func(t *testing.T) {
		// The fleet's first crawl, for scale.
		perCrawl := f.lists()
		time.Sleep(3*f.refresh + f.refresh/2)
		worth := float64(f.lists()) / float64(perCrawl)
		crawls, loads := 0, 0
		for _, g := range gws {
			crawls += len(g.logsAfter("catalogue refreshed", time.Time{}))
			loads += len(g.logsAfter("catalogue loaded from the fleet's shared snapshot", time.Time{}))
		}
		t.Logf("%d list requests per crawl; after 3.5 refresh intervals, %.1f crawls' worth of requests for 3 gateways; in their logs %d crawls and %d loads of a shared snapshot (3 resources each)",
			perCrawl, worth, crawls, loads)
		// Refreshes come every interval less up to 10% jitter: at most 5
		// rounds after the first here, each one crawl for the fleet where
		// three lone gateways would make three.
		if worth > 6.5 {
			t.Fatalf("%.1f crawls' worth of requests for 3 gateways in 3.5 intervals: they are not sharing (one crawl a round is at most 6)", worth)
		}
		// Every round is one crawl and two loads per resource.
		if rounds := (crawls + loads) / 3; crawls > rounds+3 {
			t.Fatalf("%d crawls and %d loads: more than one crawl per resource per round", crawls, loads)
		}
	})

	outer := t // the fourth gateway outlives its subtest
	t.Run("a cold gateway answers from the shared snapshot", func(t *testing.T) {
		before := f.lists()
		start := time.Now()
		g := startGatewayNoWait(outer, f.env, f.flags...)
		c := dial(outer, g.addrWhenServing(t))
		gws = append(gws, g) // it is part of the fleet from now on
		conns = append(conns, c)
		for f.call(c) != nil {
			if time.Since(start) > 10*time.Second {
				t.Fatal("the fourth gateway did not answer within 10 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("a fourth gateway answered its first ListAvatars %v after its process started", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("the cold gateway took %v to answer, want under 1 s from the shared snapshot", took)
		}
		if n := f.lists() - before; n > 0 {
			t.Errorf("the cold gateway made %d list requests to HeyGen, want 0", n)
		}
	})

	limited := func(t *testing.T, n int) int {
		t.Helper()
		var ok atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				err := f.call(conns[i%len(conns)])
				switch status.Code(err) {
				case codes.OK:
					ok.Add(1)
				case codes.ResourceExhausted:
				default:
					t.Errorf("call %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		return int(ok.Load())
	}

	t.Run("a caller's limit holds across the fleet", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // a full bucket
		got := limited(t, 30)
		t.Logf("a caller limited to 10/s (burst 10) sent 30 calls over %d gateways: %d got through", len(conns), got)
		if got < 10 || got > 14 {
			t.Fatalf("%d of 30 calls got through a fleet-wide limit of 10 (burst 10), want about 10", got)
		}
	})

	t.Run("usage and the account are the fleet's", func(t *testing.T) {
		time.Sleep(2500 * time.Millisecond) // every replica has added its counts
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+f.token)
		var total int64
		for i, c := range conns {
			resp, err := heygenv1.NewAccountServiceClient(c).GetUsage(ctx, &heygenv1.GetUsageRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if !resp.GetFleet() || len(resp.GetCallers()) != 1 {
				t.Fatalf("gateway %d: GetUsage fleet=%v callers=%d, want the fleet's counts of one caller", i, resp.GetFleet(), len(resp.GetCallers()))
			}
			var n int64
			for _, m := range resp.GetCallers()[0].GetRpcs() {
				if m.GetMethod() == "ListAvatars" {
					n += m.GetCount()
				}
			}
			if i > 0 && n != total {
				t.Fatalf("gateway %d counts %d ListAvatars calls of batch, gateway 0 counted %d: not the same fleet totals", i, n, total)
			}
			total = n
		}
		// 30 calls spread over three gateways, plus the first test's.
		if total < 30 {
			t.Fatalf("the fleet counted %d ListAvatars calls of batch, want at least the 30 sent over all three gateways", total)
		}
		before := f.fake.CountPath("/v3/users/me")
		for _, c := range conns {
			if _, err := heygenv1.NewAccountServiceClient(c).GetAccount(ctx, &heygenv1.GetAccountRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.fake.CountPath("/v3/users/me") - before; n > 1 {
			t.Fatalf("GetAccount on three gateways made %d requests to HeyGen, want at most 1: the reading is shared", n)
		}
	})

	t.Run("a request_id and HeyGen's create hold are the fleet's", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // the caller's bucket, emptied above, refills
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+f.token)
		create := func(c *grpc.ClientConn, requestID, text string) (*heygenv1.Video, error) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resp, err := heygenv1.NewVideosServiceClient(c).CreateVideo(cctx, &heygenv1.CreateVideoRequest{
				RequestId: requestID,
				Visual:    &heygenv1.CreateVideoRequest_Avatar{Avatar: &heygenv1.AvatarVisual{AvatarId: "Zoe_OutdoorPark_20240523"}},
				Speech:    &heygenv1.CreateVideoRequest_Script{Script: &heygenv1.Script{Text: text}},
			})
			return resp.GetVideo(), err
		}
		first, err := create(conns[0], "fleet-req-1", "Hello from the fleet.")
		if err != nil {
			t.Fatal(err)
		}
		again, err := create(conns[1], "fleet-req-1", "Hello from the fleet.")
		if err != nil || again.GetId() != first.GetId() {
			t.Fatalf("the same request_id on another gateway: %v, %v; want video %s", again.GetId(), err, first.GetId())
		}
		_, err = create(conns[2], "fleet-req-1", "Something else entirely.")
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("the request_id reused with another request on a third gateway: %v, want FAILED_PRECONDITION (the ledger is shared)", err)
		}
		// HeyGen asks gateway 0 to hold creates: gateway 1 holds them too.
		f.faults.Inject(faults.Fault{Path: "/v3/videos", Method: "POST", Times: 1, Status: 429,
			Header: map[string]string{"Retry-After": "30"}, Body: fakeheygen.V3Error("rate_limit_exceeded", "slow down")})
		if _, err := create(conns[0], "fleet-req-2", "One more."); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a create HeyGen rate-limits: %v", err)
		}
		before := f.fake.CountMethodPath("POST", "/v3/videos")
		_, err = create(conns[1], "fleet-req-3", "And another.")
		st, _ := status.FromError(err)
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "holds every create") {
			t.Fatalf("a create on another gateway during HeyGen's hold: %v, want the shared cool-down", err)
		}
		if n := f.fake.CountMethodPath("POST", "/v3/videos") - before; n != 0 {
			t.Fatalf("the other gateway sent %d creates during the hold, want 0", n)
		}
	})

	t.Run("Redis stopped under load, then back", func(t *testing.T) {
		var failed, served atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := heygenv1.NewAvatarsServiceClient(c).GetAvatar(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.token),
						&heygenv1.GetAvatarRequest{AvatarId: "Zoe_OutdoorPark_20240523"})
					cancel()
					switch status.Code(err) {
					case codes.OK:
						served.Add(1)
					case codes.ResourceExhausted: // the caller's own limit
					default:
						failed.Add(1)
						t.Errorf("a catalogue call failed during the Redis outage: %v", err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
		time.Sleep(500 * time.Millisecond)
		f.redis.Stop(t)
		for _, g := range gws {
			waitHealthStatus(t, g, gw.FleetHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
		}
		time.Sleep(1100 * time.Millisecond)
		close(stop)
		wg.Wait()
		t.Logf("during the outage: %d catalogue calls served, %d failed", served.Load(), failed.Load())
		time.Sleep(1100 * time.Millisecond) // full local buckets
		got := limited(t, 30)
		t.Logf("with Redis down, 30 calls of the 10/s caller over the %d gateways: %d got through (each gateway enforces its share of the limit)", len(conns), got)
		if got < 8 || got > 15 {
			t.Fatalf("with Redis down %d of 30 calls got through, want about 10 (the documented local share)", got)
		}
		f.redis.Restart(t)
		for _, g := range gws {
			waitHealthStatus(t, g, gw.FleetHealthName, healthpb.HealthCheckResponse_SERVING)
		}
		// Sharing resumed: the restarted Redis is empty, so the next refresh
		// has one replica crawl and publish, and the others load.
		deadline := time.Now().Add(3 * f.refresh)
		for {
			loaded := 0
			for _, g := range gws {
				loaded += len(g.logsAfter("catalogue loaded from the fleet's shared snapshot", time.Now().Add(-2*f.refresh)))
			}
			if loaded > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no gateway loaded a shared snapshot after Redis came back")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// waitHealthStatus waits until the gateway reports want for name.
func waitHealthStatus(t *testing.T, g *server, name string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	c := dial(t, g.addr)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		cancel()
		if err == nil && resp.GetStatus() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: health %q is %v (%v), want %v", g.addr, name, resp.GetStatus(), err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
