"""Every statement convostore runs on a session's rows, built once per table set and backend.

Statements are SQLAlchemy Core objects bound with parameters (never values in SQL text), so
SQLAlchemy's compiled cache serves every call after the first. Each one filters by equality
on ``session_id``: a session's rows are one index range, and the tables can be partitioned
or distributed by ``session_id`` without changing a query. This module builds statements;
it runs nothing (``convostore._db.history`` and the maintenance operations do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Delete, Insert, ReturningDelete, Update

from .dialect import appends_in_one_statement, is_mysql
from .schema import Tables

__all__ = ["CountedDelete", "Statements"]


@dataclass(frozen=True)
class CountedDelete:
    """A DELETE whose count comes from the statements themselves, never the driver's rowcount.

    Drivers report affected rows as the server says, and a server is not always right:
    MariaDB's Spider engine reports 0 for a DELETE it has carried out on its data nodes.
    So a count is the rows a ``DELETE ... RETURNING`` gives back (PostgreSQL, SQLite,
    MariaDB), or, on MySQL, which has no such statement, a ``count(*)`` of the same rows
    read ``FOR UPDATE`` (so no writer changes them) just before the plain DELETE.
    """

    returning: ReturningDelete[Any]
    """The DELETE, returning one column per deleted row."""

    count_locked: Select[Any]
    """``count(*)`` of the rows the DELETE would delete, locking them."""

    plain: Delete
    """The DELETE itself, run after ``count_locked``."""

    @classmethod
    def of(cls, statement: Delete, key: Any) -> CountedDelete:
        """Count ``statement``'s rows by the column ``key`` of its table."""
        count = select(func.count()).select_from(statement.table)
        if statement.whereclause is not None:
            count = count.where(statement.whereclause)
        return cls(statement.returning(key), count.with_for_update(), statement)


