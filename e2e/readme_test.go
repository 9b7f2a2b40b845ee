//go:build e2e

package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The README files mark the commands this test runs. An e2e block is a
// marker line, then at once a ```console fence:
//
//	<!-- e2e -->
//	```console
//	$ grpcurl -plaintext localhost:50051 list
//	grpc.health.v1.Health
//	...
//	```
//
// A line starting with "$ " is a command (one ending in "\" continues on
// the next line); the lines after it, up to the next command or the closing
// fence, are its expected output: stdout and stderr as a terminal shows
// them, compared exactly after normalise. Every command must exit 0,
// unless the marker says otherwise for all of the block's commands, as in
// `<!-- e2e exit=67 -->` (so a failing command goes in a block of its own).
// Blocks may appear anywhere in readmeFiles, any number of times.
//
// Each command runs with `bash -c` in the repository's top directory
// against a demo server (localhost:50051 in the command becomes its real
// address, which is also in HEYGEN_GRPC_ADDR), with .bin first on PATH.
// Nothing but files carries over from one command to the next.

// readmeFiles are the Markdown files whose e2e blocks TestREADME runs.
var readmeFiles = []string{"README.md", "examples/README.md"}

// exampleClients must each be run by some e2e command, so that a README
// edit cannot silently stop testing one.
var exampleClients = []string{
	"node examples/node/client.js",
	"go run ./examples/go",
	"/usr/bin/python3 examples/python/client.py",
}

// prerequisites says what must be in place before a README command runs,
// by the program it starts with. A command starting with a program not
// listed here fails: add the program, with what it needs.
var prerequisites = map[string]func(*testing.T){
	"grpcurl":           func(t *testing.T) { tool(t, "grpcurl") },
	"grpc-health-probe": func(t *testing.T) { tool(t, "grpc-health-probe") },
	"node":              needNodeModules,     // the Node example's packages
	"protoc":            needDebianPackages,  // the Python example's stubs
	"/usr/bin/python3":  needDebianPackages,  // the Python example
	"go":                func(*testing.T) {}, // the toolchain running this test
	"bin/heygen-grpc":   func(*testing.T) {}, // built by the README's go build command before it
	"mkdir":             func(*testing.T) {},
}

// readmeCommand is one "$ " command of an e2e block.
type readmeCommand struct {
	where string // file:line of its "$ " line
	text  string // the command, continuation lines included
	want  string // the output the README shows
	exit  int    // the exit code it must end with
}

