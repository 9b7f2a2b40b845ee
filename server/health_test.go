package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/types/known/emptypb"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/server"
)

func TestHealthFollowsHeyGen(t *testing.T) {
	// The harness runs the probe (RunBackground). With the catalogue off,
	// AvatarsService is SERVING when HeyGen is reachable and accepts the key.
	h := setup(t, setupOptions{probe: 20 * time.Millisecond, threshold: 3})
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_SERVING)

	watch, err := h.health.Watch(ctx(t), &healthpb.HealthCheckRequest{Service: server.AvatarsServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first = %v, %v", first, err)
	}

	// HeyGen starts rejecting the key: NOT_SERVING at once; "" stays SERVING.
	h.fake.SetAPIKey("some-other-key")
	next, err := watch.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after key rejection = %v, %v; want NOT_SERVING", next, err)
	}
	waitHealth(t, h, "", healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	if !strings.Contains(h.logs.String(), "HeyGen rejects the gateway's API key") {
		t.Error("key rejection was not logged")
	}

	// The key works again: SERVING.
	h.fake.SetAPIKey(canaryKey)
	if next, err = watch.Recv(); err != nil || next.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch after key fix = %v, %v; want SERVING", next, err)
	}

	// HeyGen unreachable: NOT_SERVING only after the threshold.
	h.faults.Inject(faults.Fault{Path: "/v3/users/me", Status: 503})
	if next, err = watch.Recv(); err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch during outage = %v, %v; want NOT_SERVING", next, err)
	}
	if n := strings.Count(h.logs.String(), "could not reach HeyGen"); n < 3 {
		t.Errorf("went NOT_SERVING after %d failed probes, want at least the threshold of 3", n)
	}
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	h.faults.ClearFaults()
	if next, err = watch.Recv(); err != nil || next.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch after outage = %v, %v; want SERVING", next, err)
	}

	// Probes are background only: RPCs do not call /v3/users/me.
	before := h.fake.CountPath("/v3/users/me")
	for range 5 {
		if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if extra := h.fake.CountPath("/v3/users/me") - before; extra > 2 {
		t.Errorf("5 RPCs came with %d probe calls; probes must not run per RPC", extra)
	}
}

func TestHealthListAndShutdown(t *testing.T) {
	h := setup(t, setupOptions{})
	// Health starts NOT_SERVING until there is a reason to serve: here, the
	// first successful probe of HeyGen.
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
	list, err := h.health.List(ctx(t), &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"", server.AvatarsServiceName, server.UpstreamHealthName} {
		if list.GetStatuses()[svc].GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("List: %q is %v, want SERVING", svc, list.GetStatuses()[svc])
		}
	}
	watch, err := h.health.Watch(ctx(t), &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go h.srv.Shutdown(c, 300*time.Millisecond)
	if next, err := watch.Recv(); err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("during shutdown Watch = %v, %v; want NOT_SERVING", next, err)
	}
}

func TestReflection(t *testing.T) {
	for _, on := range []bool{true, false} {
		h := setup(t, setupOptions{reflection: on})
		stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		// With reflection off the server ends the stream at once
		// (UNIMPLEMENTED); a Send after that returns io.EOF, and the
		// status is Recv's, as grpc-go documents.
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if !on {
			if codeOf(err) != codes.Unimplemented {
				t.Fatalf("reflection off: got %v, want UNIMPLEMENTED", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		got := strings.Join(names, ",")
		for _, want := range []string{"heygen.v1.AvatarsService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} {
			if !strings.Contains(got, want) {
				t.Errorf("reflection lists %s, missing %s", got, want)
			}
		}
	}
}

// logLines parses the JSON log output.
func logLines(t *testing.T, h *harness) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func TestOneLogLinePerRPC(t *testing.T) {
	h := setup(t, setupOptions{noKeepAlives: true})
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 503, Times: 1})
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 2}); err != nil {
		t.Fatal(err)
	}
	_, _ = h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "../x"})
	for range 3 {
		if _, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	var rpcLines []map[string]any
	for _, l := range logLines(t, h) {
		if l["msg"] == "finished call" {
			rpcLines = append(rpcLines, l)
			if l["grpc.service"] == "grpc.health.v1.Health" && l["level"] != "DEBUG" {
				t.Errorf("health check logged at %v, want DEBUG", l["level"])
			}
		}
	}
	if len(rpcLines) != 5 {
		t.Fatalf("got %d 'finished call' lines for 5 RPCs", len(rpcLines))
	}
	list := rpcLines[0]
	if list["grpc.method"] != "ListAvatars" || list["grpc.code"] != "OK" || list["level"] != "INFO" ||
		list["heygen.attempts"] != float64(2) || list["grpc.time_ms"] == nil {
		t.Errorf("ListAvatars log line = %v; want method, code OK, heygen.attempts 2, grpc.time_ms", list)
	}
	get := rpcLines[1]
	if get["grpc.method"] != "GetAvatar" || get["grpc.code"] != "InvalidArgument" || get["heygen.attempts"] != float64(0) {
		t.Errorf("GetAvatar log line = %v", get)
	}
	for _, l := range rpcLines {
		for k, v := range l {
			if strings.Contains(k, "content") || strings.Contains(k, "payload") {
				t.Errorf("log line carries a payload field %s=%v", k, v)
			}
		}
	}
}

// panicService is a tiny service registered next to ours, whose handler
// panics, to prove the interceptor chain turns a panic into INTERNAL.
var panicService = grpc.ServiceDesc{
	ServiceName: "test.Panicker",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Panic",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Panicker/Panic"}
			return interceptor(ctx, in, info, func(context.Context, any) (any, error) {
				panic("kaboom: " + canaryKey[:4])
			})
		},
	}},
}

func TestPanicBecomesInternal(t *testing.T) {
	h := setup(t, setupOptions{register: func(s grpc.ServiceRegistrar) { s.RegisterService(&panicService, struct{}{}) }})
	err := h.conn.Invoke(ctx(t), "/test.Panicker/Panic", &emptypb.Empty{}, &emptypb.Empty{})
	st, info, _, _ := statusParts(t, err)
	if st.Code() != codes.Internal || info.GetDomain() != server.GatewayDomain || strings.Contains(st.Message(), "kaboom") {
		t.Fatalf("got %v %q %v, want INTERNAL without the panic value", st.Code(), st.Message(), info)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "panic in RPC handler") || !strings.Contains(logs, "kaboom") || !strings.Contains(logs, "goroutine") {
		t.Error("the panic was not logged with its value and stack")
	}
	// The server still serves.
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1}); err != nil {
		t.Fatalf("after a panic: %v", err)
	}
}
