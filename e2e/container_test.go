//go:build container

// TestContainerImage builds the gateway's container image without a
// container engine and holds it to the Dockerfile's promises: no Docker
// daemon and no registry exist on our machines, so no base image can be
// pulled and no container can be started the usual way.
//
//  1. Builds the static binary the Dockerfile builds
//     (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w').
//  2. Builds an OCI image FROM scratch with buildah (vfs storage in the
//     test's temporary directory, chroot isolation) in the layout of the
//     Dockerfile's final stage (gcr.io/distroless/static-debian12:nonroot):
//     /heygen-grpc, the host's CA bundle, /etc/passwd and /etc/group with
//     nonroot 65532:65532, /home/nonroot, /tmp (1777), tzdata; User
//     65532:65532, Entrypoint ["/heygen-grpc"], port 50051/tcp, Env PATH
//     and SSL_CERT_FILE only. A canary HEYGEN_API_KEY is in the environment
//     of the build and of every buildah command, to prove none leaks in.
//  3. Checks the config, as buildah inspect reports it and as the exported
//     OCI layout's config blob holds it.
//  4. Checks the layer: exactly the expected files, owners and modes; no
//     .env, no canary, no HEYGEN_API_KEY=... in any layer or the config.
//  5. Runs the extracted root filesystem as a runtime would: chroot, the
//     config's User as uid:gid with no supplementary groups (so no
//     capabilities), no_new_privs, the config's Env only, its Entrypoint
//     as argv[0], with -demo on a free loopback port; grpc-health-probe
//     must report SERVING, and SIGTERM must end it with exit 0.
//
// It has its own build tag, not e2e's: it needs root (buildah's vfs storage
// owns files as 65532, and the run uses chroot and setuid) and Debian's
// buildah, which the e2e tests, run by developers as themselves, do not.
// It fails, never skips, when either is missing. scripts/container-check.sh
// installs buildah in CI and runs it; by hand, as root:
//
//	./scripts/install-tools.sh try-it   # grpc-health-probe in .bin
//	go test -tags container -count=1 -v ./e2e

package e2e_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	imageRef = "localhost/heygen-grpc:container-test"
	// nonrootID is distroless's nonroot uid and gid.
	nonrootID = 65532
	// imageBuildTimeout bounds `go build` (about a minute on a cold cache).
	imageBuildTimeout = 5 * time.Minute
	// buildahTimeout bounds one buildah command (seconds each).
	buildahTimeout = 2 * time.Minute
	// imageHealthTimeout bounds the wait for SERVING; imageStopTimeout the
	// wait for the exit after SIGTERM.
	imageHealthTimeout = 30 * time.Second
	imageStopTimeout   = 30 * time.Second
	hostCABundle       = "/etc/ssl/certs/ca-certificates.crt"
	hostZoneinfo       = "/usr/share/zoneinfo"
	// prNoNewPrivs is PR_SET_NO_NEW_PRIVS from <linux/prctl.h> (the syscall
	// package does not name it).
	prNoNewPrivs = 38
)

// aptFix is the one line that installs what the image is built from.
const aptFix = "run as root: apt-get update && apt-get install -y buildah ca-certificates tzdata (scripts/container-check.sh does it in CI)"

