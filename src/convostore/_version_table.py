"""A store's Alembic version table: read it, and drop it, on a caller's connection.

Shared by the programmatic API (``current``, ``drop_version_table``), env.py (which drops the
table once ``downgrade base`` empties it) and ``create_tables`` (which stamps it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

    from .migrate import MigrationOptions

__all__ = ["current_heads", "drop", "exists", "migration_context"]


def migration_context(conn: Connection, options: MigrationOptions) -> MigrationContext:
    """Return an Alembic context on ``conn`` that reads and writes the store's version table."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(
        conn,
        opts={"version_table": options.version_table, "version_table_schema": options.schema},
    )


def current_heads(conn: Connection, options: MigrationOptions) -> tuple[str, ...]:
    """Return the revisions the store's version table records (empty if there is none)."""
    return tuple(migration_context(conn, options).get_current_heads())


def exists(conn: Connection, options: MigrationOptions) -> bool:
    """Whether the store's version table exists."""
    return bool(inspect(conn).has_table(options.version_table, schema=options.schema))


def drop(conn: Connection, options: MigrationOptions) -> None:
    """Drop the store's version table if it exists."""
    Table(options.version_table, MetaData(), schema=options.schema).drop(conn, checkfirst=True)
