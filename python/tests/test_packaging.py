"""The in-tree build backend (python/_build/nanasqlite_build.py) and an offline
``pip install`` into fresh virtual environments."""
import base64
import csv
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile

from _support import PYTHON_DIR

BACKEND = os.path.join(PYTHON_DIR, "_build", "nanasqlite_build.py")
LIB = os.environ.get("NANASQLITE_CLIENT_LIB")
MODULES = ["nanasqlite_server/__init__.py", "nanasqlite_server/_native.py",
           "nanasqlite_server/client.py", "nanasqlite_server/errors.py"]
DIST_INFO = "nanasqlite_server-0.1.0.dist-info"


def load_backend():
    spec = importlib.util.spec_from_file_location("nanasqlite_build_under_test", BACKEND)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_record(test, zf):
    """Every file of the wheel is in RECORD with its sha256 and size, and only those."""
    names = set(zf.namelist())
    rows = list(csv.reader(io.StringIO(zf.read(f"{DIST_INFO}/RECORD").decode())))
    listed = set()
    for path, digest, size in rows:
        listed.add(path)
        if path == f"{DIST_INFO}/RECORD":
            test.assertEqual((digest, size), ("", ""))
            continue
        data = zf.read(path)
        algo, _, value = digest.partition("=")
        test.assertEqual(algo, "sha256")
        want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        test.assertEqual(value, want, path)
        test.assertEqual(int(size), len(data), path)
    test.assertEqual(listed, names)


