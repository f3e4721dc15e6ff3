#!/usr/bin/env python3
"""Three-member clusters over gRPC: etcd beside nanasqlite-server's cluster
mode, in one sitting, and each beside its single-node self.

Starts on 127.0.0.1, each in a temporary directory, every port picked free:
  - etcd 3.4 (Debian's etcd-server) as a cluster of 3 members (its default
    durability: the WAL fsynced at every raft commit), and one single etcd;
  - nanasqlite-server in cluster mode, 3 processes (--cluster-id 1..3,
    --cluster-bind 127.0.0.1:PORT, --join for 2 and 3; --synchronous full;
    an h2c listener each), and one single nanasqlite-server (the flags
    bench/etcd_compare.py gives it).
Each cluster's leader is found (etcd: Maintenance/Status; ours:
`nanasqlite-cli cluster list --at`) and each cluster is loaded at its
leader and through a follower (which forwards to the leader):

  writes  bench/grpc_load.go -kind etcd-put|nana-set -c 16 -m 16: random
          keys of 10,000, a new 64-byte value every request.
  reads   h2load of one present key: etcd's Range (linearizable and
          serializable), our Get.

Rounds interleave every target (the order reversed every other round);
tables are medians of --runs rounds of --seconds each: requests/s, p50,
p99 and the CPU of all the target's server processes per request.
Processes, framing, the load runs and the checks are bench/etcd_compare.py's.

usage: bench/etcd_cluster.py [--build DIR] [--runs 5] [--seconds 5]
           [--shapes 16x16] [--targets etcd-leader,etcd-follower,...]
           [--out bench/results/etcd_cluster] [--quick]
Writes results.json (every run with its command), table.md, commands.md
(how each server was started and each load run) and every server's log.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etcd_compare as ec  # noqa: E402
from etcd_compare import fld  # noqa: E402

ROOT = ec.ROOT
ALL_TARGETS = ("etcd-leader", "etcd-follower", "etcd-single",
               "nana-leader", "nana-follower", "nana-single")
A = None


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="the build directory with tools/nanasqlite-server")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--shapes", default="16x16")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help="any of " + ", ".join(ALL_TARGETS))
    ap.add_argument("--no-reads", action="store_true", help="writes only")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "etcd_cluster"))
    ap.add_argument("--quick", action="store_true", help="1 run of 1.5 s")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.seconds, a.warmup = 1, 1.5, 0.5
    a.shapes = [tuple(int(x) for x in s.split("x")) for s in a.shapes.split(",")]
    a.targets = a.targets.split(",")
    a.build, a.out = os.path.abspath(a.build), os.path.abspath(a.out)
    for t in a.targets:
        if t not in ALL_TARGETS:
            sys.exit(f"etcd_cluster: unknown target {t}")
    return a


def log(msg):
    print(msg, flush=True)


# ---- protobuf answers, by hand --------------------------------------------------------

def pb_fields(b):
    """The top-level fields of protobuf message |b|: {number: [value, ...]},
    varints as ints, length-delimited fields as bytes."""
    out, i = {}, 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return v

    while i < len(b):
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            val = varint()
        elif wt == 2:
            n = varint()
            val, i = b[i:i + n], i + n
        elif wt == 1:
            val, i = int.from_bytes(b[i:i + 8], "little"), i + 8
        elif wt == 5:
            val, i = int.from_bytes(b[i:i + 4], "little"), i + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(num, []).append(val)
    return out


# ---- etcd -------------------------------------------------------------------------

def start_etcd_cluster(work, n=3):
    """n etcd members on 127.0.0.1 (ports picked free), data in WORK/etcdN;
    returns [{proc, port, argv, name, log}], once every client port answers."""
    names = [f"m{i + 1}" for i in range(n)]
    client = [ec.free_port() for _ in names]
    peer = [ec.free_port() for _ in names]
    initial = ",".join(f"{m}=http://127.0.0.1:{p}" for m, p in zip(names, peer))
    members = []
    for i, m in enumerate(names):
        argv = ["etcd", "--name", m, "--data-dir", os.path.join(work, f"etcd-{m}"),
                "--listen-client-urls", f"http://127.0.0.1:{client[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{client[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer[i]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"bench-{os.getpid()}",
                "--logger", "zap", "--log-level", "error"]
        logf = os.path.join(work, f"etcd-{m}.log")
        p = subprocess.Popen(argv, cwd=work, stdout=open(logf, "w"), stderr=subprocess.STDOUT)
        ec.STARTED.append(p)
        members.append({"proc": p, "port": client[i], "argv": argv, "name": m, "log": logf})
    for mb in members:
        if not ec.wait_port(mb["port"], mb["proc"], 30):
            sys.exit(f"etcd_cluster: etcd member {mb['name']} did not start (see its log)")
    return members


def etcd_target(addr, pids):
    return {"pid": pids, "addr": addr, "tls": False, "headers": [],
            "reads": {"Range linearizable": ("/etcdserverpb.KV/Range", fld(1, ec.READ_KEY)),
                      "Range serializable": ("/etcdserverpb.KV/Range",
                                             fld(1, ec.READ_KEY) + bytes([7 << 3, 1]))},
            "populate": ("/etcdserverpb.KV/Put", fld(1, ec.READ_KEY) + fld(2, ec.VALUE)),
            "write": "etcd-put", "write_name": "Put"}


def etcd_leader(members, work, seconds=30):
    """Index of the member that leads (each member's Maintenance/Status:
    header.member_id against leader), once all agree; exits after |seconds|."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        ids, leaders = [], set()
        for mb in members:
            code, ans = ec.once({"addr": f"127.0.0.1:{mb['port']}", "headers": [], "tls": False},
                                "/etcdserverpb.Maintenance/Status", b"", work, "status.bin")
            if code != "OK":
                break
            f = pb_fields(ans)
            ids.append(pb_fields(f[1][0])[2][0])
            leaders.add(f.get(4, [0])[0])
        if len(ids) == len(members) and len(leaders) == 1 and next(iter(leaders)) in ids:
            return ids.index(next(iter(leaders)))
        time.sleep(0.5)
    sys.exit("etcd_cluster: the etcd members agree on no leader")


