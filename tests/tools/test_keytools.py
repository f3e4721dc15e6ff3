#!/usr/bin/env python3
"""nanasqlite-key-gen and nanasqlite-cert-gen as a new user meets them.

Usage: test_keytools.py KEY_GEN CERT_GEN

Runs both tools in a fresh directory: the files they write, their modes
(private keys 0600), refusal to overwrite without --force, --force,
--prefix, --host (names and addresses checked), --rsa, bad flags, when
--force is suggested (only when a file is in the way), and the formats
(PKCS#8 Ed25519 PEM, an OpenSSH ssh-ed25519 line, PEM certificates).
Prints "N passed, N failed".
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
    check("cert-gen files", os.path.exists(cert) and os.path.exists(key))
    check("cert key 0600", mode(key) == 0o600, oct(mode(key)))
    check("certificate PEM", open(cert).read().startswith("-----BEGIN CERTIFICATE-----"))
    der = base64.b64decode("".join(open(cert).read().splitlines()[1:-1]))
    check("SAN holds --host names", b"db.example.com" in der and bytes([10, 1, 2, 3]) in der
          and b"localhost" in der)
    before = open(key).read()
    r = run(CERT_GEN, cwd=d)
    check("cert-gen refuses to overwrite", r.returncode == 1 and "exists" in r.stderr, r.stderr)
    check("cert key left alone", open(key).read() == before)
    r = run(CERT_GEN, "--rsa", "--force", "--days", "30", cwd=d)
    check("cert-gen --rsa --force", r.returncode == 0 and open(key).read() != before, r.stderr)
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

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
