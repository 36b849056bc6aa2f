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
from convostore.migrate import revision_names

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    sessions, messages, schema = revision_names(op.get_context())
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    sessions, messages, schema = revision_names(op.get_context())
    ${downgrades if downgrades else "pass"}
