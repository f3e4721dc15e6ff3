#!/usr/bin/env python3
"""Self-test of tests/e2e/netns.py, the network the cluster tests run on.

A TCP echo server in every node's namespace, and probes (this script run
with --probe inside a namespace) that connect, send a line and read it back:
every node reaches every other and the hub; a cut node reaches nobody and
nobody reaches it, and heal restores it; a partition blocks across groups
both ways and not within them; close() (twice), SIGTERM to a test holding a
fabric, and SIGKILL followed by the next fabric's sweep all leave no
namespace and no process behind. Without root (or `ip`) the netns cases
print SKIP and only the loopback fabric is checked.

Usage: test_netns.py --bin-dir DIR [--tmp DIR] [test_name...]
Every wait is bounded; ends with "N passed, M failed".
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netns  # noqa: E402
import serverlib  # noqa: E402
from serverlib import check  # noqa: E402

ARGS = None
PORT = 7711  # the echo servers' port in the namespaces (free ports on loopback)
PY = sys.executable
ME = os.path.abspath(__file__)


# ---- helpers run inside the namespaces ---------------------------------------------

def echo_server(host, port):
    """Echoes each connection's bytes back until it closes (runs until killed)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(64)
    print("listening", flush=True)

    def serve(c):
        with c:
            c.settimeout(5)
            try:
                while True:
                    b = c.recv(4096)
                    if not b:
                        return
                    c.sendall(b)
            except OSError:
                return

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def probe(host, port):
    """Exit 0 when host:port echoes a line back within a second, else 1."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.settimeout(1.0)
            s.sendall(b"ping\n")
            return 0 if s.recv(16) == b"ping\n" else 1
    except OSError:
        return 1


def hold(mode):
    """A test process holding a fabric of 2 nodes with a sleeper in node 0:
    prints the namespaces and the sleeper's pid, then waits to be killed."""
    fab = netns.open_fabric(2, mode)
    sleeper = fab.popen(0, ["sleep", "300"])
    names = getattr(fab, "names", []) + ([fab.hub] if hasattr(fab, "hub") else [])
    print(" ".join([str(sleeper.pid), *names]), flush=True)
    time.sleep(120)
    return 0


# ---- the test's side ---------------------------------------------------------------

