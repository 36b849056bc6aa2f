"""Scale benchmark: convostore's indexed reads, listing and prune on a million sessions.

Usage (from the repository root, after ``pip install -e '.[dev,bench]'``)::

    python bench/scale.py --backend all                # full size: about 35 minutes on 2 cores
    python bench/scale.py --backend postgresql --scale 0.01   # a quick run: a minute or two
    python bench/scale.py --backend all --scale 0.001 --ops 100  # smoke: checks that it runs

Per backend it loads two data sets into convostore's own tables (made by
``convostore.create_tables`` from ``convostore.build_tables``, with run-unique names): a large
one (1,000,000 sessions with 10,000,000 items on PostgreSQL and MariaDB, 100,000 / 1,000,000
on SQLite; ``--scale`` takes a fraction of that) and a small one of 10,000 sessions, laid out
the same way. Loading is bulk SQL computed by the server (``INSERT ... SELECT`` from
``generate_series``, MariaDB's sequence tables or a recursive CTE), never timed with the
operations. Free disk space on the server's data directory is checked first; the large set
is sized down, with a message, when the disk is short.

Then the same operations run on both sets, interleaved in rounds after a warm-up, at random
session ids: ``tail20`` (``SQLAlchemySession.get_items(limit=20)``), ``get_page`` (20 items
before the middle of a session), ``list_sessions`` (the first page, a page at a deep cursor,
the first page of one user's sessions), then ``prune`` of the oldest 10% of the sessions.
It prints p50/p99 per operation, the large/small ratio (target for the indexed reads: at
most 1.2x) and prune's sessions/s, writes JSON to ``bench/results/`` (or ``--json PATH``)
and drops its tables (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import DEFAULT_URLS, RESULTS_DIR, log, machine, server_version
from items import item
from report import number
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from workloads import Result

from convostore import (
    SessionStore,
    SQLAlchemySession,
    Tables,
    build_tables,
    create_tables,
    engine_from_url,
    to_async_url,
)
from convostore._codec import encode_item
from convostore.migrate import drop_version_table

BACKENDS = ["sqlite", "postgresql", "mysql"]
FULL_SESSIONS = {"sqlite": 100_000, "postgresql": 1_000_000, "mysql": 1_000_000}
SMALL_SESSIONS = 10_000
MIN_SESSIONS = 200

# Items per session, dealt out in turn (every 20 consecutive sessions get each count once):
# most conversations are short, a few are long; 10 items per session on average.
COUNTS = (1, 2, 2, 3, 3, 4, 4, 5, 6, 6, 7, 8, 9, 10, 12, 14, 16, 20, 28, 40)
ITEMS_PER_SESSION = sum(COUNTS) // len(COUNTS)
# Sessions were last updated at times spread evenly over the year before the run, so the
# listing order, the deep cursor and prune-by-age mean something.
SPAN = dt.timedelta(days=365)
PRUNE_SHARE = 0.1
# Sessions per loading statement (and transaction): ten times as many items.
CHUNK = 20_000
# Multiplicative hashes of the session number (Knuth's constant and xxHash's second prime):
# evenly spread, decorrelated from the number, computed the same by every SQL dialect.
_TIME_HASH = 2654435761
_USER_HASH = 2246822519
_2_32 = 4294967296
PAGE = 50  # sessions per listing page
READS = ["tail20", "get_page", "list_first", "list_deep", "list_user"]
MAX_GROWTH = 1.2  # p50 on the large set / p50 on the small one, for every indexed read

# What a loaded item costs on disk (row, primary key, the session row's share), in bytes: a
# first guess for the disk check, replaced by the small set's measured size once it is
# loaded. Measured on this project's machine, rounded up.
BYTES_PER_ITEM = {"sqlite": 600, "postgresql": 650, "mysql": 800}
# Room for what a load writes besides the tables (PostgreSQL's WAL, InnoDB's logs and
# undo), as a share of the tables' size, and an absolute reserve left free.
DISK_OVERHEAD = 0.5
DISK_RESERVE = 2 * 1024**3
DEFAULT_DATA_DIRS = {"postgresql": "/var/lib/postgresql", "mysql": "/var/lib/mysql"}


def item_count(i: int) -> int:
    """Items of session number ``i`` (as the loading SQL computes it)."""
    return COUNTS[(i * 7) % len(COUNTS)]


def session_id(i: int) -> str:
    return f"conv-{i:08d}"


def round_sessions(n: float) -> int:
    """A whole number of blocks of ``len(COUNTS)`` sessions, at least one."""
    return max(len(COUNTS), int(n) // len(COUNTS) * len(COUNTS))


# -- loading ----------------------------------------------------------------------------------


class Loader:
    """The bulk-loading SQL of one backend: one statement per chunk of sessions.

    Every column is computed by the server from the session number ``i`` (and, for
    messages, the position ``p``), so nothing but the statement crosses the wire. The
    statements are plain text with named parameters (``:t0`` and the four payloads).
    """

    def __init__(self, backend: str, users: int) -> None:
        self.backend = backend
        self.users = users

    # Dialect pieces.

    def concat(self, *parts: str) -> str:
        return f"CONCAT({', '.join(parts)})" if self.backend == "mysql" else " || ".join(parts)

    def floor_int(self, expr: str) -> str:
        if self.backend == "postgresql":
            return f"CAST(floor({expr}) AS bigint)"
        if self.backend == "mysql":
            return f"CAST(FLOOR({expr}) AS SIGNED)"
        return f"CAST({expr} AS INTEGER)"  # positive: truncation is the floor

    def padded(self, expr: str) -> str:
        if self.backend == "postgresql":
            return f"lpad(CAST({expr} AS text), 8, '0')"
        if self.backend == "mysql":
            return f"LPAD({expr}, 8, '0')"
        return f"printf('%08d', {expr})"

    def before_t0(self, ms: str) -> str:
        """The time ``ms`` milliseconds before ``:t0``, as the column type stores it."""
        if self.backend == "postgresql":
            return f"CAST(:t0 AS timestamptz) - ({ms}) * interval '1 millisecond'"
        if self.backend == "mysql":
            return f"CAST(:t0 AS DATETIME(6)) - INTERVAL ({ms}) * 1000 MICROSECOND"
        # SQLAlchemy's SQLite DATETIME text, with microseconds: comparisons are textual.
        return f"strftime('%Y-%m-%d %H:%M:%f', (:t0 - ({ms})) / 1000.0, 'unixepoch') || '000'"

    def t0(self, when: dt.datetime) -> Any:
        if self.backend == "postgresql":
            return when
        if self.backend == "mysql":
            return when.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
        return round(when.timestamp() * 1000)

    def numbers(self, lo: int, hi: int) -> tuple[str, str]:
        """A WITH clause (or "") and a FROM item of the session numbers ``lo..hi`` as ``i``."""
        if self.backend == "postgresql":
            return "", f"generate_series({lo}::bigint, {hi}::bigint) AS g(i)"
        if self.backend == "mysql":
            return "", f"(SELECT CAST(seq AS SIGNED) AS i FROM seq_{lo}_to_{hi}) AS g"
        cte = (
            f"WITH RECURSIVE g(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM g WHERE i < {hi}), "
            f"q(p) AS (SELECT 0 UNION ALL SELECT p + 1 FROM q WHERE p < {max(COUNTS) - 1}) "
        )
        return cte, "g"

    def positions(self) -> str:
        """The join of each session (``v``) with its positions ``0 .. c - 1`` as ``p``."""
        if self.backend == "postgresql":
            return "CROSS JOIN LATERAL generate_series(0, v.c - 1) AS q(p)"
        if self.backend == "mysql":
            return (
                f"STRAIGHT_JOIN (SELECT CAST(seq AS SIGNED) AS p FROM seq_0_to_{max(COUNTS) - 1})"
                " AS q ON q.p < v.c"
            )
        return "CROSS JOIN q ON q.p < v.c"

    # Statements.

    def _sessions_view(self, lo: int, hi: int) -> tuple[str, str]:
        """(WITH clause, subquery ``v``): each session's number, count, age and user draw."""
        cte, source = self.numbers(lo, hi)
        n = len(COUNTS)
        count = "CASE (i * 7) % {n} {whens} END".format(
            n=n, whens=" ".join(f"WHEN {k} THEN {c}" for k, c in enumerate(COUNTS))
        )
        ms_per_hash = SPAN / dt.timedelta(milliseconds=1) / _2_32
        view = (
            f"(SELECT i, {count} AS c, "
            f"{self.floor_int(f'((i * {_TIME_HASH}) % {_2_32}) * {ms_per_hash:.17e}')} AS age, "
            f"((i * {_USER_HASH}) % {_2_32}) * {1 / _2_32:.17e} AS x "
            f"FROM {source}) AS v"
        )
        return cte, view

    def sessions_sql(self, tables: Tables, lo: int, hi: int) -> str:
        cte, view = self._sessions_view(lo, hi)
        sid = self.concat("'conv-'", self.padded("v.i"))
        # A skewed draw of the user: user-0 owns the most sessions (U ** (-1/3) of them), and
        # one session in ten has no user.
        user = self.floor_int(f"{self.users} * v.x * v.x * v.x")
        metadata = self.concat('\'{"title":"Conversation \'', "v.i", '\'","channel":"web"}\'')
        return (
            f"{cte}INSERT INTO {tables.sessions.name} (session_id, next_position, item_count, "
            f"created_at, updated_at, user_id, metadata) "
            f"SELECT {sid}, v.c, v.c, {self.before_t0('v.age + v.c * 60000')}, "
            f"{self.before_t0('v.age')}, "
            f"CASE WHEN v.i % 10 = 0 THEN NULL ELSE {self.concat(repr('user-'), user)} END, "
            f"{metadata} FROM {view}"
        )

    def messages_sql(self, tables: Tables, lo: int, hi: int) -> str:
        cte, view = self._sessions_view(lo, hi)
        sid = self.concat("'conv-'", self.padded("v.i"))
        typed = "CAST(:p{} AS text)" if self.backend == "postgresql" else ":p{}"
        whens = " ".join(f"WHEN {k} THEN {typed.format(k)}" for k in range(3))
        payload = f"CASE q.p % 4 {whens} ELSE {typed.format(3)} END"
        # One item a minute, the last at the session's updated_at.
        return (
            f"{cte}INSERT INTO {tables.messages.name} (session_id, position, message_data, "
            f"created_at, chunk_count) "
            f"SELECT {sid}, q.p, {payload}, {self.before_t0('v.age + (v.c - 1 - q.p) * 60000')}, 0 "
            f"FROM {view} {self.positions()}"
        )


