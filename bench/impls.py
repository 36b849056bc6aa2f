"""The implementations under test, behind one small interface.

``Impl.session(sid)`` returns an object with ``add_items``, ``get_items`` and ``pop_item``;
``Impl.populate(sid, n)`` writes ``n`` items straight into the implementation's own storage
with bulk writes (setup only, never timed), laid out exactly as the implementation would
have written them. Each implementation has its own tables (or keys), named after the run.

Every implementation opens its own connections: its own engine (same URL, same pool
settings: 10 connections, no overflow) or its own driver pool. Sharing one engine would
not be neutral. The Agents SDK's ``SQLAlchemySession`` installs a pool ``connect`` listener
on the engine it is given, and convostore takes its SQLite fast path (one call per
operation on a worker thread that keeps a pysqlite connection) only on an engine it made
itself (``convostore.engine_from_url`` / ``SQLAlchemySession.from_url``) while nothing else
listens to it: on a shared engine convostore silently falls back to SQLAlchemy's async
path. So convostore's engine comes from ``engine_from_url(url, ...)``, never from the bench,
and the run checks that convostore is on its fast path (on PostgreSQL and MariaDB: its hot
statements on the driver's cursor, taken while nothing listens to the engine's statements).

On SQLite each implementation has a database file of its own in the run's temporary
folder, so one's WAL checkpoints and locks never land on another's operations. Every file
is in WAL mode with SQLite's default durability (``synchronous = FULL``, what the SDK's
``SQLiteSession`` runs with: it sets ``journal_mode=WAL`` and nothing else);
``sqlite_settings()`` reads both back from each implementation's own connection, and the
run checks that they agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

import floor
from items import item
from sqlalchemy import event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from convostore import SQLAlchemySession, build_tables, create_tables, engine_from_url
from convostore._codec import encode_item
from convostore._db.direct import _DRIVERS as DIRECT_DRIVERS
from convostore._db.engine import engine_state
from convostore._db.watching import statements_unwatched
from convostore.migrate import drop_version_table

# Populated rows get timestamps from here on, one millisecond apart: in the past, so that
# anything appended later sorts after them in a store that orders by time.
POPULATE_START = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
_CHUNK = 2000
POOL = {"pool_size": floor.POOL_SIZE, "max_overflow": 0}
"""The pool settings of every SQLAlchemy engine of a run (the floor's pools match)."""

SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@dataclasses.dataclass
class Run:
    """One backend of one run: where each implementation keeps its data."""

    backend: str
    """``sqlite``, ``postgresql`` or ``mysql``."""
    url: str
    """The server's URL; empty on SQLite, where every run gets new files."""
    prefix: str
    """Names every table (and Redis key) of the run."""
    tmp_dir: str | None = None
    one_file: bool = False
    """SQLite: all implementations in one file (``bench/layers.py`` runs the floor's SQL on
    convostore's connections), instead of a file each."""
    redis_url: str | None = None

    async_path: bool = False
    """Also measure convostore on SQLAlchemy's async path (:class:`ConvostoreAsyncPathImpl`)."""

    def sqlite_path(self, name: str) -> str:
        assert self.tmp_dir is not None
        return os.path.join(self.tmp_dir, "bench.db" if self.one_file else f"{name}.db")

    def url_for(self, name: str) -> str:
        """The URL implementation ``name`` connects to (its own file on SQLite)."""
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.sqlite_path(name)}"
        return self.url


