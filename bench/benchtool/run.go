package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loadstat"
	"github.com/heygen-grpc/heygen-grpc/bench/internal/procstat"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// options are a run's settings.
type options struct {
	out         string
	parts       map[string]bool
	rounds      int
	scale       float64
	concurrency int
	connections int
	// throughputCallers and throughputConnections load the throughput
	// measurement (cached ListAvatars, calls per second).
	throughputCallers     int
	throughputConnections int
	latency               time.Duration
	quietWait             time.Duration
	gobenchCount          int
	keep                  bool
}

func defaultOptions() options {
	return options{out: "bench/RESULTS.md", rounds: 3, scale: 1, concurrency: 8, connections: 4,
		throughputCallers: 32, throughputConnections: 8, latency: 300 * time.Millisecond,
		quietWait: 30 * time.Second, gobenchCount: 3}
}

// The benchmark catalogue (production configuration, direct and cold
// parts): 100 groups of 50 looks, 2,000 voices; the memory part's: 5,000
// groups of 10 looks, 5,000 voices.
const (
	benchGroups   = 100
	benchLooks    = 50
	benchVoices   = 2000
	memGroups     = 5000
	memLooks      = 10
	memVoices     = 5000
	pageSize      = 50
	benchKey      = "bench-key-not-secret"
	coldCallers   = 200
	memCallers    = 50
	memDuration   = 15 * time.Second
	restRequests  = 160
	directSeconds = 10
)

// callsPerRun are the calls of one CPU measurement, by RPC: a few seconds
// of server CPU each on this machine (times -scale).
var callsPerRun = map[string]int{"list": 30000, "get": 50000, "voices": 30000, "health": 60000}

// throughputScale multiplies callsPerRun["list"] for the throughput
// measurement, and throughputSegments are its segments per server (A B
// B A ...): 20,000 calls each, most of a second, so that the start and
// end of a segment (callers starting, the last calls draining) weigh
// little in its calls per second and its server's use of its core, and
// short enough that a slow spell of this shared machine falls on both
// servers. With two segments of 60,000, one run's production rounds
// ranged 0.63-1.05 for the same two binaries (bench/RESULTS.md notes).
const (
	throughputScale    = 4
	throughputSegments = 6
)

// cpuSegments is the number of segments a CPU measurement's calls to each
// server are made in, alternating between the gateway and the reference
// (grpcload -vs): about 0.15 s of server CPU each.
const cpuSegments = 10

// rpcs are the RPCs of the CPU part, with their names in the report.
var rpcs = []struct{ key, name string }{
	{"list", "ListAvatars"}, {"get", "GetAvatar"}, {"voices", "ListVoices"}, {"health", "Health/Check"},
}

// runner holds a run's state.
type runner struct {
	o     options
	repo  string
	tmp   string
	bin   string
	place placement
	ps    procs
	// token is the bench caller's bearer token in the production
	// configuration, tokenHash its callers-file hash.
	token, tokenHash string
	res              *Results
}

