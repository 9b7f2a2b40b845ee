// Command grpcload is a light closed-loop gRPC load generator: -c callers
// over -connections connections call one method as fast as they can,
// either -n calls in all (the measure of server CPU per call: a fixed
// amount of work) or for -duration, after a -warmup; then it reports
// calls per second and latency percentiles (bench/internal/loadstat.Report
// as JSON).
//
//	grpcload -addr 127.0.0.1:50051 -call list -n 40000 -c 8 -connections 4 -warmup 2s
//
// It sends a request encoded once and does not decode responses (it
// checks their size against the first response, which it decodes), so
// the server under test, not the client, is the bottleneck: ghz decodes
// every response into a dynamic message, which for a 50-avatar page costs
// it several times the server's CPU per call. Calls in flight when the
// time is up are waited for and counted: there are no cut-off errors.
//
// With -vs, a second server is measured in the same run, interleaved: each
// gets -n calls, in segments of -segment calls that alternate between the
// two (A B B A A B ...), after each has had its warm-up. Both servers then
// work under the same conditions, seconds apart at most, so the noise of
// a shared machine (other tenants, frequency) falls on both alike; each
// segment's server CPU is read from the threads' run times to the
// nanosecond (procstat.ProcRuntime). The report is -addr's, with -vs's as
// its "versus".
//
//	grpcload -addr 127.0.0.1:50051 -server-pid P1 -vs 127.0.0.1:50052 -vs-pid P2 -call get -n 50000 -segment 5000
//
// With -raw, the calls after the first are made by a raw HTTP/2 client
// (raw.go) that costs a few microseconds of CPU a call where grpc-go's
// costs about as much as the server: for throughput, so that the server
// sets the pace.
//
// Calls: list (AvatarsService/ListAvatars {page_size}), get
// (AvatarsService/GetAvatar {avatar_id}), voices (VoicesService/ListVoices
// {page_size}), health (grpc.health.v1.Health/Check {}). -token sends
// `authorization: Bearer TOKEN` with every call.
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
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loadstat"
	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
	"github.com/heygen-grpc/heygen-grpc/bench/internal/procstat"
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

// call is one method the load can call.
type call struct {
	method string
	req    proto.Message
	resp   func() proto.Message
	check  func(proto.Message) error
}

