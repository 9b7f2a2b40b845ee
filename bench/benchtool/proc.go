package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
)

// CPU placement: the servers under test on CPU 0, everything else (load
// generators, the fake HeyGen) on CPU 1, when taskset and two CPUs exist.
type placement struct {
	server, client []string // command prefixes
	text           string
}

func newPlacement() placement {
	if _, err := exec.LookPath("taskset"); err == nil && numCPU() >= 2 {
		return placement{server: []string{"taskset", "-c", "0"}, client: []string{"taskset", "-c", "1"},
			text: "servers under test pinned to CPU 0 (taskset -c 0); load generators and the fake HeyGen pinned to CPU 1"}
	}
	return placement{text: "not pinned (taskset missing or fewer than 2 CPUs)"}
}

// proc is a process the run started; every one is stopped at the end.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // its stderr (and stdout) file
	done chan struct{}
	err  error
}

// procs tracks the run's processes so that none outlives it.
type procs struct {
	mu  sync.Mutex
	all []*proc
	// collector is the command prefix of each process's log collector
	// (the client placement; see start).
	collector []string
}

// start runs prefix+argv with env (nil: a clean environment with PATH and
// HOME only), working directory dir. Its stdout and stderr are a pipe that
// a collector process (cat, on the client CPU) copies to dir/name.log, as
// a container runtime collects a container's output: the process pays for
// writing its log into a pipe, and the file system's cost of storing it
// falls on the collector, off the CPU under test. What a log written
// straight to a file costs the gateway instead is measured in every run
// (startLogging; logToFile in the CPU part).
func (ps *procs) start(dir, name string, prefix, argv, env []string) (*proc, error) {
	return ps.startLogging(dir, name, prefix, argv, env, false)
}

// startLogging is start, with the process's output written straight to
// dir/name.log when toFile is set: the file system's cost of the log then
// falls on the process itself.
func (ps *procs) startLogging(dir, name string, prefix, argv, env []string, toFile bool) (*proc, error) {
	args := append(append([]string{}, prefix...), argv...)
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if toFile {
		return ps.started(name, args, dir, env, logPath, f, f, nil)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	cargs := append(append([]string{}, ps.collector...), "cat")
	collector := exec.CommandContext(context.Background(), cargs[0], cargs[1:]...) //nolint:gosec // G204: cat, placed
	collector.Stdin, collector.Stdout, collector.Stderr = pr, f, f
	collector.Env = []string{"PATH=/usr/bin:/bin"}
	if err := collector.Start(); err != nil {
		_, _, _ = pr.Close(), pw.Close(), f.Close()
		return nil, fmt.Errorf("start the log collector of %s: %w", name, err)
	}
	_ = pr.Close() // the collector holds it
	return ps.started(name, args, dir, env, logPath, pw, f, collector)
}

// started starts the process with out as its stdout and stderr, closes
// out (the process holds it), and when the process has ended waits for
// its collector (nil: none) and closes the log file f.
func (ps *procs) started(name string, args []string, dir string, env []string, logPath string, out, f *os.File, collector *exec.Cmd) (*proc, error) {
	cmd := exec.CommandContext(context.Background(), args[0], args[1:]...) //nolint:gosec // G204: the benchmark's own binaries
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + dir}, env...)
	// Its own process group, so Ctrl-C reaches the run, which stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Start()
	if out != f {
		_ = out.Close() // the pipe's end, which the process holds: its end is the collector's EOF
	}
	if err != nil {
		if collector != nil {
			_ = collector.Wait()
		}
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if collector != nil {
			_ = collector.Wait() // the log is complete once the collector has written the last of it
		}
		_ = f.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p, nil
}

// waitLog waits up to timeout for text in the process's log: the
// collector writes what the process printed a moment later.
func (p *proc) waitLog(text string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.log)
		if strings.Contains(string(b), text) || time.Now().After(deadline) {
			return p.tail()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pid is the process's id (taskset execs the program, keeping its pid).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 10 s, then kills.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := ps.all
	ps.all = nil
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// run runs a command to completion (bounded by timeout), its output to
// dir/name.log; it returns the process's CPU time.
func (ps *procs) run(dir, name string, timeout time.Duration, prefix, argv, env []string) (time.Duration, error) {
	p, err := ps.start(dir, name, prefix, argv, env)
	if err != nil {
		return 0, err
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.stop()
		return 0, fmt.Errorf("%s did not finish within %s", name, timeout)
	}
	if p.err != nil {
		return 0, fmt.Errorf("%s: %w:\n%s", name, p.err, p.tail())
	}
	st := p.cmd.ProcessState
	return st.UserTime() + st.SystemTime(), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// waitHealth polls Health/Check on addr until service is SERVING, the
// process exits, or timeout passes.
func waitHealth(addr, service string, timeout time.Duration, p *proc) error {
	if err := loopback.CheckAddr(addr); err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	last := errors.New("no answer yet")
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %w\n%s", p.name, p.err, p.tail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		switch {
		case err != nil:
			last = err
		case resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
			return nil
		default:
			last = fmt.Errorf("status %s", resp.GetStatus())
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("%s: health %q not SERVING after %s: %w", addr, service, timeout, last)
}

// fakeStats is bench/fakeheygen's /_fake/stats.
type fakeStats struct {
	Total       int            `json:"total"`
	Paths       map[string]int `json:"paths"`
	Other       int            `json:"other"`
	MaxInFlight int            `json:"max_in_flight"`
	Catalogue   struct {
		Groups       int `json:"groups"`
		Looks        int `json:"looks"`
		PublicLooks  int `json:"public_looks"`
		PrivateLooks int `json:"private_looks"`
		Voices       int `json:"voices"`
		ClonedVoices int `json:"cloned_voices"`
	} `json:"catalogue"`
}

// fake is a running bench/fakeheygen.
type fake struct {
	*proc
	url, admin string
}

func (f *fake) call(method, path string, into any) error {
	body, err := loopbackDo(method, f.admin+path, 10*time.Second)
	if err != nil || into == nil {
		return err
	}
	return json.Unmarshal(body, into)
}

// loopbackDo sends a bodiless request to a loopback URL and returns the
// body of its 2xx answer; anything else is an error quoting the body.
func loopbackDo(method, url string, timeout time.Duration) ([]byte, error) {
	if err := loopback.CheckURL(url); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, http.NoBody)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, body)
	}
	return body, nil
}

func (f *fake) stats() (fakeStats, error) {
	var s fakeStats
	return s, f.call(http.MethodGet, "/_fake/stats", &s)
}

func (f *fake) reset() error { return f.call(http.MethodPost, "/_fake/reset", nil) }

func (f *fake) setLatency(d time.Duration) error {
	return f.call(http.MethodPost, "/_fake/latency?d="+d.String(), nil)
}

// readyFile waits for the fake's ready file and reads its addresses.
func readyFile(path string, p *proc) (url, admin string, err error) {
	for range 200 {
		if b, err := os.ReadFile(path); err == nil && strings.Count(string(b), "\n") >= 2 {
			for line := range strings.Lines(string(b)) {
				k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
				switch k {
				case "url":
					url = v
				case "admin":
					admin = v
				}
			}
			return url, admin, nil
		}
		if p.exited() {
			return "", "", fmt.Errorf("the fake HeyGen exited: %s", p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", "", errors.New("the fake HeyGen did not report its addresses")
}

func numCPU() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 1
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, ok := strings.Cut(r, "-")
		a, _ := strconv.Atoi(lo)
		z := a
		if ok {
			z, _ = strconv.Atoi(hi)
		}
		n += z - a + 1
	}
	return n
}
