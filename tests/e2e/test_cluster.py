#!/usr/bin/env python3
"""The server's cluster mode end to end: real nanasqlite-server processes,
each embedding a dqlite node, on the network of tests/e2e/netns.py (each
node in its own network namespace when we are root with iproute2; else all
on 127.0.0.1, where the cases that cut links print SKIP).

  - three nodes form a cluster (node 1 bootstraps, 2 and 3 --join); every
    node lists the same three voters and one leader; a write through a
    follower reads back through every node and every door;
  - the leader killed (SIGKILL) under a load of writes: a new leader within
    15 s, every acknowledged write readable through every survivor, writes
    go on; the killed node restarted with its flags and directory rejoins
    and serves what it missed;
  - a follower, then the leader, cut off: the majority keeps taking writes,
    the cut node's server fails a write with an error within 15 s (never
    acknowledges it, never hangs); healed, it serves the majority's writes;
  - a partition (blackhole routes) with the leader alone: the same, and
    after healing every node reads one history;
  - five nodes form and survive the loss of two, the leader among them.

Clients are nanasqlite-cli runs (a write is acknowledged when the CLI exits
0 with the server's answer); where they run (the hub, which reaches every
node, or inside a node's namespace) is said at each call. Every wait is
bounded; every process is killed and every namespace removed at the end of
each test, failed or not.

Usage: test_cluster.py --bin-dir DIR [--tmp DIR] [--fabric netns|loopback] [test_name...]
Ends with "N passed, M failed".
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
import serverlib  # noqa: E402
from serverlib import check, CHECKS  # noqa: E402

ARGS = None
LEADER_S = 15  # a new leader must be named this soon
FAIL_S = 16  # a call that cannot succeed must end this soon (the call deadline is 15 s)
CLUSTER_WAIT_MS = 4000  # the servers' --cluster-wait-ms: how long a call waits for a leader
# The servers' --cluster-latency-ms: Raft's heartbeats and elections timed for
# loopback-fast links (dqlite's own default elects a new leader in 4 to 6 s).
CLUSTER_LATENCY_MS = 10
WAIT_S = 6  # ... so a call fails with the cluster's own error this soon
CATCHUP_S = 20  # a healed or restarted node serves the others' writes this soon


def log(msg):
    """A line of the test's story, with the UTC time the servers' logs use."""
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
    print(f"  {stamp} {msg}", flush=True)


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (the QUIC door and the
    TLS door share a number)."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def eventually(fn, seconds, pause=0.3):
    """Calls fn() until it returns something true or |seconds| pass; returns
    (the last value, seconds taken)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v or time.monotonic() - t0 > seconds:
            return v, time.monotonic() - t0
        time.sleep(pause)


# ---- nodes -------------------------------------------------------------------------

