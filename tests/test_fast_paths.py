"""The performance shortcuts (docs/performance.md) change nothing but speed.

- ``decode_item`` calls the standard decoder's scanner directly: its results and its errors
  must be exactly those of :func:`json.loads`.
- ``writer_lock`` queues writers only where SQLite's one-writer rule makes them wait anyway.
- PostgreSQL appends in one statement and reads in autocommit: batches still get contiguous
  positions in order, and a write after a read is still one transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, engine_from_url
from convostore._codec import decode_item
from convostore._db.engine import engine_state

TEXTS = [
    '{"a":1}',
    ' {"a":1}',
    '{"a":1} ',
    '{"a":1}\n',
    '{"a":1}x',
    '{"a":1}{"b":2}',
    "",
    "   ",
    '{"a":',
    "[1,2]",
    '"text"',
    "null",
    '{"a":NaN,"b":-Infinity}',
    '{"big":184467440737095516161844674407370955161}',
    '{"s":"\\ud800"}',
    '{"k":1,"k":2}',
    '{"f":1e400,"g":-0.0,"h":1E-5}',
    '{"é":"日本語 🎉","nul":"\\u0000"}',
    '{"a":"unterminated}',
    '{"a":"ctrl\x01char"}',
]


def _outcome(decode: Callable[[str], Any], text: str) -> tuple[str, Any]:
    try:
        value = decode(text)
    except ValueError as exc:
        return ("error", str(exc))
    return ("value", repr(value))


@pytest.mark.parametrize("text", TEXTS)
def test_decode_item_matches_json_loads(text: str) -> None:
    assert _outcome(decode_item, text) == _outcome(json.loads, text)


def test_decode_item_refuses_deep_nesting_as_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_item("[" * 200_000 + "]" * 200_000)


async def test_writer_lock_only_for_sqlite_files(tmp_path: Path) -> None:
    engines = {
        "file": engine_from_url(f"sqlite:///{tmp_path / 'w.db'}"),
        "memory": engine_from_url("sqlite://"),
        "postgresql": engine_from_url("postgresql://u@127.0.0.1/db"),
        "mysql": engine_from_url("mysql://u@127.0.0.1/db"),
    }
    try:
        lock = engine_state(engines["file"]).writer_lock()
        assert isinstance(lock, asyncio.Lock)
        assert engine_state(engines["file"]).writer_lock() is lock  # one queue per engine and loop
        for name in ("memory", "postgresql", "mysql"):
            assert engine_state(engines[name]).writer_lock() is None, name
    finally:
        for engine in engines.values():
            await engine.dispose()


async def test_batches_get_contiguous_positions_in_order(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session = make_session()
    batches = [[{"n": i * 10 + j} for j in range(size)] for i, size in enumerate((1, 10, 3, 1))]
    for batch in batches:
        await session.add_items(batch)
    expected = [item for batch in batches for item in batch]
    assert await session.get_items() == expected
    assert await session.get_items(limit=4) == expected[-4:]
    assert await session.pop_item() == expected[-1]
    await session.add_items([{"n": "after pop"}])
    assert await session.get_items() == [*expected[:-1], {"n": "after pop"}]


@pytest.mark.postgresql
async def test_reads_leave_no_autocommit_connection_behind(
    make_session: Callable[..., SQLAlchemySession], engine: AsyncEngine
) -> None:
    # Reads run in autocommit on PostgreSQL; the connections they used must come back to
    # the pool in transaction mode, or a later batch would be written statement by statement.
    session = make_session()
    await session.add_items([{"n": 0}])
    await asyncio.gather(*(session.get_items(limit=1) for _ in range(20)))
    conns = [await engine.connect() for _ in range(5)]
    try:
        for conn in conns:
            await conn.exec_driver_sql("SELECT 1")
            raw = await conn.get_raw_connection()
            assert raw.driver_connection.is_in_transaction()
    finally:
        for conn in conns:
            await conn.close()
