package fleet_test

// What a fleet costs HeyGen, with and without the shared store:
//
//	go test -run '^$' -bench Fleet -benchtime 1x ./fleet
//
// Each replica is a full catalogue (avatars, groups, voices) running its
// refresh loop against one fake HeyGen; the refresh interval is shortened
// (500 ms standing for the default 10 minutes) and the calls counted at
// the fake over six intervals are scaled to an hour at the default
// interval. The cold replica's first answer and its snapshots (avatars and
// voices, split crawl or shared) are timed at HeyGen's 300 ms latency,
// against a catalogue of 5,000 avatars and 2,000 voices; heygen_calls are
// the list calls made until then.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/fleet"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/redistest"
)

const benchKey = "bench-key-not-secret"

func benchFake(b *testing.B, cat fakeheygen.Catalogue, voices []fakeheygen.Voice) *fakeheygen.Server {
	b.Helper()
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: benchKey, Catalogue: cat, Voices: voices})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fake.Close() })
	return fake
}

// replica is one catalogue, with or without the shared store.
func replica(b *testing.B, fake *fakeheygen.Server, redisAddr string, interval time.Duration) *catalogue.Set {
	b.Helper()
	client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: benchKey, Retry: heygen.RetryPolicy{BaseDelay: time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.CloseIdleConnections)
	opts := catalogue.Options{RefreshInterval: interval, Logger: slog.New(slog.DiscardHandler)}
	if redisAddr != "" {
		s, err := fleet.Open(fleet.Options{URL: "redis://" + redisAddr})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		opts.Shared = s
	}
	return catalogue.New(client, opts)
}

func lists(f *fakeheygen.Server) int {
	return f.CountPath("/v3/avatars/looks") + f.CountPath("/v3/avatars") + f.CountPath("/v3/voices")
}

func BenchmarkFleetHeyGenCallsPerHour(b *testing.B) {
	const interval = 500 * time.Millisecond
	const rounds = 6
	perHour := float64(time.Hour / catalogue.DefaultRefreshInterval)
	for _, n := range []int{1, 3, 10} {
		for _, shared := range []bool{false, true} {
			name := fmt.Sprintf("replicas=%d/shared=%v", n, shared)
			b.Run(name, func(b *testing.B) {
				fake := benchFake(b, fakeheygen.DemoCatalogue(), fakeheygen.DemoVoices())
				addr := ""
				if shared {
					addr = redistest.Start(b).Addr
				}
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for range n {
					set := replica(b, fake, addr, interval)
					wg.Go(func() { set.Run(ctx) })
				}
				time.Sleep(time.Duration(rounds)*interval + interval/4)
				cancel()
				wg.Wait()
				calls := float64(lists(fake))
				b.ReportMetric(calls/float64(rounds+1)*perHour, "heygen_calls/hour")
				b.ReportMetric(calls/float64(rounds+1), "calls/refresh")
			})
		}
	}
}

func BenchmarkFleetColdReplicaFirstAnswer(b *testing.B) {
	cat := fakeheygen.GenerateCatalogue(20261130, 100, 50) // 5,000 avatars
	voices := append(fakeheygen.DemoVoices(), fakeheygen.GenerateVoices(7, 1700)...)
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			fake := benchFake(b, cat, voices)
			addr := ""
			if shared {
				addr = redistest.Start(b).Addr
				// A replica already in the fleet crawled and published: its
				// cold split crawl, then the full crawl that follows it.
				first := replica(b, fake, addr, time.Hour)
				for range 2 {
					if err := first.Refresh(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			}
			fake.SetLatency(300 * time.Millisecond)
			fake.ResetRequests()
			set := replica(b, fake, addr, time.Hour)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			go set.Run(ctx) // as the binary does, before it serves
			// Callers come once the replica is ready: it holds a snapshot or
			// passes callers through to HeyGen while it crawls.
			for set.Avatars.Snapshot() == nil && !set.Avatars.PassingThrough() {
				time.Sleep(time.Millisecond)
			}
			if _, err := set.Avatars.List(ctx, catalogue.AvatarFilter{}, "", 50); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms_to_first_answer")
			for set.Avatars.Snapshot() == nil || set.Voices.Snapshot() == nil {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms_to_snapshot")
			b.ReportMetric(float64(lists(fake)), "heygen_calls")
		})
	}
}
