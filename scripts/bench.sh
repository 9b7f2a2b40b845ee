#!/usr/bin/env bash
# The gateway's benchmark harness: one command, 7 to 9 minutes, results in
# bench/RESULTS.md (under version control) and on stdout.
#
#   ./scripts/bench.sh
#
# Everything runs on this machine over loopback (127.0.0.1) with bounded
# request counts and durations; the script starts and stops every process
# itself (and kills them on exit, failure or Ctrl-C). Measured in one run:
#
#   1. cached ListAvatars (page_size 50) through the gateway versus a bare
#      grpc-go server (bench/bareserver) returning the same response, in
#      interleaved rounds, with two clients: ghz (as specified) and
#      bench/grpcload, a light client that does not decode responses, so
#      that the server rather than the client is the bottleneck;
#      grpc.health.v1.Health/Check on both servers for scale;
#   2. the same ListAvatars through the gateway versus the equivalent REST
#      page straight from a fake HeyGen (bench/fakeheygen) with HeyGen-like
#      latency (bench/restload);
#   3. N cold callers at once against a freshly started gateway: the HeyGen
#      calls they cause, counted at the fake, versus one crawl;
#   4. the 5,000-avatar catalogue: crawl-and-index time (the gateway's
#      "catalogue refreshed" log line), snapshot memory and the gateway's
#      peak RSS (VmHWM) under a sustained load of 50 callers;
#   5. the Go benchmarks in server/bench_test.go (go test -bench);
#   6. CPU profiles: of the gateway binary under load (from its pprof
#      endpoint, -metrics-addr -pprof) and of BenchmarkListAvatarsRPC.
#
# CPU placement (2 cores shared by client and server): the servers under
# test are pinned to CPU 0 with taskset; ghz (--cpus 1), grpcload,
# restload and the fake HeyGen are pinned to CPU 1. Each measurement
# records the server's CPU time (/proc/PID/stat), the client's (bash
# `times`) and the whole machine's (/proc/stat), so the report shows the
# server's CPU per call, which side was the bottleneck and how much other
# load the machine carried. ghz runs use -n (sized from a warm-up's rate)
# rather than -z, which would cut the calls in flight at the end and count
# them as errors. The Go benchmarks run unpinned, every server stopped.
#
# The gateways run with their default settings (info-level JSON logs to a
# file, reflection, catalogue on) apart from -addr, -heygen-base-url and
# HEYGEN_API_KEY (part 6 adds -metrics-addr and -pprof), in a clean
# environment (env -i) and an empty working directory (so no .env file is
# read).
#
# Before measuring, the script waits (bounded) for other processes to
# calm down; the report shows what load remained.
#
# Needs: Go and taskset (util-linux; without it nothing is pinned and the
# report says so). Installs ghz (pinned) into .bin/ on first use, which
# reaches the Go module proxy once. The hand-written analysis at the end of
# bench/RESULTS.md (between the notes markers) is kept across runs.
#
# Environment (defaults in brackets):
#   BENCH_OUT               report path [bench/RESULTS.md]
#   BENCH_DURATION          each throughput measurement, whole seconds [12s]
#   BENCH_WARMUP            warm-up before each measurement [3s]
#   BENCH_ROUNDS            gateway/bare ListAvatars rounds, interleaved [2]
#   BENCH_CONCURRENCY       concurrent callers [8]
#   BENCH_CONNECTIONS       connections [4]
#   BENCH_LATENCY           fake HeyGen latency for parts 2-4 [300ms]
#   BENCH_GROUPS            catalogue groups [100]
#   BENCH_LOOKS_PER_GROUP   looks per group [50] (100 x 50 = 5,000 avatars)
#   BENCH_COLD_CALLERS      concurrent cold callers [200]
#   BENCH_REST_REQUESTS     restload requests [160]
#   BENCH_RSS_CALLERS       callers of the sustained load for peak RSS [50]
#   BENCH_RSS_DURATION      duration of that load [15s]
#   BENCH_GOBENCH_COUNT     go test -count for the Go benchmarks [3]
#   BENCH_GOBENCH_TIME      go test -benchtime [1s]
#   BENCH_QUIET_WAIT        seconds to wait for other load to calm down [120]
#   BENCH_QUIET_WAIT_ROUND  the same before each round of part 1 [20]
#   BENCH_KEEP              if set, keep the raw results, logs and profiles
#                           (the temporary directory is printed at the end)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export GOTOOLCHAIN=local
BIN="$REPO/.bin"
GHZ="$BIN/ghz"
GHZ_VERSION=v0.121.0

