#!/usr/bin/env bash
# The project's whole check, as CI runs it (.ci/run) and as a developer runs
# it before pushing:
#
#   ./scripts/test.sh
#
# Steps: install tools, gofmt, go vet, buf lint + format, generated code up
# to date, buf breaking (against HEAD~1), golangci-lint, Dockerfile lint,
# go test -race, the fault suite (printing its counts), a short fuzz run,
# the end-to-end tests (go test -tags e2e ./e2e: the binary driven by
# grpcurl and grpc-health-probe, every README command compared with the
# output the README shows, the Node, Go and Python example clients, config
# errors, SIGTERM), the Kubernetes manifests (scripts/k8s-check.sh: go test
# in the deploy module, which renders with kustomize in-process, the pinned
# kustomize CLI and kubectl when installed) and the container image
# (scripts/container-check.sh: go test -tags container ./e2e; needs root
# and Debian's buildah, which it installs only in CI). Every step runs even when
# an earlier one failed (except the tool install, which the rest need), and
# a summary closes the output. The exit code is non-zero if any step failed.
#
# Needs Go, Node.js/npm, git, python3 and the Debian packages in
# scripts/install-debian-packages.sh (the Python example, Prometheus and
# promtool) and buildah (the container check), which the scripts install
# only in CI (HEYGEN_GRPC_CI=1, set by .ci/run); elsewhere those steps fail
# with the apt-get command to run, and nothing outside the repository
# changes. Reaches only the
# Go module proxy and the npm registry (for the first tool install), and
# Debian's archive in CI.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BIN="$REPO/.bin"
export PATH="$BIN:$PATH"
# Build and test with the machine's Go; never download another toolchain.
export GOTOOLCHAIN=local

BUF=(go tool -modfile=tools/go.mod buf)

TOTAL_STEPS=14
step_no=0
results=()
failures=0
run_start=$SECONDS

header() {
  printf '\n==> [%d/%d] %s\n' "$step_no" "$TOTAL_STEPS" "$1"
}

# step NAME FUNCTION: run FUNCTION (in a subshell, with errexit) and record
# PASS, FAIL or SKIP (the function prints "SKIP: reason" and returns 99).
step() {
  local name="$1" fn="$2" start rc=0
  step_no=$((step_no + 1))
  header "$name"
  start=$SECONDS
  set +e
  (
    set -euo pipefail
    "$fn"
  )
  rc=$?
  set -e
  local took=$((SECONDS - start))
  case "$rc" in
    0) results+=("PASS  ${took}s  $name") ;;
    99) results+=("SKIP  ${took}s  $name") ;;
    *)
      results+=("FAIL  ${took}s  $name")
      failures=$((failures + 1))
      printf '\n!!! FAILED: %s (exit %d)\n' "$name" "$rc"
      ;;
  esac
  return 0
}

summary() {
  local passed=0 skipped=0 r
  printf '\n==> summary (%ds)\n' "$((SECONDS - run_start))"
  for r in "${results[@]}"; do
    printf '  %s\n' "$r"
    case "$r" in
      PASS*) passed=$((passed + 1)) ;;
      SKIP*) skipped=$((skipped + 1)) ;;
    esac
  done
  echo
  printf 'steps: %d passed, %d failed, %d skipped\n' "$passed" "$failures" "$skipped"
}

# ---- steps ---------------------------------------------------------------------

install_tools() {
  "$REPO/scripts/install-tools.sh"
  # System packages the tests need (installed only in CI; elsewhere the
  # tests that need one fail with the command that installs it).
  "$REPO/scripts/install-debian-packages.sh"
}

