#!/usr/bin/env python3
"""End-to-end tests of nanasqlite-server --config: the real binary started
with a TOML configuration file in a fresh directory, driven by wire_driver.

The file's values take effect (the port of bind_address, IPv6 in brackets,
a connection limit a client runs into, the keep-alive that keeps an idle
connection open past the idle timeout); a flag wins over the file
wherever it is written; a bad file (an unknown key or section, a wrong
type, a value out of range, a file every user may write, a folder, no
file) stops the start with one line naming the file, line and column and
exit status 2, having created nothing; the shipped example file
(docs/nanasqlite-server.example.toml) starts the server as it is.

Every wait is bounded. Ends with "N passed, M failed".
Usage: test_config.py --bin-dir DIR --driver WIRE_DRIVER --example FILE [--tmp DIR] [test...]
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
import test_server as ts  # noqa: E402
from serverlib import Server, check  # noqa: E402
from test_server import ok  # noqa: E402

ARGS = None


def driver(s):
    ts.ARGS = serverlib.ARGS  # the driver reads its path from test_server's arguments
    return ts.Driver(s)


def write(s, name, text, mode=0o644):
    path = os.path.join(s.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def free_udp_port(host="127.0.0.1", family=socket.AF_INET):
    """A UDP port nothing listens on now (bound and released)."""
    with socket.socket(family, socket.SOCK_DGRAM) as u:
        u.bind((host, 0))
        return u.getsockname()[1]


def start_plain(s, *args):
    """Starts nanasqlite-server in |s|'s directory with exactly |args| (no --port 0, unlike
    Server.start) and waits for its ready file, port.txt, which the caller's file names.
    Returns the port, or None if it exited first."""
    ready = os.path.join(s.dir, "port.txt")
    if os.path.exists(ready):
        os.unlink(ready)
    s.log = open(os.path.join(s.dir, "server.log"), "a")
    s.proc = subprocess.Popen([os.path.join(ARGS.bin_dir, "nanasqlite-server"), *args],
                              cwd=s.dir, stdout=s.log, stderr=s.log)
    deadline = time.time() + 20
    while time.time() < deadline and s.proc.poll() is None:
        if os.path.exists(ready):
            text = open(ready).read().strip()
            if text:
                s.port = int(text)
                return s.port
        time.sleep(0.02)
    return None


def run_to_end(s, *args):
    """Runs nanasqlite-server with |args| in |s|'s directory, expecting it to stop at once."""
    return subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), *args], cwd=s.dir,
                          capture_output=True, text=True, timeout=30)


# ---- tests -----------------------------------------------------------------------

def test_values_take_effect():
    """bind_address gives the port; [log] the ready file and level; [network]
    max_connections is the limit a third client runs into."""
    s = Server("cfg-values")
    port = free_udp_port()
    write(s, "server.toml", f"""# a configuration of our own
[network]
bind_address = "127.0.0.1:{port}"
max_connections = 2

[log]
ready_file = "port.txt"   # relative to this file's folder
""")
    got = start_plain(s, "--config", "server.toml")
    check(got == port, "the server listens on bind_address's port", (got, port, s.dir))
    if got is None:
        s.stop()
        return
    d = driver(s)
    check(d.login("a") == "AUTH_OK" and d.login("b") == "AUTH_OK", "two clients log in")
    r = d.connect("c")
    check(not r.get("open") and r.get("close_reason") == "server full",
          "a third is refused: max_connections from the file", r)
    check(ok(d.call("__setitem__", "k", "v", id="a")), "the server serves")
    d.close()
    check(s.stop() == 0, "stops with 0")
    log = s.log_text()
    check("settings from server.toml" in log, "the log names the file", log[-400:])
    check(f"listening on 127.0.0.1 port {port}" in log, "the log names the address", log[-400:])
    # [log] level: at "warn" the information lines are gone.
    open(os.path.join(s.dir, "server.log"), "w").close()
    write(s, "server.toml", '[network]\nbind_address = "127.0.0.1:0"\n'
          '[log]\nready_file = "port.txt"\nlevel = "warn"\n')
    check(start_plain(s, "--config", "server.toml") is not None, "started at level warn")
    check(s.stop() == 0, "stops with 0")
    check("INFO" not in s.log_text(), "no information lines at level warn", s.log_text()[-300:])


