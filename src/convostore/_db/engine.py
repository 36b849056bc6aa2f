"""Engines: creating them from URLs, and the one record convostore keeps about each.

SQLite needs per-connection settings before several connections (or processes) can share one file:
write-ahead logging, so readers never wait for a writer, and a busy timeout, so a writer waits for
the lock instead of failing at once. [`configure_engine`][convostore.configure_engine] installs them
on any engine, including one the application made itself.

Everything else convostore remembers about an engine lives in its ``EngineState``,
made the first time convostore meets the engine: the locks that serialize a shared
connection or a SQLite file's writers, the loop its pooled connections belong to, the
MySQL packet limit, which table sets exist, the statements built for each table set, and
where its database is and whether it ever connected there (``Reach``), which decides
whether a refused connection is a wrong address or a server restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import threading
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

from ..errors import ConvostoreError, MissingDependencyError
from . import watching
from .dialect import (
    SQLITE_CANTOPEN_TEXT,
    Address,
    nothing_answered,
    pool_timed_out,
    refused_connection,
    translate,
    unreachable,
)
from .urls import to_async_url

if TYPE_CHECKING:
    from .schema import Tables
    from .statements import Statements
    from .worker import SQLiteWorker

__all__ = [
    "COMMITTED",
    "SQLITE_BUSY_TIMEOUT_MS",
    "CrossLoopLock",
    "Database",
    "EngineState",
    "Reach",
    "configure_engine",
    "engine_from_url",
    "engine_state",
    "missing_driver",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another connection's write lock, in milliseconds."""


def engine_from_url(url: str | URL, **engine_kwargs: Any) -> AsyncEngine:
    """Create an ``AsyncEngine`` ready for convostore.

    Args:
        url: Any URL accepted by [`convostore.to_async_url`][convostore.to_async_url]: plain URLs
            get the async driver (``sqlite://``, ``postgresql://``, ``mysql://`` ...).
        **engine_kwargs: Passed to ``sqlalchemy.ext.asyncio.create_async_engine``.

    Returns:
        The engine, with the SQLite connection settings installed where they apply.

    Raises:
        UnsupportedDriverError: The URL names a synchronous driver.
        MissingDependencyError: The URL's driver is not installed; the message names the
            package to install.
    """
    async_url = to_async_url(url)
    own_reset = async_url.get_backend_name() in ("mysql", "mariadb") and not (
        _POOL_ARGUMENTS & {"pool_reset_on_return", "poolclass", "pool"} & set(engine_kwargs)
    )
    options = {"pool_reset_on_return": None, **engine_kwargs} if own_reset else engine_kwargs
    try:
        engine = create_async_engine(async_url, **options)
    except ModuleNotFoundError as exc:
        raise missing_driver(exc, async_url.get_backend_name()) from exc
    state = engine_state(engine)
    if state.dialect == "sqlite" and state.connection_lock is None:
        _add_sqlite_worker(engine, state, async_url, engine_kwargs)
    if own_reset:
        event.listen(engine.sync_engine, "reset", _reset_if_in_transaction)
        state.rolls_back_reads = True
    # Made here: every listener on it now is SQLAlchemy's or convostore's.
    watching.adopt(engine.sync_engine, made_here=True)
    return engine


# Sizing of the application's pool: the worker's connections are its own.
_POOL_ARGUMENTS = frozenset(
    {
        "poolclass",
        "pool",
        "pool_size",
        "max_overflow",
        "pool_timeout",
        "pool_recycle",
        "pool_pre_ping",
        "pool_use_lifo",
        "pool_reset_on_return",
        "creator",
        "async_creator",
    }
)


