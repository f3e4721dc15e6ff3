#!/usr/bin/env python3
"""End-to-end tests of nanasqlite-cli: the real binary against a real
nanasqlite-server on a loopback port, run the way a user runs it.

One-shot commands (results on stdout, errors on stderr, exit statuses 0/1/2/3),
the connection flags and their environment variables, the interactive shell
under a pseudo-terminal (line editing, Tab completion, use/table, errors that
do not end it, history) and the shell scripted through a pipe.

Each test starts its own server in a fresh directory. Every wait is bounded.
Ends with "N passed, M failed"; exit status 1 if anything failed.
Usage: test_cli.py --bin-dir DIR [--tmp DIR] [test_name...]
"""
import json
import os
import pty
import re
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None
TIMEOUT = 60  # seconds for any one CLI run


def clean_env(**extra):
    """The environment for a CLI run: no inherited NANASQLITE_* settings, and
    a HOME of our own so a shell never writes the real user's history."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANASQLITE_")}
    home = os.path.join(ARGS.tmp, f"cli-home-{os.getpid()}")
    os.makedirs(home, exist_ok=True)
    env["HOME"] = home
    env.update(extra)
    return env


def cli_path():
    return os.path.join(ARGS.bin_dir, "nanasqlite-cli")


def run(args, cwd, env=None, input=None, timeout=TIMEOUT):
    """Runs the CLI to completion; returns (exit status, stdout, stderr, seconds)."""
    t0 = time.time()
    try:
        p = subprocess.run([cli_path(), *args], cwd=cwd, env=env or clean_env(), input=input,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", "timed out", time.time() - t0
    return p.returncode, p.stdout, p.stderr, time.time() - t0


class Cli:
    """One-shot runs against one server, from its directory (where cert.pem
    and nana_private.pem are the defaults)."""

    def __init__(self, server):
        self.s = server

    def __call__(self, *args, env=None, port=True):
        flags = ["--port", str(self.s.port)] if port else []
        return run([*flags, *args], self.s.dir, env)

    def ok(self, what, *args, want=None, **kw):
        """Runs a command expected to succeed; checks one JSON line on stdout,
        nothing on stderr, and (if given) the decoded result. Returns it."""
        rc, out, err, _ = self(*args, **kw)
        lines = out.split("\n")
        good = rc == 0 and len(lines) == 2 and lines[1] == "" and err == ""
        val = None
        if good:
            try:
                val = json.loads(lines[0])
            except ValueError:
                good = False
        if good and want is not None:
            good = val == want
        check(good, what, f"rc={rc} out={out!r} err={err!r}")
        return val

    def err(self, what, *args, rc=1, etype=None, contains=None, **kw):
        """Runs a command expected to fail with exit status |rc| and one
        "error: TYPE: message" line on stderr, nothing on stdout."""
        got, out, err, secs = self(*args, **kw)
        lines = err.rstrip("\n").split("\n")
        good = (got == rc and out == "" and len(lines) == 1 and lines[0].startswith("error: "))
        if etype:
            good = good and lines[0].startswith(f"error: {etype}: ")
        if contains:
            good = good and contains in err
        check(good, what, f"rc={got} out={out!r} err={err!r}")
        return err, secs


def free_udp_port():
    """A loopback UDP port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- one-shot commands ------------------------------------------------------------

