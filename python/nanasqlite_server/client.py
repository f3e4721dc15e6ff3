"""Clients of a NanaSQLite server (nanasqlite-server or the Python
NanaSQLite-Server), built on the C library libnanasqlite-client.

``RemoteNanaSQLite`` is for asyncio code: every call is awaited, none blocks
the event loop, and many may be in flight at once on one connection.
``RemoteNanaSQLiteSync`` is a blocking, dict-like client for plain code.

Both send any method by name (``await db.keys()``, ``db.batch_get([...])``),
with arguments and results that JSON can hold, and raise the exception the
server names (see ``nanasqlite_server.errors``). The connection reconnects
by itself when it drops; a call that was already sent when it dropped
raises ``UnknownOutcomeError`` instead of being sent again.
"""
import ast
import asyncio
import json
import os
import threading
import warnings
import weakref

from . import _native
from . import errors as _errors
from .errors import NanaSQLiteClosedError, NanaSQLiteError

__all__ = ["RemoteNanaSQLite", "RemoteNanaSQLiteSync"]

# error_type -> the builtin exception raised for it.
_BUILTIN_ERRORS = {
    "KeyError": KeyError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "PermissionError": PermissionError,
    "RuntimeError": RuntimeError,
    "AttributeError": AttributeError,
    "MemoryError": MemoryError,
    "TimeoutError": TimeoutError,
}

# error_type -> one of this package's classes.
_PACKAGE_ERRORS = {name: getattr(_errors, name) for name in _errors.__all__}

# Methods whose first parameter is a key: their KeyError carries that key.
_KEY_FIRST = frozenset(("__getitem__", "__delitem__", "pop", "patch", "get_by_path"))


def _key_error(message, method, args, kwargs):
    """KeyError for a failed call: with the caller's own key when the method
    takes one (so str(e) is what a dict would say), else with the server's
    message read back as the Python literal it is (the repr of a key)."""
    if method in _KEY_FIRST:
        if args:
            return KeyError(args[0])
        if kwargs and "key" in kwargs:
            return KeyError(kwargs["key"])
    try:
        return KeyError(ast.literal_eval(message))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return KeyError(message)


def _exception(out, method=None, args=(), kwargs=None):
    """The exception for a failed Outcome, with .error_type, .code and .status set."""
    error_type = out.error_type or _native.status_name(out.status)
    message = out.message or ""
    if error_type == "KeyError":
        exc = _key_error(message, method, args, kwargs)
    elif error_type in _BUILTIN_ERRORS:
        exc = _BUILTIN_ERRORS[error_type](message)
    elif error_type in _PACKAGE_ERRORS:
        exc = _PACKAGE_ERRORS[error_type](message, error_type=error_type, code=out.code)
    else:
        exc = NanaSQLiteError(f"{error_type}: {message}", error_type=error_type, code=out.code)
    exc.error_type = error_type
    exc.code = out.code
    exc.status = out.status
    return exc


_REFUSED = {
    _native.EBUSY: "too many calls pending on this client (max_queued)",
    _native.ECLOSED: "the client is closed",
    _native.EINVALID: "the call was refused as invalid (method name or JSON arguments)",
    _native.ENOMEM: "out of memory",
}


def _refused(status):
    """The exception for a call nana_client_submit did not accept."""
    message = _REFUSED.get(status, "the call was not accepted")
    return _exception(_native.Outcome(status, message=message))


def _encode_call(method, args, kwargs):
    """(method, args, kwargs) as the library takes them: UTF-8 name and JSON texts.

    TypeError for a value JSON cannot carry (bytes, sets, objects), ValueError
    for NaN or infinity: the server could not store them either.
    """
    if not isinstance(method, str) or not method:
        raise TypeError(f"method name must be a non-empty str, not {method!r}")
    try:
        args_json = json.dumps(list(args), ensure_ascii=False, allow_nan=False,
                               separators=(",", ":")).encode("utf-8")
        kwargs_json = None
        if kwargs:
            kwargs_json = json.dumps(kwargs, ensure_ascii=False, allow_nan=False,
                                     separators=(",", ":")).encode("utf-8")
    except TypeError as e:
        raise TypeError(f"{method}(): arguments must be values JSON can hold "
                        f"(str, int, float, bool, None, list, dict): {e}") from e
    return method.encode("utf-8"), args_json, kwargs_json


