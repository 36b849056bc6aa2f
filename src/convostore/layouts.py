"""Table layouts for large stores: the same tables, laid out for scale.

Each block below is one layout; [Scaling](../scaling.md) says when each is worth it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from ._db.schema import DEFAULT_MESSAGES_TABLE, DEFAULT_SESSIONS_TABLE, build_tables

__all__ = [
    "MAX_PARTITIONS",
    "SpiderNode",
    "create_spider_head",
    "drop_spider_head",
    "message_partitions",
    "partition_messages",
    "spider_head_ddl",
    "spider_tables",
]


# -- PostgreSQL: the messages tables hash-partitioned by session_id -----------------------------

from ._layouts.postgresql import (
    MAX_PARTITIONS,
    check_partitions,
    partition_tables,
    partitioning_of,
    require_postgresql,
)
from .errors import SchemaError


async def partition_messages(
    engine: AsyncEngine,
    partitions: int = 8,
    *,
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    schema: str | None = None,
) -> bool:
    """Hash-partition a store's messages and chunks tables by ``session_id`` (PostgreSQL).

    The tables must exist (``create_tables``, or ``convostore migrate upgrade head``); rows
    already stored are kept. The rebuild is one transaction: writers to the store wait
    until it commits, readers of the two tables too, and a failure leaves the tables as
    they were. The new tables have convostore's column types and constraint names, so
    later migrations and ``convostore migrate check`` see convostore's schema; the
    partitions are named ``<table>_p0`` to ``<table>_p<N-1>``. Foreign keys stay real:
    chunks → messages and messages → sessions, both ``ON DELETE CASCADE``.

    ```python
    await convostore.migrate.upgrade(engine)
    await convostore.layouts.partition_messages(engine, partitions=8)
    ```

    Args:
        engine: An async engine on PostgreSQL 12 or later (not disposed here).
        partitions: How many hash partitions each table gets, from 2 to
            [`MAX_PARTITIONS`][convostore.layouts.MAX_PARTITIONS].
        sessions_table: Name of the sessions table.
        messages_table: Name of the messages table (the chunks table is named after it).
        schema: PostgreSQL schema holding the tables (default: the ``search_path``).

    Returns:
        ``True`` if the tables were rebuilt; ``False`` if they already were partitioned
        into ``partitions`` (nothing is changed then).

    Raises:
        InvalidInputError: ``partitions`` is not a whole number from 2 to ``MAX_PARTITIONS``.
        ConfigurationError: A name is unusable, ``engine`` is not an ``AsyncEngine``, or the
            database is not PostgreSQL 12 or later.
        SchemaError: A table is missing or not at the latest revision, or the tables are
            already partitioned otherwise (another count or key); convostore does not
            re-partition.
        StorageError: The database failed; the driver's error is the ``__cause__``.
    """
    from .migrate import _check_engine, _database_errors

    _check_engine(engine)
    check_partitions(partitions)
    tables = build_tables(sessions_table, messages_table, schema)
    async with _database_errors(engine), engine.connect() as conn:
        require_postgresql(engine.dialect.name, engine.dialect.server_version_info)
        async with conn.begin():
            return await conn.run_sync(partition_tables, tables, partitions)


async def message_partitions(
    engine: AsyncEngine,
    *,
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    schema: str | None = None,
) -> int | None:
    """Return how many hash partitions by ``session_id`` a store's messages table has.

    Args:
        engine: An async engine (not disposed here).
        sessions_table: Name of the sessions table.
        messages_table: Name of the messages table.
        schema: PostgreSQL schema holding the tables.

    Returns:
        The number of partitions; ``None`` if the table is plain (always, on SQLite and
        MySQL/MariaDB) or does not exist.

    Raises:
        ConfigurationError: A name is unusable, or ``engine`` is not an ``AsyncEngine``.
        SchemaError: The table is partitioned some other way than convostore partitions it.
        StorageError: The database failed; the driver's error is the ``__cause__``.
    """
    from .migrate import _check_engine, _database_errors

    _check_engine(engine)
    tables = build_tables(sessions_table, messages_table, schema)
    if engine.dialect.name != "postgresql":
        return None
    async with _database_errors(engine), engine.connect() as conn:
        found = await conn.run_sync(partitioning_of, tables.messages)
    if found is None or found.key is None:
        return None
    if found.partitions is None:
        raise SchemaError(f"{found.describe()}, not the way convostore partitions it")
    return found.partitions


# -- MariaDB Spider: every table sharded by session_id over data nodes ------------------------
#
# A head server holds Spider tables linked to ordinary convostore databases (the nodes):
#
#     nodes = [SpiderNode.from_url("node0", "mysql://app:pw@10.0.0.10/agents"), ...]
#     # each node first: convostore migrate --url mysql://app:pw@10.0.0.10/agents upgrade head
#     await create_spider_head(engine_from_url("mysql://app:pw@10.0.0.1/agents"), nodes=nodes)

from ._layouts.spider import (  # noqa: E402  (this layout's block)
    SpiderNode,
    create_spider_head,
    drop_spider_head,
    spider_head_ddl,
    spider_tables,
)
