"""A session's history: add, get, pop, clear and trim, each one transaction.

Every writer of a session first takes that session's row lock, so writers of one session
run one after the other while writers of different sessions never wait for each other:

- ``add``: bump the session's ``next_position`` and ``item_count`` by the batch size and read
  the new position in the same statement (an upsert with ``RETURNING`` on PostgreSQL and
  SQLite; on MySQL and MariaDB ``ON DUPLICATE KEY UPDATE`` through ``LAST_INSERT_ID(expr)``),
  then insert the batch at the positions just reserved (on PostgreSQL both in one
  statement). Positions are handed out inside the transaction, so order never depends on a
  clock. Under the same lock the add claims its idempotency key, fills in a new session's
  record and trims the session to the store's bound: all data passed down by the caller.
- ``pop``: decrement the session's ``item_count`` where it is positive (taking the row lock;
  an empty session is left alone), then delete the row with the highest position and
  return its item (``DELETE ... RETURNING`` where the dialect has it; otherwise ``SELECT ...
  FOR UPDATE`` and ``DELETE``). Corrupt rows met on the way are removed in the same
  transaction and reported after it.
- ``delete_session`` (clear, and every maintenance path that deletes sessions): lock the
  session row, then delete its items and the row.
- ``get``: one indexed range scan on the messages primary key.

The functions take a ``convostore._db.engine.Database`` and plain data, and return decoded
items; the statements come from ``convostore._db.statements``, the execution from
``convostore._db.runner``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from .._codec import decode_item, decode_positioned, decode_rows
from .._config import RetryPolicy
from . import chunks
from .chunks import assemble, chunk_rows, split
from .direct import Executor, executor, fetch_on_driver
from .engine import Database
from .runner import run_read, run_write
from .schema import utcnow
from .statements import CountedDelete, Statements
from .worker import Committing

__all__ = [
    "add",
    "clear",
    "count_deleted",
    "delete_session",
    "get",
    "pop",
    "record_and_trim",
    "trim",
    "trim_within",
]

# The largest LIMIT every backend binds: a signed 64-bit integer.
_MAX_LIMIT = (1 << 63) - 1


async def add(
    db: Database,
    session_id: str,
    texts: Sequence[str],
    *,
    retry: RetryPolicy,
    key: str | None = None,
    keep_last: int | None = None,
    record: dict[str, Any] | None = None,
) -> None:
    """Append the encoded items ``texts`` to the session, as one transaction.

    Args:
        db: The engine and statements to use.
        session_id: The session (validated by the caller).
        texts: The items' stored JSON text, in order.
        retry: How transient errors are retried.
        key: An idempotency key (validated): a batch whose key the session already has is
            not written again, and the call returns normally.
        keep_last: Delete the session's oldest items beyond this many, in the same
            transaction (a store's ``max_items_per_session``).
        record: ``user_id`` / ``metadata`` to set where the session has none yet.
    """
    if not texts:
        return
    size = await chunks.chunk_chars(db, texts, retry=retry)
    write = _Add(db.statements, session_id, texts, size, key, keep_last, record)
    try:
        await run_write(
            db, write.run, retry=retry, verify=write.committed, one_statement=write.one_statement
        )
    except _AlreadyStored:
        # A retry of a batch already stored: its transaction was rolled back, and that is
        # success for the caller.
        return


class _Add:
    """One add's transaction: ``run`` writes it, ``committed`` checks a lost COMMIT.

    ``run`` records the position and timestamp of its last try, which ``committed`` looks
    for; nothing else is shared between them.
    """

    def __init__(
        self,
        sql: Statements,
        session_id: str,
        texts: Sequence[str],
        size: int,
        key: str | None,
        keep_last: int | None,
        record: dict[str, Any] | None,
    ) -> None:
        self.sql = sql
        self.session_id = session_id
        self.texts = texts
        # Items longer than one chunk keep their head in the row, the rest in the chunks table.
        self.pieces = [split(text, size) for text in texts]
        self.chunked = any(rest for _, rest in self.pieces)
        self.key = key
        self.keep_last = keep_last
        self.record = record
        self.last_position = -1
        self.now: dt.datetime  # set by each try of run(), read by committed()
        self.one_statement = (
            sql.append is not None
            and not self.chunked
            and key is None
            and keep_last is None
            and not record
        )
        """The whole add is PostgreSQL's one append statement, atomic by itself: it runs in
        autocommit, one round trip instead of three (BEGIN, the statement, COMMIT), and
        holds the session's row lock for that round trip only (bench/: append1,
        concurrent)."""

    def run(self, connection: Connection) -> None:
        """Write the batch (and what goes with it) in ``connection``'s transaction."""
        conn = executor(connection, self.sql)
        self.now = utcnow()
        if self.sql.append is not None and not self.chunked:
            self._append(conn)
        else:
            self._reserve_and_insert(conn)
        if self.record or self.keep_last is not None:
            record_and_trim(
                conn, self.sql, self.session_id, record=self.record, keep_last=self.keep_last
            )

    def _append(self, conn: Executor) -> None:
        assert self.sql.append is not None
        params: dict[str, Any] = {
            "sid": self.session_id,
            "n": len(self.texts),
            "now": self.now,
            "texts": list(self.texts),
        }
        if self.one_statement:
            try:
                positions = conn.execute(self.sql.append, params).scalars().all()
            except (DBAPIError, OSError) as exc:
                # In autocommit the statement is its own COMMIT: a connection lost while it
                # runs leaves the outcome unknown, as a lost COMMIT does.
                raise Committing(exc, None) from exc
            self.last_position = max(positions)
            return
        positions = (conn.execute(self.sql.append, params)).scalars().all()
        self.last_position = max(positions)
        if self.key is not None:
            # The append took the session's row lock: same-key retries queue up here.
            self._claim_key(conn)

    def _reserve_and_insert(self, conn: Executor) -> None:
        sql, session_id, n = self.sql, self.session_id, len(self.texts)
        result = conn.execute(sql.reserve, {"sid": session_id, "n": n, "now": self.now})
        end = result.lastrowid if sql.is_mysql else result.scalar_one()
        if self.key is not None:
            self._claim_key(conn)
        start = end - n
        self.last_position = end - 1
        rows = [
            {
                "session_id": session_id,
                "position": start + offset,
                "message_data": head,
                "created_at": self.now,
                "chunk_count": len(rest),
            }
            for offset, (head, rest) in enumerate(self.pieces)
        ]
        conn.execute(sql.insert_items, rows if n > 1 else rows[0])
        if self.chunked:
            for offset, (_, rest) in enumerate(self.pieces):
                # One statement per chunk: each stays within the server's packet limit.
                for chunk in chunk_rows(session_id, start + offset, rest):
                    conn.execute(sql.insert_chunk, chunk)

    def _claim_key(self, conn: Executor) -> None:
        """Record the idempotency key under the row lock; roll back if the session has it."""
        params = {"sid": self.session_id, "key": self.key}
        if (conn.execute(self.sql.find_key, params)).first() is not None:
            raise _AlreadyStored
        conn.execute(
            self.sql.insert_key,
            {"session_id": self.session_id, "idempotency_key": self.key, "created_at": self.now},
        )

    def committed(self, conn: Connection) -> bool | None:
        """Whether the last try committed, asked on a new connection after a lost COMMIT."""
        if self.key is not None:
            # The key row commits with the batch and nothing else writes it.
            found = conn.execute(self.sql.key_stored, {"sid": self.session_id, "key": self.key})
            return found.first() is not None
        if self.one_statement:
            # Its positions came back with the statement, which was lost: look for the
            # batch's last row by this try's timestamp.
            params: dict[str, Any] = {"sid": self.session_id, "now": self.now}
            found_row = conn.execute(self.sql.item_written_at, params).first()
            if found_row is not None and found_row.message_data == self.pieces[-1][0]:
                return True
            return None
        # The batch's last row, with this try's timestamp, is there only if the try
        # committed; if it is missing it may also have been popped since.
        params = {"sid": self.session_id, "pos": self.last_position}
        row = (conn.execute(self.sql.item_written, params)).first()
        if row is not None and row.created_at == self.now and row[0] == self.pieces[-1][0]:
            return True
        return None


