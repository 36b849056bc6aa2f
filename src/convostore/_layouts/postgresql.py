"""Hash partitions by ``session_id`` for a store's messages and chunks tables on PostgreSQL.

Every statement convostore runs on a session's items names one ``session_id``, so with the
messages table (and the chunks table, keyed by message) hash-partitioned on that column
each one reads and writes a single partition: the planner prunes the others. The keys and
sessions tables stay plain (they are keyed by session and small per row).

``partition_tables`` turns an existing store's two tables into partitioned ones, keeping
their rows, in the caller's transaction:

1. lock the sessions table against writes (``SHARE ROW EXCLUSIVE``: the foreign key added at
   the end needs that lock, and taking it first means a writer holding a session row cannot
   deadlock with the rebuild), then the messages and chunks tables (``ACCESS EXCLUSIVE``);
2. rename each old table and its indexes out of the way (index names are per schema);
3. create the new tables from convostore's own ``Table`` objects with
   ``postgresql_partition_by``, so the column types and the constraint names are the
   schema's, then one ``PARTITION OF`` table per remainder;
4. copy the rows, drop the old tables, add the foreign keys (checked once, over all rows),
   and ``ANALYZE``.

Foreign keys stay real: chunks → messages (``ON DELETE CASCADE``) references a partitioned
table, which PostgreSQL allows from version 12; messages → sessions references a plain one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import MetaData, Table, column, insert, select, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import AddConstraint, CreateTable

from .._db.schema import NAMING_CONVENTION, Tables, _suffixed
from ..errors import ConfigurationError, InvalidInputError, SchemaError

__all__ = [
    "MAX_PARTITIONS",
    "MIN_POSTGRESQL",
    "PARTITION_KEY",
    "Partitioning",
    "check_partitions",
    "derived_constraints",
    "partition_name",
    "partition_tables",
    "partitioning_of",
    "require_postgresql",
]

PARTITION_KEY = "HASH (session_id)"
"""The partition key, as PostgreSQL's ``pg_get_partkeydef`` writes it."""

MAX_PARTITIONS = 1024
"""The most partitions convostore makes; past a few hundred, planning time grows for little."""

MIN_POSTGRESQL = (12,)
"""The first PostgreSQL whose foreign keys may reference a partitioned table."""

_BOUND = re.compile(r"FOR VALUES WITH \(modulus (\d+), remainder (\d+)\)", re.IGNORECASE)


@dataclass(frozen=True)
class Partitioning:
    """How one table is laid out: plain, or partitioned (by what, into which parts)."""

    table: str
    """The table's name."""

    key: str | None
    """The partition key (``pg_get_partkeydef``), such as ``HASH (session_id)``; ``None``: plain."""

    bounds: tuple[tuple[int, int], ...] = ()
    """Each hash partition's ``(modulus, remainder)``, sorted."""

    @property
    def partitions(self) -> int | None:
        """The number of partitions, if hash-partitioned by ``session_id`` into equal parts."""
        if self.key != PARTITION_KEY or not self.bounds:
            return None
        count = len(self.bounds)
        return count if self.bounds == tuple((count, r) for r in range(count)) else None

    def describe(self) -> str:
        """The layout in words, for messages."""
        if self.key is None:
            return f"{self.table} is not partitioned"
        if self.partitions is not None:
            return f"{self.table} is hash-partitioned by session_id into {self.partitions}"
        return f"{self.table} is partitioned by {self.key} into {len(self.bounds)} partitions"


def check_partitions(partitions: object) -> int:
    """Return ``partitions`` if it is a usable partition count, else raise InvalidInputError."""
    if isinstance(partitions, bool) or not isinstance(partitions, int):
        raise InvalidInputError(
            f"partitions must be a whole number from 2 to {MAX_PARTITIONS}, "
            f"got {type(partitions).__name__} {partitions!r}"
        )
    if not 2 <= partitions <= MAX_PARTITIONS:
        raise InvalidInputError(f"partitions must be from 2 to {MAX_PARTITIONS}, got {partitions}")
    return partitions


def require_postgresql(dialect_name: str, version: tuple[int | str, ...] | None) -> None:
    """Refuse a database other than PostgreSQL 12 or later, with a ConfigurationError."""
    if dialect_name != "postgresql":
        raise ConfigurationError(
            f"partitioning the messages tables by session_id needs PostgreSQL; this database is "
            f"{dialect_name} (on MariaDB, shard with Spider; SQLite has no partitions)"
        )
    if version and isinstance(version[0], int) and version[0] < MIN_POSTGRESQL[0]:
        shown = ".".join(map(str, version))
        raise ConfigurationError(
            f"partitioning the messages tables needs PostgreSQL 12 or later (foreign keys "
            f"that reference a partitioned table); this server is {shown}"
        )


