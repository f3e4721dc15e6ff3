#!/usr/bin/env python3
"""The measuring half of bench/compare.sh (stdlib only).

compare.sh builds, makes the credentials, starts every server on 127.0.0.1
and stops them again; this script loads those servers, writes results.json
(every raw run), table.md and the gnuplot data files into --out, and prints
the tables.

Servers, loaded by their own load generators, all on loopback:
  nanasqlite  nanasqlite-server, loaded by nanasqlite-bench (QUIC, TLS 1.3,
              server CPU per call from --server-pid)
  redis       redis-server without TLS, loaded by redis-benchmark
  redis-tls   redis-server with TLS only, loaded by redis-benchmark --tls
              (server CPU: /proc/PID/stat utime+stime before and after the
              run, divided by the run's calls); both append every write to
              their AOF (compare.sh starts them so)
  quic-echo   nanasqlite-quic-echo, loaded by nanasqlite-bench-quic (the bare
              transport: a 64-byte request echoed on its own stream)

Every comparison runs --runs times, interleaved (nanasqlite, redis,
redis-tls, nanasqlite, ...), and the tables show medians. Every SET stores a
new value on both sides: nanasqlite-bench puts a counter at the start of
each value, and redis-benchmark runs "SET key:__rand_int__ VALUE" with
__rand_int__ (a random 12-digit number) at the start of a 64-byte VALUE.
"""
import argparse
import csv
import datetime
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

SERVERS = ["nanasqlite", "redis", "redis-tls"]
SHAPES = [(1, 1), (50, 1), (16, 16), (16, 64)]  # (connections, pipeline) the targets name
PIPE_SHAPE = (1, 256)  # pipelined GET on one connection
LAT_SHAPE = (16, 16)  # latency vs offered load
VALUE_SIZE = 64
KEYS = 100000
# First guesses of redis-benchmark's rate (ops/s) on this kind of machine, to
# size -n for a run of about --seconds; later runs use the last measured rate.
BUSY_CORES = 0.25  # more CPU than this used by others during a run: a noisy run
REDIS_GUESS = {(1, 1): 25000, (50, 1): 60000, (16, 16): 500000, (16, 64): 1000000,
               (1, 256): 1000000}
# redis-benchmark's SET value: a random 12-digit number (__rand_int__, redrawn
# for every command) and then "x" up to VALUE_SIZE bytes, so that every SET
# stores a new value, as nanasqlite-bench's SETs do.
SET_VALUE = "__rand_int__" + "x" * (VALUE_SIZE - 12)
# What compare.sh starts: both sides survive the server process dying (a
# commit or a command reaches the file before its reply); both may lose
# about the last second on a power failure.
DURABILITY = ("nanasqlite commits every SET to SQLite's WAL (synchronous=NORMAL: written "
              "before the reply, fsync at checkpoints); redis and redis+TLS append every SET "
              "to their AOF (appendonly yes, appendfsync everysec: written before the reply, "
              "fsync once a second), no RDB snapshots")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", required=True)
    p.add_argument("--tmp", required=True, help="the directory holding the credentials")
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--client-threads", type=int, default=1)
    p.add_argument("--nana-port", type=int, required=True)
    p.add_argument("--nana-pid", type=int, required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--redis-pid", type=int, required=True)
    p.add_argument("--tls-port", type=int, required=True)
    p.add_argument("--tls-pid", type=int, required=True)
    p.add_argument("--echo-port", type=int, required=True)
    p.add_argument("--echo-pid", type=int, required=True)
    p.add_argument("--echo-ca", required=True)
    p.add_argument("--command", default="")
    p.add_argument("--machine", default="")
    p.add_argument("--versions", default="")
    p.add_argument("--server-args", default="", help="extra nanasqlite-server arguments (recorded)")
    p.add_argument("--workloads", default="get,set",
                   help="get,set (everything), get or set (only those rows; set leaves out the "
                        "QUIC echo and the latency-vs-load runs, which are GETs)")
    a = p.parse_args()
    a.workloads = [w for w in a.workloads.split(",") if w]
    if not a.workloads or any(w not in ("get", "set") for w in a.workloads):
        p.error("--workloads: get, set or get,set")
    return a


A = parse_args()
T = A.tmp
NANA_BENCH = os.path.join(A.build, "tools", "nanasqlite-bench")
ECHO_BENCH = os.path.join(A.build, "bench", "nanasqlite-bench-quic")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PIDS = {"nanasqlite": A.nana_pid, "redis": A.redis_pid, "redis-tls": A.tls_pid,
        "quic-echo": A.echo_pid}
started = time.time()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


load_before = loadavg()
raw = []  # every run, in the order run
redis_rate = {}  # (server, workload, conns, pipeline) -> last measured ops/s


class Stop(Exception):
    pass


def on_term(signum, frame):
    raise Stop("signal %d" % signum)


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGHUP, on_term)


