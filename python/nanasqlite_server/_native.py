"""ctypes bindings to libnanasqlite-client (include/nanasqlite_client.h).

This module finds and loads the shared library, mirrors the structures the
package uses (field for field, in the header's order), declares the
argument and result types of every function it calls, and turns a filled
``nana_result`` into plain Python values before freeing it.

The library is looked for in this order; the first that loads wins:

1. the path in the environment variable ``NANASQLITE_CLIENT_LIB`` (when it is
   set, nothing else is tried: a wrong setting is an error, not a fallback);
2. a copy bundled in this package, ``nanasqlite_server/_lib/libnanasqlite-client.so*``
   (the wheel carries one when it was built next to the C build);
3. ``ctypes.util.find_library("nanasqlite-client")`` (the linker cache, where
   ``make install`` + ``ldconfig`` puts it);
4. the plain names ``libnanasqlite-client.so`` and ``libnanasqlite-client.so.0``
   (the dynamic loader's own search: ``LD_LIBRARY_PATH``, the cache);
5. ``/usr/local/lib/libnanasqlite-client.so`` (installed but ``ldconfig`` not run).

If none loads, ``ImportError`` lists every attempt and why it failed.
"""
import ctypes
import ctypes.util
import glob
import os

ENV_VAR = "NANASQLITE_CLIENT_LIB"
LIB_NAME = "nanasqlite-client"
_HERE = os.path.dirname(os.path.abspath(__file__))

# nana_client_status (the values of nana_result.status and of return codes).
OK = 0
ESERVER = 1
ETIMEOUT = 2
EUNKNOWN = 3
ECONNECT = 4
EAUTH = 5
ECLOSED = 6
EBUSY = 7
EBREAKER = 8
EINVALID = 9
EPROTOCOL = 10
ENOMEM = 11
EQUERY = 12

_UINT_MAX = 0xFFFFFFFF


class nana_result(ctypes.Structure):
    """``struct nana_result``: the outcome of one call (owned strings)."""

    _fields_ = [
        ("status", ctypes.c_int),
        ("json", ctypes.c_void_p),
        ("json_len", ctypes.c_size_t),
        ("error_type", ctypes.c_void_p),
        ("message", ctypes.c_void_p),
        ("code", ctypes.c_void_p),
        ("token", ctypes.c_uint64),
    ]


class nana_client_opts(ctypes.Structure):
    """``struct nana_client_opts``: how to connect (strings are copied by the library)."""

    _fields_ = [
        ("host", ctypes.c_char_p),
        ("port", ctypes.c_uint16),
        ("server_name", ctypes.c_char_p),
        ("ca_file", ctypes.c_char_p),
        ("key_file", ctypes.c_char_p),
        ("account", ctypes.c_char_p),
        ("cert_file", ctypes.c_char_p),
        ("cert_key_file", ctypes.c_char_p),
        ("connect_timeout_ms", ctypes.c_uint),
        ("call_timeout_ms", ctypes.c_uint),
        ("reconnect_min_ms", ctypes.c_uint),
        ("reconnect_max_ms", ctypes.c_uint),
        ("max_queued", ctypes.c_uint),
        ("max_reply_bytes", ctypes.c_uint),
        ("idle_timeout_ms", ctypes.c_uint),
        ("protocol", ctypes.c_int),  # 0: the NanaSQLite protocol (1: gRPC)
        ("transport", ctypes.c_int),  # TRANSPORTS: 0 auto, 1 QUIC only, 2 HTTP/2 only
        ("fallback_ms", ctypes.c_uint),
    ]


# nana_client_opts.transport by name: "auto" tries QUIC and falls back to
# gRPC over HTTP/2 on TCP (same port) when QUIC gets no answer in time.
TRANSPORTS = {"auto": 0, "quic": 1, "h2": 2}


class nana_call_opts(ctypes.Structure):
    """``struct nana_call_opts``: the database, table and timeout of one call."""

    _fields_ = [
        ("db", ctypes.c_char_p),
        ("table", ctypes.c_char_p),
        ("timeout_ms", ctypes.c_uint),
    ]


