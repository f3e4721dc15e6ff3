#!/usr/bin/env python3
"""nanasqlite-bench against the real server: every workload and output form
on small, bounded runs (correctness of the tool, not speed), the open loop,
several threads and many connections, the server's CPU time, writes that
really change the stored values (and reach the WAL), runs that meet the
server's stream limit, the real-time mode, and command line errors. Ends
with "N passed, M failed"."""
import csv
import io
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None


def bench(server, *args, timeout=120, prefix=()):
    """Runs nanasqlite-bench against |server| (killed after |timeout| s: exit
    status None); returns (exit status, stdout, stderr)."""
    cmd = [*prefix, os.path.join(ARGS.bin_dir, "nanasqlite-bench"), "--port", str(server.port),
           "--ca", os.path.join(server.dir, "cert.pem"),
           "--key", os.path.join(server.dir, "nana_private.pem"), "-q", *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", f"(killed after {timeout} s) {e.stderr or ''}"
    return r.returncode, r.stdout, r.stderr


def run_json(server, *args, timeout=120):
    rc, out, err = bench(server, "--json", *args, timeout=timeout)
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


def cli_values(server, keys):
    """The values stored under |keys| (None for an absent key), read back
    through nanasqlite-cli."""
    r = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "--port", str(server.port),
                        "call", "batch_get", json.dumps([keys])],
                       cwd=server.dir, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("nanasqlite-cli batch_get: " + r.stderr)
    got = json.loads(r.stdout)
    return [got.get(k) for k in keys]


def wal_frames(path):
    """WAL frames in the file |path|: its size past the 32-byte header, in
    frames of a 24-byte header and one page (the page size from the WAL
    header). Until a checkpoint starts the WAL over, this only grows."""
    with open(path, "rb") as f:
        head = f.read(32)
    size = os.path.getsize(path)
    page = struct.unpack(">I", head[8:12])[0]
    return (size - 32) // (page + 24), page


def test_set_changes_values():
    """A SET run over keys that already hold the value the bench would write
    still changes every key it writes, and every write reaches the WAL: with
    one call in flight each write commits alone, so the WAL grows by at least
    a frame per write. (SQLite leaves a row whose new content is identical
    untouched: a bench writing a constant value over such keys wrote no WAL
    frame at all.)"""
    s = Server("bench-honest", flags=["--db", "bench.sqlite"]).start()
    keys = ["key:%012d" % i for i in range(20)]
    rc, j, err = run_json(s, "-c", "1", "-n", "10", "-r", "20")  # writes the 20 keys
    check(rc == 0 and j and j["errors"] == 0, "keys written", err)
    before = cli_values(s, keys)
    check(all(v == "x" * 62 for v in before), "populated values", before)
    wal = os.path.join(s.dir, "bench.sqlite-wal")
    frames0, page = wal_frames(wal)
    writes = 400
    rc, j, err = run_json(s, "-c", "1", "-P", "1", "-n", str(writes), "-r", "20",
                          "--workload", "set", "-d", "64")
    check(rc == 0 and j and j["calls"] == writes and j["errors"] == 0, "set run", err)
    after = cli_values(s, keys)
    changed = sum(1 for a, b in zip(before, after) if a != b)
    # Each of the 20 keys is drawn by some of the 400 writes (all but with
    # a chance of 20 * 0.95^400, about 1e-8).
    check(changed == len(keys), "every key holds a new value", (before[:2], after[:2]))
    check(all(isinstance(v, str) and len(v) == 62 for v in after),
          "values keep their size (64 bytes as JSON)", after[:3])
    check(len(set(after)) == len(after), "no two writes carry the same value", after)
    frames1, _ = wal_frames(wal)
    per_write = (frames1 - frames0) / writes
    check(1.0 <= per_write <= 4.0,
          "the WAL grew by one to four frames per write (%d-byte pages)" % page,
          (frames0, frames1, per_write))
    # The mixed workload's writes change values too.
    before = cli_values(s, keys)
    rc, j, err = run_json(s, "-c", "1", "-P", "4", "-n", "800", "-r", "20", "--no-populate",
                          "--workload", "mixed:1/1")
    check(rc == 0 and j and j["errors"] == 0, "mixed run", err)
    after = cli_values(s, keys)
    check(sum(1 for a, b in zip(before, after) if a != b) == len(keys),
          "mixed run: every key holds a new value", (before[:2], after[:2]))
    s.stop()