def test_ipv6_bind_address():
    """"[::1]:0": an IPv6 address in brackets (skipped where the machine has no ::1)."""
    try:
        free_udp_port("::1", socket.AF_INET6)
    except OSError:
        print("  (no IPv6 loopback here: skipped)")
        return
    s = Server("cfg-ipv6")
    write(s, "server.toml", '[network]\nbind_address = "[::1]:0"\n[log]\nready_file = "port.txt"\n')
    port = start_plain(s, "--config", "server.toml")
    check(port is not None and port > 0, "started on ::1", s.dir)
    # The socket: ::1 is 0...01 in /proc/net/udp6, written as four 32-bit words.
    want = "00000000000000000000000001000000:%04X" % (port or 0)
    with open("/proc/net/udp6") as f:
        bound = [line.split()[1] for line in f.readlines()[1:]]
    check(want in bound, "a UDP socket on [::1]:port", (want, bound[:8]))
    s.stop()
    check(f"listening on ::1 port {port}" in s.log_text(), "listening on ::1")


def test_flags_win_over_the_file():
    """The file says port P (held by another socket here, so using it would fail) and one
    connection; the command line says --port 0 and two, before or after --config."""
    s = Server("cfg-flags")
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    taken = holder.getsockname()[1]
    try:
        write(s, "server.toml", f"""[network]
bind_address = "127.0.0.1:{taken}"
max_connections = 1
[log]
ready_file = "elsewhere.txt"
""")
        # Without the flag the file's port is used: taken, so the start fails.
        p = run_to_end(s, "--config", "server.toml")
        check(p.returncode == 1 and str(taken) in p.stderr, "the file's port is the one tried",
              (p.returncode, p.stderr))
        for order in (["--config", "server.toml", "--port", "0", "--max-connections", "2",
                       "--ready-file", "port.txt"],
                      ["--port=0", "--max-connections=2", "--ready-file=port.txt", "--config",
                       "server.toml"]):
            port = start_plain(s, *order)
            check(port is not None and port != taken, f"--port 0 wins ({order[0]} first)",
                  (port, taken))
            if port is None:
                s.stop()
                continue
            d = driver(s)
            check(d.login("a") == "AUTH_OK" and d.login("b") == "AUTH_OK",
                  "--max-connections 2 wins over the file's 1")
            r = d.connect("c")
            check(not r.get("open"), "a third is refused", r)
            d.close()
            s.stop()
            check(not os.path.exists(os.path.join(s.dir, "elsewhere.txt")),
                  "--ready-file wins over [log] ready_file")
    finally:
        holder.close()


def test_keep_alive():
    """[network] keep_alive_interval_ms: with a 1 s idle timeout, an idle logged-in client is
    still connected 2.5 s later when the server PINGs it, and is not without it."""
    for keep, want_open in ((300, True), (0, False)):
        s = Server(f"cfg-keepalive-{keep}")
        write(s, "server.toml", f"""[network]
idle_timeout_ms = 1000
keep_alive_interval_ms = {keep}
""")
        s.flags = ["--config", "server.toml"]
        s.start()
        d = driver(s)
        check(d.login() == "AUTH_OK", "login")
        time.sleep(2.5)
        closed = d.cmd(op="close").get("closed")
        check(closed is (not want_open),
              f"keep_alive_interval_ms = {keep}: {'still open' if want_open else 'closed'}",
              closed)
        if want_open:
            check(ok(d.call("__len__")), "and serving")
        d.close()
        s.stop()


