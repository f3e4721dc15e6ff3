#!/usr/bin/env python3
"""Instructions per call, end to end, in the server: the repeatable measure
of its cost on a noisy machine.

Starts nanasqlite-server under valgrind's callgrind (every thread counted:
I/O, workers, writer), writes the key space, then for each shape runs
nanasqlite-bench twice (N and 2N calls), zeroing and dumping callgrind's
counters around each run; (Ir(2N) - Ir(N)) / N is the cost of one call with
connection set-up and the counters' fixed costs cancelled out. Prints a
table and the top functions of the cached-GET profile.

Every SET stores a new value (nanasqlite-bench puts a counter in it), so the
SET rows count the page writes of a real write.

usage: bench/instructions.py [--build build] [--bench build] [--proto nana|grpc|aql]
                             [--calls N] [--out DIR] [--only TEXT]...
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SHAPES = [  # (name, workload, connections, pipeline)
    ("cached GET, 1x1", "get", 1, 1),
    ("cached GET, 16x16", "get", 16, 16),
    ("cached GET, 16x64", "get", 16, 64),
    ("SET, 1x1", "set", 1, 1),
    ("SET, 16x16", "set", 16, 16),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900, **kw)


def newest_dump(d, pid):
    files = [f for f in os.listdir(d) if re.fullmatch(rf"cg\.{pid}\.\d+", f)]
    files.sort(key=lambda f: int(f.rsplit(".", 1)[1]))
    return os.path.join(d, files[-1]) if files else None


def totals(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", "build"))
    ap.add_argument("--bench", default=None,
                    help="the build whose nanasqlite-bench loads the server [--build]: compare "
                         "two servers with the same bench")
    ap.add_argument("--proto", default="nana", choices=("nana", "grpc", "aql"),
                    help="the door the bench loads: nana (NanaSQLite) or grpc (gRPC over HTTP/3)")
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--out", default=None, help="keep the callgrind files here")
    ap.add_argument("--only", action="append", default=[],
                    help='only the shapes whose name contains TEXT (repeat it), e.g. "16x16"')
    a = ap.parse_args()
    shapes = [s for s in SHAPES if not a.only or any(t in s[0] for t in a.only)]
    if not shapes:
        ap.error("--only: no shape matches; the shapes: " + ", ".join(s[0] for s in SHAPES))
    tools = os.path.abspath(os.path.join(a.build, "tools"))
    work = tempfile.mkdtemp(prefix="nana-ir-")
    srv = None
    try:
        run([os.path.join(tools, "nanasqlite-cert-gen")], cwd=work)
        run([os.path.join(tools, "nanasqlite-key-gen")], cwd=work)
        srv = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.%p",
             os.path.join(tools, "nanasqlite-server"), "--port", "0", "--ready-file", "port.txt",
             "--log-level", "warn"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ready = os.path.join(work, "port.txt")
        for _ in range(600):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            time.sleep(0.1)
        port = open(ready).read().strip()
        bench_tools = os.path.abspath(os.path.join(a.bench, "tools")) if a.bench else tools
        bench = [os.path.join(bench_tools, "nanasqlite-bench"), "--port", port, "--ca",
                 f"{work}/cert.pem", "--key", f"{work}/nana_private.pem", "-q", "--json",
                 "-r", "10000", "--timeout-ms", "60000"]
        run(bench + ["-c", "1", "-n", "100"])  # writes the key space once
        rows = []
        get_dump = None
        for name, w, c, p in shapes:
            ir = []
            for n in (a.calls, 2 * a.calls):
                run(["callgrind_control", "-z", str(srv.pid)])
                run(bench + ["--no-populate", "--proto", a.proto, "--workload", w, "-c", str(c), "-P", str(p),
                             "-n", str(n)])
                run(["callgrind_control", "-d", str(srv.pid)])
                ir.append(totals(newest_dump(work, srv.pid)))
            per = (ir[1] - ir[0]) / a.calls
            rows.append((name, per))
            if name == "cached GET, 16x16":
                get_dump = newest_dump(work, srv.pid)
        print(f"server instructions per call (callgrind, {a.calls} and {2 * a.calls} calls):")
        print("| shape | instructions per call |")
        print("|---|---|")
        for name, per in rows:
            print(f"| {name} | {per:,.0f} |")
        if get_dump:
            ann = run(["callgrind_annotate", "--inclusive=no", "--threshold=100",
                       get_dump]).stdout
            print("\ntop functions, cached GET 16x16 (self instructions over the 2N run):")
            lines = [ln for ln in ann.splitlines() if re.match(r"\s*[\d,]+ \(", ln)
                     and "PROGRAM TOTALS" not in ln and ":clone " not in ln
                     and ":start_thread " not in ln]
            for ln in lines[:15]:
                print("  " + ln.strip()[:150])
        if a.out:
            os.makedirs(a.out, exist_ok=True)
            for f in os.listdir(work):
                if f.startswith("cg."):
                    shutil.copy(os.path.join(work, f), a.out)
    finally:
        if srv and srv.poll() is None:
            srv.terminate()
            try:
                srv.wait(timeout=60)
            except subprocess.TimeoutExpired:
                srv.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