def test_stream_limit():
    """More calls in flight than the server allows streams (or a pipeline
    that meets the limit while credit comes back): a call refused at the
    stream limit waits for streams_available, so -n N ends with exactly N
    calls, and an open loop does not spin on a blocked connection."""
    s = Server("bench-streams").start()  # 128 streams per connection (the default)
    for c, p in (("4", "64"), ("2", "200")):
        rc, j, err = run_json(s, "-c", c, "-P", p, "-n", "20000", "-r", "1000", timeout=90)
        check(rc == 0 and j and j["calls"] == 20000 and j["errors"] == 0,
              f"-c {c} -P {p} -n 20000 ends with 20000 calls", (rc, j and j["calls"], err))
    s.stop()
    s = Server("bench-streams4", flags=["--max-streams", "4"]).start()
    rc, j, err = run_json(s, "-c", "2", "-P", "16", "-n", "5000", "-r", "1000", timeout=90)
    check(rc == 0 and j and j["calls"] == 5000 and j["errors"] == 0,
          "-P 16 against 4 streams: 5000 calls", (rc, j and j["calls"], err))
    rc, j, err = run_json(s, "-c", "2", "-P", "16", "--rate", "20000", "--duration", "1",
                          "-r", "1000", "--no-populate", timeout=60)
    check(rc == 0 and j and j["errors"] == 0 and j["calls"] > 0,
          "open loop against 4 streams ends", (rc, j and j["calls"], err))
    s.stop()


def test_aql():
    """--proto aql: AQL queries (ExecuteQuery) on the gRPC door: get, set
    (a new value each write), range (100 keys per call) and filter over the
    populated table, every answer checked (a QueryResponse with a result)."""
    s = Server("bench-aql", flags=["--db", "bench.sqlite"]).start()
    rc, j, err = run_json(s, "--proto", "aql", "-c", "4", "-P", "8", "-n", "3000", "-r", "1000")
    check(rc == 0 and j and j["proto"] == "aql" and j["calls"] == 3000 and j["errors"] == 0 and
          j["connections_failed"] == 0, "aql get run: 3000 calls, no errors", (j, err))
    keys = ["key:%012d" % i for i in range(20)]
    before = cli_values(s, keys)
    rc, j, err = run_json(s, "--proto", "aql", "-c", "2", "-P", "4", "-n", "400", "-r", "20",
                          "--workload", "set", "-d", "40")
    check(rc == 0 and j and j["calls"] == 400 and j["errors"] == 0, "aql set run", (j, err))
    after = cli_values(s, keys)
    check(all(isinstance(v, str) and len(v) == 38 and v[:12].isdigit() for v in after) and
          sum(1 for a, b in zip(before, after) if a != b) == len(keys) and
          len(set(after)) == len(after), "aql set: every key holds a new value, each its own",
          after[:3])
    rc, j, err = run_json(s, "--proto", "aql", "-c", "2", "-P", "4", "-n", "500", "-r", "1000",
                          "--workload", "range", "--no-populate")
    check(rc == 0 and j and j["errors"] == 0 and j["keys_per_sec"] > 99 * j["ops_per_sec"],
          "aql range run: 100 keys per call", (j, err))
    rc, j, err = run_json(s, "--proto", "aql", "-c", "2", "-P", "4", "-n", "200", "-r", "500",
                          "--workload", "filter")
    check(rc == 0 and j and j["calls"] == 200 and j["errors"] == 0, "aql filter run", (j, err))
    rc, j, err = run_json(s, "--proto", "aql", "-c", "1", "-n", "100", "-r", "1000",
                          "--workload", "mixed:1/1", "--no-populate")
    check(rc == 0 and j and j["errors"] == 0, "aql mixed run", (j, err))
    rc, out, err = bench(s, "--workload", "range", "-n", "10")
    check(rc == 2 and "needs --proto aql" in err, "range needs --proto aql", (rc, err))
    rc, out, err = bench(s, "--proto", "aql", "--workload", "batch:10", "-n", "10")
    check(rc == 2 and "not an AQL workload" in err, "batch is not an AQL workload", (rc, err))
    check(s.alive(), "server still up")
    s.stop()