def test_one_shot():
    s = Server("cli-oneshot").start()
    c = Cli(s)
    value = {"a": [1, 2.5, None, True], "b": "あ", "c": {"d": "x, y: z"}}
    c.ok("set", "set", "k", json.dumps(value), want=None)
    c.ok("get", "get", "k", want=value)
    rc, out, _, _ = c("get", "k")
    check(out == '{"a": [1, 2.5, null, true], "b": "あ", "c": {"d": "x, y: z"}}\n',
          "default output: one line, spaces after , and :", repr(out))
    rc, out, _, _ = c("--json-compact", "get", "k")
    check(out == '{"a":[1,2.5,null,true],"b":"あ","c":{"d":"x, y: z"}}\n',
          "--json-compact output (strings untouched)", repr(out))
    c.ok("has present", "has", "k", want=True)
    c.ok("has absent", "has", "zz", want=False)
    c.ok("len", "len", want=1)
    c.ok("keys", "keys", want=["k"])
    c.ok("del", "del", "k", want=None)
    c.err("get after del: KeyError, exit 1", "get", "k", rc=1, etype="KeyError", contains="'k'")
    c.err("del missing: KeyError", "del", "k", rc=1, etype="KeyError")
    # Keys: a bare word is the key; a word in double quotes is a JSON string.
    c.ok("set a key with a space", "set", "a b", '"v1"')
    c.ok("quoted key is the same key", "get", '"a b"', want="v1")
    c.ok("quoted key with an escape", "set", '"tab\\there"', "2")
    c.ok("escaped key read back bare", "get", "tab\there", want=2)
    c.ok("unicode key", "set", "キー", '"値"')
    c.ok("unicode key read", "get", "キー", want="値")
    c.ok("a key starting with a dash after the command", "set", "-x", "-1.5e3")
    c.ok("dash key read", "get", "-x", want=-1500.0)
    # call METHOD [ARGS [KWARGS]]
    c.ok("call batch_update", "call", "batch_update", '[{"b1": 1, "b2": [2], "b3": {"x": 3}}]')
    c.ok("call batch_get", "call", "batch_get", '[["b1", "b2", "nope"]]',
         want={"b1": 1, "b2": [2]})
    c.ok("call with kwargs", "call", "increment", '["n"]', '{"amount": 5}', want=5)
    c.ok("call with no args", "call", "__len__", want=8)
    c.ok("call get default", "call", "get", '["zz", 7]', want=7)
    c.err("call of an admin method: PermissionError", "call", "vacuum", rc=1,
          etype="PermissionError")
    c.err("call of a local-only method refused", "call", "execute", '["SELECT 1"]', rc=1)
    c.err("call with a wrong argument type: server error", "call", "increment", '["k", "x"]',
          rc=1)
    # --table and --db
    c.ok("--table set", "--table", "t2", "set", "x", "1")
    c.ok("--table keys", "--table", "t2", "keys", want=["x"])
    c.ok("--table=NAME form", "--table=t2", "get", "x", want=1)
    c.err("other table untouched", "get", "x", rc=1, etype="KeyError")
    c.ok("--db set", "--db", "other.db", "set", "y", '"in other"')
    c.ok("--db get", "--db", "other.db", "get", "y", want="in other")
    c.ok("--db and --table", "--db", "other.db", "--table", "t3", "set", "z", "3")
    c.ok("--db and --table read", "--db=other.db", "--table", "t3", "keys", want=["z"])
    c.err("default db untouched", "get", "y", rc=1, etype="KeyError")
    check(os.path.exists(os.path.join(s.dir, "other.db")), "other.db created beside the default")
    # Local commands and flags.
    c.ok("methods lists network methods", "methods")
    rc, out, _, _ = c("methods")
    names = json.loads(out) if rc == 0 else []
    check("batch_update" in names and "__getitem__" in names and "execute" not in names
          and "begin_transaction" not in names, "methods skips local-only names", names[:5])
    rc, out, err, _ = run(["--help"], s.dir)
    check(rc == 0 and err == "" and all(w in out for w in (
        "get KEY", "set KEY JSON", "del KEY", "has KEY", "keys", "len", "call METHOD",
        "--host", "--port", "--ca", "--key", "--account", "--cert", "--cert-key",
        "--server-name", "--timeout-ms", "--db", "--table", "--json-compact",
        "NANASQLITE_HOST", "NANASQLITE_PORT", "NANASQLITE_CA", "NANASQLITE_KEY",
        "NANASQLITE_ACCOUNT", "NANASQLITE_CERT", "NANASQLITE_SERVER_NAME",
        "NANASQLITE_CLI_HISTORY", "exit status")), "--help lists commands, flags, env", out)
    rc, out, _, _ = run(["--version"], s.dir)
    check(rc == 0 and re.match(r"^nanasqlite-cli \d+\.\d+\.\d+", out), "--version", out)
    check(s.stop() == 0, "server stops cleanly")


