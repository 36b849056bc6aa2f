"""The one validated context a session or store passes down to every layer below it.

A ``Context`` is built once, when a session or store is constructed, from arguments
that have all been checked: where the engine comes from (one the application passed in,
or one per event loop made from a URL), the tables (schema included), the retry policy and
the limits. The layers below take it, or the ``convostore._db.engine.Database`` it gives for
the running event loop, and nothing else: no layer reaches back up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ._closing import AsyncClosing
from ._config import RetryPolicy, SessionSettingsLike, coerce_settings, present_settings
from ._db.engine import Database, engine_state
from ._db.loops import LoopEngines, check_loop
from ._db.schema import Tables, build_tables
from ._table_creation import create_tables
from ._validate import optional_int
from .errors import ConfigurationError

__all__ = ["Context", "ContextOwner", "check_schema"]


def check_schema(schema: str | None, engine: AsyncEngine) -> str | None:
    """Return ``schema`` if the engine's database can hold tables in a named schema.

    PostgreSQL has schemas; on MySQL and MariaDB a schema is a database on the same server.
    A SQLite file has a single schema, so a name there would only point at a database that
    was never attached.

    Raises:
        ConfigurationError: ``schema`` is given for a SQLite engine.
    """
    if schema is not None and engine.dialect.name == "sqlite":
        raise ConfigurationError(
            f"schema={schema!r} is not supported on SQLite (a SQLite file has one schema); "
            f"use another database file in the URL, or other table names"
        )
    return schema


class Context:
    """Engine source, tables, retry policy and limits: validated once, shared downward.

    A store's sessions share the store's context, so they share its engines, its
    statements and what it knows about its tables.
    """

    def __init__(
        self,
        engine: AsyncEngine | str | URL,
        *,
        sessions_table: str,
        messages_table: str,
        schema: str | None,
        retry: RetryPolicy,
        create_tables: bool,
        max_item_bytes: int | None = None,
        max_items_per_session: int | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Check every argument and make the engine (for a URL); nothing is connected.

        Raises:
            ConfigurationError: An argument is unusable; the message names it.
            UnsupportedDriverError: The URL names a synchronous driver.
            MissingDependencyError: The URL's driver is not installed.
        """
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self.retry = retry
        """How transient database errors are retried."""
        self.max_item_bytes = optional_int(max_item_bytes, "max_item_bytes", minimum=1)
        """The largest item, in bytes of stored JSON, that writes accept (or ``None``)."""
        self.max_items_per_session = optional_int(
            max_items_per_session, "max_items_per_session", minimum=1
        )
        """The bound every write trims its session to (or ``None``)."""
        self.engines: LoopEngines | None
        """One engine per event loop, when the context was made from a URL."""
        if isinstance(engine, AsyncEngine):
            if engine_kwargs is not None:
                raise ConfigurationError(
                    "engine_kwargs apply only when given a URL; this was given an AsyncEngine, "
                    "so pass those options to create_async_engine() where the engine is made, "
                    "or give the URL instead"
                )
            self.engines = None
            self.given = engine
            engine_state(engine)
        elif isinstance(engine, (str, URL)):
            self.engines = LoopEngines(engine, engine_kwargs or {})
            self.given = self.engines.first
        else:
            raise ConfigurationError(
                f"engine must be an AsyncEngine or a database URL, got {type(engine).__name__}"
            )
        self.owns_engine = self.engines is not None
        """Whether ``dispose`` disposes the engines (they were made from a URL)."""
        try:
            self.tables = build_tables(
                sessions_table, messages_table, check_schema(schema, self.given)
            )
        except BaseException:
            self.discard()
            raise
        self.dialect = self.given.dialect.name
        """The backend's name: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        self._tables_ready = not create_tables
        # The last loop's engine, ready: per-loop engines change only when a new loop
        # comes, and keeping only the last lets the engines of ended loops go.
        self._last: Database | None = None

    @property
    def engine(self) -> AsyncEngine:
        """The engine for the running event loop.

        Raises:
            EventLoopError: An engine passed in holds connections of another event loop.
        """
        if self.engines is not None:
            return self.engines.current()
        return check_loop(self.given)

    def database(self) -> Database:
        """The running loop's engine, ready for this context's tables."""
        engine = self.engine
        db = self._last
        if db is None or db.engine is not engine:
            db = self._last = Database.of(engine, self.tables)
        return db

    async def ready(self) -> Database:
        """``database``, with the tables created first if this context creates them."""
        db = self.database()
        if not self._tables_ready:
            if self.tables not in db.state.tables_ready:
                # Concurrent first uses (tasks, threads, processes) all get here: the
                # database's lock inside create_tables lets one of them create the tables.
                await create_tables(db.engine, self.tables)
                db.state.tables_ready.add(self.tables)
            self._tables_ready = True
        return db

    async def create_tables(self) -> None:
        """Create the tables where they are missing (development and tests)."""
        db = self.database()
        await create_tables(db.engine, self.tables)
        db.state.tables_ready.add(self.tables)
        self._tables_ready = True

    def discard(self) -> None:
        """Drop the engine made from a URL that never connected (construction failed)."""
        if self.engines is not None:
            self.engines.first.sync_engine.pool.dispose()

    async def dispose(self) -> None:
        """Dispose the engines made from a URL; an engine passed in is left alone."""
        self._last = None
        if self.engines is not None:
            await self.engines.dispose()

    def describe(self) -> str:
        """The URL, password hidden, for ``repr``."""
        return self.given.url.render_as_string(hide_password=True)


class ContextOwner(AsyncClosing):
    """What a session and a store have in common: a context, and default settings."""

    _context: Context
    _settings: SessionSettingsLike

    @property
    def engine(self) -> AsyncEngine:
        """The engine for the running event loop.

        Opened from a URL, there is one engine per event loop, made on demand (threads that
        each run a loop can share the object); an engine passed in is the one engine.

        Raises:
            EventLoopError: The engine passed in holds connections of another event loop.
        """
        return self._context.engine

    @property
    def tables(self) -> Tables:
        """The tables and their ``MetaData``."""
        return self._context.tables

    @property
    def max_item_bytes(self) -> int | None:
        """The largest item, in bytes of stored JSON, that writes accept, or ``None``."""
        return self._context.max_item_bytes

    @property
    def retry(self) -> RetryPolicy:
        """How transient database errors are retried."""
        return self._context.retry

    # Typed Any on purpose: the Agents SDK's Session protocol declares this attribute with
    # its own SessionSettings class, and a narrower type here would make type checkers reject
    # a convostore session passed to Runner.run(..., session=...).
    @property
    def session_settings(self) -> Any:
        """Settings an agent runner reads: ``limit`` is the default limit of ``get_items``.

        The Agents SDK's own ``SessionSettings`` when the SDK is installed (its wrappers accept no
        other class), [`convostore.SessionSettings`][convostore.SessionSettings] otherwise. The
        object belongs to its owner: changing a session's ``limit`` changes that session only, and a
        store's settings are copied into each session it hands out. Assigning accepts the same
        values as the constructor's argument, and copies them.
        """
        # Read first by an agent runner, once the SDK is imported anyway: looking the SDK
        # up here keeps it out of convostore's import and of sessions that never need it.
        self._settings = present_settings(self._settings)
        return self._settings

    @session_settings.setter
    def session_settings(self, value: Any) -> None:
        self._settings = coerce_settings(value)

    async def close(self) -> None:
        """Dispose the engines made from a URL; an engine passed in is left alone."""
        await self._context.dispose()
