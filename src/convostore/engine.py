"""Create and prepare async engines for convostore.

SQLite needs per-connection settings before several connections (or processes) can share
one file: write-ahead logging, so readers never wait for a writer, and a busy timeout, so a
writer waits for the lock instead of failing at once. :func:`configure_engine` installs
them on any engine, including one the application made itself.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from .errors import MissingDependencyError
from .urls import to_async_url

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "configure_engine", "create_engine", "missing_driver"]

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another connection's write lock, in milliseconds."""

_configured: weakref.WeakSet[Engine] = weakref.WeakSet()
_static_pool_locks: weakref.WeakKeyDictionary[Engine, CrossLoopLock] = weakref.WeakKeyDictionary()
_static_pool_guard = threading.Lock()
_writer_locks: weakref.WeakKeyDictionary[
    Engine, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
] = weakref.WeakKeyDictionary()


def create_engine(url: str | URL, **engine_kwargs: Any) -> AsyncEngine:
    """Create an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` ready for convostore.

    Args:
        url: Any URL accepted by :func:`convostore.urls.to_async_url`.
        **engine_kwargs: Passed to :func:`sqlalchemy.ext.asyncio.create_async_engine`.

    Returns:
        The engine, with the SQLite connection settings installed where they apply.
    """
    async_url = to_async_url(url)
    try:
        engine = create_async_engine(async_url, **engine_kwargs)
    except ModuleNotFoundError as exc:
        raise missing_driver(exc, async_url.get_backend_name()) from exc
    configure_engine(engine)
    return engine


# The extra that installs each driver a URL can name.
_DRIVER_EXTRAS = {
    "asyncpg": "pip install 'convostore[postgres]'",
    "aiomysql": "pip install 'convostore[mysql]'",
    "pymysql": "pip install 'convostore[mysql]'",
    "aiosqlite": "pip install aiosqlite",
    "asyncmy": "pip install asyncmy",
    "psycopg2": "pip install psycopg2-binary",
    "psycopg": "pip install 'psycopg[binary]'",
}


def missing_driver(exc: ModuleNotFoundError, backend: str) -> MissingDependencyError:
    """The error for a database URL whose driver is not installed, naming what to install."""
    package = (exc.name or str(exc)).split(".")[0]
    extra = _DRIVER_EXTRAS.get(package, f"pip install {package}")
    return MissingDependencyError(
        f"the {backend} URL needs the {package} driver, which is not installed: {extra}",
        package=package,
        extra=extra,
    )


def configure_engine(engine: AsyncEngine) -> None:
    """Install convostore's per-connection settings on ``engine``; safe to call repeatedly.

    On SQLite every new connection gets ``journal_mode=WAL`` (file databases) and a busy
    timeout of :data:`SQLITE_BUSY_TIMEOUT_MS`. Other backends need nothing.
    """
    sync_engine = engine.sync_engine
    if sync_engine in _configured:
        return
    _configured.add(sync_engine)
    if sync_engine.dialect.name != "sqlite":
        return

    @event.listens_for(sync_engine, "connect")
    def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()


class CrossLoopLock:
    """A lock for ``async with`` that tasks of different event loops (and threads) share.

    An ``asyncio.Lock`` belongs to one loop. This one is a thread lock: taken at once when
    free, otherwise waited for on a worker thread, so the waiting loop keeps running. A
    waiter cancelled before it gets the lock releases it as soon as the thread takes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    async def __aenter__(self) -> None:
        if self._lock.acquire(blocking=False):
            return
        taken = asyncio.get_running_loop().run_in_executor(None, self._lock.acquire)
        try:
            await asyncio.shield(taken)
        except asyncio.CancelledError:
            taken.add_done_callback(lambda _: self._lock.release())
            raise

    async def __aexit__(self, *_exc: object) -> None:
        self._lock.release()


def connection_lock(engine: AsyncEngine) -> CrossLoopLock | None:
    """Return the lock that serializes use of a single shared connection, if the engine has one.

    An in-memory SQLite database lives in one connection that a ``StaticPool`` hands to every
    caller; two transactions on it at once would mix. Other pools need no lock (``None``).
    """
    sync_engine = engine.sync_engine
    if not isinstance(sync_engine.pool, StaticPool):
        return None
    with _static_pool_guard:
        lock = _static_pool_locks.get(sync_engine)
        if lock is None:
            lock = _static_pool_locks[sync_engine] = CrossLoopLock()
    return lock


def writer_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    """Return the lock that queues this process's writers of a SQLite file, if the engine needs one.

    SQLite lets one connection write at a time. A writer that finds the file locked waits in
    SQLite's busy handler, which sleeps in growing steps (up to 100 ms) and keeps no queue:
    under concurrent writes most of the time goes to sleeping, and the unlucky wait longest
    (bench/, docs/performance.md). Writers that take this lock first wait their turn in
    order instead; other processes still meet the busy timeout. Other backends lock rows, not
    the database, and an in-memory database has :func:`connection_lock`: ``None`` for them.

    Must be called from a running event loop (each loop gets its own lock).
    """
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or isinstance(sync_engine.pool, StaticPool):
        return None
    per_loop = _writer_locks.get(sync_engine)
    if per_loop is None:
        per_loop = _writer_locks[sync_engine] = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    lock = per_loop.get(loop)
    if lock is None:
        lock = per_loop[loop] = asyncio.Lock()
    return lock
