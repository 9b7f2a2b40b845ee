#!/usr/bin/env bash
# The gateway's benchmark: one command, about 9 to 14 minutes, results in
# bench/RESULTS.md (under version control) and a summary on stderr.
#
#   ./scripts/bench.sh [benchtool run flags]     e.g. -parts cpu -rounds 1
#
# The driver is Go (bench/benchtool, `go run ./bench/benchtool run -h` lists
# its flags; bench/README.md says what each part measures). This script only
# checks the tools and starts it. Everything runs on this machine over
# loopback; servers are pinned to CPU 0 and load generators to CPU 1 with
# taskset (util-linux) when it is there. It is not part of scripts/test.sh:
# it is slow, and its numbers depend on whatever else the machine runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local
command -v go >/dev/null || { echo "bench.sh: Go is required" >&2; exit 1; }
command -v taskset >/dev/null || echo "bench.sh: taskset (util-linux) not found: nothing will be pinned" >&2
tmp="$(mktemp -d "${TMPDIR:-/tmp}/heygen-grpc-benchtool.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/benchtool" ./bench/benchtool
"$tmp/benchtool" run "$@"