def log(msg):
    print("[%5.0fs] %s" % (time.time() - started, msg), file=sys.stderr, flush=True)


def proc_cpu_ns(pid):
    """utime + stime of every thread of |pid|, in ns (clock-tick resolution)."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()  # fields[0] is the 3rd field, state
    return (int(fields[11]) + int(fields[12])) * 1000000000 // CLK_TCK


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return False
    return s[s.rindex(")") + 2] not in "ZX"


def machine_ticks():
    """(busy, steal) clock ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7] if len(v) > 7 else 0


def children_cpu_ns():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def run_cmd(argv, timeout, pid=None):
    """Runs argv (killed when it outlives |timeout| s, or when we are stopped);
    returns (returncode, stdout, stderr, noise), returncode None on a timeout.
    noise: the CPU the rest of the machine used meanwhile, in cores (all CPU
    time minus the server's |pid| and the load generator's), and steal."""
    m0, c0, s0, t0 = machine_ticks(), children_cpu_ns(), proc_cpu_ns(pid) if pid else 0, \
        time.monotonic()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        rc, so, se = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as e:
        so = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        se = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        rc, se = None, se + "\n(killed after %.0f s)" % timeout
    wall = time.monotonic() - t0
    m1, c1 = machine_ticks(), children_cpu_ns()
    s1 = proc_cpu_ns(pid) if pid and alive(pid) else s0
    busy_ns = (m1[0] - m0[0]) * 1e9 / CLK_TCK
    other = (busy_ns - (c1 - c0) - (s1 - s0)) / 1e9 / wall if wall > 0 else 0
    noise = dict(wall_seconds=round(wall, 3), other_cores=round(max(0.0, other), 3),
                 steal_cores=round((m1[1] - m0[1]) / CLK_TCK / wall, 3) if wall > 0 else 0)
    return rc, so, se, noise


def record(row):
    row.setdefault("ok", True)
    raw.append(row)
    if row["ok"]:
        extra = ""
        if row.get("errors") or row.get("dropped"):
            extra = " errors %s dropped %s" % (row.get("errors"), row.get("dropped"))
        cpu = row.get("server_cpu_us_per_op")
        if row.get("other_cores", 0) > BUSY_CORES:
            extra += "  (other load %.2f cores)" % row["other_cores"]
        log("%-10s %-4s c=%-3d P=%-3d %s%10.0f ops/s  p99 %s us  server CPU %s us/op%s" % (
            row["server"], row["workload"], row["conns"], row["pipeline"],
            ("rate %d  " % row["rate"]) if row.get("rate") else "", row["ops_per_sec"],
            "%.0f" % row["p99_us"] if row.get("p99_us") is not None else "-",
            "%.2f" % cpu if cpu is not None else "-", extra))
    else:
        log("%-10s %-4s c=%-3d P=%-3d FAILED: %s" % (row["server"], row["workload"], row["conns"],
                                                    row["pipeline"], row["error"]))


def failed(base, why):
    row = dict(base)
    row.update(ok=False, error=why.strip()[-600:])
    record(row)


def check_alive(server, base):
    if not alive(PIDS[server]):
        failed(base, "the %s server is no longer running" % server)
        return False
    return True