def partition_name(table_name: str, remainder: int) -> str:
    """The name of the partition of ``table_name`` that holds hash remainder ``remainder``.

    ``<table>_p<remainder>``, shortened with a hash of the table's name past 63 characters.
    """
    return _suffixed(table_name, f"p{remainder}")


def partitioning_of(conn: Connection, tbl: Table) -> Partitioning | None:
    """Return how ``tbl`` is laid out in the database, or ``None`` if it does not exist.

    The name is looked up as convostore's statements look it up: in ``tbl.schema``, else on
    the connection's ``search_path``.
    """
    row = conn.execute(
        text(
            "SELECT c.oid, c.relkind::text, pg_get_partkeydef(c.oid) FROM pg_class c "
            "WHERE c.oid = to_regclass(:name)"
        ),
        {"name": tbl.fullname},
    ).first()
    if row is None:
        return None
    oid, relkind, key = row
    if relkind != "p":
        return Partitioning(tbl.name, None)
    bounds = conn.execute(
        text(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = :oid"
        ),
        {"oid": oid},
    ).scalars()
    found = []
    for bound in bounds:
        match = _BOUND.fullmatch(bound or "")
        # A range, list or default partition has no modulus: report it as "not equal parts".
        found.append((int(match[1]), int(match[2])) if match else (0, -1))
    return Partitioning(tbl.name, key, tuple(sorted(found)))


def derived_constraints(conn: Connection, tables: Tables) -> frozenset[tuple[str, str]]:
    """The ``(table, constraint)`` names PostgreSQL made itself for the partitions of ``tables``.

    A foreign key that references a partitioned table (chunks → messages) gets one copy per
    partition of the referenced table, on the referencing table, each with a name of
    PostgreSQL's choosing and ``pg_constraint.conparentid`` set to the key it copies. They
    come and go with the partitions; schema comparisons leave them out. Empty on other
    databases, and on a plain layout.
    """
    if conn.dialect.name != "postgresql":
        return frozenset()
    rows = conn.execute(
        text(
            "SELECT c.relname, con.conname FROM pg_constraint con "
            "JOIN pg_class c ON c.oid = con.conrelid "
            "WHERE con.conparentid <> 0 AND con.conrelid IN "
            "(SELECT to_regclass(name) FROM unnest(CAST(:names AS text[])) AS name)"
        ),
        {"names": [t.fullname for t in tables.metadata.sorted_tables]},
    )
    return frozenset((str(relname), str(conname)) for relname, conname in rows)


def partition_tables(conn: Connection, tables: Tables, partitions: int) -> bool:
    """Hash-partition the store's messages and chunks tables by ``session_id``, keeping rows.

    Runs in the caller's transaction: commit it to keep the result. Returns ``True`` if the
    tables were rebuilt, ``False`` if they already were partitioned that way.

    Raises:
        InvalidInputError: ``partitions`` is not from 2 to ``MAX_PARTITIONS``.
        ConfigurationError: The database is not PostgreSQL 12 or later.
        SchemaError: A table is missing or lacks convostore's columns (run ``migrate upgrade
            head`` first), or the tables are already partitioned otherwise (another count,
            another key, or only one of the two).
    """
    partitions = check_partitions(partitions)
    require_postgresql(conn.dialect.name, conn.dialect.server_version_info)
    if _layout_is(conn, tables, partitions):
        return False
    preparer = conn.dialect.identifier_preparer
    conn.execute(
        text(f"LOCK TABLE {preparer.format_table(tables.sessions)} IN SHARE ROW EXCLUSIVE MODE")
    )
    conn.execute(
        text(
            f"LOCK TABLE {preparer.format_table(tables.messages)}, "
            f"{preparer.format_table(tables.chunks)} IN ACCESS EXCLUSIVE MODE"
        )
    )
    # Another process may have partitioned them while this one waited for the locks.
    if _layout_is(conn, tables, partitions):
        return False
    _check_columns(conn, tables)
    targets = _partitioned_copies(tables)
    old = {name: _move_aside(conn, getattr(tables, name)) for name in ("messages", "chunks")}
    for name in ("messages", "chunks"):
        target = targets[name]
        conn.execute(CreateTable(target, include_foreign_key_constraints=[]))
        for remainder in range(partitions):
            child = table(partition_name(target.name, remainder), schema=target.schema)
            conn.execute(
                text(
                    f"CREATE TABLE {preparer.format_table(child)} PARTITION OF "
                    f"{preparer.format_table(target)} "
                    f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"
                )
            )
        names = [c.name for c in target.columns]
        source = table(old[name], *(column(c) for c in names), schema=target.schema)
        conn.execute(insert(target).from_select(names, select(*source.columns)))
    for name in ("chunks", "messages"):  # the old chunks reference the old messages
        gone = table(old[name], schema=targets[name].schema)
        conn.execute(text(f"DROP TABLE {preparer.format_table(gone)}"))
    for name in ("messages", "chunks"):
        for constraint in sorted(targets[name].foreign_key_constraints, key=lambda c: str(c.name)):
            conn.execute(AddConstraint(constraint))
        conn.execute(text(f"ANALYZE {preparer.format_table(targets[name])}"))
    return True


