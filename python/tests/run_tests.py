#!/usr/bin/env python3
"""Runs the Python package's tests and ends with one line "N passed, M failed".

    NANASQLITE_BIN_DIR=build/tools \\
    NANASQLITE_CLIENT_LIB=build/src/client/libnanasqlite-client.so \\
        python3 python/tests/run_tests.py [-k PATTERN] [-q]

--bin-dir and --lib may be given instead of the environment variables;
with neither, build/tools and build/src/client/libnanasqlite-client.so
next to python/ are used if they exist. Skipped tests are reported before
the final line and count as neither. Exit status 1 if anything failed.
"""
import argparse
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", help="directory with nanasqlite-server and the key tools")
    ap.add_argument("--lib", help="path of libnanasqlite-client.so")
    ap.add_argument("-k", dest="patterns", action="append",
                    help="only tests whose name contains this (unittest -k)")
    ap.add_argument("-q", "--quiet", action="store_true", help="one character per test")
    args = ap.parse_args()

    if args.bin_dir:
        os.environ["NANASQLITE_BIN_DIR"] = os.path.abspath(args.bin_dir)
    elif not os.environ.get("NANASQLITE_BIN_DIR"):
        default = os.path.join(REPO, "build", "tools")
        if os.path.exists(os.path.join(default, "nanasqlite-server")):
            os.environ["NANASQLITE_BIN_DIR"] = default
    if args.lib:
        os.environ["NANASQLITE_CLIENT_LIB"] = os.path.abspath(args.lib)
    elif not os.environ.get("NANASQLITE_CLIENT_LIB"):
        default = os.path.join(REPO, "build", "src", "client", "libnanasqlite-client.so")
        if os.path.exists(default):
            os.environ["NANASQLITE_CLIENT_LIB"] = default

    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [f"*{p}*" for p in args.patterns]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=1 if args.quiet else 2).run(suite)

    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    if skipped:
        print(f"{skipped} skipped")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
