"""Run one unit of work as one transaction: retried when the database says "try again".

The rules:

- A transaction that failed with a transient error (deadlock, serialization failure, lock
  wait timeout, SQLite busy) never committed: it is run again from the start, with jittered
  exponential backoff, within the bounds of a [`RetryPolicy`][convostore.RetryPolicy].
- So is one whose connection was lost *before* COMMIT was sent, or that could not get a
  connection at all (the server is restarting: connection refused, "shutting down",
  "starting up"). SQLAlchemy invalidates the pool when it sees a disconnect, so the next try
  runs on a fresh connection: stale pooled connections left by a restart cost one failed
  statement each, never an error for the caller, and nothing (no pre-ping) in normal times.
- But an engine that has never connected, and whose connection attempt got no answer at all
  (refused, unknown host, timed out: ``nothing_answered`` in ``.dialect``), has a wrong address,
  not a server restarting: it raises
  [`DatabaseUnreachableError`][convostore.errors.DatabaseUnreachableError] at once, naming the
  host and port. Whether an engine connected is kept in its ``Reach`` (``.engine``). One that had
  connected and still gets no answer when the policy's bounds are spent raises the same error.
- No connection free in the pool within ``pool_timeout`` is raised at once (the wait was the
  pool's), as a [`StorageError`][convostore.errors.StorageError] naming the pool's settings.
- A connection lost while COMMIT was in flight leaves the outcome unknown. If the caller gave a way
  to find out (``verify``), it is asked on a new connection once the server answers again: a write
  that did not commit is run again, one that did is reported as done. Otherwise
  [`CommitOutcomeUnknownError`][convostore.errors.CommitOutcomeUnknownError] is raised; the write is
  never repeated blindly.
- Permanent errors (bad credentials, unknown database, missing tables, a payload the server
  refuses) are raised at once.
- Writes are shielded from cancellation: a cancelled caller still gets ``CancelledError``,
  but only after the transaction has committed or rolled back, so a batch is never half
  written and the connection goes back to the pool clean.
- Driver errors come out as convostore errors, the driver's exception chained as the cause.
  Messages carry the driver's text, never the URL: no password reaches them.

A unit of work is a plain function of a synchronous SQLAlchemy ``Connection``: it runs through
``AsyncConnection.run_sync`` (one greenlet for the whole unit instead of one per statement) or, on a
SQLite file, in one call on a thread that keeps a connection (``convostore._db.worker``). Either way
it is SQLAlchemy Core, statement by statement, with the same events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from .._config import RetryPolicy
from .._observability import record_retry
from ..errors import CommitOutcomeUnknownError, ConvostoreError, StorageError
from .dialect import Failure, classify, driver_error, driver_message, nothing_answered, unreachable
from .engine import Database, EngineState
from .worker import Committing, SQLiteWorker, commit_after

__all__ = ["ReadAgain", "Verify", "run_read", "run_write"]

logger = logging.getLogger("convostore")

T = TypeVar("T")

# Reads that met an item deleted between two of their statements, run again this often.
_READ_AGAIN_TRIES = 5


class ReadAgain(Exception):
    """Raised by a read's work that saw the database between two writes' statements.

    A read outside a transaction (PostgreSQL's autocommit reads, SQLite's) sees each
    statement at its own moment: an item popped between the read of its row and of its
    chunks comes back incomplete, and the read is simply run again.
    """


Work = Callable[[Connection], T]
"""A unit of work: the SQL of one transaction, on the connection it is given."""

Verify = Callable[[Connection], "bool | None"]
"""Asked, on a new connection, whether a write whose COMMIT was lost did commit: ``True``
(it did), ``False`` (it certainly did not) or ``None`` (cannot tell)."""


async def run_write(
    db: Database,
    work: Work[T],
    *,
    retry: RetryPolicy,
    verify: Verify | None = None,
    one_statement: bool = False,
) -> T:
    """Run ``work`` in one transaction and commit, retrying it whole on transient errors.

    ``work`` may run more than once, so it must do nothing but SQL on the connection it
    is given. The call is shielded from cancellation (see the module docstring). On a
    SQLite file, writers of one engine in this process take turns in order
    (``EngineState.writer_lock``).

    Args:
        db: The engine to run on, with its state.
        work: The transaction's SQL; its return value is returned.
        retry: How transient errors and lost connections are retried.
        verify: If the connection is lost while COMMIT is in flight, called on a new
            connection to tell whether the last try of ``work`` committed (it may read what
            ``work`` left in its closure). ``True``: the write is done and the value ``work``
            returned is returned; ``False``: ``work`` runs again; ``None``, or no ``verify``:
            [`CommitOutcomeUnknownError`][convostore.errors.CommitOutcomeUnknownError] is raised.
        one_statement: ``work`` is one statement, atomic by itself: on PostgreSQL it runs
            in autocommit (no BEGIN and COMMIT round trips). ``work`` must then raise
            ``Committing`` for an error of that statement, whose outcome a lost
            connection leaves unknown.

    Raises:
        CommitOutcomeUnknownError: The connection died during COMMIT and the outcome could
            not be established.
        StorageError: A permanent database error, or transient ones past the retry bounds.
    """
    engine = db.read_engine if one_statement else db.engine  # the autocommit view, on PostgreSQL
    worker = db.state.worker_for(engine)
    if worker is not None:
        # The worker's one writer thread is the queue.
        return await _shielded(
            _run(engine, db.state, work, retry, write=True, verify=verify, worker=worker)
        )
    # On a SQLite file, queue behind this process's other writers first (outside the shield:
    # a caller cancelled while it waits its turn has written nothing).
    lock = db.state.writer_lock()
    if lock is None:
        return await _shielded(_run(engine, db.state, work, retry, write=True, verify=verify))
    async with lock:
        return await _shielded(_run(engine, db.state, work, retry, write=True, verify=verify))


async def run_read(
    db: Database,
    work: Work[T],
    *,
    retry: RetryPolicy,
) -> T:
    """Run the read-only ``work`` on one connection, retrying it on transient errors.

    ``work`` may raise ``ReadAgain`` to be run again from the start (a few times at
    most). On PostgreSQL the read runs in autocommit: a transaction would cost two more
    round trips (BEGIN, and ROLLBACK when the connection goes back to the pool), a third
    of a tail read (bench/, docs/performance.md), and buys nothing under READ COMMITTED.
    """
    tries = 1
    while True:
        try:
            return await _run(db.read_engine, db.state, work, retry, write=False, verify=None)
        except ReadAgain as exc:
            if tries == _READ_AGAIN_TRIES:
                raise StorageError(f"could not read a consistent copy: {exc}") from exc
            tries += 1


class _Clock:
    """Counts the tries of one transaction against its [`RetryPolicy`][convostore.RetryPolicy]."""

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
            type(driver_error(exc)).__name__,
            delay,
        )
        await asyncio.sleep(delay)
        return True

    def give_up(self, exc: BaseException, state: EngineState) -> StorageError:
        elapsed = time.monotonic() - self.start
        tried = f"gave up after {self.attempt} tries in {elapsed:.1f}s"
        if nothing_answered(exc, state.dialect):
            return unreachable(exc, state.reach.address, after=f"{tried}: ")
        return StorageError(f"{tried}; last {state.dialect} error: {driver_message(exc)}")


async def _run(
    engine: AsyncEngine,
    state: EngineState,
    work: Work[T],
    retry: RetryPolicy,
    *,
    write: bool,
    verify: Verify | None,
    worker: SQLiteWorker | None = None,
) -> T:
    """``worker``: the caller's answer of ``state.worker_for(engine)`` for the first try."""
    dialect = state.dialect
    lock = state.connection_lock
    clock = _Clock(retry)
    while True:
        clock.attempt += 1
        try:
            if clock.attempt > 1 or worker is None:
                worker = state.worker_for(engine)  # asked once per try
            if worker is not None:
                return await (worker.write(work) if write else worker.read(work))
            if lock is None:
                return await _attempt(engine, work, write)
            async with lock:
                return await _attempt(engine, work, write)
        except Committing as marker:
            exc: BaseException = marker.error
            kind = classify(exc, dialect)
            if kind is Failure.DISCONNECT:
                committed = None
                if verify is not None:
                    committed = await _committed(engine, state, verify, clock, exc)
                if committed is None:
                    raise _unknown(dialect) from exc
                if committed:
                    return marker.result  # type: ignore[return-value]
                # Certainly not committed: run it again like any other lost connection.
        except (DBAPIError, OSError) as error:
            exc = error
            kind = classify(exc, dialect)
        except PoolTimeoutError as error:
            raise state.error_for(error) from error

        if kind is Failure.PERMANENT or (
            # No answer at an address never reached: a wrong one, not a server restarting.
            not state.reach.connected and nothing_answered(exc, dialect)
        ):
            raise state.error_for(exc) from exc
        if not await clock.wait_or_give_up(exc, dialect, kind):
            raise clock.give_up(exc, state) from exc