// ociImage mirrors the fields of an OCI image configuration
// (opencontainers/image-spec, specs-go/v1.Image) that a runtime reads.
type ociImage struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User         string              `json:"User"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		WorkingDir   string              `json:"WorkingDir"`
	} `json:"config"`
}

// secretAssignment is a key set in an environment, wherever it shows up.
var secretAssignment = regexp.MustCompile(`HEYGEN_API_KEY=[^\s"']`)

// TestContainerImage builds, checks and runs the image: see the top of
// this file.
func TestContainerImage(t *testing.T) {
	repo, probe := containerPrerequisites(t)
	dir := t.TempDir()
	canary := "container-test-canary-" + rand.Text()

	start := time.Now()
	bin := buildStaticBinary(t, repo, dir, canary)
	t.Logf("static binary built in %s", time.Since(start).Round(time.Second))

	b := &buildah{dir: dir, canary: canary}
	t.Cleanup(b.cleanup)
	start = time.Now()
	b.build(t, bin)
	t.Logf("image %s built FROM scratch in %s", imageRef, time.Since(start).Round(time.Second))

	inspect := b.run(t, "inspect", "--type", "image", imageRef)
	var inspected struct{ OCIv1 ociImage }
	if err := json.Unmarshal(inspect, &inspected); err != nil {
		t.Fatalf("buildah inspect: %v", err)
	}
	layout := filepath.Join(dir, "oci")
	b.run(t, "push", "--quiet", imageRef, "oci:"+layout+":heygen-grpc")
	configBlob, layers := readLayout(t, layout)
	var img ociImage
	if err := json.Unmarshal(configBlob, &img); err != nil {
		t.Fatalf("the OCI layout's config blob: %v", err)
	}

	t.Run("config", func(t *testing.T) {
		checkImageConfig(t, "buildah inspect", inspected.OCIv1, inspect, canary)
		checkImageConfig(t, "the OCI layout's config blob", img, configBlob, canary)
	})

	rootfs := filepath.Join(dir, "rootfs")
	t.Run("layers", func(t *testing.T) {
		checkLayers(t, layers, rootfs, canary)
	})

	// Run even when a check above failed: the run's own checks say what
	// the process does with that config.
	t.Run("run", func(t *testing.T) {
		runImage(t, img, rootfs, probe)
	})
}

// containerPrerequisites fails the test with the one line that fixes what
// is missing; it returns the repository's top directory and the pinned
// grpc-health-probe.
func containerPrerequisites(t *testing.T) (repo, probe string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the container test needs root (buildah's vfs storage owns files as 65532, and the image runs under chroot): run it as root (CI does): go test -tags container -count=1 ./e2e")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Fatalf("buildah is not on PATH: %s", aptFix)
	}
	if fi, err := os.Stat(hostCABundle); err != nil || fi.Size() == 0 {
		t.Fatalf("%s is missing or empty: %s", hostCABundle, aptFix)
	}
	if _, err := os.Stat(filepath.Join(hostZoneinfo, "UTC")); err != nil {
		t.Fatalf("%s/UTC is missing: %s", hostZoneinfo, aptFix)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repo, "cmd", "heygen-grpc")); err != nil {
		t.Fatalf("cannot find the repository (run from its e2e/ directory, as go test does): %v", err)
	}
	return repo, pinnedProbe(t, repo)
}

// installToolsRow matches a row of GO_TOOLS in scripts/install-tools.sh:
// "name|module|package|version|flags".
var installToolsRow = regexp.MustCompile(`(?m)^\s*"([^|"]+)\|([^|"]+)\|[^|"]+\|([^|"]+)\|`)

// pinnedProbe returns .bin/grpc-health-probe after checking it is the
// version scripts/install-tools.sh pins.
func pinnedProbe(t *testing.T, repo string) string {
	t.Helper()
	const fix = "run ./scripts/install-tools.sh try-it"
	script, err := os.ReadFile(filepath.Join(repo, "scripts", "install-tools.sh"))
	if err != nil {
		t.Fatalf("cannot read the tool pins: %v", err)
	}
	var module, version string
	for _, m := range installToolsRow.FindAllStringSubmatch(string(script), -1) {
		if m[1] == "grpc-health-probe" {
			module, version = m[2], m[3]
		}
	}
	if version == "" {
		t.Fatal("scripts/install-tools.sh pins no grpc-health-probe: add it to GO_TOOLS")
	}
	probe := filepath.Join(repo, ".bin", "grpc-health-probe")
	info, err := buildinfo.ReadFile(probe)
	switch {
	case errors.Is(err, os.ErrNotExist):
		t.Fatalf("grpc-health-probe is missing from .bin: %s", fix)
	case err != nil:
		t.Fatalf("%s: %v: %s", probe, err, fix)
	case info.Main.Path != module || info.Main.Version != version:
		t.Fatalf("%s is %s@%s, want %s@%s: %s", probe, info.Main.Path, info.Main.Version, module, version, fix)
	}
	return probe
}

// ---- 1. the binary ------------------------------------------------------------