var (
	markerLine = regexp.MustCompile(`^<!-- e2e((?: +[a-z]+=[^ ]+)*) *-->$`)
	envAssign  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// parseMarkdown returns the commands of the e2e blocks in a Markdown file.
// A malformed marker or block is an error, never a block silently ignored.
func parseMarkdown(name, content string) ([]readmeCommand, error) {
	lines := strings.Split(content, "\n")
	var cmds []readmeCommand
	for i := 0; i < len(lines); i++ {
		marker := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(marker, "<!-- e2e") {
			continue
		}
		where := func(n int) string { return fmt.Sprintf("%s:%d", name, n+1) }
		m := markerLine.FindStringSubmatch(marker)
		if m == nil {
			return nil, fmt.Errorf("%s: malformed e2e marker %q: want <!-- e2e --> or <!-- e2e exit=N -->", where(i), marker)
		}
		exit := 0
		for _, attr := range strings.Fields(m[1]) {
			key, value, _ := strings.Cut(attr, "=")
			n, err := strconv.Atoi(value)
			if key != "exit" || err != nil {
				return nil, fmt.Errorf("%s: unknown e2e marker attribute %q: the only one is exit=N", where(i), attr)
			}
			exit = n
		}
		i++
		if i >= len(lines) || strings.TrimSpace(lines[i]) != "```console" {
			return nil, fmt.Errorf("%s: an e2e marker must be followed at once by a ```console block", where(i-1))
		}
		start := len(cmds)
		for i++; ; i++ {
			if i >= len(lines) {
				return nil, fmt.Errorf("%s: the ```console block after this e2e marker is not closed", where(start))
			}
			line := lines[i]
			switch {
			case strings.TrimSpace(line) == "```":
			case strings.HasPrefix(line, "$ "):
				c := readmeCommand{where: where(i), text: strings.TrimPrefix(line, "$ "), exit: exit}
				for strings.HasSuffix(c.text, `\`) && i+1 < len(lines) {
					i++
					c.text += "\n" + lines[i]
				}
				cmds = append(cmds, c)
				continue
			case len(cmds) == start:
				return nil, fmt.Errorf("%s: output before the first command: an e2e block starts with a \"$ \" line", where(i))
			default:
				c := &cmds[len(cmds)-1]
				c.want += line + "\n"
				continue
			}
			break // the closing fence
		}
		if len(cmds) == start {
			return nil, fmt.Errorf("%s: an e2e block without commands", where(i))
		}
	}
	return cmds, nil
}

// program is the program a shell command starts with, after any NAME=value
// assignments.
func program(command string) string {
	for _, f := range strings.Fields(command) {
		if !envAssign.MatchString(f) {
			return f
		}
	}
	return ""
}

// TestREADME runs every command of the e2e blocks in readmeFiles against a
// demo server and compares its output and exit code with the README's.
func TestREADME(t *testing.T) {
	var cmds []readmeCommand
	for _, f := range readmeFiles {
		content, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseMarkdown(f, string(content))
		if err != nil {
			t.Fatal(err)
		}
		if len(c) == 0 {
			t.Fatalf("%s has no e2e blocks (<!-- e2e --> before a ```console block), so nothing of it would be checked", f)
		}
		cmds = append(cmds, c...)
	}
	for _, client := range exampleClients {
		if !slices.ContainsFunc(cmds, func(c readmeCommand) bool { return strings.Contains(c.text, client) }) {
			t.Errorf("no e2e command in %s runs %q: show the example's output in an e2e block", strings.Join(readmeFiles, " or "), client)
		}
	}
	// Every prerequisite before the server starts: a missing tool is one
	// line, not a failure per command.
	for _, c := range cmds {
		need, ok := prerequisites[program(c.text)]
		if !ok {
			t.Fatalf("%s: the test does not know what %q needs: add it to prerequisites in e2e/readme_test.go", c.where, program(c.text))
		}
		need(t)
	}

	srv := startServer(t)
	for _, c := range cmds {
		t.Run(strings.ReplaceAll(c.where, "/", "_"), func(t *testing.T) {
			cmd := newCommand(t, "bash", "-o", "pipefail", "-c", strings.ReplaceAll(c.text, "localhost:50051", srv.addr))
			cmd.Dir = repoRoot
			cmd.Env = commandEnv("HEYGEN_GRPC_ADDR=" + srv.addr)
			res := output(t, cmd)
			if res.code != c.exit {
				t.Errorf("%s: exit code %d, want %d:\n  $ %s", c.where, res.code, c.exit, c.text)
			}
			compare(t, c.where, c.text, c.want, res.out, srv.addr)
		})
	}
}

// TestParseMarkdown checks the e2e block format, so that a README edit
// that breaks a marker fails instead of silently dropping its commands.
func TestParseMarkdown(t *testing.T) {
	const doc = "# Title\n" +
		"<!-- e2e -->\n" +
		"```console\n" +
		"$ echo a \\\n" +
		"  b\n" +
		"a b\n" +
		"$ true\n" +
		"\n" +
		"```\n" +
		"```console\n" +
		"$ not run: no marker\n" +
		"```\n" +
		"<!-- e2e exit=67 -->\n" +
		"```console\n" +
		"$ false\n" +
		"ERROR:\n" +
		"\tDetails\n" +
		"```\n"
	got, err := parseMarkdown("doc.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []readmeCommand{
		{where: "doc.md:4", text: "echo a \\\n  b", want: "a b\n"},
		{where: "doc.md:7", text: "true", want: "\n"},
		{where: "doc.md:15", text: "false", want: "ERROR:\n\tDetails\n", exit: 67},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseMarkdown:\n got %+v\nwant %+v", got, want)
	}

	for name, bad := range map[string]string{
		"typo in the marker":      "<!-- e2e: begin -->\n```console\n$ true\n```\n",
		"unknown attribute":       "<!-- e2e exits=1 -->\n```console\n$ true\n```\n",
		"not a number":            "<!-- e2e exit=x -->\n```console\n$ true\n```\n",
		"a sh block":              "<!-- e2e -->\n```sh\ntrue\n```\n",
		"a blank line in between": "<!-- e2e -->\n\n```console\n$ true\n```\n",
		"output before a command": "<!-- e2e -->\n```console\nhello\n$ true\n```\n",
		"no commands":             "<!-- e2e -->\n```console\n```\n",
		"not closed":              "<!-- e2e -->\n```console\n$ true\n",
	} {
		if cmds, err := parseMarkdown("bad.md", bad); err == nil {
			t.Errorf("%s: parsed without error into %+v", name, cmds)
		}
	}
	if p := program("HEYGEN_GRPC_TOKEN=x /usr/bin/python3 client.py"); p != "/usr/bin/python3" {
		t.Errorf("program = %q, want /usr/bin/python3", p)
	}
}