def nana_run(workload, conns, pipeline, run, kind="throughput", rate=0):
    base = dict(kind=kind, server="nanasqlite", workload=workload, conns=conns, pipeline=pipeline,
                run=run, rate=rate)
    if not check_alive("nanasqlite", base):
        return
    argv = [NANA_BENCH, "--host", "127.0.0.1", "--port", str(A.nana_port),
            "--ca", os.path.join(T, "cert.pem"), "--key", os.path.join(T, "nana_private.pem"),
            "-c", str(conns), "-P", str(pipeline), "--duration", "%g" % A.seconds,
            "-d", str(VALUE_SIZE), "-r", str(KEYS), "--workload", workload,
            "--threads", str(A.client_threads), "--server-pid", str(A.nana_pid),
            "--no-populate", "--json", "-q"]
    if rate:
        argv += ["--rate", str(int(rate))]
    rc, so, se, noise = run_cmd(argv, A.seconds + 60, A.nana_pid)
    if rc != 0:
        return failed(base, "nanasqlite-bench exit %s: %s" % (rc, se))
    try:
        j = json.loads(so.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return failed(base, "nanasqlite-bench printed no JSON: %s %s" % (so, se))
    row = dict(base)
    row.update(ops_per_sec=j["ops_per_sec"], server_cpu_us_per_op=j["server_cpu_us_per_op"],
               p50_us=j["p50_us"], p99_us=j["p99_us"], p999_us=j["p999_us"],
               max_us=j["max_us"], errors=j["errors"], dropped=j["dropped"],
               connections_failed=j["connections_failed"], calls=j["calls"],
               seconds=j["seconds"], raw=j, argv=argv, **noise)
    record(row)


def redis_run(server, workload, conns, pipeline, run):
    tls = server == "redis-tls"
    base = dict(kind="throughput", server=server, workload=workload, conns=conns,
                pipeline=pipeline, run=run, rate=0)
    if not check_alive(server, base):
        return
    key = (server, workload, conns, pipeline)
    guess = REDIS_GUESS.get((conns, pipeline), 100000) * (0.75 if tls else 1.0)
    n = max(2000, int(redis_rate.get(key, guess) * A.seconds))
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(A.tls_port if tls else A.redis_port)]
    if tls:
        argv += ["--tls", "--cacert", os.path.join(T, "cert.pem")]
    argv += ["-c", str(conns), "-P", str(pipeline), "-d", str(VALUE_SIZE), "-r", str(KEYS),
             "-n", str(n), "--csv"]
    if A.client_threads != 1:
        argv += ["--threads", str(A.client_threads)]
    if workload == "set":
        argv += ["SET", "key:__rand_int__", SET_VALUE]  # a new value every time
    else:
        argv += ["-t", workload]
    pid = PIDS[server]
    cpu0 = proc_cpu_ns(pid)
    rc, so, se, noise = run_cmd(argv, max(60.0, 20 * A.seconds), pid)
    cpu1 = proc_cpu_ns(pid) if alive(pid) else cpu0
    if rc != 0:
        return failed(base, "redis-benchmark exit %s: %s %s" % (rc, so, se))
    rows = [r for r in csv.reader(io.StringIO(so)) if r and r[0] != "test"]
    if len(rows) != 1:
        return failed(base, "redis-benchmark printed no CSV row: %s %s" % (so, se))
    r = rows[0]
    rps = float(r[1])
    redis_rate[key] = rps
    row = dict(base)
    row.update(ops_per_sec=rps, server_cpu_us_per_op=(cpu1 - cpu0) / 1000.0 / n,
               p50_us=float(r[4]) * 1000, p99_us=float(r[6]) * 1000, p999_us=None,
               max_us=float(r[7]) * 1000, errors=0, dropped=0, calls=n, seconds=n / rps,
               raw=dict(zip(["test", "rps", "avg_latency_ms", "min_latency_ms",
                                                "p50_latency_ms", "p95_latency_ms",
                                                "p99_latency_ms", "max_latency_ms"], r)),
               argv=argv, **noise)
    record(row)


