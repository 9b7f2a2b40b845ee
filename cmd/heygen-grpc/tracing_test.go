package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// collector is a minimal OTLP trace collector that remembers span names.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.names = append(c.names, s.GetName())
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) spanNames() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.names, "\n")
}

func TestTracingExportsOverOTLP(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	addr, stop, done, _ := startRun(t, []string{"-demo", "-catalogue=false", "-otlp-endpoint", lis.Addr().String()}, nil)
	c := heygenv1.NewAvatarsServiceClient(dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: "Zoe_OutdoorPark_20240523"}); err != nil {
		t.Fatal(err)
	}
	stop() // shutdown flushes the batch exporter
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	names := col.spanNames()
	for _, want := range []string{"heygen.v1.AvatarsService/GetAvatar", "HeyGen GET /v3/avatars/looks/{look_id}"} {
		if !strings.Contains(names, want) {
			t.Errorf("no %q span exported; got:\n%s", want, names)
		}
	}
	if strings.Contains(names, "Zoe_OutdoorPark") {
		t.Error("a span name carries an avatar id")
	}
}
