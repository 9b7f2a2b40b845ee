package deploy

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The CLIs a user deploys with render the same kustomizations again: the
// in-process render is what the other tests check, so it must be what
// `kustomize build` and `kubectl kustomize` produce.

const (
	// kustomizeModule is the module the pinned CLI is built from.
	kustomizeModule = "sigs.k8s.io/kustomize/kustomize/v5"
	// kustomizeAPI is the library both the CLI and renderDir render with.
	kustomizeAPI = "sigs.k8s.io/kustomize/api"
	// cliTimeout bounds one render by a CLI (a fraction of a second).
	cliTimeout = 2 * time.Minute
)

// kustomizePin matches the KUSTOMIZE_VERSION=... line of
// scripts/k8s-check.sh, which installs the CLI into .bin.
var kustomizePin = regexp.MustCompile(`(?m)^KUSTOMIZE_VERSION=(v[0-9][^\s#]*)`)

// pinnedKustomize returns the path of .bin/kustomize after checking it is
// the version scripts/k8s-check.sh pins, built on the kustomize API this
// module renders with (so the two renders must hold the same objects).
func pinnedKustomize(t *testing.T) string {
	t.Helper()
	const fix = "run scripts/k8s-check.sh (it installs the pinned kustomize into .bin)"
	script, err := os.ReadFile(filepath.Join("..", "scripts", "k8s-check.sh"))
	if err != nil {
		t.Fatalf("cannot read the kustomize pin: %v", err)
	}
	m := kustomizePin.FindSubmatch(script)
	if m == nil {
		t.Fatal("scripts/k8s-check.sh has no KUSTOMIZE_VERSION=v... line")
	}
	version := string(m[1])
	path, err := filepath.Abs(filepath.Join("..", ".bin", "kustomize"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		t.Fatalf("%s is missing: %s", path, fix)
	case err != nil:
		t.Fatalf("%s: %v: %s", path, err, fix)
	case info.Main.Path != kustomizeModule || info.Main.Version != version:
		t.Fatalf("%s is %s@%s, want %s@%s: %s", path, info.Main.Path, info.Main.Version, kustomizeModule, version, fix)
	}
	// A test binary records no dependencies: ask go which version this
	// module selects.
	lib, err := renderCLI("go", "list", "-m", "-f", "{{.Version}}", kustomizeAPI)
	if err != nil {
		t.Fatal(err)
	}
	if cli, lib := depVersion(info, kustomizeAPI), strings.TrimSpace(string(lib)); cli == "" || cli != lib {
		t.Fatalf("%s is built on %s %q but deploy/go.mod renders with %q: pin the kustomize release that uses %s %s in scripts/k8s-check.sh", path, kustomizeAPI, cli, lib, kustomizeAPI, lib)
	}
	return path
}

func depVersion(info *debug.BuildInfo, module string) string {
	for _, d := range info.Deps {
		if d.Path == module {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// renderCLI runs a CLI that prints a kustomization's render on stdout.
func renderCLI(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// splitDocs splits a multi-document YAML stream as the CLIs print it.
func splitDocs(out []byte) [][]byte {
	var docs [][]byte
	for d := range strings.SplitSeq(string(out), "\n---\n") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(strings.TrimSuffix(d, "\n")+"\n"))
		}
	}
	return docs
}

// TestKustomizeCLI renders every kustomization with the pinned kustomize
// CLI: it must print the in-process render's objects (same kustomize API;
// only the order differs, the CLI sorts by kind), decode strictly and hold
// to the same invariants.
func TestKustomizeCLI(t *testing.T) {
	bin := pinnedKustomize(t)
	for _, r := range renders {
		t.Run(r.dir, func(t *testing.T) {
			checkCLIRender(t, r.dir, r.checks, bin, "build", r.dir)
		})
	}
}

// TestKubectlKustomize renders every kustomization with `kubectl
// kustomize`, as `kubectl apply -k` does, when a kubectl is installed:
// whatever kustomize it embeds, it must print the objects the other tests
// check, decode strictly and hold to the same invariants.
func TestKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH: the kustomizations are rendered with the pinned kustomize CLI only (TestKustomizeCLI)")
	}
	for _, r := range renders {
		t.Run(r.dir, func(t *testing.T) {
			checkCLIRender(t, r.dir, r.checks, kubectl, "kustomize", r.dir)
		})
	}
}

