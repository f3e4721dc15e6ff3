#!/usr/bin/env python3
"""The development credentials of nanasqlite-cert-gen against every TLS stack.

Usage: test_certs_stacks.py --bin-dir DIR [--tmp DIR] [test names]

nanasqlite-cert-gen writes a development CA (ca.pem) and a server
certificate it signs (cert.pem: the certificate, then the CA's; key.pem).
Each stack is shown the credentials over TLS on TCP (gnutls-serv, the
GnuTLS server our QUIC server is built on, loads cert.pem as its chain) and
must accept them trusting ca.pem and, for older clients, cert.pem:

  - BoringSSL (the TLS of Chromium, quiche and gRPC): the bssl tool, and
    the library itself through ctypes so the name "localhost" is checked
    too (the tool checks only the chain);
  - OpenSSL: `openssl verify`, `openssl s_client`, and Python's ssl module
    (OpenSSL verification, like the Python NanaSQLite-Server client);
  - GnuTLS: gnutls-cli.

A wrong name is refused, and the older kind of credential, a self-signed
leaf that is its own trust anchor, is refused by BoringSSL while OpenSSL
and GnuTLS accept it: the test can fail. Finally the real server runs on
both kinds and nanasqlite-cli connects trusting each file.

Needs gnutls-bin, openssl and android-boringssl (scripts/install-deps); a
missing tool is a failure, not a skip. Ends with "N passed, N failed".
"""
import ctypes
import glob
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import serverlib  # noqa: E402
from serverlib import check  # noqa: E402

TOOLS = ("bssl-tool", "gnutls-serv", "gnutls-cli", "certtool", "openssl")
ECHO = "nanasqlite-tls-probe"


# ---- a BoringSSL client through the library (run in its own process) --------------

