"""The exceptions this package raises.

A call that fails on the server raises the exception its reply names
(``error_type``): a builtin (KeyError, ValueError, TypeError,
PermissionError, RuntimeError, AttributeError, MemoryError) or one of the
NanaSQLite classes below. Failures found by the client itself (no
connection, authentication refused, timeout, ...) raise the classes named by
the C library's ``nana_client_status_name``.

Every exception raised for a failed call carries two attributes:

``error_type``
    the name the server (or the client library) gave the error;
``code``
    the server's machine-readable reason when it sent one (``"busy"``,
    ``"timeout"``, ``"rate_limited"``, ``"shutdown"``), else None.
"""


class NanaSQLiteError(Exception):
    """Base class of every NanaSQLite error.

    Also raised, with the type name in the message, for an ``error_type``
    this package does not know.
    """

    def __init__(self, message="", *, error_type=None, code=None):
        super().__init__(message)
        self.message = message
        self.error_type = error_type if error_type is not None else type(self).__name__
        self.code = code


# ---- the server's own classes (the NanaSQLite library's names) ---------------

class NanaSQLiteValidationError(NanaSQLiteError):
    """A table, column or index name, SQL fragment, JSON path or pragma refused."""


class NanaSQLiteDatabaseError(NanaSQLiteError):
    """SQLite failed: a corrupt or read-only file, a full disk, ..."""


class NanaSQLiteTransactionError(NanaSQLiteError):
    """A transaction was used in a state that does not allow it."""


class NanaSQLiteConnectionError(NanaSQLiteError):
    """The server could not be reached, or the connection was lost."""


class NanaSQLiteClosedError(NanaSQLiteError):
    """The client (or, on the server, the store) is closed."""


class NanaSQLiteLockError(NanaSQLiteError):
    """The database was busy (``code`` is ``"busy"``): retrying later may work."""


class NanaSQLiteCacheError(NanaSQLiteError):
    """A cache could not be used as asked."""


# ---- found by the client -------------------------------------------------------

class AuthenticationError(NanaSQLiteConnectionError):
    """The server refused this key (or account name), or banned this address."""


class UnknownOutcomeError(NanaSQLiteConnectionError):
    """The call was sent and then the connection was lost.

    It may or may not have run on the server. The client never resends such
    a call by itself, so a write is never repeated silently: check the data
    before retrying.
    """


class BusyError(NanaSQLiteError):
    """Too many calls are queued on this client; try again later."""


class CircuitOpenError(NanaSQLiteConnectionError):
    """Connection attempts keep failing, so calls fail at once for a while."""


class ProtocolError(NanaSQLiteError):
    """The server's reply is not a well-formed NanaSQLite reply."""


class QueryError(NanaSQLiteError):
    """An AQL query the server refused in its answer (an ErrorResponse).

    ``error_type`` is the error code's name (``"ERROR_VALIDATION_INVALID_KEY"``)
    and ``code`` its number as text (``"6000"``).
    """


class InternalServerError(NanaSQLiteError):
    """The server failed unexpectedly (the detail is in its log, not here)."""


__all__ = [
    "NanaSQLiteError",
    "NanaSQLiteValidationError",
    "NanaSQLiteDatabaseError",
    "NanaSQLiteTransactionError",
    "NanaSQLiteConnectionError",
    "NanaSQLiteClosedError",
    "NanaSQLiteLockError",
    "NanaSQLiteCacheError",
    "AuthenticationError",
    "UnknownOutcomeError",
    "BusyError",
    "CircuitOpenError",
    "ProtocolError",
    "InternalServerError",
    "QueryError",
]
