"""``create_tables``: make convostore's tables on a new database, safely from many workers.

Every worker of a freshly deployed application opens the same new database at the same
moment, each with ``create_tables=True``. Creating tables "if not exists" is not safe then:
two ``CREATE TABLE`` statements race (PostgreSQL fails on its type catalogue, MySQL with
error 1050, SQLite with "already exists"), and two workers may both stamp the version
table. So creation runs under a lock the database itself holds, and looks again once it
has the lock:

- PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``) keyed by the
  schema and table names, taken in the transaction that creates the tables (PostgreSQL's
  DDL is transactional, so the lock and the tables commit together);
- MySQL/MariaDB: a named lock (``GET_LOCK``), held by the connection across the DDL (which
  commits implicitly there) and released after it;
- SQLite: an exclusive transaction (``BEGIN EXCLUSIVE``), which other connections and
  processes wait for through the busy timeout.

The worker that gets the lock first creates and stamps; the others find the tables and the
recorded revision in place and change nothing.

Stamping is Alembic's "building an up-to-date database from scratch": ``create_all``, then
record the latest revision in the store's version table, on the same connection and in the
same transaction, so that a later ``upgrade head`` has nothing to do.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import _version_table
from ._db.engine import engine_state
from ._db.schema import Tables
from ._table_layout import MissingColumns, compare_layout
from .errors import SchemaError, StorageError
from .migrate import MigrationOptions, head, script_directory

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

__all__ = ["LOCK_TIMEOUT_SECONDS", "check_revision", "create_tables", "stamp_head"]

LOCK_TIMEOUT_SECONDS = 60
"""How long a worker waits for another one that is creating the same tables."""


async def create_tables(engine: AsyncEngine, tables: Tables) -> None:
    """Create ``tables`` where missing, and check that existing ones are convostore's.

    Safe to call from any number of tasks, threads and processes at once: the database's
    own lock lets one of them create the tables and record the revision; the others find
    them in place.

    Raises:
        SchemaError: A table of that name exists with another layout (for example one
            written by the Agents SDK's own store); the message says how to migrate it.
        DatabaseUnreachableError: Nothing answered at the URL's address, and the engine
            never connected there.
        StorageError: The database failed, or another worker held the lock for longer than
            ``LOCK_TIMEOUT_SECONDS``; the driver's error is chained.
    """
    dialect = engine.dialect.name
    state = engine_state(engine)
    try:
        shared = state.connection_lock
        if shared is not None:
            async with shared:
                await _create_locked(engine, tables, dialect)
        else:
            await _create_locked(engine, tables, dialect)
    except (SchemaError, StorageError):
        raise
    except (DBAPIError, OSError, PoolTimeoutError) as exc:
        raise state.error_for(exc) from exc


async def _create_locked(engine: AsyncEngine, tables: Tables, dialect: str) -> None:
    if dialect == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT set_config('lock_timeout', :t, true)"),
                {"t": f"{LOCK_TIMEOUT_SECONDS}s"},
            )
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(tables)}
            )
            await conn.run_sync(_create_and_check, tables)
    elif dialect in ("mysql", "mariadb"):
        async with engine.connect() as conn:
            await _mysql_lock(conn, tables)
            await conn.commit()  # end the lock query's transaction; the lock stays held
            try:
                async with conn.begin():
                    await conn.run_sync(_create_and_check, tables)
            finally:
                await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _lock_name(tables)})
    elif dialect == "sqlite":
        async with engine.connect() as conn:
            manual = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await manual.run_sync(_create_exclusive, tables)
    else:
        async with engine.begin() as conn:
            await conn.run_sync(_create_and_check, tables)


def _create_exclusive(conn: Connection, tables: Tables) -> None:
    # The driver is in autocommit mode here, so this BEGIN is the only transaction: the
    # busy timeout makes other writers wait for it.
    try:
        conn.exec_driver_sql("BEGIN EXCLUSIVE")
    except DBAPIError as exc:
        # An engine that emits BEGIN itself (SQLAlchemy's SQLite transaction-control
        # recipe, a "begin" listener) has already opened a transaction here: create the
        # tables in it; its first write takes the database's write lock.
        if "within a transaction" not in str(exc.orig):
            raise
    try:
        _create_and_check(conn, tables)
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


async def _mysql_lock(conn: AsyncConnection, tables: Tables) -> None:
    result = await conn.execute(
        text("SELECT GET_LOCK(:name, :timeout)"),
        {"name": _lock_name(tables), "timeout": LOCK_TIMEOUT_SECONDS},
    )
    if result.scalar() != 1:
        raise StorageError(
            f"waited {LOCK_TIMEOUT_SECONDS} s for another process creating the tables "
            f"{tables.sessions.name!r}/{tables.messages.name!r}; try again, or create them "
            f"once with `convostore migrate upgrade head`"
        )


def _identity(tables: Tables) -> str:
    return f"convostore:{tables.sessions.schema or ''}.{tables.sessions.name}"


def _lock_key(tables: Tables) -> int:
    """A signed 64-bit advisory lock key, the same in every process for these tables."""
    digest = hashlib.blake2b(_identity(tables).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_name(tables: Tables) -> str:
    """A MySQL lock name (at most 64 characters), server-wide: names the database too."""
    identity = _identity(tables)
    if len(identity) <= 64:
        return identity
    return "convostore:" + hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()


def _create_and_check(conn: Connection, tables: Tables) -> None:
    foreign = [f for f in compare_layout(conn, tables) if isinstance(f, MissingColumns)]
    if foreign:
        raise SchemaError(
            f"table {foreign[0].table!r} exists but is not a convostore table (missing columns "
            f"{list(foreign[0].columns)}); if it was written by the Agents SDK's "
            f"SQLAlchemySession, adopt it with `convostore migrate upgrade head`, or choose "
            f"other table names"
        )
    check_revision(conn, tables)
    tables.metadata.create_all(conn, checkfirst=True)
    stamp_head(conn, tables)


def check_revision(conn: Connection, tables: Tables) -> None:
    """Refuse to create tables beside an older revision of them: they need ``upgrade head``.

    Raises:
        SchemaError: The store's version table records a revision older than the head.
    """
    options = MigrationOptions.for_tables(tables)
    if not _version_table.exists(conn, options):
        return
    heads = _version_table.current_heads(conn, options)
    latest = head()
    if not heads or latest in heads:
        return
    known = script_directory()
    if all(_is_known(known, rev) for rev in heads):
        raise SchemaError(
            f"the tables {tables.sessions.name!r}/{tables.messages.name!r} are at revision "
            f"{', '.join(heads)}, older than this convostore ({latest}); run "
            f"`convostore migrate upgrade head` (or `await convostore.migrate.upgrade(engine)`) "
            f"first"
        )
    # A revision this version does not know comes from a newer convostore: leave it alone.


def stamp_head(conn: Connection, tables: Tables) -> None:
    """Record the head revision in the store's version table if it records nothing yet."""
    options = MigrationOptions.for_tables(tables)
    context = _version_table.migration_context(conn, options)
    if context.get_current_heads():
        return
    try:
        with conn.begin_nested():
            context.stamp(script_directory(), "head")
    except DBAPIError:
        # Another process created the same tables at the same moment and stamped first.
        if not _version_table.current_heads(conn, options):
            raise


def _is_known(scripts: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False
