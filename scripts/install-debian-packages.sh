#!/usr/bin/env bash
# Installs the Debian packages the tests need (redis-server for the fleet
# tests; for the end-to-end tests' Python example, Debian's gRPC and
# protobuf for Python, and protoc with the gRPC Python plugin and the
# well-known .proto files; for e2e/monitoring_test.go, prometheus, which
# brings promtool), but only in CI:
# `.ci/run` sets HEYGEN_GRPC_CI=1. Anywhere else it changes nothing and
# says what to run; the tests then fail with the same one-line hint.
#
# PACKAGES is the one list: e2e/main_test.go reads it from here.
set -euo pipefail

PACKAGES=(redis-server python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev prometheus)

missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == ii* ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-debian-packages: ${PACKAGES[*]}: installed"
  exit 0
fi

if [[ "${HEYGEN_GRPC_CI:-}" != 1 ]]; then
  echo "install-debian-packages: not installed: ${missing[*]} (not installing outside CI; run as root: apt-get update && apt-get install -y ${PACKAGES[*]})"
  exit 0
fi
echo "install-debian-packages: HEYGEN_GRPC_CI=1: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# No recommends: prometheus would bring prometheus-node-exporter, a daemon
# the tests do not use.
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
