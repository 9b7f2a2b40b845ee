#!/usr/bin/env bash
# End-to-end test of the heygen-grpc binary, as a user runs it.
#
#   1. builds ./cmd/heygen-grpc into a temp dir;
#   2. starts it with -demo on 127.0.0.1:$PORT (50051 if free, else any free
#      port) and waits, bounded, until it reports healthy;
#   3. runs every example command from README.md: the `grpcurl ...` and
#      `grpc-health-probe ...` lines between `<!-- e2e:begin -->` and
#      `<!-- e2e:end -->`, with localhost:50051 replaced by the real address;
#   4. checks concrete behaviour (services listed, ListAvatars -> GetAvatar,
#      path-like ids rejected with InvalidArgument, health);
#   5. checks the configuration error paths (exit 2, one stderr line);
#   6. sends SIGTERM and checks a clean, logged shutdown (exit 0).
#
# Ends with the line `e2e: N passed, M failed`; exits 1 if M > 0.
#
# Environment:
#   E2E_README   README to take the examples from (default: $REPO/README.md)
#   E2E_PORT     port to serve on (default: 50051 if free, else a free port)
#   E2E_TIMEOUT  seconds to wait for the server to become healthy (default 30)
#
# Tools come from $REPO/.bin (scripts/install-tools.sh installs them).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.bin"
README="${E2E_README:-$REPO/README.md}"
READY_TIMEOUT="${E2E_TIMEOUT:-30}"
STOP_TIMEOUT=30 # seconds SIGTERM -> exit; above the default drain (0s) + shutdown timeout (15s)
cd "$REPO"

passed=0
failed=0
server_pid=""
TMP="$(mktemp -d "${TMPDIR:-/tmp}/heygen-grpc-e2e.XXXXXX")"

cleanup() {
  local rc=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      alive "$server_pid" || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
  local state
  [[ -r "/proc/$1/stat" ]] || return 1
  state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ "$state" != "Z" && "$state" != "X" ]]
}

ok() {
  passed=$((passed + 1))
  printf '  ok    %s\n' "$*"
}
not_ok() {
  failed=$((failed + 1))
  printf '  FAIL  %s\n' "$*"
}
section() { printf '\n--- %s\n' "$*"; }

summary() {
  echo
  printf 'e2e: %d passed, %d failed\n' "$passed" "$failed"
}

# fatal MSG: a check that the rest cannot go on without has failed.
fatal() {
  not_ok "$*"
  if [[ -f "$TMP/server.log" ]]; then
    echo "  server log ($TMP/server.log):"
    sed 's/^/    | /' "$TMP/server.log"
  fi
  summary
  exit 1
}

# show FILE: print a command's output, indented, at most 25 lines.
show() {
  local n
  n="$(wc -l <"$1")"
  sed -n '1,25s/^/    | /p' "$1"
  if ((n > 25)); then printf '    | ... (%d more lines)\n' $((n - 25)); fi
}

# run OUTFILE CMD...: print (shell-quoted) and run CMD with the tools from
# .bin first on PATH, stdout+stderr to OUTFILE (and shown); returns CMD's
# exit code.
run() {
  local out="$1" rc=0
  shift
  printf '  +'
  printf ' %q' "$@"
  printf '\n'
  PATH="$BIN:$PATH" "$@" >"$out" 2>&1 || rc=$?
  show "$out"
  return "$rc"
}

# run_shell OUTFILE LINE: like run, for a line of shell (a README example).
run_shell() {
  local out="$1" rc=0
  printf '  + %s\n' "$2"
  PATH="$BIN:$PATH" bash -c "$2" >"$out" 2>&1 || rc=$?
  show "$out"
  return "$rc"
}

for tool in grpcurl grpc-health-probe; do
  if [[ ! -x "$BIN/$tool" ]]; then
    echo "e2e: $BIN/$tool is missing: installing tools"
    "$REPO/scripts/install-tools.sh"
    break
  fi
done
command -v python3 >/dev/null || fatal "python3 is required (JSON checks)"

# ---- build -------------------------------------------------------------------
section "build"
SERVER="$TMP/heygen-grpc"
if run "$TMP/build.out" go build -o "$SERVER" ./cmd/heygen-grpc; then
  ok "go build ./cmd/heygen-grpc"
else
  fatal "go build ./cmd/heygen-grpc"
fi

# An empty directory with no .env, for runs that must not see the repo's or
# the developer's configuration.
EMPTY="$TMP/empty"
mkdir -p "$EMPTY"
# hermetic CMD...: run CMD from $EMPTY with only PATH and HOME set.
hermetic() { (cd "$EMPTY" && exec env -i PATH="$PATH" HOME="$HOME" "$@"); }

# ---- start -------------------------------------------------------------------
section "start the server (-demo)"
port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
if [[ -n "${E2E_PORT:-}" ]]; then
  PORT="$E2E_PORT"
