package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loadstat"
	"github.com/heygen-grpc/heygen-grpc/bench/internal/procstat"
	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// cpuPart measures the server CPU per call of every RPC on the gateway
// and on the reference, in both configurations, in alternating order.
func (r *runner) cpuPart() error {
	for _, config := range []string{"demo", "production"} {
		if err := r.cpuConfig(config); err != nil {
			return fmt.Errorf("%s: %w", config, err)
		}
		r.ps.stopAll()
	}
	return nil
}

func (r *runner) cpuConfig(config string) error {
	var f *fake
	var err error
	if config == "production" {
		if f, err = r.startFake("fake-cpu", benchGroups, benchLooks, benchVoices, 0); err != nil {
			return err
		}
	}
	logf("%s: starting the gateway and the reference", config)
	gw, err := r.startGateway("gw-"+config, config, f)
	if err != nil {
		return err
	}
	if err := waitHealth(gw.addr, "heygen-grpc.catalogue", 2*time.Minute, gw.proc); err != nil {
		return err
	}
	refAddr, err := freeAddr()
	if err != nil {
		return err
	}
	ref, err := r.ps.start(r.tmp, "ref-"+config, r.place.server, []string{filepath.Join(r.bin, "bareserver"),
		"-addr", refAddr, "-from", gw.addr, "-page-size", strconv.Itoa(pageSize), "-token", gw.token}, nil)
	if err != nil {
		return err
	}
	if err := waitHealth(refAddr, "", time.Minute, ref); err != nil {
		return err
	}
	line := strings.TrimSpace(ref.waitLog("bareserver:", 5*time.Second))
	if i := strings.Index(line, "bareserver:"); i >= 0 {
		line = line[i:]
	}
	r.res.Reference = append(r.res.Reference, config+": "+line)
	avatarID := between(line, "avatar_id=", " ")
	if avatarID == "" {
		// The reference copied GetAvatar for the first listed avatar: ask it.
		avatarID, err = firstAvatar(gw.addr, gw.token)
		if err != nil {
			return err
		}
	}
	servers := map[string]cpuServer{"gateway": {gw.addr, gw.pid()}, "reference": {refAddr, ref.pid()}}
	// In demo, a second gateway without the heap floor, measured against
	// the first on GetAvatar in every round.
	var noFloor *gateway
	if config == "demo" {
		if noFloor, err = r.startGateway("gw-demo-nofloor", config, f, "-gc-heap-floor-mib", "0"); err != nil {
			return err
		}
		if err := waitHealth(noFloor.addr, "heygen-grpc.catalogue", 2*time.Minute, noFloor.proc); err != nil {
			return err
		}
		servers[noHeapFloor] = cpuServer{noFloor.addr, noFloor.pid()}
	}
	// In production, a second gateway whose log is written straight to a
	// file, measured against the first (whose log goes into a pipe, as a
	// container's does) on GetAvatar in every round.
	var fileLog *gateway
	if config == "production" {
		if fileLog, err = r.startGatewayLogging("gw-production-logfile", config, f, true); err != nil {
			return err
		}
		if err := waitHealth(fileLog.addr, "heygen-grpc.catalogue", 2*time.Minute, fileLog.proc); err != nil {
			return err
		}
		servers[logToFile] = cpuServer{fileLog.addr, fileLog.pid()}
	}
	cpuLoad := loadShape{callers: r.o.concurrency, connections: r.o.connections}
	for round := 1; round <= r.o.rounds; round++ {
		for _, rpc := range rpcs {
			runs, err := r.interleaved(config, rpc.key, rpc.name, round, "gateway", "reference", servers, avatarID, gw.token, cpuLoad)
			if err != nil {
				return err
			}
			r.res.CPU = append(r.res.CPU, runs...)
		}
		if noFloor != nil {
			runs, err := r.interleaved(config, "get", "GetAvatar", round, "gateway", noHeapFloor, servers, avatarID, gw.token, cpuLoad)
			if err != nil {
				return err
			}
			r.res.HeapFloor = append(r.res.HeapFloor, runs...)
		}
		if fileLog != nil {
			runs, err := r.interleaved(config, "get", "GetAvatar", round, "gateway", logToFile, servers, avatarID, gw.token, cpuLoad)
			if err != nil {
				return err
			}
			r.res.LogFile = append(r.res.LogFile, runs...)
		}
		// Throughput: ListAvatars with enough callers in flight that the
		// server, not the round trip, sets the pace.
		runs, err := r.interleaved(config, "list", "ListAvatars (throughput)", round, "gateway", "reference", servers, avatarID, gw.token,
			loadShape{callers: r.o.throughputCallers, connections: r.o.throughputConnections, scale: throughputScale, segments: throughputSegments, raw: true})
		if err != nil {
			return err
		}
		r.res.Throughput = append(r.res.Throughput, runs...)
	}
	return nil
}

