"""A MariaDB Spider head over data nodes: convostore's tables sharded by ``session_id``.

The data lives on the nodes, each an ordinary convostore database (InnoDB tables with their
foreign keys, made by ``convostore migrate upgrade head`` or ``create_tables``). The head
holds no rows: for each node a server definition (``CREATE SERVER``), and for each of the
store's four tables a Spider table with the same columns and keys, partitioned by ``KEY
(session_id)`` with one partition per node. All of one session's rows, in every table,
hash to the same node, so each of convostore's statements (all keyed by ``session_id``) is
sent to that one node, and the nodes' foreign keys (``ON DELETE CASCADE``) still do their
work there.

The head's DDL is compiled from the same ``Table`` objects as every other backend's, with
``ENGINE=SPIDER`` for InnoDB and without the foreign keys (Spider tables have none; the
nodes enforce them). Its version table, an ordinary table on the head, records the nodes'
revision.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, MetaData, Table, bindparam, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, CreateTable

from .. import _version_table
from .._db.engine import engine_state
from .._db.schema import (
    DEFAULT_MESSAGES_TABLE,
    DEFAULT_SESSIONS_TABLE,
    NAMING_CONVENTION,
    Tables,
    build_tables,
)
from ..errors import ConfigurationError, SchemaError, StorageError
from ..migrate import MigrationOptions, script_directory

__all__ = [
    "SpiderNode",
    "create_spider_head",
    "drop_spider_head",
    "spider_head_ddl",
    "spider_tables",
]

# A server name on the head: Spider quotes it in a partition comment, so plain words only.
_SERVER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class SpiderNode:
    """A data node as the Spider head reaches it: one ``CREATE SERVER`` on the head.

    The address is the one the *head* connects to (a private network name is fine); the
    node holds an ordinary convostore database.
    """

    name: str
    """The server's name on the head (``node0``): letters, digits and underscores."""

    host: str
    """The node's host name or address, as seen from the head."""

    port: int
    """The node's TCP port."""

    user: str
    """The account the head uses on the node; it needs SELECT, INSERT, UPDATE, DELETE."""

    password: str
    """That account's password (stored in the head's ``mysql.servers`` table)."""

    database: str
    """The database holding convostore's tables on the node."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SERVER_NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"a Spider node's name must be letters, digits and underscores (at most 64, "
                f"not starting with a digit); got {self.name!r}"
            )
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ConfigurationError(f"node {self.name}: port must be 1-65535, got {self.port!r}")
        for what in ("host", "user", "database"):
            if not getattr(self, what):
                raise ConfigurationError(f"node {self.name}: {what} is empty")

    @classmethod
    def from_url(cls, name: str, url: str | URL) -> SpiderNode:
        """The node ``name`` at a MySQL URL, such as ``mysql://app:secret@10.0.0.7:3306/agents``.

        Raises:
            ConfigurationError: The URL is not a MySQL/MariaDB URL with a host and database.
        """
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigurationError(f"node {name}: not a database URL ({exc})") from exc
        if parsed.get_backend_name() not in ("mysql", "mariadb"):
            raise ConfigurationError(
                f"node {name}: a Spider node is a MySQL/MariaDB server; got a "
                f"{parsed.get_backend_name()} URL"
            )
        if not parsed.host or not parsed.database:
            raise ConfigurationError(
                f"node {name}: the URL needs a host and a database "
                f"(mysql://user:password@host:port/database)"
            )
        return cls(
            name=name,
            host=parsed.host,
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            database=parsed.database,
        )


def spider_head_ddl(
    tables: Tables, nodes: Sequence[SpiderNode], dialect: Dialect | None = None
) -> list[str]:
    """The statements that create the Spider tables of ``tables`` on a head (no servers).

    Compiled from convostore's own ``Table`` objects: the same columns, primary keys and
    indexes, ``ENGINE=SPIDER``, no foreign keys, and ``PARTITION BY KEY (session_id)`` with
    one partition per node, in the order given.

    Args:
        tables: The store's tables.
        nodes: The data nodes, in partition order.
        dialect: The head connection's dialect (default: SQLAlchemy's MariaDB dialect).

    Raises:
        ConfigurationError: No nodes, or two with the same name.
    """
    _check_nodes(nodes)
    if dialect is None:
        from sqlalchemy.dialects.mysql import dialect as mysql_dialect

        dialect = mysql_dialect(is_mariadb=True)
    copies = MetaData(naming_convention=NAMING_CONVENTION)
    statements: list[str] = []
    for table in tables.metadata.sorted_tables:
        head = table.to_metadata(copies)
        head.dialect_kwargs["mysql_engine"] = "SPIDER"
        head.dialect_kwargs["mysql_partition_by"] = "KEY (session_id)"
        create = str(CreateTable(head, include_foreign_key_constraints=[]).compile(dialect=dialect))
        statements.append(f"{create.strip()}\n({_partitions(head, nodes)})")
        statements.extend(
            str(CreateIndex(index).compile(dialect=dialect)).strip()
            for index in sorted(head.indexes, key=lambda index: str(index.name))
        )
    return statements


def _partitions(table: Table, nodes: Sequence[SpiderNode]) -> str:
    return ",\n ".join(
        f'PARTITION p{number} COMMENT = \'srv "{node.name}", table "{table.name}"\''
        for number, node in enumerate(nodes)
    )


def _check_nodes(nodes: Sequence[SpiderNode]) -> None:
    if not nodes:
        raise ConfigurationError("a Spider head needs at least one data node")
    names = [node.name for node in nodes]
    if len(set(names)) < len(names):
        raise ConfigurationError(f"two Spider nodes share a name: {names}")


async def create_spider_head(
    head: AsyncEngine,
    *,
    nodes: Sequence[SpiderNode],
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    version_table: str = "",
) -> str:
    """Make (or remake) a Spider head for the convostore tables on ``nodes``.

    On ``head`` (a MariaDB server with the Spider engine installed: ``INSTALL SONAME
    'ha_spider'``) it defines one server per node (``CREATE OR REPLACE SERVER``), reads the
    revision each node's version table records through those servers, creates the store's
    four tables as Spider tables partitioned by ``session_id`` over the nodes
    ([`spider_head_ddl`][convostore.layouts.spider_head_ddl]), and records the nodes'
    revision in the head's version table. Sessions and stores then use ``head`` as any
    MariaDB database.

    The head's tables hold no rows, so remaking them loses nothing: after upgrading every
    node (``convostore migrate upgrade head`` on each), call this again (``convostore layout
    spider``) to bring the head to the same revision. The node list must stay the same list
    in the same order: rows live on the node their ``session_id`` hashes to.

    Args:
        head: An engine on the head's database.
        nodes: The data nodes, in partition order.
        sessions_table: The sessions table's name (the same on the head and every node).
        messages_table: The messages table's name.
        version_table: The version table's name on the nodes and the head (default derived
            from ``sessions_table``).

    Returns:
        The revision the nodes, and now the head, are at.

    Raises:
        ConfigurationError: No nodes, a bad node or table name.
        SchemaError: Spider is not installed on the head; a table of the store's name on
            the head is not a Spider table; a node has no convostore tables, or the nodes
            are at different revisions.
        StorageError: The head or a node failed; the driver's error is chained.
    """
    _check_nodes(nodes)
    tables = build_tables(sessions_table, messages_table)
    options = MigrationOptions.for_tables(tables, version_table)
    try:
        async with head.connect() as conn:
            revision = await conn.run_sync(_make_head, options, nodes)
            await conn.commit()
    except (SchemaError, StorageError, ConfigurationError):
        raise
    except (DBAPIError, OSError, PoolTimeoutError) as exc:
        raise engine_state(head).error_for(exc) from exc
    return revision


def _make_head(conn: Connection, options: MigrationOptions, nodes: Sequence[SpiderNode]) -> str:
    _require_spider(conn)
    tables = options.tables
    engines = _table_engines(conn, tables)
    local = sorted(name for name, engine in engines.items() if engine.upper() != "SPIDER")
    if local:
        raise SchemaError(
            f"table {local[0]!r} on the Spider head is an {engines[local[0]]} table, which "
            f"holds rows of its own; a head holds only Spider tables: drop or rename it first"
        )
    for node in nodes:
        conn.execute(
            text(
                f"CREATE OR REPLACE SERVER {node.name} FOREIGN DATA WRAPPER mysql OPTIONS "
                f"(HOST :host, DATABASE :db, USER :user, PASSWORD :password, PORT {node.port})"
            ),
            {"host": node.host, "db": node.database, "user": node.user, "password": node.password},
        )
    revision = _nodes_revision(conn, options, nodes)
    for table in reversed(tables.metadata.sorted_tables):
        conn.execute(text(f"DROP TABLE IF EXISTS {table.fullname}"))
    for statement in spider_head_ddl(tables, nodes, conn.dialect):
        conn.exec_driver_sql(statement)
    context = _version_table.migration_context(conn, options)
    context.stamp(script_directory(), revision)
    return revision


def _require_spider(conn: Connection) -> None:
    support = conn.execute(
        text("SELECT SUPPORT FROM information_schema.ENGINES WHERE ENGINE = 'SPIDER'")
    ).scalar_one_or_none()
    if support not in ("YES", "DEFAULT"):
        raise SchemaError(
            "the Spider storage engine is not installed on the head; install it with "
            "`INSTALL SONAME 'ha_spider'` (Debian and Ubuntu: the mariadb-plugin-spider package)"
        )


def _table_engines(conn: Connection, tables: Tables) -> dict[str, str]:
    """The storage engine of each of the store's tables that exists in ``conn``'s database."""
    query = text(
        "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME IN :names"
    ).bindparams(bindparam("names", expanding=True))
    names = sorted(table.name for table in tables.metadata.sorted_tables)
    rows = conn.execute(query, {"schema": tables.sessions.schema, "names": names})
    return {str(name): str(engine or "") for name, engine in rows}


def spider_tables(conn: Connection, tables: Tables) -> frozenset[str]:
    """The names of the store's tables that are Spider tables in ``conn``'s database.

    Empty on any other backend, and on a MariaDB database that is not a Spider head.
    """
    if conn.dialect.name not in ("mysql", "mariadb"):
        return frozenset()
    engines = _table_engines(conn, tables)
    return frozenset(name for name, engine in engines.items() if engine.upper() == "SPIDER")


def _nodes_revision(
    conn: Connection, options: MigrationOptions, nodes: Sequence[SpiderNode]
) -> str:
    """The one revision every node records, read through the head's server definitions."""
    found: dict[str, tuple[str, ...]] = {}
    for node in nodes:
        # A Spider table of the head's own, on the node's version table: the head reads it
        # the way it will reach the node's data, so this also proves it can.
        probe = f"{options.version_table[:40]}_probe_{node.name}"[:64]
        conn.execute(text(f"DROP TABLE IF EXISTS {probe}"))
        conn.execute(
            text(
                f"CREATE TABLE {probe} (version_num VARCHAR(32) NOT NULL PRIMARY KEY) "
                f'ENGINE=SPIDER COMMENT = \'srv "{node.name}", table "{options.version_table}"\''
            )
        )
        try:
            read = text(f"SELECT version_num FROM {probe}")  # noqa: S608 (a name of ours)
            rows = conn.execute(read).scalars().all()
        except DBAPIError as exc:
            raise SchemaError(
                f"node {node.name} ({node.host}:{node.port}/{node.database}) has no convostore "
                f"version table {options.version_table!r} the head can read; run `convostore "
                f"migrate upgrade head` on each node first",
                detail=str(exc.orig),
            ) from exc
        finally:
            conn.execute(text(f"DROP TABLE IF EXISTS {probe}"))
        found[node.name] = tuple(sorted(str(row) for row in rows))
    revisions = set(found.values())
    if len(revisions) != 1 or not next(iter(revisions)):
        described = ", ".join(
            f"{name}: {' '.join(heads) or 'none'}" for name, heads in found.items()
        )
        raise SchemaError(
            f"the Spider nodes must all be at one revision before the head is made "
            f"({described}); run `convostore migrate upgrade head` on each node"
        )
    (heads,) = revisions
    if len(heads) != 1:
        raise SchemaError(f"the nodes record several revisions at once: {', '.join(heads)}")
    return heads[0]


