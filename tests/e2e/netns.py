"""A small network for tests of several server processes: each node in its
own network namespace, all joined by a bridge, so a test can cut a node off
or split the nodes into groups that cannot reach each other.

    fab = open_fabric(3)          # netns when we can (root and iproute2), else loopback
    p = fab.popen(0, [server, "--host", fab.addr(0), ...])
    fab.cut(1); fab.heal(1)       # node 1's cable pulled and put back
    fab.partition([[0], [1, 2]]); fab.heal_partition()
    fab.close()                   # also at exit, and on SIGTERM

NetnsFabric builds, with `ip` only:
  - a hub namespace nana<pid>h holding a bridge br0 (no STP, no forwarding
    delay) with the address 10.X.Y.254/24, where clients run (popen_client)
    that must reach every node;
  - node namespaces nana<pid>n<i>, each with lo up and eth0, one end of a
    veth pair whose other end h<i> is a port of the bridge, addressed
    10.X.Y.<i+1>/24. X.Y come from the pid, so runs side by side differ.
cut(i) takes the bridge's end of node i's pair down (the node's eth0 loses
its carrier; what crosses is dropped, as with a pulled cable); partition()
adds blackhole routes (/32) in each node's namespace for every address on
the other side, both ways. close() kills every process in the namespaces
(those popen started and any other found there), then deletes them; it runs
at exit and on SIGTERM, and may be called twice. Namespaces left behind by a
run that was killed outright (their pid no longer alive) are removed when
the next fabric opens.

LoopbackFabric has the same face on 127.0.0.1 with no namespaces: popen runs
directly, cut and partition raise NotSupported (the test prints a SKIP line).
Every `ip` call and every wait here is bounded.
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import time

IP_TIMEOUT = 10  # seconds for any one `ip` command
PREFIX = "nana"
_OPEN = []  # fabrics not closed yet, for atexit and SIGTERM
_HANDLER_SET = False


class NotSupported(Exception):
    """The fabric cannot do this (the loopback fabric has no links to cut)."""


def _ip(*args, check=True):
    """Runs `ip ARGS`; returns the CompletedProcess. Raises RuntimeError with
    ip's message when |check| and it fails."""
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