// noHeapFloor names the gateway run with -gc-heap-floor-mib 0.
const noHeapFloor = "gateway, no heap floor"

// logToFile names the gateway run with its log written straight to a file.
const logToFile = "gateway, log to a file"

// cpuServer is a server of the CPU part.
type cpuServer struct {
	addr string
	pid  int
}

// loadShape is how a measurement loads a server: callers over
// connections, and a multiple of the RPC's callsPerRun (0: 1).
type loadShape struct {
	callers, connections int
	scale                float64
	segments             int  // per server (0: cpuSegments)
	raw                  bool // grpcload -raw: the raw HTTP/2 client, a few µs of CPU a call
}

// interleaved measures two servers (x, y) on one RPC in one grpcload -vs
// run: x takes the first segment in odd rounds, y in even ones.
func (r *runner) interleaved(config, rpcKey, rpcName string, round int, x, y string, servers map[string]cpuServer, avatarID, token string, shape loadShape) ([]CPURun, error) {
	_, other := r.waitQuiet()
	first, second := x, y
	if round%2 == 0 {
		first, second = second, first
	}
	n := int(float64(callsPerRun[rpcKey]) * r.o.scale * max(shape.scale, 1))
	segments := cmp.Or(shape.segments, cpuSegments)
	logf("%s round %d/%d: %s, %d calls each by %d callers in %d segments, interleaved, %s first (other load %.2f cores)", config, round, r.o.rounds,
		rpcName, n, shape.callers, segments, first, other)
	a, b := servers[first], servers[second]
	args := []string{"-n", strconv.Itoa(n), "-c", strconv.Itoa(shape.callers), "-connections", strconv.Itoa(shape.connections),
		"-warmup", "1s", "-avatar-id", avatarID, "-vs", b.addr, "-vs-pid", strconv.Itoa(b.pid), "-segment", strconv.Itoa(max(n/segments, 1))}
	if token != "" {
		args = append(args, "-token", token)
	}
	if shape.raw {
		args = append(args, "-raw")
	}
	kind := "cpu"
	if shape.raw { // the throughput measurement: its own files, kept apart from the CPU one's with -keep
		kind = "throughput"
	}
	rep, err := r.load(fmt.Sprintf("%s-%s-%s-%s-r%d", kind, config, rpcKey, strings.ReplaceAll(first+"-"+second, " ", "_"), round), a.addr, rpcKey, a.pid, args...)
	if err != nil {
		return nil, err
	}
	if rep.Versus == nil {
		return nil, fmt.Errorf("%s %s round %d: grpcload reported no second server", config, rpcName, round)
	}
	var runs []CPURun
	for _, m := range []struct {
		srv   string
		first bool
		rep   *loadstat.Report
	}{{first, true, rep}, {second, false, rep.Versus}} {
		runs = append(runs, cpuRun(config, rpcKey, m.srv, round, m.first, other, m.rep))
		if m.rep.Errors > 0 {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s %s %s round %d: %d of %d calls failed: %v", config, rpcName, m.srv, round,
				m.rep.Errors, m.rep.Requests, m.rep.ErrorKinds))
		}
	}
	return runs, nil
}

func cpuRun(config, rpc, srv string, round int, first bool, other float64, rep *loadstat.Report) CPURun {
	c := CPURun{Config: config, RPC: rpc, Server: srv, Round: round, First: first, Calls: rep.Requests, Errors: rep.Errors,
		RPS: rep.RPS, P50MS: rep.P50MS, P99MS: rep.P99MS, QuietOther: other}
	if rep.CPU != nil {
		c.WallS, c.ServerS, c.ClientS, c.MachineS = rep.CPU.WallS, rep.CPU.ServerS, rep.CPU.ClientS, rep.CPU.MachineS
	}
	return c
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		s = s[:j]
	}
	return s
}

