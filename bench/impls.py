"""The three implementations under test, behind one small interface.

``Impl.session(sid)`` returns an object with ``add_items``, ``get_items`` and ``pop_item``;
``Impl.populate(sid, n)`` writes ``n`` items straight into the implementation's own tables
with bulk SQL (setup only, never timed), laid out exactly as the implementation would have
written them. Each implementation has its own pair of tables, named after the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

import floor
from items import item
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, build_tables, create_tables, engine_from_url
from convostore._codec import encode_item
from convostore.migrate import drop_version_table

# Populated rows get timestamps from here on, one millisecond apart: in the past, so that
# anything appended later sorts after them in a store that orders by time.
POPULATE_START = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
_CHUNK = 2000


@contextlib.asynccontextmanager
async def backend_engine(backend: str, url: str) -> AsyncIterator[tuple[AsyncEngine, str | None]]:
    """The engine of a run on ``backend`` (pool of 10) and, on SQLite, its temporary file.

    On SQLite ``url`` is ignored: the run gets a new database file, deleted at the end.
    """
    tmp_dir = sqlite_path = None
    if backend == "sqlite":
        tmp_dir = tempfile.mkdtemp(prefix="convostore-bench-")
        sqlite_path = os.path.join(tmp_dir, "bench.db")
        url = f"sqlite+aiosqlite:///{sqlite_path}"
    engine = engine_from_url(url, pool_size=10, max_overflow=0)
    try:
        yield engine, sqlite_path
    finally:
        await engine.dispose()
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def set_up(impls: Sequence[Impl]) -> AsyncIterator[None]:
    """Create the implementations' tables; drop them at the end, also after an error."""
    ready: list[Impl] = []
    try:
        for impl in impls:
            ready.append(impl)  # torn down even if its setup fails half-way
            await impl.setup()
        yield
    finally:
        for impl in reversed(ready):
            try:
                await impl.teardown()
            except Exception as exc:
                print(f"could not drop the {impl.name} tables: {exc}", file=sys.stderr)


class Impl:
    """One implementation on one backend."""

    name = ""
    failure: str | None = None
    """Why the implementation cannot run on this backend, if it cannot."""

    async def setup(self) -> None:
        raise NotImplementedError

    async def teardown(self) -> None:
        raise NotImplementedError

    def session(self, sid: str) -> Any:
        raise NotImplementedError

    async def populate(self, sid: str, n: int) -> None:
        raise NotImplementedError


class FloorImpl(Impl):
    name = "floor"

    def __init__(self, engine: AsyncEngine, prefix: str, sqlite_path: str | None) -> None:
        self.store = floor.make_floor(
            engine.url, sqlite_path, f"{prefix}_floor_sessions", f"{prefix}_floor_messages"
        )

    async def setup(self) -> None:
        await self.store.open()
        await self.store.create()

    async def teardown(self) -> None:
        try:
            await self.store.drop()
        finally:
            await self.store.close()

    def session(self, sid: str) -> Any:
        return floor.FloorSession(self.store, sid)

    async def populate(self, sid: str, n: int) -> None:
        await self.store.populate(sid, [floor.encode(item(i)) for i in range(n)], POPULATE_START)


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


class ConvostoreImpl(Impl):
    name = "convostore"

    def __init__(self, engine: AsyncEngine, prefix: str) -> None:
        self.engine = engine
        self.tables = build_tables(f"{prefix}_cs_sessions", f"{prefix}_cs_messages")

    async def setup(self) -> None:
        await create_tables(self.engine, self.tables)

    async def teardown(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.tables.metadata.drop_all)
            await conn.run_sync(drop_version_table, self.tables)  # stamped by create_tables

    def session(self, sid: str) -> Any:
        return SQLAlchemySession(
            sid,
            engine=self.engine,
            sessions_table=self.tables.sessions.name,
            messages_table=self.tables.messages.name,
        )

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


class SdkImpl(Impl):
    name = "sdk"

    def __init__(self, engine: AsyncEngine, prefix: str) -> None:
        self.engine = engine
        self.sessions_table = f"{prefix}_sdk_sessions"
        self.messages_table = f"{prefix}_sdk_messages"
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
        self._proto = self._make("bench-setup", create_tables=True)
        try:
            # The SDK creates its tables on first use.
            await self._proto.get_items(limit=1)
        except Exception as exc:  # the SDK's DDL fails on MySQL; report why
            self.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    async def teardown(self) -> None:
        if self._proto is not None:
            async with self.engine.begin() as conn:
                await conn.run_sync(self._proto._metadata.drop_all)

    def session(self, sid: str) -> Any:
        return self._make(sid)

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
