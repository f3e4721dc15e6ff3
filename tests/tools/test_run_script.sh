#!/bin/sh
# scripts/run as a user meets it: `./scripts/run --help` (and --version)
# only print, and make no credentials or database in the current folder.
# Run where build/ is the project's default build and up to date (so
# scripts/run's build step has nothing to do).
# usage: test_run_script.sh SOURCE_DIR TMP_DIR
set -eu
src=$1
dir=$2/run-script-$$
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
pass=0
fail=0
check() { if [ "$1" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
st=0
"$src/scripts/run" --help >out.txt 2>err.txt || st=$?
check "$st" "scripts/run --help exits 0 ($(cat err.txt))"
st=0
grep -q "^usage: nanasqlite-server" out.txt || st=1
check $st "scripts/run --help prints the server's help"
rm -f out.txt err.txt
st=0
"$src/scripts/run" --port 4433 --version >out.txt 2>err.txt || st=$?
check "$st" "scripts/run --version exits 0"
st=0
grep -q "^nanasqlite-server " out.txt || st=1
check $st "scripts/run --version prints the version"
rm -f out.txt err.txt
left=$(ls -A)
st=0
[ -z "$left" ] || st=1
check $st "--help and --version made no files: $left"
cd /
rm -rf "$dir"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
