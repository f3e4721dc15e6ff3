"""The ctypes layer: structure layouts against the C header, error mapping,
and how the library is found. No server needed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

from _support import PYTHON_DIR, REPO_DIR

from nanasqlite_server import _native, errors
from nanasqlite_server.client import _exception

HEADER_DIR = os.path.join(REPO_DIR, "include")

STRUCTS = {
    "nana_result": _native.nana_result,
    "nana_client_opts": _native.nana_client_opts,
    "nana_call_opts": _native.nana_call_opts,
    "nana_aql_update": _native.nana_aql_update,
}


class LayoutTest(unittest.TestCase):
    """Every mirrored struct has the C compiler's size and field offsets."""

    def test_layouts_match_the_header(self):
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if cc is None or not os.path.exists(os.path.join(HEADER_DIR, "nanasqlite_client.h")):
            self.skipTest("no C compiler or no header")
        lines = []
        for name, cls in STRUCTS.items():
            lines.append(f'printf("\\"{name}\\": [%zu", sizeof({name}));')
            for field, _ in cls._fields_:
                lines.append(f'printf(", %zu", offsetof({name}, {field}));')
            lines.append('printf("],\\n");')
        src = textwrap.dedent("""\
            #include <stddef.h>
            #include <stdio.h>
            #include "nanasqlite_client.h"
            int main(void) {
                printf("{");
            %s
                printf("\\"end\\": 0}\\n");
                return 0;
            }
            """) % "\n".join("    " + x for x in lines)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "layout.c"), "w") as f:
                f.write(src)
            exe = os.path.join(d, "layout")
            subprocess.run([cc, "-std=c17", "-I", HEADER_DIR, "-o", exe,
                            os.path.join(d, "layout.c")], check=True, timeout=120)
            got = json.loads(subprocess.run([exe], check=True, capture_output=True,
                                            text=True, timeout=30).stdout)
        import ctypes
        for name, cls in STRUCTS.items():
            expected = [ctypes.sizeof(cls)] + [getattr(cls, f).offset for f, _ in cls._fields_]
            self.assertEqual(got[name], expected, name)

    def test_status_names(self):
        self.assertEqual(_native.status_name(_native.ETIMEOUT), "TimeoutError")
        self.assertEqual(_native.status_name(_native.EUNKNOWN), "UnknownOutcomeError")
        self.assertEqual(_native.status_name(_native.ECONNECT), "NanaSQLiteConnectionError")
        self.assertEqual(_native.status_name(_native.EAUTH), "AuthenticationError")
        self.assertEqual(_native.status_name(_native.ECLOSED), "NanaSQLiteClosedError")
        self.assertEqual(_native.status_name(_native.EBUSY), "BusyError")
        self.assertEqual(_native.status_name(_native.EBREAKER), "CircuitOpenError")
        self.assertEqual(_native.status_name(_native.EINVALID), "ValueError")
        self.assertEqual(_native.status_name(_native.EPROTOCOL), "ProtocolError")
        self.assertEqual(_native.status_name(_native.ENOMEM), "MemoryError")


def outcome(error_type, message="msg", code=None, status=_native.ESERVER):
    return _native.Outcome(status, error_type=error_type, message=message, code=code)


