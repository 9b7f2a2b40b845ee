package server_test

// Tests of promises that hostile callers and a broken HeyGen put to the
// test: bounds before authentication, the key and upstream addresses in
// errors, what the health service means, and RPCs that never reach an
// interceptor.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// TestKeyEchoedByHeyGenReachesNoCaller: HeyGen (or a proxy) echoing the
// key in every field and header it can, and a transport error whose text
// is the key: no status, detail or log line carries it, and no address.
func TestKeyEchoedByHeyGenReachesNoCaller(t *testing.T) {
	h := setup(t, setupOptions{})
	for _, f := range []faults.Fault{
		faults.EchoKey(400), faults.EchoKey(429), faults.EchoKey(503), faults.EchoKey(200),
		{Raw: faults.APIKeyPlaceholder + "\r\n\r\n"},
	} {
		f.Path = "/v3/avatars/looks/*"
		h.faults.ClearFaults()
		h.faults.Inject(f)
		_, err := h.avatars.GetAvatar(ctx(t), &heygenv1.GetAvatarRequest{AvatarId: "Abigail_expressive_2024112501"})
		st, info, _, _ := statusParts(t, err) // fails on the canary
		text := st.Message() + " " + info.String()
		if strings.Contains(text, "127.0.0.1") || strings.Contains(text, h.fake.URL()) {
			t.Errorf("status %v carries the upstream address: %s", st.Code(), text)
		}
		if f.Raw != "" && info.GetMetadata()["cause"] != heygen.CauseProtocol {
			t.Errorf("a malformed HTTP response: cause %q, want %q", info.GetMetadata()["cause"], heygen.CauseProtocol)
		}
	}
	if !strings.Contains(h.logs.String(), heygen.Redacted) {
		t.Error("no log line shows a redacted key: the echo was not exercised")
	}
}

// TestUnreachableHeyGenSaysWhy: with nothing listening at HeyGen's
// address, callers learn the classified cause (never the address), first
// from HeyGen's failures and then from the open circuit breaker.
func TestUnreachableHeyGenSaysWhy(t *testing.T) {
	h := setup(t, setupOptions{breaker: &heygen.BreakerPolicy{ConsecutiveFailures: 2, OpenFor: time.Minute},
		retry: heygen.RetryPolicy{MaxAttempts: 2}, noBackground: true}) // no probe: only these calls count
	_ = h.fake.Close() // nothing listens there now
	req := &heygenv1.GetAvatarRequest{AvatarId: "Abigail_expressive_2024112501"}
	for i := range 2 {
		_, err := h.avatars.GetAvatar(ctx(t), req)
		st, info, _, _ := statusParts(t, err)
		if st.Code() != codes.Unavailable || info.GetReason() != "HEYGEN_UNAVAILABLE" || info.GetMetadata()["cause"] != heygen.CauseRefused {
			t.Fatalf("call %d: %v %v, want UNAVAILABLE HEYGEN_UNAVAILABLE with cause %q", i+1, st.Code(), info, heygen.CauseRefused)
		}
		if !strings.Contains(st.Message(), heygen.CauseRefused) || strings.Contains(st.Message(), "127.0.0.1") {
			t.Fatalf("call %d: message %q must say %q and name no address", i+1, st.Message(), heygen.CauseRefused)
		}
	}
	// Two failed calls (four attempts) open a breaker of two: calls, not attempts.
	_, err := h.avatars.GetAvatar(ctx(t), req)
	st, info, _, retry := statusParts(t, err)
	if st.Code() != codes.Unavailable || info.GetReason() != server.ReasonCircuitOpen || info.GetMetadata()["cause"] != heygen.CauseRefused || retry == nil {
		t.Fatalf("with the breaker open: %v %v (retry %v), want CIRCUIT_OPEN naming %q with RetryInfo", st.Code(), info, retry, heygen.CauseRefused)
	}
	if !strings.Contains(st.Message(), heygen.CauseRefused) {
		t.Fatalf("CIRCUIT_OPEN message %q does not say what the failures were", st.Message())
	}
}

