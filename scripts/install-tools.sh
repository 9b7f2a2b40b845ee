#!/usr/bin/env bash
# Installs every tool that scripts/test.sh and the e2e tests need, pinned,
# into $REPO/.bin (gitignored). Needs only Go, Node.js and npm, and reaches
# only the Go module proxy and the npm registry.
#
#   scripts/install-tools.sh          every tool, saying what it does
#   scripts/install-tools.sh try-it   only grpcurl and grpc-health-probe (what
#                                     the README's "Try it" uses), quietly:
#                                     one line, or the error
#
# A tool already in .bin at the pinned version (and built by the current Go
# toolchain) is skipped, so reruns take a second or two.
#
# buf, protoc-gen-go and protoc-gen-go-grpc are NOT installed here: they are
# pinned in tools/go.mod and run with `go tool -modfile=tools/go.mod ...`.
# This script only warms that module so later steps do not download it.
#
# Bump a version: edit the table below (and tools/npm/package.json +
# package-lock.json for npm tools: `cd tools/npm && npm install --save-exact
# --package-lock-only NAME@VERSION`).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.bin"
cd "$REPO"

# name | module path (as `go version -m` reports it) | install package | version | extra go install flags
GO_TOOLS=(
  "grpcurl|github.com/fullstorydev/grpcurl|github.com/fullstorydev/grpcurl/cmd/grpcurl|v1.9.4|-ldflags=-X main.version=v1.9.4"
  "grpc-health-probe|github.com/grpc-ecosystem/grpc-health-probe|github.com/grpc-ecosystem/grpc-health-probe|v0.4.62|"
  "golangci-lint|github.com/golangci/golangci-lint/v2|github.com/golangci/golangci-lint/v2/cmd/golangci-lint|v2.15.0|"
)

log() { printf 'install-tools: %s\n' "$*"; }
die() { printf 'install-tools: ERROR: %s\n' "$*" >&2; exit 1; }

TRY_IT=false
try_tools=()
case "${1:-}" in
  "") ;;
  try-it)
    TRY_IT=true
    for entry in "${GO_TOOLS[@]}"; do
      [[ "$entry" == grpcurl\|* || "$entry" == grpc-health-probe\|* ]] && try_tools+=("$entry")
    done
    GO_TOOLS=("${try_tools[@]}")
    log() { :; }
    ;;
  *) die "unknown argument ${1}: run with no argument for every tool, or with try-it for grpcurl and grpc-health-probe" ;;
esac

command -v go >/dev/null || die "go is not on PATH (Go 1.26+ is required)"
mkdir -p "$BIN"

GOVERSION="$(go env GOVERSION)"

# go_tool_current BINARY MODULE VERSION: is BINARY built from MODULE@VERSION
# by the Go toolchain in use now?
go_tool_current() {
  local bin="$1" mod="$2" version="$3" info
  [[ -x "$bin" ]] || return 1
  info="$(go version -m "$bin" 2>/dev/null)" || return 1
  # First line: "<path>: go1.26.8"
  [[ "$(head -n1 <<<"$info")" == *": $GOVERSION" ]] || return 1
  awk -v m="$mod" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { found = 1 } END { exit !found }' <<<"$info"
}

for entry in "${GO_TOOLS[@]}"; do
  IFS='|' read -r name mod pkg version flags <<<"$entry"
  if go_tool_current "$BIN/$name" "$mod" "$version"; then
    log "$name $version: already installed"
    continue
  fi
  log "$name $version: installing (go install $pkg@$version) ..."
  start=$SECONDS
  args=()
  [[ -n "$flags" ]] && args+=("$flags")
  # GOTOOLCHAIN=local: build with the machine's Go, never download another.
  if [[ "$TRY_IT" == true ]]; then
    out="$(GOBIN="$BIN" GOTOOLCHAIN=local go install "${args[@]}" "$pkg@$version" 2>&1)" ||
      die "go install $pkg@$version failed: $out"
  else
    GOBIN="$BIN" GOTOOLCHAIN=local go install "${args[@]}" "$pkg@$version" ||
      die "go install $pkg@$version failed"
  fi
  go_tool_current "$BIN/$name" "$mod" "$version" || die "$name was installed but does not report $mod $version"
  log "$name $version: installed in $((SECONDS - start))s"
done

if [[ "$TRY_IT" == true ]]; then
  printf 'install-tools: grpcurl and grpc-health-probe are in %s (export PATH=%s:$PATH)\n' "$BIN" "$BIN"
  exit 0
fi

# ---- npm tools (Dockerfile linter) -------------------------------------------
# tools/npm/package.json + package-lock.json pin them; they are installed with
# `npm ci` into .bin/npm so that node_modules never lands in the work tree.
# --ignore-scripts: nothing runs at install time (and so nothing can try to
# download a binary from outside the npm registry).
NPM_SRC="$REPO/tools/npm"
NPM_DIR="$BIN/npm"
command -v npm >/dev/null || die "npm is not on PATH (Node.js 18+ with npm is required for the Dockerfile linter)"
lock_sum="$(cat "$NPM_SRC/package.json" "$NPM_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$NPM_DIR/.installed" && "$(cat "$NPM_DIR/.installed")" == "$lock_sum" && -x "$NPM_DIR/node_modules/.bin/dockerfilelint" ]]; then
  log "npm tools (tools/npm/package-lock.json): already installed"
else
  log "npm tools: installing dockerfilelint $(node -p 'require(process.argv[1]).dependencies.dockerfilelint' "$NPM_SRC/package.json") (npm ci) ..."
  start=$SECONDS
  rm -rf "$NPM_DIR"
  mkdir -p "$NPM_DIR"
  cp "$NPM_SRC/package.json" "$NPM_SRC/package-lock.json" "$NPM_DIR/"
  (cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci in $NPM_DIR failed"
  printf '%s\n' "$lock_sum" >"$NPM_DIR/.installed"
  log "npm tools: installed in $((SECONDS - start))s"
fi
ln -sf "npm/node_modules/.bin/dockerfilelint" "$BIN/dockerfilelint"

# ---- tools module (buf, protoc-gen-go, protoc-gen-go-grpc) -------------------
log "warming the tools module (go tool -modfile=tools/go.mod buf --version) ..."
start=$SECONDS
buf_version="$(GOTOOLCHAIN=local go tool -modfile=tools/go.mod buf --version)" || die "go tool -modfile=tools/go.mod buf --version failed"
# Build the protoc plugins too, so that `buf generate` does not pay for it.
for plugin in protoc-gen-go protoc-gen-go-grpc; do
  GOTOOLCHAIN=local go tool -modfile=tools/go.mod "$plugin" --version >/dev/null ||
    die "go tool -modfile=tools/go.mod $plugin --version failed"
done
log "buf $buf_version (tools/go.mod) ready in $((SECONDS - start))s"

log "tools in $BIN:"
printf '  %-18s %s\n' \
  grpcurl "$("$BIN/grpcurl" -version 2>&1)" \
  grpc-health-probe "$(go version -m "$BIN/grpc-health-probe" | awk '$1 == "mod" { print $3 }')" \
  golangci-lint "$("$BIN/golangci-lint" version --short 2>&1)" \
  dockerfilelint "$("$BIN/dockerfilelint" --version 2>&1)" \
  buf "$buf_version"
