// Command grpcload is a light closed-loop gRPC load generator: -c callers
// over -connections connections call one method as fast as they can for
// -duration (after -warmup), then report calls per second and latency
// percentiles (bench/internal/loadstat.Report as JSON).
//
//	grpcload -addr 127.0.0.1:50051 -call list -page-size 50 -c 8 -connections 4 -warmup 3s -duration 12s
//
// It exists because ghz decodes every response into a dynamic message,
// which for a 50-avatar page costs the client several times the server's
// CPU per call: on a 2-core machine ghz is then the bottleneck and cannot
// tell a fast server from a slow one. grpcload sends a request encoded
// once and does not decode responses (it checks their size against the
// first response, which it decodes and validates), so the server under
// test is the bottleneck. Calls in flight when the time is up are waited
// for and counted, so there are no cut-off errors at the end.
//
// -call list is heygen.v1.AvatarsService/ListAvatars {page_size}; -call
// health is grpc.health.v1.Health/Check {}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loadstat"
	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// rawCodec sends pre-encoded requests and only measures responses. Its
// name is "proto", so the server sees ordinary protobuf calls.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*int) = data.Len()
	return nil
}

func (rawCodec) Name() string { return "proto" }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "grpcload: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "", "loopback host:port of the server (required)")
	call := flag.String("call", "list", "list (AvatarsService/ListAvatars) or health (Health/Check)")
	pageSize := flag.Int("page-size", 50, "ListAvatars page_size")
	c := flag.Int("c", 8, "concurrent callers")
	conns := flag.Int("connections", 4, "connections the callers are spread over")
	warmup := flag.Duration("warmup", 3*time.Second, "load before measuring, not reported")
	duration := flag.Duration("duration", 12*time.Second, "measured load (at most 5m)")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of one call")
	out := flag.String("o", "", "write the JSON report here instead of stdout")
	flag.Parse()

	if err := loopback.CheckAddr(*addr); err != nil {
		return err
	}
	if *c < 1 || *c > 1000 || *conns < 1 || *conns > *c || *duration <= 0 || *duration > 5*time.Minute || *pageSize < 1 || *pageSize > 500 {
		return errors.New("want 1 <= -c <= 1000, 1 <= -connections <= -c, 0 < -duration <= 5m, 1 <= -page-size <= 500")
	}

	cs := make([]*grpc.ClientConn, *conns)
	for i := range cs {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		cs[i] = conn
	}

	var (
		method string
		req    proto.Message
		size   int
	)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	switch *call {
	case "list":
		method = "/heygen.v1.AvatarsService/ListAvatars"
		lr := &heygenv1.ListAvatarsRequest{PageSize: int32(*pageSize)}
		resp, err := heygenv1.NewAvatarsServiceClient(cs[0]).ListAvatars(ctx, lr)
		if err != nil {
			cancel()
			return fmt.Errorf("first ListAvatars: %w", err)
		}
		if len(resp.GetAvatars()) != *pageSize {
			cancel()
			return fmt.Errorf("first ListAvatars returned %d avatars, want %d", len(resp.GetAvatars()), *pageSize)
		}
		req, size = lr, proto.Size(resp)
	case "health":
		method = "/grpc.health.v1.Health/Check"
		hr := &healthpb.HealthCheckRequest{}
		resp, err := healthpb.NewHealthClient(cs[0]).Check(ctx, hr)
		if err != nil {
			cancel()
			return fmt.Errorf("first Health/Check: %w", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			cancel()
			return fmt.Errorf("first Health/Check: %s", resp.GetStatus())
		}
		req, size = hr, proto.Size(resp)
	default:
		cancel()
		return fmt.Errorf("unknown -call %q: want list or health", *call)
	}
	cancel()
	reqBytes, err := proto.Marshal(req)
	if err != nil {
		return err
	}

	// One call: any answer but a response the size of the first one is an
	// error (grouped by status code, so the report stays short).
	invoke := func(conn *grpc.ClientConn) (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		var n int
		if err := conn.Invoke(ctx, method, &reqBytes, &n, grpc.ForceCodecV2(rawCodec{})); err != nil {
			return 0, errors.New(status.Code(err).String())
		}
		if n != size {
			return int64(n), fmt.Errorf("response of %d bytes, want %d", n, size)
		}
		return int64(n), nil
	}

	phase := func(d time.Duration, rec *loadstat.Recorder) time.Duration {
		var stop atomic.Bool
		var wg sync.WaitGroup
		start := time.Now()
		time.AfterFunc(d, func() { stop.Store(true) })
		for i := range *c {
			conn := cs[i%len(cs)]
			wg.Go(func() {
				for !stop.Load() {
					t0 := time.Now()
					n, err := invoke(conn)
					if rec != nil {
						rec.Add(time.Since(t0), n, err)
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	if *warmup > 0 {
		phase(*warmup, nil)
	}
	rec := loadstat.NewRecorder(1 << 16)
	elapsed := phase(*duration, rec)
	rep := rec.Report(*addr+" "+method, *c, elapsed)
	if err := loadstat.Write("grpcload", rep, *out); err != nil {
		return err
	}
	if rep.OK == 0 {
		return errors.New("no call succeeded")
	}
	return nil
}