def _value(out, method, args, kwargs):
    """The Python value of a finished call, or raises its exception."""
    if out.status == _native.OK:
        return json.loads(out.json) if out.json else None
    raise _exception(out, method, args, kwargs)


class _Settings:
    """What a client was constructed with (shared by a client and its table views)."""

    def __init__(self, host, port, ca_cert_path, private_key_path, account_name, server_name,
                 client_cert_path, client_key_path, timeout, connect_timeout, idle_timeout,
                 transport="auto", fallback_timeout=None):
        self.host = host
        self.port = port
        self.ca_cert_path = ca_cert_path
        self.private_key_path = private_key_path
        self.account_name = account_name
        self.server_name = server_name
        self.client_cert_path = client_cert_path
        self.client_key_path = client_key_path
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.idle_timeout = idle_timeout
        self.transport = transport
        self.fallback_timeout = fallback_timeout
        self.client_opts()  # refuse bad values now, not at connect time

    def client_opts(self):
        return _native.make_client_opts(
            self.host, self.port, self.server_name, self.ca_cert_path, self.private_key_path,
            self.account_name, self.client_cert_path, self.client_key_path, self.timeout,
            self.connect_timeout, self.idle_timeout, self.transport, self.fallback_timeout)


def _connect_blocking(settings):
    """Connects (blocking); returns the library's client handle or raises."""
    handle, err = _native.connect(settings.client_opts())
    if handle is None:
        raise _exception(err)
    return handle


# ---- asyncio -------------------------------------------------------------------

class _AsyncLink:
    """One open libnanasqlite-client connection driven by an asyncio loop.

    Calls are submitted with a token and no callback; the library queues each
    result and makes its completion fd readable. The loop watches that fd
    (add_reader) and ``drain`` hands each result to the future waiting for
    its token. No thread is used per call.
    """

    def __init__(self, loop, handle):
        self.loop = loop
        self.handle = handle
        self.fd = _native.lib.nana_client_completion_fd(handle)
        self.futures = {}  # token -> asyncio.Future of an Outcome
        self.next_token = 1
        self.closed = False
        # The loop holds only a weak reference, so a client dropped without
        # close() is still collected (and then closed by __del__).
        loop.add_reader(self.fd, _drain_link, weakref.ref(self))

    def submit(self, method, args_json, kwargs_json, call_opts):
        """Starts a call; returns the future of its Outcome."""
        if self.closed:
            raise NanaSQLiteClosedError("the client is closed", error_type="NanaSQLiteClosedError")
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("this RemoteNanaSQLite was connected in another event loop")
        token = self.next_token
        self.next_token += 1
        rc = _native.submit(self.handle, method, args_json, kwargs_json, call_opts, token)
        if rc != _native.OK:
            raise _refused(rc)
        fut = self.loop.create_future()
        self.futures[token] = fut
        return fut

    def drain(self):
        """Reads the completion fd and resolves the future of every finished call.

        A result whose future is gone or cancelled is dropped.
        """
        if self.closed:
            return
        try:
            os.read(self.fd, 8)
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            out = _native.next_done(self.handle)
            if out is None:
                return
            fut = self.futures.pop(out.token, None)
            if fut is not None and not fut.done():
                fut.set_result(out)

    async def close(self):
        """Stops watching the fd, fails calls still waiting, closes the connection."""
        if self.closed:
            return
        self.drain()  # results that are already here still reach their callers
        self.closed = True
        self.loop.remove_reader(self.fd)
        self._fail_pending()
        handle, self.handle = self.handle, None
        await self.loop.run_in_executor(None, _native.close, handle)

    def _fail_pending(self):
        for fut in self.futures.values():
            if not fut.done():
                fut.set_exception(NanaSQLiteClosedError(
                    "the client was closed while the call was pending "
                    "(it may or may not have run on the server)",
                    error_type="NanaSQLiteClosedError"))
        self.futures.clear()

    def __del__(self):
        # Not closed with close(): release the connection anyway (blocking).
        if getattr(self, "closed", True) or self.handle is None:
            return
        self.closed = True
        warnings.warn("RemoteNanaSQLite was not closed (use `await db.close()` or `async with`)",
                      ResourceWarning, stacklevel=2)
        try:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.fd)
        except Exception:  # the loop may be half torn down at exit
            pass
        _native.close(self.handle)
        self.handle = None


