#!/bin/sh
# A generated document is exactly what the server prints from its option
# table, so it cannot drift from the options the server parses:
# docs/CONFIG.md is `nanasqlite-server --help-markdown`, and
# docs/nanasqlite-server.example.toml is `nanasqlite-server --help-config`.
# Regenerate both with
#   cmake --build build --target config-doc
# usage: check_config_md.sh SERVER_BINARY DOCUMENT TMP_DIR [FLAG]
#   FLAG: what prints the document (default --help-markdown)
set -eu
server=$1
doc=$2
flag=${4:---help-markdown}
out=$3/config-doc-$$.out
"$server" "$flag" >"$out"
if cmp -s "$out" "$doc"; then
    rm -f "$out"
    echo "1 passed, 0 failed"
    exit 0
fi
diff -u "$doc" "$out" || true
rm -f "$out"
echo "FAIL: $doc differs from \`nanasqlite-server $flag\` (cmake --build build --target config-doc)"
echo "0 passed, 1 failed"
exit 1