class _AlreadyStored(Exception):
    """Raised inside an add's transaction to roll it back: the session has the batch's key."""


async def get(db: Database, session_id: str, limit: int | None, *, retry: RetryPolicy) -> list[Any]:
    """Return the session's items in order: all, or the latest ``limit``."""
    if limit == 0:
        return []
    if limit is not None and limit > _MAX_LIMIT:
        # No session holds more items than a BIGINT position can count, and no driver
        # binds a larger LIMIT: a limit past that means "everything".
        limit = None
    sql = db.statements
    params: dict[str, Any]
    if limit is None:
        statement, params = sql.select_all, {"sid": session_id}
    else:
        statement, params = sql.select_tail, {"sid": session_id, "lim": limit}
    fetched = await fetch_on_driver(db.engine, sql, statement, params)
    if fetched is not None and not any(row[2] for row in fetched):
        rows = fetched if limit is None else fetched[::-1]
        return decode_rows(session_id, [(row[0], row[1]) for row in rows])

    def work(connection: Connection) -> list[tuple[int, str]]:
        conn = executor(connection, sql, read_only=True)
        rows = conn.execute(statement, params).all()
        return assemble(conn, sql, session_id, rows if limit is None else rows[::-1])

    return decode_rows(session_id, await run_read(db, work, retry=retry))