// buildStaticBinary builds ./cmd/heygen-grpc as the Dockerfile does, with
// the canary in the build's environment, and checks it is static.
func buildStaticBinary(t *testing.T, repo, dir, canary string) string {
	t.Helper()
	bin := filepath.Join(dir, "heygen-grpc")
	ctx, cancel := context.WithTimeout(context.Background(), imageBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/heygen-grpc")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "HEYGEN_API_KEY="+canary)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/heygen-grpc: %v\n%s", err, out)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(info.Settings, debug.BuildSetting{Key: "CGO_ENABLED", Value: "0"}) {
		t.Fatalf("the binary was not built with CGO_ENABLED=0: %v", info.Settings)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary is dynamically linked: it asks for a program interpreter, which FROM scratch has not")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Fatalf("the binary needs shared libraries %v (%v)", libs, err)
	}
	return bin
}

// ---- 2. the image ---------------------------------------------------------------

// buildah runs buildah on a private vfs storage under dir: nothing touches
// the machine's own containers storage, and removing dir removes every
// layer.
type buildah struct {
	dir, canary string
	container   string
}

func (b *buildah) command(ctx context.Context, args ...string) *exec.Cmd {
	store := filepath.Join(b.dir, "storage")
	full := append([]string{"--storage-driver", "vfs", "--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run")}, args...)
	cmd := exec.CommandContext(ctx, "buildah", full...)
	// The canary is in every buildah command's environment: the build's.
	cmd.Env = append(os.Environ(), "BUILDAH_ISOLATION=chroot", "HEYGEN_API_KEY="+b.canary)
	return cmd
}

// run runs one buildah command and returns its stdout.
func (b *buildah) run(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildahTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := b.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// cleanup removes the working container and the image (their files are
// under dir, which t.TempDir removes after this).
func (b *buildah) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), buildahTimeout)
	defer cancel()
	if b.container != "" {
		_ = b.command(ctx, "rm", b.container).Run()
	}
	_ = b.command(ctx, "rmi", "-f", imageRef).Run()
}

// build writes the final stage's files into a container FROM scratch,
// configures it as the Dockerfile does and commits it.
func (b *buildah) build(t *testing.T, bin string) {
	t.Helper()
	b.container = strings.TrimSpace(string(b.run(t, "from", "scratch")))
	mnt := strings.TrimSpace(string(b.run(t, "mount", b.container)))
	if err := writeFinalStage(mnt, bin); err != nil {
		t.Fatalf("writing the image's files into %s: %v", mnt, err)
	}
	b.run(t, "umount", b.container)
	b.run(t, "config",
		"--user", fmt.Sprintf("%d:%d", nonrootID, nonrootID),
		"--entrypoint", `["/heygen-grpc"]`,
		"--cmd", "",
		"--port", "50051/tcp",
		"--workingdir", "/",
		"--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--env", "SSL_CERT_FILE="+hostCABundle,
		"--created-by", "e2e/container_test.go (layout of the Dockerfile final stage)",
		"--label", "org.opencontainers.image.title=heygen-grpc",
		b.container)
	b.run(t, "commit", "--quiet", "--format", "oci", "--timestamp", "0", "--rm", b.container, imageRef)
	b.container = ""
}