async def drop_spider_head(
    head: AsyncEngine,
    *,
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    version_table: str = "",
    servers: Sequence[str] = (),
) -> None:
    """Drop the head's Spider tables and version table (the nodes' data stays where it is).

    Args:
        head: An engine on the head's database.
        sessions_table: The sessions table's name.
        messages_table: The messages table's name.
        version_table: The version table's name (default derived from ``sessions_table``).
        servers: Server definitions to drop as well (``DROP SERVER IF EXISTS``).

    Raises:
        SchemaError: A table of the store's name on the head is not a Spider table (it
            holds rows of its own, and is left alone).
    """
    tables = build_tables(sessions_table, messages_table)
    options = MigrationOptions.for_tables(tables, version_table)

    def drop(conn: Connection) -> None:
        engines = _table_engines(conn, tables)
        local = sorted(name for name, engine in engines.items() if engine.upper() != "SPIDER")
        if local:
            raise SchemaError(
                f"table {local[0]!r} on the head is not a Spider table; it is left alone"
            )
        for table in reversed(tables.metadata.sorted_tables):
            conn.execute(text(f"DROP TABLE IF EXISTS {table.fullname}"))
        _version_table.drop(conn, options)
        for name in servers:
            if not _SERVER_NAME.fullmatch(name):
                raise ConfigurationError(f"not a server name: {name!r}")
            conn.execute(text(f"DROP SERVER IF EXISTS {name}"))

    try:
        async with head.begin() as conn:
            await conn.run_sync(drop)
    except (SchemaError, ConfigurationError):
        raise
    except (DBAPIError, OSError, PoolTimeoutError) as exc:
        raise engine_state(head).error_for(exc) from exc


