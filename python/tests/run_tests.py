#!/usr/bin/env python3
"""Runs the Python package's tests and ends with one line "N passed, M failed".

    python3 python/tests/run_tests.py [-k PATTERN] [-q]     # from the repository's top
    python3 tests/run_tests.py [-k PATTERN] [-q]            # from python/

The server binaries and the C library are the build's, found from this
file's place in the repository (build/tools and
build/src/client/libnanasqlite-client.so), wherever it is run from.
--bin-dir and --lib (or NANASQLITE_BIN_DIR and NANASQLITE_CLIENT_LIB) name
others; a relative path is taken from the current directory, and one that
does not hold what it should stops the run at once with exit status 2.
Skipped tests are reported before the final line and count as neither.
Exit status 1 if anything failed.
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

    bin_dir = args.bin_dir or os.environ.get("NANASQLITE_BIN_DIR") or \
        os.path.join(REPO, "build", "tools")
    lib = args.lib or os.environ.get("NANASQLITE_CLIENT_LIB") or \
        os.path.join(REPO, "build", "src", "client", "libnanasqlite-client.so")
    bin_dir, lib = os.path.abspath(bin_dir), os.path.abspath(lib)
    if not os.access(os.path.join(bin_dir, "nanasqlite-server"), os.X_OK):
        print(f"run_tests.py: no nanasqlite-server in {bin_dir}: build the project first "
              "(make, at the repository's top) or name the folder with --bin-dir",
              file=sys.stderr)
        return 2
    if not os.path.exists(lib):
        print(f"run_tests.py: no {lib}: build the project first (make) or name the library "
              "with --lib", file=sys.stderr)
        return 2
    os.environ["NANASQLITE_BIN_DIR"] = bin_dir
    os.environ["NANASQLITE_CLIENT_LIB"] = lib

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
