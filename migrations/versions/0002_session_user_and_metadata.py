"""Add user_id and metadata to sessions, with indexes for listing and pruning.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Adds two nullable columns to the sessions table, so existing rows need no value:

- ``user_id``: the application's user, compared exactly (the session id's type);
- ``metadata``: a JSON object as compact text (``MEDIUMTEXT`` on MySQL/MariaDB);

and two indexes: ``(user_id, updated_at)`` for a user's sessions newest first and
``(updated_at)`` for listing every session by age and for pruning. On a large table the
index builds take a while; on PostgreSQL they lock writes to the sessions table meanwhile.

Rules for convostore revisions (docs/migrations.md): a released revision never changes; table
names come from the migration context (users choose them), never from literals; column types
are written out here, not imported from convostore.schema, so this file keeps meaning what it
meant when it was released.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from convostore.migrate import revision_names

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _types() -> tuple[Any, Any]:
    """Column types of ``user_id`` and ``metadata`` on this dialect."""
    dialect = op.get_context().dialect
    if dialect.name in ("mysql", "mariadb"):
        mariadb = dialect.name == "mariadb" or getattr(dialect, "is_mariadb", False)
        collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
        return (
            mysql.VARCHAR(255, charset="utf8mb4", collation=collation),
            mysql.MEDIUMTEXT(charset="utf8mb4"),
        )
    return sa.String(255), sa.Text()


def upgrade() -> None:
    sessions, _messages, schema = revision_names(op.get_context())
    user_id, metadata = _types()
    op.add_column(sessions, sa.Column("user_id", user_id, nullable=True), schema=schema)
    op.add_column(sessions, sa.Column("metadata", metadata, nullable=True), schema=schema)
    op.create_index(
        op.f(f"ix_{sessions}_user_id_updated_at"),
        sessions,
        ["user_id", "updated_at"],
        schema=schema,
    )
    op.create_index(op.f(f"ix_{sessions}_updated_at"), sessions, ["updated_at"], schema=schema)


def downgrade() -> None:
    sessions, _messages, schema = revision_names(op.get_context())
    op.drop_index(op.f(f"ix_{sessions}_updated_at"), table_name=sessions, schema=schema)
    op.drop_index(op.f(f"ix_{sessions}_user_id_updated_at"), table_name=sessions, schema=schema)
    op.drop_column(sessions, "metadata", schema=schema)
    op.drop_column(sessions, "user_id", schema=schema)
