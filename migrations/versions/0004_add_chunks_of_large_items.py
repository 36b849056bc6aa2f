"""Store large items in chunks: a chunks table and the messages' chunk_count.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Adds ``chunk_count`` (INTEGER NOT NULL DEFAULT 0) to the messages table, so every existing
row reads as a whole item kept inline, and creates ``<messages>_chunks`` (the name
convostore.schema.chunks_table_name gives, written out again below): the pieces of items
too large for one row, primary key ``(session_id, position, chunk_no)``, with a foreign key
to the message row ``ON DELETE CASCADE``. On PostgreSQL 11+, MariaDB 10.3+ and SQLite, adding
a column with a constant default does not rewrite the messages table.

Rules for convostore revisions (docs/migrations.md): a released revision never changes; table
names come from the migration context (users choose them), never from literals; column types
are written out here, not imported from convostore.schema, so this file keeps meaning what it
meant when it was released.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from convostore.migrate import revision_names

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _chunks_table(messages: str) -> str:
    """``<messages>_chunks``, shortened with a hash of the full name past 63 characters."""
    name = f"{messages}_chunks"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(messages.encode("utf-8")).hexdigest()[:12]
    return f"{messages[:43]}_{digest}_chunks"


def _types() -> tuple[Any, Any]:
    """Column types of the session id and of the payload text on this dialect."""
    dialect = op.get_context().dialect
    if dialect.name in ("mysql", "mariadb"):
        mariadb = dialect.name == "mariadb" or getattr(dialect, "is_mariadb", False)
        collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
        return (
            mysql.VARCHAR(255, charset="utf8mb4", collation=collation),
            mysql.LONGTEXT(charset="utf8mb4"),
        )
    return sa.String(255), sa.Text()


def upgrade() -> None:
    _sessions, messages, schema = revision_names(op.get_context())
    chunks = _chunks_table(messages)
    session_id, payload = _types()
    op.add_column(
        messages,
        sa.Column("chunk_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        schema=schema,
    )
    referred = f"{schema}.{messages}" if schema else messages
    op.create_table(
        chunks,
        sa.Column("session_id", session_id, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("data", payload, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "position", "chunk_no", name=op.f(f"pk_{chunks}")),
        sa.ForeignKeyConstraint(
            ["session_id", "position"],
            [f"{referred}.session_id", f"{referred}.position"],
            name=op.f(f"fk_{chunks}_session_id_{messages}"),
            ondelete="CASCADE",
        ),
        schema=schema,
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    _sessions, messages, schema = revision_names(op.get_context())
    op.drop_table(_chunks_table(messages), schema=schema)
    # SQLite cannot drop a column in place: batch mode copies the table.
    with op.batch_alter_table(messages, schema=schema) as batch:
        batch.drop_column("chunk_count")
