"""What convostore knows about each backend: its error codes, and what its SQL can do.

A driver error is *classified* (``classify``: try again, the connection is gone, or
permanent) for the retry runner, and *translated* (``translate``) into the convostore
error a caller sees, the driver's text kept and never the URL. A failed connection attempt
that got no answer at all (``nothing_answered``: refused, unknown host, timed out; on SQLite
a file that cannot be opened) becomes
[`DatabaseUnreachableError`][convostore.errors.DatabaseUnreachableError], naming the
``Address`` tried. The capabilities say which statement shapes a backend has (an append in
one statement, ``DELETE ... RETURNING``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import os
import socket
import ssl
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from ..errors import (
    ConvostoreError,
    DatabaseUnreachableError,
    PayloadTooLargeError,
    SchemaError,
    StorageError,
)

__all__ = [
    "SQLITE_CANTOPEN_TEXT",
    "Address",
    "Failure",
    "appends_in_one_statement",
    "classify",
    "describe_connect_failure",
    "driver_error",
    "driver_message",
    "explain_unreachable",
    "is_mysql",
    "is_transient",
    "nothing_answered",
    "pool_timed_out",
    "refused_connection",
    "translate",
    "unreachable",
]


def is_mysql(dialect: str) -> bool:
    """Whether the backend speaks MySQL's SQL (MySQL or MariaDB)."""
    return dialect in ("mysql", "mariadb")


def appends_in_one_statement(dialect: str) -> bool:
    """Whether an append reserves positions and inserts its rows in one statement.

    PostgreSQL runs the reserving upsert as a data-modifying CTE feeding the insert.
    """
    return dialect == "postgresql"


# PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available (a
# lock_timeout set by the application).
_PG_RETRY = frozenset({"40001", "40P01", "55P03"})
# PostgreSQL SQLSTATEs meaning "the server is going away or not there yet": admin_shutdown,
# crash_shutdown, cannot_connect_now (starting up / shutting down); class 08 is checked apart.
_PG_DISCONNECT = frozenset({"57P01", "57P02", "57P03"})
# PostgreSQL SQLSTATEs: undefined_table, undefined_column, invalid_schema_name.
_PG_SCHEMA = frozenset({"42P01", "42703", "3F000"})
# MySQL/MariaDB: deadlock, lock wait timeout, "record has changed since last read" (MariaDB's
# innodb_snapshot_isolation).
_MYSQL_RETRY = frozenset({1213, 1205, 1020})
# MySQL/MariaDB client and server codes for a connection that is gone or cannot be made:
# can't connect (socket, TCP), server has gone away, lost connection (during query, at
# handshake), server shutdown in progress, connection killed, disconnected for inactivity.
_MYSQL_DISCONNECT = frozenset({2002, 2003, 2006, 2013, 2055, 1053, 1927, 4031})
# MySQL/MariaDB: table doesn't exist, unknown column.
_MYSQL_SCHEMA = frozenset({1146, 1054})
# MySQL/MariaDB: packet bigger than max_allowed_packet.
_MYSQL_PACKET = 1153
# MySQL/MariaDB client codes for a connection that could not be made at all: can't connect
# through the socket file, can't connect over TCP.
_MYSQL_CANNOT_CONNECT = frozenset({2002, 2003})
# SQLite primary result codes: SQLITE_BUSY, SQLITE_LOCKED.
_SQLITE_RETRY = frozenset({5, 6})
# SQLite primary result code SQLITE_CANTOPEN: the database file cannot be opened.
_SQLITE_CANTOPEN = 14
SQLITE_CANTOPEN_TEXT = "unable to open database file"
"""SQLite's text for that code (Python 3.10's sqlite3 gives no code, only the text)."""
_SQLITE_SCHEMA_TEXT = ("no such table", "no such column", "has no column named")


