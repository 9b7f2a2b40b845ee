// Command bareserver is the reference the gateway is measured against: a
// bare grpc-go server with the gateway's own transport options
// (server.TransportOptions: the same stream worker pool, the same bounds),
// the gateway's garbage collection (server.SetHeapFloor, with the same
// default floor and the same GOGC override), and no interceptors, no stats
// handler, no tap, no logging, no lookup.
// It serves the standard health service and AvatarsService's ListAvatars
// and GetAvatar and VoicesService's ListVoices, each answering one response
// held in memory, with the gateway's encoding tricks: every avatar and
// voice, listed or got, is pre-encoded once (catalogue.PreEncode), as the
// gateway's catalogue keeps them.
//
// The responses are the gateway's own: at startup bareserver calls each
// method on the gateway (-from) once, with the requests it will be
// benchmarked with, keeping the bytes the gateway sent; it builds its own
// responses from them and refuses to start unless each encodes to exactly
// those bytes. Every caller then gets that response, whatever it asks.
//
//	bareserver -addr 127.0.0.1:50052 -from 127.0.0.1:50051 -page-size 50 -avatar-id ID [-token T]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
	"github.com/heygen-grpc/heygen-grpc/catalogue"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// avatars answers with fixed responses.
type avatars struct {
	heygenv1.UnimplementedAvatarsServiceServer
	list *heygenv1.ListAvatarsResponse
	get  *heygenv1.GetAvatarResponse
}

// ListAvatars returns the page captured at startup.
func (a *avatars) ListAvatars(context.Context, *heygenv1.ListAvatarsRequest) (*heygenv1.ListAvatarsResponse, error) {
	return a.list, nil
}

// GetAvatar returns the avatar captured at startup.
func (a *avatars) GetAvatar(context.Context, *heygenv1.GetAvatarRequest) (*heygenv1.GetAvatarResponse, error) {
	return a.get, nil
}

// voices answers with a fixed response.
type voices struct {
	heygenv1.UnimplementedVoicesServiceServer
	list *heygenv1.ListVoicesResponse
}

