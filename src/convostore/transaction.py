"""Run one unit of work as one transaction: retried when the database says "try again".

The rules:

- A transaction that failed with a transient error (deadlock, serialization failure, lock
  wait timeout, SQLite busy) never committed: it is run again from the start, with jittered
  exponential backoff, within the bounds of a :class:`RetryPolicy`.
- So is one whose connection was lost *before* COMMIT was sent, or that could not get a
  connection at all (the server is restarting: connection refused, "shutting down",
  "starting up"). SQLAlchemy invalidates the pool when it sees a disconnect, so the next try
  runs on a fresh connection: stale pooled connections left by a restart cost one failed
  statement each, never an error for the caller, and nothing (no pre-ping) in normal times.
- A connection lost while COMMIT was in flight leaves the outcome unknown. If the caller
  gave a way to find out (``verify``), it is asked on a new connection once the server
  answers again: a write that did not commit is run again, one that did is reported as
  done. Otherwise :class:`~convostore.errors.CommitOutcomeUnknownError` is raised; the
  write is never repeated blindly.
- Permanent errors (bad credentials, unknown database, missing tables, a payload the server
  refuses) are raised at once.
- Writes are shielded from cancellation: a cancelled caller still gets ``CancelledError``,
  but only after the transaction has committed or rolled back, so a batch is never half
  written and the connection goes back to the pool clean.
- Driver errors come out as convostore errors, the driver's exception chained as the cause.
  Messages carry the driver's text, never the URL: no password reaches them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .engine import connection_lock, writer_lock
from .errors import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConvostoreError,
    PayloadTooLargeError,
    SchemaError,
    StorageError,
)
from .observability import record_retry

__all__ = ["DEFAULT_RETRY", "RetryPolicy", "run_read", "run_write"]

logger = logging.getLogger("convostore")

T = TypeVar("T")

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
# SQLite primary result codes: SQLITE_BUSY, SQLITE_LOCKED.
_SQLITE_RETRY = frozenset({5, 6})
_SQLITE_SCHEMA_TEXT = ("no such table", "no such column", "has no column named")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a transaction is retried after a transient error.

    A transaction is tried again while both bounds allow it: at most ``attempts`` tries, and
    no new try after ``max_elapsed`` seconds. The defaults ride out a database restart of a
    few seconds. ``RetryPolicy(attempts=1)`` turns retries off.
    """

    attempts: int = 30
    """Tries in all, the first one included."""

    base_delay: float = 0.01
    """Upper bound, in seconds, of the pause before the second try; doubles with each try."""

    max_delay: float = 0.5
    """The longest pause between two tries, in seconds."""

    max_elapsed: float = 10.0
    """Seconds after the first try's start past which no further try is started."""

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"RetryPolicy.attempts must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        for name in ("base_delay", "max_delay", "max_elapsed"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based): full jitter."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 60)))


DEFAULT_RETRY = RetryPolicy()
"""The policy sessions use unless given another."""


class Failure(enum.Enum):
    """What a failed try means for the transaction."""

    TRANSIENT = "transient"
    """The database rolled the transaction back and asks for another try."""

    DISCONNECT = "disconnect"
    """The connection is gone or could not be made; the server may be restarting."""

    PERMANENT = "permanent"
    """Trying again would fail the same way."""