def test_grpc():
    """--grpc: the same commands through the gRPC door (typed Get, Set and
    Delete, Call for the rest), health, what one door writes the other
    reads, and the errors: a missing key, an unknown health service, a
    refused login (exit 3), health without --grpc (exit 2), a server
    without the gRPC door (exit 3)."""
    s = Server("cli-grpc").start()
    c = Cli(s)
    value = {"a": [1, 2.5, None, True], "b": "あ"}
    c.ok("grpc health", "--grpc", "health", want="SERVING")
    c.ok("grpc health of the service", "--grpc", "health", "nanasqlite.v1.NanaSQLite",
         want="SERVING")
    c.err("grpc health of an unknown service", "--grpc", "health", "nope", rc=1,
          etype="NOT_FOUND")
    c.ok("grpc set", "--grpc", "set", "a key", json.dumps(value), want=None)
    c.ok("grpc get (quoted key)", "--grpc", "get", '"a key"', want=value)
    c.ok("the NanaSQLite door reads it", "get", "a key", want=value)
    c.ok("the gRPC door reads a NanaSQLite write", "--grpc", "get", "a key", want=value)
    c.ok("set through the NanaSQLite door", "set", "n", "7")
    c.ok("grpc get of it", "--grpc", "get", "n", want=7)
    c.ok("grpc call", "--grpc", "call", "__len__", want=2)
    c.ok("grpc call with args and kwargs", "--grpc", "call", "get", '["zz"]', '{"default": 3}',
         want=3)
    c.ok("grpc has (a Call)", "--grpc", "has", "n", want=True)
    c.ok("grpc del", "--grpc", "del", "n", want=True)
    c.ok("grpc del of a missing key", "--grpc", "del", "n", want=False)
    c.err("grpc get of a missing key: exit 1", "--grpc", "get", "n", rc=1, etype="KeyError")
    c.err("grpc call raising: exit 1", "--grpc", "call", "__getitem__", '["n"]', rc=1,
          etype="KeyError", contains="'n'")
    c.ok("grpc --db", "--grpc", "--db", "other.db", "set", "k", "1")
    c.ok("grpc --db len", "--grpc", "--db", "other.db", "len", want=1)
    c.err("grpc bad JSON: exit 2", "--grpc", "set", "k", "{bad", rc=2, etype="ValueError")
    c.err("health needs --grpc", "health", rc=2, etype="UsageError")
    s.run_tool("nanasqlite-key-gen", "--prefix", "stranger")
    c.err("grpc wrong key: exit 3", "--grpc", "--key", "stranger_private.pem", "get", "k", rc=3,
          etype="AuthenticationError", contains="refused the login")
    # Piped shell: the same session speaks gRPC throughout.
    r = subprocess.run([cli_path(), "--port", str(s.port), "--grpc"], cwd=s.dir,
                       env=clean_env(), input="set k 5\nget k\nhealth\ndel k\n",
                       capture_output=True, text=True, timeout=TIMEOUT)
    check(r.returncode == 0 and r.stdout.split("\n")[:4] == ["null", "5", '"SERVING"', "true"],
          "grpc shell through a pipe", (r.returncode, r.stdout, r.stderr))
    check(s.alive(), "server still up")
    s.stop()
    s = Server("cli-nogrpc", flags=["--no-grpc"]).start()
    c = Cli(s)
    c.err("a server without the gRPC door: exit 3", "--grpc", "--timeout-ms", "3000", "health",
          rc=3)
    c.ok("its NanaSQLite door still answers", "len", want=0)
    s.stop()


