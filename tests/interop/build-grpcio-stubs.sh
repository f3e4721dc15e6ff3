#!/bin/sh
# Generate Python gRPC stubs (grpcio) for the repository's .proto files,
# for tests/e2e/test_grpc_h2.py: protoc 3.21 (protobuf-compiler) writes the
# messages (--python_out; it handles proto3 `optional`, which the older
# protoc bundled with python3-grpc-tools refuses) and grpc_python_plugin
# (protobuf-compiler-grpc) the service stubs.
#
#   tests/interop/build-grpcio-stubs.sh OUTDIR
#
# OUTDIR (emptied first) then holds the modules, to be put on sys.path:
#   nanasqlite/v1/nanasqlite_pb2{,_grpc}.py, amaters/*_pb2{,_grpc}.py,
#   amaters_service_pb2{,_grpc}.py, health/v1/health_pb2{,_grpc}.py and
#   reflection/v1alpha/reflection_pb2{,_grpc}.py.
# The health and reflection files are compiled from inside proto/grpc/ so
# that no generated package is named `grpc`, which would hide grpcio.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -ne 1 ]; then
    echo "usage: build-grpcio-stubs.sh OUTDIR" >&2
    exit 2
fi
OUT=$1
PLUGIN=${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}

if ! command -v protoc >/dev/null 2>&1; then
    echo "build-grpcio-stubs.sh: 'protoc' not found in PATH (install protobuf-compiler)" >&2
    exit 1
fi
if [ ! -x "$PLUGIN" ]; then
    echo "build-grpcio-stubs.sh: $PLUGIN not found (install protobuf-compiler-grpc)" >&2
    exit 1
fi

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

gen() {
    if ! protoc "$@" --python_out="$OUT" --grpc_python_out="$OUT" \
            --plugin=protoc-gen-grpc_python="$PLUGIN"; then
        echo "build-grpcio-stubs.sh: protoc failed on $*" >&2
        exit 1
    fi
}

cd "$ROOT/proto"
gen -I . nanasqlite/v1/nanasqlite.proto amaters/types.proto amaters/query.proto \
    amaters/errors.proto amaters/aql.proto amaters_service.proto
gen -I grpc health/v1/health.proto reflection/v1alpha/reflection.proto