# ---- nanasqlite-server -------------------------------------------------------------

def cli(node, *args, timeout=20):
    """nanasqlite-cli ARGS from |node|'s directory: (status, stdout, stderr)."""
    p = subprocess.run([os.path.join(A.build, "tools", "nanasqlite-cli"), *args], cwd=node["dir"],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def cluster_list(node):
    """`cluster list --at` one node: [(id, address, role, leader?)], or None."""
    try:
        rc, out, _ = cli(node, "cluster", "list", "--at", node["bind"])
    except subprocess.TimeoutExpired:
        return None
    if rc != 0:
        return None
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            rows.append((int(parts[0]), parts[1], parts[2], "leader" in parts[3:]))
    return rows


def start_nana_cluster(work, n=3):
    """n nanasqlite-server processes in cluster mode on 127.0.0.1 (node 1
    bootstraps, the others join it); returns their dicts (etcd_compare's
    start_nana, plus bind), once every node lists n voters and one leader."""
    binds = [f"127.0.0.1:{ec.free_port()}" for _ in range(n)]
    nodes = []
    for i in range(n):
        extra = ["--cluster-id", str(i + 1), "--cluster-bind", binds[i]]
        if i:
            extra += ["--join", ",".join(binds[:i])]
        node = ec.start_nana(work, f"nana-node{i + 1}", extra, wait_seconds=60)
        node["bind"] = binds[i]
        nodes.append(node)
    deadline = time.time() + 60
    rows = None
    while time.time() < deadline:
        views = [cluster_list(nd) for nd in nodes]
        if all(v and len(v) == n and all(r[2] == "voter" for r in v) and
               sum(r[3] for r in v) == 1 for v in views):
            return nodes
        rows = views
        time.sleep(0.5)
    sys.exit(f"etcd_cluster: our cluster did not form: {rows}")


def nana_leader(nodes):
    """Index of the node `cluster list` names leader."""
    for _ in range(60):
        rows = cluster_list(nodes[0]) or []
        lead = [r[1] for r in rows if r[3]]
        if lead:
            for i, nd in enumerate(nodes):
                if nd["bind"] == lead[0]:
                    return i
        time.sleep(0.5)
    sys.exit("etcd_cluster: our cluster names no leader")


def nana_target(node, pids, token):
    return {"pid": pids, "addr": f"127.0.0.1:{node['h2c']}", "tls": False,
            "headers": ["-H", f"authorization: Bearer {token}"],
            "reads": {"Get": ("/nanasqlite.v1.NanaSQLite/Get", fld(1, ec.READ_KEY))},
            "populate": ("/nanasqlite.v1.NanaSQLite/Set", fld(1, ec.READ_KEY) + fld(2, ec.VALUE)),
            "write": "nana-set", "write_name": "Set"}


# ---- the sitting -------------------------------------------------------------------

def start_all(work, res):
    """Every server the targets need; returns (targets, servers for the
    commands file, logs to keep)."""
    tg, servers, logs = {}, [], []
    want = set(A.targets)
    if want & {"etcd-leader", "etcd-follower"}:
        members = start_etcd_cluster(work)
        lead = etcd_leader(members, work)
        follower = (lead + 1) % len(members)
        pids = [m["proc"].pid for m in members]
        res["etcd_leader"] = members[lead]["name"]
        for name, i in (("etcd-leader", lead), ("etcd-follower", follower)):
            if name in want:
                tg[name] = etcd_target(f"127.0.0.1:{members[i]['port']}", pids)
        servers += [("etcd cluster member " + m["name"], m["argv"]) for m in members]
        logs += [m["log"] for m in members]
    if "etcd-single" in want:
        e = ec.start_etcd(work)
        tg["etcd-single"] = etcd_target(f"127.0.0.1:{e['port']}", [e["proc"].pid])
        servers.append(("etcd single", e["argv"]))
        logs.append(os.path.join(work, "etcd.log"))
    token = ec.bench_token()
    if want & {"nana-leader", "nana-follower"}:
        nodes = start_nana_cluster(work)
        lead = nana_leader(nodes)
        follower = (lead + 1) % len(nodes)
        pids = [nd["proc"].pid for nd in nodes]
        res["nana_leader"] = nodes[lead]["bind"]
        for name, i in (("nana-leader", lead), ("nana-follower", follower)):
            if name in want:
                tg[name] = nana_target(nodes[i], pids, token)
        servers += [(f"nanasqlite-server cluster node {i + 1} (cwd its directory)", nd["argv"])
                    for i, nd in enumerate(nodes)]
        logs += [os.path.join(nd["dir"], "server.log") for nd in nodes]
    if "nana-single" in want:
        s = ec.start_nana(work, "nana-single")
        tg["nana-single"] = nana_target(s, [s["proc"].pid], token)
        servers.append(("nanasqlite-server single (cwd its directory)", s["argv"]))
        logs.append(os.path.join(s["dir"], "server.log"))
    return {n: tg[n] for n in A.targets if n in tg}, servers, logs


def run_rounds(tg, files, res):
    names = list(tg)
    for rnd in range(A.runs):
        order = names if rnd % 2 == 0 else names[::-1]
        for conns, streams in A.shapes:
            shape = f"{conns}x{streams}"
            for name in order:
                if A.no_reads:
                    break
                for rname, (path, body, alen) in files[name].items():
                    r = ec.h2load_run(tg[name], path, body, alen, conns, streams, A.work)
                    r.update(target=name, workload=rname, kind="read", shape=shape, round=rnd)
                    res["rows"].append(r)
                    log(f"round {rnd + 1} {shape} {name:13} {rname:19} {r['rps']:10.0f} req/s"
                        f"  p50 {r['p50_us']} us  p99 {r['p99_us']} us"
                        f"  other {r['other_cores']} cores"
                        f"{'' if r['data_ok'] else '  ANSWERS WRONG'}")
            for name in order:
                t = tg[name]
                r = ec.write_run(t, conns, streams)
                r.update(target=name, workload=t["write_name"], kind="write", shape=shape,
                         round=rnd)
                res["rows"].append(r)
                log(f"round {rnd + 1} {shape} {name:13} {t['write_name']:19} "
                    f"{r['rps']:10.0f} req/s  p50 {r.get('p50_us')} us  "
                    f"p99 {r.get('p99_us')} us  errors {r.get('errors')}  "
                    f"other {r.get('other_cores')} cores")


def main():
    global A
    A = parse_args()
    for tool in ("etcd", "h2load", "go"):
        if not shutil.which(tool):
            sys.exit(f"etcd_cluster: '{tool}' not found (scripts/install-deps)")
    signal.signal(signal.SIGTERM, ec.stop_all)
    signal.signal(signal.SIGINT, ec.stop_all)
    gobuild = os.path.join(A.build, "bench-go")
    b = subprocess.run(["sh", os.path.join(ROOT, "bench", "build-grpc-load.sh"), gobuild],
                       capture_output=True, text=True, timeout=900)
    if b.returncode != 0:
        sys.exit("etcd_cluster: building grpc_load:\n" + b.stderr)
    A.load = os.path.join(gobuild, "grpc_load")
    ec.A = A  # etcd_compare's helpers read the runs' settings from here
    os.makedirs(A.out, exist_ok=True)
    A.work = tempfile.mkdtemp(prefix="etcd-cluster-")
    res = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                       "loadavg_before": ec.loadavg()},
           "runs": A.runs, "seconds": A.seconds, "warmup": A.warmup, "rows": []}
    logs = []
    try:
        v = subprocess.run(["etcd", "--version"], capture_output=True, text=True)
        res["etcd_version"] = v.stdout.split("\n")[0]
        tg, servers, logs = start_all(A.work, res)
        res["servers"] = [{"what": w, "argv": argv} for w, argv in servers]
        files = ec.prepare(tg, A.work)
        run_rounds(tg, files, res)
        dead = [p.args[0] for p in ec.STARTED if p.poll() is not None]
        if dead:
            log(f"WARNING: {len(dead)} server processes exited during the runs")
            res["exited"] = dead
    finally:
        ec.stop_all()
        res["machine"]["loadavg_after"] = ec.loadavg()
        for f in logs:
            if os.path.exists(f):
                rel = os.path.relpath(f, A.work).replace(os.sep, "-")
                shutil.copy(f, os.path.join(A.out, rel))
        shutil.rmtree(A.work, ignore_errors=True)
    summarize(res)