def test_transport():
    """--transport h2: the same commands as gRPC over HTTP/2 on TCP (the
    server's port number), with the same results as over QUIC; the
    environment variable; a bad word (exit 2); a server without its TCP
    door refuses h2 (exit 3) while auto still connects over QUIC."""
    s = Server("cli-h2").start()
    c = Cli(s)
    h2 = ["--transport", "h2"]
    value = {"a": [1, 2.5, None], "b": "あ"}
    c.ok("h2 set", *h2, "set", "k", json.dumps(value), want=None)
    c.ok("h2 get", *h2, "get", "k", want=value)
    c.ok("quic reads what h2 wrote", "--transport", "quic", "get", "k", want=value)
    c.ok("h2 call", *h2, "call", "__len__", want=1)
    c.ok("h2 call with kwargs", *h2, "call", "get", '["zz"]', '{"default": 3}', want=3)
    c.ok("h2 del (as over QUIC)", *h2, "del", "k", want=None)
    c.err("h2 get of a missing key: exit 1", *h2, "get", "k", rc=1, etype="KeyError",
          contains="'k'")
    c.ok("h2 grpc health", "--grpc", *h2, "health", want="SERVING")
    c.ok("h2 grpc set", "--grpc", *h2, "set", "n", "7", want=None)
    c.ok("h2 grpc del", "--grpc", *h2, "del", "n", want=True)
    c.ok("h2 grpc del of a missing key", "--grpc", *h2, "del", "n", want=False)
    c.ok("NANASQLITE_TRANSPORT=h2", "len", want=0, env=clean_env(NANASQLITE_TRANSPORT="h2"))
    c.err("a bad transport: exit 2", "--transport", "udp", "len", rc=2, etype="UsageError")
    s.run_tool("nanasqlite-key-gen", "--prefix", "stranger")
    c.err("h2 wrong key: exit 3", *h2, "--key", "stranger_private.pem", "len", rc=3,
          etype="AuthenticationError")
    check(s.alive(), "server still up")
    s.stop()
    s = Server("cli-no-tcp", flags=["--no-grpc-tcp"]).start()
    c = Cli(s)
    _, secs = c.err("h2 to a server without its TCP door: exit 3", *h2, "--timeout-ms", "3000",
                    "len", rc=3, etype="NanaSQLiteConnectionError")
    check(secs < 20, "refused in bounded time", f"{secs:.1f}s")
    c.ok("auto connects over QUIC", "len", want=0)
    s.stop()


