#!/usr/bin/env bash
# Builds the gateway's container image without a container engine and
# checks it, as far as this machine allows (no Docker daemon, no registry: no
# base image can be pulled).
#
#  1. Builds the static binary the Dockerfile builds
#     (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w').
#  2. Builds an OCI image FROM scratch with buildah (vfs storage in a private
#     temporary directory, chroot isolation) with the layout of the
#     Dockerfile's final stage (gcr.io/distroless/static-debian12:nonroot):
#     /heygen-grpc, the CA bundle at /etc/ssl/certs/ca-certificates.crt (from
#     the host's ca-certificates), /etc/passwd and /etc/group with
#     nonroot:x:65532:65532, /home/nonroot, /tmp (1777), tzdata; config
#     User 65532:65532, Entrypoint ["/heygen-grpc"], ExposedPorts 50051/tcp,
#     Env PATH and SSL_CERT_FILE only. A canary HEYGEN_API_KEY is exported
#     in this script's environment during the build, to prove none leaks in.
#  3. Inspects the image config (buildah inspect) and asserts user,
#     entrypoint, exposed port and a secret-free env.
#  4. Exports the image (buildah push to an OCI layout), and checks the
#     layer: exactly the expected files with the expected owners and modes,
#     no .env, no canary and no HEYGEN_API_KEY=... anywhere in the layers or
#     the config.
#  5. Runs the image's root filesystem the way a runtime would: extracted
#     layers as root (chroot), the config's Entrypoint as argv[0], the
#     config's User as uid:gid (no supplementary groups, no capabilities,
#     no_new_privs), the config's Env only; with -demo on a free loopback
#     port; grpc-health-probe must report SERVING (overall and
#     heygen.v1.AvatarsService); then SIGTERM must end it with exit 0.
#  6. Removes the container, the image and the storage (trap).
#
# Needs root (buildah's vfs storage with files owned by 65532, and chroot);
# CI runs as root. Needs Debian's buildah, ca-certificates and tzdata:
# installs them with apt-get only in CI (HEYGEN_GRPC_CI=1, set by .ci/run,
# as scripts/install-debian-packages.sh does); elsewhere it fails with the
# apt-get command to run. Installs grpc-health-probe (pinned, as
# scripts/install-tools.sh) into $REPO/.bin. Runs from any directory.
#
#   scripts/container-check.sh
set -euo pipefail

GRPC_HEALTH_PROBE_VERSION=v0.4.62 # same pin as scripts/install-tools.sh
IMAGE=localhost/heygen-grpc:container-check
NONROOT=65532

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.bin"
export GOTOOLCHAIN=local

log() { printf 'container-check: %s\n' "$*"; }
ok() { printf 'container-check: ok: %s\n' "$*"; }
die() {
  printf 'container-check: FAIL: %s\n' "$*" >&2
  exit 1
}

((EUID == 0)) || die "run as root (CI does): buildah's vfs storage must own files as uid $NONROOT, and the run step uses chroot"
for cmd in go python3 chroot setpriv; do
  command -v "$cmd" >/dev/null || die "$cmd is not on PATH"
done

# ---- tools ---------------------------------------------------------------------
# apt_install PACKAGE...: only in CI; a developer's machine is not changed.
apt_install() {
  [[ "${HEYGEN_GRPC_CI:-}" == 1 ]] ||
    die "Debian's $* is not installed (not installing outside CI; run as root: apt-get update && apt-get install -y buildah ca-certificates tzdata)"
  log "HEYGEN_GRPC_CI=1: apt-get install -y $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "$@" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y "$@" >/dev/null; } ||
    die "apt-get install $* failed"
}
command -v buildah >/dev/null || apt_install buildah
[[ -s /etc/ssl/certs/ca-certificates.crt ]] || apt_install ca-certificates
[[ -d /usr/share/zoneinfo ]] || apt_install tzdata
log "$(buildah --version)"

probe="$BIN/grpc-health-probe"
if ! [[ -x "$probe" ]] || ! go version -m "$probe" 2>/dev/null |
  awk -v v="$GRPC_HEALTH_PROBE_VERSION" '$1 == "mod" && $2 == "github.com/grpc-ecosystem/grpc-health-probe" && $3 == v { f = 1 } END { exit !f }'; then
  log "installing grpc-health-probe $GRPC_HEALTH_PROBE_VERSION into $BIN"
  mkdir -p "$BIN"
  GOBIN="$BIN" go install "github.com/grpc-ecosystem/grpc-health-probe@$GRPC_HEALTH_PROBE_VERSION" ||
    die "go install grpc-health-probe failed"
fi