class Failure(enum.Enum):
    """What a failed try means for the transaction."""

    TRANSIENT = "transient"
    """The database rolled the transaction back and asks for another try."""

    DISCONNECT = "disconnect"
    """The connection is gone or could not be made; the server may be restarting."""

    PERMANENT = "permanent"
    """Trying again would fail the same way."""


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception inside an SQLAlchemy wrapper (or ``exc`` itself)."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def _sqlstate(exc: BaseException) -> str | None:
    orig = driver_error(exc)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _mysql_code(exc: BaseException) -> int | None:
    args = getattr(driver_error(exc), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(driver_error(exc), "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def classify(exc: BaseException, dialect: str) -> Failure:
    """Say whether ``exc``, raised by a try of a transaction, is worth another try."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Failure.DISCONNECT
    if isinstance(exc, OSError) and not isinstance(exc, (socket.gaierror, ssl.SSLError)):
        # Raised by a driver's connect before SQLAlchemy wraps anything: refused, reset,
        # timed out. An unknown host name or a TLS failure will not fix itself.
        return Failure.DISCONNECT
    if dialect == "postgresql":
        state = _sqlstate(exc)
        if state in _PG_RETRY:
            return Failure.TRANSIENT
        if state is not None and (state in _PG_DISCONNECT or state.startswith("08")):
            return Failure.DISCONNECT
    elif dialect in ("mysql", "mariadb"):
        code = _mysql_code(exc)
        if code in _MYSQL_RETRY:
            return Failure.TRANSIENT
        if code in _MYSQL_DISCONNECT:
            return Failure.DISCONNECT
    elif dialect == "sqlite" and isinstance(exc, DBAPIError):
        code = _sqlite_code(exc)
        if code is not None:
            return Failure.TRANSIENT if code in _SQLITE_RETRY else Failure.PERMANENT
        if "is locked" in str(exc.orig):
            return Failure.TRANSIENT
    return Failure.PERMANENT


def is_transient(exc: BaseException, dialect: str) -> bool:
    """Whether ``exc`` means the transaction never committed and may simply be run again."""
    return classify(exc, dialect) is not Failure.PERMANENT


def driver_message(exc: BaseException) -> str:
    """The driver's own text for ``exc``, in one line, without its class name."""
    orig = driver_error(exc)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # An OSError's args are (errno, text) too, but its str() already reads well.
    if (
        not isinstance(orig, OSError)
        and len(args) == 2
        and isinstance(args[0], int)
        and isinstance(args[1], str)
    ):
        # PyMySQL's errors print as the tuple (code, "text").
        return f"{args[1]} (MySQL error {args[0]})"
    return str(orig).strip() or type(orig).__name__


def translate(exc: BaseException, dialect: str) -> ConvostoreError:
    """Return the convostore error for a driver error that will not be retried."""
    message = driver_message(exc)
    if dialect == "postgresql" and _sqlstate(exc) in _PG_SCHEMA:
        return _schema_error(message)
    if dialect in ("mysql", "mariadb"):
        code = _mysql_code(exc)
        if code in _MYSQL_SCHEMA:
            return _schema_error(message)
        if code == _MYSQL_PACKET:
            return PayloadTooLargeError(
                f"the MySQL/MariaDB server refused the write as larger than its "
                f"max_allowed_packet setting ({message}); raise max_allowed_packet on the "
                f"server or store smaller items. Nothing was written."
            )
    if dialect == "sqlite" and any(text in message for text in _SQLITE_SCHEMA_TEXT):
        return _schema_error(message)
    return StorageError(f"{dialect} error: {message}")


def _schema_error(message: str) -> SchemaError:
    return SchemaError(
        f"the convostore tables are missing or out of date ({message}): run "
        f"`convostore migrate upgrade head` (it also adopts tables written by the Agents "
        f"SDK's SQLAlchemySession); for a new development database, create_tables=True works",
        detail=message,
    )


def describe_connect_failure(exc: BaseException) -> tuple[bool, str]:
    """Say whether a failed connection reached the server, and what went wrong, in one line.

    ``(False, "connection refused (...)")`` when nothing answered at that address (refused,
    unknown host, timed out); ``(True, 'database "x" does not exist')`` when the server
    answered and refused (unknown database, wrong password). The text is the driver's own,
    without its class name: drivers adapted by SQLAlchemy all call their errors ``Error``.
    """
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = driver_error(current) if current is not driver_error(current) else None
        if current is None:
            current = seen[-1].__cause__ or seen[-1].__context__
    unreachable = next((e for e in seen if isinstance(e, (OSError, asyncio.TimeoutError))), None)
    if unreachable is not None:
        text = str(unreachable).strip() or type(unreachable).__name__
        return False, text
    return True, driver_message(exc)


# -- connecting ------------------------------------------------------------------------------

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
_BACKEND_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "mariadb": "MariaDB"}


@dataclasses.dataclass(frozen=True)
class Address:
    """Where a URL's database is: a host and port, or a SQLite file. Never the password."""

    backend: str
    """The backend's name, as SQLAlchemy's dialect names it."""

    host: str | None = None
    """The host the URL names (``localhost`` when it names none); ``None`` for SQLite."""

    port: int | None = None
    """The URL's port, or the backend's default one; ``None`` for SQLite."""

    path: str | None = None
    """SQLite: the database file, made absolute; ``None`` in memory and on servers."""

    @classmethod
    def of(cls, url: URL) -> Address:
        """The address ``url`` points at."""
        backend = url.get_backend_name()
        if backend == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:") or database.startswith("file:"):
                return cls(backend)
            return cls(backend, path=os.path.abspath(database))
        return cls(backend, url.host or "localhost", url.port or _DEFAULT_PORTS.get(backend))

    def __str__(self) -> str:
        if self.host is None:
            return self.path or "an in-memory database"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _network_error(exc: BaseException) -> OSError | None:
    """The socket-level error behind ``exc`` (itself, its driver error or their causes)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # A TLS failure is an answer: something spoke TLS (or refused to) at that address.
        if isinstance(current, OSError) and not isinstance(current, ssl.SSLError):
            return current
        inner = driver_error(current)
        current = inner if inner is not current else (current.__cause__ or current.__context__)
    return None


def nothing_answered(exc: BaseException, dialect: str) -> bool:
    """Whether ``exc``, raised while connecting, means no database answered at that address.

    PostgreSQL (asyncpg raises the socket's own error) and MySQL/MariaDB (client errors 2002
    and 2003 around it): connection refused, an unknown host name, a timeout, a network that
    cannot be reached, or a peer that hung up before saying anything. SQLite: the file cannot
    be opened (``SQLITE_CANTOPEN``). A server that answered and refused (a wrong password, an
    unknown database, "starting up") is not this.
    """
    if dialect == "sqlite":
        code = _sqlite_code(exc)
        if code is not None:
            return code == _SQLITE_CANTOPEN
        return isinstance(exc, DBAPIError) and SQLITE_CANTOPEN_TEXT in str(exc.orig)
    if _network_error(exc) is not None:
        return True
    return is_mysql(dialect) and _mysql_code(exc) in _MYSQL_CANNOT_CONNECT


def _why_unanswered(exc: BaseException) -> tuple[str, str]:
    """What went wrong when nothing answered, and what to check, in the user's terms."""
    cause = _network_error(exc)
    if isinstance(cause, socket.gaierror):
        return "the host name is not known", "check the host in the URL"
    if isinstance(cause, ConnectionRefusedError):
        return (
            "connection refused",
            "check that the server is running and that the URL's host and port are right",
        )
    if isinstance(cause, TimeoutError):
        return (
            "no answer before the connect timeout",
            "check the URL's host and port, and any firewall between",
        )
    text = (str(cause).strip() or type(cause).__name__) if cause else driver_message(exc)
    return text, "check that the server is running and that the URL's host and port are right"


def explain_unreachable(exc: BaseException, address: Address) -> tuple[str, str]:
    """What was found when nothing answered at ``address``, and what to check, apart.

    ``("cannot reach the database server at db:5433 (PostgreSQL): connection refused",
    "check that the server is running and that the URL's host and port are right")``.
    """
    if address.host is None:
        where = address.path or "?"
        folder = os.path.dirname(where)
        if folder and not os.path.isdir(folder):
            return (
                f"cannot open the SQLite database {where}: the folder {folder} does not exist",
                "check the path in the URL",
            )
        return (
            f"cannot open the SQLite database {where}: {driver_message(exc)}",
            "check the path in the URL, and that this user may read and write the file and "
            "its folder",
        )
    reason, check = _why_unanswered(exc)
    backend = _BACKEND_NAMES.get(address.backend, address.backend)
    return f"cannot reach the database server at {address} ({backend}): {reason}", check


def unreachable(
    exc: BaseException, address: Address, *, after: str = ""
) -> DatabaseUnreachableError:
    """The error for a connection attempt that got no answer at ``address``, in one line.

    Args:
        exc: The driver's error (chained by the caller).
        address: Where the engine's URL points.
        after: What was tried before giving up (``"gave up after 30 tries in 7.1s: "``).
    """
    finding, check = explain_unreachable(exc, address)
    return DatabaseUnreachableError(
        f"{after}{finding}; {check}", host=address.host, port=address.port, path=address.path
    )


def refused_connection(exc: BaseException, address: Address) -> StorageError:
    """The error for a server at ``address`` that answered a connection attempt with a no.

    A wrong password or user, an unknown database, a host the server does not accept, a
    TLS failure: the driver's text says which.
    """
    backend = _BACKEND_NAMES.get(address.backend, address.backend)
    check = (
        "check the connection's TLS settings"
        if isinstance(driver_error(exc), ssl.SSLError)
        else "check the user, password and database name in the URL"
    )
    return StorageError(
        f"the {backend} server at {address} refused the connection: {driver_message(exc)}; {check}"
    )


def pool_timed_out(pool_size: int | None, pool_timeout: float | None) -> StorageError:
    """The error for a pool checkout that waited ``pool_timeout`` for a free connection."""
    size = f"pool_size={pool_size}" if pool_size is not None else "pool_size"
    wait = f"pool_timeout={pool_timeout:g} s" if pool_timeout is not None else "pool_timeout"
    return StorageError(
        f"no pooled connection came free within {wait}: all {size} connections and the "
        f"max_overflow ones were in use; raise pool_size (or max_overflow) or pool_timeout in "
        f"engine_kwargs, or run fewer operations at once"
    )