def test_grpc():
    """--proto grpc: the same workloads through the gRPC door (HTTP/3),
    every reply checked (HTTP 200, the message, grpc-status 0); what a Set
    run writes is what the NanaSQLite door reads, a Get of keys never
    written counts every call as an error, the stream limit is waited for,
    and a key the server does not know is a login failure: exit 3 with the
    server's answer."""
    s = Server("bench-grpc", flags=["--db", "bench.sqlite"]).start()
    pid = str(s.proc.pid)
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "4", "-P", "8", "-n", "3000", "-r", "1000",
                          "--server-pid", pid)
    check(rc == 0 and j and j["proto"] == "grpc" and j["calls"] == 3000 and j["errors"] == 0 and
          j["connections_failed"] == 0, "grpc get run: 3000 calls, no errors", (j, err))
    keys = ["key:%012d" % i for i in range(20)]
    before = cli_values(s, keys)
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "2", "-P", "4", "-n", "400", "-r", "20",
                          "--workload", "set", "-d", "40")
    check(rc == 0 and j and j["calls"] == 400 and j["errors"] == 0, "grpc set run", (j, err))
    after = cli_values(s, keys)
    check(all(isinstance(v, str) and len(v) == 38 and v[:12].isdigit() and v[12:] == "x" * 26
              for v in after), "the NanaSQLite door reads what the gRPC door stored", after[:3])
    check(sum(1 for a, b in zip(before, after) if a != b) == len(keys) and
          len(set(after)) == len(after), "every key holds a new value, each its own", after[:3])
    # The gRPC door reads them too (a Get of a missing key would be an error).
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "1", "-n", "200", "-r", "20",
                          "--no-populate")
    check(rc == 0 and j and j["errors"] == 0, "grpc get of the written keys", (j, err))
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "2", "-P", "2", "-n", "1000", "-r", "1000",
                          "--workload", "mixed:3/1")
    check(rc == 0 and j and j["errors"] == 0, "grpc mixed run", (j, err))
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "2", "-P", "2", "-n", "300",
                          "--workload", "batch:20", "-r", "1000")
    check(rc == 0 and j and j["errors"] == 0 and j["keys_per_sec"] > 19 * j["ops_per_sec"],
          "grpc batch run counts keys", (j, err))
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "4", "-P", "4", "--rate", "1000",
                          "--duration", "1", "-r", "1000", "--no-populate")
    check(rc == 0 and j and j["errors"] == 0 and 900 <= j["calls"] <= 1600,
          "grpc open loop", (j, err))
    # More calls in flight than the server's 128 streams per connection.
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "2", "-P", "200", "-n", "10000",
                          "-r", "1000", "--no-populate", timeout=90)
    check(rc == 0 and j and j["calls"] == 10000 and j["errors"] == 0,
          "grpc -P 200 against 128 streams: 10000 calls", (j, err))
    # Keys never written: every Get answers found: false, an error here.
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "1", "-n", "50", "-r", "1000000",
                          "--no-populate", "--table", "empty")
    check(rc == 0 and j and j["errors"] == 50 and "found: false" in err,
          "grpc get of missing keys: errors", (j, err))
    # A key the server does not know: the login is refused.
    s.run_tool("nanasqlite-key-gen", "--prefix", "stranger")
    r = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-bench"), "--port", str(s.port),
                        "--ca", os.path.join(s.dir, "cert.pem"),
                        "--key", os.path.join(s.dir, "stranger_private.pem"), "-q",
                        "--proto", "grpc", "-c", "2", "-n", "10", "--workload", "set"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 3 and "gRPC login failed" in r.stderr and "UNAUTHENTICATED" in r.stderr,
          "grpc with a wrong key: exit 3, the login's answer", (r.returncode, r.stderr))
    check(s.alive(), "server still up")
    s.stop()
    # 10,000 calls in flight over 16 connections (625 each; the server
    # allows 700 streams per connection here).
    s = Server("bench-grpc-10k", flags=["--db", "bench.sqlite", "--max-streams", "700"]).start()
    rc, j, err = run_json(s, "--proto", "grpc", "-c", "16", "-P", "625", "-n", "20000",
                          "-r", "1000", timeout=300)
    check(rc == 0 and j and j["calls"] == 20000 and j["errors"] == 0 and
          j["connections_failed"] == 0, "grpc: 10,000 calls in flight over 16 connections",
          (j, err))
    check(s.alive(), "server still up")
    s.stop()


