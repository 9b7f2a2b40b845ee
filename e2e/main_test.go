//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds `go build ./cmd/heygen-grpc` in TestMain (a cold
// build cache on 2 cores takes about a minute).
const buildTimeout = 5 * time.Minute

var (
	// repoRoot is the repository's top directory (this package's parent).
	repoRoot string
	// serverBin is the heygen-grpc binary TestMain builds once for all tests.
	serverBin string
	// scratch is a directory for the whole run, removed when it ends.
	scratch string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "cmd", "heygen-grpc"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the repository (run from its e2e/ directory, as go test does): %v\n", err)
		return 1
	}
	repoRoot = root
	scratch, err = os.MkdirTemp("", "heygen-grpc-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(scratch) }()

	serverBin = filepath.Join(scratch, "heygen-grpc")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", serverBin, "./cmd/heygen-grpc")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/heygen-grpc: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// commandEnv is the environment of the commands the tests run (README
// commands, example clients): the test's own, with the repository's .bin
// first on PATH, the machine's Go toolchain, and the example clients'
// settings (HEYGEN_GRPC_*) set only by the test.
func commandEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "HEYGEN_GRPC_") || strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "GOTOOLCHAIN=")
	})
	env = append(env,
		"PATH="+filepath.Join(repoRoot, ".bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOTOOLCHAIN=local",
	)
	return append(env, extra...)
}

// hermeticEnv is the environment of the server and of the configuration
// error runs: nothing from the developer's environment can configure them.
func hermeticEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
}

// ---- prerequisites ----------------------------------------------------------
//
// Every check fails the test with one line saying how to fix it; none
// installs anything outside the repository or skips.

// tool returns the path of a tool from .bin, checking it is the version
// scripts/install-tools.sh pins.
func tool(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(repoRoot, ".bin", name)
	if msg := checkTool(name, path); msg != "" {
		t.Fatal(msg)
	}
	return path
}

// pinnedTool matches a row of GO_TOOLS in scripts/install-tools.sh:
// "name|module|package|version|flags".
var pinnedTool = regexp.MustCompile(`(?m)^\s*"([^|"]+)\|([^|"]+)\|[^|"]+\|([^|"]+)\|`)

func checkTool(name, path string) string {
	install := "run ./scripts/install-tools.sh"
	script, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "install-tools.sh"))
	if err != nil {
		return fmt.Sprintf("cannot read the tool pins: %v", err)
	}
	var module, version string
	for _, m := range pinnedTool.FindAllStringSubmatch(string(script), -1) {
		if m[1] == name {
			module, version = m[2], m[3]
		}
	}
	if version == "" {
		return fmt.Sprintf("scripts/install-tools.sh pins no %s: add it to GO_TOOLS", name)
	}
	info, err := buildinfo.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("%s is missing from .bin: %s", name, install)
	case err != nil:
		return fmt.Sprintf("%s: %v: %s", path, err, install)
	case info.Main.Path != module || info.Main.Version != version:
		return fmt.Sprintf("%s is %s@%s, want %s@%s: %s", path, info.Main.Path, info.Main.Version, module, version, install)
	}
	return ""
}

// once runs a prerequisite's setup at most once per run and remembers its
// one-line failure, so every test needing it fails with the same message.
type once struct {
	sync.Once
	msg string
}

func (o *once) check(t *testing.T, setup func() string) {
	t.Helper()
	o.Do(func() { o.msg = setup() })
	if o.msg != "" {
		t.Fatal(o.msg)
	}
}

var debianOnce, nodeOnce once

// packageList matches the PACKAGES=(...) line of
// scripts/install-debian-packages.sh, the one list of Debian packages.
var packageList = regexp.MustCompile(`(?m)^PACKAGES=\(([^)]*)\)`)

// needDebianPackages checks that the Debian packages the tests need (the
// Python example's, redis-server, prometheus) are installed.
func needDebianPackages(t *testing.T) {
	t.Helper()
	debianOnce.check(t, func() string {
		script, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "install-debian-packages.sh"))
		m := packageList.FindSubmatch(script)
		if err != nil || m == nil {
			return fmt.Sprintf("cannot read PACKAGES=(...) from scripts/install-debian-packages.sh: %v", err)
		}
		pkgs := strings.Fields(string(m[1]))
		fix := fmt.Sprintf("run as root: apt-get update && apt-get install -y %s", strings.Join(pkgs, " "))
		out, err := exec.Command("dpkg-query", append([]string{"-W", "-f=${Package} ${db:Status-Abbrev}\n"}, pkgs...)...).Output()
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			return fmt.Sprintf("cannot ask dpkg-query which Debian packages are installed (%v): the Python example needs Debian's %s", err, strings.Join(pkgs, " "))
		}
		installed := map[string]bool{}
		for line := range strings.Lines(string(out)) {
			if f := strings.Fields(line); len(f) == 2 && f[1] == "ii" {
				installed[f[0]] = true
			}
		}
		var missing []string
		for _, p := range pkgs {
			if !installed[p] {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("the tests need Debian packages that are not installed (%s): %s", strings.Join(missing, " "), fix)
		}
		return ""
	})
}

// needNodeModules runs `npm ci` in examples/node unless node_modules was
// installed from the current package-lock.json (npm ci wipes node_modules,
// and needs the npm registry).
func needNodeModules(t *testing.T) {
	t.Helper()
	nodeOnce.check(t, func() string {
		dir := filepath.Join(repoRoot, "examples", "node")
		var lock []byte
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return err.Error()
			}
			lock = append(lock, b...)
		}
		sum := sha256.Sum256(lock)
		want := hex.EncodeToString(sum[:]) + "\n"
		stamp := filepath.Join(dir, "node_modules", ".e2e-installed")
		if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
			return ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// --ignore-scripts: nothing from the registry runs at install time.
		npm := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
		npm.Dir = dir
		var out bytes.Buffer
		npm.Stdout, npm.Stderr = &out, &out
		if err := npm.Run(); err != nil {
			return fmt.Sprintf("npm ci in examples/node failed (%v; Node.js 18+ with npm and the npm registry are needed): %s", err, strings.TrimSpace(out.String()))
		}
		if err := os.WriteFile(stamp, []byte(want), 0o600); err != nil {
			return err.Error()
		}
		return ""
	})
}