async def pop(db: Database, session_id: str, *, retry: RetryPolicy) -> Any | None:
    """Remove and return the session's last item that decodes, or ``None``."""
    try:
        corrupt, item = await run_write(
            db, functools.partial(_pop, db.statements, session_id), retry=retry
        )
    except _ChunkedPop:
        work = functools.partial(_pop, db.statements, session_id, read_first=True)
        corrupt, item = await run_write(db, work, retry=retry)
    # Corrupt rows removed on the way are logged and counted once, after the commit.
    decode_positioned(session_id, corrupt)
    return item


def _pop(
    sql: Statements, session_id: str, connection: Connection, *, read_first: bool = False
) -> tuple[list[tuple[int, str]], Any | None]:
    """Pop rows until one decodes: the corrupt rows removed, and the item (or ``None``)."""
    conn = executor(connection, sql)
    corrupt: list[tuple[int, str]] = []
    while True:
        row = _pop_one(sql, session_id, conn, read_first=read_first)
        if row is None:
            return corrupt, None
        try:
            return corrupt, decode_item(row[1])
        except ValueError:
            corrupt.append(row)


def _pop_one(
    sql: Statements, session_id: str, conn: Executor, *, read_first: bool
) -> tuple[int, str] | None:
    claimed = conn.execute(sql.claim_pop, {"sid": session_id, "now": utcnow()})
    if claimed.rowcount == 0:
        return None
    # MariaDB (10.3+) has DELETE ... RETURNING with a subquery on the same table, and
    # saves a statement with it (bench/: pop); MySQL has neither.
    text = None
    if read_first or (sql.is_mysql and not conn.dialect.delete_returning):
        row = (conn.execute(sql.select_last_for_update, {"sid": session_id})).first()
        if row is not None:
            # Chunks go with the row (ON DELETE CASCADE): read them first.
            [(_, text)] = assemble(conn, sql, session_id, [row])
            conn.execute(sql.delete_item, {"sid": session_id, "pos": row[0]})
    else:
        row = (conn.execute(sql.delete_last_returning, {"sid": session_id})).first()
        if row is not None and row[2]:  # its chunk count
            # Its chunks were deleted with it: roll back and read them first.
            raise _ChunkedPop
    if row is None:
        # The count said there were items but none are left (rows deleted by hand): make
        # the count true again rather than report an item that is not there.
        conn.execute(sql.reset_count, {"sid": session_id})
        return None
    position, head = row[0], row[1]
    return int(position), str(head if text is None else text)


