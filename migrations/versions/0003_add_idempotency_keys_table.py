"""Add the idempotency-keys table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Creates ``<sessions>_keys`` (the name convostore.schema.keys_table_name gives, written out
again below): one row per idempotency key used by a keyed ``add_items`` on a session,
primary key ``(session_id, idempotency_key)``, ``created_at`` indexed for pruning, and a
foreign key to the session with ``ON DELETE CASCADE``. Existing tables are not touched.

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

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _keys_table(sessions: str) -> str:
    """``<sessions>_keys``, shortened with a hash of the full name past 63 characters."""
    name = f"{sessions}_keys"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(sessions.encode("utf-8")).hexdigest()[:12]
    return f"{sessions[:45]}_{digest}_keys"


def _types() -> tuple[Any, Any]:
    """Column types of the session id (and key) and of the timestamp on this dialect."""
    dialect = op.get_context().dialect
    if dialect.name in ("mysql", "mariadb"):
        mariadb = dialect.name == "mariadb" or getattr(dialect, "is_mariadb", False)
        collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
        return (
            mysql.VARCHAR(255, charset="utf8mb4", collation=collation),
            mysql.DATETIME(fsp=6),
        )
    return sa.String(255), sa.DateTime(timezone=True)


def upgrade() -> None:
    sessions, _messages, schema = revision_names(op.get_context())
    keys = _keys_table(sessions)
    identifier, timestamp = _types()
    referred = f"{schema}.{sessions}" if schema else sessions
    op.create_table(
        keys,
        sa.Column("session_id", identifier, nullable=False),
        sa.Column("idempotency_key", identifier, nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "idempotency_key", name=op.f(f"pk_{keys}")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            [f"{referred}.session_id"],
            name=op.f(f"fk_{keys}_session_id_{sessions}"),
            ondelete="CASCADE",
        ),
        schema=schema,
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index(op.f(f"ix_{keys}_created_at"), keys, ["created_at"], schema=schema)


def downgrade() -> None:
    sessions, _messages, schema = revision_names(op.get_context())
    keys = _keys_table(sessions)
    op.drop_index(op.f(f"ix_{keys}_created_at"), table_name=keys, schema=schema)
    op.drop_table(keys, schema=schema)
