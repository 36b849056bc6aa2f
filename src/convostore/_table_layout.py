"""Compare the tables a database holds with the [`Tables`][convostore.Tables] expected.

One comparison serves three readers: ``create_tables`` (refuse a foreign table of the same
name, such as the Agents SDK's), ``convostore doctor`` (say what is missing) and the drift
tests (``exact=True``: what ``alembic check`` compares, and the MySQL collations it does not).
Each difference is a typed finding whose ``str()`` is a sentence for the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Table, TypeDecorator, bindparam, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from ._db.schema import Tables
from .migrate import MigrationOptions

__all__ = [
    "Drift",
    "Finding",
    "MissingColumns",
    "MissingTable",
    "WrongCollation",
    "compare_layout",
]


@dataclass(frozen=True)
class Finding:
    """One way the database differs from the tables a store expects; ``str()`` says which."""

    table: str
    """The table it concerns."""


@dataclass(frozen=True)
class MissingTable(Finding):
    """The table does not exist."""

    def __str__(self) -> str:
        return f"table {self.table} is missing"


@dataclass(frozen=True)
class MissingColumns(Finding):
    """A table of the store's name exists without some of convostore's columns."""

    columns: tuple[str, ...]
    """The columns it lacks, sorted."""

    def __str__(self) -> str:
        return f"{self.table} lacks columns {', '.join(self.columns)}"


@dataclass(frozen=True)
class Drift(Finding):
    """A difference Alembic's ``compare_metadata`` found (``exact=True`` only)."""

    difference: Any
    """Alembic's own description, such as ``("add_column", schema, table, column)``."""

    def __str__(self) -> str:
        return f"{self.table} differs from convostore's schema: {self.difference!r}"


@dataclass(frozen=True)
class WrongCollation(Finding):
    """A MySQL/MariaDB column compares text otherwise than convostore needs (``exact=True``)."""

    column: str
    """The column's name."""

    found: str | None
    """The column's collation in the database (``None``: the column is missing)."""

    expected: str
    """The collation convostore's schema gives it."""

    def __str__(self) -> str:
        return f"{self.table}.{self.column} has collation {self.found}, not {self.expected}"


def compare_layout(conn: Connection, tables: Tables, *, exact: bool = False) -> list[Finding]:
    """Return how the database behind ``conn`` differs from ``tables`` (empty: not at all).

    By default it looks at what a foreign table of the same name would lack: that the
    sessions and messages tables exist, with every column convostore reads (extra columns
    are allowed). These two are the names a user picks and another library may share; the
    chunks and keys tables are named after them and only convostore writes them.

    With ``exact``, it also compares every table of the store as ``alembic check`` does
    (types, keys, indexes, with env.py's filters), and on MySQL/MariaDB each column's
    collation, which Alembic does not compare.
    """
    inspector = inspect(conn)
    findings: list[Finding] = []
    for table in (tables.sessions, tables.messages):
        if not inspector.has_table(table.name, schema=table.schema):
            findings.append(MissingTable(table.name))
            continue
        have = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
        lacking = tuple(sorted(set(table.c.keys()) - have))
        if lacking:
            findings.append(MissingColumns(table.name, lacking))
    if exact:
        findings.extend(_drift(conn, tables))
        if conn.dialect.name in ("mysql", "mariadb"):
            findings.extend(_collations(conn, tables))
    return findings


def _drift(conn: Connection, tables: Tables) -> list[Drift]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    options = MigrationOptions.for_tables(tables)
    context = MigrationContext.configure(conn, opts=options.context_options(conn))
    differences = compare_metadata(context, tables.metadata)
    return [Drift(_table_of(difference), difference) for difference in differences]


def _table_of(difference: Any) -> str:
    # Alembic describes a change as a tuple ("add_table", table), ("add_index", index),
    # ("add_column", schema, table name, column) ..., or as a list of ("modify_type",
    # schema, table name, column name, ...) tuples for one column.
    step = difference[0] if isinstance(difference, list) else difference
    if step[0].endswith("_column") or step[0].startswith("modify_"):
        return str(step[2])
    target = step[1]
    table = target if isinstance(target, Table) else getattr(target, "table", None)
    return str(getattr(table, "name", "?"))


def _collations(conn: Connection, tables: Tables) -> list[WrongCollation]:
    expected = {
        (table.name, column.name): collation
        for table in tables.metadata.sorted_tables
        for column in table.columns
        if (collation := _collation_of(column.type, conn.dialect))
    }
    query = text(
        "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME IN :tables"
    ).bindparams(bindparam("tables", expanding=True))
    rows = conn.execute(
        query,
        {"schema": tables.sessions.schema, "tables": sorted({name for name, _ in expected})},
    )
    found = {(table, column): collation for table, column, collation in rows}
    return [
        WrongCollation(table, column, found.get((table, column)), collation)
        for (table, column), collation in sorted(expected.items())
        if found.get((table, column)) != collation
    ]


def _collation_of(type_: TypeEngine[Any], dialect: Dialect) -> str | None:
    impl = type_.load_dialect_impl(dialect) if isinstance(type_, TypeDecorator) else type_
    collation = getattr(impl, "collation", None)
    return collation if isinstance(collation, str) else None
