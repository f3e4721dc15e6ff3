#!/bin/sh
# The installed client library is usable the way a user would use it:
# `cmake --install` into a staging root (DESTDIR), then a program compiled
# and linked with nothing but `pkg-config nanasqlite-client` and run.
# usage: test_install.sh BUILD_DIR TMP_DIR
set -eu
build=$1
stage=$2/install-$$
rm -rf "$stage"
DESTDIR="$stage" cmake --install "$build" --prefix /usr/local >/dev/null
for f in lib/libnanasqlite-client.so.0 include/nanasqlite_client.h \
         lib/pkgconfig/nanasqlite-client.pc bin/nanasqlite-server bin/nanasqlite-cli; do
    [ -e "$stage/usr/local/$f" ] || { echo "not installed: $f"; echo "0 passed, 1 failed"; exit 1; }
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
export PKG_CONFIG_PATH="$stage/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
cc -o "$stage/use" "$stage/use.c" $(pkg-config --cflags --libs nanasqlite-client)
LD_LIBRARY_PATH="$stage/usr/local/lib" "$stage/use"
# Only the public functions are exported.
extra=$(nm -D --defined-only "$stage/usr/local/lib/libnanasqlite-client.so.0" |
        awk '$2 == "T" && $3 !~ /^nana_(client|pool|result)_/' | wc -l)
[ "$extra" -eq 0 ] || { echo "$extra private symbols exported"; echo "0 passed, 1 failed"; exit 1; }
rm -rf "$stage"
echo "3 passed, 0 failed"