def _layout_is(conn: Connection, tables: Tables, partitions: int) -> bool:
    """Whether both tables are already hash-partitioned into ``partitions``; raise if otherwise."""
    found = {t.name: partitioning_of(conn, t) for t in (tables.messages, tables.chunks)}
    missing = [name for name, layout in found.items() if layout is None]
    if missing:
        raise SchemaError(
            f"table {missing[0]} is missing; create the tables first (`convostore migrate "
            f"upgrade head`, or create_tables), then partition them"
        )
    layouts = [layout for layout in found.values() if layout is not None]
    if all(layout.key is None for layout in layouts):
        return False
    if all(layout.partitions == partitions for layout in layouts):
        return True
    described = "; ".join(layout.describe() for layout in layouts)
    raise SchemaError(
        f"{described}: convostore partitions the two tables together and does not "
        f"re-partition them into {partitions}; keep the present layout, or export the "
        f"sessions, recreate the tables and import them"
    )


def _check_columns(conn: Connection, tables: Tables) -> None:
    """Refuse to rebuild a table whose columns are not exactly convostore's: data would be lost."""
    for tbl in (tables.messages, tables.chunks):
        have = conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:name) "
                "AND attnum > 0 AND NOT attisdropped"
            ),
            {"name": tbl.fullname},
        ).scalars()
        have_set, want = set(have), set(tbl.c.keys())
        if have_set != want:
            lacking, extra = sorted(want - have_set), sorted(have_set - want)
            parts = [f"lacks {', '.join(lacking)}"] if lacking else []
            parts += [f"has columns convostore does not know: {', '.join(extra)}"] if extra else []
            raise SchemaError(
                f"{tbl.name} {' and '.join(parts)}; partitioning rebuilds the table with "
                f"convostore's columns only: run `convostore migrate upgrade head` first"
                + (", and move the extra columns' data elsewhere" if extra else "")
            )


def _partitioned_copies(tables: Tables) -> dict[str, Table]:
    """The messages and chunks tables as convostore defines them, hash-partitioned."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION, schema=tables.metadata.schema)
    copies = {t.name: t.to_metadata(metadata) for t in tables.metadata.sorted_tables}
    targets = {"messages": copies[tables.messages.name], "chunks": copies[tables.chunks.name]}
    for target in targets.values():
        target.dialect_options["postgresql"]["partition_by"] = PARTITION_KEY
    return targets


def _move_aside(conn: Connection, tbl: Table) -> str:
    """Rename ``tbl`` and its indexes out of the way of the new table; return its new name."""
    preparer = conn.dialect.identifier_preparer
    aside = _suffixed(tbl.name, "unpartitioned")
    if conn.execute(
        text("SELECT to_regclass(:name)"), {"name": table(aside, schema=tbl.schema).fullname}
    ).scalar():
        raise SchemaError(
            f"a table named {aside} is in the way: partitioning moves {tbl.name} there while it "
            f"copies the rows; rename or drop {aside} first"
        )
    indexes = conn.execute(
        text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(:name) ORDER BY c.relname"
        ),
        {"name": tbl.fullname},
    ).scalars()
    for index in list(indexes):
        # Renaming the index of a primary key renames the constraint with it.
        old_index = table(index, schema=tbl.schema)
        conn.execute(
            text(
                f"ALTER INDEX {preparer.format_table(old_index)} RENAME TO "
                f"{preparer.quote(_suffixed(index, 'unpartitioned'))}"
            )
        )
    conn.execute(
        text(f"ALTER TABLE {preparer.format_table(tbl)} RENAME TO {preparer.quote(aside)}")
    )
    return aside