# ---- tables ------------------------------------------------------------------------

LABELS = {"etcd-leader": "etcd cluster, at the leader",
          "etcd-follower": "etcd cluster, through a follower",
          "etcd-single": "etcd, one member",
          "nana-leader": "nanasqlite cluster, at the leader",
          "nana-follower": "nanasqlite cluster, through a follower",
          "nana-single": "nanasqlite-server, single"}


def summarize(res):
    rows = res["rows"]
    other = [r["other_cores"] for r in rows if r.get("other_cores") is not None]
    busy = sum(1 for x in other if x > 0.2)
    lines = [f"{res['started']}, medians of {res['runs']} rounds, {res['seconds']:g} s per run "
             f"after {res['warmup']:g} s of warm-up; the rest of the machine used "
             f"{statistics.median(other) if other else 0:.2f} cores (median over runs; "
             f"{busy} of {len(other)} runs over 0.2). CPU: all the target's server "
             f"processes (the 3 members of a cluster), per request.", ""]
    shapes = sorted({r["shape"] for r in rows}, key=lambda s: [int(x) for x in s.split("x")])
    for kind, title in (("write", "Writes, a new value each (grpc_load)"),
                        ("read", "Reads of one present key (h2load)")):
        keys = []
        for r in rows:
            k = (r["target"], r["workload"])
            if r["kind"] == kind and k not in keys:
                keys.append(k)
        keys.sort(key=lambda k: (ALL_TARGETS.index(k[0]), k[1]))
        if not keys:
            continue
        lines += [f"**{title}**", "",
                  "| target | call | C x M | requests/s | p50 ms | p99 ms | CPU us/req | "
                  "runs with errors |", "|---|---|---|---|---|---|---|---|"]
        for s in shapes:
            for tgt, wl in keys:
                sel = [r for r in rows if r["target"] == tgt and r["workload"] == wl and
                       r["shape"] == s]
                if not sel:
                    continue
                bad = sum(1 for r in sel if r.get("errors") or r.get("error") or
                          (kind == "read" and not r.get("data_ok")))

                def m(field):
                    return ec.med(rows, tgt, wl, s, field)

                p50, p99 = m("p50_us"), m("p99_us")
                lines.append(
                    f"| {LABELS[tgt]} | {wl} | {s} | {ec.fmt(m('rps'))} | "
                    f"{ec.fmt(p50 and p50 / 1000, '{:.2f}')} | "
                    f"{ec.fmt(p99 and p99 / 1000, '{:.2f}')} | "
                    f"{ec.fmt(m('cpu_us_per_req'), '{:.0f}')} | {bad} of {len(sel)} |")
        lines.append("")
    table = "\n".join(lines)
    with open(os.path.join(A.out, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(A.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    cmds = ["# Commands", "", "```sh", " ".join(sys.argv), "```", "", "## Servers", ""]
    for s in res.get("servers", []):
        cmds += [f"{s['what']}:", "", "```sh", " ".join(s["argv"]), "```", ""]
    cmds += ["## Load runs (round 1)", ""]
    seen = set()
    for r in rows:
        k = (r["target"], r["workload"], r["shape"])
        if k not in seen and r.get("cmd"):
            seen.add(k)
            cmds += [f"{LABELS[r['target']]}, {r['workload']} {r['shape']}:", "", "```sh",
                     r["cmd"], "```", ""]
    with open(os.path.join(A.out, "commands.md"), "w") as f:
        f.write("\n".join(cmds))
    print(table)


if __name__ == "__main__":
    main()
