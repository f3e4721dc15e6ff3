"""Shared by the tests: paths, the real server (through tests/e2e/serverlib.py)
and bounded waits.

The runner sets two environment variables:

NANASQLITE_BIN_DIR
    the directory holding nanasqlite-server, nanasqlite-cert-gen and
    nanasqlite-key-gen;
NANASQLITE_CLIENT_LIB
    the libnanasqlite-client.so to test (else the package's own search).

The package is imported from this source tree, not from an installed copy.
"""
import asyncio
import importlib.util
import os
import socket
import sys
import tempfile
import types
import unittest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(TESTS_DIR)  # python/
REPO_DIR = os.path.dirname(PYTHON_DIR)
SERVERLIB = os.environ.get("NANASQLITE_SERVERLIB",
                           os.path.join(REPO_DIR, "tests", "e2e", "serverlib.py"))

if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

# Upper bound of any single wait in the tests (seconds).
WAIT = 30.0

_serverlib = None
_tmp = None


def bin_dir():
    """NANASQLITE_BIN_DIR, checked; raises with a clear message when unusable."""
    d = os.environ.get("NANASQLITE_BIN_DIR")
    if not d:
        raise RuntimeError("set NANASQLITE_BIN_DIR to the directory holding nanasqlite-server, "
                           "nanasqlite-cert-gen and nanasqlite-key-gen")
    for tool in ("nanasqlite-server", "nanasqlite-cert-gen", "nanasqlite-key-gen"):
        if not os.access(os.path.join(d, tool), os.X_OK):
            raise RuntimeError(f"NANASQLITE_BIN_DIR={d!r} has no executable {tool}")
    return d


def serverlib():
    """tests/e2e/serverlib.py, imported by path and pointed at a temporary directory."""
    global _serverlib, _tmp
    if _serverlib is None:
        spec = importlib.util.spec_from_file_location("nanasqlite_e2e_serverlib", SERVERLIB)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _tmp = tempfile.TemporaryDirectory(prefix="nanasqlite-py-")
        mod.ARGS = types.SimpleNamespace(bin_dir=bin_dir(), tmp=_tmp.name)
        _serverlib = mod
    return _serverlib


def free_udp_port():
    """A loopback UDP port nothing listens on (just released by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerCase(unittest.TestCase):
    """A test class with its own nanasqlite-server (started once for the class).

    Subclasses may set SERVER_FLAGS, ACCOUNTS (a list for serverlib) and KEYS.
    """

    SERVER_FLAGS = ("--no-bans",)
    ACCOUNTS = None
    KEYS = ("nana",)

    @classmethod
    def setUpClass(cls):
        lib = serverlib()
        cls.server = lib.Server(f"py-{cls.__name__}", flags=cls.SERVER_FLAGS,
                                accounts=cls.ACCOUNTS, keys=cls.KEYS).start()
        cls.dir = cls.server.dir
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        lib = serverlib()
        failed_before = lib.CHECKS["failed"]
        cls.server.stop()
        if lib.CHECKS["failed"] != failed_before:
            raise AssertionError(f"sanitizer report in the server log ({cls.dir})")

    def path(self, name):
        """A file in the server's directory (cert.pem, nana_private.pem, ...)."""
        return os.path.join(self.dir, name)

    def client_kwargs(self, **over):
        """Constructor arguments of a client of this class's server."""
        kw = dict(host="127.0.0.1", port=self.port, ca_cert_path=self.path("cert.pem"),
                  private_key_path=self.path("nana_private.pem"), timeout=WAIT)
        kw.update(over)
        return kw


class AsyncServerCase(ServerCase):
    """ServerCase whose test methods may be coroutines, each run in a fresh
    event loop and bounded by WAIT seconds."""

    def run_async(self, coro, timeout=WAIT):
        async def bounded():
            return await asyncio.wait_for(coro, timeout)
        return asyncio.run(bounded())
