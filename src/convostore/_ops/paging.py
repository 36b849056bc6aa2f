"""Paging through one session's history by position, in either direction."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from .._codec import decode_positioned
from .._context import Context
from .._db.chunks import assemble
from .._db.runner import run_read
from .._records import PageItem

__all__ = ["read_page"]


async def read_page(
    ctx: Context, session_id: str, *, before: int | None, after: int | None, limit: int
) -> tuple[list[PageItem], bool, bool]:
    """Up to ``limit`` items with their positions, oldest first; whether more remain and any.

    The last value says whether any row was found (corrupt rows are left out of the items).

    Without ``after``: the latest items before ``before`` (or of all). With ``after``: the
    first items after it (and before ``before``, if given). Arguments are validated.
    """
    m = ctx.tables.messages
    stmt = select(m.c.position, m.c.message_data, m.c.chunk_count).where(
        m.c.session_id == bindparam("sid")
    )
    if before is not None:
        stmt = stmt.where(m.c.position < before)
    if after is not None:
        stmt = stmt.where(m.c.position > after).order_by(m.c.position)
    else:
        stmt = stmt.order_by(m.c.position.desc())
    stmt = stmt.limit(limit + 1)
    db = await ctx.ready()

    def work(conn: Connection) -> list[tuple[int, str]]:
        rows = (conn.execute(stmt, {"sid": session_id})).all()
        return assemble(conn, db.statements, session_id, rows)

    rows = await run_read(db, work, retry=ctx.retry)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    items = [
        PageItem(position=int(position), item=item)
        for position, item in decode_positioned(session_id, rows)
    ]
    return items, has_more, bool(rows)