// TestColdReplicaIsNotReadyAndSaysWhy: a replica that cannot crawl is not
// ready, its callers learn HeyGen's error with when the next crawl runs,
// and HeyGen's own state is reported apart.
func TestColdReplicaIsNotReadyAndSaysWhy(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true, threshold: 1, probe: 50 * time.Millisecond, retry: heygen.RetryPolicy{MaxAttempts: 1}})
	_ = h.fake.Close()
	_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{})
	st, info, _, retry := statusParts(t, err)
	if st.Code() != codes.Unavailable || info.GetMetadata()["cause"] != heygen.CauseRefused || retry == nil {
		t.Fatalf("cold ListAvatars: %v %v (retry %v), want UNAVAILABLE naming %q with RetryInfo", st.Code(), info, retry, heygen.CauseRefused)
	}
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, h, server.CatalogueHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, h, "", healthpb.HealthCheckResponse_SERVING)
}

// TestReplicaWithASnapshotStaysReadyWhileHeyGenIsDown: every replica
// failing readiness at once would turn a HeyGen outage into ours.
func TestReplicaWithASnapshotStaysReadyWhileHeyGenIsDown(t *testing.T) {
	h := setup(t, setupOptions{withCatalogue: true, threshold: 1, probe: 50 * time.Millisecond})
	if err := h.catalog.Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_SERVING)
	_ = h.fake.Close()
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
	if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 3}); err != nil {
		t.Fatalf("ListAvatars from the snapshot while HeyGen is down: %v", err)
	}
}

// TestPassThroughReadinessFollowsHeyGen: without a catalogue a replica can
// answer only while HeyGen can.
func TestPassThroughReadinessFollowsHeyGen(t *testing.T) {
	h := setup(t, setupOptions{threshold: 1, probe: 50 * time.Millisecond})
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
	h.fake.SetAPIKey("another-key")
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
	h.fake.SetAPIKey(canaryKey)
	waitHealth(t, h, server.AvatarsServiceName, healthpb.HealthCheckResponse_SERVING)
}

// TestProbeNowProbesAtOnce: after the key changes the gateway need not
// wait for the next interval to learn whether HeyGen accepts it.
func TestProbeNowProbesAtOnce(t *testing.T) {
	h := setup(t, setupOptions{threshold: 1, probe: time.Hour})
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_SERVING)
	h.fake.SetAPIKey("another-key")
	h.srv.ProbeNow()
	waitHealth(t, h, server.UpstreamHealthName, healthpb.HealthCheckResponse_NOT_SERVING)
}

// rawCodec sends bytes as they are, to send what no protobuf encoder would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *(v.(*[]byte)) = data; return nil }
func (rawCodec) Name() string                       { return "proto" }

