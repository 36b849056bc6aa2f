"""Session records: read one, change one, list them a page at a time, count them.

Listing pages by keyset on ``(updated_at, session_id)``, newest first; the cursor handed out
with a page is that position, opaque to callers (``encode_cursor``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, true, update
from sqlalchemy.engine import Connection

from .._context import Context
from .._db.runner import run_read, run_write
from .._records import SessionInfo, SessionPage
from ..errors import InvalidCursorError

__all__ = [
    "count_sessions",
    "decode_cursor",
    "encode_cursor",
    "get_info",
    "list_sessions",
    "update_record",
]


def _info(row: Any) -> SessionInfo:
    return SessionInfo(
        session_id=str(row.session_id),
        created_at=row.created_at,
        updated_at=row.updated_at,
        item_count=int(row.item_count),
        user_id=row.user_id,
        metadata=row.metadata or {},
    )


async def get_info(ctx: Context, session_id: str) -> SessionInfo | None:
    """The session's record, or ``None`` if no session has that id."""
    db = await ctx.ready()

    def work(conn: Connection) -> Any:
        return (conn.execute(db.statements.session_info, {"sid": session_id})).first()

    row = await run_read(db, work, retry=ctx.retry)
    return _info(row) if row is not None else None


async def update_record(ctx: Context, session_id: str, values: dict[str, Any]) -> None:
    """Set the record's columns in ``values`` (validated ``user_id`` / ``metadata``)."""
    db = await ctx.ready()
    s = ctx.tables.sessions
    stmt = update(s).where(s.c.session_id == bindparam("sid")).values(**values)

    def work(conn: Connection) -> None:
        conn.execute(stmt, {"sid": session_id})

    await run_write(db, work, retry=ctx.retry)


async def list_sessions(
    ctx: Context,
    *,
    user_id: str | None,
    updated_after: dt.datetime | None,
    updated_before: dt.datetime | None,
    limit: int,
    cursor: str | None,
) -> SessionPage:
    """One page of sessions, most recently updated first (arguments validated)."""
    s = ctx.tables.sessions
    conditions: list[Any] = []
    if user_id is not None:
        conditions.append(s.c.user_id == user_id)
    if updated_after is not None:
        conditions.append(s.c.updated_at > updated_after)
    if updated_before is not None:
        conditions.append(s.c.updated_at < updated_before)
    if cursor is not None:
        at, last_id = decode_cursor(cursor)
        # The redundant bound makes the scan start at the cursor in the index: PostgreSQL and
        # SQLite read the OR alone as a filter over every newer session.
        conditions.append(s.c.updated_at <= at)
        conditions.append(
            or_(s.c.updated_at < at, and_(s.c.updated_at == at, s.c.session_id < last_id))
        )
    db = await ctx.ready()
    stmt = (
        select(*db.statements.record_columns)
        .where(and_(true(), *conditions))
        .order_by(s.c.updated_at.desc(), s.c.session_id.desc())
        .limit(limit + 1)
    )

    def work(conn: Connection) -> list[Any]:
        return list((conn.execute(stmt)).all())

    rows = await run_read(db, work, retry=ctx.retry)
    sessions = [_info(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = sessions[-1]
        next_cursor = encode_cursor(last.updated_at, last.session_id)
    return SessionPage(sessions=sessions, next_cursor=next_cursor)


async def count_sessions(ctx: Context, *, user_id: str | None) -> tuple[int, int]:
    """How many sessions (of a user) there are, and how many items they hold."""
    s = ctx.tables.sessions
    stmt = select(func.count(), func.coalesce(func.sum(s.c.item_count), 0))
    if user_id is not None:
        stmt = stmt.where(s.c.user_id == user_id)
    db = await ctx.ready()

    def work(conn: Connection) -> tuple[int, int]:
        row = (conn.execute(stmt)).one()
        return int(row[0]), int(row[1])

    return await run_read(db, work, retry=ctx.retry)


def encode_cursor(updated_at: dt.datetime, session_id: str) -> str:
    """Return the opaque cursor for the keyset position ``(updated_at, session_id)``."""
    raw = json.dumps([updated_at.isoformat(), session_id], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """Return the keyset position of a cursor from ``encode_cursor``.

    Raises:
        InvalidCursorError: The cursor is malformed.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, session_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(session_id, str):
            raise ValueError("not a cursor")
        return when, session_id
    except (ValueError, TypeError, binascii.Error, UnicodeError, AttributeError):
        raise InvalidCursorError(
            f"not a cursor handed out by list_sessions: {cursor!r:.80}"
        ) from None