elif port_free 50051; then
  PORT=50051
else
  PORT="$(free_port)"
  echo "  port 50051 is in use: using $PORT"
fi
ADDR="127.0.0.1:$PORT"

printf '  + %s\n' "$SERVER -demo -addr $ADDR -log-format json -log-level info  (log: $TMP/server.log)"
(cd "$EMPTY" && exec env -i PATH="$PATH" HOME="$HOME" \
  "$SERVER" -demo -addr "$ADDR" -log-format json -log-level info) >"$TMP/server.log" 2>&1 &
server_pid=$!

# Healthy = the overall ("") and the AvatarsService health checks both SERVING.
deadline=$((SECONDS + READY_TIMEOUT))
ready=""
while ((SECONDS < deadline)); do
  alive "$server_pid" || fatal "the server exited before becoming healthy"
  if "$BIN/grpc-health-probe" -addr="$ADDR" -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1 &&
    "$BIN/grpc-health-probe" -addr="$ADDR" -service=heygen.v1.AvatarsService -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.2
done
[[ -n "$ready" ]] || fatal "the server did not become healthy on $ADDR within ${READY_TIMEOUT}s"
ok "server healthy on $ADDR after $((SECONDS - deadline + READY_TIMEOUT))s"

if python3 - "$TMP/server.log" "$ADDR" <<'EOF'; then
import json, sys
path, addr = sys.argv[1], sys.argv[2]
for line in open(path, encoding="utf-8"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == "serving heygen.v1.AvatarsService" and rec.get("addr") == addr:
        sys.exit(0)
sys.exit(1)
EOF
  ok "JSON log line msg=\"serving heygen.v1.AvatarsService\" addr=$ADDR"
else
  not_ok "no JSON log line msg=\"serving heygen.v1.AvatarsService\" with addr=$ADDR"
  show "$TMP/server.log"
fi

# ---- README examples ---------------------------------------------------------
section "README examples ($README)"
examples=()
if [[ ! -f "$README" ]]; then
  not_ok "$README does not exist: it must hold the example commands between <!-- e2e:begin --> and <!-- e2e:end -->"
else
  # One command per NUL-terminated record; backslash-continued lines joined;
  # a leading "$ " prompt is dropped.
  mapfile -d '' examples < <(python3 - "$README" <<'EOF'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
inside, cmds, cur = False, [], ""
for raw in lines:
    s = raw.strip()
    if s == "<!-- e2e:begin -->":
        inside = True
        continue
    if s == "<!-- e2e:end -->":
        inside = False
        continue
    if not inside:
        continue
    if cur:
        cur += " " + s
    else:
        if s.startswith("$ "):
            s = s[2:].lstrip()
        if not (s.startswith("grpcurl ") or s.startswith("grpc-health-probe ")):
            continue
        cur = s
    if cur.endswith("\\"):
        cur = cur[:-1].rstrip()
        continue
    cmds.append(cur)
    cur = ""
for c in cmds:
    sys.stdout.write(c + "\0")
EOF
  )
  if ((${#examples[@]} == 0)); then
    not_ok "no grpcurl/grpc-health-probe lines between <!-- e2e:begin --> and <!-- e2e:end --> in $README"
  fi
fi
for i in "${!examples[@]}"; do
  example="${examples[$i]}"
  if [[ "$example" != *localhost:50051* ]]; then
    not_ok "README example $((i + 1)) does not use localhost:50051: $example"
    continue
  fi
  cmd="${example//localhost:50051/$ADDR}"
  # The README line is shell (it quotes JSON), so bash runs it.
  if run_shell "$TMP/example.out" "$cmd"; then
    ok "README example $((i + 1)): $example"
  else
    not_ok "README example $((i + 1)) exited non-zero: $example"
  fi
done

# ---- behaviour -----------------------------------------------------------------
section "behaviour"
if run "$TMP/list.out" grpcurl -plaintext "$ADDR" list; then
  missing=()
  for svc in heygen.v1.AvatarsService grpc.health.v1.Health grpc.reflection.v1.ServerReflection grpc.reflection.v1alpha.ServerReflection; do
    grep -qxF "$svc" "$TMP/list.out" || missing+=("$svc")
  done
  if ((${#missing[@]} == 0)); then
    ok "list shows AvatarsService, Health and both reflection services"
  else
    not_ok "list does not show: ${missing[*]}"
  fi
else
  not_ok "grpcurl list exited non-zero"
fi

avatar_id=""
if run "$TMP/listavatars.out" grpcurl -plaintext -d '{"page_size": 3}' "$ADDR" heygen.v1.AvatarsService/ListAvatars; then
  if avatar_id="$(python3 - "$TMP/listavatars.out" <<'EOF'
import json, sys
resp = json.load(open(sys.argv[1], encoding="utf-8"))
avatars = resp.get("avatars") or []
if not avatars or not 1 <= len(avatars) <= 3 or not avatars[0].get("id"):
    sys.exit(1)
print(avatars[0]["id"])
EOF
  )"; then
    ok "ListAvatars page_size=3 returns 1-3 avatars (first id: $avatar_id)"
  else
    not_ok "ListAvatars output has no avatars with ids (or more than page_size)"
  fi
else
  not_ok "ListAvatars exited non-zero"
fi

if [[ -n "$avatar_id" ]]; then
  req="$(python3 -c 'import json, sys; print(json.dumps({"avatar_id": sys.argv[1]}))' "$avatar_id")"
  if run "$TMP/getavatar.out" grpcurl -plaintext -d "$req" "$ADDR" heygen.v1.AvatarsService/GetAvatar &&
    python3 - "$TMP/getavatar.out" "$avatar_id" <<'EOF'; then
import json, sys
resp = json.load(open(sys.argv[1], encoding="utf-8"))
sys.exit(0 if (resp.get("avatar") or {}).get("id") == sys.argv[2] else 1)
EOF
    ok "GetAvatar $avatar_id returns that avatar"
  else
    not_ok "GetAvatar $avatar_id did not return that avatar"
  fi
else
  not_ok "GetAvatar not tried: no avatar id from ListAvatars"
fi

if run "$TMP/traversal.out" grpcurl -plaintext -d '{"avatar_id": "../../v3/users/me"}' "$ADDR" heygen.v1.AvatarsService/GetAvatar; then
  not_ok "GetAvatar with a path-like id (../../v3/users/me) succeeded"
elif grep -q InvalidArgument "$TMP/traversal.out"; then
  ok "GetAvatar with a path-like id fails with InvalidArgument"
else
  not_ok "GetAvatar with a path-like id failed, but not with InvalidArgument"
fi

if run "$TMP/probe.out" grpc-health-probe -addr="$ADDR"; then
  ok "grpc-health-probe (overall, service \"\") exits 0"
else
  not_ok "grpc-health-probe (overall, service \"\") exited non-zero"
fi
if run "$TMP/probe.out" grpc-health-probe -addr="$ADDR" -service=heygen.v1.AvatarsService; then
  ok "grpc-health-probe -service=heygen.v1.AvatarsService exits 0"
else
  not_ok "grpc-health-probe -service=heygen.v1.AvatarsService exited non-zero"
fi

# ---- configuration errors ----------------------------------------------------
section "configuration errors (no environment, empty cwd)"
# config_error DESC ARGS...: the binary must exit 2 with exactly one stderr
# line (matching $want when set), promptly.
config_error() {
  local desc="$1" rc=0 lines
  shift
  # shellcheck disable=SC2016 # $PATH and $HOME are shown, not expanded
  printf '  + (cd %s && env -i PATH="$PATH" HOME="$HOME" heygen-grpc' "$EMPTY"
  (($# == 0)) || printf ' %q' "$@"
  printf ')\n'

  hermetic timeout 15 "$SERVER" "$@" >"$TMP/cfg.stdout" 2>"$TMP/cfg.stderr" || rc=$?
  sed 's/^/    | /' "$TMP/cfg.stderr"
  lines="$(wc -l <"$TMP/cfg.stderr")"
  if ((rc != 2)); then
    not_ok "$desc: exit code $rc, want 2"
  elif ((lines != 1)); then
    not_ok "$desc: $lines stderr lines, want exactly 1"
  elif [[ -n "${want:-}" ]] && ! grep -qF "$want" "$TMP/cfg.stderr"; then
    not_ok "$desc: stderr does not mention $want"
  else
    ok "$desc: exit 2, one line${want:+ naming $want}"
  fi
}
want=HEYGEN_API_KEY config_error "no HEYGEN_API_KEY and no -demo"
want="" config_error "-addr with garbage" -demo -addr 'not an address'
want="" config_error "unknown flag" -demo -no-such-flag

# ---- shutdown ------------------------------------------------------------------
section "SIGTERM"
printf '  + kill -TERM %s\n' "$server_pid"
kill -TERM "$server_pid"
deadline=$((SECONDS + STOP_TIMEOUT))
while alive "$server_pid" && ((SECONDS < deadline)); do sleep 0.1; done
if alive "$server_pid"; then
  not_ok "the server did not exit within ${STOP_TIMEOUT}s of SIGTERM"
  show "$TMP/server.log"
else
  rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  if ((rc == 0)); then
    ok "exit 0 after SIGTERM"
  else
    not_ok "exit code $rc after SIGTERM, want 0"
  fi
  missing=()
  for msg in "shutting down" "stopped"; do
    grep -qF "$msg" "$TMP/server.log" || missing+=("\"$msg\"")
  done
  if ((${#missing[@]} == 0)); then
    ok "log has \"shutting down\" and \"stopped\""
  else
    not_ok "log lacks ${missing[*]}"
    show "$TMP/server.log"
  fi
fi

summary
((failed == 0))
