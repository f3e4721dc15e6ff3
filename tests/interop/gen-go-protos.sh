#!/bin/sh
# Generate Go code for the repository's .proto files, offline, for the Go
# clients of the end-to-end tests (aql_h3_client, aql_h2_client):
# protoc with protoc-gen-go built from the sources Debian's Go protobuf
# runtime (golang-google-protobuf-dev, 1.28) ships, so the generated code
# always matches that runtime. Debian's protoc-gen-go package (1.28)
# conflicts with protoc-gen-go-1-3, which quic-go's package pulls in, so
# /usr/bin/protoc-gen-go is the 1.3 plugin on a machine with quic-go.
#
#   tests/interop/gen-go-protos.sh OUTDIR GOPATHDIR
#
# Makes GOPATHDIR (emptied first) a GOPATH directory holding
#   nanatest/amaters/{types,query,errors,aql,service}  (proto/amaters*.proto)
#   nanatest/health                                    (grpc/health/v1/health.proto)
# and GOPATHDIR/protoc-gen-go. OUTDIR holds the Go build cache (shared by
# every build under it: Go's cache is safe to share). Each client build
# uses its own GOPATHDIR, so two builds can run at once.
#
# The .proto files carry no go_package option: the Go import path of each
# file is given to protoc-gen-go on the command line (--go_opt=M...).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Go's build cache, shared by every build directory (Go code is built the
# same for the sanitizer builds): NANA_GOCACHE, else build-gocache/.
GOCACHE_DIR=${NANA_GOCACHE:-$ROOT/build-gocache}
mkdir -p "$GOCACHE_DIR"
if [ $# -ne 2 ]; then
    echo "usage: gen-go-protos.sh OUTDIR GOPATHDIR" >&2
    exit 2
fi
OUT=$1
GEN=$2

GOCODE=/usr/share/gocode
if ! command -v protoc >/dev/null 2>&1; then
    echo "gen-go-protos.sh: 'protoc' not found in PATH (install protobuf-compiler)" >&2
    exit 1
fi
if [ ! -f $GOCODE/src/google.golang.org/protobuf/cmd/protoc-gen-go/main.go ]; then
    echo "gen-go-protos.sh: Go protobuf runtime not found" \
         "(install golang-google-protobuf-dev)" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$GEN"
mkdir -p "$GEN/src" "$GOCACHE_DIR" "$OUT/.gotmp"
GEN=$(cd "$GEN" && pwd)

# protoc-gen-go from golang-google-protobuf-dev's sources (offline).
if ! env GOPATH="$GOCODE" GO111MODULE=off GOFLAGS= GOENV=off GOCACHE="$GOCACHE_DIR" \
        GOTMPDIR="$OUT/.gotmp" HOME="${HOME:-$OUT}" GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -o "$GEN/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go; then
    echo "gen-go-protos.sh: go build of protoc-gen-go failed" >&2
    exit 1
fi

# proto file -> Go import path (package name after ';').
PKG=nanatest/amaters
M="Mamaters/types.proto=$PKG/types;typespb"
M="$M,Mamaters/query.proto=$PKG/query;querypb"
M="$M,Mamaters/errors.proto=$PKG/errors;errorspb"
M="$M,Mamaters/aql.proto=$PKG/aql;aqlpb"
M="$M,Mamaters_service.proto=$PKG/service;amaterspb"
M="$M,Mgrpc/health/v1/health.proto=nanatest/health;healthpb"

cd "$ROOT/proto"
if ! protoc -I . --plugin=protoc-gen-go="$GEN/protoc-gen-go" --go_out="$GEN/src" \
        --go_opt=paths=import --go_opt="$M" \
        amaters/types.proto amaters/query.proto amaters/errors.proto amaters/aql.proto \
        amaters_service.proto grpc/health/v1/health.proto; then
    echo "gen-go-protos.sh: protoc --go_out failed" >&2
    exit 1
fi
