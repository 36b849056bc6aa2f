"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Rules for convostore revisions (docs/migrations.md): a released revision never changes; table
names come from the migration context (users choose them), never from literals; column types
are written out here, not imported from convostore.schema, so this file keeps meaning what it
meant when it was released.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def _names() -> tuple[str, str, str | None]:
    """The store's sessions table, messages table and schema, as env.py configured them."""
    names = op.get_context().opts.get("convostore") or {}
    return (
        names.get("sessions_table", "agent_sessions"),
        names.get("messages_table", "agent_messages"),
        names.get("schema"),
    )


def upgrade() -> None:
    sessions, messages, schema = _names()
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    sessions, messages, schema = _names()
    ${downgrades if downgrades else "pass"}