class Node:
    """One nanasqlite-server in cluster mode, in its own directory (a
    certificate of its own, the test's one client key), placed on the
    fabric's node |i|."""

    def __init__(self, fab, i, tag, keydir):
        self.fab, self.i, self.id = fab, i, i + 1
        self.dir = os.path.join(ARGS.tmp, f"cluster-{tag}-{os.getpid()}-n{self.id}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cert-gen")], cwd=self.dir,
                       check=True, stdout=subprocess.DEVNULL, timeout=60)
        for f in ("nana_private.pem", "nana_public.pub"):
            shutil.copy(os.path.join(keydir, f), self.dir)
        self.addr = fab.addr(i)
        self.port = free_port()
        self.bind = f"{self.addr}:{free_port()}"
        self.proc = None
        self.argv = None
        self.logf = None

    def start(self, join=(), wait=True):
        """Starts the server (the same flags as before when |join| is None
        on a restart); with |wait| until it has written its port (bounded)."""
        if self.argv is None:
            self.argv = [os.path.join(ARGS.bin_dir, "nanasqlite-server"),
                         "--host", self.addr, "--port", str(self.port),
                         "--ready-file", "port.txt", "--log-level", "debug", "--no-bans",
                         "--threads", "1", "--workers", "2",
                         "--cluster-id", str(self.id), "--cluster-bind", self.bind,
                         "--cluster-wait-ms", str(CLUSTER_WAIT_MS),
                         "--cluster-latency-ms", str(CLUSTER_LATENCY_MS), *ARGS.server_flag]
            if join:
                self.argv += ["--join", ",".join(join)]
        ready = os.path.join(self.dir, "port.txt")
        if os.path.exists(ready):
            os.unlink(ready)
        self.logf = open(os.path.join(self.dir, "server.log"), "a")
        self.logf.write(f"---- start {' '.join(self.argv)}\n")
        self.logf.flush()
        self.proc = self.fab.popen(self.i, self.argv, cwd=self.dir, stdout=self.logf,
                                   stderr=subprocess.STDOUT)
        if not wait:
            return True
        ok, _ = eventually(lambda: (os.path.exists(ready) and open(ready).read().strip()) or
                           self.proc.poll() is not None, 30, 0.05)
        good = self.proc.poll() is None and bool(ok)
        check(good, f"node {self.id} starts", self.log_tail())
        return good

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        """SIGTERM; the exit status (None when it had to be killed after 30 s)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=25):
        """The last |n| lines of the log that are not a connection's routine
        (open, logged in, closed)."""
        lines = [x for x in self.log_text().splitlines()
                 if not re.search(r" conn \d+ (open from|auth ok:|closed from)", x)]
        return "\n".join(lines[-n:])


def cli(node, *args, where=None, timeout_ms=8000):
    """nanasqlite-cli against |node|'s QUIC door, run in |where| (None: the
    hub, which reaches every node not cut off; an index: inside that node's
    namespace), from the node's directory (its cert.pem, the client key).
    Returns (status or None when it ran past its own bound, stdout, stderr,
    seconds)."""
    argv = [os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "--host", node.addr,
            "--port", str(node.port), "--timeout-ms", str(timeout_ms), *args]
    t0 = time.monotonic()
    try:
        p = node.fab.run(where, argv, cwd=node.dir, capture_output=True, text=True,
                         timeout=2 * timeout_ms / 1000 + 15)
    except subprocess.TimeoutExpired:
        return None, "", "the CLI did not end", time.monotonic() - t0
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def cluster_list(node, where=None):
    """`nanasqlite-cli cluster list --at` the node's cluster address (the
    CLI asks that node who leads and lists the leader's view):
    [(id, address, role, leader?)], or None when it fails."""
    argv = [os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "cluster", "list", "--at", node.bind]
    try:
        p = node.fab.run(where, argv, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    rc, out = p.returncode, p.stdout
    if rc != 0:
        return None
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            rows.append((int(parts[0]), parts[1], parts[2], "leader" in parts[3:]))
    return rows


def leader_seen(nodes, among):
    """The node every node of |among| names leader (and that is one of
    |among|), or None."""
    views = [cluster_list(n) for n in among]
    if not all(views):
        return None
    leads = {tuple(r[1] for r in v if r[3]) for v in views}
    if len(leads) != 1:
        return None
    lead = next(iter(leads))
    if len(lead) != 1:
        return None
    for n in among:
        if n.bind == lead[0]:
            return n
    return None


def set_ok(node, key, value, where=None, timeout_ms=8000):
    rc, out, err, secs = cli(node, "set", key, json.dumps(value), where=where,
                             timeout_ms=timeout_ms)
    return rc == 0 and out == "null\n", (rc, out.strip(), err.strip(), round(secs, 2))


def set_eventually(node, key, value, seconds=LEADER_S, where=None):
    """Retries a write (a leader may be in election) until acknowledged or
    |seconds| pass; returns (ok, the last attempt's detail)."""
    last = [None]

    def attempt():
        ok, last[0] = set_ok(node, key, value, where=where)
        return ok
    ok, _ = eventually(attempt, seconds, 0.5)
    return ok, last[0]


def read_all(node, keys, where=None):
    """The values of |keys| read through |node| (one to_dict call: batch_get
    is not served on a clustered database): (a dict, or None when the call
    failed, and the CLI's detail)."""
    rc, out, err, secs = cli(node, "call", "to_dict", where=where)
    if rc != 0:
        return None, f"to_dict: {rc} {err.strip()} ({secs:.1f} s)"
    got = json.loads(out)
    return {k: got[k] for k in keys if k in got}, ""


def same_values(node, want, seconds=CATCHUP_S, where=None):
    """Whether reading |want|'s keys through |node| gives |want| within
    |seconds| (retried for up to 60 s, so a failure says how long it took):
    (ok, detail)."""
    last = [None]

    def attempt():
        got, why = read_all(node, list(want), where=where)
        if got is None:
            last[0] = why
            return False
        missing = [k for k in want if k not in got]
        wrong = [k for k in want if k in got and got[k] != want[k]]
        last[0] = f"{len(missing)} missing {missing[:5]}, {len(wrong)} wrong {wrong[:5]}"
        return not missing and not wrong
    ok, secs = eventually(attempt, max(seconds, 60), 0.5)
    if ok:
        return secs <= seconds, f"after {secs:.1f} s"
    return False, f"not after {secs:.1f} s: {last[0]}"


def one_leader_within(c, seconds=CATCHUP_S):
    """Checks every node's own dqlite names the same leader within |seconds|
    (waiting up to 60 s, to say how long it took)."""
    lead, secs = eventually(lambda: leader_seen(c.nodes, c.nodes), max(seconds, 60), 0.5)
    check(lead is not None and secs <= seconds,
          f"after the heal every node names the same leader within {seconds} s",
          f"{'after' if lead else 'not after'} {secs:.1f} s: "
          f"{[cluster_list(n) for n in c.nodes]}")


class Cluster:
    """n nodes on a fabric of their own; close() ends every process and
    removes every namespace whatever happened."""

    def __init__(self, n, tag):
        self.fab = netns.open_fabric(n, ARGS.fabric)
        self.tag = tag
        keydir = os.path.join(ARGS.tmp, f"cluster-{tag}-{os.getpid()}-key")
        shutil.rmtree(keydir, ignore_errors=True)
        os.makedirs(keydir)
        subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-key-gen"), "--prefix", "nana"],
                       cwd=keydir, check=True, stdout=subprocess.DEVNULL, timeout=60)
        self.nodes = [Node(self.fab, i, tag, keydir) for i in range(n)]
        self.failed_before = CHECKS["failed"]

    def form(self, voters=None):
        """Node 1 bootstraps, the others join the ones before them; waits
        (bounded) until every node lists them all, at least |voters| of them
        voters (default: all), and names one leader. Returns the leader or None."""
        voters = len(self.nodes) if voters is None else voters
        for k, n in enumerate(self.nodes):
            if not n.start(join=[m.bind for m in self.nodes[:k]]):
                return None

        def formed():
            views = [cluster_list(n) for n in self.nodes]
            if not all(v and len(v) == len(self.nodes) and
                       sum(r[2] == "voter" for r in v) >= voters for v in views):
                return None
            return leader_seen(self.nodes, self.nodes)
        lead, secs = eventually(formed, 60, 0.5)
        check(lead is not None, f"{len(self.nodes)} nodes form a cluster with one leader",
              str([cluster_list(n) for n in self.nodes]))
        if lead:
            log(f"formed in {secs:.1f} s, leader node {lead.id} ({self.fab.mode})")
        return lead

    def close(self):
        failed = CHECKS["failed"] > self.failed_before
        try:
            for n in self.nodes:
                if n.alive():
                    rc = n.stop()
                    check(rc == 0, f"node {n.id} stops cleanly on SIGTERM", f"status {rc}")
        finally:
            self.fab.close()
        for n in self.nodes:
            if n.logf:
                n.logf.close()
            text = n.log_text()
            check("Sanitizer" not in text and "runtime error:" not in text,
                  f"no sanitizer report in node {n.id}'s log", n.dir)
        if CHECKS["failed"] > self.failed_before or failed:
            for n in self.nodes:
                print(f"  ---- node {n.id} log tail ({n.dir}/server.log)")
                print("\n".join("    " + x for x in n.log_tail(30).splitlines()))

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