@contextlib.asynccontextmanager
async def bench_run(
    backend: str,
    url: str,
    prefix: str,
    *,
    one_file: bool = False,
    redis_url: str | None = None,
    async_path: bool = False,
) -> AsyncIterator[Run]:
    """A :class:`Run` on ``backend``; on SQLite its temporary folder is deleted at the end."""
    tmp_dir = tempfile.mkdtemp(prefix="convostore-bench-") if backend == "sqlite" else None
    try:
        yield Run(backend, url, prefix, tmp_dir, one_file, redis_url, async_path)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def set_up(impls: Sequence[Impl]) -> AsyncIterator[None]:
    """Set the implementations up; tear them down at the end, also after an error.

    An implementation whose setup fails is torn down at once and marked failed (its
    ``failure`` says why); the others run.
    """
    ready: list[Impl] = []
    try:
        for impl in impls:
            ready.append(impl)  # torn down even if its setup fails half-way
            try:
                await impl.setup()
            except Exception as exc:
                impl.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        yield
    finally:
        for impl in reversed(ready):
            try:
                await impl.close_sessions()
                await impl.teardown()
            except Exception as exc:
                print(f"could not tear {impl.name} down: {exc}", file=sys.stderr)


class Impl:
    """One implementation on one backend."""

    name = ""
    """The key of its figures in the JSON results."""
    label = ""
    """Its name in the printed tables."""
    role = "peer"
    """``floor``, ``convostore``, ``peer`` (another store a user could pick on this
    database), ``reference`` (on another kind of server: not a peer) or ``variant``
    (convostore another way, for comparison)."""
    failure: str | None = None
    """Why the implementation cannot run on this backend, if it cannot."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._sessions: list[Any] = []

    async def setup(self) -> None:
        raise NotImplementedError

    async def teardown(self) -> None:
        raise NotImplementedError

    def _new_session(self, sid: str) -> Any:
        raise NotImplementedError

    def session(self, sid: str) -> Any:
        """A session object on ``sid``; closed by :meth:`close_sessions`."""
        session = self._new_session(sid)
        self._sessions.append(session)
        return session

    async def close_sessions(self) -> None:
        """Close every session :meth:`session` returned (the stores that hold connections)."""
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            close = getattr(session, "close", None)
            if close is not None:
                result = close()
                if asyncio.iscoroutine(result):
                    await result

    async def populate(self, sid: str, n: int) -> None:
        raise NotImplementedError

    async def sqlite_settings(self) -> dict[str, Any] | None:
        """SQLite: ``journal_mode`` and ``synchronous`` as the implementation's connections
        have them; ``None`` elsewhere."""
        return None

    def info(self) -> dict[str, Any]:
        """What the results say about the implementation."""
        return {"label": self.label, "role": self.role}


def _pragmas(conn: Any) -> dict[str, Any]:
    """``journal_mode`` and ``synchronous`` of a DB-API (sqlite3) connection."""
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    return {"journal_mode": str(journal).lower(), "synchronous": SYNCHRONOUS.get(sync, sync)}


async def _engine_pragmas(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
        sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
    return {"journal_mode": str(journal).lower(), "synchronous": SYNCHRONOUS.get(sync, sync)}


async def _bulk_insert(engine: AsyncEngine, table: Any, head: dict[str, Any], rows: Any) -> None:
    """Insert one row into the sessions table and ``rows`` into the messages table."""
    sessions, messages = table
    async with engine.begin() as conn:
        await conn.execute(insert(sessions), head)
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _CHUNK:
                await conn.execute(insert(messages), batch)
                batch = []
        if batch:
            await conn.execute(insert(messages), batch)


class FloorImpl(Impl):
    name = label = role = "floor"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        url = make_url(run.url_for(self.name))
        sqlite_path = run.sqlite_path(self.name) if run.backend == "sqlite" else None
        s, m = f"{run.prefix}_floor_sessions", f"{run.prefix}_floor_messages"
        self.store = floor.make_floor(url, sqlite_path, s, m)

    async def setup(self) -> None:
        await self.store.open()
        await self.store.create()

    async def teardown(self) -> None:
        try:
            await self.store.drop()
        finally:
            await self.store.close()

    def _new_session(self, sid: str) -> Any:
        return floor.FloorSession(self.store, sid)

    async def populate(self, sid: str, n: int) -> None:
        await self.store.populate(sid, [floor.encode(item(i)) for i in range(n)], POPULATE_START)

    async def sqlite_settings(self) -> dict[str, Any] | None:
        if self.run.backend != "sqlite":
            return None
        async with self.store._conn() as conn:
            journal = (await conn.execute_fetchall("PRAGMA journal_mode"))[0][0]
            sync = (await conn.execute_fetchall("PRAGMA synchronous"))[0][0]
        return {"journal_mode": str(journal).lower(), "synchronous": SYNCHRONOUS.get(sync, sync)}


class ConvostoreImpl(Impl):
    name = label = role = "convostore"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.tables = build_tables(f"{run.prefix}_cs_sessions", f"{run.prefix}_cs_messages")
        # convostore's own engine, made by convostore from the URL: on a SQLite file that
        # is what gives it its worker thread (see the module docstring).
        self.engine = engine_from_url(run.url_for(self.name), **POOL)

    @property
    def fast_path(self) -> bool:
        """Whether convostore takes its fast path on this engine now: on a SQLite file its
        worker thread, on a server its hot statements on the driver's cursor."""
        if self.run.backend == "sqlite":
            return engine_state(self.engine).worker_for(self.engine) is not None
        sync_engine = self.engine.sync_engine
        return sync_engine.dialect.driver in DIRECT_DRIVERS and statements_unwatched(sync_engine)

    async def setup(self) -> None:
        await create_tables(self.engine, self.tables)

    async def teardown(self) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(self.tables.metadata.drop_all)
                await conn.run_sync(drop_version_table, self.tables)  # stamped by create_tables
        finally:
            await self.engine.dispose()

    def _new_session(self, sid: str) -> Any:
        return SQLAlchemySession(
            sid,
            engine=self.engine,
            sessions_table=self.tables.sessions.name,
            messages_table=self.tables.messages.name,
        )

    async def close_sessions(self) -> None:
        self._sessions = []  # sessions on an engine they were given own nothing to close

    async def populate(self, sid: str, n: int) -> None:
        head: dict[str, Any] = {
            "session_id": sid,
            "next_position": n,
            "created_at": POPULATE_START,
            "updated_at": POPULATE_START,
        }
        if "item_count" in self.tables.sessions.c:
            head["item_count"] = n
        rows = (
            {
                "session_id": sid,
                "position": i,
                "message_data": encode_item(item(i)),
                "created_at": POPULATE_START + dt.timedelta(milliseconds=i),
            }
            for i in range(n)
        )
        await _bulk_insert(self.engine, (self.tables.sessions, self.tables.messages), head, rows)

    async def sqlite_settings(self) -> dict[str, Any] | None:
        if self.run.backend != "sqlite":
            return None
        worker = engine_state(self.engine).worker
        if worker is None:
            return await _engine_pragmas(self.engine)

        # A connection of the worker's own engine: the settings its lanes' connections get.
        def read() -> dict[str, Any]:
            with worker.engine.connect() as conn:
                return _pragmas(conn.connection.dbapi_connection)

        return await asyncio.to_thread(read)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "fast_path": self.fast_path}


