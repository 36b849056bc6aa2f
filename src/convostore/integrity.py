"""Find stored items that cannot be read back: rows whose JSON does not decode.

convostore only stores JSON it has checked, so such a row was written by something else (a
hand-made ``UPDATE``, another tool, a damaged disk). Reads and pops skip it and log it at
``WARNING`` with its session and position; :func:`find_corrupt_items` lists every one, for
repair or deletion::

    from convostore.integrity import find_corrupt_items

    for bad in await find_corrupt_items(engine, store.tables):
        print(bad.session_id, bad.position, bad.error)

The scan walks the messages table in primary-key order, one page per statement, so its
memory is one page whatever the table's size.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .chunks import assemble, read_whole
from .codec import decode_item
from .errors import ConfigurationError
from .schema import Tables
from .transaction import DEFAULT_RETRY, RetryPolicy

__all__ = ["CorruptItem", "corrupt_items_skipped", "find_corrupt_items", "record_skipped"]

# Reads and pops that skip a corrupt row count it here, so a monitoring job can alert on a
# count that moves without scraping logs. One process-wide number; the event loop and the
# GIL make the increment safe.
_skipped = [0]


def record_skipped() -> None:
    """Count one corrupt row skipped by a read or a pop (called by convostore itself)."""
    _skipped[0] += 1


def corrupt_items_skipped() -> int:
    """How many corrupt rows reads and pops have skipped in this process since it started.

    Each skip is also logged at ``WARNING`` with its session and position;
    :func:`find_corrupt_items` lists the rows themselves.
    """
    return _skipped[0]


@dataclass(frozen=True)
class CorruptItem:
    """A stored row whose JSON cannot be decoded."""

    session_id: str
    """The session the row belongs to."""

    position: int
    """The row's position in its session."""

    error: str
    """Why it cannot be decoded."""


async def find_corrupt_items(
    engine: AsyncEngine,
    tables: Tables,
    *,
    session_id: str | None = None,
    page_size: int = 1000,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> list[CorruptItem]:
    """Return every stored item that cannot be decoded, in (session, position) order.

    Args:
        engine: The engine holding the tables.
        tables: The store's tables (``store.tables``).
        session_id: Scan this session only; ``None`` scans them all.
        page_size: Rows read per statement.
        retry: How transient database errors are retried.

    Raises:
        ConfigurationError: ``page_size`` is not a positive integer.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ConfigurationError(f"page_size must be an integer >= 1, got {page_size!r}")
    m = tables.messages
    base = select(m.c.session_id, m.c.position, m.c.message_data, m.c.chunk_count)
    if session_id is not None:
        base = base.where(m.c.session_id == session_id)
    base = base.order_by(m.c.session_id, m.c.position).limit(page_size)

    found: list[CorruptItem] = []
    after: tuple[str, int] | None = None
    while True:
        page = base
        if after is not None:
            page = page.where(tuple_(m.c.session_id, m.c.position) > tuple_(*after))

        async def work(conn: AsyncConnection, statement: Any = page) -> Sequence[Any]:
            rows = (await conn.execute(statement)).all()
            whole = []
            # Items stored in chunks are checked whole, as reads would return them.
            for sid, group in itertools.groupby(rows, key=lambda row: row[0]):
                parts = [(row[1], row[2], row[3]) for row in group]
                whole += [(sid, *item) for item in await assemble(conn, tables, sid, parts)]
            return whole

        rows = await read_whole(engine, work, retry=retry)
        for sid, position, text in rows:
            try:
                decode_item(text)
            except ValueError as exc:
                found.append(CorruptItem(sid, int(position), str(exc)))
        if len(rows) < page_size:
            return found
        last = rows[-1]
        after = (last[0], int(last[1]))
