#!/usr/bin/env python3
"""Our QUIC transport beside quic-go's, same client, same machine, one sitting.

Usage: bench/quic_compare.py [--runs N] [--seconds S] [--build DIR]

Each run loads three echo servers in turn with nanasqlite-bench-quic:
  in-process  our endpoint inside the bench process (its I/O thread's CPU);
  quic-echo   our endpoint as its own process, nanasqlite-quic-echo;
  quic-go     quic-go 0.29 from Debian (tests/interop/quicgo_peer.go),
the last two measured the same way (process CPU from /proc, all threads).
Rows: 64-byte echo RPC with 1/16/64/256 in flight on one connection and
16x16 on 16 connections, then full handshakes; bulk only in-process (an
echo server would send every byte back). Prints Markdown tables of the
medians over the runs and the ratios ours / quic-go.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("--runs", type=int, default=3)
p.add_argument("--seconds", default="3")
p.add_argument("--build", default="build")
a = p.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bench = os.path.join(a.build, "bench", "nanasqlite-bench-quic")
echo = os.path.join(a.build, "tools", "nanasqlite-quic-echo")
quicgo = os.path.join(a.build, "interop", "quicgo_peer")
if not os.path.exists(quicgo):
    subprocess.run([os.path.join(root, "tests", "interop", "build-quicgo.sh"),
                    os.path.join(a.build, "interop")], check=True)

tmp = tempfile.mkdtemp(prefix="nana-quic-compare-")
subprocess.run([echo, "certs", tmp], check=True, capture_output=True)
ca, crt, key = (os.path.join(tmp, n) for n in ("ca.pem", "server.pem", "server.key"))


def start(argv):
    """Starts an external echo server; returns (process, port)."""
    ready = os.path.join(tmp, "ready")
    if os.path.exists(ready):
        os.unlink(ready)
    proc = subprocess.Popen(argv + ["--ready-file", ready], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(ready):
            return proc, int(open(ready).read())
        time.sleep(0.05)
    proc.kill()
    sys.exit("server did not start: %s" % argv)


def run_bench(extra, scenarios):
    rows = []
    for sc in scenarios:
        out = subprocess.run([bench, "--json", "--seconds", a.seconds, "--scenario", sc] + extra,
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            sys.exit("bench failed: %s" % out.stderr)
        rows += [json.loads(l) for l in out.stdout.splitlines()]
    return rows


servers = {
    "quic-echo": [echo, "server", "--listen", "127.0.0.1:0", "--cert", crt, "--key", key,
                  "--retry", "never", "--max-streams", "1024", "--max-seconds", "3600"],
    "quic-go": [quicgo, "server", "--listen", "127.0.0.1:0", "--cert", crt, "--key", key,
                "--alpn", "nanasqlite", "--max-streams", "1024", "--max-seconds", "3600"],
}
results = {}  # (server, scenario, conns, inflight) -> [row]
order = []
for run in range(a.runs):
    got = {"in-process": run_bench([], ["rpc", "rpc16conns", "handshake", "bulk"])}
    for name, argv in servers.items():
        proc, port = start(argv)
        try:
            got[name] = run_bench(["--port", str(port), "--ca", ca, "--server-pid",
                                   str(proc.pid)], ["rpc", "rpc16conns", "handshake"])
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    for name, rows in got.items():
        for r in rows:
            k = (r["scenario"], r["conns"], r["inflight"])
            if k not in order:
                order.append(k)
            results.setdefault((name,) + k, []).append(r)
    print("run %d of %d done" % (run + 1, a.runs), file=sys.stderr)


def med(name, k, field):
    rows = results.get((name,) + k)
    return statistics.median(r[field] for r in rows) if rows else None


names = ["in-process", "quic-echo", "quic-go"]
print("Medians of %d runs, %s s per row. ops/s | p99 us | server CPU us/op (bulk: MB/s and "
      "us per MiB)\n" % (a.runs, a.seconds))
print("| row | " + " | ".join(names) + " | quic-echo / quic-go ops/s | CPU/op ratio |")
print("|---|" + "---|" * (len(names) + 2))
for k in order:
    cells = []
    for n in names:
        if med(n, k, "ops_per_sec") is None:
            cells.append("-")
        elif k[0] == "bulk":
            cells.append("%.0f MB/s, %.0f us/MiB" % (med(n, k, "mb_per_sec"),
                                                   med(n, k, "server_cpu_us_per_op")))
        else:
            cells.append("%.0f / %.0f / %.1f" % (med(n, k, "ops_per_sec"), med(n, k, "p99_us"),
                                                 med(n, k, "server_cpu_us_per_op")))
    ours, peer = med("quic-echo", k, "ops_per_sec"), med("quic-go", k, "ops_per_sec")
    oc, pc = med("quic-echo", k, "server_cpu_us_per_op"), med("quic-go", k, "server_cpu_us_per_op")
    ratio = "%.2fx" % (ours / peer) if ours and peer else "-"
    cratio = "%.2fx" % (oc / pc) if oc and pc else "-"
    label = "%s %dx%d" % k if k[0] != "handshake" else "handshake"
    if k[0] == "bulk":
        label = "bulk 1 stream"
    print("| %s | %s | %s | %s |" % (label, " | ".join(cells), ratio, cratio))
for f in os.listdir(tmp):
    os.unlink(os.path.join(tmp, f))
os.rmdir(tmp)
