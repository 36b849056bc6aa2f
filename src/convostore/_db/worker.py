"""SQLite files: each unit of work run whole, in one call, on a thread that keeps a connection.

SQLAlchemy's aiosqlite adapter hands every statement, fetch and COMMIT to the driver's
thread and waits for it: an append costs nine thread hops, a tail read five
(``bench/layers.py``). SQLite itself is a library call that takes microseconds, so the hops
are most of the cost. Here a unit of work (the same function the async path runs through
``AsyncConnection.run_sync``) runs from BEGIN to COMMIT in one call on a thread of its own,
on a synchronous SQLAlchemy connection (pysqlite) that the thread keeps open: one hop per
operation. SQLAlchemy Core still compiles (and caches) every statement, and the twin
engine's events fire as usual.

Two lanes, each one thread with one connection: writes take turns on one (SQLite lets one
connection write at a time, so a queue in order is the fastest way through), reads run on the
other and never wait behind a writer's ``fsync``.

Which engines take this path is decided in ``convostore._db.engine``: engines convostore
makes from a URL, for a database file, while nothing listens to the application-facing
engine (see ``EngineState.worker_for``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .engine import COMMITTED

__all__ = ["Committing", "SQLiteWorker", "commit_after"]

T = TypeVar("T")


class Committing(Exception):
    """Carries an error raised by COMMIT (and the work's result) out of the unit of work."""

    def __init__(self, error: BaseException, result: object) -> None:
        super().__init__(type(error).__name__)
        self.error = error
        self.result = result


class _Lane:
    """One thread and the connection it keeps; calls run on it one at a time, in order."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._conn: Connection | None = None  # touched only on the lane's thread

    def submit(self, call: Callable[[Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._run, call)

    def _run(self, call: Callable[[Connection], T]) -> T:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self._engine.connect()
        return call(conn)

    def close(self) -> None:
        """Close the connection on its thread, then let the thread end."""
        with contextlib.suppress(RuntimeError):  # already shut down
            self._executor.submit(self._close_connection)
        self._executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class SQLiteWorker:
    """Runs units of work on a SQLite file through ``engine`` (pysqlite), one call each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        """The synchronous twin of the application's engine: same file, same settings."""
        self._lanes: tuple[_Lane, _Lane] | None = None
        self._pid = os.getpid()
        self._guard = threading.Lock()

    def _get_lanes(self) -> tuple[_Lane, _Lane]:
        lanes = self._lanes
        if lanes is not None and self._pid == os.getpid():
            return lanes
        with self._guard:
            if self._lanes is None or self._pid != os.getpid():
                if self._pid != os.getpid():
                    # A forked child has none of its parent's threads and must not share
                    # its connections: it starts its own of both.
                    self.engine.dispose(close=False)
                self._pid = os.getpid()
                self._lanes = (
                    _Lane(self.engine, "convostore-sqlite-write"),
                    _Lane(self.engine, "convostore-sqlite-read"),
                )
            return self._lanes

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` and COMMIT on the writers' lane.

        Raises:
            Committing: COMMIT itself failed; carries the error and ``work``'s result.
        """
        return await self._get_lanes()[0].submit(commit_after(work))

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run the read-only ``work`` on the readers' lane."""
        return await self._get_lanes()[1].submit(lambda conn: _read(conn, work))

    def close(self) -> None:
        """Close both lanes' connections; a later call opens new ones."""
        with self._guard:
            lanes, self._lanes = self._lanes, None
        if lanes is not None and self._pid == os.getpid():
            for lane in lanes:
                lane.close()
        self.engine.dispose(close=self._pid == os.getpid())


def commit_after(work: Callable[[Connection], T]) -> Callable[[Connection], T]:
    """``work``, then COMMIT; rolled back if ``work`` raises.

    The returned function raises ``Committing`` when COMMIT itself fails: whether the
    transaction was stored is then unknown, and the caller decides what to do.
    """

    def unit(conn: Connection) -> T:
        try:
            result = work(conn)
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.commit()
        except (DBAPIError, OSError) as exc:
            _rollback(conn)
            raise Committing(exc, result) from exc
        # Nothing runs on it before it goes back to the pool (see engine.COMMITTED).
        conn.info[COMMITTED] = True
        return result

    return unit


def _read(conn: Connection, work: Callable[[Connection], T]) -> T:
    try:
        return work(conn)
    finally:
        # pysqlite opens no transaction for a SELECT; this ends SQLAlchemy's own.
        _rollback(conn)


def _rollback(conn: Connection) -> None:
    try:
        conn.rollback()
    except (DBAPIError, OSError):
        # A connection that cannot roll back is of no further use: the next call opens another.
        conn.invalidate()
