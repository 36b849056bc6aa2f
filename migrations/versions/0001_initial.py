"""Create the sessions and messages tables (or adopt the Agents SDK's).

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Creates the two tables of ``convostore.schema.build_tables`` for the configured names. When
tables of those names already hold the Agents SDK's ``SQLAlchemySession`` layout
(``sessions(session_id, created_at, updated_at)``, ``messages(id, session_id, message_data,
created_at)``), they are converted instead: each session's messages get positions 0, 1, ...
in the SDK's own order (``created_at``, then ``id``), and nothing is lost. Adoption needs a
database connection; ``--sql`` (offline) output only creates the tables.

The column types are written out below rather than imported from convostore.schema, so this
revision keeps building what it built when it was released; the drift test checks that the
chain of revisions still matches ``build_tables``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

from convostore.errors import SchemaError
from convostore.migrate import revision_names

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SDK_SESSIONS_COLUMNS = {"session_id", "created_at", "updated_at"}
_SDK_MESSAGES_COLUMNS = {"id", "session_id", "message_data", "created_at"}


def _types() -> tuple[Any, Any, Any]:
    """Column types of the session id, the payload and the timestamps on this dialect."""
    dialect = op.get_context().dialect
    if dialect.name in ("mysql", "mariadb"):
        # Byte-for-byte comparison that also counts trailing spaces (NO PAD), per server.
        mariadb = dialect.name == "mariadb" or getattr(dialect, "is_mariadb", False)
        collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
        return (
            mysql.VARCHAR(255, charset="utf8mb4", collation=collation),
            mysql.LONGTEXT(charset="utf8mb4"),
            mysql.DATETIME(fsp=6),
        )
    return sa.String(255), sa.Text(), sa.DateTime(timezone=True)


def _create(sessions: str, messages: str, schema: str | None) -> None:
    session_id, payload, timestamp = _types()
    op.create_table(
        sessions,
        sa.Column("session_id", session_id, nullable=False),
        sa.Column("next_position", sa.BigInteger(), nullable=False),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f(f"pk_{sessions}")),
        schema=schema,
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    referred = f"{schema}.{sessions}" if schema else sessions
    op.create_table(
        messages,
        sa.Column("session_id", session_id, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("message_data", payload, nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "position", name=op.f(f"pk_{messages}")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            [f"{referred}.session_id"],
            name=op.f(f"fk_{messages}_session_id_{sessions}"),
            ondelete="CASCADE",
        ),
        schema=schema,
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def _columns(inspector: Any, table: str, schema: str | None) -> set[str] | None:
    if not inspector.has_table(table, schema=schema):
        return None
    return {column["name"] for column in inspector.get_columns(table, schema=schema)}


def upgrade() -> None:
    sessions, messages, schema = revision_names(op.get_context())
    if context.is_offline_mode():
        _create(sessions, messages, schema)
        return
    inspector = sa.inspect(op.get_bind())
    existing_sessions = _columns(inspector, sessions, schema)
    existing_messages = _columns(inspector, messages, schema)
    if existing_sessions is None and existing_messages is None:
        _create(sessions, messages, schema)
    elif (
        existing_sessions is not None
        and existing_messages is not None
        and existing_sessions >= _SDK_SESSIONS_COLUMNS
        and "next_position" not in existing_sessions
        and existing_messages >= _SDK_MESSAGES_COLUMNS
        and "position" not in existing_messages
    ):
        _adopt_sdk_tables(sessions, messages, schema)
    else:
        raise SchemaError(
            f"tables {sessions!r}/{messages!r} already exist and are neither convostore's "
            f"(at a recorded revision) nor the Agents SDK's layout; choose other table names"
        )


def _adopt_sdk_tables(sessions: str, messages: str, schema: str | None) -> None:
    """Convert the SDK's tables: rename them aside, create ours, copy in order, drop theirs."""
    old_sessions = f"{sessions[:50]}_sdk_old_s"
    old_messages = f"{messages[:50]}_sdk_old_m"
    op.rename_table(messages, old_messages, schema=schema)
    op.rename_table(sessions, old_sessions, schema=schema)
    _create(sessions, messages, schema)

    old_s = sa.table(
        old_sessions,
        sa.column("session_id"),
        sa.column("created_at"),
        sa.column("updated_at"),
        schema=schema,
    )
    old_m = sa.table(
        old_messages,
        sa.column("id"),
        sa.column("session_id"),
        sa.column("message_data"),
        sa.column("created_at"),
        schema=schema,
    )
    new_s = sa.table(
        sessions,
        *(sa.column(c) for c in ("session_id", "next_position", "item_count")),
        *(sa.column(c) for c in ("created_at", "updated_at")),
        schema=schema,
    )
    new_m = sa.table(
        messages,
        *(sa.column(c) for c in ("session_id", "position", "message_data", "created_at")),
        schema=schema,
    )

    def timestamp(column: Any) -> Any:
        if op.get_context().dialect.name == "sqlite":
            # The SDK stores SQLite's CURRENT_TIMESTAMP text (no fraction); give it the
            # microsecond form SQLAlchemy writes, so the column sorts as one format.
            return sa.func.strftime("%Y-%m-%d %H:%M:%f", column).concat("000")
        return column

    counts = (
        sa.select(
            old_m.c.session_id,
            sa.func.count().label("n"),
            sa.func.min(old_m.c.created_at).label("first"),
            sa.func.max(old_m.c.created_at).label("last"),
        )
        .group_by(old_m.c.session_id)
        .subquery("counts")
    )
    n = sa.func.coalesce(counts.c.n, 0)
    columns = ["session_id", "next_position", "item_count", "created_at", "updated_at"]
    op.execute(
        new_s.insert().from_select(
            columns,
            sa.select(
                old_s.c.session_id,
                n,
                n,
                timestamp(old_s.c.created_at),
                timestamp(old_s.c.updated_at),
            ).select_from(old_s.outerjoin(counts, counts.c.session_id == old_s.c.session_id)),
        )
    )
    # Messages whose session row is missing (the SDK's SQLite tables do not enforce the
    # foreign key) keep their session: it is created from them.
    op.execute(
        new_s.insert().from_select(
            columns,
            sa.select(
                counts.c.session_id,
                counts.c.n,
                counts.c.n,
                timestamp(counts.c.first),
                timestamp(counts.c.last),
            ).where(~sa.exists().where(old_s.c.session_id == counts.c.session_id)),
        )
    )
    position = (
        sa.func.row_number().over(
            partition_by=old_m.c.session_id, order_by=(old_m.c.created_at, old_m.c.id)
        )
        - 1
    )
    op.execute(
        new_m.insert().from_select(
            ["session_id", "position", "message_data", "created_at"],
            sa.select(
                old_m.c.session_id, position, old_m.c.message_data, timestamp(old_m.c.created_at)
            ),
        )
    )
    op.drop_table(old_messages, schema=schema)
    op.drop_table(old_sessions, schema=schema)


def downgrade() -> None:
    sessions, messages, schema = revision_names(op.get_context())
    op.drop_table(messages, schema=schema)
    op.drop_table(sessions, schema=schema)
