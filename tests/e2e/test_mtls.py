#!/usr/bin/env python3
"""End-to-end tests of mutual TLS on the NanaSQLite door: the real
nanasqlite-server started with --client-ca, client certificates issued by
nanasqlite-cert-gen --client from the server's development CA, accounts that
name them by fingerprint, and real clients (nanasqlite-cli and wire_driver)
that show them.

The transport: the start refuses bad settings, a certificate of another CA
is refused at the handshake, --client-certs require refuses a client without
one, --client-certs request lets clients without one in, and a key login
works with a certificate shown. The NanaSQLite door: an account with
"login": "certificate" is logged in by its verified certificate at connect
(AUTH_START is answered AUTH_OK, and a call sent first is served),
"key+certificate" needs both, an account that logs in by certificate cannot
be reached with a key, and an account that stops naming the certificate
loses the session at its next call.

Every wait is bounded. Ends with "N passed, M failed".
Usage: test_mtls.py --bin-dir DIR --driver WIRE_DRIVER [--tmp DIR] [test_name...]
"""
import json
import os
import select
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None
TIMEOUT = 60  # seconds for one CLI run

# ---- set-up ---------------------------------------------------------------------

def cert_gen(cwd, *args):
    """Runs nanasqlite-cert-gen; returns (status, stdout, stderr)."""
    p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cert-gen"), *args], cwd=cwd,
                       capture_output=True, text=True, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def issue_client(s, name, where=None):
    """Issues client certificate |name| from the CA in |where| (default: the
    server's directory, so its ca.pem), copies it and its key into a client
    directory of its own (no Ed25519 key there) and returns (that directory,
    {"client_cert_sha256": [...], "client_spki_sha256": [...]})."""
    where = where or s.dir
    rc, out, err = cert_gen(where, "--client", name)
    check(rc == 0, f"cert-gen --client {name}", err)
    rc, out, err = cert_gen(where, "--fingerprint", f"{name}.pem")
    check(rc == 0, f"cert-gen --fingerprint {name}.pem", err)
    fps = json.loads("{" + out.replace("\n", "") + "}")
    cdir = os.path.join(s.dir, f"client-{name}")
    os.makedirs(cdir, exist_ok=True)
    for f in (f"{name}.pem", f"{name}-key.pem"):
        shutil.copy(os.path.join(where, f), os.path.join(cdir, f))
    return cdir, fps