func calls(pageSize int, avatarID string) map[string]call {
	return map[string]call{
		"list": {"/heygen.v1.AvatarsService/ListAvatars", &heygenv1.ListAvatarsRequest{PageSize: int32(pageSize)}, //nolint:gosec // G115: checked <= 500
			func() proto.Message { return &heygenv1.ListAvatarsResponse{} },
			func(m proto.Message) error {
				if n := len(m.(*heygenv1.ListAvatarsResponse).GetAvatars()); n != pageSize {
					return fmt.Errorf("%d avatars, want %d", n, pageSize)
				}
				return nil
			}},
		"get": {"/heygen.v1.AvatarsService/GetAvatar", &heygenv1.GetAvatarRequest{AvatarId: avatarID},
			func() proto.Message { return &heygenv1.GetAvatarResponse{} },
			func(m proto.Message) error {
				if got := m.(*heygenv1.GetAvatarResponse).GetAvatar().GetId(); got != avatarID {
					return fmt.Errorf("avatar %q, want %q", got, avatarID)
				}
				return nil
			}},
		"voices": {"/heygen.v1.VoicesService/ListVoices", &heygenv1.ListVoicesRequest{PageSize: int32(pageSize)}, //nolint:gosec // G115: checked <= 500
			func() proto.Message { return &heygenv1.ListVoicesResponse{} },
			func(m proto.Message) error {
				if n := len(m.(*heygenv1.ListVoicesResponse).GetVoices()); n == 0 {
					return errors.New("no voices")
				}
				return nil
			}},
		"health": {"/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{},
			func() proto.Message { return &healthpb.HealthCheckResponse{} },
			func(m proto.Message) error {
				if st := m.(*healthpb.HealthCheckResponse).GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
					return fmt.Errorf("status %s", st)
				}
				return nil
			}},
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "grpcload: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "", "loopback host:port of the server (required)")
	name := flag.String("call", "list", "list, get, voices or health")
	pageSize := flag.Int("page-size", 50, "page_size of the list calls")
	avatarID := flag.String("avatar-id", "", "avatar_id of the get call")
	token := flag.String("token", "", "send `authorization: Bearer TOKEN`")
	c := flag.Int("c", 8, "concurrent callers")
	conns := flag.Int("connections", 4, "connections the callers are spread over")
	n := flag.Int("n", 0, "measured calls in all (0: measure for -duration instead)")
	warmup := flag.Duration("warmup", 2*time.Second, "load before measuring, not reported")
	duration := flag.Duration("duration", 12*time.Second, "measured load when -n is 0 (at most 5m)")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of one call")
	out := flag.String("o", "", "write the JSON report here instead of stdout")
	serverPID := flag.Int("server-pid", 0, "report this process's CPU time (and the machine's) over the measured calls")
	vs := flag.String("vs", "", "a second server (loopback host:port) measured interleaved with -addr, -n calls each (needs -n, -server-pid and -vs-pid)")
	vsPID := flag.Int("vs-pid", 0, "pid of the -vs server")
	segment := flag.Int("segment", 2000, "calls per segment with -vs")
	raw := flag.Bool("raw", false, "make the measured calls with the raw HTTP/2 client (a few µs of client CPU a call) instead of grpc-go's")
	flag.Parse()

	if err := loopback.CheckAddr(*addr); err != nil {
		return err
	}
	if *c < 1 || *c > 1000 || *conns < 1 || *conns > *c || *duration <= 0 || *duration > 5*time.Minute ||
		*pageSize < 1 || *pageSize > 500 || *n < 0 || *n > 10_000_000 {
		return errors.New("want 1 <= -c <= 1000, 1 <= -connections <= -c, 0 < -duration <= 5m, 1 <= -page-size <= 500, 0 <= -n <= 10M")
	}
	if *vs != "" {
		if err := loopback.CheckAddr(*vs); err != nil {
			return err
		}
		if *n == 0 || *serverPID <= 0 || *vsPID <= 0 || *segment < 1 || *segment > *n {
			return errors.New("-vs needs -n, -server-pid and -vs-pid, and 1 <= -segment <= -n")
		}
	}
	cl, ok := calls(*pageSize, *avatarID)[*name]
	if !ok {
		return fmt.Errorf("unknown -call %q: want list, get, voices or health", *name)
	}
	base := context.Background()
	if *token != "" {
		base = metadata.AppendToOutgoingContext(base, "authorization", "Bearer "+*token)
	}
	reqBytes, err := proto.Marshal(cl.req)
	if err != nil {
		return err
	}

	// dial connects to a server and makes its first call, decoded and
	// checked; later calls are checked only by size.
	dial := func(addr string, pid int) (*target, error) {
		t := &target{addr: addr, pid: pid, conns: make([]*grpc.ClientConn, *conns)}
		for i := range t.conns {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				// Windows large enough that a response never waits for a
				// window update (grpc-go already shares one write buffer
				// between a connection's streams): a cheaper client, so
				// that the server sets the pace.
				grpc.WithInitialWindowSize(1<<24), grpc.WithInitialConnWindowSize(1<<24))
			if err != nil {
				return nil, err
			}
			t.conns[i] = conn
		}
		ctx, cancel := context.WithTimeout(base, *timeout)
		defer cancel()
		first := cl.resp()
		if err := t.conns[0].Invoke(ctx, cl.method, cl.req, first); err != nil {
			t.close()
			return nil, fmt.Errorf("%s: first %s: %w", addr, cl.method, err)
		}
		if err := cl.check(first); err != nil {
			t.close()
			return nil, fmt.Errorf("%s: first %s: %w", addr, cl.method, err)
		}
		t.size = proto.Size(first)
		t.rec = loadstat.NewRecorder(max(*n, 1<<16))
		if *raw {
			call := rawRequest(addr, cl.method, *token, *timeout, reqBytes)
			for range *conns {
				rc, err := dialRaw(addr, call, *timeout, rawWindow)
				if err != nil {
					t.close()
					return nil, err
				}
				t.raw = append(t.raw, rc)
			}
		}
		return t, nil
	}

	invoke := func(ctx context.Context, t *target, conn *grpc.ClientConn) (int64, error) {
		var got int
		if err := conn.Invoke(ctx, cl.method, &reqBytes, &got, grpc.ForceCodecV2(rawCodec{})); err != nil {
			return 0, errors.New(status.Code(err).String())
		}
		if got != t.size {
			return int64(got), fmt.Errorf("response of %d bytes, want %d", got, t.size)
		}
		return int64(got), nil
	}

	// phase runs the callers against t until d passes (d > 0) or total
	// calls are made (total > 0), recording them when rec is set.
	phase := func(t *target, d time.Duration, total int64, rec *loadstat.Recorder) (time.Duration, error) {
		var stop atomic.Bool
		var left atomic.Int64
		left.Store(total)
		var wg sync.WaitGroup
		start := time.Now()
		if d > 0 {
			time.AfterFunc(d, func() { stop.Store(true) })
		}
		if t.raw != nil {
			take := func() bool { return !stop.Load() && (total == 0 || left.Add(-1) >= 0) }
			err := rawPhase(t.raw, *c, take, rec, t.size)
			return time.Since(start), err
		}
		for i := range *c {
			conn := t.conns[i%len(t.conns)]
			wg.Go(func() {
				dl := renewedDeadline{base: base, timeout: *timeout}
				defer dl.stop()
				for !stop.Load() && (total == 0 || left.Add(-1) >= 0) {
					t0 := time.Now()
					n, err := invoke(dl.at(t0), t, conn)
					if rec != nil {
						rec.Add(time.Since(t0), n, err)
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start), nil
	}

	a, err := dial(*addr, *serverPID)
	if err != nil {
		return err
	}
	defer a.close()
	if *vs == "" {
		if *warmup > 0 {
			if _, err := phase(a, *warmup, 0, nil); err != nil {
				return err
			}
		}
		s0, err := procstat.Take(*serverPID)
		if err != nil {
			return err
		}
		var elapsed time.Duration
		if *n > 0 {
			elapsed, err = phase(a, 0, int64(*n), a.rec)
		} else {
			elapsed, err = phase(a, *duration, 0, a.rec)
		}
		if err != nil {
			return err
		}
		s1, err := procstat.Take(*serverPID)
		if err != nil {
			return err
		}
		rep := a.rec.Report(*addr+" "+cl.method, *c, elapsed)
		usage := procstat.Since(s0, s1)
		rep.CPU = &usage
		return finish(rep, *out)
	}

	b, err := dial(*vs, *vsPID)
	if err != nil {
		return err
	}
	defer b.close()
	if b.size != a.size {
		return fmt.Errorf("%s answers %d bytes and %s %d: the two servers must send the same response", *addr, a.size, *vs, b.size)
	}
	if *warmup > 0 {
		for _, t := range []*target{a, b} {
			if _, err := phase(t, *warmup, 0, nil); err != nil {
				return err
			}
		}
	}
	// A B B A A B ...: each server goes first in half of the pairs.
	segments := 0
	for i := 0; a.done < *n || b.done < *n; i++ {
		t := a
		if (i+1)/2%2 == 1 {
			t = b
		}
		if t.done >= *n {
			continue
		}
		k := min(*segment, *n-t.done)
		var perr error
		if err := t.measure(func() {
			var d time.Duration
			d, perr = phase(t, 0, int64(k), t.rec)
			t.elapsed += d
		}); err != nil {
			return err
		}
		if perr != nil {
			return perr
		}
		t.done += k
		segments++
	}
	rep := a.report(cl.method, *c)
	rep.Segments = segments
	vrep := b.report(cl.method, *c)
	vrep.Segments = segments
	rep.Versus = &vrep
	return finish(rep, *out)
}

// target is a server under load, with its connections and what was
// measured of it.
type target struct {
	addr    string
	pid     int
	conns   []*grpc.ClientConn
	raw     []*rawConn // -raw: the connections of the measured calls
	size    int        // the response's size
	rec     *loadstat.Recorder
	done    int // measured calls made
	elapsed time.Duration
	usage   procstat.Usage
}

func (t *target) close() {
	for _, c := range t.conns {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, rc := range t.raw {
		rc.close()
	}
}

// measure runs f and adds what it used to t's usage, the server's CPU
// from its threads' run times. The server's CPU is read once it has gone
// idle after the calls (settle), so that what the calls left it to do (the
// end of a garbage collection, sweeping) is counted to it and not lost
// while the other server is loaded.
func (t *target) measure(f func()) error {
	r0, err := procstat.ProcRuntime(t.pid)
	if err != nil {
		return err
	}
	s0, err := procstat.Take(0)
	if err != nil {
		return err
	}
	f()
	s1, err := procstat.Take(0)
	if err != nil {
		return err
	}
	r1, err := settle(t.pid)
	if err != nil {
		return err
	}
	u := procstat.Since(s0, s1)
	t.usage.WallS += u.WallS
	t.usage.ClientS += u.ClientS
	t.usage.MachineS += u.MachineS
	t.usage.ServerS += (r1 - r0).Seconds()
	return nil
}

// settle waits until pid has run less than 0.1 ms in 5 ms (idle but for
// its timers), for at most 200 ms, and returns its threads' run time then.
func settle(pid int) (time.Duration, error) {
	r, err := procstat.ProcRuntime(pid)
	for deadline := time.Now().Add(200 * time.Millisecond); err == nil && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		var next time.Duration
		if next, err = procstat.ProcRuntime(pid); err == nil {
			idle := next-r < 100*time.Microsecond
			r = next
			if idle {
				break
			}
		}
	}
	return r, err
}

func (t *target) report(method string, c int) loadstat.Report {
	rep := t.rec.Report(t.addr+" "+method, c, t.elapsed)
	usage := t.usage
	rep.CPU = &usage
	return rep
}

// finish writes the report; a run in which no call succeeded fails.
func finish(rep loadstat.Report, out string) error {
	if err := loadstat.Write("grpcload", rep, out); err != nil {
		return err
	}
	if rep.OK == 0 || (rep.Versus != nil && rep.Versus.OK == 0) {
		return errors.New("no call succeeded")
	}
	return nil
}

// renewedDeadline is a caller's context for its calls: it expires at most
// timeout after a call starts, and is renewed only once half of timeout
// has gone, so that a call costs no timer of its own (the server still
// gets a deadline with every call, between timeout/2 and timeout).
type renewedDeadline struct {
	base     context.Context
	timeout  time.Duration
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// at returns the context for a call starting at now.
func (d *renewedDeadline) at(now time.Time) context.Context {
	if d.ctx == nil || d.deadline.Sub(now) < d.timeout/2 {
		d.stop()
		d.deadline = now.Add(d.timeout)
		d.ctx, d.cancel = context.WithDeadline(d.base, d.deadline)
	}
	return d.ctx
}

func (d *renewedDeadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}
