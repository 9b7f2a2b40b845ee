//go:build e2e

package e2e_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds the wait for a started server to report healthy.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds SIGTERM -> exit: above the default drain delay (0s)
	// plus the default shutdown timeout (15s).
	stopTimeout = 30 * time.Second
	// logTail is how many server log lines a failed test shows.
	logTail = 15
)

// server is a heygen-grpc process serving the demo (a built-in fake HeyGen)
// on a loopback port the kernel chose.
type server struct {
	addr    string // host:port it serves on, from its "serving" log line
	cmd     *exec.Cmd
	logPath string        // its stdout and stderr (JSON log lines)
	exited  chan struct{} // closed once the process has exited and been reaped
	waitErr error         // cmd.Wait's result, set before exited is closed
}

// startServer starts `heygen-grpc -demo` with extra flags, from an empty
// directory with no environment but PATH and HOME (so no .env or variable
// of the developer's configures it), and waits until grpc-health-probe
// reports SERVING for "", heygen.v1.AvatarsService and the catalogue. The server is killed
// when the test ends; if the test failed, the end of its log is shown.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	return startGateway(t, hermeticEnv(), append([]string{"-demo"}, flags...)...)
}

// startGateway is startServer with the environment and every flag given
// (no -demo unless in flags).
func startGateway(t *testing.T, env []string, flags ...string) *server {
	t.Helper()
	probe := tool(t, "grpc-health-probe")
	s := startGatewayNoWait(t, env, flags...)
	deadline := time.Now().Add(readyTimeout)
	for s.addr == "" {
		if rec, ok := s.findLog(func(r logRecord) bool { return r.Msg == "serving heygen.v1.AvatarsService" }); ok {
			s.addr = rec.Addr
			break
		}
		s.pause(t, deadline, `the JSON log line msg="serving heygen.v1.AvatarsService" (with its addr)`)
	}
	// A cold replica is ready while it passes callers through to HeyGen;
	// the README's outputs are the catalogue's, so wait for it too.
	for !s.healthy(probe, "") || !s.healthy(probe, "heygen.v1.AvatarsService") || !s.healthy(probe, "heygen-grpc.catalogue") {
		s.pause(t, deadline, "grpc-health-probe to report SERVING for \"\", heygen.v1.AvatarsService and heygen-grpc.catalogue on "+s.addr)
	}
	return s
}

// addrWhenServing waits, polling often, for the serving log line and
// returns the address.
func (s *server) addrWhenServing(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for s.addr == "" {
		if rec, ok := s.findLog(func(r logRecord) bool { return r.Msg == "serving heygen.v1.AvatarsService" }); ok {
			s.addr = rec.Addr
			break
		}
		if time.Now().After(deadline) || !s.running() {
			t.Fatalf("no serving log line within %s (running: %v)", readyTimeout, s.running())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return s.addr
}

// logsAfter returns the records with msg logged after since.
func (s *server) logsAfter(msg string, since time.Time) []logRecord {
	var out []logRecord
	for _, r := range s.logs() {
		if r.Msg == msg && r.Time.After(since) {
			out = append(out, r)
		}
	}
	return out
}

// startGatewayNoWait starts the process and returns at once.
func startGatewayNoWait(t *testing.T, env []string, flags ...string) *server {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }() // the child has its own copy

	args := append([]string{"-addr", "127.0.0.1:0", "-log-format", "json", "-log-level", "info"}, flags...)
	cmd := exec.Command(serverBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If this test process dies without running its cleanups (a panic, a
	// go test -timeout), the kernel kills the server too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", serverBin, err)
	}
	s := &server{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if s.running() {
			_ = cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("server %s log (last %d lines of %s):\n%s", strings.Join(args, " "), logTail, logPath, s.logTail())
		}
	})
	return s
}

// pause waits a little before the next readiness check, failing the test
// when the server has exited or the deadline has passed.
func (s *server) pause(t *testing.T, deadline time.Time, waitingFor string) {
	t.Helper()
	if time.Now().After(deadline) {
		t.Fatalf("the server was not ready within %s: no %s", readyTimeout, waitingFor)
	}
	select {
	case <-s.exited:
		t.Fatalf("the server exited (%v) while the test waited for %s", s.waitErr, waitingFor)
	case <-time.After(200 * time.Millisecond):
	}
}

func (s *server) healthy(probe, service string) bool {
	cmd := exec.Command(probe, "-addr="+s.addr, "-service="+service, "-connect-timeout=1s", "-rpc-timeout=1s")
	return cmd.Run() == nil
}

func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits, bounded, for the process to exit; it
// returns the exit code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("the server did not exit within %s of SIGTERM", stopTimeout)
	}
	var exitErr *exec.ExitError
	if errors.As(s.waitErr, &exitErr) {
		return exitErr.ExitCode()
	}
	if s.waitErr != nil {
		t.Fatalf("wait for the server: %v", s.waitErr)
	}
	return 0
}

// logRecord is the part of a server JSON log line the tests look at.
type logRecord struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Addr    string    `json:"addr"`
	Caller  string    `json:"caller"`
	Service string    `json:"grpc.service"`
	Method  string    `json:"grpc.method"`
	Code    string    `json:"grpc.code"`
	// GCHeapFloorMiB is the serving line's heap floor in effect.
	GCHeapFloorMiB int `json:"gc_heap_floor_mib"`
}

// logs returns the server's JSON log records so far (other lines skipped).
func (s *server) logs() []logRecord {
	f, err := os.Open(s.logPath)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var recs []logRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}

func (s *server) findLog(match func(logRecord) bool) (logRecord, bool) {
	for _, r := range s.logs() {
		if match(r) {
			return r, true
		}
	}
	return logRecord{}, false
}

func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTail {
		lines = lines[len(lines)-logTail:]
	}
	return "    | " + strings.Join(lines, "\n    | ")
}
