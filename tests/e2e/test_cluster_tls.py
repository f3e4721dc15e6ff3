#!/usr/bin/env python3
"""A cluster whose traffic is mutual TLS, end to end, on loopback: three
real nanasqlite-server processes with --cluster-cert, --cluster-key and
--cluster-ca (node certificates of one CA, made by nanasqlite-cert-gen
--node).

  - the three form a cluster; a write through a follower reads back
    through another node;
  - `nanasqlite-cli cluster list` works with a node certificate (--cert,
    --cert-key, --ca) and fails without one;
  - a plain TCP connection to a cluster port that sends dqlite's handshake
    word and a LEADER request gets no answer and is closed;
  - a partial set of the three flags is refused (exit 2), a key others may
    read too (exit 1); a cluster without them warns at start.

Every wait is bounded; every process is stopped at the end.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import Server, check, run_main  # noqa: E402

ARGS = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tool(name):
    return os.path.join(ARGS.bin_dir, name)


def tls_dir():
    return os.path.join(ARGS.tmp, f"e2e-cltls-certs-{os.getpid()}")


def make_certs():
    """One CA (made with node 1's certificate) and a node certificate each."""
    d = tls_dir()
    subprocess.run(["rm", "-rf", d], check=True)
    os.makedirs(d)
    for i in (1, 2, 3):
        out = os.path.join(d, f"n{i}")
        os.makedirs(out)
        ca = [] if i == 1 else ["--ca", os.path.join(d, "n1", "ca.pem"),
                                "--ca-key", os.path.join(d, "n1", "ca-key.pem")]
        subprocess.run([tool("nanasqlite-cert-gen"), "--node", "--out-dir", out, *ca],
                       check=True, stdout=subprocess.DEVNULL, timeout=60)
    return True


def tls_flags(i):
    d = os.path.join(tls_dir(), f"n{i}")
    return ["--cluster-cert", os.path.join(d, "cert.pem"),
            "--cluster-key", os.path.join(d, "key.pem"),
            "--cluster-ca", os.path.join(tls_dir(), "n1", "ca.pem")]


def cli_tls(i):
    d = os.path.join(tls_dir(), f"n{i}")
    return ["--cert", os.path.join(d, "cert.pem"), "--cert-key", os.path.join(d, "key.pem"),
            "--ca", os.path.join(tls_dir(), "n1", "ca.pem")]


class Node:
    def __init__(self, name, nid, join=(), owner=None, tls=True):
        self.nid = nid
        self.addr = f"127.0.0.1:{free_port()}"
        flags = ["--cluster-id", str(nid), "--cluster-bind", self.addr, "--no-bans"]
        if tls:
            flags += tls_flags(nid)
        if join:
            flags += ["--join", ",".join(join)]
        self.srv = Server(f"cltls-{name}", flags)
        if owner is not None:
            self.srv.flags += ["--public-key", os.path.join(owner.srv.dir, "nana_public.pub")]
        self.keydir = owner.srv.dir if owner is not None else self.srv.dir

    def start(self):
        self.srv.start()
        return self

    def cli(self, *args, timeout=60):
        cmd = [tool("nanasqlite-cli"), "--port", str(self.srv.port),
               "--ca", os.path.join(self.srv.dir, "cert.pem"),
               "--key", os.path.join(self.keydir, "nana_private.pem"), "--json-compact"]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)


def cluster_cli(*args, timeout=60):
    return subprocess.run([tool("nanasqlite-cli"), "cluster", *args], capture_output=True,
                          text=True, timeout=timeout)


def wait_voters(at, n, seconds=30):
    end = time.time() + seconds
    m = None
    while time.time() < end:
        p = cluster_cli("list", "--json", "--at", at, *cli_tls(1))
        m = json.loads(p.stdout) if p.returncode == 0 else None
        if m and sum(1 for x in m if x["role"] == "voter") == n and any(x["leader"] for x in m):
            return m
        time.sleep(0.2)
    return m