def _drain_link(ref):
    """The completion fd's reader: drains the link if it still exists."""
    link = ref()
    if link is not None:
        link.drain()


class _AsyncShared:
    """The connection state shared by a RemoteNanaSQLite and its table views."""

    def __init__(self, settings):
        self.settings = settings
        self.link = None
        self.connecting = None  # future of a connect in progress
        self.closed = False


class _ClientBase:
    """What both clients share: the constructor's arguments and table views."""

    _shared_class = None  # the connection state class of the subclass

    def __init__(self, host="127.0.0.1", port=4433, ca_cert_path="cert.pem",
                 private_key_path="nana_private.pem", account_name=None, *,
                 server_name="localhost", client_cert_path=None, client_key_path=None,
                 timeout=30.0, connect_timeout=None, idle_timeout=None, db=None,
                 table=None, transport="auto", fallback_timeout=None):
        settings = _Settings(host, port, ca_cert_path, private_key_path, account_name,
                             server_name, client_cert_path, client_key_path, timeout,
                             connect_timeout, idle_timeout, transport, fallback_timeout)
        self._shared = self._shared_class(settings)
        self._is_view = False
        self._db = db
        self._table = table
        self._call_opts = _native.make_call_opts(db, table)

    def table(self, name):
        """A view on another table of the same database, sharing this connection.

        Dict methods of the view work on table |name| (the server creates it
        on first write). Closing the view does nothing; close this client.
        """
        view = object.__new__(type(self))
        view._parent = self  # the connection lives as long as a view does
        view._shared = self._shared
        view._is_view = True
        view._db = self._db
        view._table = name
        view._call_opts = _native.make_call_opts(self._db, name)
        return view