def _unknown(dialect: str) -> CommitOutcomeUnknownError:
    return CommitOutcomeUnknownError(
        f"the connection to {dialect} was lost during COMMIT; the write may or may not be "
        f"stored: read the session back before writing it again"
    )


async def _committed(
    engine: AsyncEngine, state: EngineState, verify: Verify, clock: _Clock, lost: BaseException
) -> bool | None:
    """Ask ``verify`` whether the lost COMMIT went through, retrying until the server answers."""
    remaining = max(0.0, clock.retry.max_elapsed - (time.monotonic() - clock.start))
    policy = dataclasses.replace(clock.retry, max_elapsed=remaining)
    try:
        committed = await _run(engine, state, verify, policy, write=False, verify=None)
    except ConvostoreError as exc:
        raise _unknown(state.dialect) from exc
    logger.debug(
        "convostore: %s COMMIT lost (%s); the write %s",
        state.dialect,
        type(driver_error(lost)).__name__,
        _OUTCOMES[committed],
    )
    return committed


_OUTCOMES = {
    True: "did commit",
    False: "did not commit and is run again",
    None: "may or may not have committed",
}


async def _attempt(engine: AsyncEngine, work: Work[T], write: bool) -> T:
    # One greenlet for the work and its COMMIT, and none of ``async with``'s extra task: a
    # third of the CPU an operation spends outside the driver (bench/layers.py).
    conn = engine.connect()
    await conn.start()
    try:
        result = await conn.run_sync(commit_after(work) if write else work)
    except BaseException:
        # Given back to the pool even if the caller is cancelled again meanwhile.
        await asyncio.shield(conn.close())
        raise
    await conn.close()
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