IncludeObject = Callable[[Any, "str | None", str, bool, Any], bool]
"""Alembic's ``include_object`` hook."""


def without_spider_foreign_keys(
    conn: Connection, tables: Tables, include_object: IncludeObject
) -> IncludeObject:
    """``include_object``, leaving out the foreign keys of the store's Spider tables.

    A Spider head's tables have no foreign keys, by design: the nodes' tables (ordinary
    convostore tables) enforce them. Everything else (columns, types, keys, indexes) is
    compared as on any database; off a Spider head, ``include_object`` is returned as is.
    """
    spider = spider_tables(conn, tables)
    if not spider:
        return include_object

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "foreign_key_constraint" and getattr(obj.table, "name", None) in spider:
            return False
        return include_object(obj, name, type_, reflected, compare_to)

    return include


def refuse_revisions_on_spider_head(
    conn: Connection, options: MigrationOptions, destination: Any
) -> None:
    """Refuse to move a Spider head's revision with migrations (env.py, before it runs any).

    A revision's DDL on a head would change only the head's table definitions, never the
    data on the nodes. The nodes are migrated themselves, and the head is then made again
    at their revision (``create_spider_head``, ``convostore layout spider``). A command
    that moves nothing (``check``, ``current``, an ``upgrade`` to where the head is) runs.

    Args:
        conn: The migration's connection.
        options: The store.
        destination: Alembic's destination revision argument (``None``: base); ``...``
            for a command that has none.

    Raises:
        SchemaError: The store's tables on ``conn`` are Spider tables and ``destination``
            is not the revision the head records.
    """
    if destination is ... or not spider_tables(conn, options.tables):
        return
    wanted = set() if destination is None else {destination}
    if isinstance(destination, tuple):
        wanted = set(destination)
    heads = set(_version_table.current_heads(conn, options))
    if wanted == heads:
        return
    raise SchemaError(
        f"{options.sessions_table!r} and its tables here are a Spider head (their rows live "
        f"on the data nodes): migrate each node with `convostore migrate upgrade head`, "
        f"then make the head again with `convostore layout spider` "
        f"(convostore.layouts.create_spider_head)"
    )