OUT="${BENCH_OUT:-bench/RESULTS.md}"
DURATION="${BENCH_DURATION:-12s}"
WARMUP="${BENCH_WARMUP:-3s}"
ROUNDS="${BENCH_ROUNDS:-2}"
CONCURRENCY="${BENCH_CONCURRENCY:-8}"
CONNECTIONS="${BENCH_CONNECTIONS:-4}"
LATENCY="${BENCH_LATENCY:-300ms}"
GROUPS_N="${BENCH_GROUPS:-100}"
LOOKS_PER_GROUP="${BENCH_LOOKS_PER_GROUP:-50}"
COLD_CALLERS="${BENCH_COLD_CALLERS:-200}"
REST_REQUESTS="${BENCH_REST_REQUESTS:-160}"
RSS_CALLERS="${BENCH_RSS_CALLERS:-50}"
RSS_DURATION="${BENCH_RSS_DURATION:-15s}"
GOBENCH_COUNT="${BENCH_GOBENCH_COUNT:-3}"
GOBENCH_TIME="${BENCH_GOBENCH_TIME:-1s}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-120}"
QUIET_WAIT_ROUND="${BENCH_QUIET_WAIT_ROUND:-20}"
PAGE_SIZE=50
KEY="bench-key-not-secret"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/heygen-grpc-bench.XXXXXX")"
R="$TMP/results"
B="$TMP/bin"
RUN="$TMP/run" # the gateway's working directory: empty, so no .env is read
mkdir -p "$R" "$B" "$RUN"
pids=()
start_s=$SECONDS

log() { printf '[bench %3ds] %s\n' "$((SECONDS - start_s))" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# alive PID: the process exists and is not a zombie.
alive() {
  local state
  [[ -r "/proc/$1/stat" ]] || return 1
  state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ "$state" != "Z" && "$state" != "X" ]]
}

