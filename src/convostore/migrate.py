"""Run convostore's Alembic migrations from Python, on an application's own engine.

Usage:

```python
import convostore

engine = convostore.engine_from_url("postgresql://app@db/agents")
await convostore.migrate.upgrade(engine)  # to the latest revision ("head")
await convostore.migrate.upgrade(engine, sessions_table="chat_sessions",
                                 messages_table="chat_items")
assert await convostore.migrate.current(engine) == (convostore.migrate.head(),)
```

The migration scripts ship inside the package (``convostore:migrations``); the command line
(``convostore migrate upgrade head``) and an application's own ``alembic.ini`` (a section with
``script_location = convostore:migrations``) run the same scripts. convostore records its revision
in a version table of its own ([`DEFAULT_VERSION_TABLE`][convostore.migrate.DEFAULT_VERSION_TABLE]),
so its history lives beside an application's ``alembic_version`` without touching it.

**Frozen.** The released revisions (``migrations/versions/0001`` to ``0004``) import two
names, and released revisions never change; so these keep their module, name and behaviour
for as long as those revisions ship:

- ``convostore.migrate.revision_names`` ([`revision_names`][convostore.migrate.revision_names]), and
- ``convostore.errors.SchemaError``.

**Deprecated** for one release, each use warning with ``DeprecationWarning``: calling the module
(``convostore.migrate(engine)``; it was a function) and ``convostore.migrate.migrate``, both now
[`upgrade`][convostore.migrate.upgrade]; and env.py's and ``create_tables``' helpers, now private
(the list is in ``convostore._migrate_deprecated``).

Alembic is imported on first use, so ``import convostore`` stays light.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _migrate_deprecated as _deprecated
from . import _version_table
from ._db.engine import engine_state
from ._db.schema import (
    DEFAULT_MESSAGES_TABLE,
    DEFAULT_SESSIONS_TABLE,
    Tables,
    build_tables,
    validate_identifier,
)
from .errors import ConfigurationError, InvalidInputError, SchemaError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_VERSION_TABLE",
    "MigrationOptions",
    "StoreNames",
    "current",
    "downgrade",
    "drop_version_table",
    "head",
    "history",
    "make_config",
    "revision_names",
    "script_directory",
    "script_location",
    "stamp",
    "upgrade",
    "version_table_for",
]

DEFAULT_VERSION_TABLE = "convostore_alembic_version"
"""The version table of a store with the default table names."""

_VERSION_SUFFIX = "_alembic_version"


def version_table_for(sessions_table: str = DEFAULT_SESSIONS_TABLE) -> str:
    """Return the default version table of a store whose sessions table is ``sessions_table``.

    With the default table names it is
    [`DEFAULT_VERSION_TABLE`][convostore.migrate.DEFAULT_VERSION_TABLE]; with another sessions table
    it is ``<sessions_table>_alembic_version``, so two stores with different table names in one
    database (or schema) keep separate histories.

    Raises:
        ConfigurationError: The derived name is longer than 63 characters; pass
            ``version_table`` explicitly.
    """
    if sessions_table == DEFAULT_SESSIONS_TABLE:
        return DEFAULT_VERSION_TABLE
    name = f"{sessions_table}{_VERSION_SUFFIX}"
    if len(name) > 63:
        raise ConfigurationError(
            f"the version table name derived from sessions_table {sessions_table!r} is longer "
            f"than 63 characters; choose one with version_table=... (-x version_table=...)"
        )
    return name


@dataclass(frozen=True)
class MigrationOptions:
    """Which store a migration applies to: its table names, schema and version table."""

    sessions_table: str = DEFAULT_SESSIONS_TABLE
    """Name of the sessions table."""

    messages_table: str = DEFAULT_MESSAGES_TABLE
    """Name of the messages table."""

    schema: str | None = None
    """PostgreSQL schema (MySQL: database) holding the tables and the version table."""

    version_table: str = field(default="")
    """Alembic's version table; empty means the sessions table's default.

    That default is what [`version_table_for`][convostore.migrate.version_table_for] returns.
    """

    def __post_init__(self) -> None:
        build_tables(self.sessions_table, self.messages_table, self.schema)  # validates names
        if self.version_table:
            validate_identifier(self.version_table, "version_table")
        else:
            object.__setattr__(self, "version_table", version_table_for(self.sessions_table))
        if self.version_table in self._table_names:
            raise ConfigurationError(
                f"version_table {self.version_table!r} must differ from the store's tables"
            )

    @classmethod
    def for_tables(cls, tables: Tables, version_table: str = "") -> MigrationOptions:
        """Return the options of the store made of ``tables``."""
        sessions, messages = tables.sessions, tables.messages
        return cls(sessions.name, messages.name, sessions.schema, version_table)

    @property
    def tables(self) -> Tables:
        """The store's tables, from the one schema definition in ``convostore._db.schema``."""
        return build_tables(self.sessions_table, self.messages_table, self.schema)

    @property
    def metadata(self) -> MetaData:
        """The target metadata of the migrations (and of ``compare_metadata``)."""
        return self.tables.metadata

    @property
    def _table_names(self) -> frozenset[str]:
        # Every table of build_tables (sessions, messages, idempotency keys), none other.
        return frozenset(table.name for table in self.metadata.sorted_tables)

    def include_name(self, name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
        """Alembic's ``include_name`` hook: reflect only this store's tables (and their parts)."""
        if type_ == "schema":
            return name == self.schema
        if type_ == "table":
            return parent_names.get("schema_name") == self.schema and name in self._table_names
        return True

    def _include_name_but(
        self,
        derived: frozenset[tuple[str, str]],
        name: str | None,
        type_: str,
        parent_names: Mapping[str, Any],
    ) -> bool:
        if type_ == "foreign_key_constraint" and (parent_names.get("table_name"), name) in derived:
            return False
        return self.include_name(name, type_, parent_names)

    def include_object(
        self, obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        """Alembic's ``include_object`` hook: compare only this store's tables."""
        if type_ == "table":
            return obj.schema == self.schema and name in self._table_names
        table = getattr(obj, "table", None)
        if isinstance(table, Table):
            return table.name in self._table_names
        return True

    def context_options(self, connection: Connection | None = None) -> dict[str, Any]:
        """Keyword arguments for Alembic's ``context.configure`` (and ``MigrationContext``).

        The revisions read the table names from the ``convostore`` entry.

        Args:
            connection: The database the context compares (online mode). On PostgreSQL,
                the constraints the server derives for partitions (the per-partition copies
                of the chunks table's foreign key, see ``convostore.layouts``) are then left
                out of the comparison, as the partitions themselves always are. On a
                MariaDB Spider head, so are the foreign keys its Spider tables have not (the
                data nodes' tables have them).
        """
        from ._layouts.postgresql import derived_constraints
        from ._layouts.spider import without_spider_foreign_keys

        derived = derived_constraints(connection, self.tables) if connection else frozenset()
        include_name = (
            functools.partial(self._include_name_but, derived) if derived else self.include_name
        )
        include_object: Callable[..., bool] = self.include_object
        if connection is not None:
            include_object = without_spider_foreign_keys(connection, self.tables, include_object)
        return {
            "target_metadata": self.metadata,
            "version_table": self.version_table,
            "version_table_schema": self.schema,
            "include_schemas": self.schema is not None,
            "include_name": include_name,
            "include_object": include_object,
            "compare_type": True,
            "convostore": {
                "sessions_table": self.sessions_table,
                "messages_table": self.messages_table,
                "schema": self.schema,
            },
        }


def revision_names(context: MigrationContext) -> tuple[str, str, str | None]:
    """The sessions table, messages table and schema a revision applies to.

    Revisions call it with ``op.get_context()``; the names are those
    [`MigrationOptions.context_options`][convostore.migrate.MigrationOptions.context_options] gave
    the context (the defaults if none were). Frozen: the released revisions import it, so its
    module, name and result never change.
    """
    names = context.opts.get("convostore") or {}
    return (
        names.get("sessions_table", DEFAULT_SESSIONS_TABLE),
        names.get("messages_table", DEFAULT_MESSAGES_TABLE),
        names.get("schema"),
    )


# -- where the scripts are ------------------------------------------------------------------


def script_location() -> str:
    """Return Alembic's ``script_location`` of convostore's migrations.

    ``convostore:migrations`` (a package resource) when the package was installed from a
    wheel; the ``migrations/`` folder of the source checkout for an editable install.

    Raises:
        ConfigurationError: Neither exists (a broken installation).
    """
    packaged = resources.files("convostore") / "migrations"
    if packaged.is_dir() and (packaged / "env.py").is_file():
        return "convostore:migrations"
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return str(checkout)
    raise ConfigurationError(
        "convostore's migration scripts are not installed (no convostore/migrations in the "
        "package); reinstall convostore from its wheel"
    )


def make_config(
    options: MigrationOptions | None = None,
    *,
    x_arguments: Mapping[str, str] | None = None,
    stdout: Any = None,
) -> Config:
    """Return an Alembic ``Config`` for convostore's scripts, without an ini file.

    Args:
        options: The store to migrate; if ``None``, env.py resolves it from ``-x`` settings,
            ``CONVOSTORE_*`` variables and defaults.
        x_arguments: Settings as given with ``alembic -x key=value`` (``url``, table names ...).
        stdout: Where Alembic's commands print (``current``, ``history``, ``--sql``).
    """
    import argparse

    from alembic.config import Config

    cmd_opts = argparse.Namespace(x=[f"{k}={v}" for k, v in (x_arguments or {}).items()])
    config = Config(cmd_opts=cmd_opts, stdout=stdout) if stdout else Config(cmd_opts=cmd_opts)
    config.set_main_option("script_location", script_location())
    if options is not None:
        config.attributes["convostore_options"] = options
    return config


@functools.lru_cache(maxsize=8)
def _script_directory(location: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    config = make_config()
    config.set_main_option("script_location", location)
    return ScriptDirectory.from_config(config)


def script_directory() -> ScriptDirectory:
    """Return convostore's Alembic ``ScriptDirectory`` (loaded once per process)."""
    return _script_directory(script_location())


def head() -> str:
    """Return the latest revision of convostore's migrations.

    Raises:
        SchemaError: The history has more than one head (a packaging mistake).
    """
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise SchemaError(f"convostore's migrations have {len(heads)} heads: {heads}")
    return heads[0]


def history() -> list[str]:
    """Return the revisions, oldest first, each as ``"<id>: <message>"``.

    The last one is [`head`][convostore.migrate.head].
    """
    scripts = list(script_directory().walk_revisions())
    return [f"{s.revision}: {s.doc}" for s in reversed(scripts)]


# -- running commands on an engine ----------------------------------------------------------


class StoreNames(TypedDict, total=False):
    """Which store a command applies to.

    The keyword arguments of [`upgrade`][convostore.migrate.upgrade] and the other commands.

    Each key is optional, and means what the
    [`MigrationOptions`][convostore.migrate.MigrationOptions] field of its name means, with the same
    default.
    """

    sessions_table: str
    messages_table: str
    schema: str | None
    version_table: str


def _check_engine(engine: object) -> None:
    if not isinstance(engine, AsyncEngine):
        raise ConfigurationError(
            f"engine must be a sqlalchemy.ext.asyncio.AsyncEngine, got {type(engine).__name__}"
        )


async def _run(
    engine: AsyncEngine, options: MigrationOptions, work: Callable[[Config], Any]
) -> Any:
    _check_engine(engine)
    config = make_config(options)

    def run(connection: Connection) -> Any:
        # Alembic's cookbook: env.py runs on this connection instead of making an engine.
        config.attributes["connection"] = connection
        return work(config)

    from alembic.util import CommandError

    try:
        async with _database_errors(engine), engine.begin() as conn:
            return await conn.run_sync(run)
    except CommandError as exc:
        # Alembic's word for an argument it cannot use: an unknown revision, mostly.
        raise InvalidInputError(
            f"{exc}; convostore.migrate.history() (or `convostore migrate history`) lists "
            f"the revisions"
        ) from exc


@contextlib.asynccontextmanager
async def _database_errors(engine: AsyncEngine) -> AsyncIterator[None]:
    """Raise the database's errors as convostore's, the driver's chained (as sessions do)."""
    try:
        yield
    except (DBAPIError, OSError, PoolTimeoutError) as exc:
        raise engine_state(engine).error_for(exc) from exc


async def upgrade(engine: AsyncEngine, revision: str = "head", **names: Unpack[StoreNames]) -> None:
    """Upgrade convostore's tables to ``revision`` (the latest by default) on ``engine``.

    Runs Alembic on one connection of the engine, in one transaction where the database has
    transactional DDL (PostgreSQL, SQLite). An up-to-date database is left unchanged. A
    database written by the Agents SDK's ``SQLAlchemySession`` (same table names) is
    converted in place, keeping every message and each session's order.

    Args:
        engine: The application's async engine (not disposed here).
        revision: The target revision.
        **names: Which store ([`StoreNames`][convostore.migrate.StoreNames]): ``sessions_table``,
            ``messages_table``, ``schema``, ``version_table``.

    Raises:
        ConfigurationError: A name is unusable, or ``engine`` is not an ``AsyncEngine``.
        InvalidInputError: ``revision`` is not one of convostore's revisions.
        DatabaseUnreachableError: Nothing answered at the engine's address (and it never
            connected there).
        StorageError: The database refused (a wrong password, an unknown database, a missing
            privilege); the driver's error is the ``__cause__``.
    """
    from alembic import command

    options = MigrationOptions(**names)
    await _run(engine, options, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str, **names: Unpack[StoreNames]) -> None:
    """Downgrade convostore's tables to ``revision``; ``"base"`` drops them (and their data).

    Arguments as for [`upgrade`][convostore.migrate.upgrade].
    """
    from alembic import command

    options = MigrationOptions(**names)
    await _run(engine, options, lambda cfg: command.downgrade(cfg, revision))


async def stamp(engine: AsyncEngine, revision: str, **names: Unpack[StoreNames]) -> None:
    """Record ``revision`` in the version table without running any migration.

    Arguments as for [`upgrade`][convostore.migrate.upgrade].
    """
    from alembic import command

    options = MigrationOptions(**names)
    await _run(engine, options, lambda cfg: command.stamp(cfg, revision))


async def current(engine: AsyncEngine, **names: Unpack[StoreNames]) -> tuple[str, ...]:
    """Return the revisions recorded in the store's version table (empty: never migrated).

    Arguments as for [`upgrade`][convostore.migrate.upgrade].
    """
    options = MigrationOptions(**names)
    _check_engine(engine)
    async with _database_errors(engine), engine.connect() as conn:
        return await conn.run_sync(_version_table.current_heads, options)


def drop_version_table(conn: Connection, tables: Tables) -> None:
    """Drop the version table of the store made of ``tables``, if it exists.

    For tearing a store down by hand after dropping its tables (tests, throwaway databases);
    ``convostore migrate downgrade base`` does both.
    """
    _version_table.drop(conn, MigrationOptions.for_tables(tables))


# -- deprecated names (one release) -----------------------------------------------------------


def __getattr__(name: str) -> Any:
    """Return a name this module no longer defines, with a ``DeprecationWarning`` (PEP 562)."""
    return _deprecated.moved_name(name)


# ``convostore.migrate`` was also a function: the module stays callable for one release.
sys.modules[__name__].__class__ = _deprecated.CallableModule