class RemoteNanaSQLite(_ClientBase):
    """An asyncio client of a NanaSQLite server: one QUIC connection, many calls at once.

    ::

        async with RemoteNanaSQLite(port=4433, ca_cert_path="cert.pem",
                                    private_key_path="nana_private.pem") as db:
            await db.set_item_async("k", {"v": 1})
            print(await db.get_item_async("k"))
            print(await db.keys())          # any server method by name

    host, port: the server. ca_cert_path: PEM file of the certificates to
    trust (None: the system's trust store); server_name: the name the
    server's certificate must carry. private_key_path: the Ed25519 key
    (PKCS#8 PEM) this client authenticates with; account_name: the account
    to log in as, for servers with an accounts file. client_cert_path,
    client_key_path: a client certificate for mutual TLS. timeout: seconds
    a call may take (and, unless connect_timeout is given, connecting).
    idle_timeout: seconds without any packet from the server after which
    the connection counts as lost (None: the library's 30; keep-alive
    pings go out at a third of it).
    transport: "auto" (QUIC; when no QUIC connection is up within
    fallback_timeout seconds, None: 1.5, gRPC over HTTP/2 on TCP to the
    same port, with the same results), "quic" (QUIC only) or "h2" (HTTP/2
    only).
    db: the database file on the server (None: its default); table: the
    NanaSQLite table dict methods work on (None: ``data``).

    Nothing happens until ``await connect()`` (or ``async with``). The
    client belongs to the event loop it connected in.
    """

    _shared_class = _AsyncShared

    # ---- connection --------------------------------------------------------

    async def connect(self):
        """Connects and authenticates; does nothing if already connected.

        Runs the blocking connect in the loop's default executor, so the
        event loop keeps running meanwhile. Raises NanaSQLiteConnectionError
        (unreachable, TLS failure, timeout), AuthenticationError (key or
        account refused) or ValueError (a bad option or unreadable key file).
        """
        sh = self._shared
        if sh.closed:
            raise NanaSQLiteClosedError("the client is closed", error_type="NanaSQLiteClosedError")
        if sh.link is not None:
            return
        loop = asyncio.get_running_loop()
        if sh.connecting is None:
            sh.connecting = loop.run_in_executor(None, _connect_blocking, sh.settings)
            sh.connecting.add_done_callback(self._connected)
        await asyncio.shield(sh.connecting)
        if sh.link is None:
            raise NanaSQLiteClosedError("the client was closed while connecting",
                                        error_type="NanaSQLiteClosedError")

    def _connected(self, fut):
        """Runs when the executor's connect finishes (even if every waiter was cancelled)."""
        sh = self._shared
        sh.connecting = None
        if fut.cancelled() or fut.exception() is not None:
            return
        # close() waits for a connect in progress, then closes this link.
        sh.link = _AsyncLink(asyncio.get_running_loop(), fut.result())

    async def close(self):
        """Closes the connection; calls still pending raise NanaSQLiteClosedError.

        Safe to call twice. On a table view (see ``table``) it does nothing:
        close the client the view came from.
        """
        if self._is_view:
            return
        sh = self._shared
        sh.closed = True
        if sh.connecting is not None:
            try:
                await asyncio.shield(sh.connecting)
            except Exception:
                pass
        link, sh.link = sh.link, None
        if link is not None:
            await link.close()

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc_info):
        await self.close()

    @property
    def connected(self):
        """True while the client has an authenticated connection."""
        link = self._shared.link
        return link is not None and bool(_native.lib.nana_client_connected(link.handle))

    # ---- calls -------------------------------------------------------------

    async def _call(self, method, args=(), kwargs=None):
        """Sends |method| with |args| and |kwargs| and returns the decoded result."""
        link = self._shared.link
        if link is None:
            if self._shared.closed:
                raise NanaSQLiteClosedError("the client is closed",
                                            error_type="NanaSQLiteClosedError")
            raise NanaSQLiteClosedError(
                "not connected: `await db.connect()` first, or use `async with`",
                error_type="NanaSQLiteClosedError")
        m, a, k = _encode_call(method, args, kwargs)
        out = await link.submit(m, a, k, self._call_opts)
        return _value(out, method, args, kwargs)

    async def call(self, method, *args, **kwargs):
        """Calls the server method named |method| (for names that are not
        Python identifiers or that this class uses itself)."""
        return await self._call(method, args, kwargs)

    async def set_item_async(self, key, value):
        """``db[key] = value`` on the server (method ``__setitem__``)."""
        return await self._call("__setitem__", (key, value))

    async def get_item_async(self, key):
        """``db[key]`` on the server (``__getitem__``); KeyError(key) if absent."""
        return await self._call("__getitem__", (key,))

    async def del_item_async(self, key):
        """``del db[key]`` on the server (``__delitem__``); KeyError(key) if absent."""
        return await self._call("__delitem__", (key,))

    async def contains_async(self, key):
        """``key in db`` on the server (``__contains__``)."""
        return await self._call("__contains__", (key,))

    async def len_async(self):
        """``len(db)`` on the server (``__len__``)."""
        return await self._call("__len__")

    def __getattr__(self, name):
        """Any other public attribute is a server method: ``await db.keys()``."""
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        async def remote_method(*args, **kwargs):
            return await self._call(name, args, kwargs)

        remote_method.__name__ = name
        remote_method.__qualname__ = f"{type(self).__name__}.{name}"
        remote_method.__doc__ = f"Calls the server method {name!r}."
        return remote_method

    def __repr__(self):
        s = self._shared.settings
        state = "closed" if self._shared.closed else (
            "connected" if self._shared.link is not None else "not connected")
        return (f"<{type(self).__name__} {s.host}:{s.port} db={self._db!r} "
                f"table={self._table!r} {state}>")


# ---- blocking ------------------------------------------------------------------

class _SyncShared:
    """The connection of a RemoteNanaSQLiteSync and its table views.

    Calls may come from many threads. ``close`` waits until no thread is
    inside a call (each call is bounded by its timeout) before the library
    frees the connection, so no call ever touches a freed client.
    """

    def __init__(self, settings):
        self.settings = settings
        self.handle = None
        self.active = 0
        self.closing = False
        self.cond = threading.Condition()

    def enter(self):
        with self.cond:
            if self.handle is None or self.closing:
                raise NanaSQLiteClosedError("the client is closed",
                                            error_type="NanaSQLiteClosedError")
            self.active += 1
            return self.handle

    def leave(self):
        with self.cond:
            self.active -= 1
            if self.active == 0:
                self.cond.notify_all()

    def connect(self):
        """Opens the connection unless it is open (waits for a close in progress)."""
        with self.cond:
            while self.closing:
                self.cond.wait()
            if self.handle is not None:
                return
        handle = _connect_blocking(self.settings)
        with self.cond:
            if self.handle is None and not self.closing:
                self.handle = handle
                return
        _native.close(handle)  # another thread connected (or began closing) meanwhile

    def close(self):
        """Refuses new calls, waits for calls in flight, closes the connection."""
        with self.cond:
            if self.handle is None or self.closing:
                return
            self.closing = True
            while self.active:
                self.cond.wait()
            handle, self.handle = self.handle, None
        try:
            _native.close(handle)
        finally:
            with self.cond:
                self.closing = False
                self.cond.notify_all()


