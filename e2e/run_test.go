//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/diff"
)

// commandTimeout bounds one command (a README line, an example client);
// `go run ./examples/go` on a cold build cache is the slowest.
const commandTimeout = 3 * time.Minute

// result is what a finished command printed and its exit code.
type result struct {
	out  string // stdout and stderr, interleaved as written
	code int
}

// newCommand returns a command that is killed, with everything it started,
// when commandTimeout passes; the caller sets Dir and Env and runs it with
// output.
func newCommand(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	// Its own process group, so that a timeout kills what a shell line
	// started too; and killed if this test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// output runs a command from newCommand with stdout and stderr on one pipe,
// interleaved as a terminal shows them. A command that cannot start or
// times out fails the test.
func output(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && cmd.ProcessState.Exited():
		return result{out: out.String(), code: exitErr.ExitCode()}
	case err != nil:
		t.Fatalf("%s: %v (commands are killed after %s)\n%s", cmd, err, commandTimeout, out.String())
	}
	return result{out: out.String()}
}

// normalisations remove from both the expected output (the README's) and a
// command's actual output what legitimately differs between runs. The
// server's address is handled separately (see normalise).
var normalisations = []struct {
	re   *regexp.Regexp
	repl string
}{
	// The catalogue snapshot's age in seconds (grpcurl -v response headers)
	// depends on when the command ran.
	{regexp.MustCompile(`(x-heygen-catalogue-age-seconds: )[0-9.]+`), "${1}<age>"},
	// Durations, as Go prints them (16m39.997s, 250ms) and as protobuf JSON
	// does ("999.997147761s"): retry delays (RetryInfo, rate limits) and
	// timings depend on the clock.
	{regexp.MustCompile(`\b(?:[0-9]+h)?(?:[0-9]+m)?[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s)\b`), "<duration>"},
	// When the gateway started (GetUsage's start_time) depends on when the
	// test ran.
	{regexp.MustCompile(`("startTime": ")[^"]+"`), `${1}<time>"`},
	// When a video was created and rendered and when its presigned URLs
	// expire (a demo video is made while the test runs). A voice's
	// createTime is fixed, but shares the field name.
	{regexp.MustCompile(`("(?:createTime|completeTime|urlExpireTime)": ")[^"]+"`), `${1}<time>"`},
	{regexp.MustCompile(`\bExpires=[0-9]+`), "Expires=<time>"},
	// Trailing blanks: invisible in the rendered README and stripped by
	// many editors.
	{regexp.MustCompile(`(?m)[ \t]+$`), ""},
}

// normalise applies normalisations and drops trailing newlines (a Markdown
// block cannot show them). If addr is set, the server's real address
// becomes localhost:50051, the address README commands use.
func normalise(s, addr string) string {
	if addr != "" {
		s = strings.ReplaceAll(s, addr, "localhost:50051")
	}
	for _, n := range normalisations {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return strings.TrimRight(s, "\n")
}

// compare fails the test with a unified diff when got (normalised) is not
// want (normalised). where says where want comes from, e.g. README.md:57.
func compare(t *testing.T, where, command, want, got, addr string) {
	t.Helper()
	w, g := normalise(want, ""), normalise(got, addr)
	if w == g {
		return
	}
	d := diff.Diff(where+" (what the README shows)", []byte(w+"\n"), "actual output", []byte(g+"\n"))
	t.Errorf("%s: the output of\n  $ %s\ndiffers from what the README shows (after normalising the server address, catalogue ages, durations and trailing blanks):\n%s",
		where, command, d)
}
