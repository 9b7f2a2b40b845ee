package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

// TestHelpListsCommandsAndFlags: `heygen-grpc -h` exits 0, names the
// token commands, and shows every flag with its type as the value name:
// the flag package takes back-quoted help text as the value name, which
// once printed `-callers-file caller-name: sha256:<hex>`.
func TestHelpListsCommandsAndFlags(t *testing.T) {
	cmd := exec.Command(gatewayBinary(t), "-h")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() != 0 {
		t.Fatalf("heygen-grpc -h: %v, stderr %q; want exit 0 and the usage on stdout", err, stderr.String())
	}
	usage := stdout.String()
	for _, want := range []string{"heygen-grpc new-token CALLER-NAME", "heygen-grpc hash-token < TOKEN-FILE", "HEYGEN_API_KEY"} {
		if !strings.Contains(usage, want) {
			t.Errorf("heygen-grpc -h does not mention %q:\n%s", want, usage)
		}
	}
	if strings.Contains(usage, "`") {
		t.Errorf("heygen-grpc -h shows a back quote: a help text's back-quoted words became a value name:\n%s", usage)
	}
	flagLine := regexp.MustCompile(`^  -([a-z0-9-]+)(?: (.*))?$`)
	flags := 0
	for line := range strings.Lines(usage) {
		m := flagLine.FindStringSubmatch(strings.TrimRight(line, "\n"))
		if m == nil {
			continue
		}
		flags++
		if !slices.Contains([]string{"", "string", "duration", "int", "float", "value"}, m[2]) {
			t.Errorf("-%s shows the value name %q, want its type (string, duration, int, ...)", m[1], m[2])
		}
	}
	if flags < 40 {
		t.Errorf("heygen-grpc -h lists %d flags, want every one:\n%s", flags, usage)
	}
}

// durationKey is a log field whose name says it holds a time span.
var durationKey = regexp.MustCompile(`(?i)(^|[._])(time|took|wait|delay|timeout|interval|age|elapsed|duration|latency|after|ttl|backoff|in)($|[._])`)

// unitSuffix is a field name that says the unit of its number.
var unitSuffix = regexp.MustCompile(`_(ms|s|seconds)$`)

// TestLogDurationsReadAsDurations runs the binary as it ships against a
// HeyGen that fails once (so a retry with its wait is logged), stops it
// with SIGTERM after a drain delay, and checks every field of every JSON
// log line: a time span is a Go duration string ("505ms") or a number
// whose name says its unit (took_ms); no number looks like nanoseconds.
func TestLogDurationsReadAsDurations(t *testing.T) {
	inj := faults.New()
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: canaryKey, Catalogue: fakeheygen.DemoCatalogue(),
		Voices: fakeheygen.DemoVoices(), Middleware: inj.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fake.Close() }()
	inj.Inject(faults.Fault{Path: "/v3/avatars/looks", Status: 503, Times: 1})

	logPath := filepath.Join(t.TempDir(), "gateway.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(gatewayBinary(t), "-addr", "127.0.0.1:0", "-heygen-base-url", fake.URL(),
		"-heygen-retry-base-delay", "20ms", "-shutdown-drain-delay", "100ms", "-log-level", "debug")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HEYGEN_API_KEY=" + canaryKey}
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	lines := func() []map[string]any {
		b, _ := os.ReadFile(logPath)
		var out []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("log line is not JSON: %s", sc.Text())
				continue
			}
			out = append(out, m)
		}
		return out
	}
	refreshed := func() int {
		n := 0
		for _, l := range lines() {
			if l["msg"] == "catalogue refreshed" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for refreshed() < 3 { // avatars, avatar groups, voices
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the catalogue was not refreshed within 30 s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20 s of SIGTERM")
	}

	seen := map[string]bool{}
	for _, l := range lines() {
		checkDurations(t, l["msg"], "", l, seen)
	}
	// The fields this run must have produced, or the check proves nothing.
	for _, f := range []string{"wait", "drain_delay", "timeout", "took", "took_ms"} {
		if !seen[f] {
			t.Errorf("no log line had the field %s: the run did not exercise it", f)
		}
	}
	if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(canaryKey)) {
		t.Error("the API key appears in the log")
	}
}

func checkDurations(t *testing.T, msg any, prefix string, fields map[string]any, seen map[string]bool) {
	t.Helper()
	for k, v := range fields {
		key := prefix + k
		seen[key] = true
		switch v := v.(type) {
		case map[string]any:
			checkDurations(t, msg, key+".", v, seen)
		case float64:
			switch {
			case durationKey.MatchString(key) && !unitSuffix.MatchString(key):
				t.Errorf("%q: %s=%v is a time span as a bare number: write a time.Duration (it logs as \"505ms\") or name the unit (%s_ms)", msg, key, v, key)
			case v >= 1e6 && !unitSuffix.MatchString(key):
				t.Errorf("%q: %s=%v looks like nanoseconds: log a time.Duration, or name the unit", msg, key, v)
			}
		case string:
			if durationKey.MatchString(key) && !unitSuffix.MatchString(key) && key != "time" {
				if _, err := time.ParseDuration(v); err != nil {
					t.Errorf("%q: %s=%q is not a duration such as 505ms", msg, key, v)
				}
			}
		}
	}
}
