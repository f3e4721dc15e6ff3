#!/usr/bin/env python3
"""Runs nanasqlite-bench-store several times and prints the medians.

Usage: bench/store_medians.py [--runs N] [--bench PATH] [--scenarios A,B,...]
                              [-- extra bench flags]

Machines shared with other work are noisy, so docs/BENCHMARKS.md quotes
the median of several runs, taken in one sitting, for every scenario,
and the ratios of those medians. Prints a Markdown table.
"""
import argparse
import json
import statistics
import subprocess
import sys

p = argparse.ArgumentParser()
p.add_argument("--runs", type=int, default=3)
p.add_argument("--bench", default="build/bench/nanasqlite-bench-store")
p.add_argument("--scenarios", default="",
               help="only these scenarios (comma-separated; each run goes through them in turn)")
p.add_argument("extra", nargs="*")
a = p.parse_args()

rows = {}
order = []
scenarios = [["--scenario", x] for x in a.scenarios.split(",") if x] or [[]]
for i in range(a.runs):
    lines = []
    for sc in scenarios:
        out = subprocess.run([a.bench, "--json"] + sc + a.extra, capture_output=True, text=True,
                             timeout=900)
        if out.returncode != 0:
            sys.exit("run %d failed:\n%s" % (i + 1, out.stderr))
        lines += out.stdout.splitlines()
    for line in lines:
        r = json.loads(line)
        key = (r["scenario"], r["threads"])
        if key not in rows:
            rows[key] = []
            order.append(key)
        rows[key].append(r)
    print("run %d done" % (i + 1), file=sys.stderr)


def med(key, field):
    vals = [r[field] for r in rows[key] if field in r]
    return statistics.median(vals) if vals else None


print("| scenario | threads | ops/s (median of %d) | min..max ops/s | p50 µs | p99 µs | p99.9 µs | notes |"
      % a.runs)
print("|---|---|---|---|---|---|---|---|")
for key in order:
    ops = [r["ops_per_sec"] for r in rows[key]]
    note = ""
    if med(key, "avg_group"):
        note = "avg group %.0f" % med(key, "avg_group")
    if med(key, "rows_per_sec"):
        note = "rows/s %.0f" % med(key, "rows_per_sec")
    if "sqlite_reads" in rows[key][0]:
        note = "sqlite_reads %d" % med(key, "sqlite_reads")
    if med(key, "bytes_written_per_op"):
        note += "%s%.0f B written per write" % ("; " if note else "",
                                                med(key, "bytes_written_per_op"))
    print("| %s | %d | %.0f | %.0f..%.0f | %.1f | %.1f | %.1f | %s |" % (
        key[0], key[1], statistics.median(ops), min(ops), max(ops), med(key, "p50_us"),
        med(key, "p99_us"), med(key, "p999_us"), note))

by_name = {k[0]: statistics.median([r["ops_per_sec"] for r in v]) for k, v in rows.items()
           if k[0] not in ("uncached_get",)}
print()
for fast in ("set_concurrent", "set_async", "set_async_256"):
    for slow in ("naive_shared", "naive_conns", "naive_1thread"):
        if fast in by_name and slow in by_name:
            print("- %s / %s = %.1fx" % (fast, slow, by_name[fast] / by_name[slow]))
