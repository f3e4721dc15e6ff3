#!/bin/sh
# docs/CONFIG.md is exactly what `nanasqlite-server --help-markdown` prints
# from the server's option table, so the reference cannot drift from the
# options the server parses. Regenerate it with
#   cmake --build build --target config-doc
# usage: check_config_md.sh SERVER_BINARY CONFIG_MD TMP_DIR
set -eu
server=$1
doc=$2
out=$3/config-md-$$.md
"$server" --help-markdown >"$out"
if cmp -s "$out" "$doc"; then
    rm -f "$out"
    echo "1 passed, 0 failed"
    exit 0
fi
diff -u "$doc" "$out" || true
rm -f "$out"
echo "FAIL: docs/CONFIG.md differs from the option table (cmake --build build --target config-doc)"
echo "0 passed, 1 failed"
exit 1