class BackendTest(unittest.TestCase):
    """The PEP 517 hooks, called directly."""

    def setUp(self):
        self.backend = load_backend()
        self.tmp = tempfile.mkdtemp(prefix="nanasqlite-build-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_requires_nothing(self):
        self.assertEqual(self.backend.get_requires_for_build_wheel(), [])
        self.assertEqual(self.backend.get_requires_for_build_sdist(), [])
        self.assertEqual(self.backend.get_requires_for_build_editable(), [])

    def test_pure_wheel(self):
        name = self.backend.build_wheel(self.tmp, {"client-lib": "none"})
        self.assertEqual(name, "nanasqlite_server-0.1.0-py3-none-any.whl")
        with zipfile.ZipFile(os.path.join(self.tmp, name)) as zf:
            check_record(self, zf)
            names = zf.namelist()
            for m in MODULES:
                self.assertIn(m, names)
            self.assertFalse([n for n in names if "/_lib/" in n])
            self.assertFalse([n for n in names if "__pycache__" in n or "tests/" in n])
            wheel = zf.read(f"{DIST_INFO}/WHEEL").decode()
            self.assertIn("Root-Is-Purelib: true", wheel)
            self.assertIn("Tag: py3-none-any", wheel)
            meta = zf.read(f"{DIST_INFO}/METADATA").decode()
        for line in ("Metadata-Version: 2.1", "Name: nanasqlite-server", "Version: 0.1.0",
                     "Requires-Python: >=3.8", "Description-Content-Type: text/markdown"):
            self.assertIn(line + "\n", meta)
        self.assertIn("RemoteNanaSQLite", meta)  # the README is the description

    def test_wheel_bundles_the_library(self):
        if not LIB:
            self.skipTest("NANASQLITE_CLIENT_LIB not set")
        name = self.backend.build_wheel(self.tmp)
        tag = self.backend._platform_tag()
        self.assertEqual(name, f"nanasqlite_server-0.1.0-py3-none-{tag}.whl")
        soname = self.backend.elf_soname(os.path.realpath(LIB))
        self.assertTrue(soname and soname.startswith("libnanasqlite-client.so"), soname)
        readelf = shutil.which("readelf")
        if readelf:
            out = subprocess.run([readelf, "-d", os.path.realpath(LIB)], capture_output=True,
                                 text=True, timeout=30).stdout
            self.assertIn(f"[{soname}]", out)
        with zipfile.ZipFile(os.path.join(self.tmp, name)) as zf:
            check_record(self, zf)
            with open(os.path.realpath(LIB), "rb") as f:
                self.assertEqual(zf.read(f"nanasqlite_server/_lib/{soname}"), f.read())
            self.assertIn("Root-Is-Purelib: false", zf.read(f"{DIST_INFO}/WHEEL").decode())

    def test_missing_library_path_is_an_error(self):
        with self.assertRaises(FileNotFoundError):
            self.backend.build_wheel(self.tmp, {"client-lib": "/nonexistent/lib.so"})

    def test_prepared_metadata_matches_the_wheel(self):
        settings = {"client-lib": "none"}
        d = self.backend.prepare_metadata_for_build_wheel(self.tmp, settings)
        self.assertEqual(d, DIST_INFO)
        with open(os.path.join(self.tmp, d, "METADATA"), encoding="utf-8") as f:
            prepared = f.read()
        out = os.path.join(self.tmp, "out")
        name = self.backend.build_wheel(out, settings, os.path.join(self.tmp, d))
        with zipfile.ZipFile(os.path.join(out, name)) as zf:
            self.assertEqual(zf.read(f"{DIST_INFO}/METADATA").decode("utf-8"), prepared)

    def test_sdist(self):
        name = self.backend.build_sdist(self.tmp)
        self.assertEqual(name, "nanasqlite_server-0.1.0.tar.gz")
        with tarfile.open(os.path.join(self.tmp, name)) as t:
            names = t.getnames()
        base = "nanasqlite_server-0.1.0/"
        for f in ["PKG-INFO", "pyproject.toml", "README.md", "_build/nanasqlite_build.py",
                  "tests/test_client.py"] + MODULES:
            self.assertIn(base + f, names)

    def test_editable_wheel(self):
        name = self.backend.build_editable(self.tmp)
        with zipfile.ZipFile(os.path.join(self.tmp, name)) as zf:
            check_record(self, zf)
            pth = [n for n in zf.namelist() if n.endswith(".pth")]
            self.assertEqual(len(pth), 1)
            self.assertEqual(zf.read(pth[0]).decode().strip(), PYTHON_DIR)

    def test_simple_pyproject_reader_agrees_with_tomllib(self):
        try:
            import tomllib
        except ImportError:
            self.skipTest("no tomllib")
        with open(os.path.join(PYTHON_DIR, "pyproject.toml"), encoding="utf-8") as f:
            text = f.read()
        full = tomllib.loads(text)["project"]
        simple = self.backend._read_project_simple(text)
        for key in ("name", "version", "description", "readme", "requires-python",
                    "keywords", "classifiers", "dependencies"):
            self.assertEqual(simple.get(key), full.get(key), key)


def interpreters():
    """The Pythons to try pip with: this one, and Debian's /usr/bin/python3 if different."""
    out = [sys.executable]
    deb = "/usr/bin/python3"
    if os.path.exists(deb) and os.path.realpath(deb) != os.path.realpath(sys.executable):
        out.append(deb)
    return out


class PipInstallTest(unittest.TestCase):
    """`pip install --no-index ./python` in a fresh venv, offline, with each Python."""

    def run_cmd(self, args, env=None, timeout=300):
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=tempfile.gettempdir())
        self.assertEqual(r.returncode, 0, f"{args}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def clean_env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "NANASQLITE_CLIENT_LIB", "VIRTUAL_ENV")
               and not k.startswith("PIP_")}
        env.update(extra)
        return env

    def make_venv(self, python):
        d = tempfile.mkdtemp(prefix="nanasqlite-venv-")
        self.addCleanup(shutil.rmtree, d, True)
        r = subprocess.run([python, "-m", "venv", d], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            self.skipTest(f"{python} -m venv is not available: {r.stderr.strip()[-200:]}")
        return os.path.join(d, "bin", "python")

    def pip_install(self, vpy, *options, **env):
        self.run_cmd([vpy, "-m", "pip", "install", "--no-index", "--no-cache-dir",
                      "--disable-pip-version-check", *options, PYTHON_DIR],
                     env=self.clean_env(**env))

    def test_install_bundling_the_library(self):
        if not LIB:
            self.skipTest("NANASQLITE_CLIENT_LIB not set")
        for python in interpreters():
            with self.subTest(python=python):
                vpy = self.make_venv(python)
                self.pip_install(vpy, NANASQLITE_CLIENT_LIB=LIB)
                out = self.run_cmd([vpy, "-c",
                                    "import nanasqlite_server.client as c, nanasqlite_server as n;"
                                    "print(c._native.lib_path); print(n.__file__);"
                                    "print(c.RemoteNanaSQLite.__name__)"],
                                   env=self.clean_env())
                lib_path, pkg_file, cls = out.split("\n")[:3]
                self.assertIn(os.path.join("site-packages", "nanasqlite_server", "_lib",
                                           "libnanasqlite-client.so"), lib_path)
                self.assertTrue(pkg_file.startswith(os.path.dirname(os.path.dirname(vpy))))
                self.assertEqual(cls, "RemoteNanaSQLite")

    def test_install_pure(self):
        vpy = self.make_venv(interpreters()[-1])
        self.pip_install(vpy, "--config-settings", "client-lib=none")
        r = subprocess.run([vpy, "-c", "import nanasqlite_server, glob, os;"
                            "d = os.path.dirname(nanasqlite_server.__file__);"
                            "print(glob.glob(os.path.join(d, '_lib', '*')))"],
                           capture_output=True, text=True, timeout=60, env=self.clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "[]")
        if LIB:
            out = self.run_cmd([vpy, "-c", "import nanasqlite_server.client as c;"
                                "print(c._native.lib_path)"],
                               env=self.clean_env(NANASQLITE_CLIENT_LIB=LIB))
            self.assertEqual(out.strip(), LIB)


if __name__ == "__main__":
    unittest.main()
