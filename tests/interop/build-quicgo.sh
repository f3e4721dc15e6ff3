#!/bin/sh
# Build a Go program that uses quic-go offline against Debian's quic-go 0.29
# (golang-github-lucas-clemente-quic-go-dev) and golang-go. By default the
# interop peer (tests/interop/quicgo_peer.go).
#
#   tests/interop/build-quicgo.sh [OUTDIR [SOURCE.go]]
#       OUTDIR default: <repo root>/build/interop
#       SOURCE default: tests/interop/quicgo_peer.go (relative to the repo root)
#
# Produces OUTDIR/<SOURCE's name without .go>. Quiet on success, idempotent
# (Go's build cache, build-gocache/ or $NANA_GOCACHE, is shared by every
# build directory, so reruns are fast). Works as root with no $HOME.
set -eu

# The repository root (this script lives in tests/interop/).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Go's build cache, shared by every build directory (Go code is built the
# same for the sanitizer builds): NANA_GOCACHE, else build-gocache/.
GOCACHE_DIR=${NANA_GOCACHE:-$ROOT/build-gocache}
mkdir -p "$GOCACHE_DIR"

# OUTDIR is relative to the caller's directory; the default is relative to
# the repository root.
OUT=${1:-$ROOT/build/interop}
SRC=${2:-tests/interop/quicgo_peer.go}
NAME=$(basename "$SRC" .go)
# QUICGO_GOPATH overrides where the Debian Go sources live (for testing).
GOPATH_DEBIAN=${QUICGO_GOPATH:-/usr/share/gocode}
# QUICGO_GOPATH_EXTRA: a GOPATH directory searched first (packages generated
# at build time, as build-aql-client.sh makes).
GOPATH_ALL=${QUICGO_GOPATH_EXTRA:+$QUICGO_GOPATH_EXTRA:}$GOPATH_DEBIAN
QUICGO_SRC=$GOPATH_DEBIAN/src/github.com/lucas-clemente/quic-go

if ! command -v go >/dev/null 2>&1; then
    echo "build-quicgo.sh: 'go' not found in PATH (install golang-go)" >&2
    exit 1
fi
if [ ! -f "$QUICGO_SRC/client.go" ]; then
    echo "build-quicgo.sh: quic-go sources not found at $QUICGO_SRC" \
         "(install golang-github-lucas-clemente-quic-go-dev)" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
mkdir -p "$GOCACHE_DIR" "$OUT/.gotmp"
cd "$ROOT"

# GOFLAGS/GOENV cleared so a user's go env cannot switch on modules or -mod=...
if ! env GOPATH="$GOPATH_ALL" GO111MODULE=off GOFLAGS= GOENV=off \
        GOCACHE="$GOCACHE_DIR" GOTMPDIR="$OUT/.gotmp" HOME="${HOME:-$OUT}" \
        GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -o "$OUT/$NAME" "$SRC"; then
    echo "build-quicgo.sh: go build of $SRC failed" >&2
    exit 1
fi
