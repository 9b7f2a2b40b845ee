package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// BenchmarkWatchUpstreamCalls measures what watching N renders at once costs
// HeyGen, in calls per minute, through the gateway's shared poller and
// through the naive client that polls GET /v3/videos/{id} for each video
// every 2 s. Time is compressed: every interval is divided by
// watchBenchScale, and calls are reported per simulated minute. The renders
// last longer than the run, as long renders do. Run it with
//
//	go test -run '^$' -bench WatchUpstreamCalls -benchtime 1x ./server/
//
// and it prints a table (the naive client's cost with HeyGen's CLI backoff,
// 2 s doubling to 30 s, is computed, not measured).
func BenchmarkWatchUpstreamCalls(b *testing.B) {
	var rows []watchBenchRow
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			r := runWatchBench(b, n)
			b.ReportMetric(r.firstMinute, "gateway-calls/min-first")
			b.ReportMetric(r.steady, "gateway-calls/min-steady")
			b.ReportMetric(r.naive, "naive-calls/min")
			rows = append(rows, r)
		})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "watched renders\tgateway, 1st minute\tgateway, minutes 5-6\tnaive, every 2 s\tnaive, CLI backoff, 1st minute\tthen\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%d\t%d\t\n", r.n, r.firstMinute, r.steady, r.naive, 5*r.n, 2*r.n)
	}
	_ = tw.Flush()
}

// watchBenchScale compresses time: 2 s becomes 100 ms, a minute 3 s.
const watchBenchScale = 20

type watchBenchRow struct {
	n                          int
	firstMinute, steady, naive float64 // HeyGen calls per simulated minute
}

func runWatchBench(b *testing.B, n int) watchBenchRow {
	simMinute := time.Minute / watchBenchScale
	account := fakeheygen.DemoAccount(fakeheygen.BillingWallet)
	account.Wallet.RemainingBalance = ptr(1e6)
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: canaryKey, Catalogue: fakeheygen.DemoCatalogue(), Voices: fakeheygen.DemoVoices(),
		Account: account, RenderPending: time.Hour, RenderProcessing: time.Hour, CreateRate: -1, RequestBodyLogLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = fake.Close() }()
	client, err := heygen.New(heygen.Options{BaseURL: fake.URL(), APIKey: canaryKey, Breaker: heygen.BreakerPolicy{Disabled: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer client.CloseIdleConnections()
	ids := make([]string, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				v, err := client.Videos.Create(context.Background(), &heygen.CreateVideo{Type: "avatar", AvatarID: testAvatar, Script: ptr("A long render.")}, fmt.Sprint("bench-", i))
				if err != nil {
					b.Error(err)
					return
				}
				ids[i] = v.VideoID
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}

	srv, err := server.New(server.Options{Client: client, ProbeInterval: time.Hour, Videos: server.VideoOptions{
		PollInterval: server.DefaultPollInterval / watchBenchScale, MaxPollInterval: server.DefaultMaxPollInterval / watchBenchScale,
		MaxWatches: -1, MaxWatchesPerCaller: -1}})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One connection per 200 streams: a connection carries at most 256.
	var clients []heygenv1.VideosServiceClient
	for range (n + 199) / 200 {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		clients = append(clients, heygenv1.NewVideosServiceClient(conn))
	}

	fake.ResetRequests()
	start := time.Now()
	var first sync.WaitGroup
	for i, id := range ids {
		first.Add(1)
		wg.Go(func() {
			stream, err := clients[i%len(clients)].WatchVideo(ctx, &heygenv1.WatchVideoRequest{VideoId: id})
			if err == nil {
				_, err = stream.Recv()
			}
			first.Done()
			if err != nil {
				b.Errorf("watch %s: %v", id, err)
				return
			}
			for {
				if _, err := stream.Recv(); err != nil {
					return
				}
			}
		})
	}
	first.Wait()
	time.Sleep(time.Until(start.Add(simMinute)))
	r := watchBenchRow{n: n, firstMinute: float64(upstreamCalls(fake))}
	time.Sleep(time.Until(start.Add(4 * simMinute)))
	atMinute4 := upstreamCalls(fake)
	time.Sleep(time.Until(start.Add(6 * simMinute)))
	r.steady = float64(upstreamCalls(fake)-atMinute4) / 2
	cancel()
	wg.Wait()

	// The naive client: each video polled on its own, every 2 s.
	fake.ResetRequests()
	nctx, ncancel := context.WithTimeout(context.Background(), simMinute)
	defer ncancel()
	for _, id := range ids {
		wg.Go(func() {
			t := time.NewTicker(server.DefaultPollInterval / watchBenchScale)
			defer t.Stop()
			for {
				select {
				case <-nctx.Done():
					return
				case <-t.C:
					_, _ = client.Videos.Get(nctx, id)
				}
			}
		})
	}
	wg.Wait()
	r.naive = float64(upstreamCalls(fake))
	return r
}

// upstreamCalls counts the video reads the fake received since its last reset.
func upstreamCalls(fake *fakeheygen.Server) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Method == http.MethodGet && strings.HasPrefix(r.Path, "/v3/videos/") {
			n++
		}
	}
	return n
}