// firstAvatar returns the id of the first avatar the gateway lists.
func firstAvatar(addr, token string) (string, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	resp, err := heygenv1.NewAvatarsServiceClient(conn).ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 1})
	if err != nil {
		return "", err
	}
	if len(resp.GetAvatars()) == 0 {
		return "", errors.New("the gateway lists no avatars")
	}
	return resp.GetAvatars()[0].GetId(), nil
}

// directPart compares one page straight from the slow fake HeyGen with
// the same page through a warm gateway.
func (r *runner) directPart() error {
	f, err := r.startFake("fake-direct", benchGroups, benchLooks, benchVoices, 0)
	if err != nil {
		return err
	}
	gw, err := r.startGateway("gw-direct", "production", f)
	if err != nil {
		return err
	}
	if err := waitHealth(gw.addr, "heygen-grpc.catalogue", 2*time.Minute, gw.proc); err != nil {
		return err
	}
	if err := f.setLatency(r.o.latency); err != nil {
		return err
	}
	logf("direct: %d REST calls of the fake HeyGen page (latency %s), then the gateway", restRequests, r.o.latency)
	out := filepath.Join(r.tmp, "rest.json")
	if _, err := r.ps.run(r.tmp, "restload", 5*time.Minute, r.place.client, []string{filepath.Join(r.bin, "restload"),
		"-url", f.url + "/v3/avatars/looks?limit=" + strconv.Itoa(pageSize), "-n", strconv.Itoa(restRequests),
		"-c", strconv.Itoa(r.o.concurrency), "-expect-items", strconv.Itoa(pageSize), "-o", out}, []string{"HEYGEN_API_KEY=" + benchKey}); err != nil {
		return err
	}
	var rest loadstat.Report
	if err := readJSON(out, &rest); err != nil {
		return err
	}
	before, err := f.stats()
	if err != nil {
		return err
	}
	rep, err := r.load("direct-gw", gw.addr, "list", gw.pid(), "-c", strconv.Itoa(r.o.concurrency), "-connections", strconv.Itoa(r.o.connections),
		"-warmup", "1s", "-duration", strconv.Itoa(directSeconds)+"s", "-token", gw.token)
	if err != nil {
		return err
	}
	after, err := f.stats()
	if err != nil {
		return err
	}
	r.res.Direct = &Direct{LatencyMS: float64(r.o.latency) / 1e6, Concurrency: r.o.concurrency,
		RestCalls: rest.Requests, RestErrors: rest.Errors, RestRPS: rest.RPS, RestP50: rest.P50MS, RestP99: rest.P99MS,
		GwCalls: rep.Requests, GwErrors: rep.Errors, GwRPS: rep.RPS, GwP50: rep.P50MS, GwP99: rep.P99MS,
		HeyGenCalls: after.Paths["/v3/avatars/looks"] - before.Paths["/v3/avatars/looks"]}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// coldVariant is a gateway configuration of the cold-start part.
type coldVariant struct {
	name  string
	flags []string
	storm bool // with coldCallers concurrent callers from the start
}

var (
	coldSequential = coldVariant{"sequential (before: lists side by side, pages one after another)",
		[]string{"-catalogue-split-crawl=false", "-catalogue-cold-passthrough=0"}, false}
	coldSplit       = coldVariant{"split crawl only", []string{"-catalogue-cold-passthrough=0"}, false}
	coldPassThrough = coldVariant{"pass-through only", []string{"-catalogue-split-crawl=false"}, false}
	coldBuilt       = coldVariant{"built: split crawl + pass-through (defaults)", nil, false}
	coldStorm       = coldVariant{"built, 200 cold callers at once", nil, true}
	coldNarrow      = coldVariant{"built, crawl bound 16", []string{"-catalogue-crawl-concurrency=16"}, false}
)

// coldPart starts fresh gateways against a slow HeyGen and times their
// first answers and their snapshots.
func (r *runner) coldPart() error {
	catalogues := []struct {
		name                 string
		groups, looks, voice int
		variants             []coldVariant
	}{
		{"avatars only", benchGroups, benchLooks, 0, []coldVariant{coldSequential, coldBuilt}},
		{"avatars and voices", benchGroups, benchLooks, benchVoices, []coldVariant{coldSequential, coldSplit, coldPassThrough, coldBuilt, coldStorm, coldNarrow}},
	}
	for _, c := range catalogues {
		f, err := r.startFake("fake-cold-"+strings.ReplaceAll(c.name, " ", "-"), c.groups, c.looks, c.voice, r.o.latency)
		if err != nil {
			return err
		}
		st, err := f.stats()
		if err != nil {
			return err
		}
		r.res.ColdCatalog = append(r.res.ColdCatalog, ColdCatalg{Name: c.name, Looks: st.Catalogue.Looks, Groups: st.Catalogue.Groups,
			Voices: st.Catalogue.Voices, ClonedVoices: st.Catalogue.ClonedVoices})
		for i, v := range c.variants {
			r.waitQuiet()
			logf("cold start, %s: %s", c.name, v.name)
			run, err := r.coldRun(fmt.Sprintf("cold-%d-%d", len(r.res.Cold), i), f, v)
			run.Catalogue = c.name
			if err != nil {
				run.Error = err.Error()
				r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("cold start %s, %s: %v", c.name, v.name, err))
			}
			r.res.Cold = append(r.res.Cold, run)
		}
		f.stop()
	}
	return nil
}

