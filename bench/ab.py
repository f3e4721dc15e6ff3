#!/usr/bin/env python3
"""Two builds of nanasqlite-server against each other: the same load, the
same nanasqlite-bench, interleaved runs in one sitting.

For each shape and round, starts a fresh server of build A, loads it,
stops it, then does the same with build B (same credentials, fresh
databases, free ports; one server at a time, A B, B A, A B, ...; --runs
times each),
and prints the median calls per second and server CPU per call of each,
and B/A. Every SET writes a new value (nanasqlite-bench stamps a counter
into it).

usage: bench/ab.py --a BUILD_DIR --b BUILD_DIR [--bench BUILD_DIR]
                   [--runs N] [--seconds S] [--shapes get:16x16,set:16x64,...]
                   [--proto-a nana|grpc|aql] [--proto-b nana|grpc|aql] [--pin] [--json FILE]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_SHAPES = "get:1x1,get:50x1,get:16x16,get:16x64,get:1x256,set:1x1,set:16x16,set:16x64"


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PIN = {"server": None, "bench": None}  # CPU lists for taskset (--pin)


def pinned(role, argv):
    return ["taskset", "-c", PIN[role]] + argv if PIN[role] else argv


def start(build, work, name):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for f in ("cert.pem", "key.pem", "nana_public.pub", "nana_private.pem"):
        shutil.copy(os.path.join(work, f), d)
    port = free_port()
    p = subprocess.Popen(pinned("server", [os.path.join(build, "tools", "nanasqlite-server"),
                                           "--port", str(port), "--log-level", "warn"]), cwd=d, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if p.poll() is not None:
        sys.exit(f"ab: the server of {build} did not start")
    return p, port, d


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def bench(bench_bin, port, d, workload, conns, pipe, seconds, pid, proto):
    r = subprocess.run(pinned("bench", [bench_bin, "--proto", proto, "--port", str(port), "--ca", "cert.pem",
                        "--key", "nana_private.pem", "--workload", workload,
                        "-c", str(conns), "-P", str(pipe), "--duration", str(seconds),
                        "--keyspace", "10000", "--db", "bench.sqlite", "--json", "-q",
                        "--server-pid", str(pid)]),
                       cwd=d, capture_output=True, text=True, timeout=seconds * 10 + 120)
    if r.returncode:
        sys.exit(f"ab: nanasqlite-bench failed: {r.stderr[-400:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--bench", default=None, help="build whose nanasqlite-bench runs [--b]")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--shapes", default=DEFAULT_SHAPES)
    ap.add_argument("--json", default=None)
    ap.add_argument("--pin", action="store_true",
                    help="servers on CPU 0, the bench on CPU 1 (taskset): where the scheduler "
                         "puts the threads of a fresh process otherwise moves results by 20%%")
    ap.add_argument("--proto-a", default="nana", help="the door A is loaded through: nana, grpc or aql")
    ap.add_argument("--proto-b", default="nana", help="the same for B (--a and --b may be one "
                                                     "build: the two doors side by side)")
    a = ap.parse_args()
    if a.pin:
        PIN["server"], PIN["bench"] = "0", "1"
    a.a, a.b = os.path.abspath(a.a), os.path.abspath(a.b)
    if a.bench: a.bench = os.path.abspath(a.bench)
    bench_bin = os.path.join(a.bench or a.b, "tools", "nanasqlite-bench")
    work = tempfile.mkdtemp(prefix="nana-ab-")
    procs = []
    try:
        subprocess.run([os.path.join(a.b, "tools", "nanasqlite-cert-gen")], cwd=work,
                       check=True, capture_output=True)
        subprocess.run([os.path.join(a.b, "tools", "nanasqlite-key-gen")], cwd=work,
                       check=True, capture_output=True)
        rows = []
        print("| shape | A calls/s | B calls/s | B/A | A CPU us/call | B CPU us/call |")
        print("|---|---|---|---|---|---|")
        for shape in a.shapes.split(","):
            wl, cp = shape.split(":")
            conns, pipe = (int(x) for x in cp.split("x"))
            res = {"a": [], "b": []}
            for i in range(a.runs):
                # Fresh server processes every round: one process of a build
                # can run 15% faster or slower than the next (where its
                # threads and memory land), which one pair would bake in.
                # A then B, then B then A: neither build always runs right
                # after the other's load (or always first after a pause).
                # One server at a time: nothing of the other (its threads,
                # its housekeeping after a load) runs beside the one measured.
                order = ("a", "b") if i % 2 == 0 else ("b", "a")
                for key in order:
                    p, port, d = start(a.a if key == "a" else a.b, work, key)
                    procs = [p]
                    proto = a.proto_a if key == "a" else a.proto_b
                    res[key].append(bench(bench_bin, port, d, wl, conns, pipe, a.seconds, p.pid,
                                          proto))
                    stop(p)
                    procs = []
            med = {k: statistics.median(x["ops_per_sec"] for x in v) for k, v in res.items()}
            cpu = {k: statistics.median(x.get("server_cpu_us_per_op", 0) for x in v)
                   for k, v in res.items()}
            row = {"shape": shape, "a": med["a"], "b": med["b"], "a_cpu": cpu["a"],
                   "b_cpu": cpu["b"], "runs": res}
            rows.append(row)
            print(f"| {wl} {conns}x{pipe} | {med['a']:,.0f} | {med['b']:,.0f} | "
                  f"{med['b'] / med['a']:.2f} | {cpu['a']:.1f} | {cpu['b']:.1f} |", flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(rows, f, indent=1)
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