def sched_policies(pid):
    """{thread id: (name, scheduling policy)} of |pid|'s threads (policy 1:
    SCHED_FIFO)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[int(tid)] = (name, int(fields[38]))  # field 41, policy
    return out


def test_realtime():
    """--realtime: the I/O threads run under SCHED_FIFO, the main thread
    does not; without the privilege it exits 2 and says what is missing."""
    s = Server("bench-rt").start()
    denied = ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"]
    if os.geteuid() == 0:
        cmd = [os.path.join(ARGS.bin_dir, "nanasqlite-bench"), "--port", str(s.port),
               "--ca", os.path.join(s.dir, "cert.pem"),
               "--key", os.path.join(s.dir, "nana_private.pem"), "-q", "--json",
               "--realtime", "-c", "2", "--threads", "2", "--duration", "2", "-r", "100",
               "--workload", "set"]  # (no populating: the client library's I/O thread)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = {}
        try:
            for _ in range(200):  # while it runs (2 s after connecting), bounded
                if p.poll() is not None:
                    break
                try:
                    # Both I/O threads exist (a sanitizer may add threads of its
                    # own); the main thread leaves SCHED_FIFO once it has made
                    # them, so look again a little later, while the run measures.
                    now = sched_policies(p.pid)
                    if sum(1 for name, _ in now.values() if name.startswith("nanaq")) >= 2:
                        subprocess.run(["sleep", "0.5"])
                        seen = sched_policies(p.pid)
                        break
                except OSError:  # it ended meanwhile
                    break
                subprocess.run(["sleep", "0.05"])
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        io_threads = [pol for name, pol in seen.values() if name.startswith("nanaq")]
        check(p.returncode == 0 and json.loads(out)["errors"] == 0, "--realtime run", err)
        check(len(io_threads) == 2 and all(pol == 1 for pol in io_threads),
              "the I/O threads run under SCHED_FIFO", seen)
        check(seen.get(p.pid, ("", None))[1] == 0, "the main thread stays SCHED_OTHER", seen)
        # Root without CAP_SYS_NICE (and RLIMIT_RTPRIO 0) is refused.
        if subprocess.run(denied + ["true"], capture_output=True).returncode != 0:
            denied = None  # no setpriv here
    else:
        denied = []  # an ordinary user (RLIMIT_RTPRIO 0, as by default)
    if denied is not None:
        rc, out, err = bench(s, "--realtime", "-c", "1", "-n", "10", prefix=denied)
        check(rc == 2 and "--realtime" in err and "CAP_SYS_NICE" in err,
              "--realtime without the privilege: exit 2 with the reason", (rc, err))
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


def test_store_bench_writes():
    """nanasqlite-bench-store: every write scenario stores new values, so
    each write reaches the file. With one write per commit (--writers 1)
    and 100 keys, a write that changes a row appends at least one 4 KiB WAL
    frame; one that stores what the row holds appends nothing."""
    tool = os.path.join(ARGS.bin_dir, "..", "bench", "nanasqlite-bench-store")
    for scenario, least in (("set_concurrent", 4096), ("set_async", 4096),
                            ("naive_1thread", 4096), ("batch_update", 40)):
        r = subprocess.run([tool, "--scenario", scenario, "--seconds", "0.3", "--keys", "100",
                            "--writers", "1", "--json"],
                           capture_output=True, text=True, timeout=120)
        rows = [json.loads(line) for line in r.stdout.splitlines()] if r.returncode == 0 else []
        check(len(rows) == 1 and rows[0]["ops"] > 0 and
              rows[0].get("bytes_written_per_op", 0) >= least,
              f"{scenario}: at least {least} bytes written per write", (r.returncode, rows,
                                                                        r.stderr[-300:]))


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
