#!/usr/bin/env python3
"""Every tool's command line behaves the same way (they share nana_opt):
--version and --help answer with exit 0, `--name=value` is accepted like
`--name value`, an unknown option is named as unknown (also as the last
argument, also as --bogus=1), a missing value says so, and a bad number says
what is wrong and the allowed range; all with exit status 2.

Usage: test_flags.py BIN_DIR BENCH_DIR
Prints "N passed, M failed".
"""
import os
import re
import subprocess
import sys
import tempfile

BIN, BENCH = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def run(path, *args, cwd):
    return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# tool, directory, words before the options, how errors start,
# (numeric option, a good value, its range), another bad value and its exact message
TOOLS = [
    ("nanasqlite-server", BIN, [], "nanasqlite-server: ", ("--port", "4433", "0..65535"),
     (["--synchronous", "x"], '--synchronous: "x" is not one of normal or full')),
    ("nanasqlite-cli", BIN, [], "error: UsageError: ", ("--port", "4433", "1..65535"),
     (["--timeout-ms", "0"], "--timeout-ms: 0 is out of range (1..86400000)")),
    ("nanasqlite-bench", BIN, [], "nanasqlite-bench: ", ("--conns", "16", "1..100000"),
     (["-P", "x"], '-P: "x" is not a number (1..4096)')),
    ("nanasqlite-store", BIN, [], "nanasqlite-store: ", None,
     (["--sync", "fast"], '--sync: "fast" is not one of normal or full')),
    ("nanasqlite-key-gen", BIN, [], "nanasqlite-key-gen: ", None,
     (["--prefix", "a/b"], '--prefix: "a/b" is not a plain file name prefix')),
    ("nanasqlite-cert-gen", BIN, [], "nanasqlite-cert-gen: ", ("--days", "30", "1..36500"),
     (["--host", "bad host!"], '--host: "bad host!" is not a host name')),
    ("nanasqlite-quic-echo", BIN, ["server"], "nanasqlite-quic-echo server: ",
     ("--threads", "2", "1..64"),
     (["--retry", "sometimes"], '--retry: "sometimes" is not one of auto, always or never')),
    ("nanasqlite-bench-store", BENCH, [], "nanasqlite-bench-store: ",
     ("--writers", "8", "1..1024"), (["--scenario", "x"], '--scenario: "x" is not a scenario')),
    ("nanasqlite-bench-quic", BENCH, [], "nanasqlite-bench-quic: ", ("--port", "4433", "1..65535"),
     (["--scenario", "x"], '--scenario: "x" is not one of rpc, rpc16conns, handshake or bulk')),
    ("nanasqlite-bench-pk", BENCH, [], "nanasqlite-bench-pk: ", ("--ops", "10", "1..1000000"),
     (["--ops"], "--ops needs a value")),
    ("nanasqlite-bench-hiccup", BENCH, [], "nanasqlite-bench-hiccup: ",
     ("--busy", "1", "0..64"), (["--seconds", "0"], "--seconds: 0 is out of range (0.01..3600)")),
]

with tempfile.TemporaryDirectory() as d:
    for name, where, pre, prefix, num, other in TOOLS:
        tool = os.path.join(where, name)

        def bad(args, message, what):
            r = run(tool, *pre, *args, cwd=d)
            first = r.stderr.split("\n")[0]
            ok = r.returncode == 2 and r.stdout == "" and first.startswith(prefix + message)
            check(f"{name} {what}", ok, (args, r.returncode, r.stderr))

        r = run(tool, "--version", cwd=d)
        check(f"{name} --version", r.returncode == 0 and
              re.match(re.escape(name) + r" \d+\.\d+\.\d+", r.stdout) is not None,
              (r.returncode, r.stdout, r.stderr))
        r = run(tool, *pre, "--help", cwd=d)
        check(f"{name} --help", r.returncode == 0 and r.stdout.startswith("usage: " + name) and
              "--version" in r.stdout, (r.returncode, r.stdout[:200]))
        bad(["--bogus"], "unknown option --bogus", "unknown option as the last argument")
        bad(["--bogus=1"], "unknown option --bogus", "unknown option with =value")
        bad(other[0], other[1], "a bad value")
        if num:
            opt, good, rng = num
            lo, hi = rng.split("..")
            r = run(tool, *pre, f"{opt}={good}", "--help", cwd=d)
            check(f"{name} {opt}={good} accepted", r.returncode == 0, (r.returncode, r.stderr))
            bad([opt, "abc"], f'{opt}: "abc" is not a number ({rng})', "not a number")
            bad([f"{opt}=abc"], f'{opt}: "abc" is not a number ({rng})', "not a number (=)")
            bad([opt, str(int(hi) + 1)], f"{opt}: {int(hi) + 1} is out of range ({rng})",
                "above the range")
            if int(lo) > 0:
                bad([opt, str(int(lo) - 1)], f"{opt}: {int(lo) - 1} is out of range ({rng})",
                    "below the range")
            bad([opt], f"{opt} needs a value", "a missing value")

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