# Tracked .go files, plus new ones not yet added (but not ignored ones), so
# a developer's run checks what they are about to commit.
gofmt_check() {
  local files=() unformatted=() out f
  while IFS= read -r -d '' f; do
    [[ -f "$f" ]] && files+=("$f")
  done < <(git ls-files -z --cached --others --exclude-standard -- '*.go')
  if ((${#files[@]} == 0)); then
    echo "no .go files"
    return 0
  fi
  echo "+ gofmt -l (${#files[@]} .go files: git ls-files --cached --others --exclude-standard)"
  out="$(gofmt -l "${files[@]}")"
  [[ -n "$out" ]] && mapfile -t unformatted <<<"$out"
  if ((${#unformatted[@]} > 0)); then
    echo "These files are not gofmt-formatted (run: gofmt -w FILE):"
    printf '  %s\n' "${unformatted[@]}"
    return 1
  fi
  echo "all formatted"
}

go_vet() {
  echo "+ go vet ./..."
  go vet ./...
}

buf_lint() {
  local rc=0
  echo "+ ${BUF[*]} lint"
  "${BUF[@]}" lint || rc=1
  echo "+ ${BUF[*]} format -d --exit-code"
  if ! "${BUF[@]}" format -d --exit-code; then
    echo "proto files are not buf-formatted: run \`${BUF[*]} format -w\`"
    rc=1
  fi
  return "$rc"
}

# Regenerates gen/ into a temporary directory and compares it with the work
# tree's gen/, so that a developer's uncommitted edits are never overwritten.
# In CI (a fresh clone) the work tree is HEAD, so this checks the commit.
generated_code() {
  local out
  out="$(mktemp -d "${TMPDIR:-/tmp}/heygen-grpc-gen.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$out'" EXIT
  echo "+ ${BUF[*]} generate -o $out"
  "${BUF[@]}" generate -o "$out"
  if [[ ! -d "$out/gen" ]]; then
    echo "buf generate wrote nothing under gen/"
    return 1
  fi
  if ! diff -ru --exclude=.gitkeep gen "$out/gen"; then
    echo
    echo "gen/ is stale: run \`go tool -modfile=tools/go.mod buf generate\` and commit"
    return 1
  fi
  echo "gen/ matches ${BUF[*]} generate"
}

buf_breaking() {
  if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null; then
    if [[ "$(git rev-parse --is-shallow-repository 2>/dev/null)" == true ]]; then
      echo "SKIP: shallow clone: HEAD~1 is not fetched, so there is no previous commit to compare the API against"
    else
      echo "SKIP: HEAD is the first commit, so there is no previous commit to compare the API against"
    fi
    return 99
  fi
  if ! git cat-file -e 'HEAD~1:buf.yaml' 2>/dev/null || ! git cat-file -e 'HEAD~1:proto' 2>/dev/null; then
    echo "SKIP: HEAD~1 ($(git rev-parse --short HEAD~1)) has no buf.yaml and proto/, so there is no earlier API to compare against"
    return 99
  fi
  echo "comparing proto/ with HEAD~1 ($(git log -1 --format='%h %s' HEAD~1))"
  echo "+ ${BUF[*]} breaking --against '.git#ref=HEAD~1'"
  "${BUF[@]}" breaking --against '.git#ref=HEAD~1'
  echo "no breaking changes against HEAD~1"
}

golangci() {
  echo "+ golangci-lint run ./...   ($(golangci-lint version --short), config .golangci.yml)"
  golangci-lint run ./...
  # deploy/ is its own module (the Kubernetes API types stay out of the
  # service's go.mod); the same configuration lints it.
  echo "+ (cd deploy && golangci-lint run --config ../.golangci.yml ./...)"
  (cd deploy && golangci-lint run --config ../.golangci.yml ./...)
}

# dockerignore_lists PATTERN...: .dockerignore has a line for each PATTERN.
dockerignore_lists() {
  local p
  for p in "$@"; do
    grep -qxF -e "$p" -e "/$p" -e "$p/" -e "/$p/" .dockerignore || return 1
  done
}

dockerfile_lint() {
  local rc=0
  echo "+ dockerfilelint Dockerfile   (dockerfilelint $(dockerfilelint --version))"
  dockerfilelint Dockerfile || rc=1
  # Project rules the generic linter does not know.
  echo "project rules:"
  policy() {
    local desc="$1"
    shift
    if "$@"; then
      echo "  ok    $desc"
    else
      echo "  FAIL  $desc"
      rc=1
    fi
  }
  policy "every FROM is pinned by digest (@sha256:...)" \
    bash -c '! grep -E "^[[:space:]]*FROM[[:space:]]" Dockerfile | grep -vqE "@sha256:[0-9a-f]{64}"'
  policy "the final stage runs as nonroot (USER nonroot:nonroot or 65532)" \
    bash -c 'grep -E "^[[:space:]]*USER[[:space:]]" Dockerfile | tail -n1 | grep -qE "USER[[:space:]]+(nonroot(:nonroot)?|65532(:65532)?)[[:space:]]*$"'
  policy "ENTRYPOINT is in exec form" \
    grep -qE '^[[:space:]]*ENTRYPOINT[[:space:]]+\[' Dockerfile
  policy "no ENV/ARG carries a key, token, secret or password" \
    bash -c '! grep -iE "^[[:space:]]*(ENV|ARG)[[:space:]].*(KEY|TOKEN|SECRET|PASSWORD)" Dockerfile'
  policy ".dockerignore keeps .git, .env and .bin out of the build context" \
    dockerignore_lists .git .env .bin
  return "$rc"
}

# The fault suite runs in its own step, verbosely, so its counts are shown.
go_test() {
  echo "+ go test -race -count=1 -skip '^TestFaultSuite' ./..."
  go test -race -count=1 -skip '^TestFaultSuite' ./...
  # Allocation bounds count the race detector's allocations too: run
  # them on their own, without it.
  echo "+ go test -count=1 -run '^TestCrawlAllocatesAtMostTwiceItsSnapshot\$' ./catalogue"
  go test -count=1 -run '^TestCrawlAllocatesAtMostTwiceItsSnapshot$' ./catalogue
}

fault_suite() {
  echo "+ go test -race -count=1 -run '^TestFaultSuite' -v ./server"
  go test -race -count=1 -run '^TestFaultSuite' -v ./server 2>&1 | grep -E 'fault suite|^(---|===|ok|FAIL|PASS)|_test.go'
}

fuzz() {
  FUZZTIME="${FUZZTIME:-10s}" "$REPO/scripts/fuzz.sh"
}

k8s_check() {
  "$REPO/scripts/k8s-check.sh"
}

container_check() {
  "$REPO/scripts/container-check.sh"
}

e2e() {
  echo "+ go test -tags e2e -count=1 ./e2e"
  go test -tags e2e -count=1 ./e2e
}

# ---- run -------------------------------------------------------------------------

echo "heygen-grpc checks in $REPO ($(go version | cut -d' ' -f3-), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"

step "install tools (scripts/install-tools.sh)" install_tools
if ((failures > 0)); then
  echo "The tools could not be installed: the other steps need them." >&2
  summary
  exit 1
fi
step "gofmt" gofmt_check
step "go vet" go_vet
step "buf lint and buf format" buf_lint
step "generated code (gen/) is up to date" generated_code
step "buf breaking against HEAD~1" buf_breaking
step "golangci-lint" golangci
step "Dockerfile lint" dockerfile_lint
step "go test -race" go_test
step "fault suite (TestFaultSuite, TestFaultSuiteHostile)" fault_suite
step "fuzz (scripts/fuzz.sh, FUZZTIME=${FUZZTIME:-10s} per target)" fuzz
step "end-to-end (go test -tags e2e ./e2e)" e2e
step "Kubernetes manifests (scripts/k8s-check.sh: go test in deploy/)" k8s_check
step "container image (scripts/container-check.sh: go test -tags container ./e2e)" container_check

summary
((failures == 0))
