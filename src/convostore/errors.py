"""The errors convostore raises.

Every error derives from [`ConvostoreError`][convostore.errors.ConvostoreError], so one ``except``
clause catches them all. Errors about a caller's input also derive from the matching built-in
(``ValueError`` or ``TypeError``), so code written for the Agents SDK's store keeps working. The
whole tree:

```text
ConvostoreError
├── ConfigurationError           bad table names, URLs or options (at construction)
│   ├── UnsupportedDriverError   a sync-only driver in the URL
│   └── EventLoopError           an engine used from an event loop it cannot serve
├── InvalidInputError            (also ValueError) a call's arguments, nothing written
│   ├── InvalidSessionIdError
│   ├── InvalidLimitError
│   ├── InvalidIdempotencyKeyError
│   ├── InvalidItemError         (also TypeError) not a dict, not JSON, ...
│   ├── PayloadTooLargeError     larger than the server (or a configured limit) accepts
│   └── InvalidCursorError       a listing cursor that this store did not hand out
├── SessionNotFoundError         (also LookupError) no session has that id
├── SessionExistsError           an import found the session already stored
├── SchemaError                  tables missing, or not laid out as convostore expects
├── MissingDependencyError       (also ModuleNotFoundError) an optional package is missing
├── DecryptionError              an encrypted item cannot be decrypted with the keys given
└── StorageError                 the database failed; the driver's error is the __cause__
    ├── DatabaseUnreachableError   nothing answered at the URL's address (or SQLite path)
    └── CommitOutcomeUnknownError  the connection died while COMMIT was in flight
```

Errors carry what they are about as attributes (``SessionNotFoundError.session_id``,
``PayloadTooLargeError.size`` ...), so programs need not parse messages. This module's path is
frozen: released migration revisions import [`SchemaError`][convostore.errors.SchemaError] from it.
"""

from __future__ import annotations

__all__ = [
    "CommitOutcomeUnknownError",
    "ConfigurationError",
    "ConvostoreError",
    "DatabaseUnreachableError",
    "DecryptionError",
    "EventLoopError",
    "InvalidCursorError",
    "InvalidIdempotencyKeyError",
    "InvalidInputError",
    "InvalidItemError",
    "InvalidLimitError",
    "InvalidSessionIdError",
    "MissingDependencyError",
    "PayloadTooLargeError",
    "SchemaError",
    "SessionExistsError",
    "SessionNotFoundError",
    "StorageError",
    "UnsupportedDriverError",
]


class ConvostoreError(Exception):
    """The root of every error raised by convostore."""


class ConfigurationError(ConvostoreError, ValueError):
    """A constructor argument, URL or option is unusable; raised before touching the database."""


class UnsupportedDriverError(ConfigurationError):
    """The URL names a synchronous driver; the message gives the async URL to use instead."""


class EventLoopError(ConfigurationError):
    """An engine the application passed in is used from an event loop it cannot serve.

    Its pool holds connections opened on another loop; the message says what to do (one
    engine per loop, ``dispose()`` first, ``NullPool``, or a session opened from a URL).
    """


class InvalidInputError(ConvostoreError, ValueError):
    """A call's arguments were refused before anything was written."""


class InvalidSessionIdError(InvalidInputError):
    """The session id is not a non-empty string of at most 255 characters."""


class InvalidLimitError(InvalidInputError):
    """The ``limit`` passed to a read is not ``None`` or a non-negative integer."""


class InvalidIdempotencyKeyError(InvalidInputError):
    """An idempotency key is not a non-empty string of at most 255 characters."""


class InvalidItemError(InvalidInputError, TypeError):
    """An item is not a JSON object that can be stored and read back exactly."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index
        """The refused item's index in the batch, when a batch was given (else ``None``)."""


class PayloadTooLargeError(InvalidInputError):
    """An item is larger than the database server (or a configured limit) accepts."""

    def __init__(
        self,
        message: str,
        *,
        size: int | None = None,
        limit: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.size = size
        """The item's size in bytes of stored JSON, when known."""
        self.limit = limit
        """The limit it went over, in bytes, when known (``max_item_bytes``)."""
        self.index = index
        """The item's index in the batch, when known."""


class InvalidCursorError(InvalidInputError):
    """A listing cursor is malformed or was not handed out by this store.

    Cursors come from [`SessionStore.list_sessions`][convostore.SessionStore.list_sessions].
    """


class _AboutASession(ConvostoreError):
    """An error about one session, named by ``session_id``."""

    def __init__(self, message: str, *, session_id: str | None = None) -> None:
        super().__init__(message)
        self.session_id = session_id
        """The session's id."""


class SessionNotFoundError(_AboutASession, LookupError):
    """No session has the id given to an operation that needs an existing session.

    ``session_id`` is the id that names no session.
    """


class SessionExistsError(_AboutASession):
    """An import met a session that is already stored (and was told to refuse, not skip).

    ``session_id`` is the id of the session that exists.
    """


class SchemaError(ConvostoreError):
    """The tables are missing or are not laid out the way convostore expects."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        """What the database said about the tables, when it said something (else ``None``)."""


class MissingDependencyError(ConvostoreError, ModuleNotFoundError):
    """An optional package a feature needs is not installed; the message names the extra.

    Attributes ``package`` (the missing module) and ``extra`` (the ``pip install`` line to
    run) say the same for programs.
    """

    def __init__(self, message: str, *, package: str, extra: str) -> None:
        super().__init__(message)
        self.name = package  # as ModuleNotFoundError's own attribute
        self.package = package
        self.extra = extra


class DecryptionError(ConvostoreError):
    """A stored item cannot be decrypted: wrong or missing key, altered data, or not encrypted."""

    def __init__(
        self, message: str, *, session_id: str | None = None, position: int | None = None
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        """The session of the item, when known."""
        self.position = position
        """The item's position in its session, when known."""


class StorageError(ConvostoreError):
    """The database reported an error; the driver's exception is chained as ``__cause__``."""


class CommitOutcomeUnknownError(StorageError):
    """The connection was lost while COMMIT was in flight: the write may or may not be stored.

    Read the session back before retrying, or use a write that can be repeated safely.
    """


class DatabaseUnreachableError(StorageError):
    """Nothing answered at the database's address: refused, unknown host, timed out.

    Raised at once by an engine that has never connected (a wrong host or port is not worth
    retrying), and by one that had connected once the [`RetryPolicy`][convostore.RetryPolicy]'s
    bounds are spent (a server that went away and stayed away). On SQLite: the database
    file cannot be opened. The message names the address and what to check, never the
    password; the driver's exception is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.host = host
        """The host the URL names (``None`` for SQLite)."""
        self.port = port
        """The port tried: the URL's, or the backend's default (``None`` for SQLite)."""
        self.path = path
        """SQLite: the database file that could not be opened (else ``None``)."""