def write_accounts(s, accounts):
    """Writes accounts.json from dicts; "key": PREFIX puts that key's public line."""
    doc = []
    for a in accounts:
        a = dict(a)
        if "key" in a:
            a["public_key"] = s.pub(a.pop("key"))
        doc.append(a)
    tmp = os.path.join(s.dir, "accounts.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"accounts": doc}, f)
    os.rename(tmp, os.path.join(s.dir, "accounts.json"))


def mtls_server(name, accounts_fn, flags=()):
    """A server with --client-ca ca.pem (its own development CA) and the
    accounts accounts_fn(server) returns; not started."""
    s = Server(name, ["--client-ca", "ca.pem", "--accounts", "accounts.json", *flags])
    write_accounts(s, accounts_fn(s))
    return s


def cli(s, cwd, *args, cert=None, key=None, account=None):
    """Runs nanasqlite-cli against |s| from |cwd|; returns (status, stdout, stderr)."""
    argv = [os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "--port", str(s.port),
            "--ca", os.path.join(s.dir, "ca.pem"), "--timeout-ms", "5000"]
    if cert:
        argv += ["--cert", f"{cert}.pem", "--cert-key", f"{cert}-key.pem"]
    if key:
        argv += ["--key", key]
    if account:
        argv += ["--account", account]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANASQLITE_")}
    try:
        p = subprocess.run([*argv, *args], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return p.returncode, p.stdout.strip(), p.stderr.strip()


class Driver:
    """wire_driver, showing the client certificate |cert| (a name in |cdir|) if given."""

    def __init__(self, s, cdir=None, cert=None):
        argv = [ARGS.driver, os.path.join(s.dir, "ca.pem")]
        if cert:
            argv += [os.path.join(cdir, f"{cert}.pem"), os.path.join(cdir, f"{cert}-key.pem")]
        self.s = s
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  cwd=s.dir)

    def cmd(self, timeout=30, **c):
        self.p.stdin.write(json.dumps(c) + "\n")
        self.p.stdin.flush()
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise RuntimeError(f"driver timed out on {c}")
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("driver exited")
        return json.loads(line)

    def connect(self, id="a"):
        return self.cmd(op="connect", id=id, port=self.s.port)

    def auth_start(self, id="a"):
        """Sends AUTH_START alone; returns the reply frame (None when none came)."""
        body = b"\xaaAUTH_START"
        hexstr = (len(body).to_bytes(4, "big") + body).hex()
        return self.cmd(op="raw", id=id, hex=hexstr).get("reply")

    def call(self, method, *args, id="a", **kw):
        c = {"op": "call", "id": id, "method": method, "args": list(args)}
        c.update(kw)
        return self.cmd(**c).get("reply")

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def ok(reply):
    return isinstance(reply, dict) and reply.get("status") == "success"


def usable(d, id):
    """True if connection |id| of driver |d| opened and answers AUTH_START at all."""
    r = d.connect(id)
    if not r.get("open"):
        return False
    return d.auth_start(id) is not None


# ---- the transport, as it stands -------------------------------------------------

def test_start_refusals():
    s = Server("mtls-start", [])
    s.start(["--client-certs", "require"], expect_ok=False)
    check(s.proc.wait(timeout=30) != 0 and "--client-certs needs --client-ca" in s.log_text(),
          "--client-certs without --client-ca refused at start", s.log_text()[-300:])
    s.log.close()
    s.start(["--client-ca", "nope.pem"], expect_ok=False)
    check(s.proc.wait(timeout=30) != 0 and "client CA nope.pem" in s.log_text(),
          "a missing --client-ca file refused at start", s.log_text()[-300:])
    s.log.close()
    s.start(["--client-ca", "nana_public.pub"], expect_ok=False)
    check(s.proc.wait(timeout=30) != 0 and "trust anchors" in s.log_text(),
          "a --client-ca file without certificates refused at start", s.log_text()[-300:])
    s.log.close()
    # Two accounts naming one certificate: refused at start, with the places.
    _, fps = issue_client(s, "alice")
    write_accounts(s, [{"name": "a", "key": "nana", **fps},
                       {"name": "b", "login": "certificate",
                        "client_cert_sha256": [fps["client_cert_sha256"][0].upper()]}])
    s.start(["--client-ca", "ca.pem", "--accounts", "accounts.json"], expect_ok=False)
    check(s.proc.wait(timeout=30) != 0 and
          "accounts[1].client_cert_sha256[0]: the same fingerprint as "
          "accounts[0].client_cert_sha256[0]" in s.log_text(),
          "a repeated fingerprint refused at start", s.log_text()[-400:])
    s.log.close()


def test_key_login_with_certificate():
    """A certificate shown to a server that asks (request): the key login works."""
    s = Server("mtls-key", ["--client-ca", "ca.pem", "--accounts", "accounts.json"])
    cdir, fps = issue_client(s, "alice")
    write_accounts(s, [{"name": "alice", "key": "nana", **fps}])
    s.start()
    key = os.path.join(s.dir, "nana_private.pem")
    r = cli(s, cdir, "set", "k", "1", cert="alice", key=key, account="alice")
    check(r[0] == 0, "key login showing a certificate", r)
    r = cli(s, cdir, "get", "k", cert="alice", key=key)
    check(r[0] == 0 and r[1] == "1", "key login showing a certificate, no account name", r)
    check(s.alive(), "server alive")
    s.stop()


def test_request_lets_clients_without_certificate_in():
    s = Server("mtls-request", ["--client-ca", "ca.pem", "--client-certs", "request"])
    s.start()
    r = cli(s, s.dir, "set", "k", "1")
    check(r[0] == 0, "key login without a certificate (request mode)", r)
    d = Driver(s)
    check(usable(d, "plain"), "wire_driver without a certificate (request mode)")
    d.close()
    check(s.alive(), "server alive")
    s.stop()


def test_require_refuses_without_certificate():
    s = Server("mtls-require", ["--client-ca", "ca.pem", "--client-certs", "require",
                                "--accounts", "accounts.json"])
    cdir, fps = issue_client(s, "alice")
    write_accounts(s, [{"name": "alice", "key": "nana", **fps}])
    s.start()
    key = os.path.join(s.dir, "nana_private.pem")
    r = cli(s, cdir, "set", "k", "1", key=key, account="alice")
    check(r[0] == 3, "no certificate: refused at the handshake (require)", r)
    d = Driver(s)
    check(not usable(d, "plain"), "wire_driver without a certificate refused (require)")
    d.close()
    r = cli(s, cdir, "set", "k", "2", cert="alice", key=key, account="alice")
    check(r[0] == 0, "with the certificate: served", r)
    check(s.alive(), "server alive")
    s.stop()


def test_other_ca_refused():
    """A certificate that does not chain to --client-ca is refused at the
    handshake, even when certificates are only requested, and even when an
    account names its fingerprint."""
    s = Server("mtls-otherca", ["--client-ca", "ca.pem", "--accounts", "accounts.json"])
    other = os.path.join(s.dir, "other-ca")
    os.makedirs(other)
    mdir, mfps = issue_client(s, "mallory", where=other)
    cdir, fps = issue_client(s, "alice")
    write_accounts(s, [{"name": "alice", "key": "nana", **fps},
                       {"name": "mallory", "login": "certificate", **mfps}])
    s.start()
    key = os.path.join(s.dir, "nana_private.pem")
    r = cli(s, mdir, "set", "k", "1", cert="mallory", key=key, account="alice")
    check(r[0] == 3, "another CA's certificate refused", r)
    d = Driver(s, mdir, "mallory")
    check(not usable(d, "m"), "wire_driver with another CA's certificate refused")
    d.close()
    r = cli(s, cdir, "set", "k", "1", cert="alice", key=key, account="alice")
    check(r[0] == 0, "a good client served after", r)
    check(s.alive(), "server alive")
    s.stop()


def test_certificate_account_needs_its_certificate():
    """An account that logs in by certificate has no key: a client showing
    another certificate cannot log in to it with a key, named or not."""
    s = Server("mtls-othercert", ["--client-ca", "ca.pem", "--accounts", "accounts.json",
                                  "--no-bans"], keys=("nana", "other"))
    _, fps = issue_client(s, "alice")
    bdir, bfps = issue_client(s, "bob")
    write_accounts(s, [{"name": "alice", "login": "certificate", **fps},
                       {"name": "bob", "key": "other", **bfps}])
    s.start()
    for key in ("nana", "other"):
        k = os.path.join(s.dir, f"{key}_private.pem")
        r = cli(s, bdir, "keys", cert="bob", key=k, account="alice")
        check(r[0] == 3 and "authentication failed" in r[2],
              f"bob's certificate and key {key}: not alice", r)
    r = cli(s, bdir, "keys", cert="bob", key=os.path.join(s.dir, "nana_private.pem"))
    check(r[0] == 3 and "authentication failed" in r[2], "an unknown key, no account name", r)
    check(s.alive(), "server alive")
    s.stop()


def test_certificate_account_refuses_clients_without_certificate():
    s = Server("mtls-nocert", ["--client-ca", "ca.pem", "--accounts", "accounts.json",
                               "--no-bans"], keys=("nana", "other"))
    cdir, fps = issue_client(s, "alice")
    write_accounts(s, [{"name": "alice", "login": "certificate", **fps},
                       {"name": "other", "key": "other"}])
    s.start()
    key = os.path.join(s.dir, "nana_private.pem")
    r = cli(s, cdir, "keys", key=key, account="alice")
    check(r[0] == 3 and "authentication failed" in r[2], "no certificate, named account", r)
    r = cli(s, cdir, "keys", key=key)
    check(r[0] == 3 and "authentication failed" in r[2], "no certificate, no account name", r)
    r = cli(s, cdir, "keys", key=os.path.join(s.dir, "other_private.pem"), account="alice")
    check(r[0] == 3 and "authentication failed" in r[2],
          "another account's key cannot log in as alice", r)
    r = cli(s, cdir, "keys", key=os.path.join(s.dir, "other_private.pem"))
    check(r[0] == 0, "the other account logs in without a certificate", r)
    check(s.alive(), "server alive")
    s.stop()


# ---- the door's certificate login ---------------------------------------------

def test_certificate_login():
    s = Server("mtls-login", ["--client-ca", "ca.pem", "--accounts", "accounts.json"])
    cdir, fps = issue_client(s, "alice")
    write_accounts(s, [{"name": "alice", "login": "certificate", **fps}])
    s.start()
    # The CLI has no key at all: the certificate alone logs it in.
    check(not os.path.exists(os.path.join(cdir, "nana_private.pem")), "no key in the client dir")
    r = cli(s, cdir, "set", "k", "41", cert="alice")
    check(r[0] == 0, "certificate login (CLI, no key)", r)
    r = cli(s, cdir, "get", "k", cert="alice")
    check(r == (0, "41", ""), "certificate login reads back", r)
    d = Driver(s, cdir, "alice")
    check(d.connect("a").get("open"), "connect with the certificate")
    r = d.auth_start("a")
    check(r == "AUTH_OK", "AUTH_START answered AUTH_OK at once", r)
    check(ok(d.call("__getitem__", "k", id="a")), "served after AUTH_OK")
    check(d.connect("b").get("open"), "second connection")
    r = d.call("__getitem__", "k", id="b")
    check(ok(r) and r.get("result") == 41, "a call sent first is served", r)
    d.close()
    check(s.alive(), "server alive")
    s.stop()


def test_key_and_certificate():
    s = Server("mtls-both", ["--client-ca", "ca.pem", "--accounts", "accounts.json",
                             "--no-bans"], keys=("nana", "other"))
    cdir, fps = issue_client(s, "bob")
    adir, afps = issue_client(s, "carol")
    write_accounts(s, [{"name": "bob", "key": "nana", "login": "key+certificate", **fps},
                       {"name": "carol", "key": "other", **afps}])
    s.start()
    key = os.path.join(s.dir, "nana_private.pem")
    r = cli(s, cdir, "set", "k", "1", cert="bob", key=key, account="bob")
    check(r[0] == 0, "key and certificate: served", r)
    r = cli(s, cdir, "set", "k", "1", cert="bob", key=key)
    check(r[0] == 0, "key and certificate, no account name: served", r)
    r = cli(s, cdir, "set", "k", "2", key=key, account="bob")
    check(r[0] == 3, "key without the certificate: refused", r)
    r = cli(s, adir, "set", "k", "3", cert="carol", key=key, account="bob")
    check(r[0] == 3, "key with another account's certificate: refused", r)
    r = cli(s, cdir, "set", "k", "4", cert="bob")
    check(r[0] == 3, "certificate without the key: refused", r)
    check(s.alive(), "server alive")
    s.stop()


def test_certificate_reload():
    """The account stops naming the certificate: the session ends at its next call."""
    s = Server("mtls-reload", ["--client-ca", "ca.pem", "--accounts", "accounts.json"])
    cdir, fps = issue_client(s, "alice")
    _, other = issue_client(s, "carol")
    write_accounts(s, [{"name": "alice", "login": "certificate", **fps}])
    s.start()
    d = Driver(s, cdir, "alice")
    check(d.connect().get("open"), "connect")
    check(d.auth_start() == "AUTH_OK", "logged in by certificate")
    check(ok(d.call("keys")), "served")
    write_accounts(s, [{"name": "alice", "login": "certificate", **other}])
    deadline = time.time() + 10
    while time.time() < deadline and s.log_text().count("reloaded") < 1:
        time.sleep(0.05)
    r = d.call("keys")
    check(isinstance(r, dict) and r.get("error_type") == "PermissionError" and
          "no longer valid" in r.get("message", ""), "the old certificate no longer serves", r)
    d.close()
    check(s.alive(), "server alive")
    s.stop()


def main():
    return serverlib.run_main(globals(), driver=True)


if __name__ == "__main__":
    sys.exit(main())