class Writers:
    """Threads writing keys PREFIX<thread>-<n> one after another through the
    nodes (the next node after a failure), recording the acknowledged
    writes and how long every call took."""

    def __init__(self, nodes, prefix, threads=2):
        self.nodes = list(nodes)
        self.prefix = prefix
        self.acked = {}  # key -> value
        self.ack_times = []  # monotonic time of each acknowledgement
        self.failures = []  # (node id, detail)
        self.slowest = 0.0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(t,), daemon=True)
                        for t in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, t):
        k, at = 0, t
        while not self.stopping.is_set():
            node = self.nodes[at % len(self.nodes)]
            key, value = f"{self.prefix}{t}-{k}", {"t": t, "k": k, "v": f"value {t}/{k}"}
            ok, detail = set_ok(node, key, value, timeout_ms=10000)
            with self.lock:
                self.slowest = max(self.slowest, detail[3])
                if ok:
                    self.acked[key] = value
                    self.ack_times.append(time.monotonic())
                else:
                    self.failures.append((node.id, detail))
            k += 1
            if not ok:
                at += 1
                time.sleep(0.1)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60)
        check(not any(t.is_alive() for t in self.threads), "the writers end")

    def acks_after(self, t0):
        with self.lock:
            return sum(1 for t in self.ack_times if t > t0)


