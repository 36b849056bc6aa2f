"""Find stored items that cannot be read back: rows whose JSON does not decode.

convostore only stores JSON it has checked, so such a row was written by something else (a
hand-made ``UPDATE``, another tool, a damaged disk). Reads and pops skip it and log it at
``WARNING`` with its session and position; ``SessionStore.find_corrupt_items`` lists every one, for
repair or deletion:

```python
for bad in await store.find_corrupt_items():
    print(bad.session_id, bad.position, bad.error)
```

The scan walks the messages table in primary-key order, one page per statement, so its
memory is one page whatever the table's size.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from .._codec import decode_item
from .._context import Context
from .._db.chunks import assemble
from .._db.runner import run_read
from .._records import CorruptItem

__all__ = ["find_corrupt_items"]


async def find_corrupt_items(
    ctx: Context, *, session_id: str | None, page_size: int
) -> list[CorruptItem]:
    """Every stored item that cannot be decoded, in (session, position) order (validated)."""
    db = await ctx.ready()
    m = ctx.tables.messages
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

        def work(conn: Connection, statement: Any = page) -> Sequence[Any]:
            rows = (conn.execute(statement)).all()
            whole = []
            # Items stored in chunks are checked whole, as reads would return them.
            for sid, group in itertools.groupby(rows, key=lambda row: row[0]):
                parts = [(row[1], row[2], row[3]) for row in group]
                whole += [(sid, *item) for item in assemble(conn, db.statements, sid, parts)]
            return whole

        rows = await run_read(db, work, retry=ctx.retry)
        for sid, position, text in rows:
            try:
                decode_item(text)
            except ValueError as exc:
                found.append(CorruptItem(sid, int(position), str(exc)))
        if len(rows) < page_size:
            return found
        last = rows[-1]
        after = (last[0], int(last[1]))
