"""Items larger than one row: stored in chunks, read back exactly by every path, deleted by all.

Most tests shrink the chunk size to a few hundred characters so that items of a few KB take
many chunks; the ``slow`` tests store 100 MB items with the real chunk size.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, Tables
from convostore._db.chunks import chunk_chars_for_packet, split

from ._stores import SMALL_CHUNK, MakeSession, make_store


def item(n: int, size: int) -> dict[str, Any]:
    """An item of about ``size`` characters, with quotes, escapes and astral characters."""
    unit = f'item {n}: "quoted" \\ back\nslash 😀 é — '
    return {"role": "tool", "n": n, "output": (unit * (size // len(unit) + 1))[:size]}


async def chunk_rows(engine: AsyncEngine, tables: Tables, session_id: str) -> int:
    c = tables.chunks
    async with engine.connect() as conn:
        query = select(func.count()).select_from(c).where(c.c.session_id == session_id)
        return int((await conn.execute(query)).scalar_one())


class Statements:
    """Counts the SELECTs an engine runs while the block is open."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.selects = 0

    def _record(self, _c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def test_split_is_exact() -> None:
    assert split("abc", 3) == ("abc", [])
    assert split("abcdefg", 3) == ("abc", ["def", "g"])
    text_ = "😀" * 1000
    head, rest = split(text_, 7)
    assert head + "".join(rest) == text_
    assert all(len(piece) <= 7 for piece in rest)


def test_chunk_statement_fits_the_packet() -> None:
    """Even a piece of 4-byte characters, or of characters MySQL escapes, fits."""
    packet = 16 * 1024 * 1024
    size = chunk_chars_for_packet(packet)
    worst = max(len(("😀" * size).encode("utf-8")), 2 * len("'" * size))
    assert worst + 4096 <= packet


async def test_chunked_items_round_trip(
    session: SQLAlchemySession, small_chunks: int, engine: AsyncEngine, tables: Tables
) -> None:
    items = [
        item(0, 10),
        item(1, 5000),
        item(2, SMALL_CHUNK),
        item(3, SMALL_CHUNK + 1),
        item(4, 20),
    ]
    await session.add_items(items[:2])
    await session.add_items(items[2:])
    assert await chunk_rows(engine, tables, session.session_id) > 10
    assert await session.get_items() == items
    for limit in range(6):
        assert await session.get_items(limit=limit) == items[len(items) - limit :]


async def test_pop_returns_chunked_items_whole_and_removes_their_chunks(
    session: SQLAlchemySession, small_chunks: int, engine: AsyncEngine, tables: Tables
) -> None:
    items = [item(0, 4000), item(1, 10), item(2, 3000)]
    await session.add_items(items)
    assert await session.pop_item() == items[2]
    assert await session.pop_item() == items[1]
    assert await session.pop_item() == items[0]
    assert await session.pop_item() is None
    assert await chunk_rows(engine, tables, session.session_id) == 0
    await session.add_items([item(5, 2000)])
    assert await session.get_items() == [item(5, 2000)]


async def test_clear_removes_chunks(
    session: SQLAlchemySession, small_chunks: int, engine: AsyncEngine, tables: Tables
) -> None:
    await session.add_items([item(0, 5000)])
    await session.clear_session()
    assert await chunk_rows(engine, tables, session.session_id) == 0
    assert await session.get_items() == []


async def test_reads_without_chunked_items_are_one_query(
    make_session: MakeSession, small_chunks: int, engine: AsyncEngine
) -> None:
    plain, large = make_session(), make_session()
    await plain.add_items([item(0, 10), item(1, 20)])
    await large.add_items([item(0, 10), item(1, 2000)])
    with Statements(engine) as statements:
        await plain.get_items()
        await plain.get_items(limit=1)
    assert statements.selects == 2
    with Statements(engine) as statements:
        await large.get_items(limit=1)  # a chunked item: one more query for its chunks
    assert statements.selects == 2
    with Statements(engine) as statements:
        await large.get_items(limit=1)
        assert await large.get_items(limit=1) == [item(1, 2000)]
    assert statements.selects == 4


async def test_concurrent_pops_and_reads_never_see_a_partial_item(
    make_session: MakeSession, small_chunks: int
) -> None:
    session_id = f"chunks-{uuid.uuid4().hex}"
    items = [item(n, 1500 + n) for n in range(12)]
    await make_session(session_id).add_items(items)
    popped: list[Any] = []
    reads: list[list[Any]] = []

    async def popper() -> None:
        while (got := await make_session(session_id).pop_item()) is not None:
            popped.append(got)

    async def reader() -> None:
        for _ in range(15):
            reads.append(await make_session(session_id).get_items())

    await asyncio.gather(popper(), popper(), reader(), reader())
    assert sorted(popped, key=lambda i: i["n"]) == items
    for seen in reads:
        assert seen == items[: len(seen)]


async def test_store_trim_page_export_import_and_integrity(
    engine: AsyncEngine, tables: Tables, small_chunks: int
) -> None:
    store = make_store(engine, tables)
    session_id = f"chunks-{uuid.uuid4().hex}"
    items = [item(n, 700 * (n + 1)) for n in range(5)]
    session = store.session(session_id)
    await session.add_items(items)

    page = await store.get_page(session_id, limit=2)
    assert [entry.item for entry in page.items] == items[-2:]

    out = io.StringIO()
    await store.export(out, session_ids=[session_id])
    await store.delete_session(session_id)
    assert await chunk_rows(engine, tables, session_id) == 0
    await store.import_(io.StringIO(out.getvalue()).readlines())
    assert await store.session(session_id).get_items() == items
    assert await make_store(engine, tables).find_corrupt_items(session_id=session_id) == []

    assert await store.trim(session_id, keep_last=2) == 3
    assert await session.get_items() == items[-2:]
    c = tables.chunks
    async with engine.connect() as conn:
        query = select(func.min(c.c.position)).where(c.c.session_id == session_id)
        first = (await conn.execute(query)).scalar_one()
    assert first == 3  # the trimmed items' chunks went with them
    await store.delete_session(session_id)


async def test_rotate_rewrites_chunked_items(
    session: SQLAlchemySession, small_chunks: int, engine: AsyncEngine, tables: Tables
) -> None:
    pytest.importorskip("cryptography")
    from cryptography.fernet import Fernet

    from convostore import EncryptedSession

    old, new = Fernet.generate_key(), Fernet.generate_key()
    items = [item(0, 3000), item(1, 10)]
    await EncryptedSession(session, keys=[old]).add_items(items)
    rotated = EncryptedSession(session, keys=[new, old])
    assert await rotated.rotate() == 2
    assert await EncryptedSession(session, keys=[new]).get_items() == items
    assert await chunk_rows(engine, tables, session.session_id) > 0


# -- 100 MB ----------------------------------------------------------------------------------


def hundred_mb() -> dict[str, Any]:
    """100 MB of UTF-8 JSON text, with characters to escape and two-byte ones.

    Latin-1 characters only, so that Python keeps each copy of the text at one byte per
    character (the four-byte case is covered by the small-chunk tests above).
    """
    unit = 'The quick brown fox é "jumps" over the lazy dög \\ done.\n'
    size = 100 * 1024 * 1024
    return {"type": "function_call_output", "output": unit * (size // len(unit.encode()))}


@pytest.mark.slow
async def test_100mb_item_round_trips_with_default_server_settings(
    session: SQLAlchemySession, engine: AsyncEngine, tables: Tables, backend: str
) -> None:
    if backend == "mysql":
        async with engine.connect() as conn:
            packet = (await conn.execute(text("SELECT @@max_allowed_packet"))).scalar_one()
        assert int(packet) < 100 * 1024 * 1024  # the point: larger than one packet allows
    big = hundred_mb()
    started = time.monotonic()
    await session.add_items([{"before": 1}, big, {"after": 2}])
    written = time.monotonic()
    assert await session.get_items(limit=1) == [{"after": 2}]
    got = await session.get_items()
    read = time.monotonic()
    assert got == [{"before": 1}, big, {"after": 2}]
    del got
    assert await chunk_rows(engine, tables, session.session_id) > 0
    await session.pop_item()
    assert await session.pop_item() == big
    popped = time.monotonic()
    assert await chunk_rows(engine, tables, session.session_id) == 0
    print(
        f"\n100 MB on {backend}: add {written - started:.1f}s, read {read - written:.1f}s, "
        f"pop {popped - read:.1f}s"
    )