def skip_unless_netns(c, what):
    if c.fab.mode != "netns":
        print(f"  SKIP: {what}: the loopback fabric cannot cut links "
              f"(network namespaces need root and iproute2)", flush=True)
        return True
    return False


# ---- the tests ---------------------------------------------------------------------

def test_form_write_read():
    with Cluster(3, "form") as c:
        lead = c.form()
        if not lead:
            return
        views = [cluster_list(n) for n in c.nodes]
        want = sorted((n.id, n.bind) for n in c.nodes)
        check(all(sorted((r[0], r[1]) for r in v) == want for v in views),
              "every node lists every node's id and cluster address", str(views))
        f1, f2 = [n for n in c.nodes if n is not lead]
        value = {"written": "through a follower", "n": [1, 2, 3]}
        ok, detail = set_ok(f1, "k1", value)
        check(ok, "a write through a follower is acknowledged", str(detail))
        for n in c.nodes:
            rc, out, err, _ = cli(n, "get", "k1")
            check(rc == 0 and json.loads(out or "null") == value,
                  f"node {n.id} reads the value", f"{rc} {out!r} {err!r}")
        # Every door on any node: gRPC over HTTP/3, and HTTP/2 on TCP.
        rc, out, err, _ = cli(f2, "--grpc", "get", "k1")
        check(rc == 0 and json.loads(out or "null") == value, "gRPC door of a follower reads it",
              f"{rc} {out!r} {err!r}")
        rc, out, err, _ = cli(f2, "--grpc", "set", "k2", '"via grpc"')
        check(rc == 0, "gRPC door of a follower writes", f"{rc} {out!r} {err!r}")
        rc, out, err, _ = cli(lead, "--transport", "h2", "get", "k2")
        check(rc == 0 and out == '"via grpc"\n', "HTTP/2 door of the leader reads it",
              f"{rc} {out!r} {err!r}")
        rc, out, err, _ = cli(f1, "--transport", "h2", "del", "k2")
        check(rc == 0, "HTTP/2 door of a follower deletes", f"{rc} {out!r} {err!r}")
        for n in c.nodes:
            rc, out, err, _ = cli(n, "has", "k2")
            check(rc == 0 and out == "false\n", f"node {n.id}: the delete is seen",
                  f"{rc} {out!r} {err!r}")
        # A missing key is a KeyError through a follower too.
        rc, out, err, _ = cli(f1, "get", "nope")
        check(rc == 1 and "KeyError" in err, "a missing key: KeyError through a follower",
              f"{rc} {out!r} {err!r}")