# stop PID: SIGTERM, up to 10 s, then SIGKILL; reaps it.
stop() {
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      alive "$pid" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  for pid in "${pids[@]}"; do
    stop "$pid"
  done
  if ((rc != 0)); then
    log "failed (exit $rc); logs of this run are kept in $TMP"
  elif [[ -n "${BENCH_KEEP:-}" ]]; then
    log "raw results, logs and profiles kept in $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- placement ------------------------------------------------------------

NPROC="$(nproc)"
if command -v taskset >/dev/null && ((NPROC >= 2)); then
  SERVER_PIN=(taskset -c 0)
  CLIENT_PIN=(taskset -c 1)
  PLACEMENT="servers pinned to CPU 0 (taskset -c 0); ghz, restload and the fake HeyGen pinned to CPU 1 (taskset -c 1); ghz --cpus 1"
else
  SERVER_PIN=()
  CLIENT_PIN=()
  PLACEMENT="not pinned (taskset missing or fewer than 2 CPUs); ghz --cpus 1"
fi

# ---- tools and binaries ------------------------------------------------------

ghz_current() {
  [[ -x "$GHZ" ]] || return 1
  go version -m "$GHZ" 2>/dev/null | awk -v v="$GHZ_VERSION" '$1 == "mod" && $2 == "github.com/bojand/ghz" && $3 == v { f = 1 } END { exit !f }'
}
if ! ghz_current; then
  log "installing ghz $GHZ_VERSION into .bin/"
  mkdir -p "$BIN"
  GOBIN="$BIN" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
  ghz_current || die "ghz $GHZ_VERSION did not install"
fi

log "building into $B"
go build -o "$B/heygen-grpc" ./cmd/heygen-grpc
go build -o "$B/fakeheygen" ./bench/fakeheygen
go build -o "$B/bareserver" ./bench/bareserver
go build -o "$B/restload" ./bench/restload
go build -o "$B/grpcload" ./bench/grpcload
go build -o "$B/benchtool" ./bench/benchtool
TOOL="$B/benchtool"

# ---- measurement helpers ------------------------------------------------------

CLK_TCK="$(getconf CLK_TCK)"

# busy_ticks: CPU ticks spent not idle, all CPUs, since boot.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# proc_ticks PID: user + system ticks of PID.
proc_ticks() { sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
load1() { cut -d' ' -f1 /proc/loadavg; }
now_ns() { date +%s%N; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# wait_quiet MAX_S LABEL: wait (at most MAX_S seconds) until the other
# processes on the machine use less than half a core, so that a
# measurement starts on a calm machine; records the wait in meta.env.
QUIET_TOTAL=0
wait_quiet() {
  local max="$1" label="$2" waited=0 b0 b1 pct
  while :; do
    b0="$(busy_ticks)"
    sleep 2
    b1="$(busy_ticks)"
    pct=$(((b1 - b0) * 100 / (2 * CLK_TCK))) # % of one core
    if ((pct < 50 || waited >= max)); then
      break
    fi
    log "machine busy (${pct}% of a core used by other processes); waiting"
    waited=$((waited + 2))
  done
  QUIET_TOTAL=$((QUIET_TOTAL + waited))
  printf 'quiet_%s_wait_s=%d\nquiet_%s_busy_pct=%d\nquiet_total_wait_s=%d\n' "$label" "$waited" "$label" "$pct" "$QUIET_TOTAL" >>"$R/meta.env"
}

GHZ_LIST=(--insecure --proto proto/heygen/v1/avatars.proto --import-paths proto
  --call heygen.v1.AvatarsService.ListAvatars -d "{\"page_size\":$PAGE_SIZE}")
GHZ_HEALTH=(--insecure --proto bench/proto/grpc/health/v1/health.proto --import-paths bench/proto
  --call grpc.health.v1.Health.Check -d '{}')

# seconds DURATION: a Go-style duration of whole seconds (12s) in seconds.
seconds() {
  if [[ "$1" =~ ^([0-9]+)s$ ]]; then
    echo "${BASH_REMATCH[1]}"
  else
    die "durations must be whole seconds, like 12s: $1"
  fi
}

# measured NAME SERVER_PID HARD_LIMIT_S CMD...: runs CMD (a load generator)
# on the client CPU, bounded by HARD_LIMIT_S, and records in $R/NAME.cpu
# the server's, the client's (bash `times`) and the machine's CPU time
# over the run.
measured() {
  local name="$1" pid="$2" hard="$3" rc
  shift 3
  local b0 s0 l0 t0 b1 s1 l1 t1
  b0="$(busy_ticks)"
  s0="$(proc_ticks "$pid")"
  l0="$(load1)"
  t0="$(now_ns)"
  (
    rc=0
    timeout -k 5 "$hard" "${CLIENT_PIN[@]}" "$@" >"$R/$name.log" 2>&1 || rc=$?
    echo "$rc" >"$R/$name.rc"
    times >"$R/$name.times"
  )
  t1="$(now_ns)"
  b1="$(busy_ticks)"
  s1="$(proc_ticks "$pid")"
  l1="$(load1)"
  printf 'server_ticks=%d\nbusy_ticks=%d\nwall_ns=%d\nclk_tck=%d\nload1_before=%s\nload1_after=%s\n' \
    "$((s1 - s0))" "$((b1 - b0))" "$((t1 - t0))" "$CLK_TCK" "$l0" "$l1" >"$R/$name.cpu"
  rc="$(cat "$R/$name.rc")"
  if [[ "$rc" != 0 ]]; then
    tail -20 "$R/$name.log" >&2 || true
    die "$name failed (exit $rc)"
  fi
}

# ghz_measure NAME SERVER_PID SECONDS GHZ_ARGS... ADDR: a ghz warm-up of
# WARMUP, then a measured ghz run of about SECONDS: -n calls at the
# warm-up's rate (ghz -z would cut the calls in flight at the end and
# count them as errors). Output: $R/NAME.ghz.json.
ghz_measure() {
  local name="$1" pid="$2" secs="$3" n
  shift 3
  timeout -k 5 $((WARMUP_S + 30)) "${CLIENT_PIN[@]}" "$GHZ" --cpus 1 "$@" -z "$WARMUP" \
    -O json -o "$R/$name.warm.json" >"$R/$name.warm.log" 2>&1 || die "ghz warm-up $name failed: $(tail -5 "$R/$name.warm.log")"
  n="$("$TOOL" calls -ghz "$R/$name.warm.json" -seconds "$secs")"
  measured "$name" "$pid" $((secs * 4 + 60)) "$GHZ" --cpus 1 -n "$n" "$@" -O json -o "$R/$name.ghz.json"
}

# load_measure NAME SERVER_PID CALL ADDR: bench/grpcload (light client,
# no response decoding) with the same concurrency and connections as ghz:
# a warm-up, then a measured run of DURATION. Output: $R/NAME.load.json.
load_measure() {
  local name="$1" pid="$2" call="$3" addr="$4"
  timeout -k 5 $((WARMUP_S + 30)) "${CLIENT_PIN[@]}" "$B/grpcload" -addr "$addr" -call "$call" \
    -page-size "$PAGE_SIZE" -c "$CONCURRENCY" -connections "$CONNECTIONS" -warmup 0s -duration "$WARMUP" \
    -o /dev/null >"$R/$name.warm.log" 2>&1 || die "grpcload warm-up $name failed: $(tail -5 "$R/$name.warm.log")"
  measured "$name" "$pid" "$HARD" "$B/grpcload" -addr "$addr" -call "$call" -page-size "$PAGE_SIZE" \
    -c "$CONCURRENCY" -connections "$CONNECTIONS" -warmup 0s -duration "$DURATION" -o "$R/$name.load.json"
}

DUR_S="$(seconds "$DURATION")"
WARMUP_S="$(seconds "$WARMUP")"
RSS_S="$(seconds "$RSS_DURATION")"
HARD=$((DUR_S + 60))

# ---- processes -------------------------------------------------------------------

FAKE_PID=""
FAKE_URL=""
FAKE_ADMIN=""
start_fake() {
  log "starting the fake HeyGen ($GROUPS_N groups x $LOOKS_PER_GROUP looks)"
  HEYGEN_API_KEY="$KEY" "${CLIENT_PIN[@]}" "$B/fakeheygen" -groups "$GROUPS_N" -looks-per-group "$LOOKS_PER_GROUP" \
    -ready-file "$R/fake.ready" >"$R/fake.log" 2>&1 &
  FAKE_PID=$!
  pids+=("$FAKE_PID")
  for _ in $(seq 100); do
    [[ -s "$R/fake.ready" ]] && break
    alive "$FAKE_PID" || die "the fake HeyGen exited: $(cat "$R/fake.log")"
    sleep 0.1
  done
  FAKE_URL="$(sed -n 's/^url=//p' "$R/fake.ready")"
  FAKE_ADMIN="$(sed -n 's/^admin=//p' "$R/fake.ready")"
  [[ -n "$FAKE_URL" && -n "$FAKE_ADMIN" ]] || die "the fake HeyGen did not report its addresses"
}

fake_latency() { "$TOOL" http POST "$FAKE_ADMIN/_fake/latency?d=$1" >/dev/null; }
fake_reset() { "$TOOL" http POST "$FAKE_ADMIN/_fake/reset" >/dev/null; }
fake_stats() { "$TOOL" http GET "$FAKE_ADMIN/_fake/stats" "$R/$1"; }

# start_gateway NAME [FLAGS...]: starts the gateway binary with default
# settings (plus FLAGS) on a free port; sets GW_PID and GW_ADDR.
GW_PID=""
GW_ADDR=""
start_gateway() {
  local name="$1" port
  shift
  port="$("$TOOL" freeport)"
  GW_ADDR="127.0.0.1:$port"
  log "starting gateway $name on $GW_ADDR"
  (cd "$RUN" && exec env -i PATH=/usr/bin:/bin HOME="$RUN" HEYGEN_API_KEY="$KEY" \
    "${SERVER_PIN[@]}" "$B/heygen-grpc" -addr "$GW_ADDR" -heygen-base-url "$FAKE_URL" "$@") \
    >"$R/$name.stdout" 2>"$R/$name.log" &
  GW_PID=$!
  pids+=("$GW_PID")
}

BARE_PID=""
BARE_ADDR=""
start_bare() {
  local port
  port="$("$TOOL" freeport)"
  BARE_ADDR="127.0.0.1:$port"
  log "starting the bare grpc-go server on $BARE_ADDR (response copied from $1)"
  "${SERVER_PIN[@]}" "$B/bareserver" -addr "$BARE_ADDR" -from "$1" -page-size "$PAGE_SIZE" >"$R/bare.log" 2>&1 &
  BARE_PID=$!
  pids+=("$BARE_PID")
  "$TOOL" wait-health -addr "$BARE_ADDR" -timeout 60s || die "the bare server did not start: $(cat "$R/bare.log")"
}

# ---- run -----------------------------------------------------------------------

{
  echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "commit_subject=$(git log -1 --format=%s 2>/dev/null || echo unknown)"
  echo "worktree_dirty=$([[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo yes || echo no)"
  echo "nproc=$NPROC"
  echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "mem_total_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
  echo "go_version=$(go env GOVERSION)"
  echo "kernel=$(uname -sr)"
  echo "os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null)"
  echo "ghz_version=$GHZ_VERSION"
  echo "placement=$PLACEMENT"
  echo "duration=$DURATION"
  echo "warmup=$WARMUP"
  echo "rounds=$ROUNDS"
  echo "concurrency=$CONCURRENCY"
  echo "connections=$CONNECTIONS"
  echo "latency=$LATENCY"
  echo "groups=$GROUPS_N"
  echo "looks_per_group=$LOOKS_PER_GROUP"
  echo "page_size=$PAGE_SIZE"
  echo "cold_callers=$COLD_CALLERS"
  echo "rest_requests=$REST_REQUESTS"
  echo "rss_callers=$RSS_CALLERS"
  echo "rss_duration=$RSS_DURATION"
  echo "gobench_count=$GOBENCH_COUNT"
  echo "gobench_time=$GOBENCH_TIME"
  echo "load1_start=$(load1)"
} >"$R/meta.env"


log "waiting for a quiet machine (at most ${QUIET_WAIT}s)"
wait_quiet "$QUIET_WAIT" start

# Part 1: cached ListAvatars, gateway versus bare; Health/Check for scale.
start_fake
start_gateway gw1
"$TOOL" wait-health -addr "$GW_ADDR" -service heygen-grpc.catalogue -timeout 120s ||
  die "gateway gw1 never got its catalogue: $(tail -5 "$R/gw1.log")"
G1_PID="$GW_PID"
G1_ADDR="$GW_ADDR"
fake_stats stats-gw1.json
echo "gw1_rss_idle_kib=$(kib "$G1_PID" VmRSS)" >>"$R/meta.env"
start_bare "$G1_ADDR"
echo "response_bytes=$(sed -n 's/.*(\([0-9]*\) bytes per response).*/\1/p' "$R/bare.log")" >>"$R/meta.env"

GHZ_C=(-c "$CONCURRENCY" --connections "$CONNECTIONS")
for r in $(seq "$ROUNDS"); do
  wait_quiet "$QUIET_WAIT_ROUND" "round$r"
  log "round $r/$ROUNDS: ListAvatars, ghz, gateway then bare (c=$CONCURRENCY, about $DURATION each)"
  ghz_measure "ghz-list-gw-r$r" "$G1_PID" "$DUR_S" "${GHZ_LIST[@]}" "${GHZ_C[@]}" "$G1_ADDR"
  ghz_measure "ghz-list-bare-r$r" "$BARE_PID" "$DUR_S" "${GHZ_LIST[@]}" "${GHZ_C[@]}" "$BARE_ADDR"
  log "round $r/$ROUNDS: ListAvatars, grpcload, gateway then bare"
  load_measure "load-list-gw-r$r" "$G1_PID" list "$G1_ADDR"
  load_measure "load-list-bare-r$r" "$BARE_PID" list "$BARE_ADDR"
done
wait_quiet "$QUIET_WAIT_ROUND" health
log "Health/Check on the gateway and the bare server, ghz and grpcload"
ghz_measure ghz-health-gw "$G1_PID" "$DUR_S" "${GHZ_HEALTH[@]}" "${GHZ_C[@]}" "$G1_ADDR"
ghz_measure ghz-health-bare "$BARE_PID" "$DUR_S" "${GHZ_HEALTH[@]}" "${GHZ_C[@]}" "$BARE_ADDR"
load_measure load-health-gw "$G1_PID" health "$G1_ADDR"
load_measure load-health-bare "$BARE_PID" health "$BARE_ADDR"
echo "gw1_vmhwm_kib=$(kib "$G1_PID" VmHWM)" >>"$R/meta.env"
stop "$BARE_PID"
stop "$G1_PID"

# Part 6 (run here, while HeyGen is fast): a CPU profile of the gateway
# binary itself under load, from its pprof endpoint. -pprof needs
# -metrics-addr, which also turns the Prometheus interceptors on: this
# gateway is the default one plus metrics.
M3_ADDR="127.0.0.1:$("$TOOL" freeport)"
start_gateway gw3 -metrics-addr "$M3_ADDR" -pprof
G3_PID="$GW_PID"
G3_ADDR="$GW_ADDR"
"$TOOL" wait-health -addr "$G3_ADDR" -service heygen-grpc.catalogue -timeout 120s ||
  die "gateway gw3 never got its catalogue: $(tail -5 "$R/gw3.log")"
PROF_S=$((DUR_S - 4 > 2 ? DUR_S - 4 : 2))
log "CPU profile of the gateway binary (metrics and pprof on) under grpcload, ${PROF_S}s"
(sleep $((WARMUP_S + 1)) && exec "$TOOL" http GET "http://$M3_ADDR/debug/pprof/profile?seconds=$PROF_S" "$R/gw3-cpu.pprof") \
  >"$R/gw3-pprof.log" 2>&1 &
PROF_PID=$!
pids+=("$PROF_PID")
load_measure load-list-gw3 "$G3_PID" list "$G3_ADDR"
wait "$PROF_PID" || die "fetching the gateway's CPU profile failed: $(cat "$R/gw3-pprof.log")"
stop "$G3_PID"
go tool pprof -top -nodecount 30 "$B/heygen-grpc" "$R/gw3-cpu.pprof" >"$R/gw3-pprof-top.txt" 2>/dev/null
go tool pprof -top -cum -focus 'grpc\.\(\*Server\)\.handleStream' -nodecount 300 "$B/heygen-grpc" "$R/gw3-cpu.pprof" \
  >"$R/gw3-pprof-server.txt" 2>/dev/null

# Part 3: cold callers against a fresh gateway, HeyGen slow.
log "fake HeyGen latency -> $LATENCY; $COLD_CALLERS cold callers against a fresh gateway"
fake_latency "$LATENCY"
fake_reset
start_gateway gw2
G2_PID="$GW_PID"
G2_ADDR="$GW_ADDR"
"$TOOL" wait-health -addr "$G2_ADDR" -timeout 30s || die "gateway gw2 did not start: $(tail -5 "$R/gw2.log")"
measured cold "$G2_PID" 180 "$GHZ" --cpus 1 "${GHZ_LIST[@]}" -c "$COLD_CALLERS" -n "$COLD_CALLERS" --connections 10 \
  --timeout 120s -O json -o "$R/cold.ghz.json" "$G2_ADDR"
"$TOOL" wait-health -addr "$G2_ADDR" -service heygen-grpc.catalogue -timeout 60s || die "gateway gw2 has no catalogue"
fake_stats stats-cold.json
echo "gw2_rss_after_crawl_kib=$(kib "$G2_PID" VmRSS)" >>"$R/meta.env"

# Part 2: the same page from HeyGen directly versus through the gateway.
log "REST: $REST_REQUESTS direct calls of the fake HeyGen page (c=$CONCURRENCY, latency $LATENCY)"
fake_stats stats-rest-before.json
HEYGEN_API_KEY="$KEY" "${CLIENT_PIN[@]}" "$B/restload" -url "$FAKE_URL/v3/avatars/looks?limit=$PAGE_SIZE" -n "$REST_REQUESTS" -c "$CONCURRENCY" \
  -expect-items "$PAGE_SIZE" -max-duration 120s -o "$R/rest.json" 2>"$R/rest.log" < /dev/null ||
  die "restload failed: $(cat "$R/rest.log")"
fake_stats stats-rest-after.json
log "gateway: the same page from its catalogue (c=$CONCURRENCY, $DURATION)"
fake_stats stats-gwrest-before.json
ghz_measure gwrest "$G2_PID" "$DUR_S" "${GHZ_LIST[@]}" "${GHZ_C[@]}" "$G2_ADDR"
fake_stats stats-gwrest-after.json

# Part 4: peak RSS under a sustained load of RSS_CALLERS callers.
log "sustained load: $RSS_CALLERS callers for $RSS_DURATION (peak RSS)"
echo "gw2_rss_before_load_kib=$(kib "$G2_PID" VmRSS)" >>"$R/meta.env"
ghz_measure rss "$G2_PID" "$RSS_S" "${GHZ_LIST[@]}" -c "$RSS_CALLERS" --connections 10 "$G2_ADDR"
{
  echo "gw2_vmhwm_kib=$(kib "$G2_PID" VmHWM)"
  echo "gw2_rss_after_load_kib=$(kib "$G2_PID" VmRSS)"
} >>"$R/meta.env"
stop "$G2_PID"
stop "$FAKE_PID"

# Part 5: Go benchmarks and the CPU profile, every server stopped.
log "Go benchmarks (go test -bench, count $GOBENCH_COUNT, benchtime $GOBENCH_TIME)"
go test -c -o "$B/server.test" ./server/
(cd "$REPO/server" && timeout -k 10 900 "$B/server.test" -test.run '^$' -test.bench . -test.benchmem \
  -test.count "$GOBENCH_COUNT" -test.benchtime "$GOBENCH_TIME" -test.timeout 14m) >"$R/gobench.txt" 2>&1 ||
  die "go test -bench failed: $(tail -20 "$R/gobench.txt")"
log "CPU profile of BenchmarkListAvatarsRPC/log=info"
(cd "$REPO/server" && timeout -k 10 300 "$B/server.test" -test.run '^$' -test.bench 'ListAvatarsRPC/log=info$' \
  -test.benchtime 5s -test.cpuprofile "$R/cpu.out" -test.timeout 4m) >"$R/profile-bench.txt" 2>&1 ||
  die "the profiling benchmark failed: $(tail -20 "$R/profile-bench.txt")"
go tool pprof -top -nodecount 30 "$B/server.test" "$R/cpu.out" >"$R/pprof-top.txt" 2>/dev/null
go tool pprof -top -cum -focus 'grpc\.\(\*Server\)\.handleStream' -nodecount 300 "$B/server.test" "$R/cpu.out" \
  >"$R/pprof-server.txt" 2>/dev/null
echo "load1_end=$(load1)" >>"$R/meta.env"
echo "elapsed_s=$((SECONDS - start_s))" >>"$R/meta.env"

log "writing $OUT"
"$TOOL" report -dir "$R" -out "$OUT"
cat "$OUT"
log "done in $((SECONDS - start_s))s"