class ErrorMappingTest(unittest.TestCase):
    """error_type -> exception class, with .error_type and .code kept."""

    def test_builtins(self):
        for name, cls in [("ValueError", ValueError), ("TypeError", TypeError),
                          ("PermissionError", PermissionError), ("RuntimeError", RuntimeError),
                          ("AttributeError", AttributeError), ("MemoryError", MemoryError),
                          ("TimeoutError", TimeoutError)]:
            e = _exception(outcome(name, "what happened", code="busy"))
            self.assertIs(type(e), cls, name)
            self.assertEqual(str(e), "what happened")
            self.assertEqual(e.error_type, name)
            self.assertEqual(e.code, "busy")

    def test_package_classes(self):
        for name in errors.__all__:
            e = _exception(outcome(name, "why", code="timeout"))
            self.assertIs(type(e), getattr(errors, name), name)
            self.assertIsInstance(e, errors.NanaSQLiteError)
            self.assertEqual(str(e), "why")
            self.assertEqual((e.error_type, e.code), (name, "timeout"))

    def test_hierarchy(self):
        E = errors
        for sub in (E.AuthenticationError, E.UnknownOutcomeError, E.CircuitOpenError):
            self.assertTrue(issubclass(sub, E.NanaSQLiteConnectionError))
        for sub in (E.NanaSQLiteValidationError, E.NanaSQLiteDatabaseError,
                    E.NanaSQLiteTransactionError, E.NanaSQLiteConnectionError,
                    E.NanaSQLiteClosedError, E.NanaSQLiteLockError, E.NanaSQLiteCacheError,
                    E.BusyError, E.ProtocolError, E.InternalServerError):
            self.assertTrue(issubclass(sub, E.NanaSQLiteError))
        self.assertTrue(issubclass(E.NanaSQLiteError, Exception))

    def test_refused_submissions(self):
        from nanasqlite_server.client import _refused
        self.assertIs(type(_refused(_native.EBUSY)), errors.BusyError)
        self.assertIs(type(_refused(_native.ECLOSED)), errors.NanaSQLiteClosedError)
        self.assertIs(type(_refused(_native.EINVALID)), ValueError)
        self.assertIs(type(_refused(_native.ENOMEM)), MemoryError)
        self.assertIn("max_queued", str(_refused(_native.EBUSY)))

    def test_unknown_type(self):
        e = _exception(outcome("SomethingNewError", "details"))
        self.assertIs(type(e), errors.NanaSQLiteError)
        self.assertIn("SomethingNewError", str(e))
        self.assertIn("details", str(e))
        self.assertEqual(e.error_type, "SomethingNewError")

    def test_client_status_without_type(self):
        e = _exception(_native.Outcome(_native.ETIMEOUT, message="no reply in time"))
        self.assertIs(type(e), TimeoutError)
        self.assertEqual(e.error_type, "TimeoutError")
        e = _exception(_native.Outcome(_native.EUNKNOWN, message="lost"))
        self.assertIs(type(e), errors.UnknownOutcomeError)

    def test_key_errors(self):
        e = _exception(outcome("KeyError", "'a key'"), "__getitem__", ("a key",), {})
        self.assertEqual((type(e), e.args, str(e)), (KeyError, ("a key",), "'a key'"))
        e = _exception(outcome("KeyError", "'k'"), "patch", (), {"key": "k"})
        self.assertEqual(e.args, ("k",))
        # other methods: the server's message is the key's repr, read back
        e = _exception(outcome("KeyError", "'quoted'"), "something", (), {})
        self.assertEqual(e.args, ("quoted",))
        e = _exception(outcome("KeyError", "popitem(): dictionary is empty"), "popitem", (), {})
        self.assertEqual(e.args, ("popitem(): dictionary is empty",))
        self.assertEqual(e.error_type, "KeyError")


class LoadingTest(unittest.TestCase):
    """The search order, seen from a fresh interpreter."""

    def run_python(self, code, **env_over):
        env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
        for k, v in env_over.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=60)

    def test_env_path_is_used(self):
        lib = os.environ.get("NANASQLITE_CLIENT_LIB")
        if not lib:
            self.skipTest("NANASQLITE_CLIENT_LIB not set")
        r = self.run_python("from nanasqlite_server import _native; print(_native.lib_path)")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), lib)

    def test_bad_env_path_is_a_clear_import_error(self):
        r = self.run_python("import nanasqlite_server.client",
                            NANASQLITE_CLIENT_LIB="/nonexistent/libnanasqlite-client.so")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("NANASQLITE_CLIENT_LIB", r.stderr)
        self.assertIn("/nonexistent/libnanasqlite-client.so", r.stderr)

    def test_search_without_env(self):
        r = self.run_python("from nanasqlite_server import _native; print(_native.lib_path)",
                            NANASQLITE_CLIENT_LIB=None)
        if r.returncode == 0:  # installed (or bundled) somewhere: fine
            self.assertIn("nanasqlite-client", r.stdout)
        else:
            self.assertIn("ImportError", r.stderr)
            for what in ("Tried", "bundled copy", "find_library", "/usr/local/lib"):
                self.assertIn(what, r.stderr)

    def test_errors_import_without_the_library(self):
        r = self.run_python("import nanasqlite_server as n; print(n.NanaSQLiteError.__name__)",
                            NANASQLITE_CLIENT_LIB="/nonexistent/lib.so")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "NanaSQLiteError")

    def test_lazy_top_level_names(self):
        r = self.run_python("import nanasqlite_server as n; print(n.RemoteNanaSQLite.__name__, "
                            "n.RemoteNanaSQLiteSync.__name__)")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["RemoteNanaSQLite", "RemoteNanaSQLiteSync"])


if __name__ == "__main__":
    unittest.main()
