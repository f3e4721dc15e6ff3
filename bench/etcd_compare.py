#!/usr/bin/env python3
"""nanasqlite-server's gRPC door over HTTP/2 beside etcd, in one sitting.

Starts a single-node etcd 3.4 (Debian's etcd-server; data in a temporary
directory, its default fsync of the WAL at every commit) and
nanasqlite-server (--synchronous full: SQLite fsyncs at every commit, the
same promise; an h2c listener beside its TLS door), on 127.0.0.1, and loads
them in turn with the same tools and shapes:

  reads   h2load (nghttp2) with a framed gRPC request file: etcd's
          /etcdserverpb.KV/Range of one present key, linearizable and
          serializable; our /nanasqlite.v1.NanaSQLite/Get of one present key,
          over h2c and over TLS.
  writes  bench/grpc_load.go (grpc-go, neither side's stack): etcd's
          /etcdserverpb.KV/Put and our /nanasqlite.v1.NanaSQLite/Set, random
          keys of 10,000, a new 64-byte value every request (h2load sends
          the same body every time, and SQLite skips a row whose value did
          not change).

Shapes are C x M: C connections with M calls in flight on each (h2load
-c C -m M; grpc_load -c C -m M). Each round runs every target of a workload
one after another, the order reversed every other round (A B, B A, ...);
the tables are medians of --runs rounds: requests/s, p50 and p99 latency
(every request's own time: h2load --log-file, grpc_load's record), server
CPU per request (/proc/PID/stat) and the CPU the rest of the machine used
meanwhile (/proc/stat less the server and the load generator). Every answer is checked before the runs
(status 0 and the value), and every run's DATA bytes against the expected
answers (h2load counts HTTP status only).

usage: bench/etcd_compare.py [--build DIR] [--runs 3] [--seconds 3]
           [--shapes 1x1,16x16,64x16] [--targets etcd,nana-h2c,nana-tls]
           [--out bench/results/etcd] [--quick]
Writes results.json (every run with its command), table.md, etcd.dat,
etcd_compare.png (gnuplot, bench/etcd_compare.gp) and both servers' logs
into --out.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = b"bench-secret-0123456789abcdef-0123456789abcdef"
READ_KEY = b"key0000001"
VALUE = b'"' + b"v" * 62 + b'"'  # 64 bytes, a JSON string for our side
STARTED = []  # processes to stop on exit


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="the build directory with tools/nanasqlite-server")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--shapes", default="1x1,16x16,64x16")
    ap.add_argument("--targets", default="etcd,nana-h2c,nana-tls",
                    help="which servers and doors: etcd, nana-h2c, nana-tls")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "etcd"))
    ap.add_argument("--quick", action="store_true", help="1 run of 1.5 s, 16x16 only")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.seconds, a.warmup, a.shapes = 1, 1.5, 0.5, "16x16"
    a.shapes = [tuple(int(x) for x in s.split("x")) for s in a.shapes.split(",")]
    a.targets = a.targets.split(",")
    a.build, a.out = os.path.abspath(a.build), os.path.abspath(a.out)
    for t in a.targets:
        if t not in ("etcd", "nana-h2c", "nana-tls"):
            sys.exit(f"etcd_compare: unknown target {t}")
    return a


A = None


def log(msg):
    print(msg, flush=True)


# ---- protobuf and gRPC framing, by hand -----------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fld(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def framed(msg):
    return b"\0" + len(msg).to_bytes(4, "big") + msg


# ---- processes ---------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_all(*_):
    for p in STARTED:
        stop(p)
    if _:
        sys.exit(1)


def cpu_ticks(pid):
    """utime + stime of |pid| in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def machine_busy_ticks():
    """All CPU time the machine spent outside idle and iowait, in clock ticks."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


class Meter:
    """CPU of one run: the server's own, per request, and what the rest of
    the machine (not the server, not the load generator) used meanwhile.
    |pid| is the server's, or a list of them (a cluster's members, whose
    CPU is summed)."""

    def __init__(self, pid):
        self.pids = pid if isinstance(pid, list) else [pid]
        self.t0 = time.monotonic()
        self.s0 = self.server_ticks()
        self.m0 = machine_busy_ticks()
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.c0 = r.ru_utime + r.ru_stime

    def server_ticks(self):
        return sum(cpu_ticks(p) for p in self.pids)

    def done(self, row, requests):
        hz = os.sysconf("SC_CLK_TCK")
        server = (self.server_ticks() - self.s0) / hz
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        loadgen = r.ru_utime + r.ru_stime - self.c0
        wall = time.monotonic() - self.t0
        other = (machine_busy_ticks() - self.m0) / hz - server - loadgen
        row["cpu_us_per_req"] = server * 1e6 / requests if requests else None
        row["loadgen_cores"] = round(loadgen / wall, 2)
        row["other_cores"] = round(max(0.0, other) / wall, 2)


def wait_port(port, proc, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_etcd(work):
    client, peer = free_port(), free_port()
    data = os.path.join(work, "etcd-data")
    argv = ["etcd", "--name", "bench", "--data-dir", data,
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
            "--logger", "zap", "--log-level", "error"]
    p = subprocess.Popen(argv, cwd=work, stdout=open(os.path.join(work, "etcd.log"), "w"),
                         stderr=subprocess.STDOUT)
    STARTED.append(p)
    if not wait_port(client, p):
        sys.exit("etcd_compare: etcd did not start (see etcd.log)")
    time.sleep(1.0)  # the single member elects itself
    return {"proc": p, "port": client, "argv": argv}


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def bench_token():
    h = b64url(b'{"alg":"HS256","typ":"JWT"}')
    c = b64url(json.dumps({"sub": "bench", "exp": int(time.time()) + 86400}).encode())
    mac = hmac.new(SECRET, f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64url(mac)}"


def start_nana(work, name="nana", extra=(), wait_seconds=20):
    """Starts nanasqlite-server in WORK/NAME (made here, with a certificate,
    a key and an account "bench" logging in by bearer token) with the flags
    below and |extra|; returns {proc, port, h2c, dir, argv}."""
    d = os.path.join(work, name)
    os.makedirs(d)
    tools = os.path.join(A.build, "tools")
    for tool, args in (("nanasqlite-cert-gen", []), ("nanasqlite-key-gen", ["--prefix", "bench"])):
        subprocess.run([os.path.join(tools, tool), *args], cwd=d, check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
    with open(os.path.join(d, "bench.jwt"), "wb") as f:
        f.write(SECRET)
    os.chmod(os.path.join(d, "bench.jwt"), 0o600)
    with open(os.path.join(d, "bench_public.pub")) as f:
        pub = f.read().strip()
    with open(os.path.join(d, "accounts.json"), "w") as f:
        json.dump({"accounts": [{"name": "bench", "public_key": pub,
                                 "jwt_secret_file": "bench.jwt"}]}, f)
    h2c = free_port()
    argv = [os.path.join(tools, "nanasqlite-server"), "--port", "0", "--ready-file", "port.txt",
            "--accounts", "accounts.json", "--synchronous", "full",
            "--h2c", f"127.0.0.1:{h2c}", "--rate-limit", "1000000000",
            "--max-conns-per-addr", "1000", "--log-level", "warn", *extra]
    p = subprocess.Popen(argv, cwd=d, stdout=open(os.path.join(d, "server.log"), "w"),
                         stderr=subprocess.STDOUT)
    STARTED.append(p)
    ready = os.path.join(d, "port.txt")
    deadline = time.time() + wait_seconds
    while time.time() < deadline and not (os.path.exists(ready) and open(ready).read().strip()):
        if p.poll() is not None:
            break
        time.sleep(0.05)
    if p.poll() is not None or not os.path.exists(ready):
        sys.exit("etcd_compare: nanasqlite-server did not start:\n" +
                 open(os.path.join(d, "server.log")).read()[-2000:])
    port = int(open(ready).read())
    if not wait_port(h2c, p):
        sys.exit("etcd_compare: no h2c listener")
    return {"proc": p, "port": port, "h2c": h2c, "dir": d, "argv": argv}


# ---- the targets -------------------------------------------------------------------

def targets(etcd, nana, token):
    """name -> how to reach it and what to send, for reads and writes."""
    t = {}
    auth = ["-H", f"authorization: Bearer {token}"]
    if etcd:
        base = f"127.0.0.1:{etcd['port']}"
        t["etcd"] = {
            "pid": etcd["proc"].pid, "addr": base, "tls": False, "headers": [],
            "reads": {"Range linearizable": ("/etcdserverpb.KV/Range", fld(1, READ_KEY)),
                      "Range serializable": ("/etcdserverpb.KV/Range",
                                             fld(1, READ_KEY) + bytes([7 << 3, 1]))},
            "populate": ("/etcdserverpb.KV/Put", fld(1, READ_KEY) + fld(2, VALUE)),
            "write": "etcd-put", "write_name": "Put"}
    if nana:
        for door in ("h2c", "tls"):
            if f"nana-{door}" not in A.targets:
                continue
            port = nana["h2c"] if door == "h2c" else nana["port"]
            t[f"nana-{door}"] = {
                "pid": nana["proc"].pid, "addr": f"127.0.0.1:{port}", "tls": door == "tls",
                "ca": os.path.join(nana["dir"], "cert.pem"), "headers": auth,
                "reads": {"Get": ("/nanasqlite.v1.NanaSQLite/Get", fld(1, READ_KEY))},
                "populate": ("/nanasqlite.v1.NanaSQLite/Set", fld(1, READ_KEY) + fld(2, VALUE)),
                "write": "nana-set", "write_name": "Set"}
    return t


def load_argv(t, *args):
    argv = [A.load, "-addr", t["addr"], *t["headers"], *args]
    if t["tls"]:
        argv += ["-tls", "-ca", t["ca"], "-server-name", "localhost"]
    return argv


def once(t, path, msg, work, name):
    """One call through grpc_load: (code, answer bytes)."""
    body = os.path.join(work, name)
    with open(body, "wb") as f:
        f.write(framed(msg))
    p = subprocess.run(load_argv(t, "-kind", "body", "-path", path, "-body", body, "-once"),
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        sys.exit(f"etcd_compare: grpc_load -once failed: {p.stderr}")
    r = json.loads(p.stdout)
    return r["code"], bytes.fromhex(r["answer"])


def prepare(tg, work):
    """Writes the read key, checks every read answers status 0 with the value;
    writes the request files. Returns {target: {read name: (path, file, answer bytes)}}."""
    files = {}
    for name, t in tg.items():
        code, _ = once(t, *t["populate"], work, f"{name}-populate.bin")
        if code != "OK":
            sys.exit(f"etcd_compare: {name}: populating the read key: {code}")
        files[name] = {}
        for rname, (path, msg) in t["reads"].items():
            fname = f"{name}-{rname.replace(' ', '-')}.bin"
            code, answer = once(t, path, msg, work, fname)
            if code != "OK" or VALUE not in answer:
                sys.exit(f"etcd_compare: {name} {rname}: {code}, answer {answer.hex()}")
            files[name][rname] = (path, os.path.join(work, fname), len(answer))
    return files


# ---- runs --------------------------------------------------------------------------

def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(p * (len(sorted_vals) - 1)))]


def h2load_run(t, path, body, answer_len, conns, streams, work):
    logf = os.path.join(work, "h2load.log")
    if os.path.exists(logf):
        os.unlink(logf)
    scheme = "https" if t["tls"] else "http"
    argv = ["h2load", "-c", str(conns), "-m", str(streams), "-t", "1",
            "-D", f"{int(A.seconds * 1000)}ms", f"--warm-up-time={int(A.warmup * 1000)}ms",
            "-d", body,
            "-H", "content-type: application/grpc", "-H", "te: trailers", *t["headers"],
            f"--log-file={logf}", f"{scheme}://{t['addr']}{path}"]
    meter = Meter(t["pid"])
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=A.seconds + A.warmup + 60)
    out = p.stdout
    if p.returncode != 0 or not os.path.exists(logf):
        sys.exit(f"etcd_compare: h2load failed: {' '.join(argv)}\n{out[-1000:]}{p.stderr[-1000:]}")
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    rps = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    data = re.search(r"\(([\d]+)\) data", out)
    lat = []
    with open(logf) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                lat.append(int(parts[2]))
    lat.sort()
    done = int(m.group(3)) if m else 0
    ok = int(m.group(4)) if m else 0
    # Each good answer is one framed message of about the size the check
    # saw (etcd's carry revisions, whose varints may grow by a byte or two);
    # an error is trailers only, with no DATA. The DATA count takes in the
    # warm-up's answers too, so it may only be larger.
    good_data = data is not None and done > 0 and \
        int(data.group(1)) / done >= answer_len + 5 - 8
    row = {"cmd": " ".join(argv), "rps": float(rps.group(1)) if rps else 0.0,
           "requests": done, "succeeded": ok, "data_ok": good_data,
           "p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99), "p999_us": pct(lat, 0.999),
           "raw": out[-1500:] if not (m and rps) or not good_data else ""}
    meter.done(row, done)
    return row


def write_run(t, conns, streams):
    argv = load_argv(t, "-kind", t["write"], "-c", str(conns), "-m", str(streams),
                     "-duration", f"{A.seconds}s", "-warmup", f"{A.warmup}s", "-keys", "10000")
    meter = Meter(t["pid"])
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=A.seconds + A.warmup + 120)
    if p.returncode != 0:
        return {"cmd": " ".join(argv), "rps": 0.0, "error": p.stderr[-1000:]}
    r = json.loads(p.stdout)
    r["cmd"] = " ".join(argv)
    meter.done(r, r.get("requests", 0))
    return r


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    global A
    A = parse_args()
    for tool in ("etcd", "h2load", "go"):
        if not shutil.which(tool):
            sys.exit(f"etcd_compare: '{tool}' not found (scripts/install-deps)")
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    gobuild = os.path.join(A.build, "bench-go")
    b = subprocess.run(["sh", os.path.join(ROOT, "bench", "build-grpc-load.sh"), gobuild],
                       capture_output=True, text=True, timeout=900)
    if b.returncode != 0:
        sys.exit("etcd_compare: building grpc_load:\n" + b.stderr)
    A.load = os.path.join(gobuild, "grpc_load")
    os.makedirs(A.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="etcd-compare-")
    results = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                           "loadavg_before": loadavg()},
               "runs": A.runs, "seconds": A.seconds, "warmup": A.warmup, "rows": []}
    try:
        etcd = start_etcd(work) if "etcd" in A.targets else None
        nana = start_nana(work) if any(t.startswith("nana") for t in A.targets) else None
        results["etcd_argv"] = etcd and etcd["argv"]
        results["nana_argv"] = nana and nana["argv"]
        if etcd:
            v = subprocess.run(["etcd", "--version"], capture_output=True, text=True)
            results["etcd_version"] = v.stdout.split("\n")[0]
        tg = targets(etcd, nana, bench_token())
        files = prepare(tg, work)
        names = list(tg)
        for rnd in range(A.runs):
            order = names if rnd % 2 == 0 else names[::-1]
            for conns, streams in A.shapes:
                for name in order:
                    t = tg[name]
                    for rname, (path, body, alen) in files[name].items():
                        r = h2load_run(t, path, body, alen, conns, streams, work)
                        r.update(target=name, workload=rname, kind="read",
                                 shape=f"{conns}x{streams}", round=rnd)
                        results["rows"].append(r)
                        log(f"round {rnd + 1} {conns}x{streams} {name:9} {rname:19} "
                            f"{r['rps']:10.0f} req/s  p50 {r['p50_us']} us  p99 {r['p99_us']} us"
                            f"  other {r['other_cores']} cores"
                            f"{'' if r['data_ok'] else '  ANSWERS WRONG'}")
                for name in order:
                    t = tg[name]
                    r = write_run(t, conns, streams)
                    r.update(target=name, workload=t["write_name"], kind="write",
                             shape=f"{conns}x{streams}", round=rnd)
                    results["rows"].append(r)
                    log(f"round {rnd + 1} {conns}x{streams} {name:9} {t['write_name']:19} "
                        f"{r['rps']:10.0f} req/s  p50 {r.get('p50_us')} us  "
                        f"p99 {r.get('p99_us')} us  errors {r.get('errors')}  "
                        f"other {r.get('other_cores')} cores")
        for name, p in (("etcd", etcd), ("nanasqlite-server", nana)):
            if p and p["proc"].poll() is not None:
                log(f"WARNING: {name} exited during the runs")
    finally:
        stop_all()
        results["machine"]["loadavg_after"] = loadavg()
        for log_file, name in ((os.path.join(work, "etcd.log"), "etcd.log"),
                               (os.path.join(work, "nana", "server.log"), "server.log")):
            if os.path.exists(log_file):
                shutil.copy(log_file, os.path.join(A.out, name))
        shutil.rmtree(work, ignore_errors=True)
    summarize(results)


# ---- tables and the plot ------------------------------------------------------------

LABELS = {("etcd", "Range linearizable"): "etcd Range (linearizable)",
          ("etcd", "Range serializable"): "etcd Range (serializable)",
          ("nana-h2c", "Get"): "nanasqlite Get (h2c)",
          ("nana-tls", "Get"): "nanasqlite Get (TLS)",
          ("etcd", "Put"): "etcd Put",
          ("nana-h2c", "Set"): "nanasqlite Set (h2c)",
          ("nana-tls", "Set"): "nanasqlite Set (TLS)"}
READ_COLS = [("etcd", "Range linearizable"), ("etcd", "Range serializable"),
             ("nana-h2c", "Get"), ("nana-tls", "Get")]
WRITE_COLS = [("etcd", "Put"), ("nana-h2c", "Set"), ("nana-tls", "Set")]


def med(rows, target, workload, shape, field):
    v = [r[field] for r in rows if r["target"] == target and r["workload"] == workload and
         r["shape"] == shape and r.get(field) is not None]
    return statistics.median(v) if v else None


def fmt(v, f="{:,.0f}"):
    return "-" if v is None else f.format(v)


def summarize(res):
    rows = res["rows"]
    shapes = sorted({r["shape"] for r in rows}, key=lambda s: [int(x) for x in s.split("x")])
    bad = [r for r in rows if r["kind"] == "read" and not r.get("data_ok")] + \
          [r for r in rows if r["kind"] == "write" and (r.get("errors") or r.get("error"))]
    other = [r["other_cores"] for r in rows if r.get("other_cores") is not None]
    busy = sum(1 for x in other if x > 0.2)
    lines = [f"{res['started']}, medians of {res['runs']} rounds, {res['seconds']:g} s per run "
             f"after {res['warmup']:g} s of warm-up; the rest of the machine used "
             f"{statistics.median(other) if other else 0:.2f} cores (median over runs; "
             f"{busy} of {len(other)} runs over 0.2)", ""]
    for title, cols in (("Reads (h2load)", READ_COLS), ("Writes, a new value each (grpc_load)",
                                                        WRITE_COLS)):
        cols = [c for c in cols if any(r["target"] == c[0] and r["workload"] == c[1]
                                       for r in rows)]
        if not cols:
            continue
        lines += [f"**{title}**", "",
                  "| C x M | " + " | ".join(LABELS[c] for c in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for s in shapes:
            cells = []
            for c in cols:
                rps = med(rows, c[0], c[1], s, "rps")
                p50 = med(rows, c[0], c[1], s, "p50_us")
                p99 = med(rows, c[0], c[1], s, "p99_us")
                cpu = med(rows, c[0], c[1], s, "cpu_us_per_req")
                cells.append(f"{fmt(rps)}/s, p50 {fmt(p50 and p50 / 1000, '{:.2f}')} / "
                             f"p99 {fmt(p99 and p99 / 1000, '{:.2f}')} ms, "
                             f"{fmt(cpu, '{:.0f}')} us CPU")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    if bad:
        lines.append(f"{len(bad)} runs had errors or wrong answers (results.json)")
    table = "\n".join(lines)
    with open(os.path.join(A.out, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(A.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    # etcd.dat: one line per shape; columns 2-8 req/s, 9-15 p99 ms ("?": not run).
    cols = READ_COLS + WRITE_COLS
    with open(os.path.join(A.out, "etcd.dat"), "w") as f:
        f.write("# shape " + " ".join(f"rps:{c[0]}:{c[1].replace(' ', '_')}" for c in cols) +
                " " + " ".join(f"p99ms:{c[0]}:{c[1].replace(' ', '_')}" for c in cols) + "\n")
        for s in shapes:
            vals = [med(rows, c[0], c[1], s, "rps") for c in cols]
            p99 = [med(rows, c[0], c[1], s, "p99_us") for c in cols]
            f.write(s + " " + " ".join("?" if v is None else f"{v:.0f}" for v in vals) + " " +
                    " ".join("?" if v is None else f"{v / 1000:.3f}" for v in p99) + "\n")
    if shutil.which("gnuplot"):
        g = subprocess.run(["gnuplot", "-e", f"dir='{A.out}'",
                            os.path.join(ROOT, "bench", "etcd_compare.gp")],
                           capture_output=True, text=True, timeout=60)
        if g.returncode != 0:
            log("gnuplot: " + g.stderr)
    print(table)


if __name__ == "__main__":
    main()