def echo_run(scenario, run):
    base = dict(kind="echo", server="quic-echo", workload="echo", conns=0, pipeline=0, run=run,
                rate=0)
    if not check_alive("quic-echo", base):
        return
    rows_expected = 4 if scenario == "rpc" else 1
    argv = [ECHO_BENCH, "--port", str(A.echo_port), "--ca", A.echo_ca, "--server-pid",
            str(A.echo_pid), "--seconds", "%g" % A.seconds, "--json", "--scenario", scenario]
    rc, so, se, noise = run_cmd(argv, rows_expected * A.seconds + 60, A.echo_pid)
    if rc != 0:
        return failed(base, "nanasqlite-bench-quic exit %s: %s" % (rc, se))
    for line in so.splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        row = dict(base)
        row.update(conns=j["conns"], pipeline=j["inflight"], ops_per_sec=j["ops_per_sec"],
                   server_cpu_us_per_op=j["server_cpu_us_per_op"], p50_us=j["p50_us"],
                   p99_us=j["p99_us"], p999_us=j["p999_us"], seconds=j["seconds"], raw=j,
                   argv=argv, **noise)
        record(row)


def populate():
    """Writes the 100,000 keys into every server before the first GET."""
    log("writing %d keys of %d bytes into each server" % (KEYS, VALUE_SIZE))
    argv = [NANA_BENCH, "--host", "127.0.0.1", "--port", str(A.nana_port),
            "--ca", os.path.join(T, "cert.pem"), "--key", os.path.join(T, "nana_private.pem"),
            "-c", "1", "-P", "1", "-n", "1", "-d", str(VALUE_SIZE), "-r", str(KEYS),
            "--workload", "get", "--json", "-q"]
    rc, so, se, _ = run_cmd(argv, 300)
    if rc != 0:
        sys.exit("compare.py: cannot write the keys into nanasqlite-server: %s" % se)
    # The key names redis-benchmark's -r draws (key:__rand_int__, 12 digits).
    value = "x" * VALUE_SIZE
    resp = "".join("*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n" % (i, VALUE_SIZE, value)
                   for i in range(KEYS)).encode()
    for server, port, tls in (("redis", A.redis_port, False), ("redis-tls", A.tls_port, True)):
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        if tls:
            cli += ["--tls", "--cacert", os.path.join(T, "cert.pem")]
        out = subprocess.run(cli + ["--pipe"], input=resp, capture_output=True, timeout=300)
        size = subprocess.run(cli + ["dbsize"], capture_output=True, text=True, timeout=30)
        if out.returncode != 0 or size.stdout.strip() != str(KEYS):
            sys.exit("compare.py: cannot write the keys into %s: %s %s %s" % (
                server, out.stdout, out.stderr, size.stdout))


def throughput_round(run):
    for conns, pipeline in SHAPES:
        for workload in A.workloads:
            for server in SERVERS:
                if server == "nanasqlite":
                    nana_run(workload, conns, pipeline, run)
                else:
                    redis_run(server, workload, conns, pipeline, run)
    if "get" not in A.workloads:
        return
    for server in SERVERS:
        if server == "nanasqlite":
            nana_run("get", PIPE_SHAPE[0], PIPE_SHAPE[1], run)
        else:
            redis_run(server, "get", PIPE_SHAPE[0], PIPE_SHAPE[1], run)
    echo_run("rpc", run)
    echo_run("rpc16conns", run)


def med(kind, server, workload, conns, pipeline, field, rate=None):
    vals = [r[field] for r in raw
            if r["ok"] and r["kind"] == kind and r["server"] == server
            and r["workload"] == workload and r["conns"] == conns and r["pipeline"] == pipeline
            and (rate is None or r["rate"] == rate) and r.get(field) is not None]
    return statistics.median(vals) if vals else None


def spread(server, workload, conns, pipeline):
    vals = [r["ops_per_sec"] for r in raw
            if r["ok"] and r["kind"] == "throughput" and r["server"] == server
            and r["workload"] == workload and r["conns"] == conns and r["pipeline"] == pipeline]
    return (min(vals), max(vals), len(vals)) if vals else None


def fmt_ops(v):
    return "-" if v is None else "%.0f" % v


def fmt_f(v, digits=2):
    return "-" if v is None else "%.*f" % (digits, v)


def ratio(a, b):
    return "-" if a is None or b in (None, 0) else "%.2f" % (a / b)


def trouble(server, workload, conns, pipeline, kind="throughput", rate=None):
    """Failed runs and runs with errors or dropped calls, for a footnote."""
    notes = []
    for r in raw:
        if r["kind"] != kind or r["server"] != server or r["workload"] != workload:
            continue
        if r["conns"] != conns or r["pipeline"] != pipeline or (rate is not None
                                                                 and r["rate"] != rate):
            continue
        if not r["ok"]:
            notes.append("run %d failed" % r["run"])
        elif r.get("errors") or r.get("dropped") or r.get("connections_failed"):
            notes.append("run %d: %s errors, %s dropped, %s connections failed" % (
                r["run"], r.get("errors"), r.get("dropped"), r.get("connections_failed", 0)))
    return notes


