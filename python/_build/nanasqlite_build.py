"""A small PEP 517 build backend for the nanasqlite_server package.

It needs nothing but the standard library, so ``pip install ./python`` works
offline (pyproject.toml: ``requires = []``, ``backend-path = ["_build"]``).

The wheel bundles libnanasqlite-client when it finds one, so an installed
package works without the C library installed system-wide. It looks, in
this order, at:

1. the config setting ``client-lib`` (``pip install -C client-lib=PATH``;
   ``-C client-lib=none`` builds a pure wheel without it);
2. the environment variable ``NANASQLITE_CLIENT_LIB``;
3. ``../build/src/client/libnanasqlite-client.so`` next to this python/ directory
   (the C project's default build directory).

Symlinks are resolved and the real file is stored under its ELF soname
(``nanasqlite_server/_lib/<soname>``). A wheel with the library is tagged for
this platform (``py3-none-linux_x86_64``); without it, ``py3-none-any``.
A path given by 1 or 2 that does not exist is an error, not a silent
fallback to a pure wheel.

Hooks: get_requires_for_build_{wheel,sdist,editable} (all return []),
prepare_metadata_for_build_{wheel,editable}, build_wheel, build_sdist,
build_editable (a wheel holding a .pth that points at this source tree).
"""
import base64
import hashlib
import io
import os
import re
import struct
import sysconfig
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # python/
PACKAGE = "nanasqlite_server"
LIB_BASENAME = "libnanasqlite-client.so"
ENV_VAR = "NANASQLITE_CLIENT_LIB"
DEFAULT_LIB = os.path.join(ROOT, os.pardir, "build", "src", "client", LIB_BASENAME)

# ---- project metadata (from pyproject.toml) ------------------------------------


def _read_project():
    """The [project] table of pyproject.toml as a dict.

    Uses tomllib (Python 3.11+); older Pythons get a small reader that
    understands the `key = "string"` and string-array lines used there.
    """
    path = os.path.join(ROOT, "pyproject.toml")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        import tomllib
    except ImportError:
        return _read_project_simple(raw.decode("utf-8"))
    return tomllib.loads(raw.decode("utf-8")).get("project", {})


def _read_project_simple(text):
    project, section, key, items = {}, None, None, None
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if items is not None:  # inside a multi-line array
            items += re.findall(r'"((?:[^"\\]|\\.)*)"', line)
            if line.endswith("]"):
                project[key], items = items, None
            continue
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            section = m.group(1).strip()
            continue
        if section != "project":
            continue
        m = re.match(r'^([A-Za-z0-9_-]+)\s*=\s*(.*)$', line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if value.startswith('"'):
            project[key] = re.match(r'"((?:[^"\\]|\\.)*)"', value).group(1)
        elif value.startswith("["):
            items = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
            if value.endswith("]"):
                project[key], items = items, None
    return project


def _normalized(name):
    """A project name as wheel and sdist file names spell it (PEP 427 / 625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata_text(project):
    """The METADATA (core metadata 2.1) file for |project|."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
    ]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    keywords = project.get("keywords")
    if keywords:
        lines.append("Keywords: " + (keywords if isinstance(keywords, str) else ",".join(keywords)))
    for c in project.get("classifiers", []):
        lines.append(f"Classifier: {c}")
    for dep in project.get("dependencies", []):
        lines.append(f"Requires-Dist: {dep}")
    body = ""
    readme = project.get("readme")
    if isinstance(readme, dict):
        readme = readme.get("file")
    if readme:
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            body = f.read()
        lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + body


def _dist_info_name(project):
    return f"{_normalized(project['name'])}-{project['version']}.dist-info"


# ---- the shared library -------------------------------------------------------


def _find_library(config_settings):
    """The library file to bundle (symlinks resolved), or None for a pure wheel."""
    setting = (config_settings or {}).get("client-lib")
    if isinstance(setting, list):
        setting = setting[-1]
    if setting is not None:
        if setting.lower() in ("", "none", "no", "0"):
            return None
        source, path = "config setting client-lib", setting
    elif os.environ.get(ENV_VAR):
        source, path = ENV_VAR, os.environ[ENV_VAR]
    else:
        path = os.path.realpath(DEFAULT_LIB)
        return path if os.path.isfile(path) else None
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise FileNotFoundError(f"{source} names {path!r}, which is not a file")
    return real


def elf_soname(path):
    """The DT_SONAME of an ELF shared object, or None if it has none (or is not ELF)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    try:
        if is64:
            shoff, = struct.unpack_from(end + "Q", data, 0x28)
            shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
            sh_fmt, dyn_fmt = end + "IIQQQQIIQQ", end + "qQ"
        else:
            shoff, = struct.unpack_from(end + "I", data, 0x20)
            shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
            sh_fmt, dyn_fmt = end + "IIIIIIIIII", end + "iI"
        sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
        for sh in sections:
            if sh[1] != 6:  # SHT_DYNAMIC
                continue
            offset, size, link = sh[4], sh[5], sh[6]
            strtab_off = sections[link][4]
            step = struct.calcsize(dyn_fmt)
            for pos in range(offset, offset + size, step):
                tag, val = struct.unpack_from(dyn_fmt, data, pos)
                if tag == 0:  # DT_NULL
                    break
                if tag == 14:  # DT_SONAME
                    start = strtab_off + val
                    name = data[start:data.index(b"\0", start)].decode("ascii")
                    return name if name.startswith("lib") and "/" not in name else None
    except (struct.error, IndexError, ValueError, UnicodeDecodeError):
        return None
    return None


def _platform_tag():
    return re.sub(r"[^A-Za-z0-9_]", "_", sysconfig.get_platform())


# ---- archives -----------------------------------------------------------------


def _timestamp():
    """Fixed file times (SOURCE_DATE_EPOCH when set) so builds are reproducible."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01
    return max(epoch, 315532800)