def reaches(fab, src, dst):
    """True when |src| (a node index, or None for the hub) reaches node |dst|'s
    echo server. Bounded: the probe gives up after about a second."""
    try:
        p = fab.run(src, [PY, ME, "--probe", fab.addr(dst), str(PORT)], timeout=15,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode == 0


def eventually(cond, seconds=10.0):
    """True once cond() holds, polling until |seconds| have passed."""
    deadline = time.monotonic() + seconds
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_echoes(fab):
    """An echo server on every node (on the loopback fabric each on a port
    of its own, in fab.ports); waits (bounded) until each listens."""
    fab.ports = [free_port() if fab.mode == "loopback" else PORT for _ in range(fab.n)]
    for i in range(fab.n):
        p = fab.popen(i, [PY, ME, "--echo", fab.addr(i), str(fab.ports[i])],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        got = [""]
        t = threading.Thread(target=lambda: got.__setitem__(0, p.stdout.readline()), daemon=True)
        t.start()
        t.join(15)
        check(got[0].strip() == "listening", f"echo server on node {i} listens")


def ours():
    """Namespaces of this process that `ip netns list` still shows."""
    prefix = f"{netns.PREFIX}{os.getpid()}"
    return [n for n in netns._ns_list() if n.startswith(prefix)]


def netns_or_skip(what):
    if not netns.available():
        print(f"  SKIP: {what}: network namespaces not available (not root, or no ip)")
        return False
    return True


def test_loopback():
    fab = netns.open_fabric(3, "loopback")
    try:
        check(fab.mode == "loopback" and fab.addr(2) == "127.0.0.1", "loopback addresses")
        start_echoes(fab)
        for i in range(3):
            p = fab.run(0, [PY, ME, "--probe", "127.0.0.1", str(fab.ports[i])], timeout=15)
            check(p.returncode == 0, f"loopback reaches echo {i}")
        for what, fn in (("cut", lambda: fab.cut(1)), ("heal", lambda: fab.heal(1)),
                         ("partition", lambda: fab.partition([[0], [1, 2]])),
                         ("heal_partition", fab.heal_partition)):
            try:
                fn()
                check(False, f"loopback {what} raises NotSupported")
            except netns.NotSupported:
                check(True, "")
        procs = list(fab.procs)
    finally:
        fab.close()
    check(all(p.poll() is not None for p in procs), "loopback close kills its processes")
    fab.close()


def test_reach_all():
    if not netns_or_skip("netns reach"):
        return
    fab = netns.open_fabric(3, "netns")
    try:
        check(len(ours()) == 4, "4 namespaces (3 nodes, the hub)", str(ours()))
        check(fab.addr(0) != fab.addr(1) and fab.addr(1).startswith("10."), "node addresses",
              fab.addr(1))
        start_echoes(fab)
        for s in (None, 0, 1, 2):
            for d in range(3):
                check(reaches(fab, s, d), f"{s} reaches node {d}")
        # Each node's namespace is its own: nothing listens on its loopback
        # at the port another node serves, except its own echo server.
        p = fab.run(0, ["ip", "-o", "addr", "show", "dev", "eth0"], capture_output=True,
                    text=True, timeout=10)
        check(fab.addr(0) in p.stdout and fab.addr(1) not in p.stdout, "node 0 has its own eth0")
    finally:
        fab.close()
    check(ours() == [], "no namespace left after close", str(ours()))


def test_cut_heal():
    if not netns_or_skip("netns cut"):
        return
    fab = netns.open_fabric(3, "netns")
    try:
        start_echoes(fab)
        check(eventually(lambda: reaches(fab, 0, 1)), "before the cut 0 reaches 1")
        fab.cut(1)
        t0 = time.monotonic()
        check(not reaches(fab, 0, 1), "cut: 0 does not reach 1")
        check(not reaches(fab, 1, 0), "cut: 1 does not reach 0")
        check(not reaches(fab, 1, 2), "cut: 1 does not reach 2")
        check(not reaches(fab, None, 1), "cut: the hub does not reach 1")
        check(time.monotonic() - t0 < 30, "failed probes are bounded")
        check(reaches(fab, 0, 2) and reaches(fab, 2, 0), "cut: 0 and 2 still reach each other")
        check(reaches(fab, 1, 1), "cut: 1 still reaches itself")
        fab.heal(1)
        check(eventually(lambda: reaches(fab, 0, 1)), "healed: 0 reaches 1 again")
        check(eventually(lambda: reaches(fab, 1, 2)), "healed: 1 reaches 2 again")
        check(eventually(lambda: reaches(fab, None, 1)), "healed: the hub reaches 1 again")
    finally:
        fab.close()
    check(ours() == [], "no namespace left after close", str(ours()))


def test_partition():
    if not netns_or_skip("netns partition"):
        return
    fab = netns.open_fabric(4, "netns")
    try:
        start_echoes(fab)
        fab.partition([[0, 1], [2, 3]])
        for a, b in ((0, 2), (0, 3), (1, 2), (1, 3)):
            check(not reaches(fab, a, b), f"partition: {a} does not reach {b}")
            check(not reaches(fab, b, a), f"partition: {b} does not reach {a}")
        check(reaches(fab, 0, 1) and reaches(fab, 1, 0), "partition: 0 and 1 together")
        check(reaches(fab, 2, 3) and reaches(fab, 3, 2), "partition: 2 and 3 together")
        check(all(reaches(fab, None, i) for i in range(4)), "partition: the hub reaches all")
        fab.partition([[0], [1, 2, 3]])  # replaces the first
        check(reaches(fab, 1, 2), "a new partition replaces the old: 1 reaches 2")
        check(not reaches(fab, 0, 1) and not reaches(fab, 3, 0), "new partition: 0 alone")
        fab.heal_partition()
        check(all(eventually(lambda a=a, b=b: reaches(fab, a, b))
                  for a in range(4) for b in range(4)), "healed: everyone reaches everyone")
        fab.heal_partition()  # nothing to remove: no error
        try:
            fab.partition([[0, 1], [1]])
            check(False, "a node in two groups is refused")
        except ValueError:
            check(True, "")
    finally:
        fab.close()
        fab.close()
    check(ours() == [], "no namespace left after close", str(ours()))


def held_child(mode):
    """Starts a child holding a fabric; returns (proc, sleeper pid, names)."""
    p = subprocess.Popen([PY, ME, "--hold", mode], stdout=subprocess.PIPE, text=True,
                         stderr=subprocess.PIPE)
    line = [""]

    def read():
        line[0] = p.stdout.readline()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(30)
    parts = line[0].split()
    if not parts:
        p.kill()
        p.wait(10)
        return p, None, []
    return p, int(parts[0]), parts[1:]


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (not reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_sigterm():
    if not netns_or_skip("netns SIGTERM"):
        return
    p, sleeper, names = held_child("netns")
    check(sleeper is not None and len(names) == 3, "the child holds a fabric", str(names))
    check(all(n in netns._ns_list() for n in names), "its namespaces exist")
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    check(rc == 128 + signal.SIGTERM, "the child ends with status 143", str(rc))
    left = [n for n in names if n in netns._ns_list()]
    check(left == [], "SIGTERM leaves no namespace", str(left))
    check(sleeper is not None and eventually(lambda: gone(sleeper), 10),
          "SIGTERM leaves no process in the namespaces")


def test_sigkill_then_sweep():
    if not netns_or_skip("netns sweep"):
        return
    p, sleeper, names = held_child("netns")
    check(sleeper is not None, "the child holds a fabric")
    p.kill()
    p.wait(30)
    check(all(n in netns._ns_list() for n in names), "SIGKILL leaves its namespaces")
    fab = netns.open_fabric(1, "netns")  # sweeps the dead run's namespaces
    fab.close()
    left = [n for n in names if n in netns._ns_list()]
    check(left == [], "the next fabric removes what a dead run left", str(left))
    check(sleeper is not None and eventually(lambda: gone(sleeper), 10),
          "and kills what ran in them")


def test_close_kills_strays():
    if not netns_or_skip("netns strays"):
        return
    fab = netns.open_fabric(1, "netns")
    # A process not started through popen (a grandchild) is killed too.
    sh = fab.popen(0, ["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE,
                   text=True)
    grandchild = int(sh.stdout.readline())
    fab.close()
    check(eventually(lambda: gone(grandchild), 10), "close kills a grandchild in the namespace")
    check(ours() == [], "no namespace left", str(ours()))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--echo":
        echo_server(sys.argv[2], int(sys.argv[3]))
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        sys.exit(probe(sys.argv[2], int(sys.argv[3])))
    if len(sys.argv) == 3 and sys.argv[1] == "--hold":
        sys.exit(hold(sys.argv[2]))
    rc = serverlib.run_main(globals())
    netns._close_all()
    left = ours()
    if left:
        print(f"LEAK: {left}")
        rc = 1
    sys.exit(rc)