class ConvostoreAsyncPathImpl(ConvostoreImpl):
    """convostore on an engine something watches: SQLAlchemy's full path, for comparison.

    A no-op ``before_cursor_execute`` listener (what tracing installs) sends every
    operation down SQLAlchemy's full async path, on every backend: this line shows what
    the fast paths buy. On a SQLite file a pool ``connect`` listener alone (what the SDK's
    ``SQLAlchemySession`` installs on a SQLite engine it is given) does the same. Only
    with ``--async-path``.
    """

    name = "convostore_async"
    label = "convostore, full path"
    role = "variant"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.tables = build_tables(f"{run.prefix}_csa_sessions", f"{run.prefix}_csa_messages")

        @event.listens_for(self.engine.sync_engine, "before_cursor_execute")
        def _watching(*_args: Any) -> None:
            pass


class SdkSqlAlchemyImpl(Impl):
    """The Agents SDK's ``SQLAlchemySession``, on an engine of its own."""

    name = "sdk_sqlalchemy"
    label = "SDK SQLAlchemySession"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.engine = create_async_engine(run.url_for(self.name), **POOL)
        self.sessions_table = f"{run.prefix}_sdk_sessions"
        self.messages_table = f"{run.prefix}_sdk_messages"
        self._proto: Any = None

    def _make(self, sid: str, create_tables: bool = False) -> Any:
        from agents.extensions.memory import SQLAlchemySession as SdkSession

        return SdkSession(
            sid,
            engine=self.engine,
            create_tables=create_tables,
            sessions_table=self.sessions_table,
            messages_table=self.messages_table,
        )

    async def setup(self) -> None:
        proto = self._make("bench-setup", create_tables=True)
        # The SDK creates its tables on first use; its DDL fails on MySQL (set_up says why).
        await proto.get_items(limit=1)
        self._proto = proto

    async def teardown(self) -> None:
        try:
            if self._proto is not None:
                async with self.engine.begin() as conn:
                    await conn.run_sync(self._proto._metadata.drop_all)
        finally:
            await self.engine.dispose()

    def _new_session(self, sid: str) -> Any:
        return self._make(sid)

    async def close_sessions(self) -> None:
        self._sessions = []  # on the engine they were given: nothing of their own to close

    async def populate(self, sid: str, n: int) -> None:
        proto = self._proto
        naive = POPULATE_START.replace(tzinfo=None)  # the SDK's columns have no time zone
        head = {"session_id": sid, "created_at": naive, "updated_at": naive}
        rows = (
            {
                "session_id": sid,
                "message_data": json.dumps(item(i), separators=(",", ":")),
                "created_at": naive + dt.timedelta(milliseconds=i),
            }
            for i in range(n)
        )
        await _bulk_insert(self.engine, (proto._sessions, proto._messages), head, rows)

    async def sqlite_settings(self) -> dict[str, Any] | None:
        return await _engine_pragmas(self.engine) if self.run.backend == "sqlite" else None