def _add_sqlite_worker(
    engine: AsyncEngine, state: EngineState, async_url: URL, engine_kwargs: dict[str, Any]
) -> None:
    """Give an engine on a SQLite file its synchronous twin (see ``convostore._db.worker``).

    The twin is made from the same URL (with the standard library's driver) and the same
    engine arguments, so the application's connection settings hold on both. Its pool is
    not the application's: the worker keeps exactly two connections open (one per lane),
    whatever the pool size. Files opened through a ``file:`` URI are left to the async
    path: their options are the driver's, not SQLAlchemy's.
    """
    database = async_url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or async_url.query:
        return
    from sqlalchemy import create_engine

    from .worker import SQLiteWorker

    options = {k: v for k, v in engine_kwargs.items() if k not in _POOL_ARGUMENTS}
    try:
        twin = create_engine(
            async_url.set(drivername="sqlite+pysqlite"), poolclass=NullPool, **options
        )
    except Exception:  # an argument only the async engine takes: keep the async path
        return
    _install_sqlite_settings(twin)
    _watch_connections(twin, state)
    watching.adopt(twin, made_here=True)  # private to convostore: no one else listens to it
    worker = state.worker = SQLiteWorker(twin)

    @event.listens_for(engine.sync_engine, "engine_disposed")
    def _close_worker(_engine: Any) -> None:
        worker.close()


COMMITTED = "convostore.committed"
"""Set in a connection's ``info`` by a unit of work that has just committed (and closes it)."""


def _reset_if_in_transaction(dbapi_connection: Any, record: Any, state: Any) -> None:
    """MySQL and MariaDB: roll back a connection going back to the pool unless it just committed.

    SQLAlchemy rolls back every connection given back to its pool. After convostore's
    COMMIT that costs a round trip and does nothing: the unit of work ran nothing after it,
    and the server's status flags (sent with every answer) confirm no transaction is open.
    Every other connection is rolled back as before: after a plain read the flags say no
    transaction either, yet the read's snapshot lives on until a ROLLBACK.
    """
    if state.terminate_only or not state.asyncio_safe or state.transaction_was_reset:
        return  # going away, or SQLAlchemy rolled it back already
    if record.info.pop(COMMITTED, False):
        status = getattr(dbapi_connection.driver_connection, "get_transaction_status", None)
        if status is not None and not status():
            return
    dbapi_connection.rollback()