def tables(peak, rates):
    out = []
    w = out.append
    get = "get" in A.workloads
    shapes = [(c, p, wl) for c, p in SHAPES for wl in A.workloads] + \
        ([PIPE_SHAPE + ("get",)] if get else [])
    w("Medians of %d interleaved runs of %g s each; ops/s are each load generator's own "
      "count; server CPU is the server process's user+system time per call (all threads). "
      "Load average before / after: %s / %s." % (A.runs, A.seconds, load_before, loadavg()))
    w("")
    w("Durability: %s." % DURABILITY)
    others = [r["other_cores"] for r in raw if r["ok"] and "other_cores" in r]
    if others:
        busy = sum(1 for o in others if o > BUSY_CORES)
        w("")
        w("Other load during the runs (CPU time of everything but the server under test and "
          "its load generator, in cores): median %.2f, max %.2f; %d of %d runs above %.2f%s. "
          "Machine busy before the start: %.2f cores." % (
              statistics.median(others), max(others), busy, len(others), BUSY_CORES,
              " (results.json: other_cores per run)" if busy else "", idle_check))
    w("")
    w("| shape c×P | workload | nanasqlite ops/s | redis ops/s | redis+TLS ops/s | "
      "nanasqlite / redis+TLS | server CPU µs/op nanasqlite | redis | redis+TLS | "
      "CPU nanasqlite / redis+TLS | nanasqlite p50 / p99 µs |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for c, p, wl in shapes:
        ops = {s: med("throughput", s, wl, c, p, "ops_per_sec") for s in SERVERS}
        cpu = {s: med("throughput", s, wl, c, p, "server_cpu_us_per_op") for s in SERVERS}
        p50 = med("throughput", "nanasqlite", wl, c, p, "p50_us")
        p99 = med("throughput", "nanasqlite", wl, c, p, "p99_us")
        mark = ""
        for s in SERVERS:
            t = trouble(s, wl, c, p)
            if t:
                notes.append("%s %s %dx%d: %s" % (s, wl.upper(), c, p, "; ".join(t)))
                mark = " ‡"
        w("| %d×%d | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
            c, p, wl.upper(), mark, fmt_ops(ops["nanasqlite"]), fmt_ops(ops["redis"]),
            fmt_ops(ops["redis-tls"]), ratio(ops["nanasqlite"], ops["redis-tls"]),
            fmt_f(cpu["nanasqlite"]), fmt_f(cpu["redis"]), fmt_f(cpu["redis-tls"]),
            ratio(cpu["nanasqlite"], cpu["redis-tls"]), fmt_f(p50, 0), fmt_f(p99, 0)))
    w("")
    w("Spread of ops/s over the runs (min..max):")
    w("")
    w("| shape c×P | workload | nanasqlite | redis | redis+TLS |")
    w("|---|---|---|---|---|")
    for c, p, wl in shapes:
        cells = []
        for s in SERVERS:
            sp = spread(s, wl, c, p)
            cells.append("-" if sp is None else "%.0f..%.0f (%d)" % sp)
        w("| %d×%d | %s | %s |" % (c, p, wl.upper(), " | ".join(cells)))
    if notes:
        w("")
        for n in notes:
            w("‡ " + n)

    if get:
        echo_and_latency(w, peak, rates)
    targets(w, rates)
    return "\n".join(out) + "\n"


