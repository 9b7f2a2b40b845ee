#!/usr/bin/env bash
# Checks the gateway's container image: runs TestContainerImage
# (e2e/container_test.go, build tag container), which builds the image
# FROM scratch with buildah in the layout of the Dockerfile's final stage,
# checks its config and layers (no key, no .env) and runs it as a runtime
# would, as 65532 with -demo, until grpc-health-probe says SERVING and
# SIGTERM ends it with exit 0. The test decides; this script installs what
# it needs:
#
#  - Debian's buildah, ca-certificates and tzdata, with apt-get, only in CI
#    (HEYGEN_GRPC_CI=1, set by .ci/run); elsewhere the test fails with the
#    apt-get command to run;
#  - grpc-health-probe, pinned, into .bin (scripts/install-tools.sh try-it).
#
# Needs root, as the test does (CI runs as root). Runs from any directory.
#
#   scripts/container-check.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GOTOOLCHAIN=local

if [[ "${HEYGEN_GRPC_CI:-}" == 1 ]]; then
  missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
  [[ -e /usr/share/zoneinfo/UTC ]] || missing+=(tzdata)
  if ((${#missing[@]} > 0)); then
    echo "container-check: HEYGEN_GRPC_CI=1: apt-get install -y ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
  fi
fi
"$REPO/scripts/install-tools.sh" try-it

cd "$REPO"
echo "+ go test -tags container -count=1 -v -run '^TestContainerImage\$' ./e2e"
go test -tags container -count=1 -v -run '^TestContainerImage$' ./e2e