def _package_files():
    """(archive name, source path) of every module of the package, sorted."""
    out = []
    pkg_dir = os.path.join(ROOT, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(pkg_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "_lib"))
        for name in sorted(filenames):
            if name.endswith((".py", ".typed")):
                full = os.path.join(dirpath, name)
                out.append((os.path.relpath(full, ROOT).replace(os.sep, "/"), full))
    return out


def _record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _WheelWriter:
    """Writes a wheel: the files given, then the RECORD listing them with hashes."""

    def __init__(self, path, dist_info):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.dist_info = dist_info
        self.records = []
        self.date_time = time.gmtime(_timestamp())[:6]

    def add(self, arcname, data, mode=0o644):
        info = zipfile.ZipInfo(arcname, date_time=self.date_time)
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        self.records.append(f"{arcname},{_record_hash(data)},{len(data)}")

    def close(self):
        record = f"{self.dist_info}/RECORD"
        text = "\n".join(self.records + [f"{record},,"]) + "\n"
        info = zipfile.ZipInfo(record, date_time=self.date_time)
        info.external_attr = 0o100644 << 16
        self.zip.writestr(info, text.encode("utf-8"), compress_type=zipfile.ZIP_DEFLATED)
        self.zip.close()


def _wheel_text(tag, purelib):
    return ("Wheel-Version: 1.0\n"
            "Generator: nanasqlite_build 0.1.0\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\n"
            f"Tag: {tag}\n")


def _write_metadata_dir(directory, project, tag, purelib):
    dist_info = _dist_info_name(project)
    path = os.path.join(directory, dist_info)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata_text(project))
    with open(os.path.join(path, "WHEEL"), "w", encoding="utf-8") as f:
        f.write(_wheel_text(tag, purelib))
    with open(os.path.join(path, "top_level.txt"), "w", encoding="utf-8") as f:
        f.write(PACKAGE + "\n")
    return dist_info


def _wheel_tag(lib):
    return f"py3-none-{_platform_tag()}" if lib else "py3-none-any"


# ---- PEP 517 / 660 hooks ---------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    lib = _find_library(config_settings)
    return _write_metadata_dir(metadata_directory, _read_project(), _wheel_tag(lib), lib is None)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _write_metadata_dir(metadata_directory, _read_project(), "py3-none-any", True)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """Builds the wheel into |wheel_directory|; returns its file name."""
    project = _read_project()
    lib = _find_library(config_settings)
    tag = _wheel_tag(lib)
    dist_info = _dist_info_name(project)
    name = f"{_normalized(project['name'])}-{project['version']}-{tag}.whl"
    os.makedirs(wheel_directory, exist_ok=True)
    w = _WheelWriter(os.path.join(wheel_directory, name), dist_info)
    try:
        for arcname, src in _package_files():
            with open(src, "rb") as f:
                w.add(arcname, f.read())
        if lib:
            soname = elf_soname(lib) or LIB_BASENAME
            with open(lib, "rb") as f:
                w.add(f"{PACKAGE}/_lib/{soname}", f.read(), 0o755)
        w.add(f"{dist_info}/METADATA", _metadata_text(project).encode("utf-8"))
        w.add(f"{dist_info}/WHEEL", _wheel_text(tag, lib is None).encode("utf-8"))
        w.add(f"{dist_info}/top_level.txt", (PACKAGE + "\n").encode("utf-8"))
    finally:
        w.close()
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable wheel: a .pth file that puts this source tree on sys.path.

    The package then loads the C library from NANASQLITE_CLIENT_LIB or the
    system (an editable install bundles no copy).
    """
    project = _read_project()
    dist_info = _dist_info_name(project)
    norm = _normalized(project["name"])
    name = f"{norm}-{project['version']}-py3-none-any.whl"
    os.makedirs(wheel_directory, exist_ok=True)
    w = _WheelWriter(os.path.join(wheel_directory, name), dist_info)
    try:
        w.add(f"__editable__.{norm}-{project['version']}.pth", (ROOT + "\n").encode("utf-8"))
        w.add(f"{dist_info}/METADATA", _metadata_text(project).encode("utf-8"))
        w.add(f"{dist_info}/WHEEL", _wheel_text("py3-none-any", True).encode("utf-8"))
        w.add(f"{dist_info}/top_level.txt", (PACKAGE + "\n").encode("utf-8"))
    finally:
        w.close()
    return name


def build_sdist(sdist_directory, config_settings=None):
    """A source archive: pyproject.toml, README.md, the backend, the package, the tests."""
    project = _read_project()
    base = f"{_normalized(project['name'])}-{project['version']}"
    name = f"{base}.tar.gz"
    files = [("pyproject.toml", os.path.join(ROOT, "pyproject.toml")),
             ("README.md", os.path.join(ROOT, "README.md"))]
    for sub in ("_build", PACKAGE, "tests"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, sub)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "_lib"))
            for fn in sorted(filenames):
                if fn.endswith((".py", ".typed")):
                    full = os.path.join(dirpath, fn)
                    files.append((os.path.relpath(full, ROOT).replace(os.sep, "/"), full))
    mtime = _timestamp()
    os.makedirs(sdist_directory, exist_ok=True)
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        def add(arcname, data):
            info = tarfile.TarInfo(f"{base}/{arcname}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            t.addfile(info, io.BytesIO(data))
        add("PKG-INFO", _metadata_text(project).encode("utf-8"))
        for arcname, full in files:
            if os.path.isfile(full):
                with open(full, "rb") as f:
                    add(arcname, f.read())
    return name