// distroless's /etc/passwd and /etc/group (base-files of distroless/static).
const (
	distrolessPasswd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`
	distrolessGroup = `root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
`
)

// writeFinalStage lays out distroless/static:nonroot plus the binary under
// dir, owned by root except /home/nonroot.
func writeFinalStage(dir, bin string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	type entry struct {
		name     string
		mode     fs.FileMode
		uid, gid int
		from     string // a file to copy; a directory when empty and data is nil
		data     []byte
	}
	entries := []entry{
		{name: ".", mode: 0o755},
		{name: "etc", mode: 0o755},
		{name: "etc/ssl", mode: 0o755},
		{name: "etc/ssl/certs", mode: 0o755},
		{name: "home", mode: 0o755},
		{name: "home/nonroot", mode: 0o700, uid: nonrootID, gid: nonrootID},
		{name: "tmp", mode: 0o777 | fs.ModeSticky},
		{name: "usr", mode: 0o755},
		{name: "usr/share", mode: 0o755},
		{name: "heygen-grpc", mode: 0o755, from: bin},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, from: hostCABundle},
		{name: "etc/passwd", mode: 0o644, data: []byte(distrolessPasswd)},
		{name: "etc/group", mode: 0o644, data: []byte(distrolessGroup)},
	}
	for _, e := range entries {
		switch {
		case e.from != "":
			e.data, err = os.ReadFile(e.from)
			if err != nil {
				return err
			}
			fallthrough
		case e.data != nil:
			err = root.WriteFile(e.name, e.data, e.mode)
		default:
			err = root.MkdirAll(e.name, e.mode.Perm())
		}
		if err == nil {
			err = setOwnerMode(root, e.name, e.uid, e.gid, e.mode)
		}
		if err != nil {
			return err
		}
	}
	return copyTree(root, hostZoneinfo, "usr/share/zoneinfo")
}

// setOwnerMode sets a file's owner, then its mode (chown clears the
// set-id bits, and umask narrows what create and mkdir set).
func setOwnerMode(root *os.Root, name string, uid, gid int, mode fs.FileMode) error {
	if err := root.Lchown(name, uid, gid); err != nil {
		return err
	}
	if mode&fs.ModeSymlink != 0 {
		return nil
	}
	return root.Chmod(name, mode&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid))
}

// copyTree copies the host directory src to dst inside root as `cp -a` and
// `chown -R 0:0` would: modes and symbolic links kept, owned by root.
func copyTree(root *os.Root, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(dst, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			err = root.MkdirAll(name, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(p); err == nil {
				err = root.Symlink(target, name)
			}
		case d.Type().IsRegular():
			var data []byte
			if data, err = os.ReadFile(p); err == nil {
				err = root.WriteFile(name, data, 0o600)
			}
		default:
			return fmt.Errorf("%s: neither a file, a directory nor a symbolic link", p)
		}
		if err != nil {
			return err
		}
		return setOwnerMode(root, name, 0, 0, fi.Mode())
	})
}

// ---- 3. the config ------------------------------------------------------------------

// checkImageConfig holds one view of the image config to the Dockerfile's
// final stage; raw is where it was read from, searched for the key.
func checkImageConfig(t *testing.T, where string, img ociImage, raw []byte, canary string) {
	cfg := img.Config
	want := fmt.Sprintf("%d:%d", nonrootID, nonrootID)
	if cfg.User != want {
		t.Errorf("%s: User is %q, want %q (distroless's nonroot)", where, cfg.User, want)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/heygen-grpc"}) {
		t.Errorf("%s: Entrypoint is %q, want the exec form [\"/heygen-grpc\"]", where, cfg.Entrypoint)
	}
	if len(cfg.Cmd) != 0 {
		t.Errorf("%s: Cmd is %q, want none (arguments come from the runtime)", where, cfg.Cmd)
	}
	if _, ok := cfg.ExposedPorts["50051/tcp"]; !ok || len(cfg.ExposedPorts) != 1 {
		t.Errorf("%s: ExposedPorts is %v, want only 50051/tcp", where, cfg.ExposedPorts)
	}
	if img.OS != "linux" || img.Architecture != runtime.GOARCH {
		t.Errorf("%s: the platform is %s/%s, want linux/%s", where, img.OS, img.Architecture, runtime.GOARCH)
	}
	var names []string
	for _, e := range cfg.Env {
		name, _, _ := strings.Cut(e, "=")
		names = append(names, name)
		if regexp.MustCompile(`(?i)KEY|SECRET|TOKEN|PASSWORD`).MatchString(name) {
			t.Errorf("%s: Env carries a secret-like variable: %s", where, name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"PATH", "SSL_CERT_FILE"}) {
		t.Errorf("%s: Env names are %q, want only PATH and SSL_CERT_FILE", where, names)
	}
	if bytes.Contains(raw, []byte(canary)) {
		t.Errorf("%s: the build's HEYGEN_API_KEY canary is in the image config", where)
	}
	if secretAssignment.Match(raw) {
		t.Errorf("%s: HEYGEN_API_KEY=... is in the image config", where)
	}
}

// ---- 4. the layers ------------------------------------------------------------------

// readLayout reads the one image of an OCI layout, checking every blob's
// digest: its config blob and its layers, uncompressed.
func readLayout(t *testing.T, layout string) (config []byte, layers [][]byte) {
	t.Helper()
	blob := func(digest string) []byte {
		algo, sum, ok := strings.Cut(digest, ":")
		if !ok || algo != "sha256" {
			t.Fatalf("OCI layout: digest %q is not sha256:...", digest)
		}
		data, err := os.ReadFile(filepath.Join(layout, "blobs", algo, sum))
		if err != nil {
			t.Fatalf("OCI layout: %v", err)
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			t.Fatalf("OCI layout: blob %s does not match its digest", digest)
		}
		return data
	}
	type descriptor struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	}
	var index struct{ Manifests []descriptor }
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	indexJSON, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err == nil {
		err = json.Unmarshal(indexJSON, &index)
	}
	if err != nil || len(index.Manifests) != 1 {
		t.Fatalf("OCI layout: index.json (%v): want one manifest, have %d", err, len(index.Manifests))
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatalf("OCI layout: manifest: %v", err)
	}
	for _, l := range manifest.Layers {
		data := blob(l.Digest)
		switch {
		case strings.HasSuffix(l.MediaType, ".tar+gzip"):
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err == nil {
				data, err = io.ReadAll(zr)
			}
			if err != nil {
				t.Fatalf("OCI layout: layer %s: %v", l.Digest, err)
			}
		case strings.HasSuffix(l.MediaType, ".tar"):
		default:
			t.Fatalf("OCI layout: layer %s has media type %s, want an uncompressed or gzip tar", l.Digest, l.MediaType)
		}
		layers = append(layers, data)
	}
	return blob(manifest.Config.Digest), layers
}

// imageFile is what a layer must hold at one path.
type imageFile struct {
	path     string
	kind     byte
	mode     int64
	uid, gid int
}

var (
	// imageFiles are the final stage's files with their owners and modes.
	imageFiles = []imageFile{
		{"/heygen-grpc", tar.TypeReg, 0o755, 0, 0},
		{"/etc/ssl/certs/ca-certificates.crt", tar.TypeReg, 0o644, 0, 0},
		{"/etc/passwd", tar.TypeReg, 0o644, 0, 0},
		{"/etc/group", tar.TypeReg, 0o644, 0, 0},
		{"/tmp", tar.TypeDir, 0o1777, 0, 0},
		{"/home/nonroot", tar.TypeDir, 0o700, nonrootID, nonrootID},
	}
	// imageTree is everything the layer may hold: the binary, /etc,
	// /home, /tmp and /usr/share/zoneinfo.
	imageTree = regexp.MustCompile(`^/(heygen-grpc|etc|etc/ssl|etc/ssl/certs|etc/ssl/certs/ca-certificates\.crt|etc/passwd|etc/group|home|home/nonroot|tmp|usr|usr/share|usr/share/zoneinfo(/.*)?)$`)
)

// checkLayers checks the layers' files and secrets and extracts them into
// rootfs, owners and modes kept, as a runtime does.
func checkLayers(t *testing.T, layers [][]byte, rootfs, canary string) {
	if len(layers) != 1 {
		t.Errorf("the image has %d layers, want the one FROM scratch", len(layers))
	}
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = root.Close() }()
	entries := map[string]*tar.Header{}
	for i, data := range layers {
		if bytes.Contains(data, []byte(canary)) {
			t.Errorf("layer %d: the build's HEYGEN_API_KEY canary is in the layer", i)
		}
		if secretAssignment.Match(data) {
			t.Errorf("layer %d: HEYGEN_API_KEY=... is in the layer", i)
		}
		tr := tar.NewReader(bytes.NewReader(data))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			name := path.Clean("/" + h.Name)
			base := path.Base(name)
			if strings.HasPrefix(base, ".wh.") {
				t.Errorf("layer %d: whiteout %s (one layer FROM scratch expected)", i, name)
			}
			if base == ".env" {
				t.Errorf("layer %d: %s: a .env file is in the image", i, name)
			}
			entries[name] = h
			if err := extract(root, name, h, tr); err != nil {
				t.Fatalf("layer %d: extracting %s: %v", i, name, err)
			}
		}
	}
	for _, f := range imageFiles {
		h := entries[f.path]
		switch {
		case h == nil:
			t.Errorf("%s is missing", f.path)
			continue
		case h.Typeflag != f.kind:
			t.Errorf("%s: tar type %q, want %q", f.path, h.Typeflag, f.kind)
		}
		if mode := h.Mode & 0o7777; mode != f.mode {
			t.Errorf("%s: mode %#o, want %#o", f.path, mode, f.mode)
		}
		if h.Uid != f.uid || h.Gid != f.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", f.path, h.Uid, h.Gid, f.uid, f.gid)
		}
	}
	if entries["/usr/share/zoneinfo/UTC"] == nil {
		t.Error("/usr/share/zoneinfo/UTC is missing")
	}
	var extra []string
	for name := range entries {
		if name != "/" && !imageTree.MatchString(name) {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		t.Errorf("unexpected files in the image: %q", extra[:min(len(extra), 10)])
	}
	passwd, err1 := root.ReadFile("etc/passwd")
	group, err2 := root.ReadFile("etc/group")
	ca, err3 := root.ReadFile("etc/ssl/certs/ca-certificates.crt")
	hostCA, err4 := os.ReadFile(hostCABundle)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^nonroot:x:65532:65532:`).Match(passwd) {
		t.Error("/etc/passwd has no nonroot:x:65532:65532")
	}
	if !regexp.MustCompile(`(?m)^nonroot:x:65532:`).Match(group) {
		t.Error("/etc/group has no nonroot:x:65532")
	}
	if !bytes.Equal(ca, hostCA) {
		t.Error("the CA bundle differs from the host's")
	}
	if !t.Failed() {
		t.Logf("%d layer(s), %d entries: no key, no canary, no .env", len(layers), len(entries))
	}
}

