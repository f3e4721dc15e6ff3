#!/bin/sh
# Build the hostile client tests/attack/attack_peer.go offline against
# Debian's quic-go 0.29, the same way as the interop peer.
#
#   tests/attack/build-attack.sh [OUTDIR]   (default: <repo root>/build/attack)
#
# Produces OUTDIR/attack_peer. Quiet on success, idempotent.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec "$ROOT/tests/interop/build-quicgo.sh" "${1:-$ROOT/build/attack}" tests/attack/attack_peer.go