def plaintext_probe(addr, seconds=10):
    """Sends dqlite's handshake word and a LEADER request in the clear;
    returns (closed, bytes received) within |seconds|."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(struct.pack("<Q", 1) + struct.pack("<IBBH", 1, 0, 0, 0) + struct.pack("<Q", 0))
    got = b""
    end = time.time() + seconds
    closed = False
    while time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            b = s.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        got += b
    s.close()
    return closed, got


def test_tls_cluster():
    n1 = Node("1", 1).start()
    nodes = [n1]
    try:
        n2 = Node("2", 2, join=[n1.addr], owner=n1).start()
        nodes.append(n2)
        n3 = Node("3", 3, join=[n1.addr], owner=n1).start()
        nodes.append(n3)
        m = wait_voters(n1.addr, 3)
        check(m is not None and len(m) == 3, "three nodes over TLS form a cluster of three", m)
        for n in nodes:
            check("mutual TLS" in n.srv.log_text(), f"node {n.nid} says its cluster uses TLS")
        lead = [x["id"] for x in m or [] if x["leader"]]
        follower = next((n for n in nodes if [n.nid] != lead), n2)
        other = next(n for n in nodes if n is not follower)
        r = follower.cli("set", "greeting", '"hello"')
        check(r.returncode == 0, "a write through a follower", r.stderr)
        r = other.cli("get", "greeting")
        check(r.returncode == 0 and r.stdout.strip() == '"hello"', "read back on another node",
              (r.stdout, r.stderr))
        # The cluster command: with a node certificate, and without one.
        p = cluster_cli("list", "--at", n2.addr, *cli_tls(2))
        lines = p.stdout.strip().splitlines()
        check(p.returncode == 0 and len(lines) == 3, "cluster list with --cert/--cert-key/--ca",
              (p.returncode, p.stdout, p.stderr))
        p = cluster_cli("list", "--at", n2.addr)
        check(p.returncode == 3 and "ConnectionError" in p.stderr,
              "cluster list without a certificate fails", (p.returncode, p.stderr))
        p = cluster_cli("list", "--at", n2.addr, "--cert", cli_tls(2)[1])
        check(p.returncode == 2 and "go together" in p.stderr, "cluster list: partial TLS flags",
              (p.returncode, p.stderr))
        # Plaintext dqlite to a cluster port: no answer, closed.
        for n in nodes:
            closed, got = plaintext_probe(n.addr)
            check(closed, f"node {n.nid}: a plaintext peer is disconnected")
            check(not got or got[0] == 21, f"node {n.nid}: it gets no dqlite answer "
                  "(at most a TLS alert)", got[:16])
        # The cluster still serves.
        r = n3.cli("get", "greeting")
        check(r.returncode == 0 and r.stdout.strip() == '"hello"', "still serving", r.stderr)
    finally:
        for n in reversed(nodes):
            n.srv.stop()


def test_tls_flags():
    srv = Server("cltls-flags", [])
    base = ["--cluster-id", "1", "--cluster-bind", f"127.0.0.1:{free_port()}"]
    full = tls_flags(1)
    for drop in (0, 2, 4):
        flags = full[:drop] + full[drop + 2:]
        p = subprocess.run([tool("nanasqlite-server"), *base, *flags], cwd=srv.dir,
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 2 and "needs all three" in p.stderr and full[drop] in p.stderr,
              f"refused without {full[drop]}", (p.returncode, p.stderr[-300:]))
    # A key others may read.
    key = os.path.join(tls_dir(), "n1", "key.pem")
    os.chmod(key, 0o644)
    try:
        p = subprocess.run([tool("nanasqlite-server"), "--port", "0", *base, *full], cwd=srv.dir,
                           capture_output=True, text=True, timeout=30)
    finally:
        os.chmod(key, 0o600)
    check(p.returncode == 1 and "chmod 600" in p.stderr, "a key others may read is refused",
          (p.returncode, p.stderr[-300:]))
    # Without TLS: a warning at start.
    n = Node("plain", 1, tls=False).start()
    try:
        check("neither encrypted nor authenticated" in n.srv.log_text(),
              "a plaintext cluster warns at start")
    finally:
        n.srv.stop()


if __name__ == "__main__":
    sys.exit(run_main(globals(), setup=make_certs))