func (r *runner) coldRun(name string, f *fake, v coldVariant) (ColdRun, error) {
	run := ColdRun{Variant: v.name, Flags: strings.Join(v.flags, " ")}
	if err := f.reset(); err != nil {
		return run, err
	}
	gw, err := r.startGateway(name, "production", f, v.flags...)
	if err != nil {
		return run, err
	}
	defer gw.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Reconnect every 10 ms while the process starts listening: grpc-go's
	// default backoff (1 s) would be measured instead of the gateway.
	conn, err := grpc.NewClient(gw.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1, MaxDelay: 10 * time.Millisecond},
			MinConnectTimeout: time.Second}))
	if err != nil {
		return run, err
	}
	defer func() { _ = conn.Close() }()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+gw.token)
	avatars, health := heygenv1.NewAvatarsServiceClient(conn), healthpb.NewHealthClient(conn)
	since := func() float64 { return time.Since(gw.start).Seconds() }

	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	// The first ListAvatars: retried while the process starts listening.
	wg.Go(func() {
		for ctx.Err() == nil {
			var hdr metadata.MD
			resp, err := avatars.ListAvatars(actx, &heygenv1.ListAvatarsRequest{PageSize: pageSize}, grpc.Header(&hdr), grpc.WaitForReady(true))
			if err == nil && len(resp.GetAvatars()) > 0 {
				run.FirstListS = since()
				if src := hdr.Get("x-heygen-source"); len(src) > 0 {
					run.FirstSrc = src[0]
				}
				return
			}
			if err != nil && !strings.Contains(err.Error(), "connection refused") {
				fail(fmt.Errorf("first ListAvatars: %w", err))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			_, err := avatars.GetAvatar(actx, &heygenv1.GetAvatarRequest{AvatarId: coldAvatarID}, grpc.WaitForReady(true))
			if err == nil {
				run.FirstGetS = since()
				return
			}
			if !strings.Contains(err.Error(), "connection refused") {
				fail(fmt.Errorf("first GetAvatar: %w", err))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	// Readiness and the snapshots, polled.
	poll := func(service string, into *float64) {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
				if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
					*into = since()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	poll("heygen-grpc.ready", &run.ReadyS)
	poll("heygen-grpc.catalogue", &run.CatalogueHealthS)
	if v.storm {
		wg.Go(func() {
			// The callers arrive as soon as the gateway listens.
			for ctx.Err() == nil {
				d := net.Dialer{Timeout: time.Second}
				if c, err := d.DialContext(ctx, "tcp", gw.addr); err == nil {
					_ = c.Close()
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			rep, err := r.load(name+"-storm", gw.addr, "list", 0, "-n", strconv.Itoa(coldCallers), "-c", strconv.Itoa(coldCallers),
				"-connections", "10", "-warmup", "0s", "-timeout", "120s", "-token", gw.token)
			if err != nil {
				fail(err)
				return
			}
			run.StormCallers, run.StormErrors = rep.Requests, rep.Errors
			run.StormP50S, run.StormMaxS = rep.P50MS/1e3, rep.MaxMS/1e3
		})
	}
	wg.Wait()
	if firstErr != nil {
		return run, firstErr
	}
	// The cold start has settled when every resource logged the crawl that
	// ends it (a full crawl; or the only one).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		run.Refreshes = refreshes(gw.log, gw.start)
		if settled(run.Refreshes) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every resource holds a snapshot once its first crawl is logged (the
	// health service follows within its 1 s reconciliation).
	first := map[string]float64{}
	for _, rf := range run.Refreshes {
		run.VerifiedS = max(run.VerifiedS, rf.AtS)
		if _, ok := first[rf.Resource]; !ok {
			first[rf.Resource] = rf.AtS
		}
	}
	for _, at := range first {
		run.SnapshotS = max(run.SnapshotS, at)
	}
	st, err := f.stats()
	if err != nil {
		return run, err
	}
	run.Calls, run.TotalCalls, run.MaxInFlight = st.Paths, st.Total, st.MaxInFlight
	if !settled(run.Refreshes) {
		return run, errors.New("the cold start did not settle within 2 minutes")
	}
	return run, nil
}

// coldAvatarID is an avatar of the cold-start catalogue, in the middle
// of the list (the fake generates it with bench/fakeheygen's default seed).
var coldAvatarID = fakeheygen.GenerateCatalogue(20241125, benchGroups, benchLooks).Looks[benchGroups*benchLooks/2].ID

// fetch GETs a loopback URL into a file.
func fetch(url, path string) error {
	b, err := loopbackDo(http.MethodGet, url, time.Minute)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// settled reports whether avatars, groups and voices each logged a full
// crawl.
func settled(rs []Refresh) bool {
	full := map[string]bool{}
	for _, r := range rs {
		if r.Crawl == "" || r.Crawl == "full" {
			full[r.Resource] = true
		}
	}
	return full["avatars"] && full["avatar_groups"] && full["voices"]
}

// refreshes reads the "catalogue refreshed" lines of a gateway's log.
func refreshes(path string, start time.Time) []Refresh {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var out []Refresh
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			Resource string    `json:"resource"`
			Crawl    string    `json:"crawl"`
			Items    int       `json:"items"`
			Calls    int       `json:"heygen_calls"`
			TookMS   int64     `json:"took_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "catalogue refreshed" {
			continue
		}
		out = append(out, Refresh{Resource: l.Resource, Crawl: l.Crawl, Items: l.Items, Calls: l.Calls, TookMS: l.TookMS,
			AtS: l.Time.Sub(start).Seconds()})
	}
	return out
}

// memoryPart measures the gateway's memory with a 50,000-look catalogue
// under memCallers concurrent callers.
func (r *runner) memoryPart() error {
	f, err := r.startFake("fake-memory", memGroups, memLooks, memVoices, 0)
	if err != nil {
		return err
	}
	logf("memory: %d looks, %d groups, %d voices", memGroups*memLooks, memGroups, memVoices)
	gw, err := r.startGateway("gw-memory", "production", f)
	if err != nil {
		return err
	}
	if err := waitHealth(gw.addr, "heygen-grpc.catalogue", 5*time.Minute, gw.proc); err != nil {
		return err
	}
	m := &Memory{Looks: memGroups * memLooks, Groups: memGroups, Voices: memVoices, Callers: memCallers, DurationS: memDuration.Seconds()}
	// Let the cold start settle (its full crawl after the split one).
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if rs := refreshes(gw.log, gw.start); settled(rs) {
			for _, rf := range rs {
				m.CrawlS = max(m.CrawlS, rf.AtS)
			}
			break
		}
	}
	time.Sleep(time.Second)
	rss, hwm, err := procstat.Memory(gw.pid())
	if err != nil {
		return err
	}
	m.RSSIdleMiB, m.HWMAfterCrawlMiB = mib(rss), mib(hwm)
	rep, err := r.load("memory-load", gw.addr, "list", gw.pid(), "-c", strconv.Itoa(memCallers), "-connections", "10",
		"-warmup", "0s", "-duration", memDuration.String(), "-token", gw.token)
	if err != nil {
		return err
	}
	rss, hwm, err = procstat.Memory(gw.pid())
	if err != nil {
		return err
	}
	m.HWMMiB, m.RSSAfterMiB, m.RPS, m.P99MS, m.Errors = mib(hwm), mib(rss), rep.RPS, rep.P99MS, rep.Errors
	r.res.Memory = m
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// gobenchPart runs the Go benchmarks of the hot paths.
func (r *runner) gobenchPart() error {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(r.o.gobenchCount), "-timeout", "30m",
		"./catalogue/", "./server/"}
	r.res.GoBenchCmd = "go " + strings.Join(args, " ")
	logf("Go benchmarks: %s", r.res.GoBenchCmd)
	cmd := exec.CommandContext(context.Background(), "go", args...)
	cmd.Dir = r.repo
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(r.tmp, "gobench.txt"), out, 0o600)
	if err != nil {
		return fmt.Errorf("go test -bench: %w\n%s", err, lastLines(string(out), 20))
	}
	r.res.GoBench = parseGoBench(string(out))
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// parseGoBench reads `go test -bench` output, grouping -count runs.
func parseGoBench(out string) []GoBench {
	var order []string
	byName := map[string]*GoBench{}
	pkg := ""
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "pkg:" {
			pkg = f[1][strings.LastIndex(f[1], "/")+1:]
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		key := pkg + "." + f[0]
		b, ok := byName[key]
		if !ok {
			b = &GoBench{Pkg: pkg, Name: f[0], Metrics: map[string][]float64{}}
			byName[key] = b
			order = append(order, key)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if unit == "ns/op" {
				b.NsPerOp = append(b.NsPerOp, v)
				continue
			}
			if !slices.Contains(b.Units, unit) {
				b.Units = append(b.Units, unit)
			}
			b.Metrics[unit] = append(b.Metrics[unit], v)
		}
	}
	out2 := make([]GoBench, 0, len(order))
	for _, k := range order {
		out2 = append(out2, *byName[k])
	}
	return out2
}

// profilePart takes CPU profiles of the production gateway binary under
// ListAvatars and Health/Check loads.
func (r *runner) profilePart() error {
	f, err := r.startFake("fake-profile", benchGroups, benchLooks, benchVoices, 0)
	if err != nil {
		return err
	}
	gw, err := r.startGateway("gw-profile", "production", f, "-pprof")
	if err != nil {
		return err
	}
	if err := waitHealth(gw.addr, "heygen-grpc.catalogue", 2*time.Minute, gw.proc); err != nil {
		return err
	}
	for _, rpc := range []struct{ key, name string }{{"list", "ListAvatars"}, {"health", "Health/Check"}} {
		logf("profile: %s under load", rpc.name)
		prof := filepath.Join(r.tmp, "profile-"+rpc.key+".pprof")
		errc := make(chan error, 1)
		go func() {
			time.Sleep(2 * time.Second)
			errc <- fetch("http://"+gw.metrics+"/debug/pprof/profile?seconds=8", prof)
		}()
		rep, err := r.load("profile-"+rpc.key, gw.addr, rpc.key, gw.pid(), "-c", strconv.Itoa(r.o.concurrency),
			"-connections", strconv.Itoa(r.o.connections), "-warmup", "1s", "-duration", "11s", "-token", gw.token)
		if err != nil {
			return err
		}
		if err := <-errc; err != nil {
			return fmt.Errorf("fetching the profile: %w", err)
		}
		p := Profile{Name: rpc.name, RPS: rep.RPS}
		if rep.CPU != nil {
			p.MicrosPC = rep.CPU.ServerS * 1e6 / float64(max(rep.Requests, 1))
		}
		top, err := exec.CommandContext(context.Background(), "go", "tool", "pprof", "-top", "-nodecount", "25", filepath.Join(r.bin, "heygen-grpc"), prof).Output() //nolint:gosec // G204: our files
		if err != nil {
			return fmt.Errorf("go tool pprof: %w", err)
		}
		cum, err := exec.CommandContext(context.Background(), "go", "tool", "pprof", "-top", "-cum", "-nodecount", "45", "-focus", `grpc\.\(\*Server\)\.handleStream`, //nolint:gosec // G204: our files
			filepath.Join(r.bin, "heygen-grpc"), prof).Output()
		if err != nil {
			return fmt.Errorf("go tool pprof: %w", err)
		}
		p.Top, p.TopCum = trimPprof(string(top)), trimPprof(string(cum))
		r.res.Profiles = append(r.res.Profiles, p)
	}
	return nil
}

func trimPprof(s string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		out = append(out, strings.TrimRight(line, "\n"))
	}
	return strings.Join(out, "\n")
}
