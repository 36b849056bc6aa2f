"""Run one unit of work as one transaction: retried when the database says "try again".

The rules:

- A transaction that failed with a transient error (deadlock, serialization failure, lock
  wait timeout, SQLite busy) or lost its connection *before* COMMIT was sent never
  committed: it is run again from the start, with jittered exponential backoff.
- A connection lost while COMMIT was in flight leaves the outcome unknown: that is raised
  as :class:`~convostore.errors.CommitOutcomeUnknownError`, never retried blindly.
- Writes are shielded from cancellation: a cancelled caller still gets ``CancelledError``,
  but only after the transaction has committed or rolled back, so a batch is never half
  written and the connection goes back to the pool clean.
- Driver errors come out as convostore errors, the driver's exception chained as the cause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .engine import connection_lock
from .errors import (
    CommitOutcomeUnknownError,
    ConvostoreError,
    PayloadTooLargeError,
    SchemaError,
    StorageError,
)

__all__ = ["RetryPolicy", "run_read", "run_write"]

logger = logging.getLogger("convostore")

T = TypeVar("T")

# PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected.
_PG_RETRY = frozenset({"40001", "40P01"})
# PostgreSQL SQLSTATEs: undefined_table, undefined_column, invalid_schema_name.
_PG_SCHEMA = frozenset({"42P01", "42703", "3F000"})
# MySQL/MariaDB: deadlock, lock wait timeout.
_MYSQL_RETRY = frozenset({1213, 1205})
# MySQL/MariaDB: table doesn't exist, unknown column.
_MYSQL_SCHEMA = frozenset({1146, 1054})
# MySQL/MariaDB: packet bigger than max_allowed_packet.
_MYSQL_PACKET = 1153
# SQLite primary result codes: SQLITE_BUSY, SQLITE_LOCKED.
_SQLITE_RETRY = frozenset({5, 6})
_SQLITE_SCHEMA_TEXT = ("no such table", "no such column", "has no column named")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a transaction is retried after a transient error."""

    attempts: int = 8
    """Tries in all, the first one included."""

    base_delay: float = 0.01
    """Seconds before the second try; doubles with each further try."""

    max_delay: float = 1.0
    """The longest pause between two tries, in seconds."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based): full jitter."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


DEFAULT_RETRY = RetryPolicy()


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _mysql_code(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _sqlite_code(exc: DBAPIError) -> int | None:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_transient(exc: DBAPIError, dialect: str) -> bool:
    """Whether ``exc`` means the transaction was rolled back and may simply be run again."""
    if dialect == "postgresql":
        return _sqlstate(exc) in _PG_RETRY
    if dialect in ("mysql", "mariadb"):
        return _mysql_code(exc) in _MYSQL_RETRY
    if dialect == "sqlite":
        code = _sqlite_code(exc)
        if code is not None:
            return code in _SQLITE_RETRY
        return "database is locked" in str(exc.orig) or "is locked" in str(exc.orig)
    return False


def translate(exc: DBAPIError, dialect: str) -> ConvostoreError:
    """Return the convostore error for a driver error that will not be retried."""
    message = str(exc.orig).strip() or type(exc.orig).__name__
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
        f"`convostore migrate upgrade head`, or pass create_tables=True"
    )


async def run_write(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> T:
    """Run ``work`` in one transaction and commit, retrying it whole on transient errors.

    ``work`` may run more than once, so it must do nothing but SQL on the connection it
    is given. The call is shielded from cancellation (see the module docstring).
    """
    return await _shielded(_run(engine, work, retry, write=True))


async def run_read(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> T:
    """Run the read-only ``work`` on one connection, retrying it on transient errors."""
    return await _run(engine, work, retry, write=False)


async def _run(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    retry: RetryPolicy,
    *,
    write: bool,
) -> T:
    dialect = engine.dialect.name
    lock = connection_lock(engine)
    attempt = 0
    while True:
        attempt += 1
        committing = False
        try:
            if lock is None:
                return await _attempt(engine, work, write)
            async with lock:
                return await _attempt(engine, work, write)
        except _Committing as marker:
            committing = True
            exc = marker.error
        except DBAPIError as error:
            exc = error

        if committing and (exc.connection_invalidated or not is_transient(exc, dialect)):
            if exc.connection_invalidated:
                raise CommitOutcomeUnknownError(
                    f"the connection to {dialect} was lost during COMMIT; the write may or may "
                    f"not be stored: read the session back before writing it again"
                ) from exc
            raise translate(exc, dialect) from exc
        if not (exc.connection_invalidated or is_transient(exc, dialect)):
            raise translate(exc, dialect) from exc
        if attempt >= retry.attempts:
            raise StorageError(
                f"gave up after {attempt} tries; last {dialect} error: {exc.orig}"
            ) from exc
        delay = retry.delay(attempt)
        logger.debug(
            "convostore: %s transaction try %d failed (%s); retrying in %.3fs",
            dialect,
            attempt,
            type(exc.orig).__name__,
            delay,
        )
        await asyncio.sleep(delay)


class _Committing(Exception):
    """Carries an error raised by COMMIT out of the connection block."""

    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


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
        except DBAPIError as exc:
            raise _Committing(exc) from exc
        return result


async def _shielded(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to the end even if the caller is cancelled, then re-raise that."""
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError as exc:
            if cancelled is None:
                cancelled = exc
    if cancelled is not None:
        if not task.cancelled() and task.exception() is not None:
            logger.debug("convostore: cancelled write failed: %r", task.exception())
        raise cancelled
    return task.result()
