// Command bareserver is the throughput limit the gateway is measured
// against: a bare grpc-go server (default options, no interceptors, no
// logging, no catalogue lookup) that registers heygen.v1.AvatarsService
// with a ListAvatars returning one response held in memory, plus the
// standard health service.
//
// The response is the gateway's own: at startup bareserver calls
// ListAvatars on the gateway (-from) once with the request it will be
// benchmarked with, retrying until the gateway answers, and then serves
// that very message to every caller, whatever it asks. Only ListAvatars is
// implemented; the other methods are UNIMPLEMENTED.
//
//	bareserver -addr 127.0.0.1:50052 -from 127.0.0.1:50051 -page-size 50
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// bare answers ListAvatars with a fixed response.
type bare struct {
	heygenv1.UnimplementedAvatarsServiceServer
	resp *heygenv1.ListAvatarsResponse
}

// ListAvatars returns the response captured at startup.
func (b *bare) ListAvatars(context.Context, *heygenv1.ListAvatarsRequest) (*heygenv1.ListAvatarsResponse, error) {
	return b.resp, nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bareserver: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:50052", "loopback address to serve on")
	from := flag.String("from", "127.0.0.1:50051", "loopback address of the gateway to copy the response from")
	pageSize := flag.Int("page-size", 50, "page_size of the ListAvatars request copied from the gateway")
	wait := flag.Duration("wait", 60*time.Second, "how long to keep trying the gateway at startup")
	flag.Parse()
	for _, a := range []string{*addr, *from} {
		if err := loopback.CheckAddr(a); err != nil {
			return err
		}
	}

	if *pageSize < 1 || *pageSize > 500 {
		return errors.New("-page-size must be between 1 and 500")
	}
	resp, err := fetch(*from, int32(*pageSize), *wait)
	if err != nil {
		return err
	}

	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(heygenv1.AvatarsService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	heygenv1.RegisterAvatarsServiceServer(gs, &bare{resp: resp})

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	log.Printf("bareserver: serving %d avatars (%d bytes per response) on %s", len(resp.GetAvatars()), proto.Size(resp), lis.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		gs.Stop()
	}()
	if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// fetch calls ListAvatars on the gateway until it answers or wait passes.
func fetch(addr string, pageSize int32, wait time.Duration) (*heygenv1.ListAvatarsResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	client := heygenv1.NewAvatarsServiceClient(conn)
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: pageSize})
		cancel()
		if err == nil {
			if len(resp.GetAvatars()) == 0 {
				return nil, fmt.Errorf("the gateway at %s returned no avatars", addr)
			}
			return resp, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("ListAvatars on the gateway at %s: %w", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