// extract writes one tar entry under root with its owner and mode; os.Root
// keeps every path, symbolic links included, inside the root filesystem.
func extract(root *os.Root, name string, h *tar.Header, r io.Reader) error {
	rel := strings.TrimPrefix(name, "/")
	if rel == "" {
		rel = "."
	}
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return err
		}
	case tar.TypeReg:
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if err := errors.Join(err, f.Close()); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := root.Symlink(h.Linkname, rel); err != nil {
			return err
		}
	case tar.TypeLink:
		if err := root.Link(strings.TrimPrefix(path.Clean("/"+h.Linkname), "/"), rel); err != nil {
			return err
		}
	default:
		return fmt.Errorf("tar type %q is not expected in this image", h.Typeflag)
	}
	return setOwnerMode(root, rel, h.Uid, h.Gid, h.FileInfo().Mode())
}

// ---- 5. run it ------------------------------------------------------------------

// runImage runs the rootfs as a runtime runs the image config: argv =
// Entrypoint + Cmd + arguments, uid:gid = User, environment = Env, cwd =
// WorkingDir, root = the layers.
func runImage(t *testing.T, img ociImage, rootfs, probe string) {
	cfg := img.Config
	uidText, gidText, ok := strings.Cut(cfg.User, ":")
	uid, err1 := strconv.ParseUint(uidText, 10, 32)
	gid, err2 := strconv.ParseUint(gidText, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("User %q is not uid:gid (a runtime would look names up in /etc/passwd; this image sets numbers)", cfg.User)
	}
	if len(cfg.Entrypoint) == 0 {
		t.Fatal("the config has no Entrypoint")
	}
	addr := freeLoopbackAddr(t)
	workDir := cmp.Or(cfg.WorkingDir, "/")
	logPath := filepath.Join(t.TempDir(), "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()

	args := append(slices.Concat(cfg.Entrypoint[1:], cfg.Cmd), "-demo", "-addr", addr, "-log-format", "json")
	cmd := &exec.Cmd{
		Path:   cfg.Entrypoint[0], // resolved inside the chroot
		Args:   append([]string{cfg.Entrypoint[0]}, args...),
		Env:    slices.Clone(cfg.Env),
		Dir:    workDir,
		Stdout: logFile,
		Stderr: logFile,
		SysProcAttr: &syscall.SysProcAttr{
			Chroot: rootfs,
			// No supplementary groups; setuid away from 0 drops every
			// capability.
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	t.Logf("running %q in the image's rootfs as %s, cwd %s", cmd.Args, cfg.User, workDir)
	done := startNoNewPrivs(t, cmd)
	serverLog := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	var exited error
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			t.Logf("killed the server still running: %v", <-done)
		}
	})

	// Healthy: SERVING overall and for heygen.v1.AvatarsService.
	health := func(extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, probe, append([]string{"-addr=" + addr, "-connect-timeout=1s", "-rpc-timeout=1s"}, extra...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(imageHealthTimeout)
	for {
		_, errAll := health()
		out, errSvc := health("-service=heygen.v1.AvatarsService")
		if errAll == nil && errSvc == nil {
			if !strings.Contains(out, "status: SERVING") {
				t.Fatalf("grpc-health-probe -service=heygen.v1.AvatarsService printed %q, want status: SERVING", out)
			}
			break
		}
		select {
		case exited = <-done:
			stopped = true
			t.Fatalf("the server in the image's rootfs exited before becoming healthy (%v):\n%s", exited, serverLog())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server in the image's rootfs was not healthy within %s (%v, %v):\n%s", imageHealthTimeout, errAll, errSvc, serverLog())
		}
	}
	t.Log("grpc-health-probe: SERVING (overall and heygen.v1.AvatarsService)")

	checkProcess(t, cmd.Process.Pid, rootfs, cfg.Env)
	if !strings.Contains(serverLog(), `"msg":"serving heygen.v1.AvatarsService"`) {
		t.Errorf("no \"serving heygen.v1.AvatarsService\" log line:\n%s", serverLog())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case exited = <-done:
		stopped = true
	case <-time.After(imageStopTimeout):
		t.Fatalf("the server did not exit within %s of SIGTERM:\n%s", imageStopTimeout, serverLog())
	}
	if code := cmd.ProcessState.ExitCode(); exited != nil || code != 0 {
		t.Fatalf("after SIGTERM: %v, exit code %d, want 0:\n%s", exited, code, serverLog())
	}
	t.Log("SIGTERM: exit 0")
}

// startNoNewPrivs starts cmd with no_new_privs set, as
// allowPrivilegeEscalation: false does, and returns a channel that
// receives Wait's result. The syscall package sets no_new_privs for no
// child, so a goroutine locked to its own thread sets it on that thread
// (children inherit it), starts and waits for cmd there, and ends without
// unlocking, so the thread ends with it and never runs other goroutines.
// The thread outlives the child, which Pdeathsig ties to it.
func startNoNewPrivs(t *testing.T, cmd *exec.Cmd) <-chan error {
	t.Helper()
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prNoNewPrivs, 1, 0, 0, 0, 0); errno != 0 {
			started <- fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", errno)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s in the image's rootfs: %v", cmd.Path, err)
	}
	return done
}