class nana_aql_update(ctypes.Structure):
    """``struct nana_aql_update``: one change of an AQL update."""

    _fields_ = [
        ("op", ctypes.c_int),  # 1 set, 2 add, 3 mul
        ("field", ctypes.c_char_p),
        ("value_json", ctypes.c_char_p),
    ]


# void (*nana_client_done_fn)(void *ud, nana_result *r). Only NULL is passed
# (results come through the completion fd), but the argtype is declared
# exactly so that a NULL travels as a function pointer.
DONE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(nana_result))

_CLIENT_P = ctypes.c_void_p  # nana_client * (opaque)
_NO_DONE = DONE_FN()  # a NULL callback


def _declare(lib):
    """Sets argtypes/restype of every function this package calls."""
    R = ctypes.POINTER(nana_result)
    CO = ctypes.POINTER(nana_call_opts)
    s = ctypes.c_char_p
    B = ctypes.c_char_p  # const uint8_t * (bytes in)
    Z = ctypes.c_size_t
    BP = ctypes.POINTER(ctypes.c_void_p)  # uint8_t ** (a buffer out)
    ZP = ctypes.POINTER(ctypes.c_size_t)
    I64 = ctypes.c_int64
    table = {
        "nana_result_free": (None, [R]),
        "nana_client_status_name": (ctypes.c_char_p, [ctypes.c_int]),
        "nana_client_opts_init": (None, [ctypes.POINTER(nana_client_opts)]),
        "nana_client_connect": (ctypes.c_int, [ctypes.POINTER(nana_client_opts),
                                               ctypes.POINTER(_CLIENT_P), R]),
        "nana_client_close": (None, [_CLIENT_P]),
        "nana_client_call": (ctypes.c_int, [_CLIENT_P, s, s, s, CO, R]),
        "nana_client_submit": (ctypes.c_int, [_CLIENT_P, s, s, s, CO, DONE_FN,
                                              ctypes.c_void_p, ctypes.c_uint64]),
        "nana_client_completion_fd": (ctypes.c_int, [_CLIENT_P]),
        "nana_client_next_done": (ctypes.c_int, [_CLIENT_P, R]),
        "nana_client_pending": (ctypes.c_uint, [_CLIENT_P]),
        "nana_client_connected": (ctypes.c_int, [_CLIENT_P]),
        "nana_client_reconnects": (ctypes.c_uint64, [_CLIENT_P]),
        # AQL (the amaters.aql query service on the gRPC door)
        "nana_client_aql_free": (None, [ctypes.c_void_p]),
        "nana_client_aql_build_get": (ctypes.c_int, [s, B, Z, BP, ZP, R]),
        "nana_client_aql_build_set": (ctypes.c_int, [s, B, Z, B, Z, BP, ZP, R]),
        "nana_client_aql_build_delete": (ctypes.c_int, [s, B, Z, BP, ZP, R]),
        "nana_client_aql_build_range": (ctypes.c_int, [s, B, Z, B, Z, I64, BP, ZP, R]),
        "nana_client_aql_build_filter": (ctypes.c_int, [s, s, B, Z, I64, I64, BP, ZP, R]),
        "nana_client_aql_build_update": (ctypes.c_int, [s, s, B, Z, ctypes.POINTER(nana_aql_update),
                                                        Z, BP, ZP, R]),
        "nana_client_aql_request": (ctypes.c_int, [B, Z, ctypes.c_uint32, BP, ZP, R]),
        "nana_client_aql_parse_predicate": (ctypes.c_int, [s, BP, ZP, R]),
        "nana_client_aql_execute": (ctypes.c_int, [_CLIENT_P, B, Z, CO, BP, ZP, R]),
        "nana_client_aql_batch": (ctypes.c_int, [_CLIENT_P, ctypes.POINTER(ctypes.c_void_p),
                                                 ctypes.POINTER(ctypes.c_size_t), Z, CO, BP, ZP,
                                                 R]),
        "nana_client_aql_answer_json": (ctypes.c_int, [B, Z, ctypes.c_int, ctypes.c_int,
                                                       ctypes.POINTER(ctypes.c_void_p), ZP, R]),
        "nana_client_aql_stream_open": (ctypes.c_int, [_CLIENT_P, B, Z, CO,
                                                       ctypes.POINTER(ctypes.c_void_p), R]),
        "nana_client_aql_stream_next": (ctypes.c_int, [ctypes.c_void_p, BP, ZP, BP, ZP, R]),
        "nana_client_aql_stream_total": (ctypes.c_uint64, [ctypes.c_void_p]),
        "nana_client_aql_stream_close": (None, [ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)  # AttributeError: not this library
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _candidates():
    """The (description, path-or-name) pairs to try after the environment
    variable, and notes on the places that had nothing to try."""
    out, notes = [], []
    bundled = bundled_library()
    if bundled:
        out.append(("bundled copy", bundled))
    else:
        notes.append(f"bundled copy: none in {os.path.join(_HERE, '_lib')}")
    found = ctypes.util.find_library(LIB_NAME)
    if found:
        out.append(("find_library", found))
    else:
        notes.append(f"find_library({LIB_NAME!r}): not found")
    for name in ("libnanasqlite-client.so", "libnanasqlite-client.so.0"):
        out.append(("system loader", name))
    out.append(("default install", "/usr/local/lib/libnanasqlite-client.so"))
    return out, notes


def _load():
    """Loads the library (see the module docstring); ImportError if it cannot."""
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return _declare(ctypes.CDLL(env)), env
        except (OSError, AttributeError) as e:
            raise ImportError(
                f"cannot load libnanasqlite-client from {ENV_VAR}={env!r}: {e}") from e
    candidates, tried = _candidates()
    for what, path in candidates:
        try:
            return _declare(ctypes.CDLL(path)), path
        except (OSError, AttributeError) as e:
            tried.append(f"{what} {path}: {e}")
    raise ImportError(
        "cannot load libnanasqlite-client (the C client library of nanasqlite-server). "
        f"Set {ENV_VAR} to the path of libnanasqlite-client.so, install a wheel that "
        "bundles it, or install it with `make install` (then run ldconfig). Tried:\n  "
        + "\n  ".join(tried))


def bundled_library():
    """The path of the library copy bundled in this package, or None."""
    paths = sorted(glob.glob(os.path.join(_HERE, "_lib", "libnanasqlite-client.so*")))
    return paths[0] if paths else None


lib, lib_path = _load()


def status_name(status):
    """The library's error_type for one of its own statuses (``"TimeoutError"``, ...)."""
    name = lib.nana_client_status_name(int(status))
    return name.decode("utf-8", "replace") if name else f"status {status}"


def _text(ptr):
    """A NUL-terminated C string owned by a result, as str (None stays None)."""
    if not ptr:
        return None
    return ctypes.string_at(ptr).decode("utf-8", "replace")


class Outcome:
    """A call's result copied out of a ``nana_result`` (which is then freed).

    ``json`` is the result's JSON text as bytes when ``status`` is OK.
    """

    __slots__ = ("status", "json", "error_type", "message", "code", "token")

    def __init__(self, status, json=None, error_type=None, message=None, code=None, token=0):
        self.status = status
        self.json = json
        self.error_type = error_type
        self.message = message
        self.code = code
        self.token = token

    @classmethod
    def take(cls, res):
        """Copies |res| (a filled nana_result) and frees its strings."""
        try:
            data = None
            if res.status == OK and res.json:
                data = ctypes.string_at(res.json, res.json_len)
            return cls(res.status, data, _text(res.error_type), _text(res.message),
                       _text(res.code), res.token)
        finally:
            lib.nana_result_free(ctypes.byref(res))

    def __repr__(self):
        return (f"Outcome(status={self.status}, json={self.json!r}, "
                f"error_type={self.error_type!r}, message={self.message!r}, code={self.code!r})")


def _ms(seconds, what):
    """Seconds (float) to the library's unsigned milliseconds (at least 1)."""
    if seconds is None:
        return 0
    seconds = float(seconds)
    if not seconds > 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {seconds!r}")
    return max(1, min(_UINT_MAX, int(round(seconds * 1000))))


def _path(p):
    """A file path (str, bytes or os.PathLike) as bytes for the library; None stays None."""
    return None if p is None else os.fsencode(p)


def make_client_opts(host, port, server_name, ca_cert_path, private_key_path, account_name,
                     client_cert_path, client_key_path, timeout, connect_timeout,
                     idle_timeout=None, transport=None, fallback_timeout=None):
    """A filled nana_client_opts (library defaults for anything not given).

    transport: "auto" (the library's default), "quic" or "h2" (see
    TRANSPORTS); fallback_timeout: seconds QUIC may take to connect before
    "auto" tries HTTP/2.

    The struct keeps references to the bytes it points to, so it must stay
    alive until nana_client_connect returns (the library copies them).
    """
    o = nana_client_opts()
    lib.nana_client_opts_init(ctypes.byref(o))
    if host is not None:
        o.host = str(host).encode()
    if port is not None:
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535, not {port}")
        o.port = port
    if server_name is not None:
        o.server_name = str(server_name).encode()
    o.ca_file = _path(ca_cert_path)
    if private_key_path is not None:
        o.key_file = _path(private_key_path)
    if account_name is not None:
        o.account = str(account_name).encode()
    o.cert_file = _path(client_cert_path)
    o.cert_key_file = _path(client_key_path)
    if timeout is not None:
        o.call_timeout_ms = _ms(timeout, "timeout")
    if connect_timeout is not None:
        o.connect_timeout_ms = _ms(connect_timeout, "connect_timeout")
    if idle_timeout is not None:
        o.idle_timeout_ms = _ms(idle_timeout, "idle_timeout")
    if transport is not None:
        if transport not in TRANSPORTS:
            raise ValueError(f'transport must be "auto", "quic" or "h2", not {transport!r}')
        o.transport = TRANSPORTS[transport]
    if fallback_timeout is not None:
        o.fallback_ms = _ms(fallback_timeout, "fallback_timeout")
    return o


def make_call_opts(db, table, timeout=None):
    """A nana_call_opts for a database/table selection, or None when all are defaults."""
    if db is None and table is None and timeout is None:
        return None
    co = nana_call_opts()
    co.db = None if db is None else str(db).encode()
    co.table = None if table is None else str(table).encode()
    co.timeout_ms = _ms(timeout, "timeout")
    return co


def connect(opts):
    """Blocking nana_client_connect: returns (client handle or None, Outcome of a failure)."""
    handle = _CLIENT_P()
    err = nana_result()
    rc = lib.nana_client_connect(ctypes.byref(opts), ctypes.byref(handle), ctypes.byref(err))
    if rc == OK and handle.value:
        lib.nana_result_free(ctypes.byref(err))
        return handle.value, None
    out = Outcome.take(err)
    if out.status == OK:  # a failure the library did not describe
        out.status = rc if rc != OK else ECONNECT
    if not out.error_type:
        out.error_type = status_name(out.status)
    return None, out


def call(handle, method, args_json, kwargs_json, call_opts):
    """Blocking nana_client_call; returns its Outcome."""
    res = nana_result()
    lib.nana_client_call(handle, method, args_json, kwargs_json,
                         None if call_opts is None else ctypes.byref(call_opts),
                         ctypes.byref(res))
    return Outcome.take(res)


def submit(handle, method, args_json, kwargs_json, call_opts, token):
    """nana_client_submit with no callback (the result goes to the completion queue).

    Returns the library's status: OK when the call was accepted.
    """
    return lib.nana_client_submit(handle, method, args_json, kwargs_json,
                                  None if call_opts is None else ctypes.byref(call_opts),
                                  _NO_DONE, None, token)


def next_done(handle):
    """One completed Outcome from the client's queue, or None when it is empty."""
    res = nana_result()
    if not lib.nana_client_next_done(handle, ctypes.byref(res)):
        return None
    return Outcome.take(res)


def close(handle):
    """nana_client_close (may wait for the I/O thread)."""
    lib.nana_client_close(handle)
