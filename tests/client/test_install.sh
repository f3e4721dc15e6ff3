#!/bin/sh
# The installed client library is usable the way a user would use it:
#  1. `cmake --install` into a staging root (DESTDIR): the files are there,
#     a program builds with nothing but `pkg-config nanasqlite-client` and
#     runs, and only the public functions are exported;
#  2. `cmake --install --prefix P` (what `make install PREFIX=P` runs) into a
#     prefix chosen after the build was configured: the .pc file names P,
#     and the README's C example, built with the README's command, runs.
# usage: test_install.sh BUILD_DIR TMP_DIR [SOURCE_DIR]
set -eu
build=$1
mkdir -p "$2"
stage=$(cd "$2" && pwd)/install-$$
src=${3:-$(cd "$(dirname "$0")/../.." && pwd)}
fail() { echo "FAIL: $1"; echo "0 passed, 1 failed"; exit 1; }
rm -rf "$stage"
DESTDIR="$stage" cmake --install "$build" --prefix /usr/local >/dev/null
for f in lib/libnanasqlite-client.so.0 include/nanasqlite_client.h \
         lib/pkgconfig/nanasqlite-client.pc bin/nanasqlite-server bin/nanasqlite-cli; do
    [ -e "$stage/usr/local/$f" ] || fail "not installed: $f"
done
cat > "$stage/use.c" <<'C'
#include <nanasqlite_client.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    nana_client_opts o;
    nana_client_opts_init(&o);
    return strcmp(nana_client_status_name(NANA_CLIENT_EAUTH), "AuthenticationError") != 0 ||
           o.port != 4433;
}
C
(
    export PKG_CONFIG_PATH="$stage/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
    cc -o "$stage/use" "$stage/use.c" $(pkg-config --cflags --libs nanasqlite-client)
    LD_LIBRARY_PATH="$stage/usr/local/lib" "$stage/use"
) || fail "a program built with pkg-config (DESTDIR) does not run"
# Only the public functions are exported.
extra=$(nm -D --defined-only "$stage/usr/local/lib/libnanasqlite-client.so.0" |
        awk '$2 == "T" && $3 !~ /^nana_(client|pool|result)_/' | wc -l)
[ "$extra" -eq 0 ] || fail "$extra private symbols exported"

# 2. Another prefix, given only at install time.
prefix=$stage/opt/x
cmake --install "$build" --prefix "$prefix" >/dev/null
grep -qx "prefix=$prefix" "$prefix/lib/pkgconfig/nanasqlite-client.pc" ||
    fail "nanasqlite-client.pc does not name $prefix: $(head -1 "$prefix/lib/pkgconfig/nanasqlite-client.pc")"
mkdir "$stage/app"
awk '/^```c$/ {on = 1; next} /^```$/ && on {exit} on' "$src/README.md" >"$stage/app/app.c"
grep -q "int main" "$stage/app/app.c" || fail "no C example in README.md"
(
    cd "$stage/app"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib"
    cc app.c $(pkg-config --cflags --libs nanasqlite-client) || exit 1
    # No key in this folder: the example reports it and exits 1 without reaching the network.
    out=$(./a.out 2>&1) && exit 1
    echo "$out" | grep -q "private key" || exit 1
) || fail "the README's C example does not build and run against $prefix"
rm -rf "$stage"
echo "5 passed, 0 failed"
