#!/bin/sh
# Build aql_h2_client (tests/interop/aql_h2_client.go), the grpc-go client
# of the end-to-end tests of the gRPC door over HTTP/2, offline: Go code for
# the messages is generated from the repository's .proto files by
# gen-go-protos.sh into a GOPATH directory under OUTDIR, and the client is
# built against it and Debian's grpc-go 1.33 (golang-google-grpc-dev) and
# Go protobuf runtime (golang-google-protobuf-dev).
#
#   tests/interop/build-aql-h2-client.sh [OUTDIR]
#       OUTDIR default: <repo root>/build/interop
#
# Produces OUTDIR/aql_h2_client. Go's build cache is build-gocache/
# (NANA_GOCACHE), shared by every build directory.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Go's build cache, shared by every build directory (Go code is built the
# same for the sanitizer builds): NANA_GOCACHE, else build-gocache/.
GOCACHE_DIR=${NANA_GOCACHE:-$ROOT/build-gocache}
mkdir -p "$GOCACHE_DIR"
OUT=${1:-$ROOT/build/interop}
GOCODE=/usr/share/gocode
if [ ! -f $GOCODE/src/google.golang.org/grpc/clientconn.go ]; then
    echo "build-aql-h2-client.sh: grpc-go not found (install golang-google-grpc-dev)" >&2
    exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
GEN=$OUT/aql-h2-gopath

sh "$ROOT/tests/interop/gen-go-protos.sh" "$OUT" "$GEN"

cd "$ROOT"
if ! env GOPATH="$GEN:$GOCODE" GO111MODULE=off GOFLAGS= GOENV=off \
        GOCACHE="$GOCACHE_DIR" GOTMPDIR="$OUT/.gotmp" HOME="${HOME:-$OUT}" \
        GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -o "$OUT/aql_h2_client" tests/interop/aql_h2_client.go; then
    echo "build-aql-h2-client.sh: go build of aql_h2_client.go failed" >&2
    exit 1
fi
