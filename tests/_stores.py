"""Tables, sessions and stores for tests: on the run's shared tables, or on tables of their own.

Tests share a database per backend, so each one keeps to its own data: unique session ids on
the run's tables, or tables with names unique to it (:func:`unique_tables`), dropped after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SessionStore, SQLAlchemySession, Tables, build_tables, create_tables
from convostore.migrate import drop_version_table

from ._databases import RUN_ID
from ._layouts import Layout

SMALL_CHUNK = 300
"""Characters per chunk under the ``small_chunks`` fixture: items of a few KB take many chunks."""

MakeSession = Callable[..., SQLAlchemySession]
"""The ``make_session`` fixture: ``make_session(session_id=None, **options)``."""

NewStore = Callable[..., Awaitable[SessionStore]]
"""The ``new_store`` fixture: ``await new_store(**options)``, a store on tables of its own."""


def run_tables() -> Tables:
    """The tables this run shares between its tests (the ``tables`` fixture)."""
    return build_tables(f"cs_{RUN_ID}_sessions", f"cs_{RUN_ID}_messages")


def unique_tables(prefix: str = "cs") -> Tables:
    """Tables whose names no other test uses (short: the derived index names must fit)."""
    tag = uuid.uuid4().hex[:6]
    return build_tables(f"{prefix}_{RUN_ID}_{tag}_s", f"{prefix}_{RUN_ID}_{tag}_m")


def table_options(tables: Tables) -> dict[str, Any]:
    """The keyword arguments that put a session or store on ``tables``."""
    return {"sessions_table": tables.sessions.name, "messages_table": tables.messages.name}


async def drop_tables(engine: AsyncEngine, tables: Tables) -> None:
    """Drop a store's tables, and the version table that ``create_tables`` stamped."""
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.drop_all)
        await conn.run_sync(drop_version_table, tables)


def session_on(
    engine: AsyncEngine, tables: Tables, session_id: str | None = None, **options: Any
) -> SQLAlchemySession:
    """A session on ``tables``; a fresh unique id unless one is given."""
    return SQLAlchemySession(
        session_id or f"test-{uuid.uuid4().hex}",
        engine=engine,
        **table_options(tables),
        **options,
    )


def make_store(engine: AsyncEngine, tables: Tables, **options: Any) -> SessionStore:
    """A store on ``tables`` (the run's are shared with other tests: use unique session ids)."""
    return SessionStore(engine, **table_options(tables), **options)


@contextlib.asynccontextmanager
async def store_factory(
    engine: AsyncEngine, layout: Layout | None = None
) -> AsyncIterator[NewStore]:
    """Make stores on fresh tables of their own (in ``layout``), dropped when the block ends."""
    made: list[Tables] = []
    create = layout.create_tables if layout else create_tables
    drop = layout.drop_tables if layout else drop_tables

    async def make(**options: Any) -> SessionStore:
        tables = unique_tables()
        await create(engine, tables)
        made.append(tables)
        return make_store(engine, tables, **options)

    try:
        yield make
    finally:
        for tables in made:
            await drop(engine, tables)


async def age(store: SessionStore, session_id: str, days: float) -> None:
    """Move a session's ``updated_at`` (and ``created_at``) ``days`` into the past."""
    s = store.tables.sessions
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(s).where(s.c.session_id == session_id).values(updated_at=when, created_at=when)
        )


async def count_rows(store: SessionStore, session_id: str) -> int:
    """The number of message rows a session really has."""
    m = store.tables.messages
    async with store.engine.connect() as conn:
        result = await conn.execute(
            select(func.count()).select_from(m).where(m.c.session_id == session_id)
        )
        return int(result.scalar_one())