def test_usage_errors():
    """Exit 2 for anything wrong on the command line, found before connecting:
    the port named has no server, so reaching the network would give 3."""
    tmp = os.path.join(ARGS.tmp, f"cli-usage-{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    dead = str(free_udp_port())

    def usage_err(what, *args, etype=None, contains=None, env=None):
        rc, out, err, secs = run(["--port", dead, "--timeout-ms", "20000", *args], tmp, env)
        lines = err.rstrip("\n").split("\n")
        good = rc == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: ")
        if etype:
            good = good and lines[0].startswith(f"error: {etype}: ")
        if contains:
            good = good and contains in err
        check(good, what, f"rc={rc} out={out!r} err={err!r}")
        check(secs < 10, f"{what}: no connection attempted", f"{secs:.1f}s")

    usage_err("set with invalid JSON", "set", "k", "{bad", etype="ValueError", contains="JSON")
    usage_err("set with trailing garbage", "set", "k", "[1] 2", etype="ValueError")
    usage_err("set with a bare word", "set", "k", "hello", etype="ValueError")
    usage_err("call ARGS not an array", "call", "get", '{"a": 1}', etype="ValueError",
              contains="array")
    usage_err("call ARGS invalid", "call", "get", "[1,", etype="ValueError")
    usage_err("call KWARGS not an object", "call", "get", "[1]", "[2]", etype="ValueError",
              contains="object")
    usage_err("bad quoted key", "get", '"unterminated', etype="ValueError")
    usage_err("key not UTF-8", "get", "\udcff", etype="ValueError")
    usage_err("unknown command", "frobnicate", etype="UsageError", contains="frobnicate")
    usage_err("missing argument", "get", etype="UsageError")
    usage_err("extra argument", "get", "a", "b", etype="UsageError")
    usage_err("shell-only command one-shot", "use", "x.db", etype="UsageError")
    usage_err("unknown flag", "--bogus", "keys", etype="UsageError", contains="--bogus")
    usage_err("--db without a value", "--db", etype="UsageError")
    for bad in ("44x", "70000", "0", "-1", " 1", "1 ", ""):
        rc, out, err, _ = run(["--port", bad, "keys"], tmp)
        check(rc == 2 and out == "" and "--port" in err, f"--port {bad!r} refused", err)
    rc, _, err, _ = run(["--timeout-ms", "soon", "keys"], tmp)
    check(rc == 2 and "--timeout-ms" in err, "--timeout-ms not a number", err)
    rc, _, err, _ = run(["--port"], tmp)
    check(rc == 2 and "needs a value" in err, "--port without a value", err)
    rc, _, err, _ = run(["keys"], tmp, clean_env(NANASQLITE_PORT="44x"))
    check(rc == 2 and "NANASQLITE_PORT" in err, "bad NANASQLITE_PORT named", err)
    rc, _, err, _ = run(["keys"], tmp, clean_env(NANASQLITE_PORT="99999"))
    check(rc == 2 and "NANASQLITE_PORT" in err, "out-of-range NANASQLITE_PORT", err)


def test_connection_errors():
    s = Server("cli-conn", ["--no-bans"], keys=("nana", "stranger")).start()
    c = Cli(s)
    c.ok("reachable", "len", want=0)
    # A key the server does not know: authentication refused.
    c.err("unknown key: exit 3", "--key", "stranger_private.pem", "len", rc=3,
          etype="AuthenticationError")
    c.err("missing key file: exit 2", "--key", "no_such_key.pem", "len", rc=2)
    # The wrong name for the server's certificate: TLS refuses it.
    c.err("wrong --server-name: exit 3", "--server-name", "not-this-host.example", "len", rc=3)
    # Nothing listening on the port.
    dead = str(free_udp_port())
    _, secs = c.err("nothing on the port: exit 3", "--port", dead, "--timeout-ms", "1500",
                    "len", rc=3, port=False)
    check(secs < 20, "connect attempt bounded by --timeout-ms", f"{secs:.1f}s")
    # The server goes away.
    check(s.stop() == 0, "server stops")
    c.err("server down: exit 3", "--timeout-ms", "1500", "get", "k", rc=3)


def test_env_defaults():
    accounts = [{"name": "rw", "key": "nana"},
                {"name": "ro", "key": "ro", "read_only": True}]
    s = Server("cli-env", ["--no-bans"], accounts=accounts, keys=("nana", "ro")).start()
    elsewhere = os.path.join(ARGS.tmp, f"cli-env-cwd-{os.getpid()}")
    os.makedirs(elsewhere, exist_ok=True)
    cert = os.path.join(s.dir, "cert.pem")
    key = os.path.join(s.dir, "nana_private.pem")
    ro_key = os.path.join(s.dir, "ro_private.pem")
    base = dict(NANASQLITE_HOST="127.0.0.1", NANASQLITE_PORT=str(s.port), NANASQLITE_CA=cert,
                NANASQLITE_KEY=key, NANASQLITE_SERVER_NAME="localhost")

    def env_run(*args, **env):
        return run(list(args), elsewhere, clean_env(**dict(base, **env)))

    rc, out, err, _ = env_run("set", "e", "1")
    check(rc == 0 and out == "null\n", "all settings from NANASQLITE_* in another directory",
          f"{rc} {out!r} {err!r}")
    rc, out, err, _ = env_run("get", "e", NANASQLITE_ACCOUNT="rw")
    check(rc == 0 and out == "1\n", "NANASQLITE_ACCOUNT with its key", f"{rc} {out!r} {err!r}")
    rc, out, err, _ = env_run("get", "e", NANASQLITE_ACCOUNT="ro")
    check(rc == 3 and "error: AuthenticationError" in err,
          "NANASQLITE_ACCOUNT naming another account's key fails", f"{rc} {err!r}")
    rc, out, err, _ = env_run("get", "e", NANASQLITE_KEY=ro_key, NANASQLITE_ACCOUNT="ro")
    check(rc == 0 and out == "1\n", "NANASQLITE_KEY: a read-only account reads",
          f"{rc} {out!r} {err!r}")
    rc, out, err, _ = env_run("set", "e", "2", NANASQLITE_KEY=ro_key)
    check(rc == 1 and err.startswith("error: PermissionError: "),
          "read-only account: PermissionError, exit 1", f"{rc} {err!r}")
    # Flags win over the environment.
    dead = str(free_udp_port())
    rc, out, err, _ = env_run("--port", str(s.port), "get", "e", NANASQLITE_PORT=dead)
    check(rc == 0 and out == "1\n", "--port overrides NANASQLITE_PORT", f"{rc} {err!r}")
    rc, out, err, _ = env_run("--key", key, "set", "e", "3", NANASQLITE_KEY=ro_key)
    check(rc == 0, "--key overrides NANASQLITE_KEY", f"{rc} {err!r}")
    rc, _, err, _ = env_run("--timeout-ms", "1500", "get", "e", NANASQLITE_PORT=dead)
    check(rc == 3, "NANASQLITE_PORT is used when --port is absent", f"{rc} {err!r}")
    rc, _, err, _ = env_run("get", "e", NANASQLITE_SERVER_NAME="wrong.example")
    check(rc == 3, "NANASQLITE_SERVER_NAME is used", f"{rc} {err!r}")
    # The server listens on 127.0.0.1 only: another loopback address has nothing.
    rc, _, err, _ = env_run("--timeout-ms", "1500", "get", "e", NANASQLITE_HOST="127.0.0.2")
    check(rc == 3, "NANASQLITE_HOST is used", f"{rc} {err!r}")
    # Without NANASQLITE_CA and no ./cert.pem the system store is used, which does
    # not trust the self-signed development certificate.
    env = clean_env(**base)
    del env["NANASQLITE_CA"]
    rc, _, err, _ = run(["--timeout-ms", "5000", "get", "e"], elsewhere, env)
    check(rc == 3, "no CA given and no ./cert.pem: the server is not trusted", f"{rc} {err!r}")
    rc, out, _, _ = run(["--ca", cert, "get", "e"], elsewhere, env)
    check(rc == 0 and out == "3\n", "--ca FILE", out)
    check(s.stop() == 0, "server stops cleanly")


# ---- the interactive shell ----------------------------------------------------

class Pty:
    """The CLI on a pseudo-terminal. expect() reads until a pattern shows up
    (bounded) and returns everything read since the previous expect()."""

    def __init__(self, argv, cwd, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the CLI
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        import fcntl
        import termios
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        self.buf = b""
        self.status = None

    def send(self, text, timeout=20):
        """Types |text| once the CLI is reading the terminal in libedit's raw
        mode (typed earlier, the kernel would echo it a second time and
        swallow a Ctrl-D as its own end-of-file)."""
        import termios
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not termios.tcgetattr(self.fd)[3] & termios.ICANON:
                break
            time.sleep(0.01)
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def expect(self, pattern, timeout=20):
        deadline = time.time() + timeout
        pat = pattern.encode() if isinstance(pattern, str) else pattern
        while True:
            i = self.buf.find(pat)
            if i >= 0:
                got, self.buf = self.buf[:i + len(pat)], self.buf[i + len(pat):]
                return got.decode(errors="replace")
            left = deadline - time.time()
            if left <= 0:
                raise RuntimeError(f"pty: no {pattern!r} within {timeout}s; got {self.buf!r}")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise RuntimeError(f"pty: ended before {pattern!r}; got {self.buf!r}")
                self.buf += data

    def wait(self, timeout=20):
        """The exit status, or None after killing a CLI that did not exit in time."""
        if self.fd is None:
            return self.status
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                break
            try:  # keep draining so the child never blocks on a full pty
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if r:
                    self.buf += os.read(self.fd, 65536)
            except OSError:
                time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.fd = None
        return self.status


def lines_of(chunk, sent=""):
    """The output lines of one pty exchange, without the echoed input line(s)
    and the prompt."""
    ls = [re.sub(r"[\x07\r]", "", x) for x in chunk.split("\n")]
    return [x for x in ls[1:] if x and not x.startswith("nana") and not (sent and x.endswith(sent))]


def test_repl_pty():
    s = Server("cli-pty").start()
    hist = os.path.join(s.dir, "history")
    env = clean_env(TERM="dumb", NANASQLITE_CLI_HISTORY=hist)
    p = Pty([cli_path(), "--port", str(s.port)], s.dir, env)
    try:
        banner = p.expect("nana> ")
        check("help" in banner and "quit" in banner, "banner on a terminal", banner)

        def cmd(line, prompt="nana> "):
            p.send(line + "\r")
            return lines_of(p.expect(prompt), line)

        out = cmd("help")
        check(any("call METHOD" in x for x in out) and any("use [DB]" in x for x in out)
              and any("table [NAME]" in x for x in out), "help lists the shell's commands", out)
        check(cmd('set "a b" {"x": [1, 2]}') == ["null"], "set a quoted key with JSON spaces")
        out = cmd('get "a b"')
        check(out == ['{"x": [1, 2]}'], "get the quoted key", out)
        # Tab completion of a method name after "call".
        p.send("call batch_up\t")
        got = p.expect("batch_update")
        check("batch_update" in got, "Tab completes batch_up to batch_update", got)
        out = cmd(' [{"t1": 1, "t2": [2]}]')
        check(out == ["null"], "the completed call runs", out)
        # Tab completion of the command word.
        p.send("ge\t")
        got = p.expect("get")
        out = cmd("t1")
        check(out == ["1"], "Tab completes ge to get", (got, out))
        out = cmd('call batch_get [["t1", "t2", "nope"]]')
        check(out == ['{"t1": 1, "t2": [2]}'], "call with a JSON argument array", out)
        out = cmd('call increment ["n"] {"amount": 4}')
        check(out == ["4"], "call with arguments and keyword arguments", out)
        # Errors are printed and the shell goes on.
        out = cmd("get missing")
        check(len(out) == 1 and out[0].startswith("error: KeyError: "), "KeyError shown", out)
        out = cmd("set k {oops")
        check(len(out) == 1 and out[0].startswith("error: ValueError: "), "bad JSON shown", out)
        out = cmd("call vacuum")
        check(len(out) == 1 and out[0].startswith("error: PermissionError: "),
              "PermissionError shown", out)
        out = cmd("nonsense here")
        check(len(out) == 1 and "unknown command" in out[0], "unknown command shown", out)
        out = cmd("len")
        check(out == ["4"], "the shell still works after errors", out)
        # use DB / table NAME switch the following calls, and show in the prompt.
        cmd("use other.db", prompt="nana other.db> ")
        check(cmd("set u 5", prompt="nana other.db> ") == ["null"], "set in other.db")
        cmd('table "t9"', prompt="nana other.db/t9> ")
        check(cmd("set w 6", prompt="nana other.db/t9> ") == ["null"], "set in a table")
        out = cmd("keys", prompt="nana other.db/t9> ")
        check(out == ['["w"]'], "keys of that table", out)
        cmd("table", prompt="nana other.db> ")
        out = cmd("keys", prompt="nana other.db> ")
        check(out == ['["u"]'], "table with no name: back to the default table", out)
        cmd("use")
        out = cmd("get u")
        check(len(out) == 1 and out[0].startswith("error: KeyError"),
              "use with no name: back to the default database", out)
        p.send("quit\r")
        status = p.wait()
        check(status is not None, "quit ends the shell", p.buf)
        check(status == 1, "exit status of the last failed command", status)
    finally:
        p.wait(timeout=1)
    c = Cli(s)
    c.ok("shell's use/set landed in other.db", "--db", "other.db", "get", "u", want=5)
    c.ok("shell's table/set landed", "--db", "other.db", "--table", "t9", "get", "w", want=6)
    try:
        h = open(hist, encoding="utf-8", errors="replace").read()
        mode = stat.S_IMODE(os.stat(hist).st_mode)
    except OSError as e:
        h, mode = str(e), None
    check("batch_update" in h and "table" in h, "history written to NANASQLITE_CLI_HISTORY",
          h[:200])
    check(mode == 0o600, "history file is private (0600)", oct(mode or 0))
    # End of input leaves too; an unwritable history file is not an error.
    env = clean_env(TERM="dumb", NANASQLITE_CLI_HISTORY="/nonexistent-dir/history")
    p = Pty([cli_path(), "--port", str(s.port)], s.dir, env)
    try:
        p.expect("nana> ")
        p.send("len\r")
        out = lines_of(p.expect("nana> "))
        check(out == ["4"], "second shell works", out)
        p.send(b"\x04")
        status = p.wait()
        check(status == 0, "EOF (Ctrl-D) leaves with 0; unwritable history ignored", status)
    finally:
        p.wait(timeout=1)
    # HOME decides the default history file.
    env = clean_env(TERM="dumb")
    p = Pty([cli_path(), "--port", str(s.port)], s.dir, env)
    try:
        p.expect("nana> ")
        p.send("keys\r")
        p.expect("nana> ")
        p.send("exit\r")
        check(p.wait() == 0, "exit leaves with 0")
    finally:
        p.wait(timeout=1)
    check(os.path.exists(os.path.join(env["HOME"], ".nanasqlite_cli_history")),
          "default history file in $HOME")
    check(s.stop() == 0, "server stops cleanly")


def test_repl_ctrl_c():
    """readline's convention on a terminal: Ctrl-C drops the line being typed and gives a new
    prompt (nothing is sent, the shell stays); Ctrl-D leaves."""
    s = Server("cli-ctrlc").start()
    env = clean_env(TERM="dumb", NANASQLITE_CLI_HISTORY=os.path.join(s.dir, "history"))
    p = Pty([cli_path(), "--port", str(s.port)], s.dir, env)
    try:
        p.expect("nana> ")
        p.send("set lost 1")
        p.expect("set lost 1")
        p.send(b"\x03")
        got = p.expect("nana> ")
        check("^C" in got and "null" not in got and "error" not in got,
              "Ctrl-C drops the line and prompts again", got)
        p.send("set kept 2\r")
        out = lines_of(p.expect("nana> "), "set kept 2")
        check(out == ["null"], "the shell goes on after Ctrl-C", out)
        p.send(b"\x03")
        p.expect("nana> ")
        p.send("set k \"キー\"\r")
        out = lines_of(p.expect("nana> "), 'set k "キー"')
        check(out == ["null"], "a UTF-8 value typed on the terminal", out)
        p.send("get k\r")
        out = lines_of(p.expect("nana> "), "get k")
        check(out == ['"キー"'], "comes back intact", out)
        p.send(b"\x04")
        check(p.wait() == 0, "Ctrl-D leaves with 0")
    finally:
        p.wait(timeout=1)
    c = Cli(s)
    c.err("the line dropped by Ctrl-C was never sent", "get", "lost", rc=1, etype="KeyError")
    c.ok("the line after it was", "get", "kept", want=2)
    check(s.stop() == 0, "server stops cleanly")


def test_repl_pipe():
    s = Server("cli-pipe").start()
    script = "\n".join([
        'set k1 {"v": 1}',
        "get k1",
        "  # a comment, and a blank line next",
        "",
        'call batch_get [["k1", "zz"]]',
        "get nope",
        "use x.db",
        "set y true",
        "get y",
        "use",
        "has y",
        "call __len__",
        'set "sp ace" "quoted"',
        'get "sp ace"',
        "quit",
        "set after 1",
    ]) + "\n"
    rc, out, err, _ = run(["--port", str(s.port)], s.dir, input=script)
    want = ["null", '{"v": 1}', '{"k1": {"v": 1}}', "null", "true", "false", "1", "null",
            '"quoted"']
    check(out.split("\n")[:-1] == want, "piped shell: only results on stdout", repr(out))
    check("nana>" not in out and "help" not in out, "no prompt or banner when not a terminal")
    errs = err.rstrip("\n").split("\n")
    check(len(errs) == 1 and errs[0].startswith("error: KeyError: ") and "nope" in errs[0],
          "piped shell: the error on stderr", repr(err))
    check(rc == 1, "piped shell exit status: the last failure (KeyError)", rc)
    c = Cli(s)
    c.err("nothing after quit ran", "get", "after", rc=1, etype="KeyError")
    c.ok("the piped use x.db landed", "--db", "x.db", "get", "y", want=True)
    # All good: exit 0; end of input without quit is fine.
    rc, out, err, _ = run(["--port", str(s.port), "--json-compact"], s.dir,
                          input='get k1\ncall batch_get [["k1"]]\n')
    check(rc == 0 and out == '{"v":1}\n{"k1":{"v":1}}\n' and err == "",
          "piped shell with --json-compact, EOF ends it", f"{rc} {out!r} {err!r}")
    # A usage error inside the shell is exit 2 at the end, and nothing is sent for it.
    rc, out, err, _ = run(["--port", str(s.port)], s.dir, input="set k2 {x\nhas k2\n")
    check(rc == 2 and out == "false\n" and err.startswith("error: ValueError: "),
          "piped shell: bad JSON reported, next line still runs", f"{rc} {out!r} {err!r}")
    # The server going away mid-script: exit 3 for the calls that cannot be made.
    check(s.stop() == 0, "server stops cleanly")
    rc, out, err, _ = run(["--port", str(s.port), "--timeout-ms", "1500"], s.dir,
                          input="help\nlen\n")
    check(rc == 3 and "commands:" in out and err.startswith("error: "),
          "piped shell without a server: help works, calls fail with 3", f"{rc} {err!r}")


def main():
    return serverlib.run_main(globals(), driver=False)


if __name__ == "__main__":
    sys.exit(main())
