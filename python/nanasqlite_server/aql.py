"""AQL clients: queries on the amaters.aql query service of a
nanasqlite-server's gRPC door, through the C library libnanasqlite-client.

``AqlClient`` blocks; ``AsyncAqlClient`` is the same for asyncio (each call
runs the blocking one on the loop's default executor, so the event loop
never waits; many calls may be in flight at once).

Keys are ``str`` (or ``bytes`` holding UTF-8: the server wants text keys).
Values are stored as bytes: ``bytes`` go as they are, a ``str`` as its
UTF-8, anything else (dict, list, number, bool, None) as its JSON text.
The server keeps a value that is one JSON text as JSON (the NanaSQLite
calls see it as that JSON) and any other bytes as bytes.

Values come back as ``bytes`` by default (``values="bytes"``). With
``values="json"`` a value that is JSON text comes back decoded (a dict, a
list, a number, ...) and any other value as ``bytes``.

A query the server refuses in its answer raises ``QueryError``
(``error_type`` the error code's name, ``code`` its number); everything
else raises what the other clients raise (``nanasqlite_server.errors``).

Predicates (``where``) are text, as ``age >= 30 and city = "Tokyo"``:
comparisons ``PATH OP VALUE`` (OP one of = != > < >= <=, PATH like
``address.city`` or ``tags[0]``, VALUE a JSON number, string, true, false
or null) joined by ``and``, ``or``, ``not`` and parentheses; or the bytes of
a serialized amaters.types.Predicate.
"""
import asyncio
import base64
import ctypes
import json

from . import _native
from .client import _exception as _call_exception
from .errors import NanaSQLiteClosedError, QueryError

__all__ = ["AqlClient", "AsyncAqlClient", "AqlStream", "AsyncAqlStream"]

_lib = _native.lib
_UPDATE_OPS = {"set": 1, "add": 2, "mul": 3}


def _key(k, what="key"):
    if isinstance(k, str):
        return k.encode("utf-8")
    if isinstance(k, (bytes, bytearray, memoryview)):
        return bytes(k)
    raise TypeError(f"{what} must be str or bytes, not {type(k).__name__}")