# The extra that installs each driver a URL can name.
_DRIVER_EXTRAS = {
    "asyncpg": "pip install 'convostore[postgres]'",
    "aiomysql": "pip install 'convostore[mysql]'",
    "pymysql": "pip install 'convostore[mysql]'",
    "aiosqlite": "pip install aiosqlite",
    "asyncmy": "pip install 'convostore[asyncmy]'",
    "psycopg2": "pip install psycopg2-binary",
    "psycopg": "pip install 'psycopg[binary]'",
    "MySQLdb": "pip install mysqlclient",
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

    On SQLite every new connection gets ``journal_mode=WAL`` (file databases), a busy
    timeout of ``SQLITE_BUSY_TIMEOUT_MS`` and foreign keys. Other backends need nothing.
    """
    engine_state(engine)


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


class Reach:
    """Where an engine's database is, and whether an engine for it has ever connected there.

    An engine that never connected and gets no answer has a wrong address (or a server that
    is not up): it fails at once. One that connected before is seeing the server restart, and
    retries. The engines a session opened from a URL makes for other event loops share their
    first engine's ``Reach`` (``.loops``): a new loop's engine made during a restart
    knows that the address worked.
    """

    def __init__(self, address: Address, *, connected: bool = False) -> None:
        self.address = address
        """Where the URL points (host and port, or the SQLite file)."""
        self.connected = connected
        """Whether an engine sharing this has opened a connection there."""


class EngineState:
    """What convostore keeps about one engine, for as long as the engine lives.

    It holds no reference to the engine itself, so keeping it (in a weak map keyed by the
    engine) never keeps an engine alive.
    """

    def __init__(self, sync_engine: Engine) -> None:
        self.dialect: str = sync_engine.dialect.name
        """The backend's name: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        self.is_mysql = self.dialect in ("mysql", "mariadb")
        """Whether the backend speaks MySQL's SQL (MySQL or MariaDB)."""
        pool = sync_engine.pool
        self.connection_lock: CrossLoopLock | None = (
            CrossLoopLock() if isinstance(pool, StaticPool) else None
        )
        """Serializes use of the one connection a ``StaticPool`` shares (in-memory SQLite):
        two transactions on it at once would mix. ``None`` for other pools."""
        self.serves_any_loop = isinstance(pool, (NullPool, StaticPool))
        """Whether the engine can serve every event loop: it keeps no connection between
        uses (``NullPool``), or its one connection (in-memory SQLite) is tied to no loop."""
        self.queues_writers = self.dialect == "sqlite" and self.connection_lock is None
        """Whether this process's writers of the SQLite file wait their turn in order."""
        self.max_allowed_packet: int | None = None
        """MySQL/MariaDB: the server's ``max_allowed_packet``, once read."""
        self.tables_ready: set[Tables] = set()
        """The table sets this process has created (or found) on the engine."""
        self.connection_loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
        """The event loop the engine's pooled connections were last opened on."""
        self._writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._writer_locks = weakref.WeakKeyDictionary()
        self._statements: dict[Tables, Statements] = {}
        self._guard = threading.Lock()
        self.rolls_back_reads = False
        """MySQL and MariaDB, engines convostore made: a connection marked :data:`COMMITTED`
        is not rolled back again when given back to the pool."""
        self.worker: SQLiteWorker | None = None
        """SQLite files, on engines convostore made: the thread that runs work in one call."""
        # An application's engine may have connected before convostore met it.
        held = getattr(pool, "checkedin", lambda: 0)() + getattr(pool, "checkedout", lambda: 0)()
        self.reach = Reach(Address.of(sync_engine.url), connected=held > 0)
        """Where the database is, and whether an engine for it has connected there."""
        self.pool_size: int | None = getattr(pool, "size", lambda: None)()
        """The pool's ``pool_size``, for the message when no connection comes free."""
        self.pool_timeout: float | None = getattr(pool, "timeout", lambda: None)()
        """The pool's ``pool_timeout`` in seconds, for the same message."""

    def error_for(self, exc: BaseException) -> ConvostoreError:
        """The convostore error for ``exc``, a driver (or pool) error that is not retried.

        An engine that never connected failed to connect: no answer at its address is a
        [`DatabaseUnreachableError`][convostore.errors.DatabaseUnreachableError]; a server
        that answered no (a wrong password, an unknown database) a ``StorageError`` naming
        the server. No connection free in the pool within ``pool_timeout``: a
        ``StorageError`` naming the pool's settings. Anything else as ``translate``
        (``.dialect``) says.
        """
        if isinstance(exc, PoolTimeoutError):
            return pool_timed_out(self.pool_size, self.pool_timeout)
        if not self.reach.connected:
            address = self.reach.address
            if nothing_answered(exc, self.dialect):
                return unreachable(exc, address)
            if address.host is not None:
                return refused_connection(exc, address)
        return translate(exc, self.dialect)

    def worker_for(self, engine: AsyncEngine) -> SQLiteWorker | None:
        """The ``SQLiteWorker`` to run ``engine``'s work on now, or ``None``.

        ``None`` (SQLAlchemy's full async path) whenever the application could be watching
        (``watching.unwatched``): those see every statement, as the
        application asked.
        """
        worker = self.worker
        if worker is None or not watching.unwatched(engine.sync_engine):
            return None
        return worker

    def writer_lock(self) -> asyncio.Lock | None:
        """The running loop's lock that queues writers of a SQLite file, or ``None``.

        SQLite lets one connection write at a time. A writer that finds the file locked
        waits in SQLite's busy handler, which sleeps in growing steps (up to 100 ms) and
        keeps no queue: under concurrent writes most of the time goes to sleeping, and the
        unlucky wait longest (bench/, docs/performance.md). Writers that take this lock first
        wait their turn in order instead; other processes still meet the busy timeout. Other
        backends lock rows, not the database, and an in-memory database has
        ``connection_lock``. Must be called from a running event loop.
        """
        if not self.queues_writers:
            return None
        loop = asyncio.get_running_loop()
        lock = self._writer_locks.get(loop)
        if lock is None:
            with self._guard:
                lock = self._writer_locks.setdefault(loop, asyncio.Lock())
        return lock

    def statements(self, tables: Tables) -> Statements:
        """The statements for ``tables`` on this backend, built once per engine and tables."""
        found = self._statements.get(tables)
        if found is None:
            from .statements import Statements

            with self._guard:
                found = self._statements.setdefault(tables, Statements(tables, self.dialect))
        return found


_states: weakref.WeakKeyDictionary[Engine, EngineState] = weakref.WeakKeyDictionary()
_states_guard = threading.Lock()


def engine_state(engine: AsyncEngine) -> EngineState:
    """Return the ``EngineState`` of ``engine``, made (and the engine configured) once."""
    sync_engine = engine.sync_engine
    state = _states.get(sync_engine)
    if state is not None:
        return state
    with _states_guard:
        state = _states.get(sync_engine)
        if state is None:
            state = _states[sync_engine] = EngineState(sync_engine)
            watched = watching.has_statement_listeners(sync_engine)
            _install_listeners(sync_engine, state)
            if not watched:
                watching.adopt(sync_engine, made_here=False)
    return state


def _install_listeners(sync_engine: Engine, state: EngineState) -> None:
    _watch_connections(sync_engine, state)
    if state.dialect == "sqlite":
        _install_sqlite_settings(sync_engine)
        _refuse_missing_folder(sync_engine)
        # aiosqlite runs each connection on a thread of its own and answers any loop.
        return
    if state.serves_any_loop:
        return

    @event.listens_for(sync_engine, "connect")
    def _remember_loop(_dbapi_connection: Any, _record: Any) -> None:
        with contextlib.suppress(RuntimeError):  # connected outside a loop: nothing to tie
            state.connection_loop = weakref.ref(asyncio.get_running_loop())


def _watch_connections(sync_engine: Engine, state: EngineState) -> None:
    @event.listens_for(sync_engine, "connect")
    def _connected(_dbapi_connection: Any, _record: Any) -> None:
        # Read at each connection, not captured: sibling engines may share a Reach.
        state.reach.connected = True


def _refuse_missing_folder(sync_engine: Engine) -> None:
    """Fail a SQLite file whose folder does not exist before the driver's thread starts.

    aiosqlite opens each connection on a thread of its own; when the open fails, that thread
    still has a reply to deliver to the event loop, and a program that ends at once (a CLI
    command reporting the error) closes the loop first: the thread then prints a traceback
    of its own. The missing folder, the usual typo, is told here instead, with the error
    SQLite gives for it.
    """

    @event.listens_for(sync_engine, "do_connect")
    def _check_folder(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> None:
        filename = cargs[0] if cargs else cparams.get("database")
        if not isinstance(filename, str) or cparams.get("uri") or filename in ("", ":memory:"):
            return
        folder = os.path.dirname(os.path.abspath(filename))
        if not os.path.isdir(folder):
            raise sqlite3.OperationalError(SQLITE_CANTOPEN_TEXT)


def _install_sqlite_settings(sync_engine: Engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()


@dataclasses.dataclass(frozen=True)
class Database:
    """One engine made ready for one table set: what the layers below a session run on."""

    engine: AsyncEngine
    """Runs writes (and a read that must see them: verifying a lost COMMIT)."""

    read_engine: AsyncEngine
    """Runs reads: the same engine, in autocommit on PostgreSQL (see ``run_read``)."""

    state: EngineState
    """What convostore keeps about the engine."""

    tables: Tables
    """The tables the statements are for."""

    statements: Statements
    """The prebuilt statements for ``tables`` on this backend."""

    @classmethod
    def of(cls, engine: AsyncEngine, tables: Tables) -> Database:
        """Make the engine ready (configured, its state made) for ``tables``."""
        state = engine_state(engine)
        read_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if state.dialect == "postgresql"
            else engine
        )
        return cls(engine, read_engine, state, tables, state.statements(tables))
