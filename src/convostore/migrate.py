"""Alembic migrations for convostore's tables: the programmatic API and the settings of env.py.

Usage::

    import convostore

    engine = convostore.create_engine("postgresql://app@db/agents")
    await convostore.migrate(engine)  # upgrade to the latest revision ("head")
    await convostore.migrate(engine, sessions_table="chat_sessions", messages_table="chat_items")

The migration scripts ship inside the package (``convostore:migrations``); the command line
(``convostore migrate upgrade head``) and an application's own ``alembic.ini`` (a section with
``script_location = convostore:migrations``) run the same scripts. convostore records its
revision in a version table of its own (:data:`DEFAULT_VERSION_TABLE`), so its history lives
beside an application's ``alembic_version`` without touching it.

Alembic is imported on first use, so ``import convostore`` stays light.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ._db.schema import (
    DEFAULT_MESSAGES_TABLE,
    DEFAULT_SESSIONS_TABLE,
    Tables,
    build_tables,
    validate_identifier,
)
from ._db.urls import to_async_url
from .errors import ConfigurationError, SchemaError, UnsupportedDriverError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

__all__ = [
    "DEFAULT_VERSION_TABLE",
    "MigrationOptions",
    "check_revision",
    "current",
    "downgrade",
    "drop_version_table",
    "head",
    "history",
    "make_config",
    "migrate",
    "options_from_config",
    "revision_names",
    "script_location",
    "stamp",
    "stamp_head",
    "version_table_for",
]

DEFAULT_VERSION_TABLE = "convostore_alembic_version"
"""The version table of a store with the default table names."""

_VERSION_SUFFIX = "_alembic_version"

# The settings a user may give with ``-x key=value``, an environment variable or the ini file.
_SETTINGS = ("url", "sessions_table", "messages_table", "schema", "version_table")
_ENV_VARS = {key: f"CONVOSTORE_{key.upper()}" for key in _SETTINGS}


def version_table_for(sessions_table: str = DEFAULT_SESSIONS_TABLE) -> str:
    """Return the default version table of a store whose sessions table is ``sessions_table``.

    With the default table names it is :data:`DEFAULT_VERSION_TABLE`; with another sessions
    table it is ``<sessions_table>_alembic_version``, so two stores with different table names
    in one database (or schema) keep separate histories.

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
    """Alembic's version table; empty means :func:`version_table_for` the sessions table."""

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
        """The store's tables, from the one schema definition in :mod:`convostore.schema`."""
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

    def context_options(self) -> dict[str, Any]:
        """Keyword arguments for Alembic's ``context.configure`` (and ``MigrationContext``).

        The revisions read the table names from the ``convostore`` entry.
        """
        return {
            "target_metadata": self.metadata,
            "version_table": self.version_table,
            "version_table_schema": self.schema,
            "include_schemas": self.schema is not None,
            "include_name": self.include_name,
            "include_object": self.include_object,
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
    :meth:`MigrationOptions.context_options` gave the context (the defaults if none were).
    """
    names = context.opts.get("convostore") or {}
    return (
        names.get("sessions_table", DEFAULT_SESSIONS_TABLE),
        names.get("messages_table", DEFAULT_MESSAGES_TABLE),
        names.get("schema"),
    )


@dataclass(frozen=True)
class EnvSettings:
    """What env.py needs: the store's options and the database URL (if one was given)."""

    options: MigrationOptions
    """The store the migrations apply to."""

    url: URL | None
    """The database URL, with an async driver where convostore maps one; may be sync."""

    def require_url(self) -> URL:
        """Return the URL, or raise ConfigurationError saying how to give one."""
        if self.url is None:
            raise ConfigurationError(
                "no database URL: pass `-x url=...` (convostore migrate --url ...), set "
                "CONVOSTORE_URL, or set sqlalchemy.url in the ini file"
            )
        return self.url


def options_from_config(config: Config, x_arguments: Mapping[str, str]) -> EnvSettings:
    """Resolve env.py's settings: ``-x key=value``, then ``CONVOSTORE_*``, then the ini file.

    Settings: ``url`` (``CONVOSTORE_URL``, ini ``sqlalchemy.url``), ``sessions_table``,
    ``messages_table``, ``schema`` and ``version_table`` (``CONVOSTORE_SESSIONS_TABLE`` ...,
    ini keys of the same names). Options set by the programmatic API (``config.attributes``)
    come before all of them.

    Raises:
        ConfigurationError: An unknown ``-x`` key, or an unusable name or URL.
    """
    unknown = sorted(set(x_arguments) - set(_SETTINGS))
    if unknown:
        raise ConfigurationError(
            f"unknown -x setting(s) {unknown}; convostore's are {', '.join(_SETTINGS)}"
        )

    def setting(key: str) -> str | None:
        value = x_arguments.get(key) or os.environ.get(_ENV_VARS[key])
        if not value:
            ini_key = "sqlalchemy.url" if key == "url" else key
            value = config.get_main_option(ini_key)
        return value or None

    given = config.attributes.get("convostore_options")
    if isinstance(given, MigrationOptions):
        options = given
    else:
        options = MigrationOptions(
            sessions_table=setting("sessions_table") or DEFAULT_SESSIONS_TABLE,
            messages_table=setting("messages_table") or DEFAULT_MESSAGES_TABLE,
            schema=setting("schema"),
            version_table=setting("version_table") or "",
        )
    raw_url = setting("url")
    return EnvSettings(options=options, url=migration_url(raw_url) if raw_url else None)


def migration_url(url: str | URL) -> URL:
    """Map a plain URL to convostore's async driver; keep an explicit sync driver as written.

    Raises:
        ConfigurationError: The URL cannot be parsed or names an unknown backend.
    """
    try:
        return to_async_url(url)
    except UnsupportedDriverError:
        # Migrations run fine on a sync driver (psycopg2, pymysql ...): env.py uses it as is.
        from sqlalchemy.engine import make_url

        return make_url(url) if isinstance(url, str) else url


def is_async_url(url: URL) -> bool:
    """Whether ``url`` names an async driver (one that needs ``create_async_engine``)."""
    return bool(getattr(url.get_dialect(), "is_async", False))


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
    """Return the revisions from the first to :func:`head`, each as ``"<id>: <message>"``."""
    scripts = list(script_directory().walk_revisions())
    return [f"{s.revision}: {s.doc}" for s in reversed(scripts)]


# -- running commands on an engine ----------------------------------------------------------


async def _run(
    engine: AsyncEngine, options: MigrationOptions, work: Callable[[Config], Any]
) -> Any:
    if not isinstance(engine, AsyncEngine):
        raise ConfigurationError(
            f"engine must be a sqlalchemy.ext.asyncio.AsyncEngine, got {type(engine).__name__}"
        )
    config = make_config(options)

    def run(connection: Connection) -> Any:
        # Alembic's cookbook: env.py runs on this connection instead of making an engine.
        config.attributes["connection"] = connection
        return work(config)

    async with engine.begin() as conn:
        return await conn.run_sync(run)


async def migrate(
    engine: AsyncEngine,
    revision: str = "head",
    *,
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    schema: str | None = None,
    version_table: str = "",
) -> None:
    """Upgrade convostore's tables to ``revision`` (the latest by default) on ``engine``.

    Runs Alembic on one connection of the engine, in one transaction where the database has
    transactional DDL (PostgreSQL, SQLite). An up-to-date database is left unchanged. A
    database written by the Agents SDK's ``SQLAlchemySession`` (same table names) is
    converted in place, keeping every message and each session's order.

    Args:
        engine: The application's async engine (not disposed here).
        revision: The target revision.
        sessions_table: Name of the sessions table.
        messages_table: Name of the messages table.
        schema: PostgreSQL schema holding the tables (and the version table).
        version_table: Alembic's version table; by default ``convostore_alembic_version``,
            or ``<sessions_table>_alembic_version`` for other table names.

    Raises:
        ConfigurationError: A name is unusable.
    """
    from alembic import command

    options = MigrationOptions(sessions_table, messages_table, schema, version_table)
    await _run(engine, options, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(
    engine: AsyncEngine,
    revision: str,
    *,
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    schema: str | None = None,
    version_table: str = "",
) -> None:
    """Downgrade convostore's tables to ``revision``; ``"base"`` drops them (and their data).

    Arguments as for :func:`migrate`.
    """
    from alembic import command

    options = MigrationOptions(sessions_table, messages_table, schema, version_table)
    await _run(engine, options, lambda cfg: command.downgrade(cfg, revision))


async def stamp(
    engine: AsyncEngine,
    revision: str,
    *,
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    schema: str | None = None,
    version_table: str = "",
) -> None:
    """Record ``revision`` in the version table without running any migration.

    Arguments as for :func:`migrate`.
    """
    from alembic import command

    options = MigrationOptions(sessions_table, messages_table, schema, version_table)
    await _run(engine, options, lambda cfg: command.stamp(cfg, revision))


async def current(
    engine: AsyncEngine,
    *,
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    schema: str | None = None,
    version_table: str = "",
) -> tuple[str, ...]:
    """Return the revisions recorded in the store's version table (empty: never migrated).

    Arguments as for :func:`migrate`.
    """
    options = MigrationOptions(sessions_table, messages_table, schema, version_table)
    async with engine.connect() as conn:
        return await conn.run_sync(_current_heads, options)


def _current_heads(conn: Connection, options: MigrationOptions) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(
        conn,
        opts={"version_table": options.version_table, "version_table_schema": options.schema},
    )
    return tuple(context.get_current_heads())


# -- create_tables: "building an up-to-date database from scratch" ---------------------------


def check_revision(conn: Connection, tables: Tables) -> None:
    """Refuse to create tables beside an older revision of them: they need ``upgrade head``.

    Raises:
        SchemaError: The store's version table records a revision older than :func:`head`.
    """
    options = MigrationOptions.for_tables(tables)
    if not _has_version_table(conn, options):
        return
    heads = _current_heads(conn, options)
    latest = head()
    if not heads or latest in heads:
        return
    known = script_directory()
    if all(_is_known(known, rev) for rev in heads):
        raise SchemaError(
            f"the tables {tables.sessions.name!r}/{tables.messages.name!r} are at revision "
            f"{', '.join(heads)}, older than this convostore ({latest}); run "
            f"`convostore migrate upgrade head` (or `await convostore.migrate(engine)`) first"
        )
    # A revision this version does not know comes from a newer convostore: leave it alone.


def stamp_head(conn: Connection, tables: Tables) -> None:
    """Record :func:`head` in the store's version table if it records nothing yet.

    Called by ``create_tables`` after ``create_all``, on the same connection and in the same
    transaction, so that a later ``upgrade head`` has nothing to do.
    """
    from alembic.runtime.migration import MigrationContext

    options = MigrationOptions.for_tables(tables)
    context = MigrationContext.configure(
        conn,
        opts={"version_table": options.version_table, "version_table_schema": options.schema},
    )
    if context.get_current_heads():
        return
    try:
        with conn.begin_nested():
            context.stamp(script_directory(), "head")
    except DBAPIError:
        # Another process created the same tables at the same moment and stamped first.
        if not _current_heads(conn, options):
            raise


def _has_version_table(conn: Connection, options: MigrationOptions) -> bool:
    return bool(inspect(conn).has_table(options.version_table, schema=options.schema))


def _is_known(scripts: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def drop_empty_version_table(
    conn: Connection, options: MigrationOptions, heads: Sequence[str]
) -> None:
    """Drop the store's version table if it records no revision (after ``downgrade base``).

    Args:
        conn: The migration's connection.
        options: The store.
        heads: The revisions the version table records now.
    """
    if heads or not _has_version_table(conn, options):
        return
    Table(options.version_table, MetaData(), schema=options.schema).drop(conn)


def drop_version_table(conn: Connection, tables: Tables) -> None:
    """Drop the version table of the store made of ``tables``, if it exists.

    For tearing a store down by hand after dropping its tables (tests, throwaway databases);
    ``convostore migrate downgrade base`` does both.
    """
    options = MigrationOptions.for_tables(tables)
    Table(options.version_table, MetaData(), schema=options.schema).drop(conn, checkfirst=True)