# ---- cleanup -------------------------------------------------------------------
TMP="$(mktemp -d)"
STORE="$TMP/storage"
# Private storage: nothing touches the machine's own containers storage, and
# removing $TMP removes every layer.
BUILDAH=(buildah --storage-driver vfs --root "$STORE/root" --runroot "$STORE/run")
export BUILDAH_ISOLATION=chroot
ctr=""
server_pid=""
cleanup() {
  set +e
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null
  fi
  [[ -n "$ctr" ]] && "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1
  "${BUILDAH[@]}" rmi -f "$IMAGE" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT

# ---- 1. the binary ----------------------------------------------------------------
start=$SECONDS
(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$TMP/heygen-grpc" ./cmd/heygen-grpc) ||
  die "go build ./cmd/heygen-grpc failed"
go version -m "$TMP/heygen-grpc" | grep -q 'CGO_ENABLED=0' || die "the binary was not built with CGO_ENABLED=0"
if readelf -l "$TMP/heygen-grpc" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  die "the binary is dynamically linked"
fi
ok "static binary built in $((SECONDS - start))s ($(du -h "$TMP/heygen-grpc" | cut -f1))"

# ---- 2. the image -----------------------------------------------------------------
# A canary key in the build's environment: it must not reach the image.
CANARY="container-check-canary-$RANDOM$RANDOM$RANDOM"
export HEYGEN_API_KEY="$CANARY"

start=$SECONDS
ROOTFS_SRC="$TMP/rootfs-src"
mkdir -p "$ROOTFS_SRC/etc/ssl/certs" "$ROOTFS_SRC/usr/share" "$ROOTFS_SRC/home/nonroot" "$ROOTFS_SRC/tmp"
install -m 0755 -o 0 -g 0 "$TMP/heygen-grpc" "$ROOTFS_SRC/heygen-grpc"
install -m 0644 -o 0 -g 0 /etc/ssl/certs/ca-certificates.crt "$ROOTFS_SRC/etc/ssl/certs/ca-certificates.crt"
cp -a /usr/share/zoneinfo "$ROOTFS_SRC/usr/share/zoneinfo"
# distroless's /etc/passwd and /etc/group (base-files of distroless/static).
cat >"$ROOTFS_SRC/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$ROOTFS_SRC/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
chmod 0644 "$ROOTFS_SRC/etc/passwd" "$ROOTFS_SRC/etc/group"
chown -R 0:0 "$ROOTFS_SRC"
chown "$NONROOT:$NONROOT" "$ROOTFS_SRC/home/nonroot"
chmod 0700 "$ROOTFS_SRC/home/nonroot"
chmod 1777 "$ROOTFS_SRC/tmp"

ctr="$("${BUILDAH[@]}" from scratch)"
mnt="$("${BUILDAH[@]}" mount "$ctr")"
cp -a "$ROOTFS_SRC/." "$mnt/"
"${BUILDAH[@]}" umount "$ctr" >/dev/null
"${BUILDAH[@]}" config \
  --user "$NONROOT:$NONROOT" \
  --entrypoint '["/heygen-grpc"]' \
  --cmd '' \
  --port 50051/tcp \
  --workingdir / \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --created-by 'scripts/container-check.sh (layout of the Dockerfile final stage)' \
  --label org.opencontainers.image.title=heygen-grpc \
  "$ctr"
"${BUILDAH[@]}" commit --quiet --format oci --timestamp 0 --rm "$ctr" "$IMAGE" >/dev/null
ctr=""
unset HEYGEN_API_KEY
ok "image $IMAGE built FROM scratch in $((SECONDS - start))s"

# ---- 3. the image config ------------------------------------------------------------
"${BUILDAH[@]}" inspect --type image "$IMAGE" >"$TMP/inspect.json"
python3 - "$TMP/inspect.json" "$CANARY" "$(go env GOARCH)" <<'EOF' || die "image config"
import json, re, sys
info = json.load(open(sys.argv[1]))
canary, goarch = sys.argv[2], sys.argv[3]
img = info["OCIv1"]
cfg = img.get("config") or {}
errors = []
def want(cond, msg):
    if not cond:
        errors.append(msg)
want(cfg.get("User") == "65532:65532", f"User is {cfg.get('User')!r}, want '65532:65532'")
want(cfg.get("Entrypoint") == ["/heygen-grpc"], f"Entrypoint is {cfg.get('Entrypoint')!r}, want exec form ['/heygen-grpc']")
want(not cfg.get("Cmd"), f"Cmd is {cfg.get('Cmd')!r}, want none (arguments come from the runtime)")
want(set((cfg.get("ExposedPorts") or {}).keys()) == {"50051/tcp"}, f"ExposedPorts is {cfg.get('ExposedPorts')!r}, want only 50051/tcp")
want(img.get("os") == "linux" and img.get("architecture") == goarch, f"platform is {img.get('os')}/{img.get('architecture')}, want linux/{goarch}")
env = cfg.get("Env") or []
names = sorted(e.split("=", 1)[0] for e in env)
want(names == ["PATH", "SSL_CERT_FILE"], f"Env names are {names}, want only PATH and SSL_CERT_FILE")
for e in env:
    want(not re.search(r"KEY|SECRET|TOKEN|PASSWORD", e.split("=", 1)[0], re.I), f"Env carries a secret-like variable: {e.split('=', 1)[0]}")
blob = json.dumps(info)
want(canary not in blob, "the build's HEYGEN_API_KEY canary is in the image metadata")
want(re.search(r"HEYGEN_API_KEY=\S", blob) is None, "HEYGEN_API_KEY=... is in the image metadata")
for e in errors:
    print("  " + e)
if errors:
    sys.exit(1)
print(f"  User {cfg['User']}, Entrypoint {cfg['Entrypoint']}, ExposedPorts {sorted(cfg['ExposedPorts'])}, Env {names}")
EOF
ok "image config: user, entrypoint, exposed port, env"

# ---- 4. the layers ----------------------------------------------------------------
"${BUILDAH[@]}" push --quiet "$IMAGE" "oci:$TMP/oci:heygen-grpc" >/dev/null 2>&1 ||
  "${BUILDAH[@]}" push "$IMAGE" "oci:$TMP/oci:heygen-grpc" || die "buildah push to an OCI layout failed"
ROOTFS="$TMP/rootfs"
mkdir -p "$ROOTFS"
python3 - "$TMP/oci" "$ROOTFS" "$CANARY" <<'EOF' || die "image layers"
import gzip, io, json, os, re, stat, sys, tarfile
layout, rootfs, canary = sys.argv[1], sys.argv[2], sys.argv[3].encode()
def blob(digest):
    algo, hexd = digest.split(":", 1)
    return open(os.path.join(layout, "blobs", algo, hexd), "rb").read()
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.loads(blob(index["manifests"][0]["digest"]))
config = blob(manifest["config"]["digest"])
errors = []
def want(cond, msg):
    if not cond:
        errors.append(msg)
secret = re.compile(rb"HEYGEN_API_KEY=[^\s\"']")
want(canary not in config and not secret.search(config), "the image config blob carries a key")
members = {}
for i, layer in enumerate(manifest["layers"]):
    data = blob(layer["digest"])
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    want(canary not in data, f"layer {i}: the build's HEYGEN_API_KEY canary is in the layer")
    want(not secret.search(data), f"layer {i}: HEYGEN_API_KEY=... is in the layer")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            name = "/" + m.name.lstrip("./").rstrip("/")
            base = os.path.basename(name)
            want(not base.startswith(".wh."), f"layer {i}: whiteout {name} (one layer FROM scratch expected)")
            want(base != ".env", f"layer {i}: {name}: a .env file is in the image")
            members[name] = m
        # Our own layer, extracted as root so owners and modes are kept
        # (the filter argument exists from Python 3.11.4 / 3.12 on).
        if hasattr(tarfile, "fully_trusted_filter"):
            tf.extractall(rootfs, filter="fully_trusted")
        else:
            tf.extractall(rootfs)
def check(path, kind, mode, uid, gid):
    m = members.get(path)
    if m is None:
        errors.append(f"{path} is missing")
        return
    want(m.type == kind, f"{path}: wrong file type")
    want(stat.S_IMODE(m.mode) == mode, f"{path}: mode {oct(stat.S_IMODE(m.mode))}, want {oct(mode)}")
    want((m.uid, m.gid) == (uid, gid), f"{path}: owner {m.uid}:{m.gid}, want {uid}:{gid}")
check("/heygen-grpc", tarfile.REGTYPE, 0o755, 0, 0)
check("/etc/ssl/certs/ca-certificates.crt", tarfile.REGTYPE, 0o644, 0, 0)
check("/etc/passwd", tarfile.REGTYPE, 0o644, 0, 0)
check("/etc/group", tarfile.REGTYPE, 0o644, 0, 0)
check("/tmp", tarfile.DIRTYPE, 0o1777, 0, 0)
check("/home/nonroot", tarfile.DIRTYPE, 0o700, 65532, 65532)
want("/usr/share/zoneinfo/UTC" in members, "/usr/share/zoneinfo/UTC is missing")
# Nothing but the expected tree: the binary, /etc, /home, /tmp, /usr/share/zoneinfo.
allowed = re.compile(r"^/(heygen-grpc|etc|etc/ssl|etc/ssl/certs|etc/ssl/certs/ca-certificates\.crt|etc/passwd|etc/group|home|home/nonroot|tmp|usr|usr/share|usr/share/zoneinfo(/.*)?)$")
extra = sorted(n for n in members if n != "/" and not allowed.match(n))
want(not extra, f"unexpected files in the image: {extra[:10]}")
passwd = open(os.path.join(rootfs, "etc/passwd")).read().splitlines()
group = open(os.path.join(rootfs, "etc/group")).read().splitlines()
want(any(l.startswith("nonroot:x:65532:65532:") for l in passwd), "/etc/passwd has no nonroot:x:65532:65532")
want("nonroot:x:65532:" in group, "/etc/group has no nonroot:x:65532")
host_ca = open("/etc/ssl/certs/ca-certificates.crt", "rb").read()
want(open(os.path.join(rootfs, "etc/ssl/certs/ca-certificates.crt"), "rb").read() == host_ca, "the CA bundle differs from the host's")
for e in errors:
    print("  " + e)
if errors:
    sys.exit(1)
print(f"  {len(manifest['layers'])} layer(s), {len(members)} entries; no key, no canary, no .env")
EOF
ok "image layers: layout, owners, modes, no secrets"

# ---- 5. run it --------------------------------------------------------------------
# The runtime's part, from the image config: argv = Entrypoint + args, uid:gid
# = User, environment = Env, cwd = WorkingDir, root = the layers.
mapfile -t run_env < <(python3 -c 'import json, sys; [print(e) for e in json.load(open(sys.argv[1]))["OCIv1"]["config"].get("Env") or []]' "$TMP/inspect.json")
mapfile -t entrypoint < <(python3 -c 'import json, sys; [print(e) for e in json.load(open(sys.argv[1]))["OCIv1"]["config"]["Entrypoint"]]' "$TMP/inspect.json")
user="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["OCIv1"]["config"]["User"])' "$TMP/inspect.json")"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ADDR="127.0.0.1:$PORT"
log "running ${entrypoint[*]} -demo -addr $ADDR in the image's rootfs as $user"
# setpriv sets no_new_privs (allowPrivilegeEscalation: false); chroot then
# switches to the image's user with no supplementary groups, which also
# drops every capability.
env -i "${run_env[@]}" setpriv --no-new-privs \
  chroot --userspec="$user" --groups='' "$ROOTFS" "${entrypoint[@]}" -demo -addr "$ADDR" -log-format json \
  >"$TMP/server.log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + 30))
until "$probe" -addr="$ADDR" -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1 &&
  "$probe" -addr="$ADDR" -service=heygen.v1.AvatarsService -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$TMP/server.log" >&2
    die "the server in the image's rootfs exited before becoming healthy"
  fi
  ((SECONDS < deadline)) || {
    cat "$TMP/server.log" >&2
    die "the server in the image's rootfs was not healthy within 30s"
  }
  sleep 0.2
done
"$probe" -addr="$ADDR" -service=heygen.v1.AvatarsService
ok "grpc-health-probe: SERVING (overall and heygen.v1.AvatarsService)"

status="$(cat "/proc/$server_pid/status")"
root_link="$(readlink "/proc/$server_pid/root")"
grep -q "^Uid:[[:space:]]*${NONROOT}[[:space:]]*${NONROOT}[[:space:]]*${NONROOT}[[:space:]]*$NONROOT$" <<<"$status" || die "the server does not run as uid $NONROOT: $(grep ^Uid <<<"$status")"
grep -q "^Gid:[[:space:]]*${NONROOT}[[:space:]]" <<<"$status" || die "the server does not run as gid $NONROOT"
grep -q '^CapEff:[[:space:]]*0*$' <<<"$status" || die "the server has capabilities: $(grep ^CapEff <<<"$status")"
grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status" || die "no_new_privs is not set"
[[ "$root_link" == "$ROOTFS" ]] || die "the server's root is $root_link, not the image rootfs"
grep -q '"msg":"serving heygen.v1.AvatarsService"' "$TMP/server.log" || die "no 'serving heygen.v1.AvatarsService' log line"
ok "process: uid/gid $NONROOT, no capabilities, no_new_privs, root = image rootfs"

kill -TERM "$server_pid"
deadline=$((SECONDS + 30))
while kill -0 "$server_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
kill -0 "$server_pid" 2>/dev/null && die "the server did not exit within 30s of SIGTERM"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
((rc == 0)) || {
  tail -n 20 "$TMP/server.log" >&2
  die "exit code $rc after SIGTERM, want 0"
}
ok "SIGTERM: exit 0"

log "all checks passed"
