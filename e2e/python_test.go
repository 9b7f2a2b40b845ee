//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var pythonStubsOnce once

// pythonStubs generates the Python example's stubs from proto/ (and its
// google.rpc mirrors) into a directory for this run and returns it, for
// PYTHONPATH. Generated at test time, never committed: they cannot go
// stale as proto/ grows, and they always match Debian's protobuf runtime.
func pythonStubs(t *testing.T) string {
	t.Helper()
	needDebianPackages(t)
	dir := filepath.Join(scratch, "python-stubs")
	pythonStubsOnce.check(t, func() string {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		protoc := exec.CommandContext(ctx, "protoc", "-I", "proto", "-I", "examples/python/proto",
			"--python_out="+dir, "--grpc_out="+dir, "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
			"heygen/v1/avatars.proto", "heygen/v1/voices.proto", "heygen/v1/videos.proto", "google/rpc/status.proto", "google/rpc/error_details.proto")
		protoc.Dir = repoRoot
		if out, err := protoc.CombinedOutput(); err != nil {
			return fmt.Sprintf("protoc for the Python example: %v: %s", err, out)
		}
		return ""
	})
	return dir
}

// TestPythonClient runs examples/python against a gateway that requires
// bearer tokens, to show that the client really sends its token (the plain
// demo accepts anonymous callers), and with a caller over its rate limit,
// to show that it decodes RetryInfo from the status details. (TestREADME
// compares its output against the plain demo with examples/README.md.)
func TestPythonClient(t *testing.T) {
	stubs := pythonStubs(t)
	const (
		token        = "hgt_e2e-python-example-token-not-a-secret"
		limitedToken = "hgt_e2e-python-limited-token-not-a-secret"
	)
	callers := filepath.Join(t.TempDir(), "callers.txt")
	content := "python-example: " + hashToken(t, token) + "\npython-limited: " + hashToken(t, limitedToken) + "\n"
	if err := os.WriteFile(callers, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// python-limited may make 2 calls, then one every 1000 s.
	srv := startServer(t, "-callers-file", callers, "-caller-rate-limits", "python-limited=0.001:2")

	client := func(t *testing.T, token string) result {
		t.Helper()
		cmd := newCommand(t, "/usr/bin/python3", "examples/python/client.py")
		cmd.Dir = repoRoot
		cmd.Env = commandEnv("HEYGEN_GRPC_ADDR="+srv.addr, "HEYGEN_GRPC_TOKEN="+token, "PYTHONPATH="+stubs)
		return output(t, cmd)
	}

	t.Run("its token names it in every call", func(t *testing.T) {
		res := client(t, token)
		if res.code != 0 || !strings.HasSuffix(res.out, "OK: all checks passed\n") {
			t.Fatalf("exit code %d, want 0 and OK:\n%s", res.code, res.out)
		}
		// Info lines reach the log within 100 ms of the call (README, Logs).
		var logged []logRecord
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			logged = logged[:0]
			for _, r := range srv.logs() {
				if r.Msg == "finished call" && r.Service == "heygen.v1.AvatarsService" {
					logged = append(logged, r)
				}
			}
			if len(logged) >= 6 || time.Now().After(deadline) {
				break
			}
		}
		calls := len(logged)
		for _, r := range logged {
			if r.Caller != "python-example" {
				t.Errorf("%s %s was logged with caller %q, want python-example", r.Method, r.Code, r.Caller)
			}
		}
		// 3 ListAvatars pages, 1 GetAvatar, 2 failing GetAvatars.
		if calls != 6 {
			t.Errorf("the server logged %d AvatarsService calls, want 6", calls)
		}
	})

	t.Run("without a token it stops at UNAUTHENTICATED", func(t *testing.T) {
		res := client(t, "")
		want := "FAIL: ListAvatars page 1: code=UNAUTHENTICATED reason=CALLER_UNAUTHENTICATED domain=heygen-grpc.gateway retry_delay=none"
		if res.code != 1 || !strings.Contains(res.out, want) {
			t.Errorf("exit code %d, want 1 and %q:\n%s", res.code, want, res.out)
		}
	})

	t.Run("over its rate limit it reports RetryInfo", func(t *testing.T) {
		res := client(t, limitedToken)
		m := regexp.MustCompile(`FAIL: ListAvatars page 3: code=RESOURCE_EXHAUSTED reason=CALLER_RATE_LIMITED domain=heygen-grpc.gateway retry_delay=([0-9.]+)s`).FindStringSubmatch(res.out)
		if res.code != 1 || m == nil {
			t.Fatalf("exit code %d, want 1 and a CALLER_RATE_LIMITED failure with retry_delay on page 3:\n%s", res.code, res.out)
		}
		// One token every 1000 s, and the burst of 2 just spent.
		if d, err := strconv.ParseFloat(m[1], 64); err != nil || d < 900 || d > 1000 {
			t.Errorf("retry_delay=%ss, want about 1000s", m[1])
		}
	})
}

// hashToken returns the callers-file hash of a token, from the binary's
// own `hash-token` command.
func hashToken(t *testing.T, token string) string {
	t.Helper()
	cmd := newCommand(t, serverBin, "hash-token")
	cmd.Env = hermeticEnv()
	cmd.Stdin = strings.NewReader(token + "\n")
	res := output(t, cmd)
	if res.code != 0 || !strings.HasPrefix(res.out, "sha256:") {
		t.Fatalf("heygen-grpc hash-token: exit code %d:\n%s", res.code, res.out)
	}
	return strings.TrimSpace(res.out)
}