// ListVoices returns the page captured at startup.
func (v *voices) ListVoices(context.Context, *heygenv1.ListVoicesRequest) (*heygenv1.ListVoicesResponse, error) {
	return v.list, nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bareserver: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:50052", "loopback address to serve on")
	from := flag.String("from", "127.0.0.1:50051", "loopback address of the gateway to copy the responses from")
	pageSize := flag.Int("page-size", 50, "page_size of the list requests copied from the gateway")
	avatarID := flag.String("avatar-id", "", "avatar_id of the GetAvatar request copied from the gateway (default: the first listed avatar)")
	token := flag.String("token", "", "bearer token for the gateway, when it requires one")
	wait := flag.Duration("wait", 60*time.Second, "how long to keep trying the gateway at startup")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the serving (from the first call copied to the stop) to this file")
	heapFloor := flag.Int("gc-heap-floor-mib", server.DefaultHeapFloorMiB, "the gateway's -gc-heap-floor-mib: the reference collects garbage as the gateway does")
	flag.Parse()
	if *heapFloor < 0 {
		return fmt.Errorf("invalid -gc-heap-floor-mib %d", *heapFloor)
	}
	defer server.SetHeapFloor(*heapFloor, os.Getenv("GOGC"))()
	for _, a := range []string{*addr, *from} {
		if err := loopback.CheckAddr(a); err != nil {
			return err
		}
	}
	if *pageSize < 1 || *pageSize > 500 {
		return errors.New("-page-size must be between 1 and 500")
	}

	f, err := newFetcher(*from, *token, *wait)
	if err != nil {
		return err
	}
	defer f.close()
	var av avatars
	var vs voices
	listRaw, err := f.fetch("/heygen.v1.AvatarsService/ListAvatars", &heygenv1.ListAvatarsRequest{PageSize: int32(*pageSize)})
	if err != nil {
		return err
	}
	if av.list, err = preEncoded(listRaw, &heygenv1.ListAvatarsResponse{}, func(r *heygenv1.ListAvatarsResponse) {
		for i, a := range r.Avatars {
			r.Avatars[i] = catalogue.PreEncode(a)
		}
	}); err != nil {
		return fmt.Errorf("ListAvatars: %w", err)
	}
	if len(av.list.GetAvatars()) == 0 {
		return fmt.Errorf("the gateway at %s listed no avatars", *from)
	}
	if *avatarID == "" {
		var first heygenv1.ListAvatarsResponse
		if err := proto.Unmarshal(listRaw, &first); err != nil {
			return err
		}
		*avatarID = first.GetAvatars()[0].GetId()
	}
	getRaw, err := f.fetch("/heygen.v1.AvatarsService/GetAvatar", &heygenv1.GetAvatarRequest{AvatarId: *avatarID})
	if err != nil {
		return err
	}
	if av.get, err = preEncoded(getRaw, &heygenv1.GetAvatarResponse{}, func(r *heygenv1.GetAvatarResponse) {
		r.Avatar = catalogue.PreEncode(r.Avatar)
	}); err != nil {
		return fmt.Errorf("GetAvatar: %w", err)
	}
	voicesRaw, err := f.fetch("/heygen.v1.VoicesService/ListVoices", &heygenv1.ListVoicesRequest{PageSize: int32(*pageSize)})
	if err != nil {
		return err
	}
	if vs.list, err = preEncoded(voicesRaw, &heygenv1.ListVoicesResponse{}, func(r *heygenv1.ListVoicesResponse) {
		for i, v := range r.Voices {
			r.Voices[i] = catalogue.PreEncode(v)
		}
	}); err != nil {
		return fmt.Errorf("ListVoices: %w", err)
	}

	gs := grpc.NewServer(server.TransportOptions(server.TransportLimits{})...)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	heygenv1.RegisterAvatarsServiceServer(gs, &av)
	heygenv1.RegisterVoicesServiceServer(gs, &vs)

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	log.Printf("bareserver: on %s, responses byte-identical to the gateway's: ListAvatars %d avatars %d bytes, GetAvatar %d bytes, ListVoices %d voices %d bytes; avatar_id=%s ",
		lis.Addr(), len(av.list.GetAvatars()), len(listRaw), len(getRaw), len(vs.list.GetVoices()), len(voicesRaw), *avatarID)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
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

// preEncoded decodes the gateway's response into msg, applies the
// gateway's encoding tricks (prep) and checks that msg now encodes to
// exactly the gateway's bytes.
func preEncoded[M proto.Message](raw []byte, msg M, prep func(M)) (M, error) {
	if err := proto.Unmarshal(raw, msg); err != nil {
		return msg, err
	}
	prep(msg)
	again, err := proto.Marshal(msg)
	if err != nil {
		return msg, err
	}
	if !bytes.Equal(again, raw) {
		return msg, fmt.Errorf("the reference's response (%d bytes) is not byte-identical to the gateway's (%d bytes)", len(again), len(raw))
	}
	return msg, nil
}

// rawCodec keeps responses as the bytes that arrived.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

type fetcher struct {
	conn  *grpc.ClientConn
	token string
	until time.Time
}

func newFetcher(addr, token string, wait time.Duration) (*fetcher, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &fetcher{conn: conn, token: token, until: time.Now().Add(wait)}, nil
}

func (f *fetcher) close() { _ = f.conn.Close() }

// fetch calls method on the gateway until it answers or the wait is over,
// and returns the response's bytes.
func (f *fetcher) fetch(method string, req proto.Message) ([]byte, error) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if f.token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.token)
		}
		var raw []byte
		err := f.conn.Invoke(ctx, method, req, &raw, grpc.ForceCodecV2(rawCodec{}))
		cancel()
		if err == nil {
			return raw, nil
		}
		if time.Now().After(f.until) {
			return nil, fmt.Errorf("%s on the gateway: %w", method, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
