"""nanasqlite_server: Python clients of a NanaSQLite server over QUIC.

``from nanasqlite_server.client import RemoteNanaSQLite`` (asyncio) or
``RemoteNanaSQLiteSync`` (blocking, dict-like); ``from nanasqlite_server.aql
import AqlClient`` (blocking) or ``AsyncAqlClient`` (asyncio) for AQL queries
over the server's gRPC door. Both are thin layers over the
C library libnanasqlite-client, loaded with ctypes when ``client`` is first
imported (see ``nanasqlite_server._native`` for where it is looked for).
The exception classes are in ``nanasqlite_server.errors`` and can be imported
without the C library.
"""
from .errors import (  # noqa: F401
    AuthenticationError,
    BusyError,
    CircuitOpenError,
    InternalServerError,
    NanaSQLiteCacheError,
    NanaSQLiteClosedError,
    NanaSQLiteConnectionError,
    NanaSQLiteDatabaseError,
    NanaSQLiteError,
    NanaSQLiteLockError,
    NanaSQLiteTransactionError,
    NanaSQLiteValidationError,
    ProtocolError,
    QueryError,
    UnknownOutcomeError,
)

__version__ = "0.1.0"

_CLIENT_NAMES = ("RemoteNanaSQLite", "RemoteNanaSQLiteSync")
_AQL_NAMES = ("AqlClient", "AsyncAqlClient")


def __getattr__(name):
    """``nanasqlite_server.RemoteNanaSQLite`` loads the client (and the C library) on first use."""
    if name in _CLIENT_NAMES:
        from . import client
        return getattr(client, name)
    if name in _AQL_NAMES:
        from . import aql
        return getattr(aql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