class Statements:
    """The statements of one table set on one backend.

    Parameter names are shared: ``sid`` (the session id), ``n`` (a batch size), ``now``
    (the write's timestamp), ``texts`` (PostgreSQL's batch array), ``lim``, ``pos``.
    """

    def __init__(self, tables: Tables, dialect: str) -> None:
        self.tables = tables
        self.dialect = dialect
        self.is_mysql = is_mysql(dialect)
        s, m, c, k = tables.sessions, tables.messages, tables.chunks, tables.keys
        sid = bindparam("sid", type_=s.c.session_id.type)
        item = (m.c.position, m.c.message_data, m.c.chunk_count)

        # -- add ----------------------------------------------------------------------
        self.reserve = self._reserve()
        """Reserve ``n`` positions (taking the session's row lock); yields the new
        ``next_position`` (MySQL: as the insert id, through ``LAST_INSERT_ID(expr)``)."""
        self.append = self._append() if appends_in_one_statement(dialect) else None
        """PostgreSQL: reserve and insert a batch in one statement; returns the positions."""
        self.insert_items = insert(m)
        self.insert_chunk = insert(c)
        self.find_key = (
            select(k.c.idempotency_key)
            .where(k.c.session_id == sid, k.c.idempotency_key == bindparam("key"))
            .with_for_update()
        )
        """A locking read, so on MySQL/MariaDB (repeatable read) it sees a key committed
        after this transaction began."""
        self.key_stored = select(k.c.idempotency_key).where(
            k.c.session_id == sid, k.c.idempotency_key == bindparam("key")
        )
        self.insert_key = insert(k)
        self.item_written = select(m.c.message_data, m.c.created_at).where(
            m.c.session_id == sid, m.c.position == bindparam("pos")
        )
        self.item_written_at = (
            select(m.c.position, m.c.message_data)
            .where(m.c.session_id == sid, m.c.created_at == bindparam("now"))
            .order_by(m.c.position.desc())
            .limit(1)
        )
        """The last item a write stamped with ``now`` (checking a lost autocommit append)."""

        # -- read ---------------------------------------------------------------------
        self.select_all = select(*item).where(m.c.session_id == sid).order_by(m.c.position)
        self.select_tail = (
            select(*item)
            .where(m.c.session_id == sid)
            .order_by(m.c.position.desc())
            .limit(bindparam("lim", type_=BigInteger()))
        )
        self.select_chunks = (
            select(c.c.position, c.c.data)
            .where(
                c.c.session_id == sid,
                c.c.position.in_(bindparam("positions", expanding=True)),
            )
            .order_by(c.c.position, c.c.chunk_no)
        )

        # -- pop ----------------------------------------------------------------------
        self.claim_pop = (
            update(s)
            .where(s.c.session_id == sid, s.c.item_count > 0)
            .values(updated_at=bindparam("now"), item_count=s.c.item_count - 1)
        )
        """Take the session's row lock and count the pop in one statement; a session with
        no items is left alone (and not locked)."""
        self.reset_count = update(s).where(s.c.session_id == sid).values(item_count=0)
        last_position = (
            select(func.max(m.c.position)).where(m.c.session_id == sid).scalar_subquery()
        )
        self.delete_last_returning = (
            delete(m).where(m.c.session_id == sid, m.c.position == last_position).returning(*item)
        )
        self.select_last_for_update = (
            select(*item)
            .where(m.c.session_id == sid)
            .order_by(m.c.position.desc())
            .limit(1)
            .with_for_update()
        )
        self.delete_item = delete(m).where(m.c.session_id == sid, m.c.position == bindparam("pos"))
        self.delete_chunks = delete(c).where(
            c.c.session_id == sid, c.c.position == bindparam("pos")
        )
        self.rewrite_item = (
            update(m)
            .where(m.c.session_id == sid, m.c.position == bindparam("pos"))
            .values(message_data=bindparam("head"), chunk_count=bindparam("pieces"))
        )

        # -- delete a session, trim ---------------------------------------------------
        self.lock_session = select(s.c.item_count).where(s.c.session_id == sid).with_for_update()
        self.delete_items = delete(m).where(m.c.session_id == sid)
        self.delete_items_counted = CountedDelete.of(self.delete_items, m.c.position)
        self.delete_session = delete(s).where(s.c.session_id == sid)
        self.nth_newest = (
            select(m.c.position)
            .where(m.c.session_id == sid)
            .order_by(m.c.position.desc())
            .limit(1)
            .offset(bindparam("skip", type_=BigInteger()))
        )
        self.delete_before = delete(m).where(
            m.c.session_id == sid, m.c.position < bindparam("cutoff")
        )
        self.delete_before_counted = CountedDelete.of(self.delete_before, m.c.position)
        self.subtract_count = (
            update(s)
            .where(s.c.session_id == sid)
            .values(item_count=s.c.item_count - bindparam("removed"))
        )

        # -- session records ----------------------------------------------------------
        self.record_columns = (
            s.c.session_id,
            s.c.created_at,
            s.c.updated_at,
            s.c.item_count,
            s.c.user_id,
            s.c.metadata,
        )
        """A session record's columns. Columns, not a statement: every statement here
        filters by ``session_id``, and listing adds conditions of its own."""
        self.session_info = select(*self.record_columns).where(s.c.session_id == sid)

    # -- statements that depend on the call ----------------------------------------------

    def fill_record(self, values: dict[str, Any]) -> Update:
        """Set ``user_id`` / ``metadata`` where the session has none yet (bound literals)."""
        s = self.tables.sessions
        return (
            update(s)
            .where(s.c.session_id == bindparam("sid"))
            .values(
                **{
                    name: func.coalesce(s.c[name], literal(value, type_=s.c[name].type))
                    for name, value in values.items()
                }
            )
        )

    def lock_session_where(self, condition: ColumnElement[bool]) -> Select[Any]:
        """Lock the session row if it still matches ``condition``; yields its item count."""
        return self.lock_session.where(condition)

    def sessions_where(
        self, condition: ColumnElement[bool], after: tuple[Any, str] | None
    ) -> Select[Any]:
        """Sessions matching ``condition``, oldest update first, after a keyset position."""
        s = self.tables.sessions
        stmt = select(s.c.session_id, s.c.item_count, s.c.updated_at).where(condition)
        if after is not None:
            at, last = after
            # The redundant bound starts the scan at the position in the index (see
            # convostore._ops.sessions.list_sessions).
            stmt = stmt.where(
                s.c.updated_at >= at,
                or_(s.c.updated_at > at, and_(s.c.updated_at == at, s.c.session_id > last)),
            )
        return stmt.order_by(s.c.updated_at, s.c.session_id).limit(
            bindparam("lim", type_=BigInteger())
        )

    # -- builders -------------------------------------------------------------------------

    def _reserve(self) -> Insert:
        s = self.tables.sessions
        n = bindparam("n", type_=s.c.next_position.type)
        row: dict[str, Any] = {
            "session_id": bindparam("sid"),
            "created_at": bindparam("now"),
            "updated_at": bindparam("now"),
        }
        if is_mysql(self.dialect):
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

    def _append(self) -> Insert:
        """PostgreSQL: reserve the positions and insert the batch in one statement.

        The reserving upsert runs as a data-modifying CTE, and the batch comes as one array
        parameter numbered by ``unnest ... WITH ORDINALITY``, so one prepared statement
        serves every batch size. This saves a round trip and a statement execution per
        append (bench/, docs/performance.md).
        """
        m = self.tables.messages
        reserved = self.reserve.cte("reserved")
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
