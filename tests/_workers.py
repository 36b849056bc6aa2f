"""Code run in child processes by the multi-process tests (each with its own engine)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from convostore import SQLAlchemySession, engine_from_url


@contextlib.asynccontextmanager
async def _own_session(
    url: str, sessions_table: str, messages_table: str, session_id: str
) -> AsyncIterator[SQLAlchemySession]:
    """A session on an engine of this process's own, disposed when the block ends."""
    engine = engine_from_url(url)
    try:
        yield SQLAlchemySession(
            session_id, engine=engine, sessions_table=sessions_table, messages_table=messages_table
        )
    finally:
        await engine.dispose()


def write_batches(
    url: str,
    sessions_table: str,
    messages_table: str,
    session_id: str,
    writer: int,
    batches: int,
    batch_size: int,
) -> None:
    """Add ``batches`` batches of ``batch_size`` items, tagged with the writer's number."""

    async def main() -> None:
        async with _own_session(url, sessions_table, messages_table, session_id) as session:
            for batch in range(batches):
                await session.add_items(
                    [{"w": writer, "b": batch, "i": i} for i in range(batch_size)]
                )

    asyncio.run(main())


def pop_all(
    url: str,
    sessions_table: str,
    messages_table: str,
    session_id: str,
    out: list[object],
) -> None:
    """Pop until the session is empty; append what was popped to the shared list ``out``."""

    async def main() -> list[object]:
        popped = []
        async with _own_session(url, sessions_table, messages_table, session_id) as session:
            while (item := await session.pop_item()) is not None:
                popped.append(item)
        return popped

    out.extend(asyncio.run(main()))


def first_use(url: str, session_id: str, start_at: float) -> None:
    """Open a new database with ``create_tables=True`` at ``start_at`` and write at once."""
    import time

    async def main() -> None:
        async with SQLAlchemySession.from_url(session_id, url=url, create_tables=True) as s:
            await s.add_items([{"role": "user", "content": session_id}])

    time.sleep(max(0.0, start_at - time.time()))
    asyncio.run(main())
