"""Retention: trim long sessions, delete sessions in bounded batches.

Both keep ``item_count`` exact and never hold a lock for long:

- :func:`trim_within` deletes a session's oldest items beyond ``keep_last`` in the caller's
  transaction (the store runs it inside ``add_items`` for ``max_items_per_session``), under
  the session's row lock, and subtracts what it deleted from ``item_count``.
- :func:`delete_sessions` removes whole sessions matching a condition (not updated since a
  cutoff, belonging to a user) a batch at a time: each batch is one short transaction that
  locks the batch's session rows *re-checking the condition*, so a session written to since
  it was picked is left alone, then deletes their items and rows. A batch holds at most
  ``batch_size`` sessions and, unless one session alone is larger, ``max_batch_items``
  items.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .operations import Operations
from .records import PruneReport
from .schema import Tables
from .transaction import run_read, run_write

__all__ = ["RetentionSQL", "delete_sessions", "retention_sql", "trim", "trim_within"]

DEFAULT_BATCH_SIZE = 500
"""Sessions deleted per transaction, at most."""

DEFAULT_MAX_BATCH_ITEMS = 20_000
"""Items deleted per transaction, at most (unless a single session holds more)."""


class RetentionSQL:
    """The statements of trimming and batched deletion, built once per table set."""

    def __init__(self, tables: Tables) -> None:
        s, m = tables.sessions, tables.messages
        self.tables = tables
        sid = bindparam("sid", type_=s.c.session_id.type)
        ids = bindparam("ids", expanding=True, type_=s.c.session_id.type)
        self.lock_count = select(s.c.item_count).where(s.c.session_id == sid).with_for_update()
        self.nth_newest = (
            select(m.c.position)
            .where(m.c.session_id == sid)
            .order_by(m.c.position.desc())
            .limit(1)
            .offset(bindparam("skip"))
        )
        self.delete_before = delete(m).where(
            m.c.session_id == sid, m.c.position < bindparam("cutoff")
        )
        self.delete_all_items = delete(m).where(m.c.session_id == sid)
        self.subtract_count = (
            update(s)
            .where(s.c.session_id == sid)
            .values(item_count=s.c.item_count - bindparam("removed"))
        )
        self.delete_items_of = delete(m).where(m.c.session_id.in_(ids))
        self.delete_sessions_of = delete(s).where(s.c.session_id.in_(ids))
        self.ids = ids

    def candidates(self, where: ColumnElement[bool], after: tuple[Any, str] | None) -> Any:
        """Sessions matching ``where``, oldest update first, after a keyset position."""
        s = self.tables.sessions
        stmt = select(s.c.session_id, s.c.item_count, s.c.updated_at).where(where)
        if after is not None:
            at, sid = after
            stmt = stmt.where(
                or_(s.c.updated_at > at, and_(s.c.updated_at == at, s.c.session_id > sid))
            )
        return stmt.order_by(s.c.updated_at, s.c.session_id).limit(bindparam("lim"))

    def lock_matching(self, where: ColumnElement[bool]) -> Any:
        """Lock the listed sessions that still match ``where``."""
        s = self.tables.sessions
        return (
            select(s.c.session_id, s.c.item_count)
            .where(s.c.session_id.in_(self.ids), where)
            .order_by(s.c.session_id)
            .with_for_update()
        )


@functools.lru_cache(maxsize=64)
def retention_sql(tables: Tables) -> RetentionSQL:
    """Return the :class:`RetentionSQL` of ``tables``, built once."""
    return RetentionSQL(tables)


async def trim_within(
    conn: AsyncConnection, tables: Tables, session_id: str, keep_last: int
) -> int:
    """Delete the session's items older than its latest ``keep_last``, in ``conn``'s transaction.

    Takes the session's row lock first (a no-op if the caller holds it already) and keeps
    ``item_count`` exact. Returns how many items were deleted.
    """
    sql = retention_sql(tables)
    count = (await conn.execute(sql.lock_count, {"sid": session_id})).scalar_one_or_none()
    if count is None or count <= keep_last:
        return 0
    if keep_last == 0:
        result = await conn.execute(sql.delete_all_items, {"sid": session_id})
    else:
        cutoff = (
            await conn.execute(sql.nth_newest, {"sid": session_id, "skip": keep_last - 1})
        ).scalar_one_or_none()
        if cutoff is None:
            return 0
        result = await conn.execute(sql.delete_before, {"sid": session_id, "cutoff": cutoff})
    removed = int(result.rowcount)
    if removed:
        await conn.execute(sql.subtract_count, {"sid": session_id, "removed": removed})
    return removed


async def trim(ops: Operations, session_id: str, keep_last: int) -> int:
    """Keep only the session's latest ``keep_last`` items, as one transaction.

    Returns how many items were deleted (0 for an unknown or short session).
    """

    async def work(conn: AsyncConnection) -> int:
        return await trim_within(conn, ops.tables, session_id, keep_last)

    return await run_write(ops.engine, work, retry=ops.retry)


async def delete_sessions(
    ops: Operations,
    where: ColumnElement[bool],
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
    progress: Callable[[int, int], None] | None = None,
) -> PruneReport:
    """Delete every session matching ``where``, a bounded batch per transaction.

    Args:
        ops: The store's operations (engine, tables, retry policy).
        where: The condition on the sessions table; re-checked under lock before deleting.
        dry_run: Only count what would be deleted.
        batch_size: Sessions per transaction, at most.
        max_batch_items: Items per transaction, at most (one larger session goes alone).
        progress: Called after each batch with the sessions and items it covered.

    Returns:
        What was (or, in a dry run, would be) deleted.
    """
    sql = retention_sql(ops.tables)
    report = PruneReport(dry_run=dry_run)
    after: tuple[Any, str] | None = None
    while True:
        pick = sql.candidates(where, after if dry_run else None)

        async def read(conn: AsyncConnection, pick: Any = pick) -> Sequence[Any]:
            return (await conn.execute(pick, {"lim": batch_size})).all()

        rows = await run_read(ops.engine, read, retry=ops.retry)
        if not rows:
            return report
        if dry_run:
            after = (rows[-1].updated_at, rows[-1].session_id)
            _count(report, [(r.session_id, int(r.item_count)) for r in rows], progress)
            continue
        batch = _bounded(rows, max_batch_items)

        async def work(conn: AsyncConnection, ids: list[str] = batch) -> list[tuple[str, int]]:
            locked = (await conn.execute(sql.lock_matching(where), {"ids": ids})).all()
            gone = [str(row.session_id) for row in locked]
            if gone:
                await conn.execute(sql.delete_items_of, {"ids": gone})
                await conn.execute(sql.delete_sessions_of, {"ids": gone})
            return [(str(row.session_id), int(row.item_count)) for row in locked]

        _count(report, await run_write(ops.engine, work, retry=ops.retry), progress)


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
