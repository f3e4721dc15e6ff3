#!/usr/bin/env python3
"""nanasqlite-bench against the real server: every workload and output form
on small, bounded runs (correctness of the tool, not speed), the open loop,
several threads and many connections, the server's CPU time, and command
line errors. Ends with "N passed, M failed"."""
import csv
import io
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None


def bench(server, *args, timeout=120):
    """Runs nanasqlite-bench against |server|; returns (exit status, stdout, stderr)."""
    cmd = [os.path.join(ARGS.bin_dir, "nanasqlite-bench"), "--port", str(server.port),
           "--ca", os.path.join(server.dir, "cert.pem"),
           "--key", os.path.join(server.dir, "nana_private.pem"), "-q", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def run_json(server, *args):
    rc, out, err = bench(server, "--json", *args)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, err + out


def test_workloads():
    s = Server("bench-work").start()
    pid = str(s.proc.pid)
    rc, j, err = run_json(s, "-c", "4", "-P", "8", "-n", "3000", "-r", "1000",
                          "--server-pid", pid)
    check(rc == 0 and j is not None, "get run", err)
    if j:
        for k in ("ops_per_sec", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "errors",
                  "server_cpu_us_per_op", "client_cpu_us_per_op"):
            check(k in j, f"json has {k}", j)
        check(j["calls"] == 3000 and j["errors"] == 0, "3000 calls, no errors", j)
        check(j["ops_per_sec"] > 0 and 0 < j["p50_us"] <= j["p99_us"] <= j["max_us"],
              "rate and ordered percentiles", j)
    # Server CPU comes in clock ticks (10 ms): measure over a whole second.
    rc, j, err = run_json(s, "-c", "4", "-P", "8", "--duration", "1", "-r", "1000",
                          "--no-populate", "--server-pid", pid)
    check(rc == 0 and j and j["server_cpu_us_per_op"] > 0, "server CPU measured", (j, err))
    rc, j, err = run_json(s, "-c", "2", "-P", "4", "-n", "2000", "--workload", "set", "-d", "200")
    check(rc == 0 and j and j["calls"] == 2000 and j["errors"] == 0, "set run", err)
    rc, j, err = run_json(s, "-c", "2", "-P", "2", "-n", "2000", "--workload", "mixed:3/1",
                          "-r", "1000")
    check(rc == 0 and j and j["errors"] == 0, "mixed run", err)
    rc, j, err = run_json(s, "-c", "2", "-P", "2", "-n", "500", "--workload", "batch:20",
                          "-r", "1000")
    check(rc == 0 and j and j["errors"] == 0 and
          abs(j["keys_per_sec"] - 20 * j["ops_per_sec"]) <= 0.001 * j["keys_per_sec"],
          "batch run counts keys", (j, err))
    # Values written by the set run are what a reader sees.
    rc, out, err = bench(s, "--csv", "-c", "1", "-n", "100", "-r", "50", "--no-populate")
    rows = list(csv.DictReader(io.StringIO(out)))
    check(rc == 0 and len(rows) == 1 and rows[0]["workload"] == "get" and
          int(rows[0]["calls"]) == 100, "csv form", out + err)
    rc, out, err = bench(s, "-c", "1", "-n", "100", "-r", "50", "--no-populate")
    check(rc == 0 and "calls per second" in out and "p99.9" in out, "text form", out)
    s.stop()


def test_open_loop_threads_connections():
    # 300 connections from one address: more than its default cap.
    s = Server("bench-open", flags=["--max-connections", "1000",
                                    "--max-conns-per-addr", "1000"]).start()
    rc, j, err = run_json(s, "-c", "8", "-P", "4", "--rate", "2000", "--duration", "1.5",
                          "-r", "1000")
    check(rc == 0 and j and j["errors"] == 0 and j["rate"] == 2000, "open loop run", err)
    if j:
        check(2000 <= j["calls"] <= 3200, "about rate x duration calls", j)
    rc, j, err = run_json(s, "-c", "300", "--threads", "3", "-n", "3000", "-r", "1000")
    check(rc == 0 and j and j["errors"] == 0 and j["connections_failed"] == 0 and
          j["connections"] == 300 and j["threads"] == 3, "300 connections on 3 threads", err)
    # More connections than the server allows: reported, and the run goes on.
    s.stop()
    s = Server("bench-limit", flags=["--max-connections", "10"]).start()
    rc, j, err = run_json(s, "-c", "20", "-n", "500", "-r", "100", "--no-populate")
    check(rc == 0 and j and j["connections_failed"] == 10 and j["calls"] == 500,
          "refused connections reported", (j, err))
    s.stop()


def test_command_line():
    s = Server("bench-cli").start()
    for bad in (["-c", "0"], ["-P", "x"], ["--workload", "mixed:1"], ["--workload", "batch:0"],
                ["--rate", "-5"], ["--duration", "0"], ["--bogus"], ["-n"]):
        rc, out, err = bench(s, *bad)
        check(rc == 2 and "nanasqlite-bench:" in err, f"bad flag {bad} exits 2", (rc, err))
    rc, out, err = bench(s, "--help")
    check(rc == 0 and "--workload" in out and "--port" in out, "help")
    # No server there: exit 3 with a message, bounded.
    port = s.port
    s.stop()
    r = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-bench"), "--port", str(port),
                        "--ca", os.path.join(s.dir, "cert.pem"),
                        "--key", os.path.join(s.dir, "nana_private.pem"), "-q", "-n", "10",
                        "--timeout-ms", "1000"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 3 and "nanasqlite-bench:" in r.stderr, "no server: exit 3",
          (r.returncode, r.stderr))


def test_hiccup():
    """nanasqlite-bench-hiccup: a short run prints its JSON, bad flags exit 2."""
    tool = os.path.join(ARGS.bin_dir, "..", "bench", "nanasqlite-bench-hiccup")
    r = subprocess.run([tool, "--seconds", "0.3", "--sleep-us", "200", "--busy", "1", "--json"],
                       capture_output=True, text=True, timeout=60)
    j = json.loads(r.stdout) if r.returncode == 0 else None
    check(j is not None and j["busy"] == 1 and j["wakeups"] > 0 and j["sleep_us"] == 200
          and j["late_max_us"] >= j["late_p50_us"] >= 0, "hiccup JSON", (r.returncode, r.stdout))
    for bad in (["--seconds", "0"], ["--busy", "65"], ["--sleep-us", "x"], ["--bogus"],
                ["--seconds"]):
        r = subprocess.run([tool, *bad], capture_output=True, text=True, timeout=60)
        check(r.returncode == 2 and "nanasqlite-bench-hiccup" in r.stderr + r.stdout,
              f"hiccup bad flag {bad} exits 2", (r.returncode, r.stderr))


def main():
    return serverlib.run_main(globals())


if __name__ == "__main__":
    sys.exit(main())