class _SdkSqliteBase(Impl):
    """The SDK's two SQLite stores share their tables' layout: populated the same way."""

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.path = run.sqlite_path(self.name)
        self.sessions_table = f"{run.prefix}_{self.name}_sessions"
        self.messages_table = f"{run.prefix}_{self.name}_messages"

    def _tables(self) -> dict[str, str]:
        return {"sessions_table": self.sessions_table, "messages_table": self.messages_table}

    async def teardown(self) -> None:
        def drop() -> None:
            with contextlib.closing(sqlite3.connect(self.path)) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {self.messages_table}")
                conn.execute(f"DROP TABLE IF EXISTS {self.sessions_table}")
                conn.commit()

        await asyncio.to_thread(drop)

    async def populate(self, sid: str, n: int) -> None:
        stamp = POPULATE_START.replace(tzinfo=None)

        def write() -> None:
            with contextlib.closing(sqlite3.connect(self.path)) as conn:
                conn.execute(
                    f"INSERT INTO {self.sessions_table} (session_id, created_at, updated_at) "
                    f"VALUES (?, ?, ?)",
                    (sid, stamp.isoformat(" "), stamp.isoformat(" ")),
                )
                conn.executemany(
                    f"INSERT INTO {self.messages_table} (session_id, message_data, created_at) "
                    f"VALUES (?, ?, ?)",
                    (
                        # json.dumps with its default separators: what the SDK writes.
                        (
                            sid,
                            json.dumps(item(i)),
                            (stamp + dt.timedelta(milliseconds=i)).isoformat(" "),
                        )
                        for i in range(n)
                    ),
                )
                conn.commit()

        await asyncio.to_thread(write)


class SdkSqliteImpl(_SdkSqliteBase):
    """The SDK's default store, ``agents.SQLiteSession``: sqlite3 in a thread per call."""

    name = "sdk_sqlite"
    label = "SDK SQLiteSession"

    async def setup(self) -> None:
        from agents import SQLiteSession

        SQLiteSession("bench-setup", self.path, **self._tables()).close()  # creates the tables

    def _new_session(self, sid: str) -> Any:
        from agents import SQLiteSession

        return SQLiteSession(sid, self.path, **self._tables())

    async def sqlite_settings(self) -> dict[str, Any] | None:
        session = self.session("bench-settings")
        # A connection the session opens for itself, in a thread as it does for its work.
        return await asyncio.to_thread(lambda: _pragmas(session._get_connection()))


