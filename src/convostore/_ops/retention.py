"""Retention: delete whole sessions in bounded batches, and forget old idempotency keys.

``delete_sessions`` removes the sessions matching a condition (not updated since a
cutoff, belonging to a user, one id) a batch at a time. Each batch is one short transaction
that deletes its sessions one by one through the one delete path
(``convostore._db.history.delete_session``): each session's row is locked by equality on
its id, *re-checking the condition*, so a session written to since it was picked is left
alone. A batch holds at most ``batch_size`` sessions and, unless one session alone is
larger, ``max_batch_items`` items. Sessions are locked in id order, so two prunes never
deadlock on each other.

Trimming a session's oldest items is a history operation (``convostore._db.history.trim``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete
from sqlalchemy.engine import Connection

from .._context import Context
from .._db.history import count_deleted, delete_session
from .._db.runner import run_read, run_write
from .._db.statements import CountedDelete
from .._records import PruneReport

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_MAX_BATCH_ITEMS", "delete_sessions", "prune_keys"]

DEFAULT_BATCH_SIZE = 500
"""Sessions deleted per transaction, at most."""

DEFAULT_MAX_BATCH_ITEMS = 20_000
"""Items deleted per transaction, at most (unless a single session holds more)."""


async def delete_sessions(
    ctx: Context,
    where: ColumnElement[bool],
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
    progress: Callable[[int, int], None] | None = None,
) -> PruneReport:
    """Delete every session matching ``where``, a bounded batch per transaction.

    Args:
        ctx: The store's context.
        where: The condition on the sessions table; re-checked under lock before deleting.
        dry_run: Only count what would be deleted.
        batch_size: Sessions per transaction, at most.
        max_batch_items: Items per transaction, at most (one larger session goes alone).
        progress: Called after each batch with the sessions and items it covered.

    Returns:
        What was (or, in a dry run, would be) deleted.
    """
    db = await ctx.ready()
    sql = db.statements
    report = PruneReport(dry_run=dry_run)
    after: tuple[Any, str] | None = None
    while True:
        pick = sql.sessions_where(where, after if dry_run else None)

        def read(conn: Connection, pick: Any = pick) -> Sequence[Any]:
            return (conn.execute(pick, {"lim": batch_size})).all()

        rows = await run_read(db, read, retry=ctx.retry)
        if not rows:
            return report
        if dry_run:
            after = (rows[-1].updated_at, rows[-1].session_id)
            _count(report, [(r.session_id, int(r.item_count)) for r in rows], progress)
            continue
        batch = sorted(_bounded(rows, max_batch_items))

        def work(conn: Connection, ids: list[str] = batch) -> list[tuple[str, int]]:
            deleted = []
            for session_id in ids:
                count = delete_session(conn, sql, session_id, where)
                if count is not None:
                    deleted.append((session_id, count))
            return deleted

        _count(report, await run_write(db, work, retry=ctx.retry), progress)


async def prune_keys(ctx: Context, older_than: dt.datetime) -> int:
    """Forget every idempotency key recorded before ``older_than`` (validated); return how many."""
    db = await ctx.ready()
    k = ctx.tables.keys
    statement = CountedDelete.of(delete(k).where(k.c.created_at < older_than), k.c.created_at)

    def work(conn: Connection) -> int:
        return count_deleted(conn, statement, None)

    return await run_write(db, work, retry=ctx.retry)


def _bounded(rows: Sequence[Any], max_items: int) -> list[str]:
    """The first rows' ids whose items add up to at most ``max_items`` (at least one row)."""
    ids: list[str] = []
    total = 0
    for row in rows:
        if ids and total + int(row.item_count) > max_items:
            break
        ids.append(str(row.session_id))
        total += int(row.item_count)
    return ids


def _count(
    report: PruneReport,
    removed: list[tuple[str, int]],
    progress: Callable[[int, int], None] | None,
) -> None:
    items = sum(count for _, count in removed)
    report.batches += 1
    report.sessions += len(removed)
    report.items += items
    report.session_ids.extend(session_id for session_id, _ in removed)
    if progress is not None:
        progress(len(removed), items)