def bssl_lib_client(port, roots, name):
    """Connects to 127.0.0.1:|port| with BoringSSL's libssl, trusting |roots|
    and requiring the certificate to name |name|. Prints "ok" or
    "refused: REASON". Runs in a process of its own: Python's ssl module
    (OpenSSL) is never loaded next to BoringSSL."""
    libs = sorted(glob.glob("/usr/lib/*/android/libssl.so.0"))
    if not libs:
        print("missing: android-libboringssl")
        return 2
    d = os.path.dirname(libs[0])
    crypto = ctypes.CDLL(os.path.join(d, "libcrypto.so.0"), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(libs[0])
    P, S, I = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for fn, res, args in [("TLS_method", P, []), ("SSL_CTX_new", P, [P]),
                          ("SSL_CTX_load_verify_locations", I, [P, S, S]),
                          ("SSL_CTX_set_verify", None, [P, I, P]), ("SSL_new", P, [P]),
                          ("SSL_set_fd", I, [P, I]), ("SSL_set_tlsext_host_name", I, [P, S]),
                          ("SSL_set1_host", I, [P, S]), ("SSL_connect", I, [P]),
                          ("SSL_get_verify_result", ctypes.c_long, [P])]:
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    crypto.X509_verify_cert_error_string.restype = S
    crypto.X509_verify_cert_error_string.argtypes = [ctypes.c_long]
    ctx = lib.SSL_CTX_new(lib.TLS_method())
    if lib.SSL_CTX_load_verify_locations(ctx, roots.encode(), None) != 1:
        print("refused: cannot load " + roots)
        return 1
    lib.SSL_CTX_set_verify(ctx, 1, None)  # SSL_VERIFY_PEER
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)  # BoringSSL wants a blocking socket; bound it by the kernel instead
    tv = struct.pack("ll", 10, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    h = lib.SSL_new(ctx)
    lib.SSL_set_fd(h, sock.fileno())
    lib.SSL_set_tlsext_host_name(h, name.encode())
    lib.SSL_set1_host(h, name.encode())
    if lib.SSL_connect(h) == 1 and lib.SSL_get_verify_result(h) == 0:
        print("ok")
        return 0
    v = lib.SSL_get_verify_result(h)
    print("refused: " + crypto.X509_verify_cert_error_string(v).decode())
    return 1


# ---- helpers ----------------------------------------------------------------------

def run(argv, cwd, stdin="", timeout=30):
    try:
        p = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return p.returncode, p.stdout, p.stderr


def fresh_dir(name):
    d = os.path.join(serverlib.ARGS.tmp, f"certs-{name}-{os.getpid()}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def cert_gen(d, *args):
    rc, out, err = run([os.path.join(serverlib.ARGS.bin_dir, "nanasqlite-cert-gen"), *args], d)
    check(rc == 0, "nanasqlite-cert-gen " + " ".join(args), err)


def old_self_signed(d):
    """Writes cert.pem + key.pem of the older kind into |d|: a self-signed
    leaf (CA:FALSE, key usage digitalSignature only, serverAuth) for
    localhost, made by GnuTLS's certtool."""
    with open(os.path.join(d, "old.tmpl"), "w") as f:
        f.write('cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n'
                'ip_address = "::1"\nsigning_key\ntls_www_server\nexpiration_days = 2\n')
    rc1, _, e1 = run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile",
                      "key.pem"], d)
    rc2, _, e2 = run(["certtool", "--generate-self-signed", "--load-privkey", "key.pem",
                      "--template", "old.tmpl", "--outfile", "cert.pem"], d)
    check(rc1 == 0 and rc2 == 0, "certtool makes the older self-signed kind", e1 + e2)
    rc, out, _ = run(["openssl", "x509", "-in", "cert.pem", "-noout", "-ext",
                      "keyUsage,basicConstraints"], d)
    check(rc == 0 and "CA:FALSE" in out and "Digital Signature" in out
          and "Certificate Sign" not in out, "the older kind: CA:FALSE, digitalSignature", out)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TlsServer:
    """gnutls-serv --echo on a loopback TCP port with |d|/cert.pem (a chain)
    and |d|/key.pem. Started and waited for within bounds."""

    def __init__(self, d):
        self.d = d
        for _ in range(5):  # the port may be taken between choosing and binding it
            self.port = free_tcp_port()
            self.log = open(os.path.join(d, "gnutls-serv.log"), "w")
            self.proc = subprocess.Popen(
                ["gnutls-serv", "--echo", "--x509certfile", "cert.pem", "--x509keyfile",
                 "key.pem", "--port", str(self.port)], cwd=d, stdout=self.log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.time() + 15
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("gnutls-serv did not start: " + open(self.log.name).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def bssl_tool(srv, roots):
    """The bssl tool's verdict trusting |roots|: True when the handshake
    (chain verification included) succeeded and a line came back."""
    rc, out, err = run(["bssl-tool", "client", "-connect", f"127.0.0.1:{srv.port}",
                        "-root-certs", roots, "-server-name", "localhost"], srv.d,
                       stdin=ECHO + "\n")
    ok = "Connected." in err and ECHO in out
    refused = "CERTIFICATE_VERIFY_FAILED" in err and ECHO not in out
    return ok if ok or refused else None, err


def bssl_lib(srv, roots, name):
    rc, out, err = run([sys.executable, os.path.abspath(__file__), "--bssl-client",
                        str(srv.port), roots, name], srv.d)
    return out.strip() or err.strip()


def openssl_client(srv, roots, name):
    rc, out, err = run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}",
                        "-CAfile", roots, "-verify_return_error", "-verify_hostname", name,
                        "-servername", name], srv.d)
    return rc == 0 and "Verify return code: 0 (ok)" in out, out[-300:] + err[-300:]


def python_ssl(srv, roots, name):
    """Python's ssl module (OpenSSL) with |roots| as cafile, as the Python
    client loads its ca_cert_path, checking |name|."""
    import ssl  # here, not at the top: the BoringSSL child process must not load OpenSSL

    try:
        ctx = ssl.create_default_context(cafile=os.path.join(srv.d, roots))
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                s.sendall((ECHO + "\n").encode())
                return ECHO in s.recv(256).decode(), ""
    except (ssl.SSLError, OSError) as e:
        return False, str(e)


def gnutls_client(srv, roots, name):
    rc, out, err = run(["gnutls-cli", "--x509cafile", roots, "--port", str(srv.port),
                        "--verify-hostname", name, "127.0.0.1"], srv.d, stdin=ECHO + "\n")
    return rc == 0 and "Handshake was completed" in out and ECHO in out, out[-300:] + err[-300:]


# ---- tests ------------------------------------------------------------------------

def test_tools_present():
    for t in TOOLS:
        check(shutil.which(t) is not None, f"{t} is installed (scripts/install-deps)")
    check(bool(glob.glob("/usr/lib/*/android/libssl.so.0")),
          "BoringSSL's libssl is installed (android-libboringssl)")


