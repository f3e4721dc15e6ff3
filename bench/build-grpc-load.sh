#!/bin/sh
# Build bench/grpc_load.go (a gRPC load generator on Debian's grpc-go 1.33)
# offline, against the Go sources Debian installs under /usr/share/gocode.
#
#   bench/build-grpc-load.sh [OUTDIR]      (default: <repo root>/build/bench-go)
#
# Produces OUTDIR/grpc_load; Go's build cache is build-gocache/
# (NANA_GOCACHE), shared by every build directory.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Go's build cache, shared by every build directory (Go code is built the
# same for the sanitizer builds): NANA_GOCACHE, else build-gocache/.
GOCACHE_DIR=${NANA_GOCACHE:-$ROOT/build-gocache}
mkdir -p "$GOCACHE_DIR"
OUT=${1:-$ROOT/build/bench-go}
GOCODE=/usr/share/gocode
if ! command -v go >/dev/null 2>&1; then
    echo "build-grpc-load.sh: 'go' not found in PATH (install golang-go)" >&2
    exit 1
fi
if [ ! -f $GOCODE/src/google.golang.org/grpc/clientconn.go ]; then
    echo "build-grpc-load.sh: grpc-go not found (install golang-google-grpc-dev)" >&2
    exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
mkdir -p "$GOCACHE_DIR" "$OUT/.gotmp"
cd "$ROOT"
if ! env GOPATH="$GOCODE" GO111MODULE=off GOFLAGS= GOENV=off GOCACHE="$GOCACHE_DIR" \
        GOTMPDIR="$OUT/.gotmp" HOME="${HOME:-$OUT}" GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -o "$OUT/grpc_load" bench/grpc_load.go; then
    echo "build-grpc-load.sh: go build of bench/grpc_load.go failed" >&2
    exit 1
fi
