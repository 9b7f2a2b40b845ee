#!/usr/bin/env bash
# Runs the client examples (examples/node, examples/go) against the real
# server binary in demo mode (built-in fake HeyGen: no key, no network):
#
#  1. builds ./cmd/heygen-grpc and ./examples/go;
#  2. starts the server with -demo on a free loopback port and waits until
#     grpc-health-probe reports SERVING for "" and heygen.v1.AvatarsService;
#  3. `npm ci` in examples/node (skipped when node_modules already matches
#     package-lock.json), then runs the Node example, then the Go example;
#     each checks what it gets and exits non-zero on anything unexpected;
#  4. stops the server with SIGTERM and expects exit 0 (a trap kills it on
#     any failure).
#
# Standalone: runs from any directory; needs Go, Node.js 18+ with npm and
# python3 (free port); installs grpc-health-probe (pinned, as
# scripts/install-tools.sh does) into $REPO/.bin when it is missing.
#
#   scripts/examples.sh
set -euo pipefail

GRPC_HEALTH_PROBE_VERSION=v0.4.62 # same pin as scripts/install-tools.sh
READY_TIMEOUT=30                  # seconds for the server to become healthy
STOP_TIMEOUT=30                   # seconds for it to exit after SIGTERM

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.bin"
NODE_DIR="$REPO/examples/node"
export GOTOOLCHAIN=local

log() { printf 'examples: %s\n' "$*"; }
die() {
  printf 'examples: FAIL: %s\n' "$*" >&2
  exit 1
}

for cmd in go node npm python3; do
  command -v "$cmd" >/dev/null || die "$cmd is not on PATH"
done

TMP="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# ---- tools and builds ------------------------------------------------------------
probe="$BIN/grpc-health-probe"
if ! [[ -x "$probe" ]] || ! go version -m "$probe" 2>/dev/null |
  awk -v v="$GRPC_HEALTH_PROBE_VERSION" '$1 == "mod" && $2 == "github.com/grpc-ecosystem/grpc-health-probe" && $3 == v { f = 1 } END { exit !f }'; then
  log "installing grpc-health-probe $GRPC_HEALTH_PROBE_VERSION into $BIN"
  mkdir -p "$BIN"
  GOBIN="$BIN" go install "github.com/grpc-ecosystem/grpc-health-probe@$GRPC_HEALTH_PROBE_VERSION" ||
    die "go install grpc-health-probe failed"
fi

start=$SECONDS
(cd "$REPO" && go build -o "$TMP/heygen-grpc" ./cmd/heygen-grpc) || die "go build ./cmd/heygen-grpc failed"
(cd "$REPO" && go vet ./examples/go && go build -o "$TMP/example-go" ./examples/go) || die "go vet/build ./examples/go failed"
log "built the server and the Go example in $((SECONDS - start))s"

# npm ci wipes node_modules every time: skip it when the lock file is the one
# node_modules was installed from. --ignore-scripts: nothing runs at install.
lock_sum="$(cat "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$NODE_DIR/node_modules/.examples-installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_sum" ]]; then
  log "examples/node: node_modules matches package-lock.json"
else
  start=$SECONDS
  (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci in examples/node failed"
  printf '%s\n' "$lock_sum" >"$stamp"
  log "examples/node: npm ci in $((SECONDS - start))s"
fi

# ---- the server -------------------------------------------------------------------
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ADDR="127.0.0.1:$PORT"
mkdir -p "$TMP/empty" # no .env to pick up
log "starting heygen-grpc -demo on $ADDR"
(cd "$TMP/empty" && exec env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  "$TMP/heygen-grpc" -demo -addr "$ADDR" -log-format json) >"$TMP/server.log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + READY_TIMEOUT))
until "$probe" -addr="$ADDR" -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1 &&
  "$probe" -addr="$ADDR" -service=heygen.v1.AvatarsService -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$TMP/server.log" >&2
    die "the server exited before becoming healthy"
  fi
  if ((SECONDS >= deadline)); then
    cat "$TMP/server.log" >&2
    die "the server was not healthy within ${READY_TIMEOUT}s"
  fi
  sleep 0.2
done
log "server healthy"

# ---- the examples ------------------------------------------------------------------
failed=()
run_example() {
  local name="$1" rc=0
  shift
  printf '\n==== %s ====\n' "$name"
  HEYGEN_GRPC_ADDR="$ADDR" "$@" || rc=$?
  if ((rc != 0)); then
    printf '==== %s: FAILED (exit %d)\n' "$name" "$rc"
    failed+=("$name")
  else
    printf '==== %s: passed\n' "$name"
  fi
}
run_example "examples/node (node client.js)" node "$NODE_DIR/client.js"
run_example "examples/go" "$TMP/example-go"
echo

# ---- stop ------------------------------------------------------------------------
kill -TERM "$server_pid"
deadline=$((SECONDS + STOP_TIMEOUT))
while kill -0 "$server_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
  failed+=("server did not exit within ${STOP_TIMEOUT}s of SIGTERM")
else
  rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  ((rc == 0)) || failed+=("server exit code $rc after SIGTERM")
fi

if ((${#failed[@]} > 0)); then
  echo "--- server log ---" >&2
  tail -n 40 "$TMP/server.log" >&2
  die "${failed[*]}"
fi
log "2 passed, 0 failed"