class _ChunkedPop(Exception):
    """Raised inside a pop's transaction to roll it back: the item has chunks to read first."""


def delete_session(
    conn: Executor,
    sql: Statements,
    session_id: str,
    condition: ColumnElement[bool] | None = None,
) -> int | None:
    """Delete a session and its items in ``conn``'s transaction; return its item count.

    The session's row is locked first, as every writer locks it, so a concurrent add either
    lands before the delete or creates the session anew after it. With a ``condition``
    (checked under the lock) a session that no longer matches is left alone. Returns
    ``None`` when no session row was deleted; the items of an id without a session row are
    deleted all the same when there is no condition.
    """
    params = {"sid": session_id}
    lock = sql.lock_session if condition is None else sql.lock_session_where(condition)
    count = (conn.execute(lock, params)).scalar_one_or_none()
    if count is None and condition is not None:
        return None
    conn.execute(sql.delete_items, params)
    conn.execute(sql.delete_session, params)
    return None if count is None else int(count)


async def clear(db: Database, session_id: str, *, retry: RetryPolicy) -> int | None:
    """Delete the session and all its items, as one transaction; return its item count."""
    sql = db.statements

    def work(conn: Connection) -> int | None:
        return delete_session(executor(conn, sql), sql, session_id)

    return await run_write(db, work, retry=retry)


def record_and_trim(
    conn: Executor,
    sql: Statements,
    session_id: str,
    *,
    record: dict[str, Any] | None,
    keep_last: int | None,
) -> None:
    """What a write does last, under the session's row lock: fill the record, then trim."""
    if record:
        # Only fills what the session does not have yet: later changes go through
        # SessionStore.update_session and are never overwritten by a stale handle.
        conn.execute(sql.fill_record(record), {"sid": session_id})
    if keep_last is not None:
        trim_within(conn, sql, session_id, keep_last)


def trim_within(conn: Executor, sql: Statements, session_id: str, keep_last: int) -> int:
    """Delete the session's items older than its latest ``keep_last``, in ``conn``'s transaction.

    Takes the session's row lock first (a no-op if the caller holds it already) and keeps
    ``item_count`` exact. Returns how many items were deleted.
    """
    params: dict[str, Any] = {"sid": session_id}
    count = (conn.execute(sql.lock_session, params)).scalar_one_or_none()
    if count is None or count <= keep_last:
        return 0
    if keep_last == 0:
        removed = count_deleted(conn, sql.delete_items_counted, params)
    else:
        cutoff = (
            conn.execute(sql.nth_newest, {**params, "skip": keep_last - 1})
        ).scalar_one_or_none()
        if cutoff is None:
            return 0
        removed = count_deleted(conn, sql.delete_before_counted, {**params, "cutoff": cutoff})
    if removed:
        conn.execute(sql.subtract_count, {**params, "removed": removed})
    return removed


def count_deleted(conn: Executor | Connection, counted: CountedDelete, params: Any) -> int:
    """Run a DELETE in ``conn``'s transaction; return how many rows it deleted.

    The count comes from the statement (its ``RETURNING`` rows, or a locked count just
    before it where the dialect has no ``DELETE ... RETURNING``), not from the driver's
    rowcount, which MariaDB's Spider engine reports as 0 (see ``CountedDelete``).
    """
    if conn.dialect.delete_returning:
        return len(conn.execute(counted.returning, params).all())
    removed = int(conn.execute(counted.count_locked, params).scalar_one())
    if removed:
        conn.execute(counted.plain, params)
    return removed


async def trim(db: Database, session_id: str, keep_last: int, *, retry: RetryPolicy) -> int:
    """Keep only the session's latest ``keep_last`` items, as one transaction.

    Returns how many items were deleted (0 for an unknown or short session).
    """
    sql = db.statements

    def work(conn: Connection) -> int:
        return trim_within(conn, sql, session_id, keep_last)

    return await run_write(db, work, retry=retry)