class SdkAsyncSqliteImpl(_SdkSqliteBase):
    """The SDK's ``AsyncSQLiteSession`` (aiosqlite): one connection per session object."""

    name = "sdk_async_sqlite"
    label = "SDK AsyncSQLiteSession"

    async def setup(self) -> None:
        session = self._new_session("bench-setup")
        try:
            await session.get_items(limit=1)  # creates the tables on first use
        finally:
            await session.close()

    def _new_session(self, sid: str) -> Any:
        from agents.extensions.memory import AsyncSQLiteSession

        return AsyncSQLiteSession(sid, self.path, **self._tables())

    async def sqlite_settings(self) -> dict[str, Any] | None:
        session = self.session("bench-settings")
        conn = await session._get_connection()
        journal = (await conn.execute_fetchall("PRAGMA journal_mode"))[0][0]
        sync = (await conn.execute_fetchall("PRAGMA synchronous"))[0][0]
        return {"journal_mode": str(journal).lower(), "synchronous": SYNCHRONOUS.get(sync, sync)}


class SdkRedisImpl(Impl):
    """The SDK's ``RedisSession`` on a local Redis: a reference line, not a SQL peer.

    Its keys are named after the run and deleted at the end. Redis keeps them in memory
    (and writes them to disk on its own schedule): its writes wait for no log flush.
    """

    name = "sdk_redis"
    label = "SDK RedisSession (ref.)"
    role = "reference"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        assert run.redis_url
        self.key_prefix = f"convostore-bench:{run.prefix}"
        self.client: Any = None

    async def setup(self) -> None:
        import redis.asyncio as redis

        # A pool of 10 that makes a caller wait for a free connection, like the others'.
        pool = redis.BlockingConnectionPool.from_url(
            self.run.redis_url, max_connections=floor.POOL_SIZE
        )
        client = redis.Redis(connection_pool=pool)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            await pool.disconnect()
            raise
        self.client = client

    async def teardown(self) -> None:
        if self.client is None:
            return
        try:
            keys = [key async for key in self.client.scan_iter(match=f"{self.key_prefix}:*")]
            for start in range(0, len(keys), 500):
                await self.client.delete(*keys[start : start + 500])
        finally:
            await self.client.aclose()
            await self.client.connection_pool.disconnect()

    def _new_session(self, sid: str) -> Any:
        from agents.extensions.memory import RedisSession

        return RedisSession(sid, redis_client=self.client, key_prefix=self.key_prefix)

    async def populate(self, sid: str, n: int) -> None:
        session_key = f"{self.key_prefix}:{sid}"
        now = str(int(POPULATE_START.timestamp()))
        await self.client.hset(
            session_key, mapping={"session_id": sid, "created_at": now, "updated_at": now}
        )
        for start in range(0, n, _CHUNK):
            texts = [
                json.dumps(item(i), separators=(",", ":"))  # what RedisSession writes
                for i in range(start, min(start + _CHUNK, n))
            ]
            await self.client.rpush(f"{session_key}:messages", *texts)


def implementations(run: Run) -> list[Impl]:
    """Every implementation measured on ``run``'s backend, the floor and convostore first."""
    impls: list[Impl] = [FloorImpl(run), ConvostoreImpl(run)]
    if run.async_path:
        impls.append(ConvostoreAsyncPathImpl(run))
    if run.backend == "sqlite":
        impls += [SdkSqliteImpl(run), SdkAsyncSqliteImpl(run)]
    impls.append(SdkSqlAlchemyImpl(run))
    if run.redis_url:
        impls.append(SdkRedisImpl(run))
    return impls