def _driver_error(exc: BaseException) -> BaseException:
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def _sqlstate(exc: BaseException) -> str | None:
    orig = _driver_error(exc)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _mysql_code(exc: BaseException) -> int | None:
    args = getattr(_driver_error(exc), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(_driver_error(exc), "sqlite_errorcode", None)
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


def _message(exc: BaseException) -> str:
    orig = _driver_error(exc)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        # PyMySQL's errors print as the tuple (code, "text").
        return f"{args[1]} (MySQL error {args[0]})"
    return str(orig).strip() or type(orig).__name__


def translate(exc: BaseException, dialect: str) -> ConvostoreError:
    """Return the convostore error for a driver error that will not be retried."""
    message = _message(exc)
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


Verify = Callable[[AsyncConnection], Awaitable["bool | None"]]
"""Asked, on a new connection, whether a write whose COMMIT was lost did commit: ``True``
(it did), ``False`` (it certainly did not) or ``None`` (cannot tell)."""


async def run_write(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    verify: Verify | None = None,
) -> T:
    """Run ``work`` in one transaction and commit, retrying it whole on transient errors.

    ``work`` may run more than once, so it must do nothing but SQL on the connection it
    is given. The call is shielded from cancellation (see the module docstring). On a
    SQLite file, writers of one engine in this process take turns in order
    (:func:`convostore.engine.writer_lock`).

    Args:
        engine: The engine to run on.
        work: The transaction's SQL; its return value is returned.
        retry: How transient errors and lost connections are retried.
        verify: If the connection is lost while COMMIT is in flight, called on a new
            connection to tell whether the last try of ``work`` committed (it may read what
            ``work`` left in its closure). ``True``: the write is done and the value ``work``
            returned is returned; ``False``: ``work`` runs again; ``None``, or no ``verify``:
            :class:`~convostore.errors.CommitOutcomeUnknownError` is raised.

    Raises:
        CommitOutcomeUnknownError: The connection died during COMMIT and the outcome could
            not be established.
        StorageError: A permanent database error, or transient ones past the retry bounds.
    """
    # On a SQLite file, queue behind this process's other writers first (outside the shield:
    # a caller cancelled while it waits its turn has written nothing).
    lock = writer_lock(engine)
    if lock is None:
        return await _shielded(_run(engine, work, retry, write=True, verify=verify))
    async with lock:
        return await _shielded(_run(engine, work, retry, write=True, verify=verify))


async def run_read(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> T:
    """Run the read-only ``work`` on one connection, retrying it on transient errors."""
    return await _run(engine, work, retry, write=False, verify=None)


class _Clock:
    """Counts the tries of one transaction against its :class:`RetryPolicy`."""

    def __init__(self, retry: RetryPolicy) -> None:
        self.retry = retry
        self.start = time.monotonic()
        self.attempt = 0

    async def wait_or_give_up(self, exc: BaseException, dialect: str, kind: Failure) -> bool:
        """Sleep before the next try and return ``True``, or return ``False`` if out of bounds."""
        delay = self.retry.delay(self.attempt)
        elapsed = time.monotonic() - self.start
        if self.attempt >= self.retry.attempts or elapsed + delay > self.retry.max_elapsed:
            return False
        record_retry()
        logger.debug(
            "convostore: %s transaction try %d failed (%s, %s); retrying in %.3fs",
            dialect,
            self.attempt,
            kind.value,
            type(_driver_error(exc)).__name__,
            delay,
        )
        await asyncio.sleep(delay)
        return True

    def give_up(self, exc: BaseException, dialect: str) -> StorageError:
        elapsed = time.monotonic() - self.start
        return StorageError(
            f"gave up after {self.attempt} tries in {elapsed:.1f}s; last {dialect} error: "
            f"{_message(exc)}"
        )


async def _run(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    retry: RetryPolicy,
    *,
    write: bool,
    verify: Verify | None,
) -> T:
    dialect = engine.dialect.name
    lock = connection_lock(engine)
    clock = _Clock(retry)
    while True:
        clock.attempt += 1
        try:
            if lock is None:
                return await _attempt(engine, work, write)
            async with lock:
                return await _attempt(engine, work, write)
        except _Committing as marker:
            exc: BaseException = marker.error
            kind = classify(exc, dialect)
            if kind is Failure.DISCONNECT:
                committed = None
                if verify is not None:
                    committed = await _committed(engine, verify, clock, dialect, exc)
                if committed is None:
                    raise _unknown(dialect) from exc
                if committed:
                    return marker.result  # type: ignore[no-any-return]
                # Certainly not committed: run it again like any other lost connection.
        except (DBAPIError, OSError) as error:
            exc = error
            kind = classify(exc, dialect)

        if kind is Failure.PERMANENT:
            raise translate(exc, dialect) from exc
        if not await clock.wait_or_give_up(exc, dialect, kind):
            raise clock.give_up(exc, dialect) from exc


def _unknown(dialect: str) -> CommitOutcomeUnknownError:
    return CommitOutcomeUnknownError(
        f"the connection to {dialect} was lost during COMMIT; the write may or may not be "
        f"stored: read the session back before writing it again"
    )


async def _committed(
    engine: AsyncEngine, verify: Verify, clock: _Clock, dialect: str, lost: BaseException
) -> bool | None:
    """Ask ``verify`` whether the lost COMMIT went through, retrying until the server answers."""
    remaining = max(0.0, clock.retry.max_elapsed - (time.monotonic() - clock.start))
    policy = dataclasses.replace(clock.retry, max_elapsed=remaining)
    try:
        committed = await _run(engine, verify, policy, write=False, verify=None)
    except ConvostoreError as exc:
        raise _unknown(dialect) from exc
    logger.debug(
        "convostore: %s COMMIT lost (%s); the write %s",
        dialect,
        type(_driver_error(lost)).__name__,
        _OUTCOMES[committed],
    )
    return committed


_OUTCOMES = {
    True: "did commit",
    False: "did not commit and is run again",
    None: "may or may not have committed",
}


class _Committing(Exception):
    """Carries an error raised by COMMIT (and the work's result) out of the connection block."""

    def __init__(self, error: BaseException, result: Any) -> None:
        super().__init__(type(error).__name__)
        self.error = error
        self.result = result


async def _attempt(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    write: bool,
) -> T:
    async with engine.connect() as conn:
        if not write:
            return await work(conn)
        result = await work(conn)
        try:
            await conn.commit()
        except (DBAPIError, OSError) as exc:
            raise _Committing(exc, result) from exc
        return result


async def _shielded(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to the end even if the caller is cancelled, then re-raise that."""
    task = asyncio.ensure_future(awaitable)
    try:
        # shield() is the cheap path for the common case, no cancellation at all.
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done() and task.cancelled():
            raise  # the write itself was cancelled (event loop shutting down)
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError:
                continue
        if not task.cancelled() and task.exception() is not None:
            logger.debug("convostore: cancelled write failed: %r", task.exception())
        raise


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
        current = _driver_error(current) if current is not _driver_error(current) else None
        if current is None:
            current = seen[-1].__cause__ or seen[-1].__context__
    unreachable = next((e for e in seen if isinstance(e, (OSError, asyncio.TimeoutError))), None)
    if unreachable is not None:
        text = str(unreachable).strip() or type(unreachable).__name__
        return False, text
    return True, _message(exc)
