#!/usr/bin/env python3
"""Interop of our QUIC transport with an independent stack: quic-go 0.29.

Our echo server (nanasqlite-quic-echo) against the quic-go client, and
the quic-go echo server against our client, with and without mutual TLS,
including the refusals (no client certificate, a certificate from another
CA). Every process is bounded in time and killed at the end.

Usage: test_quicgo.py NANASQLITE_QUIC_ECHO BUILD_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

ECHO = None
GO_PEER = None
CERTS = None


def run(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


class Server:
    """Starts a server process and waits for its ready file (its port)."""

    def __init__(self, args, ready):
        self.ready = ready
        if os.path.exists(ready):
            os.unlink(ready)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.time() + 15
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                out, err = self.proc.communicate(timeout=5)
                raise RuntimeError("server did not start: " + err)
            time.sleep(0.05)
        with open(ready) as f:
            self.port = int(f.read().strip())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def c(name):
    return os.path.join(CERTS, name)


class OurServerGoClient(unittest.TestCase):
    def start(self, *extra):
        return Server([ECHO, "server", "--listen", "127.0.0.1:0", "--cert", c("server.pem"),
                       "--key", c("server.key"), "--ca", c("ca.pem"), "--ready-file",
                       c("ready-ours"), "--max-seconds", "60"] + list(extra), c("ready-ours"))

    def go_client(self, port, *extra):
        return run([GO_PEER, "client", "--connect", "127.0.0.1:%d" % port, "--ca", c("ca.pem"),
                    "--server-name", "localhost", "--streams", "16", "--size", "70000",
                    "--timeout", "20"] + list(extra))

    def test_echo(self):
        s = self.start()
        try:
            r = self.go_client(s.port)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("ok streams=16 bytes=1120000", r.stdout)
        finally:
            s.stop()

    def test_echo_with_retry(self):
        s = self.start("--retry", "always")
        try:
            r = self.go_client(s.port)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            s.stop()

    def test_mtls(self):
        s = self.start("--client-cert", "require")
        try:
            r = self.go_client(s.port, "--cert", c("client.pem"), "--key", c("client.key"))
            self.assertEqual(r.returncode, 0, r.stderr)
            r = self.go_client(s.port)
            self.assertNotEqual(r.returncode, 0, "no certificate must be refused")
            r = self.go_client(s.port, "--cert", c("rogue.pem"), "--key", c("rogue.key"))
            self.assertNotEqual(r.returncode, 0, "an untrusted certificate must be refused")
        finally:
            s.stop()


class GoServerOurClient(unittest.TestCase):
    def start(self, *extra):
        return Server([GO_PEER, "server", "--listen", "127.0.0.1:0", "--cert", c("server.pem"),
                       "--key", c("server.key"), "--ready-file", c("ready-go"),
                       "--max-seconds", "60"] + list(extra), c("ready-go"))

    def our_client(self, port, *extra):
        return run([ECHO, "client", "--connect", "127.0.0.1:%d" % port, "--ca", c("ca.pem"),
                    "--server-name", "localhost", "--streams", "16", "--size", "70000",
                    "--timeout", "20"] + list(extra))

    def test_echo(self):
        s = self.start()
        try:
            r = self.our_client(s.port)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("ok streams=16 bytes=1120000", r.stdout)
        finally:
            s.stop()

    def test_mtls(self):
        s = self.start("--client-ca", c("ca.pem"), "--require-client-cert")
        try:
            r = self.our_client(s.port, "--cert", c("client.pem"), "--key", c("client.key"))
            self.assertEqual(r.returncode, 0, r.stderr)
            r = self.our_client(s.port)
            self.assertNotEqual(r.returncode, 0, "no certificate must be refused")
        finally:
            s.stop()

    def test_wrong_server_name(self):
        s = self.start()
        try:
            r = self.our_client(s.port, "--server-name", "db.example.com")
            self.assertNotEqual(r.returncode, 0, "a certificate for another name must be refused")
        finally:
            s.stop()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ECHO = os.path.abspath(sys.argv.pop(1))
    build = os.path.abspath(sys.argv.pop(1))
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(build, "interop")
    b = run([os.path.join(here, "build-quicgo.sh"), out], timeout=600)
    if b.returncode != 0:
        print(b.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)
    GO_PEER = os.path.join(out, "quicgo_peer")
    CERTS = tempfile.mkdtemp(prefix="quicgo-")
    try:
        r = run([ECHO, "certs", CERTS])
        if r.returncode != 0:
            sys.exit("certs: " + r.stderr)
        result = unittest.main(exit=False, verbosity=2).result
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
    failed = len(result.failures) + len(result.errors)
    print("{} passed, {} failed".format(result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