def _ns_list():
    """The names of the network namespaces `ip netns list` shows."""
    p = _ip("netns", "list", check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_ns_pids(ns):
    """SIGKILLs every process in namespace |ns| and waits (bounded) until
    none is left. Returns how many were still there at the end."""
    left = 0
    for _ in range(50):
        p = _ip("netns", "pids", ns, check=False)
        pids = [int(x) for x in p.stdout.split() if x.isdigit() and int(x) != os.getpid()]
        left = len(pids)
        if not pids:
            return 0
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    return left


def remove_stale():
    """Deletes namespaces of ours (nana<pid>h, nana<pid>n<i>) whose pid is no
    longer alive: what a run killed with SIGKILL left behind."""
    for ns in _ns_list():
        m = re.fullmatch(PREFIX + r"(\d+)(h|n\d+|probe)", ns)
        if m and not _pid_alive(int(m.group(1))):
            _kill_ns_pids(ns)
            _ip("netns", "del", ns, check=False)


def available():
    """True when network namespaces can be made here: we are root, `ip`
    exists, and a namespace can really be created and deleted."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    name = f"{PREFIX}{os.getpid()}probe"
    try:
        if _ip("netns", "add", name, check=False).returncode != 0:
            return False
        return _ip("netns", "del", name, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _close_all():
    for fab in list(_OPEN):
        fab.close()


def _on_sigterm(signum, _frame):
    """SIGTERM: everything we built goes, then the process ends as killed by
    the signal would (status 128 + 15) through SystemExit, so the test's
    own finally blocks run too."""
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM does not cut the cleanup short
    _close_all()
    raise SystemExit(128 + signum)


def _register(fab):
    global _HANDLER_SET
    _OPEN.append(fab)
    if not _HANDLER_SET:
        atexit.register(_close_all)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
        _HANDLER_SET = True


class _Base:
    """What both fabrics share: the processes started, killed at close()."""

    def __init__(self, n):
        if n < 1 or n > 250:
            raise ValueError("a fabric has 1 to 250 nodes")
        self.n = n
        self.procs = []
        self.closed = False

    def _track(self, p):
        self.procs = [q for q in self.procs if q.poll() is None]
        self.procs.append(p)
        return p

    def _kill_procs(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []

    def _node(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"node {i} of {self.n}")
        return i

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


class LoopbackFabric(_Base):
    """Every node is 127.0.0.1 in the test's own namespace."""

    mode = "loopback"

    def __init__(self, n):
        super().__init__(n)
        _register(self)

    def addr(self, i):
        self._node(i)
        return "127.0.0.1"

    def client_addr(self):
        return "127.0.0.1"

    def popen(self, i, argv, **kw):
        """Starts argv for node i (here: directly); killed at close()."""
        self._node(i)
        return self._track(subprocess.Popen(argv, **kw))

    def popen_client(self, argv, **kw):
        """Starts argv where every node is reachable (here: directly)."""
        return self._track(subprocess.Popen(argv, **kw))

    def run(self, i, argv, **kw):
        """subprocess.run of argv for node i (None: the client's place)."""
        if i is not None:
            self._node(i)
        return subprocess.run(argv, **kw)

    def cut(self, i):
        raise NotSupported("the loopback fabric cannot cut a node off")

    def heal(self, i):
        raise NotSupported("the loopback fabric cannot cut a node off")

    def partition(self, groups):
        raise NotSupported("the loopback fabric cannot partition")

    def heal_partition(self):
        raise NotSupported("the loopback fabric cannot partition")

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._kill_procs()
        if self in _OPEN:
            _OPEN.remove(self)


class NetnsFabric(_Base):
    """N node namespaces on a bridge in a hub namespace (see the top)."""

    mode = "netns"

    def __init__(self, n):
        super().__init__(n)
        pid = os.getpid()
        self.hub = f"{PREFIX}{pid}h"
        self.names = [f"{PREFIX}{pid}n{i}" for i in range(n)]
        # 10.X.Y.0/24 from the pid (X in 16..239, clear of 10.0/16 and of
        # the top's common uses; Y the pid's low byte).
        self.net = f"10.{16 + (pid >> 8) % 224}.{pid % 256}"
        self.blackholes = []  # (namespace, address) routes partition() added
        self.made = []  # namespaces created, deleted at close()
        remove_stale()
        _register(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _add_ns(self, name):
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _build(self):
        self._add_ns(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge", "stp_state", "0",
            "forward_delay", "0")
        _ip("-n", self.hub, "addr", "add", f"{self.client_addr()}/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i, name in enumerate(self.names):
            self._add_ns(name)
            _ip("-n", self.hub, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0",
                "netns", name)
            _ip("-n", self.hub, "link", "set", f"h{i}", "master", "br0")
            _ip("-n", self.hub, "link", "set", f"h{i}", "up")
            _ip("-n", name, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")

    def addr(self, i):
        """Node i's address (10.X.Y.i+1)."""
        return f"{self.net}.{self._node(i) + 1}"

    def client_addr(self):
        """The hub's address, where popen_client's processes live."""
        return f"{self.net}.254"

    def popen(self, i, argv, **kw):
        """Starts argv inside node i's namespace (`ip netns exec`, which
        execs argv: the Popen's pid is argv's); killed at close()."""
        return self._track(subprocess.Popen(
            ["ip", "netns", "exec", self.names[self._node(i)], *argv], **kw))

    def popen_client(self, argv, **kw):
        """Starts argv in the hub namespace, which reaches every node that
        is not cut off (partitions are between nodes only)."""
        return self._track(subprocess.Popen(["ip", "netns", "exec", self.hub, *argv], **kw))

    def run(self, i, argv, **kw):
        """subprocess.run of argv inside node i's namespace (None: the hub)."""
        ns = self.hub if i is None else self.names[self._node(i)]
        return subprocess.run(["ip", "netns", "exec", ns, *argv], **kw)

    def cut(self, i):
        """Node i's cable out: the bridge's end of its veth goes down, so
        nothing reaches it or leaves it (its eth0 loses carrier)."""
        _ip("-n", self.hub, "link", "set", f"h{self._node(i)}", "down")

    def heal(self, i):
        """Node i's cable back in (both ends up)."""
        _ip("-n", self.hub, "link", "set", f"h{self._node(i)}", "up")
        _ip("-n", self.names[self._node(i)], "link", "set", "eth0", "up")

    def partition(self, groups):
        """Splits the nodes: no node of one group reaches a node of another
        (blackhole routes on both sides). |groups| is a list of lists of node
        indices; a node in no group is a group alone. Replaces a partition
        already in place."""
        self.heal_partition()
        group_of = {}
        for g, members in enumerate(groups):
            for i in members:
                if self._node(i) in group_of:
                    raise ValueError(f"node {i} in two groups")
                group_of[i] = g
        for i in range(self.n):
            group_of.setdefault(i, f"alone{i}")
        for i in range(self.n):
            for j in range(self.n):
                if group_of[i] != group_of[j]:
                    _ip("-n", self.names[i], "route", "add", "blackhole", f"{self.addr(j)}/32")
                    self.blackholes.append((self.names[i], self.addr(j)))

    def heal_partition(self):
        """Removes every blackhole route partition() added."""
        for ns, a in self.blackholes:
            _ip("-n", ns, "route", "del", "blackhole", f"{a}/32", check=False)
        self.blackholes = []

    def close(self):
        """Kills every process in our namespaces and deletes them. Safe to
        call twice; never raises for what is already gone."""
        if self.closed:
            return
        self.closed = True
        try:
            self._kill_procs()
            for ns in self.made:
                _kill_ns_pids(ns)
            for ns in reversed(self.made):
                _ip("netns", "del", ns, check=False)
            self.made = []
        finally:
            if self in _OPEN:
                _OPEN.remove(self)


def open_fabric(n, want=None):
    """A fabric of n nodes: |want| "netns" or "loopback"; by default the
    environment's NANA_FABRIC, else netns when available(), else loopback."""
    want = want or os.environ.get("NANA_FABRIC") or ("netns" if available() else "loopback")
    if want == "netns":
        return NetnsFabric(n)
    if want == "loopback":
        return LoopbackFabric(n)
    raise ValueError(f"unknown fabric {want!r}")


def skip(what, exc):
    """Prints the SKIP line a test prints when its fabric cannot do |what|."""
    print(f"  SKIP: {what}: {exc}", flush=True)


if __name__ == "__main__":
    # `python3 netns.py clean`: removes namespaces left by dead runs.
    if sys.argv[1:] == ["clean"]:
        remove_stale()