def test_kill_leader_under_load():
    with Cluster(3, "kill") as c:
        lead = c.form()
        if not lead:
            return
        w = Writers(c.nodes, "w").start()
        eventually(lambda: len(w.acked) >= 20, 20, 0.1)
        before = len(w.acked)
        log(f"{before} writes acknowledged; SIGKILL to the leader, node {lead.id}")
        t_kill = time.monotonic()
        lead.kill9()
        survivors = [n for n in c.nodes if n is not lead]
        w.nodes = survivors
        new, secs = eventually(lambda: leader_seen(c.nodes, survivors), LEADER_S + 5, 0.3)
        check(new is not None and secs <= LEADER_S,
              f"a new leader within {LEADER_S} s", f"{secs:.1f} s, {new and new.id}")
        if new:
            log(f"new leader node {new.id} after {secs:.1f} s")
        resumed, _ = eventually(lambda: w.acks_after(time.monotonic() - 1) > 0 and
                                w.acks_after(t_kill + secs) >= 10, 20, 0.2)
        check(bool(resumed), "writes are acknowledged again after the failover",
              f"{w.acks_after(t_kill)} after the kill")
        w.stop()
        log(f"{len(w.acked)} writes acknowledged, {len(w.failures)} failed, slowest call "
            f"{w.slowest:.1f} s")
        check(w.slowest < FAIL_S + 10, "no write call hung", f"{w.slowest:.1f} s")
        acked = dict(w.acked)
        for n in survivors:
            ok, detail = same_values(n, acked)
            check(ok, f"survivor node {n.id} reads every acknowledged write", detail)
        # The killed node comes back with its flags and its directory.
        lead.start(join=None)
        back, secs = eventually(lambda: cluster_list(lead) and
                                leader_seen(c.nodes, c.nodes), CATCHUP_S, 0.5)
        check(back is not None, "the restarted node rejoins (every node names one leader)",
              str([cluster_list(n) for n in c.nodes]))
        ok, detail = same_values(lead, acked)
        check(ok, f"the restarted node {lead.id} serves the writes it missed", detail)
        ok, detail = set_eventually(lead, "after-restart", {"x": 1})
        check(ok, "the restarted node takes a write", str(detail))
        for n in c.nodes:
            ok, detail = same_values(n, {"after-restart": {"x": 1}})
            check(ok, f"node {n.id} reads it", detail)


def refused_in_time(detail, who, what):
    """Checks a call that cannot succeed (the CLI's (status, out, err,
    seconds)): an error answer, not a hang, within FAIL_S; and the cluster's
    own error (no leader, outcome unknown), not the call's deadline, within
    WAIT_S."""
    rc, _, err, secs = detail
    check(rc == 1 and secs <= FAIL_S, f"{who} answers a {what} with an error within {FAIL_S} s",
          str(detail))
    check(rc == 1 and secs <= WAIT_S and "(code: timeout)" not in err,
          f"{who} fails a {what} with the cluster's error within {WAIT_S} s "
          f"(--cluster-wait-ms, not the call deadline)", str(detail))


def cut_case(c, victim_is_leader):
    lead = c.form()
    if not lead:
        return
    others = [n for n in c.nodes if n is not lead]
    victim = lead if victim_is_leader else others[0]
    majority = [n for n in c.nodes if n is not victim]
    log(f"cut node {victim.id} ({'the leader' if victim_is_leader else 'a follower'})")
    c.fab.cut(victim.i)
    if victim_is_leader:
        new, secs = eventually(lambda: leader_seen(c.nodes, majority), LEADER_S + 5, 0.3)
        check(new is not None and secs <= LEADER_S,
              f"the majority names a new leader within {LEADER_S} s",
              f"{secs:.1f} s {new and new.id}")
    written = {}
    for n in majority:
        key = f"cut-{n.id}"
        ok, detail = set_eventually(n, key, {"by": n.id})
        check(ok, f"the majority takes a write through node {n.id}", str(detail))
        if ok:
            written[key] = {"by": n.id}
    # The cut node's own server, asked from inside its namespace: an error
    # within the bound, never an acknowledgement, never a hang.
    ok, detail = set_ok(victim, "cut-victim", {"by": victim.id}, where=victim.i,
                        timeout_ms=20000)
    check(not ok, "the cut node does not acknowledge a write", str(detail))
    refused_in_time(detail, "the cut node's server", "write")
    rc, out, err, secs = cli(victim, "get", "cut-1", where=victim.i, timeout_ms=20000)
    refused_in_time((rc, out.strip(), err.strip(), round(secs, 2)), "the cut node's server",
                    "read")
    c.fab.heal(victim.i)
    log(f"healed node {victim.id}")
    written["cut-after"] = {"after": "heal"}
    ok, detail = set_eventually(majority[0], "cut-after", {"after": "heal"})
    check(ok, "a write after the heal", str(detail))
    for n in c.nodes:
        ok, detail = same_values(n, written)
        check(ok, f"node {n.id} reads the majority's writes after the heal", detail)
        rc, out, err, _ = cli(n, "has", "cut-victim")
        check(rc == 0 and out == "false\n", f"node {n.id}: the refused write is not there",
              f"{rc} {out!r} {err!r}")
    one_leader_within(c)


def test_cut_follower():
    with Cluster(3, "cutf") as c:
        if skip_unless_netns(c, "cutting a follower off"):
            return
        cut_case(c, victim_is_leader=False)


