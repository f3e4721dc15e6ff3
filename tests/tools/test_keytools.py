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
--ca/--ca-key for a second server, half a CA refused; client certificates
(--client NAME: NAME.pem alone, NAME-key.pem 0600, clientAuth, issued by the
same CA, names that would clash or hide refused) and the fingerprints printed
for the accounts file (--client, --fingerprint), checked against hashes
computed here from the DER. Prints "N passed, N failed".
"""
import base64
import hashlib
import json
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


def der_items(der, pos, end):
    """The DER items in der[pos:end] as (tag, start of item, start of content, end)."""
    out = []
    while pos < end:
        tag, n = der[pos], der[pos + 1]
        head = 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(der[pos + 2:pos + 2 + k], "big")
            head += k
        out.append((tag, pos, pos + head, pos + head + n))
        pos += head + n
    return out


def cert_parts(der):
    """(issuer, subject, SubjectPublicKeyInfo) of a certificate, each as DER."""
    cert = der_items(der, 0, len(der))[0]
    tbs = der_items(der, cert[2], cert[3])[0]
    fields = der_items(der, tbs[2], tbs[3])
    if fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    issuer, subject, spki = fields[2], fields[4], fields[5]
    return tuple(der[f[1]:f[3]] for f in (issuer, subject, spki))


def fingerprints_of(der):
    """The two fingerprints as the accounts file takes them, computed here."""
    cert_fp = hashlib.sha256(der).hexdigest()
    spki_fp = base64.b64encode(hashlib.sha256(cert_parts(der)[2]).digest()).decode()
    return ":".join(cert_fp[i:i + 2] for i in range(0, 64, 2)), "sha256/" + spki_fp


def printed_fingerprints(text):
    """The two "client_..." members printed by cert-gen, read as JSON."""
    lines = [x.strip().rstrip(",") for x in text.splitlines() if x.strip().startswith('"client_')]
    return json.loads("{" + ",".join(lines) + "}") if len(lines) == 2 else {}


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

    # Client certificates from the same CA, for mutual TLS.
    r = run(CERT_GEN, "--client", "alice", cwd=d)
    check("cert-gen --client", r.returncode == 0, r.stderr)
    alice, alice_key = os.path.join(d, "alice.pem"), os.path.join(d, "alice-key.pem")
    check("--client: NAME.pem and NAME-key.pem", os.path.exists(alice) and
          os.path.exists(alice_key))
    check("--client: key 0600", mode(alice_key) == 0o600, oct(mode(alice_key)))
    check("--client: uses the existing CA", "using the CA ./ca.pem" in r.stdout and
          read(ca) == before[ca] and read(ca_key) == before[ca_key], r.stdout)
    blocks = pem_blocks(alice)
    check("--client: the certificate alone", len(blocks) == 1, len(blocks))
    der = blocks[0]
    issuer, subject, _ = cert_parts(der)
    check("--client: issued by the CA", issuer == cert_parts(ca_der[0])[1])
    check("--client: CN is the name", b"alice" in subject)
    check("--client: clientAuth, not serverAuth",
          bytes.fromhex("06082b06010505070302") in der and
          bytes.fromhex("06082b06010505070301") not in der)
    check("--client: no subjectAltName for hosts", b"localhost" not in der)
    want = fingerprints_of(der)
    got = printed_fingerprints(r.stdout)
    check("--client prints the fingerprints", got == {"client_cert_sha256": [want[0]],
                                                      "client_spki_sha256": [want[1]]},
          r.stdout)
    check("--client says how to use it", "--client-ca ./ca.pem" in r.stdout and
          "--cert ./alice.pem --cert-key ./alice-key.pem" in r.stdout, r.stdout)

    r = run(CERT_GEN, "--fingerprint", "alice.pem", cwd=d)
    check("--fingerprint", r.returncode == 0 and r.stdout.count("\n") == 2 and
          printed_fingerprints(r.stdout) == got, r.stdout + r.stderr)
    r = run(CERT_GEN, "--fingerprint", "cert.pem", cwd=d)
    check("--fingerprint of a chain: its first certificate",
          r.returncode == 0 and printed_fingerprints(r.stdout) ==
          {"client_cert_sha256": [fingerprints_of(pem_blocks(cert)[0])[0]],
           "client_spki_sha256": [fingerprints_of(pem_blocks(cert)[0])[1]]}, r.stdout)
    for bad_file in ("alice-key.pem", "no-such.pem"):
        r = run(CERT_GEN, "--fingerprint", bad_file, cwd=d)
        check(f"--fingerprint {bad_file} refused", r.returncode == 1 and bad_file in r.stderr
              and r.stdout == "", r.stderr)
    for extra in (["--client", "bob"], ["--host", "x.example"], ["--force"]):
        r = run(CERT_GEN, "--fingerprint", "alice.pem", *extra, cwd=d)
        check(f"--fingerprint with {extra[0]} refused", r.returncode == 2 and
              "--fingerprint" in r.stderr, r.stderr)

    before_alice = read(alice), read(alice_key)
    r = run(CERT_GEN, "--client", "alice", cwd=d)
    check("--client refuses to overwrite", r.returncode == 1 and
          "(use --force to replace it)" in r.stderr and
          (read(alice), read(alice_key)) == before_alice, r.stderr)
    r = run(CERT_GEN, "--client", "alice", "--force", "--rsa", "--days", "7", cwd=d)
    check("--client --force --rsa", r.returncode == 0 and read(alice_key) != before_alice[1] and
          read(ca) == before[ca], r.stderr)
    check("--client --force: new fingerprints printed",
          printed_fingerprints(r.stdout) != got and
          printed_fingerprints(r.stdout)["client_cert_sha256"][0] ==
          fingerprints_of(pem_blocks(alice)[0])[0], r.stdout)
    listing = sorted(os.listdir(d))
    for name in ("ca", "cert", "key", "ca-key", "../x", ".hidden", "-x", "a b", "", "x" * 65,
                 "a/b"):
        r = run(CERT_GEN, "--client", name, "--force", cwd=d)
        check(f"--client {name!r} refused", r.returncode == 2 and "--client" in r.stderr,
              r.stderr)
    check("refused names wrote nothing", sorted(os.listdir(d)) == listing)
    check("the server's files survive", read(ca) == before[ca] and read(ca_key) == before[ca_key])
    r = run(CERT_GEN, "--client", "bob", "--host", "db.example.com", cwd=d)
    check("--client with --host refused", r.returncode == 2 and "--host" in r.stderr, r.stderr)
    r = run(CERT_GEN, "--client", "x" * 64 + "", "--out-dir", "two", cwd=d)
    check("--client: a 64-byte name", r.returncode == 0, r.stderr)
    # A fresh directory: the CA is made for the client, and a server made after uses it.
    fresh = os.path.join(d, "fresh")
    os.mkdir(fresh)
    r = run(CERT_GEN, "--client", "svc@app.example", cwd=fresh)
    check("--client in a fresh directory makes the CA", r.returncode == 0 and
          "new development CA" in r.stdout and
          sorted(os.listdir(fresh)) == ["ca-key.pem", "ca.pem", "svc@app.example-key.pem",
                                        "svc@app.example.pem"], os.listdir(fresh))
    r = run(CERT_GEN, cwd=fresh)
    check("a server certificate after it uses that CA", r.returncode == 0 and
          "using the CA ./ca.pem" in r.stdout, r.stdout)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
