"""Export sessions as JSON Lines, and import them back exactly.

One line per session::

    {"convostore": 1, "session_id": "conv-42", "user_id": "user-7",
     "metadata": {"title": "Trip to Oslo"}, "created_at": "2026-11-02T10:00:00+00:00",
     "updated_at": "2026-11-02T10:05:12.123456+00:00", "first_position": 0,
     "next_position": 12, "items": [{"role": "user", "content": "Hello"}, ...]}

Items are in the order they were added; item ``i`` had position ``first_position + i``.

Both directions stream. The exporter reads sessions and items in keyset batches and writes
each item's stored JSON text straight to the output, so exporting a million items needs no
more memory than one batch, however the items are spread over sessions. The importer reads
a line at a time (its memory is one session's items) and writes sessions in transactions
of a bounded number of items. An import stores each session with the same ids, metadata,
times, items, order and positions; a session that already exists is refused
(:class:`~convostore.errors.SessionExistsError`, with the sessions before it stored) or,
with ``on_existing="skip"``, skipped and reported.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import IO, Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .._codec import compact_json, decode_or_skip, encode_item
from .._context import Context
from .._db import chunks
from .._db.chunks import assemble, chunk_rows, split
from .._db.runner import run_read, run_write
from .._records import ExportReport, ImportReport
from .._validate import check_user_id, validate_session_id
from ..errors import InvalidInputError, InvalidItemError, SessionExistsError, SessionNotFoundError

__all__ = ["FORMAT_VERSION", "export_sessions", "import_sessions"]

FORMAT_VERSION = 1
"""The value of each record's ``"convostore"`` key."""

_SESSION_BATCH = 500
_ITEM_BATCH = 1000
_IMPORT_ITEMS_PER_TRANSACTION = 5000
_IMPORT_SESSIONS_PER_TRANSACTION = 500


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

            async def read_one(conn: AsyncConnection, sid: str = session_id) -> Any:
                return (await conn.execute(one, {"sid": sid})).first()

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

        async def read(conn: AsyncConnection, stmt: Any = stmt) -> list[Any]:
            return list((await conn.execute(stmt)).all())

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

        async def read(conn: AsyncConnection, after: int = after) -> list[tuple[int, str]]:
            result = await conn.execute(batch_stmt, {"sid": session_id, "after": after})
            return await assemble(conn, db.statements, session_id, result.all())

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


class _Pending:
    """A session read from the input, encoded and checked, waiting to be written."""

    def __init__(self, record: dict[str, Any], texts: list[str]) -> None:
        self.session_id: str = record["session_id"]
        self.texts = texts
        self.first: int = record["first_position"]
        self.row: dict[str, Any] = {
            "session_id": self.session_id,
            "next_position": max(record["next_position"], self.first + len(texts)),
            "item_count": len(texts),
            "created_at": record["created_at"],
            "updated_at": record["updated_at"],
        }
        self.user_id: str | None = record["user_id"]
        self.metadata: dict[str, Any] | None = record["metadata"] or None