// checkProcess reads /proc for what the kernel says the server runs as.
// The uid and gid must be nonroot's whatever the config says (the config
// check reports the config itself).
func checkProcess(t *testing.T, pid int, rootfs string, env []string) {
	proc := func(name string) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	status := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(proc("status")))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			status[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	ids := strings.Repeat(strconv.Itoa(nonrootID)+" ", 3) + strconv.Itoa(nonrootID)
	for _, c := range []struct{ field, want, what string }{
		{"Uid", ids, "real, effective, saved and fs uid"},
		{"Gid", ids, "real, effective, saved and fs gid"},
		{"Groups", "", "supplementary groups"},
		{"CapEff", "0000000000000000", "effective capabilities"},
		{"CapPrm", "0000000000000000", "permitted capabilities"},
		{"CapAmb", "0000000000000000", "ambient capabilities"},
		{"NoNewPrivs", "1", "no_new_privs"},
	} {
		if got, ok := status[c.field]; !ok || got != c.want {
			t.Errorf("the server's %s (/proc/%d/status %s) are %q, want %q", c.what, pid, c.field, got, c.want)
		}
	}
	want, err := filepath.EvalSymlinks(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err != nil || got != want {
		t.Errorf("the server's root is %q (%v), want the image rootfs %s", got, err, want)
	}
	if got := strings.Split(strings.TrimSuffix(proc("environ"), "\x00"), "\x00"); !slices.Equal(got, env) {
		t.Errorf("the server's environment is %q, want only the config's Env %q", got, env)
	}
	if argv0, _, _ := strings.Cut(proc("cmdline"), "\x00"); argv0 != "/heygen-grpc" {
		t.Errorf("the server's argv[0] is %q, want the Entrypoint /heygen-grpc", argv0)
	}
	if !t.Failed() {
		t.Logf("process: uid/gid %d:%d, no groups, no capabilities, no_new_privs, root = image rootfs, env = config Env", nonrootID, nonrootID)
	}
}

// freeLoopbackAddr returns a loopback address with a port nothing listens
// on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
