"""Import sessions from JSON Lines written by the exporter, exactly.

The importer reads a line at a time (its memory is one session's items) and writes sessions in
transactions of a bounded number of items. It stores each session with the same ids, metadata,
times, items, order and positions; a session that already exists is refused
([`SessionExistsError`][convostore.errors.SessionExistsError], with the sessions before it stored)
or, with ``on_existing="skip"``, skipped and reported.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from .._codec import encode_item
from .._context import Context
from .._db import chunks
from .._db.chunks import chunk_rows, split
from .._db.runner import run_write
from .._records import ImportReport
from .._validate import check_user_id, validate_session_id, whole_number
from ..errors import InvalidInputError, InvalidItemError, SessionExistsError
from .export import FORMAT_VERSION

__all__ = ["import_sessions"]

_ITEM_BATCH = 1000
_IMPORT_ITEMS_PER_TRANSACTION = 5000
_IMPORT_SESSIONS_PER_TRANSACTION = 500


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
    """Store the sessions of JSON Lines written by ``export_sessions``.

    Args:
        ctx: The store's context.
        lines: The input, a line at a time (an open text file works).
        on_existing: ``"error"`` to stop at a session that already exists, raising
            [`SessionExistsError`][convostore.errors.SessionExistsError] (the sessions before it
            stay stored); ``"skip"`` to leave it as it is and go on.
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
        try:
            whole_number(record.get(key), key, minimum=0, error=InvalidInputError)
        except InvalidInputError as exc:
            raise bad(str(exc)) from None
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

    def work(conn: Connection) -> tuple[list[str], int]:
        result = conn.execute(existing_stmt, {"ids": ids})
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
            conn.execute(insert(s), rows)
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
                    conn.execute(insert(m), chunk)
                    items += len(chunk)
                    chunk = []
        if chunk:
            conn.execute(insert(m), chunk)
            items += len(chunk)
        for piece in pieces:
            # One statement per piece of a large item, each within the server's packet limit.
            conn.execute(db.statements.insert_chunk, piece)
        return sorted(existing), items

    skipped, items = await run_write(db, work, retry=ctx.retry)
    report.skipped.extend(skipped)
    report.sessions += len(group) - len(skipped)
    report.items += items
    if progress is not None:
        progress(len(group), sum(len(p.texts) for p in group))