def echo_and_latency(w, peak, rates):
    """The tables of GETs beside the QUIC echo and of latency vs load."""
    w("")
    w("Cached GET beside the bare QUIC echo (nanasqlite-quic-echo loaded by "
      "nanasqlite-bench-quic: a 64-byte request echoed on its own stream, no "
      "authentication, no store), same client shape:")
    w("")
    w("| shape c×P | QUIC echo ops/s | echo CPU µs/op | cached GET ops/s | GET CPU µs/op | "
      "GET / echo |")
    w("|---|---|---|---|---|---|")
    for c, p in [(1, 1), PIPE_SHAPE, (16, 16)]:
        e = med("echo", "quic-echo", "echo", c, p, "ops_per_sec")
        ec = med("echo", "quic-echo", "echo", c, p, "server_cpu_us_per_op")
        g = med("throughput", "nanasqlite", "get", c, p, "ops_per_sec")
        gc = med("throughput", "nanasqlite", "get", c, p, "server_cpu_us_per_op")
        w("| %d×%d | %s | %s | %s | %s | %s |" % (c, p, fmt_ops(e), fmt_f(ec), fmt_ops(g),
                                                  fmt_f(gc), ratio(g, e)))

    w("")
    w("nanasqlite latency vs offered load (open loop, `--rate`, GET at %d×%d; peak = the "
      "closed-loop median above, %s ops/s; latency counted from when each call was due):"
      % (LAT_SHAPE[0], LAT_SHAPE[1], fmt_ops(peak)))
    w("")
    w("| offered calls/s | % of peak | achieved ops/s | p50 µs | p99 µs | p99.9 µs | max µs | "
      "server CPU µs/op |")
    w("|---|---|---|---|---|---|---|---|")
    for frac, rate in rates:
        g = lambda f: med("latency", "nanasqlite", "get", LAT_SHAPE[0], LAT_SHAPE[1], f, rate)
        t = trouble("nanasqlite", "get", LAT_SHAPE[0], LAT_SHAPE[1], "latency", rate)
        got = g("ops_per_sec")
        if got is not None and got < 0.95 * rate:
            t.append("achieved < 95% of offered: saturated")
        w("| %d | %.0f%% | %s | %s | %s | %s | %s | %s |%s" % (
            rate, frac * 100, fmt_ops(got), fmt_f(g("p50_us"), 0),
            fmt_f(g("p99_us"), 0), fmt_f(g("p999_us"), 0), fmt_f(g("max_us"), 0),
            fmt_f(g("server_cpu_us_per_op")), (" " + "; ".join(t)) if t else ""))


def targets(w, rates):
    """The server's targets that this run measures."""
    get, set_ = "get" in A.workloads, "set" in A.workloads
    w("")
    w("Targets measured by this run:")
    w("")
    w("| target | measured (median) | |")
    w("|---|---|---|")

    def target(name, value, goal, fmt="%.0f", higher=True):
        if value is None:
            w("| %s | - | not measured |" % name)
            return
        ok = value >= goal if higher else value <= goal
        w("| %s | %s | %s |" % (name, fmt % value, "met" if ok else "**missed**"))

    nm = lambda wl, c, p, f="ops_per_sec": med("throughput", "nanasqlite", wl, c, p, f)
    if get:
        target("cached GET 16×64 ≥ 400,000 ops/s", nm("get", 16, 64), 400000)
        target("GET 50×1 ≥ 100,000 ops/s", nm("get", 50, 1), 100000)
    if set_:
        target("SET 16×64 (synchronous=NORMAL) ≥ 150,000 ops/s", nm("set", 16, 64), 150000)
    if get:
        target("pipelined GET 1×256 ≥ 500,000 ops/s", nm("get", 1, 256), 500000)
        half = [r for f, r in rates if f == 0.5]
        target("p99 ≤ 1 ms at half the peak rate (open loop, 16×16)",
               med("latency", "nanasqlite", "get", 16, 16, "p99_us", half[0]) if half else None,
               1000, "%.0f µs", higher=False)
    for c, p in SHAPES + ([PIPE_SHAPE] if get else []):
        for wl in A.workloads if (c, p) != PIPE_SHAPE else ("get",):
            a, b = nm(wl, c, p), med("throughput", "redis-tls", wl, c, p, "ops_per_sec")
            target("%s %d×%d throughput ≥ redis+TLS" % (wl.upper(), c, p),
                   a / b if a and b else None, 1.0, "%.2fx")
            a = nm(wl, c, p, "server_cpu_us_per_op")
            b = med("throughput", "redis-tls", wl, c, p, "server_cpu_us_per_op")
            target("%s %d×%d server CPU/op ≤ redis+TLS" % (wl.upper(), c, p),
                   a / b if a and b else None, 1.0, "%.2fx", higher=False)
    for c, p in [(1, 1), PIPE_SHAPE, (16, 16)] if get else []:
        g = nm("get", c, p)
        e = med("echo", "quic-echo", "echo", c, p, "ops_per_sec")
        target("cached GET %d×%d ≥ 50%% of the QUIC echo" % (c, p),
               g / e if g and e else None, 0.5, "%.2fx")


