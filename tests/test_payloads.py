"""Large items round-trip exactly; too-large items fail clearly and write nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession

MB = 1024 * 1024


def big_item(size: int) -> dict[str, str]:
    """An item whose JSON text is about ``size`` bytes of UTF-8: prose with some quoting,
    newlines and multi-byte characters, like a large tool output."""
    unit = 'The quick brown fox — "jumps" over the lazy dog 😀 \\ done.\n'
    unit_bytes = len(unit.encode("utf-8"))
    return {"type": "function_call_output", "output": unit * (size // unit_bytes)}


async def test_10mb_item_round_trips(session: SQLAlchemySession) -> None:
    item = big_item(10 * MB)
    await session.add_items([{"before": 1}, item, {"after": 2}])
    assert await session.get_items() == [{"before": 1}, item, {"after": 2}]
    assert await session.get_items(limit=2) == [item, {"after": 2}]
    await session.pop_item()
    assert await session.pop_item() == item


@pytest.mark.slow
async def test_64mb_item_round_trips(session: SQLAlchemySession) -> None:
    item = big_item(64 * MB)
    await session.add_items([item])
    assert await session.get_items() == [item]


@pytest.mark.mysql
async def test_item_over_max_allowed_packet_round_trips(
    engine: AsyncEngine, session: SQLAlchemySession
) -> None:
    """Stored in chunks (convostore.chunks), each statement within the server's limit."""
    async with engine.connect() as conn:
        limit = (await conn.execute(text("SELECT @@max_allowed_packet"))).scalar_one()
    item = big_item(int(limit) + MB)
    await session.add_items([{"kept": True}])
    await session.add_items([{"small": 1}, item])
    assert await session.get_items() == [{"kept": True}, {"small": 1}, item]
    assert await session.pop_item() == item
    await session.add_items([{"still": "works"}])
    assert await session.get_items() == [{"kept": True}, {"small": 1}, {"still": "works"}]


async def test_many_items_in_one_batch(session: SQLAlchemySession) -> None:
    items = [{"n": n, "pad": "x" * 200} for n in range(5000)]
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=10) == items[-10:]
