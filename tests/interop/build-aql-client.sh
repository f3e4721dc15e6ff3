#!/bin/sh
# Build aql_h3_client (tests/interop/aql_h3_client.go), the AQL client of
# the end-to-end tests, offline: Go code for the AQL messages is generated
# from the repository's .proto files by protoc and protoc-gen-go 1.28 into a
# temporary GOPATH under OUTDIR, and the client is built against it,
# Debian's Go protobuf runtime (golang-google-protobuf-dev) and quic-go 0.29
# by build-quicgo.sh.
#
# protoc-gen-go is built here from the sources golang-google-protobuf-dev
# ships, so it always matches that runtime: Debian's protoc-gen-go package
# (1.28) conflicts with protoc-gen-go-1-3, which quic-go's package pulls in,
# so /usr/bin/protoc-gen-go is the 1.3 plugin on a machine with quic-go.
#
#   tests/interop/build-aql-client.sh [OUTDIR]
#       OUTDIR default: <repo root>/build/interop
#
# The .proto files carry no go_package option: the Go import path of each
# file is given to protoc-gen-go on the command line (--go_opt=M...).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build/interop}

GOCODE=/usr/share/gocode
if ! command -v protoc >/dev/null 2>&1; then
    echo "build-aql-client.sh: 'protoc' not found in PATH (install protobuf-compiler)" >&2
    exit 1
fi
if [ ! -f $GOCODE/src/google.golang.org/protobuf/cmd/protoc-gen-go/main.go ]; then
    echo "build-aql-client.sh: Go protobuf runtime not found" \
         "(install golang-google-protobuf-dev)" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
GEN=$OUT/aql-gopath
rm -rf "$GEN"
mkdir -p "$GEN/src" "$OUT/.gocache" "$OUT/.gotmp"

# protoc-gen-go from golang-google-protobuf-dev's sources (offline).
if ! env GOPATH="$GOCODE" GO111MODULE=off GOFLAGS= GOENV=off GOCACHE="$OUT/.gocache" \
        GOTMPDIR="$OUT/.gotmp" HOME="${HOME:-$OUT}" GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -o "$OUT/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go; then
    echo "build-aql-client.sh: go build of protoc-gen-go failed" >&2
    exit 1
fi

# proto file -> Go import path (package name after ';').
PKG=nanatest/amaters
M="Mamaters/types.proto=$PKG/types;typespb"
M="$M,Mamaters/query.proto=$PKG/query;querypb"
M="$M,Mamaters/errors.proto=$PKG/errors;errorspb"
M="$M,Mamaters/aql.proto=$PKG/aql;aqlpb"
M="$M,Mamaters_service.proto=$PKG/service;amaterspb"

cd "$ROOT/proto"
if ! protoc -I . --plugin=protoc-gen-go="$OUT/protoc-gen-go" --go_out="$GEN/src" \
        --go_opt=paths=import --go_opt="$M" \
        amaters/types.proto amaters/query.proto amaters/errors.proto amaters/aql.proto \
        amaters_service.proto; then
    echo "build-aql-client.sh: protoc --go_out failed" >&2
    exit 1
fi

QUICGO_GOPATH_EXTRA=$GEN exec sh "$ROOT/tests/interop/build-quicgo.sh" "$OUT" \
    tests/interop/aql_h3_client.go