def _value_bytes(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode("utf-8")
    try:
        return json.dumps(v, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except TypeError as e:
        raise TypeError(f"a value must be bytes, str or something JSON can hold: {e}") from e


def _json_arg(v):
    return json.dumps(v, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _limit(n, what):
    if n is None:
        return -1
    n = int(n)
    if not 0 <= n <= 0xFFFFFFFF:
        raise ValueError(f"{what} must be 0..4294967295, not {n}")
    return n


def _exception(out):
    """QueryError for a query the server refused in its answer, else what the
    other clients raise for the outcome."""
    if out.status == _native.EQUERY:
        exc = QueryError(out.message or "", error_type=out.error_type, code=out.code)
        exc.status = out.status
        return exc
    return _call_exception(out)


def _check(rc, res):
    """Raises the exception of a failed library call (res a nana_result)."""
    if rc != _native.OK:
        out = _native.Outcome.take(res)
        if out.status == _native.OK:
            out.status = rc
        raise _exception(out)
    _lib.nana_result_free(ctypes.byref(res))


def _take(ptr, n):
    """The bytes of a library buffer, which is then freed."""
    try:
        return ctypes.string_at(ptr, n) if ptr else b""
    finally:
        _lib.nana_client_aql_free(ptr)


def _from_bytes_form(v):
    return base64.b64decode(v["$bytes"])


class _Build:
    """The library's query builders: each returns a serialized Query (bytes)."""

    @staticmethod
    def _run(fn, *args):
        q, n, res = ctypes.c_void_p(), ctypes.c_size_t(), _native.nana_result()
        rc = fn(*args, ctypes.byref(q), ctypes.byref(n), ctypes.byref(res))
        _check(rc, res)
        return _take(q.value, n.value)

    @staticmethod
    def _pred(where):
        if isinstance(where, str):
            return where.encode("utf-8"), None, 0
        if isinstance(where, (bytes, bytearray, memoryview)):
            b = bytes(where)
            return None, b, len(b)
        raise TypeError("where must be predicate text (str) or a serialized Predicate (bytes)")

    @classmethod
    def get(cls, coll, key):
        k = _key(key)
        return cls._run(_lib.nana_client_aql_build_get, coll, k, len(k))

    @classmethod
    def set(cls, coll, key, value):
        k, v = _key(key), _value_bytes(value)
        return cls._run(_lib.nana_client_aql_build_set, coll, k, len(k), v, len(v))

    @classmethod
    def delete(cls, coll, key):
        k = _key(key)
        return cls._run(_lib.nana_client_aql_build_delete, coll, k, len(k))

    @classmethod
    def range(cls, coll, start, end, limit=None):
        s, e = _key(start, "start"), _key(end, "end")
        return cls._run(_lib.nana_client_aql_build_range, coll, s, len(s), e, len(e),
                        _limit(limit, "limit"))

    @classmethod
    def filter(cls, coll, where, limit=None, offset=None):
        text, pred, plen = cls._pred(where)
        return cls._run(_lib.nana_client_aql_build_filter, coll, text, pred, plen,
                        _limit(limit, "limit"), _limit(offset, "offset"))

    @classmethod
    def update(cls, coll, where, set=None, add=None, mul=None):
        text, pred, plen = cls._pred(where)
        changes = []
        for op, fields in (("set", set), ("add", add), ("mul", mul)):
            for field, value in (fields or {}).items():
                changes.append((_UPDATE_OPS[op], str(field).encode("utf-8"), _json_arg(value)))
        if not changes:
            raise ValueError("an update needs at least one change (set, add or mul)")
        arr = (_native.nana_aql_update * len(changes))()
        for i, (op, field, value) in enumerate(changes):
            arr[i].op, arr[i].field, arr[i].value_json = op, field, value
        return cls._run(_lib.nana_client_aql_build_update, coll, text, pred, plen, arr,
                        len(changes))


def _request(query, timeout_ms=0):
    r, n, res = ctypes.c_void_p(), ctypes.c_size_t(), _native.nana_result()
    rc = _lib.nana_client_aql_request(query, len(query), timeout_ms, ctypes.byref(r),
                                      ctypes.byref(n), ctypes.byref(res))
    _check(rc, res)
    return _take(r.value, n.value)


def parse_predicate(text):
    """The serialized amaters.types.Predicate of predicate text (ValueError with the
    column of a mistake)."""
    p, n, res = ctypes.c_void_p(), ctypes.c_size_t(), _native.nana_result()
    rc = _lib.nana_client_aql_parse_predicate(text.encode("utf-8"), ctypes.byref(p),
                                              ctypes.byref(n), ctypes.byref(res))
    _check(rc, res)
    return _take(p.value, n.value)


class AqlStream:
    """The pairs of a streamed range or filter, as an iterator of (key, value).

    It holds one batch of the answer at a time (the server sends more as it
    is read). ``close()`` (or leaving a ``with`` block, or the end) ends it;
    an unfinished stream is cancelled on the server. ``total`` is the
    server's count once the end was reached.
    """

    def __init__(self, owner, it):
        self._owner = owner
        self._it = it
        self.total = None

    def __iter__(self):
        return self

    def __next__(self):
        if not self._it:
            raise StopIteration
        k, kl = ctypes.c_void_p(), ctypes.c_size_t()
        v, vl = ctypes.c_void_p(), ctypes.c_size_t()
        res = _native.nana_result()
        got = _lib.nana_client_aql_stream_next(self._it, ctypes.byref(k), ctypes.byref(kl),
                                               ctypes.byref(v), ctypes.byref(vl),
                                               ctypes.byref(res))
        if got == 1:
            _lib.nana_result_free(ctypes.byref(res))
            key = ctypes.string_at(k.value, kl.value) if kl.value else b""
            val = ctypes.string_at(v.value, vl.value) if vl.value else b""
            return self._owner._key_out(key), self._owner._value_out(val)
        if got == 0:
            _lib.nana_result_free(ctypes.byref(res))
            self.total = _lib.nana_client_aql_stream_total(self._it)
            self.close()
            raise StopIteration
        out = _native.Outcome.take(res)
        self.close()
        raise _exception(out)

    def close(self):
        it, self._it = self._it, None
        if it:
            _lib.nana_client_aql_stream_close(it)
            self._owner._streams.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class AqlClient:
    """A blocking AQL client on one gRPC connection (reconnecting by itself).

    ``collection`` is the default collection (a NanaSQLite table), ``db`` the
    database file on the server (None: its default), ``values`` "bytes" or
    "json" (see the module docstring). ``transport`` "auto" (HTTP/3 on QUIC,
    or HTTP/2 on TCP to the same port when QUIC gets no answer within
    ``fallback_timeout`` seconds, None: 1.5), "quic" or "h2". Thread-safe:
    many threads may call at once. Use as a context manager or call
    ``close()``.
    """

    def __init__(self, host="127.0.0.1", port=4433, ca_cert_path="cert.pem",
                 private_key_path="nana_private.pem", account_name=None,
                 server_name="localhost", client_cert_path=None, client_key_path=None,
                 timeout=30.0, connect_timeout=10.0, db=None, collection="data",
                 values="bytes", transport="auto", fallback_timeout=None):
        if values not in ("bytes", "json"):
            raise ValueError('values must be "bytes" or "json"')
        self._opts_args = (host, port, server_name, ca_cert_path, private_key_path,
                           account_name, client_cert_path, client_key_path, timeout,
                           connect_timeout, None, transport, fallback_timeout)
        _native.make_client_opts(*self._opts_args)  # refuse bad values now
        self._handle = None
        self._db = db
        self.collection = collection
        self.values = values
        self._timeout = timeout
        self._streams = set()

    # ---- connection ----

    def connect(self):
        if self._handle:
            return self
        opts = _native.make_client_opts(*self._opts_args)
        opts.protocol = 1  # gRPC
        handle, err = _native.connect(opts)
        if err is not None:
            raise _exception(err)
        self._handle = handle
        return self

    def close(self):
        for s in list(self._streams):
            s.close()
        h, self._handle = self._handle, None
        if h:
            _native.close(h)

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def _h(self):
        if not self._handle:
            self.connect()
        return self._handle

    def _co(self, timeout=None):
        return _native.make_call_opts(self._db, None, timeout)

    def _coll(self, collection):
        c = self.collection if collection is None else collection
        return None if c is None else str(c).encode("utf-8")

    # ---- values out ----

    @staticmethod
    def _key_out(b):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return b

    def _value_out(self, b):
        if self.values == "json":
            try:
                return json.loads(b)
            except ValueError:
                return b
        return b

    def _value_doc(self, v):
        """A value of an answer document (raw form: {"$bytes": ...})."""
        return self._value_out(_from_bytes_form(v))

    def _key_doc(self, k):
        return k if isinstance(k, str) else self._key_out(_from_bytes_form(k))

    def _result(self, doc):
        if "rows" in doc:
            return [(self._key_doc(r["key"]), self._value_doc(r["value"])) for r in doc["rows"]]
        if "affected" in doc:
            return doc["affected"]
        if "value" in doc:
            return None if doc["value"] is None else self._value_doc(doc["value"])
        return None

    @staticmethod
    def _answer(resp, batch):
        j, jl, res = ctypes.c_void_p(), ctypes.c_size_t(), _native.nana_result()
        rc = _lib.nana_client_aql_answer_json(resp, len(resp), batch, 1, ctypes.byref(j),
                                              ctypes.byref(jl), ctypes.byref(res))
        _check(rc, res)
        return json.loads(_take(j.value, jl.value))

    # ---- queries ----

    def execute(self, request, timeout=None):
        """ExecuteQuery of a serialized amaters.aql.QueryRequest; returns the
        serialized QueryResponse (QueryError when it carries an error)."""
        r, n, res = ctypes.c_void_p(), ctypes.c_size_t(), _native.nana_result()
        co = self._co(timeout)
        rc = _lib.nana_client_aql_execute(self._h(), bytes(request), len(request),
                                          None if co is None else ctypes.byref(co),
                                          ctypes.byref(r), ctypes.byref(n), ctypes.byref(res))
        resp = _take(r.value, n.value)
        _check(rc, res)
        return resp

    def _run(self, query, timeout=None):
        return self._result(self._answer(self.execute(_request(query), timeout), 0))

    def get(self, key, collection=None, timeout=None):
        """The value of |key|, or None when there is none."""
        return self._run(_Build.get(self._coll(collection), key), timeout)

    def set(self, key, value, collection=None, timeout=None):
        """Stores |value| under |key|."""
        self._run(_Build.set(self._coll(collection), key, value), timeout)

    def delete(self, key, collection=None, timeout=None):
        """Deletes |key|; True when it existed."""
        return self._run(_Build.delete(self._coll(collection), key), timeout) > 0

    def range(self, start, end, limit=None, collection=None, timeout=None):
        """[(key, value)] for keys from |start| up to |end| (excluded)."""
        return self._run(_Build.range(self._coll(collection), start, end, limit), timeout)

    def filter(self, where, limit=None, offset=None, collection=None, timeout=None):
        """[(key, value)] of the values matching |where|."""
        return self._run(_Build.filter(self._coll(collection), where, limit, offset), timeout)

    def update(self, where, set=None, add=None, mul=None, collection=None, timeout=None):
        """Changes every value matching |where| (set/add/mul: {field: value});
        returns how many changed."""
        return self._run(_Build.update(self._coll(collection), where, set, add, mul), timeout)

    def _batch_query(self, q):
        op = q.get("op")
        coll = self._coll(q.get("collection"))
        if op == "get":
            return _Build.get(coll, q["key"])
        if op == "set":
            v = base64.b64decode(q["value_base64"]) if "value_base64" in q else q["value"]
            return _Build.set(coll, q["key"], v)
        if op == "delete":
            return _Build.delete(coll, q["key"])
        if op == "range":
            return _Build.range(coll, q["start"], q["end"], q.get("limit"))
        if op == "filter":
            return _Build.filter(coll, q["where"], q.get("limit"), q.get("offset"))
        if op == "update":
            return _Build.update(coll, q["where"], q.get("set"), q.get("add"), q.get("mul"))
        raise ValueError(f"unknown op {op!r} (get, set, delete, range, filter, update)")

    def batch(self, queries, timeout=None):
        """Runs queries (dicts: {"op": "get"|"set"|"delete"|"range"|"filter"|"update",
        ...} with the arguments of the methods above) as one ExecuteBatch; returns
        one result per query, as the methods return them (set: 1)."""
        built = [self._batch_query(dict(q)) for q in queries]
        if not built:
            raise ValueError("a batch needs at least one query")
        bufs = [ctypes.create_string_buffer(b, len(b)) for b in built]
        ptrs = (ctypes.c_void_p * len(bufs))(*[ctypes.addressof(b) for b in bufs])
        lens = (ctypes.c_size_t * len(bufs))(*[len(b) for b in built])
        r, n, res = ctypes.c_void_p(), ctypes.c_size_t(), _native.nana_result()
        co = self._co(timeout)
        rc = _lib.nana_client_aql_batch(self._h(), ptrs, lens, len(bufs),
                                        None if co is None else ctypes.byref(co),
                                        ctypes.byref(r), ctypes.byref(n), ctypes.byref(res))
        resp = _take(r.value, n.value)
        _check(rc, res)
        return [self._result(d) for d in self._answer(resp, 1)["results"]]

    def _stream(self, query, timeout):
        req = _request(query)
        it, res = ctypes.c_void_p(), _native.nana_result()
        co = self._co(timeout)
        rc = _lib.nana_client_aql_stream_open(self._h(), req, len(req),
                                              None if co is None else ctypes.byref(co),
                                              ctypes.byref(it), ctypes.byref(res))
        _check(rc, res)
        s = AqlStream(self, it.value)
        self._streams.add(s)
        return s

    def stream_range(self, start, end, limit=None, collection=None, timeout=None):
        """An AqlStream of (key, value) for keys from |start| up to |end|; |timeout|
        bounds each wait for the next batch."""
        return self._stream(_Build.range(self._coll(collection), start, end, limit), timeout)

    def stream_filter(self, where, limit=None, offset=None, collection=None, timeout=None):
        """An AqlStream of the (key, value) pairs matching |where|."""
        return self._stream(_Build.filter(self._coll(collection), where, limit, offset),
                            timeout)


class AsyncAqlStream:
    """An AqlStream for ``async for``: each step runs on the executor."""

    def __init__(self, stream):
        self._s = stream

    @property
    def total(self):
        return self._s.total

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await asyncio.get_running_loop().run_in_executor(None, next, self._s, _END)
        if item is _END:
            raise StopAsyncIteration
        return item

    async def aclose(self):
        await asyncio.get_running_loop().run_in_executor(None, self._s.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.aclose()


_END = object()


class AsyncAqlClient:
    """``AqlClient`` for asyncio: the same methods, awaited; streams are
    ``async for`` iterators. Use ``async with`` or ``await close()``."""

    def __init__(self, *args, **kwargs):
        self._c = AqlClient(*args, **kwargs)

    async def _run(self, fn, *args, **kwargs):
        if fn is None:
            raise NanaSQLiteClosedError("the client is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    async def connect(self):
        await self._run(self._c.connect)
        return self

    async def close(self):
        await self._run(self._c.close)

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc_info):
        await self.close()

    async def execute(self, request, timeout=None):
        return await self._run(self._c.execute, request, timeout)

    async def get(self, key, **kw):
        return await self._run(self._c.get, key, **kw)

    async def set(self, key, value, **kw):
        return await self._run(self._c.set, key, value, **kw)

    async def delete(self, key, **kw):
        return await self._run(self._c.delete, key, **kw)

    async def range(self, start, end, **kw):
        return await self._run(self._c.range, start, end, **kw)

    async def filter(self, where, **kw):
        return await self._run(self._c.filter, where, **kw)

    async def update(self, where, **kw):
        return await self._run(self._c.update, where, **kw)

    async def batch(self, queries, **kw):
        return await self._run(self._c.batch, queries, **kw)

    async def stream_range(self, start, end, **kw):
        return AsyncAqlStream(await self._run(self._c.stream_range, start, end, **kw))

    async def stream_filter(self, where, **kw):
        return AsyncAqlStream(await self._run(self._c.stream_filter, where, **kw))