def payloads() -> dict[str, str]:
    """The four item shapes of bench/items.py, as convostore stores them."""
    return {f"p{k}": encode_item(item(k)) for k in range(4)}


@dataclass
class DataSet:
    """One loaded set of sessions and the store on it."""

    name: str
    sessions: int
    tables: Tables
    store: SessionStore | None = None
    engine: AsyncEngine | None = None
    load: dict[str, Any] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    deep_cursors: list[str] = field(default_factory=list)
    walk: dict[str, Any] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return self.sessions * ITEMS_PER_SESSION

    def random_number(self, rng: random.Random) -> int:
        return rng.randint(1, self.sessions)


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


def _file_size(path: str) -> int:
    return os.path.getsize(path)


class Backend:
    """One backend's engines, its loader and the disk its data lands on."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.tmp_dir: str | None = None
        if name == "sqlite":
            self.tmp_dir = tempfile.mkdtemp(prefix="convostore-scale-")
            self.sqlite_path = os.path.join(self.tmp_dir, "scale.db")
            url = f"sqlite+aiosqlite:///{self.sqlite_path}"
        self.url = url
        self.engine = engine_from_url(url, **({} if name == "sqlite" else {"pool_size": 5}))

    async def close(self) -> None:
        await self.engine.dispose()
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    # Disk.

    async def data_dir(self) -> str | None:
        """The directory the server writes its data to, if it is on this machine."""
        if self.name == "sqlite":
            return self.tmp_dir
        host = self.engine.url.host
        if host not in (None, "", "localhost", "127.0.0.1", "::1"):
            return None
        query = "SHOW data_directory" if self.name == "postgresql" else "SELECT @@datadir"
        try:
            async with self.engine.connect() as conn:
                path = str((await conn.exec_driver_sql(query)).scalar_one())
        except Exception:
            path = DEFAULT_DATA_DIRS[self.name]
        for candidate in (path, DEFAULT_DATA_DIRS[self.name]):
            if _is_dir(candidate):
                return candidate
        return None

    async def table_bytes(self, tables: Tables) -> int | None:
        """What the two tables take on disk, indexes included (SQLite: the whole file)."""
        names = [tables.sessions.name, tables.messages.name]
        if self.name == "sqlite":
            return _file_size(self.sqlite_path)
        async with self.engine.connect() as conn:
            if self.name == "postgresql":
                query = (
                    "SELECT pg_total_relation_size(CAST(:a AS regclass)) "
                    "+ pg_total_relation_size(CAST(:b AS regclass))"
                )
            else:
                query = (
                    "SELECT sum(data_length + index_length) FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name IN (:a, :b)"
                )
            value = (await conn.execute(text(query), {"a": names[0], "b": names[1]})).scalar()
        return int(value) if value is not None else None

    # Loading.

    @contextlib.asynccontextmanager
    async def _load_connection(self) -> AsyncIterator[Callable[[str, dict[str, Any]], Any]]:
        """A connection of its own for loading, with bulk-load settings that die with it.

        Each call of the yielded function runs one statement and commits it.
        """
        if self.name == "sqlite":
            # Used from one worker thread at a time (asyncio.to_thread, awaited).
            conn = sqlite3.connect(self.sqlite_path, isolation_level=None, check_same_thread=False)
            # Checked by construction: the loader writes messages only of its own sessions.
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("PRAGMA synchronous = OFF")

            def run_sqlite(sql: str, params: dict[str, Any]) -> None:
                conn.execute("BEGIN")
                conn.execute(sql, params)
                conn.execute("COMMIT")

            async def run(sql: str, params: dict[str, Any]) -> None:
                await asyncio.to_thread(run_sqlite, sql, params)

            try:
                yield run
            finally:
                conn.close()
            return
        engine = create_async_engine(to_async_url(self.url), poolclass=NullPool)
        try:
            async with engine.connect() as aconn:
                if self.name == "postgresql":
                    await aconn.exec_driver_sql("SET synchronous_commit = off")
                    with contextlib.suppress(Exception):
                        # Skips the foreign-key triggers (superusers only); consistent by
                        # construction.
                        async with aconn.begin_nested():
                            await aconn.exec_driver_sql("SET session_replication_role = replica")
                else:
                    await aconn.exec_driver_sql("SET foreign_key_checks = 0, unique_checks = 0")
                await aconn.commit()

                async def run(sql: str, params: dict[str, Any]) -> None:
                    await aconn.execute(text(sql), params)
                    await aconn.commit()

                yield run
        finally:
            await engine.dispose()

    async def load(self, ds: DataSet, t0: dt.datetime) -> None:
        """Create ``ds``'s tables and fill them; record the times and the size."""
        await create_tables(self.engine, ds.tables)
        # SQLite's size is the file's: what this load adds to it.
        size_before = _file_size(self.sqlite_path) if self.name == "sqlite" else 0
        loader = Loader(self.name, users=max(1, ds.sessions // 20))
        params = {"t0": loader.t0(t0)}
        started = time.perf_counter()
        times: dict[str, float] = {}
        async with self._load_connection() as run:
            steps = [
                ("sessions", loader.sessions_sql, params),
                ("items", loader.messages_sql, {**params, **payloads()}),
            ]
            for what, build, values in steps:
                began = time.perf_counter()
                for lo in range(1, ds.sessions + 1, CHUNK):
                    hi = min(ds.sessions, lo + CHUNK - 1)
                    await run(build(ds.tables, lo, hi), values)
                    if ds.sessions > 10 * CHUNK and (hi // CHUNK) % 10 == 0:
                        done = hi / ds.sessions
                        log(f"{self.name}/{ds.name}: {what} {done:.0%}")
                times[what] = time.perf_counter() - began
        began = time.perf_counter()
        await self.analyze(ds.tables)
        times["analyze"] = time.perf_counter() - began
        size = await self.table_bytes(ds.tables)
        ds.load = {
            "seconds": round(time.perf_counter() - started, 1),
            **{f"{k}_seconds": round(v, 1) for k, v in times.items()},
            "bytes": size - size_before if size else None,
        }

    async def analyze(self, tables: Tables) -> None:
        """Bring the planner's statistics (and PostgreSQL's visibility map) up to date.

        What a database that has run for a while has anyway (autovacuum, InnoDB's
        background statistics); without it a freshly loaded table is planned blind.
        """
        names = [tables.sessions.name, tables.messages.name]
        if self.name == "sqlite":

            def work() -> None:
                conn = sqlite3.connect(self.sqlite_path, isolation_level=None)
                try:
                    conn.execute("ANALYZE")
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    conn.close()

            await asyncio.to_thread(work)
            return
        async with self.engine.connect() as conn:
            if self.name == "postgresql":
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for name in names:
                    await auto.exec_driver_sql(f"VACUUM (ANALYZE) {name}")
            else:
                for name in names:
                    await conn.exec_driver_sql(f"ANALYZE TABLE {name}")
                await conn.commit()

    async def drop(self, tables: Tables) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(tables.metadata.drop_all)
            await conn.run_sync(drop_version_table, tables)


# -- the disk check -----------------------------------------------------------------------------


def fit_to_disk(
    backend: str, wanted: int, bytes_per_item: float, free: int, where: str
) -> tuple[int, str | None]:
    """How many sessions the disk has room for, and the message saying why, if fewer."""
    need = int(wanted * ITEMS_PER_SESSION * bytes_per_item * (1 + DISK_OVERHEAD)) + DISK_RESERVE
    if need <= free:
        return wanted, None
    room = (free - DISK_RESERVE) / (ITEMS_PER_SESSION * bytes_per_item * (1 + DISK_OVERHEAD))
    fitted = round_sessions(room) if room >= len(COUNTS) else 0
    gib = 1024**3
    message = (
        f"{backend}: {free / gib:.1f} GiB free at {where}; {wanted:,} sessions need about "
        f"{need / gib:.1f} GiB (tables, logs and {DISK_RESERVE / gib:.0f} GiB kept free): "
        + (f"loading {fitted:,} sessions instead" if fitted else "not loading the large set")
    )
    return fitted, message


# -- the operations -----------------------------------------------------------------------------

Op = Callable[[DataSet, random.Random], Awaitable[Any]]


async def op_tail20(ds: DataSet, rng: random.Random) -> None:
    assert ds.engine is not None
    session = SQLAlchemySession(
        session_id(ds.random_number(rng)),
        engine=ds.engine,
        sessions_table=ds.tables.sessions.name,
        messages_table=ds.tables.messages.name,
    )
    items = await session.get_items(limit=20)
    if not items:
        raise RuntimeError(f"{ds.name}: tail20 read nothing from {session.session_id}")


async def op_get_page(ds: DataSet, rng: random.Random) -> None:
    assert ds.store is not None
    i = ds.random_number(rng)
    page = await ds.store.get_page(session_id(i), before=item_count(i) // 2 + 1, limit=20)
    if not page.items:
        raise RuntimeError(f"{ds.name}: get_page read nothing from {session_id(i)}")


async def op_list_first(ds: DataSet, rng: random.Random) -> None:
    assert ds.store is not None
    page = await ds.store.list_sessions(limit=PAGE)
    if len(page.sessions) != PAGE:
        raise RuntimeError(f"{ds.name}: the first page holds {len(page.sessions)} sessions")


async def op_list_deep(ds: DataSet, rng: random.Random) -> None:
    assert ds.store is not None
    page = await ds.store.list_sessions(limit=PAGE, cursor=rng.choice(ds.deep_cursors))
    if len(page.sessions) != PAGE:
        raise RuntimeError(f"{ds.name}: a deep page holds {len(page.sessions)} sessions")


async def op_list_user(ds: DataSet, rng: random.Random) -> None:
    assert ds.store is not None
    page = await ds.store.list_sessions(user_id=rng.choice(ds.users), limit=PAGE)
    if not page.sessions:
        raise RuntimeError(f"{ds.name}: a user's listing is empty")


OPS: dict[str, Op] = {
    "tail20": op_tail20,
    "get_page": op_get_page,
    "list_first": op_list_first,
    "list_deep": op_list_deep,
    "list_user": op_list_user,
}
LABELS = {
    "tail20": "tail20: `get_items(limit=20)`",
    "get_page": "`get_page(before=middle, limit=20)`",
    "list_first": f"`list_sessions(limit={PAGE})`, first page",
    "list_deep": "`list_sessions`, at a cursor 25-50% deep",
    "list_user": "`list_sessions(user_id=...)`",
}


async def prepare_reads(ds: DataSet, rng: random.Random) -> None:
    """Pick users (of random sessions) and walk the listing to its middle for deep cursors.

    Setup, not timed: the walk reads half the sessions, a page of up to 1000 at a time,
    through the cursors ``list_sessions`` hands out, and keeps those past the first quarter.
    """
    assert ds.store is not None
    for _ in range(200):
        info = await ds.store.get_session_info(session_id(ds.random_number(rng)))
        if info is not None and info.user_id is not None:
            ds.users.append(info.user_id)
    page_size = max(1, min(1000, ds.sessions // 2 // 200))
    cursor: str | None = None
    seen = pages = 0
    started = time.perf_counter()
    slowest = 0.0
    while seen < ds.sessions // 2:
        began = time.perf_counter()
        page = await ds.store.list_sessions(limit=page_size, cursor=cursor)
        slowest = max(slowest, time.perf_counter() - began)
        seen += len(page.sessions)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
        if seen >= ds.sessions // 4:
            ds.deep_cursors.append(cursor)
    ds.walk = {
        "pages": pages,
        "page_size": page_size,
        "sessions": seen,
        "seconds": round(time.perf_counter() - started, 2),
        "slowest_page_ms": round(slowest * 1e3, 2),
    }
    if not ds.deep_cursors or not ds.users:
        raise RuntimeError(f"{ds.name}: no deep cursor or no user found")


async def measure(
    sets: list[DataSet], ops: int, rounds: int, seed: int
) -> dict[str, dict[str, Result]]:
    """Every read on every set, ``ops`` times each, in rotating rounds after a warm-up."""
    rng = random.Random(seed)
    results = {name: {ds.name: Result() for ds in sets} for name in OPS}
    per_round = max(1, ops // rounds)
    for rnd in range(rounds + 1):
        order = sets if rnd % 2 == 0 else list(reversed(sets))
        for name, op in OPS.items():
            for ds in order:
                result = results[name][ds.name]
                cpu = time.process_time()
                for _ in range(per_round):
                    start = time.perf_counter()
                    await op(ds, rng)
                    if rnd:  # round 0 warms up connections, caches and the server
                        result.latencies.append(time.perf_counter() - start)
                if rnd:
                    result.ops += per_round
                    result.cpu += time.process_time() - cpu
    return results


async def prune(ds: DataSet, t0: dt.datetime) -> dict[str, Any]:
    """``prune`` the oldest tenth of the sessions (by age), timed."""
    assert ds.store is not None
    cutoff = t0 - SPAN * (1 - PRUNE_SHARE)
    started = time.perf_counter()
    older_than = dt.datetime.now(dt.timezone.utc) - cutoff
    report = await ds.store.prune(older_than)
    seconds = time.perf_counter() - started
    return {
        "sessions": report.sessions,
        "items": report.items,
        "batches": report.batches,
        "seconds": round(seconds, 3),
        "sessions_per_s": report.sessions / seconds if seconds else None,
        "items_per_s": report.items / seconds if seconds else None,
        "share": report.sessions / ds.sessions,
    }


# -- one backend -------------------------------------------------------------------------------


async def run_backend(backend: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load, measure, prune and drop on one backend."""
    try:
        be = Backend(backend, url)
    except Exception as exc:
        return {"skipped": f"cannot open ({type(exc).__name__}: {exc})"}
    try:
        try:
            server = await server_version(be.engine)
        except Exception as exc:
            return {"skipped": f"not reachable ({type(exc).__name__}: {exc})"}
        return await _run(be, server, args)
    except Exception as exc:
        traceback.print_exc()
        return {"skipped": f"failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"}
    finally:
        await be.close()


async def _run(be: Backend, server: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"server": server, "notes": []}
    # Enough sessions, at any scale, for a full page at the deep cursors of both sets.
    large_n = max(MIN_SESSIONS * 10, round_sessions(FULL_SESSIONS[be.name] * args.scale))
    small_n = min(SMALL_SESSIONS, max(MIN_SESSIONS, round_sessions(large_n // 10)))
    run_id = uuid.uuid4().hex[:8]
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    where = await be.data_dir()
    out["disk"] = {"path": where, "free_bytes": shutil.disk_usage(where).free if where else None}
    if where is None:
        out["notes"].append(f"{be.name}: the server's disk is not on this machine: not checked")
        log(out["notes"][-1])

    def fit(wanted: int, per_item: float) -> int:
        """``wanted`` sessions, or fewer if the disk's free space is short (with a note)."""
        if where is None:
            return wanted
        free = shutil.disk_usage(where).free
        fitted, message = fit_to_disk(be.name, wanted, per_item, free, where)
        if message:
            out["notes"].append(message)
            log(message)
        return fitted

    small_n = fit(small_n, BYTES_PER_ITEM[be.name])
    if not small_n:
        return {**out, "skipped": "not enough disk for the small set"}
    sets: list[DataSet] = []
    try:
        small = DataSet("small", small_n, build_tables(*_names(run_id, "small")))
        sets.append(small)
        log(f"{be.name}: loading {small_n:,} sessions / {small.items:,} items (small)")
        await be.load(small, t0)
        per_item = BYTES_PER_ITEM[be.name]
        if small.load["bytes"]:
            per_item = max(1.0, small.load["bytes"] / small.items)
        log(f"{be.name}: small set loaded in {small.load['seconds']}s, {per_item:.0f} B/item")

        # The free space left by the small set, at the small set's measured cost per item.
        large_n = fit(large_n, per_item)
        if large_n <= small_n:
            out["notes"].append(f"{be.name}: no room for a large set larger than the small one")
            return {**out, "skipped": out["notes"][-1]}

        large = DataSet("large", large_n, build_tables(*_names(run_id, "large")))
        sets.append(large)
        log(f"{be.name}: loading {large_n:,} sessions / {large.items:,} items (large)")
        await be.load(large, t0)
        log(f"{be.name}: large set loaded in {large.load['seconds']}s ({large.load})")

        rng = random.Random(args.seed)
        for ds in sets:
            ds.engine = be.engine
            ds.store = SessionStore(
                be.engine,
                sessions_table=ds.tables.sessions.name,
                messages_table=ds.tables.messages.name,
            )
            await prepare_reads(ds, rng)
            w = ds.walk
            log(
                f"{be.name}/{ds.name}: listed {w['sessions']:,} sessions, {w['pages']} pages of "
                f"{w['page_size']}, in {w['seconds']}s (slowest page {w['slowest_page_ms']} ms)"
            )

        started = time.perf_counter()
        results = await measure(sets, args.ops, args.rounds, args.seed)
        log(f"{be.name}: reads measured in {time.perf_counter() - started:.1f}s")
        pruned = {}
        for ds in sets:
            pruned[ds.name] = await prune(ds, t0)
            p = pruned[ds.name]
            log(
                f"{be.name}/{ds.name}: pruned {p['sessions']:,} sessions, {p['items']:,} items "
                f"in {p['seconds']}s"
            )
        out.update(summarize(sets, results, pruned))
        return out
    finally:
        for ds in sets:
            if ds.store is not None:
                await ds.store.close()
        if args.keep:
            for ds in sets:
                log(f"{be.name}: kept {ds.tables.sessions.name}, {ds.tables.messages.name}")
        else:
            for ds in reversed(sets):
                try:
                    await be.drop(ds.tables)
                except Exception as exc:
                    log(f"could not drop {ds.tables.sessions.name}: {exc}")


def _names(run_id: str, which: str) -> tuple[str, str]:
    return f"scale_{run_id}_{which}_sessions", f"scale_{run_id}_{which}_messages"


def summarize(
    sets: list[DataSet], results: dict[str, dict[str, Result]], pruned: dict[str, Any]
) -> dict[str, Any]:
    """The JSON of one backend's run: sets, reads with their ratios, prune, targets."""
    reads: dict[str, Any] = {}
    checks = []
    for name, per_set in results.items():
        stats = {set_name: result.summary() for set_name, result in per_set.items()}
        small, large = stats["small"], stats["large"]
        entry = {
            **stats,
            "p50_ratio": large["p50_ms"] / small["p50_ms"],
            "p99_ratio": large["p99_ms"] / small["p99_ms"],
        }
        reads[name] = entry
        checks.append(
            {
                "target": f"{name} p50 large/small <= {MAX_GROWTH}",
                "value": entry["p50_ratio"],
                "bound": MAX_GROWTH,
                "met": entry["p50_ratio"] <= MAX_GROWTH,
            }
        )
    prune_ratio = None
    if pruned["small"]["sessions_per_s"] and pruned["large"]["sessions_per_s"]:
        prune_ratio = pruned["large"]["sessions_per_s"] / pruned["small"]["sessions_per_s"]
    return {
        "sets": {
            ds.name: {
                "sessions": ds.sessions,
                "items": ds.items,
                "load": ds.load,
                "walk": ds.walk,
                "users_sampled": len(set(ds.users)),
            }
            for ds in sets
        },
        "reads": reads,
        "prune": {**pruned, "sessions_per_s_ratio": prune_ratio},
        "targets": checks,
    }


# -- the report ------------------------------------------------------------------------------------


def _size(value: int | None) -> str:
    if not value:
        return "—"
    return f"{value / 1024**3:.2f} GiB" if value >= 1024**3 else f"{value / 1024**2:.0f} MiB"


def table(backend: str, result: dict[str, Any]) -> str:
    """A Markdown table of one backend's run, with its load times and notes."""
    if "skipped" in result:
        return f"### {backend}\n\nskipped: {result['skipped']}\n"
    sets = result["sets"]
    small, large = sets["small"], sets["large"]
    lines = [
        f"### {backend} ({result['server']})",
        "",
        f"large: {large['sessions']:,} sessions / {large['items']:,} items; "
        f"small: {small['sessions']:,} / {small['items']:,}",
        "",
        "| load | sessions s | items s | analyze s | total s | on disk | B/item |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name in ("large", "small"):
        load = sets[name]["load"]
        per_item = load["bytes"] / sets[name]["items"] if load.get("bytes") else None
        lines.append(
            f"| {name} | {number(load['sessions_seconds'], 1)} "
            f"| {number(load['items_seconds'], 1)} "
            f"| {number(load['analyze_seconds'], 1)} | {number(load['seconds'], 1)} "
            f"| {_size(load.get('bytes'))} | {number(per_item, 0)} |"
        )
    lines += [
        "",
        "| operation | small p50 ms | small p99 ms | large p50 ms | large p99 ms "
        "| p50 large/small | p99 large/small |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name in READS:
        entry = result["reads"][name]
        lines.append(
            f"| {LABELS[name]} | {number(entry['small']['p50_ms'])} "
            f"| {number(entry['small']['p99_ms'])} | {number(entry['large']['p50_ms'])} "
            f"| {number(entry['large']['p99_ms'])} | {number(entry['p50_ratio'])} "
            f"| {number(entry['p99_ratio'])} |"
        )
    pr = result["prune"]
    lines += [
        "",
        "| prune (oldest 10%) | sessions | items | seconds | sessions/s | items/s |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name in ("large", "small"):
        p = pr[name]
        lines.append(
            f"| {name} | {p['sessions']:,} | {p['items']:,} | {number(p['seconds'])} "
            f"| {number(p['sessions_per_s'])} | {number(p['items_per_s'])} |"
        )
    lines.append("")
    lines.append(f"prune sessions/s, large/small: {number(pr['sessions_per_s_ratio'])}")
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


# -- the command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of the full size to load (0.01: a quick run; 0.001: a smoke run)",
    )
    parser.add_argument("--ops", type=int, default=2000, help="timed operations per read and set")
    parser.add_argument("--rounds", type=int, default=10, help="rounds the operations are split in")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="leave the loaded tables in place")
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    parser.add_argument("--postgresql-url", default=DEFAULT_URLS["postgresql"])
    parser.add_argument("--mysql-url", default=DEFAULT_URLS["mysql"])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if an indexed read grows past 1.2x"
    )
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error("--scale must be a fraction in (0, 1]")
    if args.ops < 1 or args.rounds < 1:
        parser.error("--ops and --rounds must be at least 1")
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = BACKENDS if args.backend == "all" else [args.backend]
    urls = {"sqlite": "", "postgresql": args.postgresql_url, "mysql": args.mysql_url}
    started = dt.datetime.now(dt.timezone.utc)
    out: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/scale.py", *(argv or sys.argv[1:])]),
        "scale": args.scale,
        "machine": machine(),
        "backends": {},
    }
    for backend in backends:
        log(f"{backend}: starting")
        out["backends"][backend] = await run_backend(backend, urls[backend], args)
    out["seconds"] = round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)

    path = args.json
    if path is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"scale-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")

    m = out["machine"]
    print(
        f"\nconvostore scale benchmark, scale {args.scale}, {out['started']}: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory']}, Python {m['python']}\n"
    )
    missed = False
    for backend, result in out["backends"].items():
        print(table(backend, result))
    print(f"targets (p50 on the large set / p50 on the small one <= {MAX_GROWTH}):")
    for backend, result in out["backends"].items():
        for c in result.get("targets", []):
            flag = "met    " if c["met"] else "NOT MET"
            missed |= not c["met"]
            print(f"  {flag} {backend:<10} {c['target']:<34} measured {number(c['value'])}")
    print(f"\nJSON: {path}  ({out['seconds']}s)")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
