"""The four session operations as SQL, for one engine and one set of tables.

Each operation is one transaction (see :mod:`convostore.transaction`), and every writer of a
session first takes that session's row lock, so writers of one session run one after the
other while writers of different sessions never wait for each other:

- ``add``: bump the session's ``next_position`` and ``item_count`` by the batch size and read
  the new position in the same statement (an upsert with ``RETURNING`` on PostgreSQL and
  SQLite; on MySQL and MariaDB ``ON DUPLICATE KEY UPDATE`` through ``LAST_INSERT_ID(expr)``),
  then insert the batch at the positions just reserved. Positions are handed out inside the
  transaction, so order never depends on a clock.
- ``pop``: decrement the session's ``item_count`` where it is positive (taking the row lock;
  an empty session is left alone), then delete the row with the highest position and
  return it (``DELETE ... RETURNING`` where the dialect has it; otherwise ``SELECT ... FOR
  UPDATE`` and ``DELETE``).
- ``clear``: delete the session row (taking its lock), then its messages.
- ``get``: one indexed range scan on the messages primary key.

Statements are built once per :class:`Operations` and bound with parameters, so SQLAlchemy's
compiled cache serves every call after the first; no value is ever put into SQL text.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Text, bindparam, delete, func, insert, select, true, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from .chunks import (
    DEFAULT_CHUNK_CHARS,
    MYSQL_STATEMENT_OVERHEAD,
    assemble,
    chunk_chars_for_packet,
    chunk_rows,
    read_whole,
    split,
)
from .codec import decode_item
from .idempotency import claim_key, key_stored
from .integrity import record_skipped
from .schema import Tables
from .transaction import DEFAULT_RETRY, RetryPolicy, Verify, run_read, run_write

__all__ = ["Operations", "shared_operations", "utcnow"]

logger = logging.getLogger("convostore")

T = TypeVar("T")

# Below this many bytes a batch cannot reach any max_allowed_packet a server allows (1 MB
# is the smallest MySQL and MariaDB default there has ever been), so the setting is not read.
_MYSQL_PACKET_FLOOR = 1 << 20
# The largest LIMIT every backend binds: a signed 64-bit integer.
_MAX_LIMIT = (1 << 63) - 1

_max_packet_cache: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def utcnow() -> dt.datetime:
    """Return the current time in UTC; the one clock convostore reads (for timestamps only)."""
    return dt.datetime.now(dt.timezone.utc)


class Operations:
    """SQL for the session operations on one engine and one set of tables.

    Shared by every session on the same engine and tables; holds no per-session state.
    """

    def __init__(
        self, engine: AsyncEngine, tables: Tables, *, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.retry = retry
        self.dialect = engine.dialect.name
        self._mysql = self.dialect in ("mysql", "mariadb")
        # A read is one statement, atomic on its own. In a transaction, asyncpg would spend
        # two more round trips on it (BEGIN, and ROLLBACK when the connection goes back to
        # the pool), which cost a third of a tail read (bench/, docs/performance.md).
        # Elsewhere autocommit would cost round trips instead (MySQL: SET autocommit).
        self._read_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else engine
        )
        s, m = tables.sessions, tables.messages
        sid = bindparam("sid", type_=s.c.session_id.type)

        self._reserve = self._build_reserve()
        self._append = self._build_append() if self.dialect == "postgresql" else None
        self._insert_messages = insert(m)
        self._insert_chunk = insert(tables.chunks)
        # Taking the session's row lock and counting the pop in one statement; a session
        # with no items is left alone (and not locked).
        self._claim_pop = (
            update(s)
            .where(s.c.session_id == sid, s.c.item_count > 0)
            .values(updated_at=bindparam("now"), item_count=s.c.item_count - 1)
        )
        self._reset_count = update(s).where(s.c.session_id == sid).values(item_count=0)
        self._select_all = (
            select(m.c.position, m.c.message_data, m.c.chunk_count)
            .where(m.c.session_id == sid)
            .order_by(m.c.position)
        )
        self._select_tail = (
            select(m.c.position, m.c.message_data, m.c.chunk_count)
            .where(m.c.session_id == sid)
            .order_by(m.c.position.desc())
            .limit(bindparam("lim"))
        )
        last_position = (
            select(func.max(m.c.position)).where(m.c.session_id == sid).scalar_subquery()
        )
        self._delete_last_returning = (
            delete(m)
            .where(m.c.session_id == sid, m.c.position == last_position)
            .returning(m.c.position, m.c.message_data, m.c.chunk_count)
        )
        self._select_last_for_update = (
            select(m.c.position, m.c.message_data, m.c.chunk_count)
            .where(m.c.session_id == sid)
            .order_by(m.c.position.desc())
            .limit(1)
            .with_for_update()
        )
        self._delete_one = delete(m).where(m.c.session_id == sid, m.c.position == bindparam("pos"))
        self._delete_session = delete(s).where(s.c.session_id == sid)
        self._delete_messages = delete(m).where(m.c.session_id == sid)

    def _build_reserve(self) -> Insert:
        """The upsert that reserves ``n`` positions and yields the new ``next_position``."""
        s = self.tables.sessions
        n = bindparam("n", type_=s.c.next_position.type)
        row: dict[str, Any] = {
            "session_id": bindparam("sid"),
            "created_at": bindparam("now"),
            "updated_at": bindparam("now"),
        }
        if self._mysql:
            stmt = mysql_insert(s).values(next_position=func.last_insert_id(n), item_count=n, **row)
            return stmt.on_duplicate_key_update(
                next_position=func.last_insert_id(s.c.next_position + n),
                item_count=s.c.item_count + n,
                updated_at=stmt.inserted.updated_at,
            )
        upsert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        stmt2 = upsert(s).values(next_position=n, item_count=n, **row)
        return stmt2.on_conflict_do_update(
            index_elements=[s.c.session_id],
            set_={
                "next_position": s.c.next_position + stmt2.excluded.next_position,
                "item_count": s.c.item_count + stmt2.excluded.item_count,
                "updated_at": stmt2.excluded.updated_at,
            },
        ).returning(s.c.next_position)

    def _build_append(self) -> Insert:
        """PostgreSQL: reserve the positions and insert the batch in one statement.

        The reserving upsert runs as a data-modifying CTE, and the batch comes as one array
        parameter numbered by ``unnest ... WITH ORDINALITY``, so one prepared statement
        serves every batch size. This saves a round trip and a statement execution per
        append (bench/, docs/performance.md). The statement returns the new positions.
        """
        m = self.tables.messages
        reserved = self._reserve.cte("reserved")
        batch = (
            func.unnest(bindparam("texts", type_=ARRAY(Text())))
            .table_valued("message_data", with_ordinality="ordinal")
            .render_derived()
        )
        rows = (
            select(
                bindparam("sid", type_=m.c.session_id.type),
                reserved.c.next_position
                - bindparam("n", type_=m.c.position.type)
                + batch.c.ordinal
                - 1,
                batch.c.message_data,
                bindparam("now", type_=m.c.created_at.type),
            )
            .select_from(reserved)
            .join(batch, true())
        )
        columns = ["session_id", "position", "message_data", "created_at"]
        return insert(m).from_select(columns, rows).add_cte(reserved).returning(m.c.position)

    # -- writes ---------------------------------------------------------------------------

    async def _write(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, verify: Verify | None = None
    ) -> T:
        """Run ``work`` as one write transaction with this object's retry policy."""
        return await run_write(self.engine, work, retry=self.retry, verify=verify)

    async def add(
        self,
        session_id: str,
        texts: Sequence[str],
        *,
        then: Callable[[AsyncConnection], Awaitable[None]] | None = None,
        key: str | None = None,
    ) -> None:
        """Append the encoded items ``texts`` to the session, as one transaction.

        ``then`` runs more SQL in the same transaction, after the insert and under the
        session's row lock (the store uses it to trim and to set a new session's metadata).
        With an idempotency ``key`` (validated by the caller), a batch whose key the session
        already has is not written again (see :mod:`convostore.idempotency`).
        """
        if not texts:
            return
        # Items longer than one chunk keep their head in the row, the rest in the chunks table.
        size = await self.chunk_chars(texts)
        split_texts = [split(text, size) for text in texts]
        heads = [head for head, _ in split_texts]
        chunked = any(rest for _, rest in split_texts)
        n = len(texts)
        last_try: dict[str, Any] = {}

        async def work(conn: AsyncConnection) -> None:
            now = utcnow()
            if self._append is not None and not chunked:
                params = {"sid": session_id, "n": n, "now": now, "texts": list(texts)}
                positions = (await conn.execute(self._append, params)).scalars().all()
                last_try.update(position=max(positions), now=now)
                # The append took the session's row lock: same-key retries queue up here.
                if key is not None and not await claim_key(conn, self.tables, session_id, key, now):
                    raise _AlreadyStored
                if then is not None:
                    await then(conn)
                return
            result = await conn.execute(self._reserve, {"sid": session_id, "n": n, "now": now})
            end = result.lastrowid if self._mysql else result.scalar_one()
            if key is not None and not await claim_key(conn, self.tables, session_id, key, now):
                raise _AlreadyStored
            start = end - n
            last_try.update(position=end - 1, now=now)
            rows = [
                {
                    "session_id": session_id,
                    "position": start + offset,
                    "message_data": head,
                    "created_at": now,
                    "chunk_count": len(rest),
                }
                for offset, (head, rest) in enumerate(split_texts)
            ]
            await conn.execute(self._insert_messages, rows if n > 1 else rows[0])
            for offset, (_, rest) in enumerate(split_texts):
                # One statement per chunk: each stays within the server's packet limit.
                for chunk in chunk_rows(session_id, start + offset, rest):
                    await conn.execute(self._insert_chunk, chunk)
            if then is not None:
                await then(conn)

        async def committed(conn: AsyncConnection) -> bool | None:
            if key is not None:
                # The key row commits with the batch and nothing else writes it.
                return await key_stored(conn, self.tables, session_id, key)
            # The COMMIT was lost. The batch's last row, with this try's timestamp, is there
            # only if the try committed; if it is missing it may also have been popped since.
            m = self.tables.messages
            result = await conn.execute(
                select(m.c.message_data, m.c.created_at).where(
                    m.c.session_id == session_id, m.c.position == last_try["position"]
                )
            )
            row = result.first()
            if row is not None and row.created_at == last_try["now"] and row[0] == heads[-1]:
                return True
            return None

        try:
            await self._write(work, verify=committed)
        except _AlreadyStored:
            # A retry of a batch already stored: its transaction was rolled back, and that
            # is success for the caller.
            return

    async def pop(self, session_id: str) -> tuple[int, str] | None:
        """Remove the session's last item; return its position and text, or ``None``."""

        async def work(conn: AsyncConnection, *, read_first: bool) -> tuple[int, str] | None:
            claimed = await conn.execute(self._claim_pop, {"sid": session_id, "now": utcnow()})
            if claimed.rowcount == 0:
                return None
            # MariaDB (10.3+) has DELETE ... RETURNING with a subquery on the same table, and
            # saves a statement with it (bench/: pop); MySQL has neither.
            text = None
            if read_first or (self._mysql and not conn.dialect.delete_returning):
                result = await conn.execute(self._select_last_for_update, {"sid": session_id})
                row = result.first()
                if row is not None:
                    # Chunks go with the row (ON DELETE CASCADE): read them first.
                    [(_, text)] = await assemble(conn, self.tables, session_id, [row])
                    await conn.execute(self._delete_one, {"sid": session_id, "pos": row.position})
            else:
                result = await conn.execute(self._delete_last_returning, {"sid": session_id})
                row = result.first()
                if row is not None and row.chunk_count:
                    # Its chunks were deleted with it: roll back and read them first.
                    raise _ChunkedPop
            if row is None:
                # The count said there were items but none are left (rows deleted by hand):
                # make the count true again rather than report an item that is not there.
                await conn.execute(self._reset_count, {"sid": session_id})
                return None
            return int(row.position), str(row.message_data if text is None else text)

        try:
            return await self._write(functools.partial(work, read_first=False))
        except _ChunkedPop:
            return await self._write(functools.partial(work, read_first=True))

    async def clear(self, session_id: str) -> None:
        """Delete the session and all its items, as one transaction."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(self._delete_session, {"sid": session_id})
            await conn.execute(self._delete_messages, {"sid": session_id})

        await self._write(work)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, session_id: str, limit: int | None) -> list[Any]:
        """Return the session's items in order: all, or the latest ``limit``."""
        if limit == 0:
            return []
        if limit is not None and limit > _MAX_LIMIT:
            # No session holds more items than a BIGINT position can count, and no driver
            # binds a larger LIMIT: a limit past that means "everything".
            limit = None

        async def work(conn: AsyncConnection) -> Sequence[Any]:
            if limit is None:
                result = await conn.execute(self._select_all, {"sid": session_id})
                rows = result.all()
            else:
                result = await conn.execute(self._select_tail, {"sid": session_id, "lim": limit})
                rows = result.all()[::-1]
            return await assemble(conn, self.tables, session_id, rows)

        rows = await read_whole(self._read_engine, work, retry=self.retry)
        return self.decode_rows(session_id, rows)

    @staticmethod
    def decode_rows(session_id: str, rows: Sequence[Any]) -> list[Any]:
        """Decode ``(position, message_data)`` rows, skipping corrupt ones (logged, counted)."""
        items = []
        for position, text in rows:
            try:
                items.append(decode_item(text))
            except ValueError as exc:
                record_skipped()
                logger.warning(
                    "convostore: skipped a corrupt item in session %r at position %d: %s",
                    session_id,
                    position,
                    exc,
                )
        return items

    # -- chunk size -----------------------------------------------------------------------

    async def chunk_chars(self, texts: Sequence[str] = ()) -> int:
        """Characters of an item kept per row; longer items are stored in chunks.

        On MySQL/MariaDB it follows the server's ``max_allowed_packet`` (read once per
        engine, and only when one of ``texts``, if given, could come near it).
        """
        if not self._mysql:
            return DEFAULT_CHUNK_CHARS
        largest = max((len(text) for text in texts), default=None)
        # A character is at most 4 bytes in the statement; skip the query when even that
        # cannot reach the smallest packet limit a server has.
        if largest is not None and largest * 4 + MYSQL_STATEMENT_OVERHEAD <= _MYSQL_PACKET_FLOOR:
            return chunk_chars_for_packet(_MYSQL_PACKET_FLOOR)
        return chunk_chars_for_packet(await self._mysql_max_packet())

    async def _mysql_max_packet(self) -> int:
        sync_engine = self.engine.sync_engine
        cached = _max_packet_cache.get(sync_engine)
        if cached is None:

            async def work(conn: AsyncConnection) -> int:
                result = await conn.exec_driver_sql("SELECT @@max_allowed_packet")
                return int(result.scalar_one())

            cached = _max_packet_cache[sync_engine] = await run_read(self.engine, work)
        return cached


class _ChunkedPop(Exception):
    """Raised inside a pop's transaction to roll it back: the item has chunks to read first."""


class _AlreadyStored(Exception):
    """Raised inside an add's transaction to roll it back: the session has the batch's key."""


def shared_operations(
    engine: AsyncEngine, tables: Tables, retry: RetryPolicy = DEFAULT_RETRY
) -> Operations:
    """Return the one :class:`Operations` for this engine, table set and retry policy.

    Sessions on the same engine and tables share it, so its statements are built once
    however many sessions an application opens.
    """
    # Kept on the engine itself: a weak-keyed map would be kept alive by its own values,
    # which point back at the engine.
    cache = vars(engine.sync_engine).setdefault("_convostore_operations", {})
    per_engine: dict[tuple[Tables, RetryPolicy], Operations] = cache
    ops = per_engine.get((tables, retry))
    if ops is None:
        ops = per_engine[(tables, retry)] = Operations(engine, tables, retry=retry)
    return ops