// checkCLIRender runs a CLI that prints dir's render and compares it with
// the in-process render object by object, as data (the YAML's key order
// and layout are the printer's business), then holds it to the checks.
func checkCLIRender(t *testing.T, dir string, checks []check, cli string, args ...string) {
	t.Helper()
	want, err := renderDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := renderCLI(cli, args...)
	if err != nil {
		t.Fatal(err)
	}
	got := splitDocs(out)
	name := filepath.Base(cli) + " " + strings.Join(args, " ")
	wantObjs, err := byIdentity(want)
	if err != nil {
		t.Fatalf("the in-process render of %s: %v", dir, err)
	}
	gotObjs, err := byIdentity(got)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for id, w := range wantObjs {
		g, ok := gotObjs[id]
		switch {
		case !ok:
			t.Errorf("%s does not print %s, which the in-process render has", name, id)
		case !bytes.Equal(g, w):
			t.Errorf("%s prints %s differently from the in-process render: %s", name, id, firstDifference(w, g))
		}
	}
	for id := range gotObjs {
		if _, ok := wantObjs[id]; !ok {
			t.Errorf("%s prints %s, which the in-process render does not have", name, id)
		}
	}
	b, err := decodeBundle(dir, got)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, s := range run(b, checks) {
		t.Errorf("%s: %s", name, s)
	}
}

// byIdentity keys each document's JSON form (map keys sorted) by
// apiVersion/kind/namespace/name; a duplicate identity is an error.
func byIdentity(docs [][]byte) (map[string][]byte, error) {
	objs := map[string][]byte{}
	for i, doc := range docs {
		var id struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		j, err := yaml.YAMLToJSON(doc)
		if err == nil {
			err = yaml.Unmarshal(doc, &id)
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		key := fmt.Sprintf("%s/%s %s/%s", id.APIVersion, id.Kind, id.Metadata.Namespace, id.Metadata.Name)
		if _, dup := objs[key]; dup {
			return nil, fmt.Errorf("document %d: %s twice", i+1, key)
		}
		objs[key] = j
	}
	return objs, nil
}

// firstDifference names the first field where two objects' JSON forms
// differ, with both values.
func firstDifference(want, got []byte) string {
	var w, g any
	if err := errors.Join(json.Unmarshal(want, &w), json.Unmarshal(got, &g)); err != nil {
		return err.Error()
	}
	path, wv, gv := diffPath("", w, g)
	wj, _ := json.Marshal(wv)
	gj, _ := json.Marshal(gv)
	return fmt.Sprintf("%s is %s in-process, %s from the CLI", path, wj, gj)
}

// diffPath walks two decoded JSON values to the first place they differ.
func diffPath(path string, w, g any) (string, any, any) {
	switch wt := w.(type) {
	case map[string]any:
		if gt, ok := g.(map[string]any); ok {
			keys := slices.Sorted(maps.Keys(wt))
			for k := range gt {
				if _, ok := wt[k]; !ok {
					keys = append(keys, k)
				}
			}
			for _, k := range keys {
				if !reflect.DeepEqual(wt[k], gt[k]) {
					return diffPath(path+"."+k, wt[k], gt[k])
				}
			}
		}
	case []any:
		if gt, ok := g.([]any); ok && len(gt) == len(wt) {
			for i := range wt {
				if !reflect.DeepEqual(wt[i], gt[i]) {
					return diffPath(fmt.Sprintf("%s[%d]", path, i), wt[i], gt[i])
				}
			}
		}
	}
	return path, w, g
}