async def import_sessions(
    ctx: Context,
    lines: Iterable[str],
    *,
    on_existing: str = "error",
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Store the sessions of JSON Lines written by :func:`export_sessions`.

    Args:
        ctx: The store's context.
        lines: The input, a line at a time (an open text file works).
        on_existing: ``"error"`` to stop at a session that already exists, raising
            :class:`SessionExistsError` (the sessions before it stay stored); ``"skip"`` to
            leave it as it is and go on.
        progress: Called after each transaction with the sessions and items it covered
            (skipped sessions included).

    Raises:
        InvalidInputError: A line is not a convostore session record; the message gives its
            line number. The sessions before it stay stored.
        SessionExistsError: A session exists and ``on_existing`` is ``"error"``.
    """
    if on_existing not in ("error", "skip"):
        raise InvalidInputError(f"on_existing must be 'error' or 'skip', got {on_existing!r}")
    report = ImportReport()
    group: list[_Pending] = []
    group_items = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        pending = _parse(line, number)
        group.append(pending)
        group_items += len(pending.texts)
        if (
            group_items >= _IMPORT_ITEMS_PER_TRANSACTION
            or len(group) >= _IMPORT_SESSIONS_PER_TRANSACTION
        ):
            await _write_group(ctx, group, on_existing, report, progress)
            group, group_items = [], 0
    if group:
        await _write_group(ctx, group, on_existing, report, progress)
    return report


def _parse(line: str, number: int) -> _Pending:
    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"line {number}: {why}")

    try:
        record = json.loads(line)
    except ValueError as exc:
        raise bad(f"not JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("convostore") != FORMAT_VERSION:
        raise bad(f"not a convostore session record (format {FORMAT_VERSION})")
    try:
        validate_session_id(record.get("session_id"))
    except InvalidInputError as exc:
        raise bad(str(exc)) from None
    for key in ("created_at", "updated_at"):
        try:
            when = dt.datetime.fromisoformat(record[key])
        except (KeyError, TypeError, ValueError):
            raise bad(f"{key} must be an ISO 8601 time") from None
        if when.tzinfo is None:
            raise bad(f"{key} must have a time zone")
        record[key] = when
    for key in ("first_position", "next_position"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(f"{key} must be an integer >= 0")
    try:
        record["user_id"] = check_user_id(record.get("user_id"))
    except InvalidInputError as exc:
        raise bad(str(exc)) from None
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad("metadata must be null or an object")
    record["metadata"] = metadata
    items = record.get("items")
    if not isinstance(items, list):
        raise bad("items must be a list")
    try:
        texts = [encode_item(item) for item in items]
    except InvalidItemError as exc:
        raise bad(str(exc)) from None
    return _Pending(record, texts)


async def _write_group(
    ctx: Context,
    group: list[_Pending],
    on_existing: str,
    report: ImportReport,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Write a group of sessions in one transaction, after checking which exist."""
    s, m = ctx.tables.sessions, ctx.tables.messages
    ids = [p.session_id for p in group]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInputError(f"session {duplicate!r} appears twice in the input")
    existing_stmt = select(s.c.session_id).where(
        s.c.session_id.in_(bindparam("ids", expanding=True))
    )

    db = await ctx.ready()
    size = await chunks.chunk_chars(db, [text for p in group for text in p.texts], retry=ctx.retry)

    async def work(conn: AsyncConnection) -> tuple[list[str], int]:
        result = await conn.execute(existing_stmt, {"ids": ids})
        existing = {str(sid) for (sid,) in result.all()}
        if existing and on_existing == "error":
            first = next(i for i in ids if i in existing)
            raise SessionExistsError(
                f"session {first!r} already exists; nothing of it was imported (import with "
                f"on_existing='skip' / --skip-existing to leave existing sessions alone)",
                session_id=first,
            )
        fresh = [p for p in group if p.session_id not in existing]
        if fresh:
            rows = []
            for p in fresh:
                rows.append({**p.row, "user_id": p.user_id, "metadata": p.metadata})
            await conn.execute(insert(s), rows)
        chunk: list[dict[str, Any]] = []
        pieces: list[dict[str, Any]] = []
        items = 0
        for p in fresh:
            created = p.row["updated_at"]
            for offset, text in enumerate(p.texts):
                head, rest = split(text, size)
                chunk.append(
                    {
                        "session_id": p.session_id,
                        "position": p.first + offset,
                        "message_data": head,
                        "created_at": created,
                        "chunk_count": len(rest),
                    }
                )
                pieces.extend(chunk_rows(p.session_id, p.first + offset, rest))
                if len(chunk) >= _ITEM_BATCH:
                    await conn.execute(insert(m), chunk)
                    items += len(chunk)
                    chunk = []
        if chunk:
            await conn.execute(insert(m), chunk)
            items += len(chunk)
        for piece in pieces:
            # One statement per piece of a large item, each within the server's packet limit.
            await conn.execute(db.statements.insert_chunk, piece)
        return sorted(existing), items

    skipped, items = await run_write(db, work, retry=ctx.retry)
    report.skipped.extend(skipped)
    report.sessions += len(group) - len(skipped)
    report.items += items
    if progress is not None:
        progress(len(group), sum(len(p.texts) for p in group))