class RemoteNanaSQLiteSync(_ClientBase):
    """A blocking, dict-like client of a NanaSQLite server.

    ::

        with RemoteNanaSQLiteSync(port=4433, ca_cert_path="cert.pem",
                                  private_key_path="nana_private.pem") as db:
            db["k"] = {"v": 1}
            print(db["k"], "k" in db, len(db), list(db))
            del db["k"]
            print(db.keys())                # any server method by name

    Takes the same arguments as ``RemoteNanaSQLite``. It connects in the
    constructor (raising NanaSQLiteConnectionError, AuthenticationError or
    ValueError at once); ``close()`` ends the connection and ``connect()``
    opens it again. Calls block the calling thread only, and may be made from
    several threads at once.
    """

    _shared_class = _SyncShared

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shared.connect()

    def connect(self):
        """Opens the connection again after ``close()``; does nothing while open."""
        self._shared.connect()

    def close(self):
        """Closes the connection (waiting for calls in other threads to finish).

        Safe to call twice. On a table view it does nothing.
        """
        if not self._is_view:
            self._shared.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        # Not closed with close(): release the connection anyway.
        shared = getattr(self, "_shared", None)
        if shared is None or getattr(self, "_is_view", True) or shared.handle is None:
            return
        warnings.warn("RemoteNanaSQLiteSync was not closed (use close() or `with`)",
                      ResourceWarning, stacklevel=2)
        try:
            shared.close()
        except Exception:  # at interpreter exit the library may be gone already
            pass

    @property
    def connected(self):
        """True while the client has an authenticated connection."""
        h = self._shared.handle
        return h is not None and bool(_native.lib.nana_client_connected(h))

    # ---- calls -------------------------------------------------------------

    def _call(self, method, args=(), kwargs=None):
        m, a, k = _encode_call(method, args, kwargs)
        handle = self._shared.enter()
        try:
            out = _native.call(handle, m, a, k, self._call_opts)
        finally:
            self._shared.leave()
        return _value(out, method, args, kwargs)

    def call(self, method, *args, **kwargs):
        """Calls the server method named |method|."""
        return self._call(method, args, kwargs)

    def __setitem__(self, key, value):
        self._call("__setitem__", (key, value))

    def __getitem__(self, key):
        return self._call("__getitem__", (key,))

    def __delitem__(self, key):
        self._call("__delitem__", (key,))

    def __contains__(self, key):
        return self._call("__contains__", (key,))

    def __len__(self):
        return self._call("__len__")

    def __iter__(self):
        """Iterates over the keys (fetched in one call when iteration starts)."""
        return iter(self.keys())

    def keys(self):
        """The list of keys of the table, in key order (byte order of the UTF-8 text)."""
        return self._call("keys")

    def get(self, key, default=None):
        """``db[key]``, or |default| (any object) when the key is absent."""
        try:
            return self._call("__getitem__", (key,))
        except KeyError:
            return default

    def __getattr__(self, name):
        """Any other public attribute is a server method: ``db.batch_get([...])``."""
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def remote_method(*args, **kwargs):
            return self._call(name, args, kwargs)

        remote_method.__name__ = name
        remote_method.__qualname__ = f"{type(self).__name__}.{name}"
        remote_method.__doc__ = f"Calls the server method {name!r}."
        return remote_method

    def __repr__(self):
        s = self._shared.settings
        state = "connected" if self._shared.handle is not None else "closed"
        return (f"<{type(self).__name__} {s.host}:{s.port} db={self._db!r} "
                f"table={self._table!r} {state}>")
