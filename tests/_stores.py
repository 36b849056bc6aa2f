"""Stores for tests: on the run's shared tables, or on tables of their own."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SessionStore, Tables, build_tables, create_tables
from convostore.migrate import drop_version_table

from .conftest import RUN_ID


def make_store(engine: AsyncEngine, tables: Tables) -> SessionStore:
    """A store on the run's tables (shared with other tests: use unique session ids)."""
    return SessionStore(
        engine, sessions_table=tables.sessions.name, messages_table=tables.messages.name
    )


@contextlib.asynccontextmanager
async def store_factory(
    engine: AsyncEngine,
) -> AsyncIterator[Callable[..., Awaitable[SessionStore]]]:
    """Make stores on fresh tables of their own, dropped when the block ends."""
    made: list[Tables] = []

    async def make(**kwargs: object) -> SessionStore:
        tag = uuid.uuid4().hex[:6]
        t = build_tables(f"cs_{RUN_ID}_{tag}_s", f"cs_{RUN_ID}_{tag}_m")
        await create_tables(engine, t)
        made.append(t)
        return SessionStore(
            engine,
            sessions_table=t.sessions.name,
            messages_table=t.messages.name,
            **kwargs,  # type: ignore[arg-type]
        )

    try:
        yield make
    finally:
        async with engine.begin() as conn:
            for t in made:
                await conn.run_sync(t.metadata.drop_all)
                await conn.run_sync(drop_version_table, t)  # stamped by create_tables


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
    from sqlalchemy import func, select

    m = store.tables.messages
    async with store.engine.connect() as conn:
        result = await conn.execute(
            select(func.count()).select_from(m).where(m.c.session_id == session_id)
        )
        return int(result.scalar_one())