def write_plot_data(rates):
    shapes = SHAPES + [PIPE_SHAPE]
    with open(os.path.join(A.out, "throughput.dat"), "w") as f:
        f.write("# shape get:nanasqlite get:redis get:redis-tls set:nanasqlite set:redis "
                "set:redis-tls (median ops/s)\n")
        for c, p in shapes:
            vals = [med("throughput", s, wl, c, p, "ops_per_sec")
                    for wl in ("get", "set") for s in SERVERS]
            f.write('"%dx%d" %s\n' % (c, p, " ".join("?" if v is None else "%.0f" % v
                                                      for v in vals)))
    with open(os.path.join(A.out, "latency.dat"), "w") as f:
        f.write("# offered_ops_s percent_of_peak achieved_ops_s p50_us p99_us p999_us\n")
        for frac, rate in rates:
            vals = [med("latency", "nanasqlite", "get", LAT_SHAPE[0], LAT_SHAPE[1], fl, rate)
                    for fl in ("ops_per_sec", "p50_us", "p99_us", "p999_us")]
            f.write("%d %.0f %s\n" % (rate, frac * 100, " ".join("?" if v is None else "%.1f" % v
                                                                 for v in vals)))


def save(peak, rates, done):
    os.makedirs(A.out, exist_ok=True)
    doc = dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               command=A.command, machine=A.machine, versions=A.versions, runs=A.runs,
               seconds=A.seconds, quick=A.quick, client_threads=A.client_threads,
               nanasqlite_server_extra_args=A.server_args, workloads=A.workloads,
               durability=DURABILITY, redis_set_value=SET_VALUE,
               value_size=VALUE_SIZE, keyspace=KEYS, complete=done,
               elapsed_seconds=round(time.time() - started, 1), peak_get_16x16=peak,
               loadavg_before=load_before, loadavg_after=loadavg(),
               busy_cores_before=round(idle_check, 3), busy_threshold_cores=BUSY_CORES,
               latency_rates=[r for f, r in rates], runs_raw=raw)
    tmp = os.path.join(A.out, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, os.path.join(A.out, "results.json"))


def machine_busy_cores(seconds=1.0):
    m0 = machine_ticks()
    time.sleep(seconds)
    return (machine_ticks()[0] - m0[0]) / CLK_TCK / seconds


idle_check = 0.0


def main():
    global idle_check
    peak, rates, done = None, [], False
    idle_check = machine_busy_cores()
    if idle_check > BUSY_CORES:
        log("warning: the machine is busy (%.2f cores in use before the start); the figures "
            "will be noisy" % idle_check)
    try:
        populate()
        for run in range(1, A.runs + 1):
            log("round %d of %d: throughput" % (run, A.runs))
            throughput_round(run)
            save(peak, rates, False)
        peak = med("throughput", "nanasqlite", "get", LAT_SHAPE[0], LAT_SHAPE[1], "ops_per_sec")
        fracs = [0.1, 0.5, 0.9] if A.quick else [0.1, 0.25, 0.5, 0.75, 0.9]
        if peak:
            rates = [(f, max(100, int(round(peak * f, -2)))) for f in fracs]
            for run in range(1, A.runs + 1):
                log("round %d of %d: latency vs load" % (run, A.runs))
                for frac, rate in rates:
                    nana_run("get", LAT_SHAPE[0], LAT_SHAPE[1], run, kind="latency", rate=rate)
        done = True
    except (KeyboardInterrupt, Stop) as e:
        log("stopped (%s); writing what was measured" % (e or "interrupt"))
    save(peak, rates, done)
    write_plot_data(rates)
    text = tables(peak, rates)
    with open(os.path.join(A.out, "table.md"), "w") as f:
        f.write(text)
    print(text)
    log("measured in %.0f s" % (time.time() - started))
    return 0 if done else 130


if __name__ == "__main__":
    sys.exit(main())
