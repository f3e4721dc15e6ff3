#!/usr/bin/env python3
"""nanasqlite-key-gen and nanasqlite-cert-gen as a new user meets them.

Usage: test_keytools.py KEY_GEN CERT_GEN

Runs both tools in a fresh directory: the files they write, their modes
(private keys 0600), refusal to overwrite without --force, --force,
--prefix, --host (names and addresses checked), --rsa, bad flags, when
--force is suggested (only when a file is in the way), and the formats
(PKCS#8 Ed25519 PEM, an OpenSSH ssh-ed25519 line, PEM certificates). For
cert-gen also the development CA: made once (ca.pem, ca-key.pem 0600),
reused and never replaced, cert.pem = the server certificate then the CA's,
--ca/--ca-key for a second server, half a CA refused. Prints "N passed, N
failed".
"""
import base64
import os
import stat
import subprocess
import sys
import tempfile

KEY_GEN, CERT_GEN = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def run(tool, *args, cwd):
    return subprocess.run([tool] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def pem_blocks(path):
    """The DER of each PEM certificate in |path|, in file order."""
    blocks, cur = [], None
    for line in open(path).read().splitlines():
        if line == "-----BEGIN CERTIFICATE-----":
            cur = []
        elif line == "-----END CERTIFICATE-----":
            blocks.append(base64.b64decode("".join(cur), validate=True))
            cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def read(path):
    with open(path) as f:
        return f.read()


with tempfile.TemporaryDirectory() as d:
    r = run(KEY_GEN, cwd=d)
    check("key-gen runs", r.returncode == 0, r.stderr)
    priv, pub = os.path.join(d, "nana_private.pem"), os.path.join(d, "nana_public.pub")
    check("key-gen files", os.path.exists(priv) and os.path.exists(pub))
    check("private key 0600", mode(priv) == 0o600, oct(mode(priv)))
    lines = open(priv).read().splitlines()
    check("PKCS#8 PEM", lines[0] == "-----BEGIN PRIVATE KEY-----" and
          lines[-1] == "-----END PRIVATE KEY-----")
    der = base64.b64decode("".join(lines[1:-1]))
    check("Ed25519 PKCS#8", len(der) == 48 and
          der[:16] == bytes.fromhex("302e020100300506032b657004220420"))
    parts = open(pub).read().split()
    check("OpenSSH line", parts[0] == "ssh-ed25519" and len(parts) == 3)
    blob = base64.b64decode(parts[1])
    check("OpenSSH blob", len(blob) == 51 and blob[4:15] == b"ssh-ed25519")
    before = open(priv).read()
    r = run(KEY_GEN, cwd=d)
    check("key-gen refuses to overwrite", r.returncode == 1 and "exists" in r.stderr, r.stderr)
    check("key left alone", open(priv).read() == before)
    r = run(KEY_GEN, "--force", cwd=d)
    check("key-gen --force", r.returncode == 0 and open(priv).read() != before, r.stderr)
    r = run(KEY_GEN, "--prefix", "alice", cwd=d)
    check("key-gen --prefix", r.returncode == 0 and
          os.path.exists(os.path.join(d, "alice_private.pem")) and
          os.path.exists(os.path.join(d, "alice_public.pub")), r.stderr)
    check("key-gen bad flag", run(KEY_GEN, "--bogus", cwd=d).returncode == 2)
    r = run(KEY_GEN, cwd=d)
    check("key-gen: an existing file suggests --force",
          r.returncode == 1 and r.stderr.rstrip().endswith("exists (use --force to replace it)"),
          r.stderr)
    r = run(KEY_GEN, "--prefix", "nana-test", cwd="/proc")  # nothing can be created there
    check("key-gen: another error does not suggest --force",
          r.returncode == 1 and "nana-test_private.pem" in r.stderr and "--force" not in r.stderr,
          r.stderr)
    check("key-gen bad prefix", run(KEY_GEN, "--prefix", "../x", cwd=d).returncode == 2)

    r = run(CERT_GEN, "--host", "db.example.com", "--host", "10.1.2.3", cwd=d)
    check("cert-gen runs", r.returncode == 0, r.stderr)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca-key.pem")
    check("cert-gen files", all(os.path.exists(p) for p in (cert, key, ca, ca_key)))
    check("cert key 0600", mode(key) == 0o600, oct(mode(key)))
    check("CA key 0600", mode(ca_key) == 0o600, oct(mode(ca_key)))
    check("cert-gen says what it wrote", "new development CA" in r.stdout and
          "clients trust ./ca.pem" in r.stdout, r.stdout)
    check("certificate PEM", read(cert).startswith("-----BEGIN CERTIFICATE-----"))
    chain, ca_der = pem_blocks(cert), pem_blocks(ca)
    check("cert.pem: the server certificate, then the CA's", len(chain) == 2 and
          len(ca_der) == 1 and chain[1] == ca_der[0], len(chain))
    der = chain[0]
    check("SAN holds --host names", b"db.example.com" in der and bytes([10, 1, 2, 3]) in der
          and b"localhost" in der)
    check("the CA names itself", b"nanasqlite development CA" in ca_der[0])
    before = {p: read(p) for p in (cert, key, ca, ca_key)}
    r = run(CERT_GEN, cwd=d)
    check("cert-gen refuses to overwrite", r.returncode == 1 and "exists" in r.stderr, r.stderr)
    check("every file left alone", all(read(p) == v for p, v in before.items()))
    r = run(CERT_GEN, "--rsa", "--force", "--days", "30", cwd=d)
    check("cert-gen --rsa --force", r.returncode == 0 and read(key) != before[key], r.stderr)
    check("--force keeps the CA", read(ca) == before[ca] and read(ca_key) == before[ca_key] and
          "using the CA ./ca.pem" in r.stdout, r.stdout)
    check("--force: issued by the same CA", pem_blocks(cert)[1] == ca_der[0])
    check("cert-gen bad days", run(CERT_GEN, "--days", "0", cwd=d).returncode == 2)
    check("cert-gen bad flag", run(CERT_GEN, "--bogus", cwd=d).returncode == 2)
    for host in ("bad host name!", "-lead.example", "a..b", "x" * 64 + ".com", "db_1.example",
                 ""):
        r = run(CERT_GEN, "--host", host, "--out-dir", "elsewhere", cwd=d)
        check(f"cert-gen refuses --host {host!r}", r.returncode == 2 and "--host" in r.stderr
              and not os.path.exists(os.path.join(d, "elsewhere")), r.stderr)
    os.mkdir(os.path.join(d, "elsewhere"))
    r = run(CERT_GEN, "--host", "*.example.org", "--host", "fe80::1", "--host", "A-1.b2.example",
            "--out-dir", "elsewhere", cwd=d)
    check("cert-gen takes a wildcard, IPv6 and mixed-case names", r.returncode == 0, r.stderr)
    r = run(CERT_GEN, "--out-dir", "elsewhere", cwd=d)
    check("cert-gen: an existing file suggests --force",
          r.returncode == 1 and r.stderr.rstrip().endswith("exists (use --force to replace it)"),
          r.stderr)
    r = run(CERT_GEN, "--out-dir", "no/such/dir", cwd=d)
    check("cert-gen: a missing folder does not suggest --force",
          r.returncode == 1 and "no/such/dir" in r.stderr and "--force" not in r.stderr, r.stderr)

    # A second server from the first one's CA, in another directory.
    two = os.path.join(d, "two")
    os.mkdir(two)
    r = run(CERT_GEN, "--out-dir", two, "--ca", ca, "--ca-key", ca_key, cwd=d)
    check("cert-gen --ca --ca-key", r.returncode == 0, r.stderr)
    check("--ca: only the server's pair is written", sorted(os.listdir(two)) ==
          ["cert.pem", "key.pem"], os.listdir(two))
    check("--ca: chained to that CA", pem_blocks(os.path.join(two, "cert.pem"))[1:] == ca_der)
    check("--ca: the CA is left alone", read(ca) == before[ca] and read(ca_key) == before[ca_key])
    check("--ca without --ca-key", run(CERT_GEN, "--ca", ca, cwd=two).returncode == 2)
    r = run(CERT_GEN, "--force", "--ca", cert, "--ca-key", key, cwd=two)
    check("--ca that is not a CA", r.returncode == 1 and "not a CA" in r.stderr, r.stderr)

    # Half a CA: refused, nothing new written.
    half = os.path.join(d, "half")
    os.mkdir(half)
    with open(os.path.join(half, "ca.pem"), "w") as f:
        f.write(before[ca])
    r = run(CERT_GEN, cwd=half)
    check("ca.pem without ca-key.pem refused", r.returncode == 1 and
          "ca-key.pem does not" in r.stderr, r.stderr)
    check("half CA: nothing written", os.listdir(half) == ["ca.pem"], os.listdir(half))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