def test_cut_leader():
    with Cluster(3, "cutl") as c:
        if skip_unless_netns(c, "cutting the leader off"):
            return
        cut_case(c, victim_is_leader=True)


def test_partition_heals_to_one_history():
    with Cluster(3, "part") as c:
        if skip_unless_netns(c, "partitions"):
            return
        lead = c.form()
        if not lead:
            return
        majority = [n for n in c.nodes if n is not lead]
        ok, detail = set_ok(lead, "p", {"side": "before"})
        check(ok, "a write before the partition", str(detail))
        c.fab.partition([[lead.i], [n.i for n in majority]])
        log(f"partition: node {lead.id} (the leader) alone")
        new, secs = eventually(lambda: leader_seen(c.nodes, majority), LEADER_S + 5, 0.3)
        check(new is not None and secs <= LEADER_S,
              f"the majority names a new leader within {LEADER_S} s", f"{secs:.1f} s")
        # The client (the hub) reaches both sides: the old leader must not
        # acknowledge a write it cannot commit.
        ok, detail = set_ok(lead, "p", {"side": "minority"}, timeout_ms=20000)
        check(not ok, "the minority side does not acknowledge a write", str(detail))
        refused_in_time(detail, "the minority side's server", "write")
        ok, detail = set_eventually(majority[0], "p", {"side": "majority"})
        check(ok, "the majority side takes a write", str(detail))
        ok, detail = set_eventually(majority[1], "q", {"side": "majority"})
        check(ok, "the majority side takes a write through its other node", str(detail))
        # A read at the old leader, after the majority wrote: an error in
        # time, or the value; never the value from before the partition.
        rc, out, err, secs = cli(lead, "get", "p", timeout_ms=20000)
        if rc == 0:
            check(json.loads(out) == {"side": "majority"},
                  "the minority side serves no stale read", out)
        else:
            refused_in_time((rc, out.strip(), err.strip(), round(secs, 2)),
                            "the minority side's server", "read")
        c.fab.heal_partition()
        log("partition healed")
        want = {"p": {"side": "majority"}, "q": {"side": "majority"}}
        for n in c.nodes:
            ok, detail = same_values(n, want)
            check(ok, f"node {n.id} reads the one history after the heal", detail)
        one_leader_within(c)


def test_five_nodes_lose_two():
    with Cluster(5, "five") as c:
        lead = c.form(voters=3)
        if not lead:
            return
        roles = sorted((r[0], r[2]) for r in cluster_list(lead) or [])
        log(f"roles: {roles}")
        w = Writers(c.nodes, "f").start()
        eventually(lambda: len(w.acked) >= 10, 20, 0.1)
        voters = {r[0] for r in cluster_list(lead) or [] if r[2] == "voter"}
        other = next(n for n in c.nodes if n is not lead and n.id in voters)
        log(f"SIGKILL to node {lead.id} (the leader) and node {other.id} (a voter)")
        t_kill = time.monotonic()
        lead.kill9()
        other.kill9()
        survivors = [n for n in c.nodes if n.alive()]
        w.nodes = survivors
        new, secs = eventually(lambda: leader_seen(c.nodes, survivors), LEADER_S + 5, 0.3)
        check(new is not None and secs <= LEADER_S,
              f"three survivors name a new leader within {LEADER_S} s", f"{secs:.1f} s")
        if new:
            log(f"new leader node {new.id} after {secs:.1f} s")
        resumed, _ = eventually(lambda: w.acks_after(t_kill + secs) >= 5, 20, 0.2)
        check(bool(resumed), "writes are acknowledged again after losing two",
              f"{w.acks_after(t_kill)} after the kill")
        w.stop()
        log(f"{len(w.acked)} writes acknowledged, {len(w.failures)} failed")
        for n in survivors:
            ok, detail = same_values(n, dict(w.acked))
            check(ok, f"survivor node {n.id} reads every acknowledged write", detail)


def add_args(ap):
    ap.add_argument("--fabric", choices=("netns", "loopback"), default=None,
                    help="where the nodes run [netns when available, else loopback]")
    ap.add_argument("--server-flag", action="append", default=[],
                    help="one more flag for every server (repeatable; --server-flag=--x=1)")


if __name__ == "__main__":
    sys.exit(serverlib.run_main(globals(), extra_args=add_args))