func run(o options) (err error) {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return errors.New("run benchtool from the repository root (scripts/bench.sh does)")
	}
	tmp, err := os.MkdirTemp("", "heygen-grpc-bench.")
	if err != nil {
		return err
	}
	r := &runner{o: o, repo: repo, tmp: tmp, bin: filepath.Join(tmp, "bin"), place: newPlacement(), res: &Results{}}
	r.ps.collector = r.place.client
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		r.ps.stopAll()
	}()
	defer func() {
		r.ps.stopAll()
		if err != nil || o.keep {
			logf("logs, profiles and raw results kept in %s", tmp)
		} else {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := r.meta(); err != nil {
		return err
	}
	if err := r.build(); err != nil {
		return err
	}
	steps := []struct {
		part string
		fn   func() error
	}{{"cpu", r.cpuPart}, {"direct", r.directPart}, {"cold", r.coldPart}, {"memory", r.memoryPart},
		{"gobench", r.gobenchPart}, {"profile", r.profilePart}}
	for _, s := range steps {
		if !o.parts[s.part] {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t0 := time.Now()
		if err := s.fn(); err != nil {
			return fmt.Errorf("part %s: %w", s.part, err)
		}
		r.res.PartSeconds = append(r.res.PartSeconds, PartTime{Part: s.part, Seconds: time.Since(t0).Seconds()})
		r.ps.stopAll()
	}
	r.res.Meta.WallSeconds = time.Since(runStart).Seconds()
	r.res.Meta.Load1End = load1()
	b, _ := json.MarshalIndent(r.res, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "results.json"), b, 0o600); err != nil {
		return err
	}
	if err := writeReport(r.res, o.out); err != nil {
		return err
	}
	logf("wrote %s in %.0f s", o.out, r.res.Meta.WallSeconds)
	return nil
}

func (r *runner) meta() error {
	m := &r.res.Meta
	m.Date = time.Now().UTC().Format("2006-01-02 15:04:05 UTC")
	m.Commit = gitOut("rev-parse", "--short", "HEAD")
	m.Subject = gitOut("log", "-1", "--format=%s")
	m.Dirty = gitOut("status", "--porcelain") != ""
	m.CPUs = numCPU()
	m.GOMAXPROCS = runtime.GOMAXPROCS(0)
	m.GoVersion = runtime.Version()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.CommandContext(context.Background(), "uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	m.Placement = r.place.text
	m.Load1Start = load1()
	m.Parts = sortedParts(r.o.parts)
	m.Rounds, m.Concurrency, m.Connections = r.o.rounds, r.o.concurrency, r.o.connections
	m.ThroughputCallers, m.ThroughputConnections = r.o.throughputCallers, r.o.throughputConnections
	m.LatencyMS = float64(r.o.latency) / float64(time.Millisecond)
	return nil
}

func sortedParts(p map[string]bool) []string {
	var out []string
	for _, name := range allParts {
		if p[name] {
			out = append(out, name)
		}
	}
	return out
}

func gitOut(args ...string) string {
	out, err := exec.CommandContext(context.Background(), "git", args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func load1() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// build compiles the gateway and the benchmark programs.
func (r *runner) build() error {
	logf("building into %s", r.bin)
	for _, t := range []struct{ out, pkg string }{
		{"heygen-grpc", "./cmd/heygen-grpc"}, {"fakeheygen", "./bench/fakeheygen"}, {"bareserver", "./bench/bareserver"},
		{"grpcload", "./bench/grpcload"}, {"restload", "./bench/restload"},
	} {
		cmd := exec.CommandContext(context.Background(), "go", "build", "-o", filepath.Join(r.bin, t.out), t.pkg) //nolint:gosec // G204: fixed arguments
		cmd.Dir = r.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return nil
}

// waitQuiet waits, at most quietWait, until the rest of the machine uses
// less than a quarter of a core; it returns the seconds waited and the
// load that remained.
func (r *runner) waitQuiet() (waited, other float64) {
	t0 := time.Now()
	for {
		s0, _ := procstat.Take(0)
		time.Sleep(time.Second)
		s1, _ := procstat.Take(0)
		other = procstat.Since(s0, s1).OtherCores()
		if other < 0.25 || time.Since(t0) >= r.o.quietWait {
			w := time.Since(t0).Seconds() - 1
			r.res.Meta.QuietWaitS += w
			return w, other
		}
	}
}

// startFake starts bench/fakeheygen with a generated catalogue.
func (r *runner) startFake(name string, groups, looks, voices int, latency time.Duration) (*fake, error) {
	ready := filepath.Join(r.tmp, name+".ready")
	_ = os.Remove(ready)
	p, err := r.ps.start(r.tmp, name, r.place.client, []string{filepath.Join(r.bin, "fakeheygen"),
		"-groups", strconv.Itoa(groups), "-looks-per-group", strconv.Itoa(looks), "-voices", strconv.Itoa(voices),
		"-latency", latency.String(), "-ready-file", ready}, []string{"HEYGEN_API_KEY=" + benchKey})
	if err != nil {
		return nil, err
	}
	url, admin, err := readyFile(ready, p)
	if err != nil {
		return nil, err
	}
	return &fake{proc: p, url: url, admin: admin}, nil
}

// gateway is a running heygen-grpc binary.
type gateway struct {
	*proc
	addr, metrics, token string
	start                time.Time
}

// startGateway starts the gateway binary on CPU 0. config "demo" runs
// -demo with every default; "production" runs against f with JSON logs at
// info (the default), metrics on and a callers file with a bearer token.
func (r *runner) startGateway(name, config string, f *fake, extra ...string) (*gateway, error) {
	return r.startGatewayLogging(name, config, f, false, extra...)
}

// startGatewayLogging is startGateway, with the gateway's log written
// straight to a file when toFile is set (procs.startLogging).
func (r *runner) startGatewayLogging(name, config string, f *fake, toFile bool, extra ...string) (*gateway, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	g := &gateway{addr: addr}
	argv := []string{filepath.Join(r.bin, "heygen-grpc"), "-addr", addr}
	var env []string
	switch config {
	case "demo":
		argv = append(argv, "-demo")
	case "production":
		if g.metrics, err = freeAddr(); err != nil {
			return nil, err
		}
		if r.token == "" { // one caller, one token, for every gateway of the run
			if r.token, r.tokenHash, err = server.NewToken(); err != nil {
				return nil, err
			}
		}
		token, hash := r.token, r.tokenHash
		callers := filepath.Join(r.tmp, name+".callers")
		if err := os.WriteFile(callers, []byte("bench: "+hash+"\n"), 0o600); err != nil {
			return nil, err
		}
		g.token = token
		argv = append(argv, "-heygen-base-url", f.url, "-metrics-addr", g.metrics, "-callers-file", callers)
		env = []string{"HEYGEN_API_KEY=" + benchKey}
	default:
		return nil, fmt.Errorf("unknown configuration %q", config)
	}
	argv = append(argv, extra...)
	g.start = time.Now()
	if g.proc, err = r.ps.startLogging(r.tmp, name, r.place.server, argv, env, toFile); err != nil {
		return nil, err
	}
	return g, nil
}

// load runs grpcload on the client CPU and returns its report.
func (r *runner) load(name, addr, call string, serverPID int, args ...string) (*loadstat.Report, error) {
	out := filepath.Join(r.tmp, name+".json")
	argv := append([]string{filepath.Join(r.bin, "grpcload"), "-addr", addr, "-call", call, "-page-size", strconv.Itoa(pageSize),
		"-server-pid", strconv.Itoa(serverPID), "-o", out}, args...)
	if _, err := r.ps.run(r.tmp, name, 10*time.Minute, r.place.client, argv, nil); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var rep loadstat.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", out, err)
	}
	return &rep, nil
}
