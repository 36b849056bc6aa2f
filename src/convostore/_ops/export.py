"""Export sessions as JSON Lines, one session per line, streaming.

One line per session:

```text
{"convostore": 1, "session_id": "conv-42", "user_id": "user-7",
 "metadata": {"title": "Trip to Oslo"}, "created_at": "2026-11-02T10:00:00+00:00",
 "updated_at": "2026-11-02T10:05:12.123456+00:00", "first_position": 0,
 "next_position": 12, "items": [{"role": "user", "content": "Hello"}, ...]}
```

Items are in the order they were added; item ``i`` had position ``first_position + i``.
The exporter reads sessions and items in keyset batches and writes each item's stored JSON
text straight to the output, so exporting a million items needs no more memory than one
batch, however the items are spread over sessions. ``convostore._ops.import_`` reads the
lines back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from .._codec import compact_json, decode_or_skip
from .._context import Context
from .._db.chunks import assemble
from .._db.runner import run_read
from .._records import ExportReport
from .._validate import check_user_id, validate_session_id
from ..errors import SessionNotFoundError

__all__ = ["FORMAT_VERSION", "export_sessions"]

FORMAT_VERSION = 1
"""The value of each record's ``"convostore"`` key."""

_SESSION_BATCH = 500
_ITEM_BATCH = 1000


async def export_sessions(
    ctx: Context,
    out: IO[str],
    *,
    session_ids: Iterable[str] | None = None,
    user_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write sessions to ``out`` as JSON Lines, one session per line.

    Args:
        ctx: The store's context.
        out: A text stream to write to.
        session_ids: Only these sessions (each must exist); all of them if ``None``.
        user_id: Only this user's sessions.
        progress: Called after each session with 1 and the number of its items.

    Raises:
        SessionNotFoundError: One of ``session_ids`` does not exist (the sessions before it
            have been written).
    """
    if user_id is not None:
        check_user_id(user_id)
    report = ExportReport()
    async for row in _session_rows(ctx, session_ids, user_id):
        items = await _export_one(ctx, row, out)
        report.sessions += 1
        report.items += items
        if progress is not None:
            progress(1, items)
    return report


async def _session_rows(
    ctx: Context, session_ids: Iterable[str] | None, user_id: str | None
) -> Any:
    s = ctx.tables.sessions
    cols = [
        s.c.session_id,
        s.c.created_at,
        s.c.updated_at,
        s.c.next_position,
        s.c.item_count,
        s.c.user_id,
        s.c.metadata,
    ]
    db = await ctx.ready()
    if session_ids is not None:
        one = select(*cols).where(s.c.session_id == bindparam("sid"))
        for session_id in session_ids:
            validate_session_id(session_id)

            def read_one(conn: Connection, sid: str = session_id) -> Any:
                return (conn.execute(one, {"sid": sid})).first()

            row = await run_read(db, read_one, retry=ctx.retry)
            if row is None:
                raise SessionNotFoundError(
                    f"no session with id {session_id!r}", session_id=session_id
                )
            yield row
        return
    base = select(*cols).order_by(s.c.session_id).limit(_SESSION_BATCH)
    if user_id is not None:
        base = base.where(s.c.user_id == user_id)
    last: str | None = None
    while True:
        stmt = base if last is None else base.where(s.c.session_id > last)

        def read(conn: Connection, stmt: Any = stmt) -> list[Any]:
            return list((conn.execute(stmt)).all())

        rows = await run_read(db, read, retry=ctx.retry)
        for row in rows:
            yield row
        if len(rows) < _SESSION_BATCH:
            return
        last = rows[-1].session_id


async def _export_one(ctx: Context, row: Any, out: IO[str]) -> int:
    """Write one session's line; return how many items it held."""
    db = await ctx.ready()
    m = ctx.tables.messages
    session_id = str(row.session_id)
    batch_stmt = (
        select(m.c.position, m.c.message_data, m.c.chunk_count)
        .where(m.c.session_id == bindparam("sid"), m.c.position > bindparam("after"))
        .order_by(m.c.position)
        .limit(_ITEM_BATCH)
    )
    after = -1
    written = 0
    head_written = False
    while True:

        def read(conn: Connection, after: int = after) -> list[tuple[int, str]]:
            result = conn.execute(batch_stmt, {"sid": session_id, "after": after})
            return assemble(conn, db.statements, session_id, result.all())

        rows = await run_read(db, read, retry=ctx.retry)
        if not head_written:
            first = rows[0][0] if rows else int(row.next_position)
            out.write(_head(row, first))
            head_written = True
        for position, text in rows:
            if not decode_or_skip(session_id, position, text)[0]:
                continue
            # Stored text is compact JSON already: written as it is, byte for byte.
            out.write(("," if written else "") + text)
            written += 1
        if len(rows) < _ITEM_BATCH:
            break
        after = rows[-1][0]
    out.write("]}\n")
    return written


def _head(row: Any, first_position: int) -> str:
    record = {
        "convostore": FORMAT_VERSION,
        "session_id": row.session_id,
        "user_id": row.user_id,
        "metadata": row.metadata or {},
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "first_position": first_position,
        "next_position": int(row.next_position),
    }
    text = compact_json(record)
    return text[:-1] + ',"items":['
