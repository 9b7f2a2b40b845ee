#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/: installs the pinned kustomize
# CLI into $REPO/.bin (built from the Go module proxy; kept on a re-run when
# it is at the pinned version and was built by the current Go), then runs
# `go vet` and `go test` in the deploy module (deploy/go.mod). The tests
# decide: they render every kustomization in-process, with .bin/kustomize
# and with `kubectl kustomize` when a kubectl is on PATH, and hold every
# render to the invariants (see deploy/README.md).
#
#   scripts/k8s-check.sh
set -euo pipefail

# Uses sigs.k8s.io/kustomize/api v0.21.2, as deploy/go.mod (deploy/cli_test.go
# reads this pin and checks both).
KUSTOMIZE_VERSION=v5.8.2

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.bin"
export GOTOOLCHAIN=local # build with this machine's Go, never download another

log() { printf 'k8s-check: %s\n' "$*"; }
die() {
  printf 'k8s-check: FAIL: %s\n' "$*" >&2
  exit 1
}

command -v go >/dev/null || die "go is not on PATH"

mod=sigs.k8s.io/kustomize/kustomize/v5
current() {
  local info
  info="$(go version -m "$BIN/kustomize" 2>/dev/null)" || return 1
  [[ "$(head -n1 <<<"$info")" == *": $(go env GOVERSION)" ]] || return 1
  awk -v m="$mod" -v v="$KUSTOMIZE_VERSION" '$1 == "mod" && $2 == m && $3 == v { f = 1 } END { exit !f }' <<<"$info"
}
if ! current; then
  log "installing kustomize $KUSTOMIZE_VERSION (go install $mod@$KUSTOMIZE_VERSION)"
  mkdir -p "$BIN"
  GOBIN="$BIN" go install "$mod@$KUSTOMIZE_VERSION" || die "go install $mod@$KUSTOMIZE_VERSION failed"
fi
command -v kubectl >/dev/null || log "kubectl is not on PATH: the tests render with the kustomize CLI only"

log "go vet ./... && go test ./... in deploy/"
cd "$REPO/deploy"
go vet ./...
go test ./...