def test_generated_chain_everywhere():
    d = fresh_dir("new")
    cert_gen(d)
    rc, out, err = run(["openssl", "verify", "-CAfile", "ca.pem", "-untrusted", "cert.pem",
                        "-purpose", "sslserver", "-verify_hostname", "localhost", "cert.pem"], d)
    check(rc == 0 and "cert.pem: OK" in out, "openssl verify: the leaf against ca.pem", out + err)
    rc, out, err = run(["openssl", "verify", "-CAfile", "cert.pem", "-purpose", "sslserver",
                        "-verify_hostname", "localhost", "cert.pem"], d)
    check(rc == 0 and "cert.pem: OK" in out, "openssl verify: the leaf against cert.pem",
          out + err)
    srv = TlsServer(d)
    try:
        for roots in ("ca.pem", "cert.pem"):
            ok, detail = bssl_tool(srv, roots)
            check(ok is True, f"bssl tool: handshake and echo trusting {roots}", detail)
            got = bssl_lib(srv, roots, "localhost")
            check(got == "ok", f"BoringSSL library: localhost trusting {roots}", got)
            got = bssl_lib(srv, roots, "example.com")
            check(got.startswith("refused") and "ostname" in got,
                  f"BoringSSL library: a wrong name is refused trusting {roots}", got)
            ok, detail = openssl_client(srv, roots, "localhost")
            check(ok, f"openssl s_client: localhost trusting {roots}", detail)
            ok, detail = python_ssl(srv, roots, "localhost")
            check(ok, f"Python ssl (OpenSSL): localhost trusting {roots}", detail)
            ok, detail = python_ssl(srv, roots, "example.com")
            check(not ok and "mismatch" in detail,
                  f"Python ssl (OpenSSL): a wrong name is refused trusting {roots}", detail)
            ok, detail = gnutls_client(srv, roots, "localhost")
            check(ok, f"gnutls-cli: localhost trusting {roots}", detail)
            ok, detail = gnutls_client(srv, roots, "example.com")
            check(not ok, f"gnutls-cli: a wrong name is refused trusting {roots}", detail)
    finally:
        srv.stop()


def test_old_self_signed_refused_by_boringssl():
    d = fresh_dir("old")
    old_self_signed(d)
    srv = TlsServer(d)
    try:
        ok, detail = bssl_tool(srv, "cert.pem")
        check(ok is False, "bssl tool refuses the self-signed leaf as its own anchor", detail)
        got = bssl_lib(srv, "cert.pem", "localhost")
        check(got.startswith("refused"), "BoringSSL library refuses it too", got)
        # Why such pairs may stay: OpenSSL (the Python client) and GnuTLS (ours) accept it.
        ok, detail = openssl_client(srv, "cert.pem", "localhost")
        check(ok, "openssl s_client accepts the older kind", detail)
        ok, detail = python_ssl(srv, "cert.pem", "localhost")
        check(ok, "Python ssl accepts the older kind", detail)
        ok, detail = gnutls_client(srv, "cert.pem", "localhost")
        check(ok, "gnutls-cli accepts the older kind", detail)
    finally:
        srv.stop()


def cli_len(s, ca):
    rc, out, err = run([os.path.join(serverlib.ARGS.bin_dir, "nanasqlite-cli"), "--port",
                        str(s.port), "--ca", ca, "--server-name", "localhost", "len"], s.dir)
    return rc == 0 and out.strip() == "0", f"rc={rc} out={out!r} err={err!r}"


def test_server_and_cli():
    """The real server sends the chain; nanasqlite-cli (GnuTLS over QUIC)
    trusts either file; a server keeping an older self-signed pair still
    serves clients that trust its cert.pem."""
    s = serverlib.Server("certs-chain").start()
    try:
        for ca in ("ca.pem", "cert.pem"):
            ok, detail = cli_len(s, ca)
            check(ok, f"nanasqlite-cli trusting {ca}", detail)
    finally:
        s.stop()
    s = serverlib.Server("certs-old")
    for f in ("cert.pem", "key.pem", "ca.pem", "ca-key.pem"):
        if os.path.exists(os.path.join(s.dir, f)):
            os.unlink(os.path.join(s.dir, f))
    old_self_signed(s.dir)
    s.start()
    try:
        ok, detail = cli_len(s, "cert.pem")
        check(ok, "an older self-signed pair keeps serving", detail)
    finally:
        s.stop()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--bssl-client":
        sys.exit(bssl_lib_client(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    sys.exit(serverlib.run_main(globals()))
