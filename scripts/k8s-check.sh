#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/:
#
#  1. `go test ./...` in the deploy module (deploy/go.mod, its own module so
#     kustomize and k8s.io/api never enter the service's go.mod): renders the
#     base and every overlay in-process with kustomize (sigs.k8s.io/kustomize/api
#     v0.21.2), decodes every object strictly into the Kubernetes API types (and
#     local mirrors of the Istio/Linkerd CRDs) and checks the invariants:
#     probes, security context, the key as a Secret file, shutdown timing,
#     Service/PDB/HPA wiring, NetworkPolicy ports, no mesh retries, ...
#  2. Renders the base and each overlay with the kustomize CLI
#     (sigs.k8s.io/kustomize/kustomize/v5, pinned below, built from the Go module
#     proxy into $REPO/.bin), and with `kubectl kustomize` too when a kubectl
#     is installed (this machine kind ships one; Debian's own kubernetes-client
#     package is 1.20, whose kustomize is too old to be worth installing).
#
# Standalone: runs from any directory, installs what it needs, and is fast on
# a re-run (the kustomize binary is kept when it is at the pinned version and
# was built by the current Go; `go test` results are cached by Go).
#
#   scripts/k8s-check.sh
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.2 # uses sigs.k8s.io/kustomize/api v0.21.2, as deploy/go.mod

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.bin"
DEPLOY="$REPO/deploy"
export GOTOOLCHAIN=local # build with this machine's Go, never download another

log() { printf 'k8s-check: %s\n' "$*"; }
die() {
  printf 'k8s-check: FAIL: %s\n' "$*" >&2
  exit 1
}

command -v go >/dev/null || die "go is not on PATH"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# ---- 1. the Go test ------------------------------------------------------------
log "go test ./... in deploy/ (render + strict decode + invariants)"
start=$SECONDS
(cd "$DEPLOY" && go vet ./... && go test ./...) || die "the deploy module's tests failed"
log "go test passed in $((SECONDS - start))s"

# ---- 2. the kustomize CLI --------------------------------------------------------
mod=sigs.k8s.io/kustomize/kustomize/v5
current() {
  [[ -x "$BIN/kustomize" ]] || return 1
  local info
  info="$(go version -m "$BIN/kustomize" 2>/dev/null)" || return 1
  [[ "$(head -n1 <<<"$info")" == *": $(go env GOVERSION)" ]] || return 1
  awk -v m="$mod" -v v="$KUSTOMIZE_VERSION" '$1 == "mod" && $2 == m && $3 == v { f = 1 } END { exit !f }' <<<"$info"
}
if current; then
  log "kustomize $KUSTOMIZE_VERSION: already installed"
else
  log "kustomize $KUSTOMIZE_VERSION: installing (go install $mod@$KUSTOMIZE_VERSION) ..."
  start=$SECONDS
  mkdir -p "$BIN"
  GOBIN="$BIN" go install "$mod@$KUSTOMIZE_VERSION" || die "go install $mod@$KUSTOMIZE_VERSION failed"
  current || die "$BIN/kustomize does not report $mod $KUSTOMIZE_VERSION"
  log "kustomize installed in $((SECONDS - start))s"
fi

# Every directory holding a kustomization.yaml: the base and each overlay
# (components render only inside an overlay, which is rendered).
mapfile -t dirs < <(cd "$DEPLOY" && find . -name kustomization.yaml -not -path './components/*' -printf '%h\n' | sed 's|^\./||' | sort)
((${#dirs[@]} >= 3)) || die "expected deploy/base and two overlays, found: ${dirs[*]}"

# render NAME CMD...: CMD must exit 0 and print a Deployment and a Service.
render() {
  local name="$1" out="$TMP/render.yaml"
  shift
  if ! "$@" >"$out" 2>"$TMP/render.err"; then
    cat "$TMP/render.err" >&2
    die "$name failed"
  fi
  grep -q '^kind: Deployment$' "$out" || die "$name: no Deployment in the output"
  grep -q '^kind: Service$' "$out" || die "$name: no Service in the output"
  if grep -q '^kind: Secret$' "$out"; then die "$name: renders a Secret (the key must be created out of band)"; fi
  log "ok: $name ($(grep -c '^kind: ' "$out") objects)"
}

for d in "${dirs[@]}"; do
  render "kustomize build deploy/$d" "$BIN/kustomize" build "$DEPLOY/$d"
done

if command -v kubectl >/dev/null; then
  kver="$(kubectl version --client 2>/dev/null | tr '\n' ' ')"
  log "kubectl found: $kver"
  for d in "${dirs[@]}"; do
    render "kubectl kustomize deploy/$d" kubectl kustomize "$DEPLOY/$d"
  done
else
  log "kubectl is not installed: rendered with the standalone kustomize CLI only"
fi

log "all checks passed"