def test_bad_files():
    """One line naming the file, line and column; exit status 2; nothing created."""
    s = Server("cfg-bad")
    before = sorted(os.listdir(s.dir))
    cases = [
        ("[network]\nmax_conections = 5\n",
         "server.toml: unknown key [network] max_conections at line 2, column 1"),
        ("[netwrok]\n", "server.toml: unknown section [netwrok] at line 1, column 1"),
        ("port = 1\n",
         "server.toml: unknown key port at line 1, column 1: every setting is in a [section]"),
        ("[network]\n\n\nmax_connections = \"2\"\n",
         "server.toml: [network] max_connections at line 4, column 19: expected an integer, "
         "found a string"),
        ("[network]\nmax_connections = 0\n",
         "server.toml: [network] max_connections at line 2, column 19: 0 is out of range "
         "(1..1000000)"),
        ("[network]\nbind_address = \"::1:4433\"\n",
         "server.toml: [network] bind_address at line 2, column 16: \"::1:4433\": an IPv6 "
         "address goes in brackets, as [::1]:4433"),
        ("[storage]\nsynchronous = \"fast\"\n",
         "server.toml: [storage] synchronous at line 2, column 15: \"fast\" is not one of "
         "normal or full"),
        ("[limits]\nrate_limit = 0.5\n",
         "server.toml: [limits] rate_limit at line 2, column 14: 0.5 is out of range "
         "(1..1000000000)"),
        ("[network]\nmax_connections = 1\nmax_connections = 2\n",
         "server.toml: line 3, column 1: max_connections is defined twice (first at line 2)"),
        ("[tls]\ncert_path = \"c.pem\" key_path = \"k.pem\"\n",
         "server.toml: line 2, column 21: expected the end of the line after a value, found "
         "other text"),
        ("[network]\nidle_timeout_ms = 1000\nkeep_alive_interval_ms = 1000\n",
         "--keep-alive-ms 1000 is not shorter than --idle-timeout-ms 1000: the connection "
         "would time out before the PING"),
    ]
    for text, want in cases:
        write(s, "server.toml", text)
        p = run_to_end(s, "--config", "server.toml")
        check(p.returncode == 2 and p.stderr == f"nanasqlite-server: {want}\n" and p.stdout == "",
              f"refused: {want[:60]}", (p.returncode, p.stderr))
    write(s, "server.toml", "[network]\n", mode=0o666)
    p = run_to_end(s, "--config", "server.toml")
    check(p.returncode == 2 and "writable by every user" in p.stderr, "world-writable refused",
          p.stderr)
    os.chmod(os.path.join(s.dir, "server.toml"), 0o644)
    p = run_to_end(s, "--config", "missing.toml")
    check(p.returncode == 2 and p.stderr == "nanasqlite-server: configuration file missing.toml: "
          "No such file or directory\n", "a missing file", p.stderr)
    os.mkdir(os.path.join(s.dir, "folder.toml"))
    p = run_to_end(s, "--config", "folder.toml")
    check(p.returncode == 2 and p.stderr == "nanasqlite-server: configuration file folder.toml: "
          "not a regular file\n", "a folder", p.stderr)
    os.rmdir(os.path.join(s.dir, "folder.toml"))
    # A private key given by mistake: refused, and nothing of it echoed.
    p = run_to_end(s, "--config", "key.pem")
    with open(os.path.join(s.dir, "key.pem")) as f:
        body = [line for line in f.read().split("\n") if line and not line.startswith("-----")]
    check(p.returncode == 2 and "key.pem: line 1, column" in p.stderr and
          not any(b[:12] in p.stderr for b in body), "a key file is not echoed", p.stderr)
    # A bad flag is reported as before, even with a file.
    p = run_to_end(s, "--config", "server.toml", "--port", "x")
    check(p.returncode == 2 and p.stderr == 'nanasqlite-server: --port: "x" is not a number '
          '(0..65535)\n', "a bad flag with a file", p.stderr)
    os.unlink(os.path.join(s.dir, "server.toml"))
    check(sorted(os.listdir(s.dir)) == before, "nothing created by a refused start",
          sorted(os.listdir(s.dir)))


def test_example_file():
    """The shipped example, copied as it is next to the server's keys, starts the server."""
    s = Server("cfg-example")
    shutil.copy(ARGS.example, os.path.join(s.dir, "nanasqlite-server.toml"))
    os.chmod(os.path.join(s.dir, "nanasqlite-server.toml"), 0o644)
    s.flags = ["--config", "nanasqlite-server.toml"]
    s.start()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login with the example's settings")
    check(ok(d.call("__setitem__", "k", 1)) and ts.result(d.call("__getitem__", "k")) == 1,
          "served")
    d.close()
    check(s.stop() == 0, "stops with 0")
    check(os.path.exists(os.path.join(s.dir, "server_db.sqlite")),
          "the example's database, next to the file")
    check("settings from nanasqlite-server.toml" in s.log_text(), "the log names the file")


def add_args(ap):
    ap.add_argument("--example", required=True)


def main():
    return serverlib.run_main(globals(), driver=True, extra_args=add_args)


if __name__ == "__main__":
    sys.exit(main())
