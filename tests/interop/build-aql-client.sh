#!/bin/sh
# Build aql_h3_client (tests/interop/aql_h3_client.go), the AQL client of
# the end-to-end tests, offline: Go code for the AQL messages is generated
# from the repository's .proto files by gen-go-protos.sh into a GOPATH
# directory under OUTDIR, and the client is built against it, Debian's Go
# protobuf runtime (golang-google-protobuf-dev) and quic-go 0.29 by
# build-quicgo.sh.
#
#   tests/interop/build-aql-client.sh [OUTDIR]
#       OUTDIR default: <repo root>/build/interop
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build/interop}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
GEN=$OUT/aql-gopath

sh "$ROOT/tests/interop/gen-go-protos.sh" "$OUT" "$GEN"

QUICGO_GOPATH_EXTRA=$GEN exec sh "$ROOT/tests/interop/build-quicgo.sh" "$OUT" \
    tests/interop/aql_h3_client.go