// TestRPCsNoInterceptorSeesAreLoggedAndCounted: a request that does not
// decode, and a call whose deadline passes while HeyGen is slow.
func TestRPCsNoInterceptorSeesAreLoggedAndCounted(t *testing.T) {
	m := server.NewMetrics()
	h := setup(t, setupOptions{metrics: m, retry: heygen.RetryPolicy{MaxAttempts: 1}})
	var out []byte
	err := h.conn.Invoke(ctx(t), "/heygen.v1.AvatarsService/GetAvatar", []byte{0xff, 0xff, 0xff}, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.Internal {
		t.Fatalf("an undecodable request: %v, want INTERNAL", err)
	}
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks/*", Delay: 2 * time.Second})
	dctx, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	_, err = h.avatars.GetAvatar(dctx, &heygenv1.GetAvatarRequest{AvatarId: "Abigail_expressive_2024112501"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a call past its deadline: %v", err)
	}
	// A call's end may be recorded a moment after its status is sent.
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="Internal",grpc_method="GetAvatar",grpc_service="heygen.v1.AvatarsService",grpc_type="unary"} 1`,
		`grpc_server_handled_total{grpc_code="DeadlineExceeded",grpc_method="GetAvatar",grpc_service="heygen.v1.AvatarsService",grpc_type="unary"} 1`,
	} {
		waitFor(t, func() bool { return strings.Contains(scrape(t, m), want) }, "the metric "+want)
	}
	if strings.Contains(scrape(t, m), `grpc_code="Canceled"`) {
		t.Error("a call past its deadline was counted as Canceled")
	}
	waitFor(t, func() bool {
		logs := h.logs.String()
		return strings.Contains(logs, `"msg":"RPC failed before reaching the gateway's handlers"`) &&
			strings.Contains(logs, `"grpc.code":"Internal"`) && strings.Contains(logs, `"grpc.code":"DeadlineExceeded"`)
	}, "the undecodable request logged as failing before the handlers, and the late call logged as DeadlineExceeded")
	if strings.Contains(h.logs.String(), `"grpc.code":"Canceled"`) {
		t.Error("a call past its deadline was logged as Canceled")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// silentStream opens a GetAvatar stream that never sends its request. It
// carries no deadline (that is the point); the test's end cancels it.
func silentStream(t *testing.T, conn *grpc.ClientConn) grpc.ClientStream {
	t.Helper()
	sctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := conn.NewStream(sctx, &grpc.StreamDesc{ClientStreams: true}, "/heygen.v1.AvatarsService/GetAvatar")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStreamsThatNeverSendGetTheDefaultDeadline: a stream without a
// deadline that never sends its message holds nothing for ever.
func TestStreamsThatNeverSendGetTheDefaultDeadline(t *testing.T) {
	h := setup(t, setupOptions{defaultTimeout: 300 * time.Millisecond})
	s := silentStream(t, h.conn)
	ended := make(chan error, 1)
	go func() { ended <- s.RecvMsg(&heygenv1.GetAvatarResponse{}) }()
	select {
	case err := <-ended:
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("a stream that never sends: %v, want DEADLINE_EXCEEDED", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server still holds a stream that never sent its request, 5s after the 300ms default deadline")
	}
}

// TestStreamBoundsRefuseTheExcess: past the bound on streams (and apart,
// on health Watch streams) new streams get RESOURCE_EXHAUSTED at once,
// health checks still pass, and authenticated calls resume when streams end.
func TestStreamBoundsRefuseTheExcess(t *testing.T) {
	h := setup(t, setupOptions{limits: server.TransportLimits{MaxStreams: 4, MaxWatchStreams: 2}, defaultTimeout: time.Minute})
	var silent []grpc.ClientStream
	for range 4 {
		silent = append(silent, silentStream(t, h.conn))
	}
	waitFor(t, func() bool {
		_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1})
		return status.Code(err) == codes.ResourceExhausted
	}, "a call past the stream bound to be refused")
	_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1})
	st, info, _, _ := statusParts(t, err)
	if info.GetReason() != server.ReasonOverloaded || info.GetMetadata()["bound"] != "streams" {
		t.Fatalf("past the stream bound: %v %v, want GATEWAY_OVERLOADED naming the streams bound", st.Code(), info)
	}
	if _, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health Check past the stream bound: %v (health has a reserve)", err)
	}
	for i := range 3 {
		w, err := h.health.Watch(ctx(t), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Recv()
		switch {
		case i < 2 && err != nil:
			t.Fatalf("Watch %d within the bound: %v", i+1, err)
		case i == 2 && status.Code(err) != codes.ResourceExhausted:
			t.Fatalf("Watch past the bound: %v, want RESOURCE_EXHAUSTED", err)
		}
	}
	for _, s := range silent {
		_ = s.CloseSend()
	}
	h2 := setup(t, setupOptions{limits: server.TransportLimits{MaxStreams: 4}, defaultTimeout: 200 * time.Millisecond})
	for range 4 {
		silent = append(silent, silentStream(t, h2.conn))
	}
	waitFor(t, func() bool {
		_, err := h2.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1})
		return err == nil
	}, "calls to be served again once the silent streams hit their default deadline")
}

// TestStreamPlacesAreGivenBack: every way a stream can end gives its place
// in the tap's bounds back, exactly once: calls that reach their handler
// (released as the handler returns), calls that never do (a request that
// does not decode), calls the caller cancels while the handler runs, and
// health checks and Watch streams. Far more calls than the bounds hold
// pass one after another; a place kept or given back twice would show as
// a refusal here, or as calls past the bound being let in.
func TestStreamPlacesAreGivenBack(t *testing.T) {
	h := setup(t, setupOptions{limits: server.TransportLimits{MaxStreams: 3, MaxWatchStreams: 2}, defaultTimeout: time.Minute})
	refused := func(err error) bool { return status.Code(err) == codes.ResourceExhausted }
	for i := range 30 {
		if _, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1}); err != nil {
			t.Fatalf("call %d of 30 through a bound of 3: %v", i+1, err)
		}
	}
	// Calls without a deadline get the default one, whose context the
	// response is written under: their places go back when the stream ends.
	for i := range 30 {
		var resp *heygenv1.ListAvatarsResponse
		waitFor(t, func() bool {
			r, err := h.avatars.ListAvatars(context.Background(), &heygenv1.ListAvatarsRequest{PageSize: 50})
			if err != nil && !refused(err) {
				t.Fatalf("call %d without a deadline: %v", i+1, err)
			}
			resp = r
			return err == nil
		}, fmt.Sprintf("call %d of 30 without a deadline through a bound of 3", i+1))
		if len(resp.GetAvatars()) == 0 {
			t.Fatalf("call %d without a deadline: an empty page", i+1)
		}
	}
	for i := range 300 { // the open services' bound is 256
		if _, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("health check %d of 300: %v", i+1, err)
		}
	}
	// Undecodable requests give their places back too. grpc-go (1.85)
	// writes their INTERNAL status from inside the handler, as the request
	// fails to decode, so the client can send the next one before the
	// handler has returned and given its place back: a refusal in that
	// window is transient, as above (seen under -race with the rest of the
	// suite running: held_by showed 3 such calls).
	for i := range 10 {
		waitFor(t, func() bool {
			var out []byte
			err := h.conn.Invoke(ctx(t), "/heygen.v1.AvatarsService/GetAvatar", []byte{0xff, 0xff, 0xff}, &out, grpc.ForceCodec(rawCodec{}))
			if status.Code(err) != codes.Internal && !refused(err) {
				t.Fatalf("undecodable request %d: %v, want INTERNAL; the gateway's refusals:\n%s", i+1, err, refusalLines(h.logs.String()))
			}
			return status.Code(err) == codes.Internal
		}, fmt.Sprintf("undecodable request %d of 10 through a bound of 3", i+1))
	}
	// Calls in an encoding the gateway cannot decompress end before any
	// handler runs: the sweeper gives their places back.
	gz, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithCompressor(grpc.NewGZIPCompressor())) //nolint:staticcheck // SA1019: the legacy compressor sends gzip without registering it, so the server has no decompressor for it
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gz.Close() }()
	unimplemented := 0
	for i := range 20 {
		_, err := heygenv1.NewAvatarsServiceClient(gz).ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1})
		switch {
		case status.Code(err) == codes.Unimplemented:
			unimplemented++
		case !refused(err): // the bound is full of them until a sweep
			t.Fatalf("call %d in an encoding the gateway cannot decompress: %v, want UNIMPLEMENTED", i+1, err)
		}
	}
	if unimplemented < 3 {
		t.Fatalf("%d of 20 calls in an encoding the gateway cannot decompress reached grpc-go's check", unimplemented)
	}
	waitFor(t, func() bool {
		_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1})
		return err == nil
	}, "calls to be admitted once the places of streams no handler saw were swept")
	// Calls cancelled while HeyGen is slow.
	h.faults.Inject(faults.Fault{Path: "/v3/avatars/looks/*", Delay: 2 * time.Second})
	for i := range 6 {
		cctx, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
		_, err := h.avatars.GetAvatar(cctx, &heygenv1.GetAvatarRequest{AvatarId: fmt.Sprintf("slow_%d", i)})
		cancel()
		if err == nil || refused(err) {
			t.Fatalf("slow call %d: %v, want its deadline", i+1, err)
		}
	}
	waitFor(t, func() bool {
		_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1})
		return err == nil
	}, "calls to be admitted once the cancelled ones' handlers returned")
	for i := range 6 {
		waitFor(t, func() bool {
			wctx, cancel := context.WithCancel(ctx(t))
			defer cancel() // the stream ends
			w, err := h.health.Watch(wctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			return err == nil
		}, fmt.Sprintf("Watch stream %d of 6 through a bound of 2", i+1))
	}
	// Given back exactly once: the bound still holds.
	var silent []grpc.ClientStream
	for range 3 {
		silent = append(silent, silentStream(t, h.conn))
	}
	// The refusal's log line (one a second) says what holds the places.
	const holders = `"held_by":"/heygen.v1.AvatarsService/GetAvatar: 3 running, 0 ended awaiting the sweeper"`
	waitFor(t, func() bool {
		_, err := h.avatars.ListAvatars(ctx(t), &heygenv1.ListAvatarsRequest{PageSize: 1})
		if err != nil && !refused(err) {
			t.Fatalf("a call past the bound of 3: %v, want RESOURCE_EXHAUSTED", err)
		}
		return refused(err) && strings.Contains(h.logs.String(), holders)
	}, "a call past the bound of 3 to be refused while 3 streams are open, and its log line to name them")
	for _, s := range silent {
		_ = s.CloseSend()
	}
}

// TestConnectionBound: past it a new connection is closed at once, and
// freeing one lets the next in.
func TestConnectionBound(t *testing.T) {
	h := setup(t, setupOptions{limits: server.TransportLimits{MaxConnections: 2}})
	// The harness's own connection is one; open one more and use it.
	c2, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(c2).Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if _, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	c3, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c3.Close() }()
	sctx, cancel := context.WithTimeout(ctx(t), time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(c3).Check(sctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third connection: %v, want it refused", err)
	}
	_ = c2.Close()
	waitFor(t, func() bool {
		cctx, cancel := context.WithTimeout(ctx(t), 500*time.Millisecond)
		defer cancel()
		_, err := healthpb.NewHealthClient(c3).Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		return err == nil
	}, "the third connection to get in once the second closed")
}

// TestBearerSchemeIsChecked: a valid token under another scheme is
// refused; the scheme's case does not matter (RFC 7235).
func TestBearerSchemeIsChecked(t *testing.T) {
	token, hash, err := server.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	store := server.NewTokenStore()
	if err := store.Apply([]byte("svc: " + hash + "\n")); err != nil {
		t.Fatal(err)
	}
	h := setup(t, setupOptions{auth: &server.Authenticator{Tokens: store}})
	call := func(value string) error {
		c := metadata.AppendToOutgoingContext(ctx(t), "authorization", value)
		_, err := h.avatars.ListAvatars(c, &heygenv1.ListAvatarsRequest{PageSize: 1})
		return err
	}
	for _, v := range []string{"Basic " + token, "Token " + token, token, "Bearer" + token, "Bearer  "} {
		if err := call(v); status.Code(err) != codes.Unauthenticated {
			t.Errorf("authorization %q: %v, want UNAUTHENTICATED", strings.Replace(v, token, "<valid token>", 1), err)
		}
	}
	for _, v := range []string{"Bearer " + token, "bearer " + token, "BEARER " + token} {
		if err := call(v); err != nil {
			t.Errorf("authorization %q: %v, want OK", strings.Replace(v, token, "<valid token>", 1), err)
		}
	}
}

// TestKeepaliveAllowsPingsEveryTenSeconds: an idle Watch stream whose
// client pings every 10 s (the most often grpc-go allows, and what mesh
// sidecars do) is not cut with GOAWAY too_many_pings. It takes 45 s.
func TestKeepaliveAllowsPingsEveryTenSeconds(t *testing.T) {
	t.Parallel()
	h := setup(t, setupOptions{})
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecureCreds()), grpc.WithKeepaliveParams(keepaliveClient(10*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := w.Recv()
		ended <- err
	}()
	select {
	case err := <-ended:
		t.Fatalf("the idle Watch stream ended after pings every 10s: %v", err)
	case <-time.After(45 * time.Second):
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("the connection is unusable after 45s of pings: %v", err)
	}
	if errors.Is(wctx.Err(), context.Canceled) {
		t.Fatal("unreachable")
	}
}

// refusalLines are the gateway's log lines about refused streams.
func refusalLines(logs string) string {
	var out []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "refused a new stream") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
