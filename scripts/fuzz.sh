#!/usr/bin/env bash
# Runs every fuzz target for a short, bounded time, one at a time:
#
#   ./scripts/fuzz.sh                  # each target for 10s
#   FUZZTIME=30s ./scripts/fuzz.sh     # longer (any -fuzztime value: 30s, 5m, 100000x)
#   ./scripts/fuzz.sh FuzzCheckResponse FuzzDecodePageToken   # only these
#
# Targets: the HeyGen envelope decoder and Retry-After parser (./heygen) and
# the page-token decoder (./catalogue). Their seed corpora are committed under
# <pkg>/testdata/fuzz/<FuzzName>/ and also run as ordinary tests under plain
# `go test ./...`.
#
# When a target finds a failing input, `go test -fuzz` writes it to
# <pkg>/testdata/fuzz/<FuzzName>/<hash>: commit it with the fix, as a
# regression test. Every target runs even if an earlier one failed; the exit
# code is non-zero if any failed, and the failing inputs are listed at the end
# (reproduce one with: go test -run='^FuzzName/<hash>$' ./<pkg>).
#
# Go's fuzzing coordinator (still in go1.26.8) can fail a duration-bounded
# run that found nothing: when -fuzztime expires, it may read the deadline
# from its context before the workers' child context is cancelled, and then
# reports the deadline itself as the failure, a bare "context deadline
# exceeded" with no input (golang/go#75804). Such a run counts as a pass, and
# only when it wrote no input; any input a run wrote is named even when go
# test's output does not name it. (A count, FUZZTIME=500000x, has no
# deadline and so no race.)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# Build and test with the machine's Go; never download another toolchain.
export GOTOOLCHAIN=local

FUZZTIME="${FUZZTIME:-10s}"

# package target, one per line.
ALL_TARGETS="
./heygen FuzzCheckResponse
./heygen FuzzParseRetryAfter
./heygen FuzzValidIDIsTheAllowlist
./catalogue FuzzPageTokenRoundTrip
./catalogue FuzzDecodePageToken
"

# Every Fuzz function in the packages must be listed above, so that a new
# target is not silently left out of CI.
listed="$(awk 'NF {print $2}' <<<"$ALL_TARGETS" | sort)"
declared="$(go test -list '^Fuzz' ./heygen ./catalogue | grep '^Fuzz' | sort)"
if [[ "$listed" != "$declared" ]]; then
  echo "scripts/fuzz.sh: the target list is out of date." >&2
  echo "listed:   $(tr '\n' ' ' <<<"$listed")" >&2
  echo "declared: $(tr '\n' ' ' <<<"$declared")" >&2
  exit 2
fi

selected=()
while read -r pkg name; do
  [[ -z "${pkg:-}" ]] && continue
  if (($# > 0)); then
    want=0
    for arg in "$@"; do [[ "$arg" == "$name" ]] && want=1; done
    ((want)) || continue
  fi
  selected+=("$pkg $name")
done <<<"$ALL_TARGETS"
if (($# > 0 && ${#selected[@]} != $#)); then
  echo "scripts/fuzz.sh: unknown target among: $*" >&2
  exit 2
fi

log="$(mktemp "${TMPDIR:-/tmp}/heygen-grpc-fuzz.XXXXXX")"
trap 'rm -f "$log"' EXIT

# corpus_files DIR: the names of the files in DIR, sorted (none if DIR is absent).
corpus_files() {
  if [[ -d "$1" ]]; then
    find "$1" -maxdepth 1 -type f -printf '%f\n' | LC_ALL=C sort
  fi
}

# deadline_race NAME LOG: whether the one failure in LOG is NAME failing with
# nothing but "context deadline exceeded", the golang/go#75804 signature. A
# crash, a panic, a t.Fatal (whose message carries file:line) or a second
# failure does not match.
deadline_race() {
  [[ "$(grep -c -- '--- FAIL' "$2")" == 1 ]] || return 1
  grep -qE -- "^--- FAIL: $1 \([0-9.]+s\)\$" "$2" || return 1
  ! grep -qE 'Failing input written to|failure while testing seed corpus entry|^panic:|fuzzing process' "$2" || return 1
  [[ "$(sed -n "/^--- FAIL: $1 /,/^[^[:space:]]/{/^[[:space:]]/p}" "$2")" == "    context deadline exceeded" ]]
}

failed=()
summary=()
for entry in "${selected[@]}"; do
  read -r pkg name <<<"$entry"
  echo "==> go test -run='^\$' -fuzz='^${name}\$' -fuzztime=${FUZZTIME} ${pkg}"
  corpus="${pkg}/testdata/fuzz/${name}"
  before="$(corpus_files "$corpus")"
  rc=0
  go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1 | tee "$log" || rc=$?
  execs="$(grep -oE 'execs: [0-9]+' "$log" | tail -n1 | awk '{print $2}' || true)"
  if ((rc == 0)); then
    summary+=("PASS  ${name} (${pkg}, ${execs:-?} execs)")
    continue
  fi
  # A new failing input ("Failing input written to testdata/fuzz/F/h", or
  # any file the run added to the corpus) or a committed one that still
  # fails ("failure while testing seed corpus entry: F/name").
  inputs="$(
    {
      sed -nE 's/.*Failing input written to (testdata\/fuzz\/[^[:space:]]+).*/\1/p' "$log"
      sed -nE 's/.*failure while testing seed corpus entry: ([^[:space:]]+).*/testdata\/fuzz\/\1/p' "$log"
      LC_ALL=C comm -13 <(printf '%s\n' "$before") <(corpus_files "$corpus") | sed '/^$/d; s|^|testdata/fuzz/'"${name}"'/|'
    } | sort -u
  )"
  if [[ -z "$inputs" ]] && deadline_race "$name" "$log"; then
    summary+=("PASS  ${name} (${pkg}, ${execs:-?} execs; go test reported only its own -fuzztime deadline, golang/go#75804)")
    continue
  fi
  if [[ -z "$inputs" ]]; then
    summary+=("FAIL  ${name} (${pkg}): go test exited ${rc} without naming an input (build or setup failure?)")
    failed+=("$name")
    continue
  fi
  while read -r input; do
    summary+=("FAIL  ${name} (${pkg}): failing input ${pkg#./}/${input}")
  done <<<"$inputs"
  failed+=("$name")
done

echo
echo "==> fuzz summary (FUZZTIME=${FUZZTIME})"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo
  echo "Failing inputs are kept under <pkg>/testdata/fuzz/ and run under plain go test."
  echo "Reproduce one with: go test -run='^FuzzName/<file>\$' ./<pkg>"
  exit 1
fi
