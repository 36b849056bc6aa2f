"""``SessionStore``: one engine and one set of tables for all of an application's sessions.

Usage::

    from convostore import SessionStore

    store = SessionStore("postgresql://app@db/agents", max_items_per_session=10_000)
    session = store.session("conv-42", user_id="user-7", metadata={"title": "Trip to Oslo"})
    await Runner.run(agent, "Hello", session=session)

    page = await store.list_sessions(user_id="user-7", limit=20)   # newest first
    more = await store.list_sessions(user_id="user-7", limit=20, cursor=page.next_cursor)
    history = await store.get_page("conv-42", limit=50)            # the latest 50 items
    older = await store.get_page("conv-42", before=history.first_position, limit=50)
    await store.prune(older_than=datetime.timedelta(days=30))
    await store.close()

The store owns (or borrows) the engine and hands out :class:`~convostore.SQLAlchemySession`
objects that share it and its prepared statements, so thousands of sessions use one pool.
Every operation logs at debug level and, with ``opentelemetry-api`` installed, opens a span
(see :mod:`convostore.observability`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import IO, Any

from sqlalchemy import and_, bindparam, func, literal, or_, select, true, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import retention
from ._engines import LoopEngines, serving_engine, track_loop
from .chunks import assemble, read_whole
from .closing import AsyncClosing
from .engine import configure_engine
from .errors import (
    ConfigurationError,
    InvalidCursorError,
    InvalidInputError,
    SessionNotFoundError,
)
from .keytext import check_user_id
from .observability import traced
from .operations import Operations, shared_operations, utcnow
from .records import (
    ExportReport,
    ImportReport,
    ItemPage,
    PageItem,
    PruneReport,
    SessionInfo,
    SessionPage,
)
from .schema import (
    DEFAULT_MESSAGES_TABLE,
    DEFAULT_SESSIONS_TABLE,
    MAX_METADATA_BYTES,
    Tables,
    build_tables,
)
from .session import SQLAlchemySession, check_schema, create_tables, validate_session_id
from .settings import SessionSettingsLike, check_limit, coerce_settings, present_settings
from .transaction import DEFAULT_RETRY, RetryPolicy, run_read, run_write

__all__ = ["SessionStore", "StoreSession"]

_UNSET: Any = object()


class SessionStore(AsyncClosing):
    """All sessions of one database and table set, on one shared engine."""

    def __init__(
        self,
        engine: AsyncEngine | str | URL,
        *,
        sessions_table: str = DEFAULT_SESSIONS_TABLE,
        messages_table: str = DEFAULT_MESSAGES_TABLE,
        create_tables: bool = False,
        max_items_per_session: int | None = None,
        max_item_bytes: int | None = None,
        session_settings: SessionSettingsLike | dict[str, Any] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        engine_kwargs: dict[str, Any] | None = None,
        schema: str | None = None,
    ) -> None:
        """Open a store on an engine, or on a URL (the store then owns the engine).

        Args:
            engine: An ``AsyncEngine`` the application owns (never disposed here), or a
                database URL (plain URLs get the async driver, as in ``from_url``).
            sessions_table: Name of the sessions table.
            messages_table: Name of the messages table.
            create_tables: Create the tables on first use (development and tests).
            max_items_per_session: Keep at most this many items per session: each write
                that goes past it deletes the oldest items in the same transaction.
            max_item_bytes: Refuse items whose stored JSON is longer than this many bytes
                (as ``SQLAlchemySession``'s option of the same name).
            session_settings: Default settings of the sessions handed out (validated here;
                each session gets its own copy).
            retry: How transient database errors are retried.
            engine_kwargs: Passed to ``create_async_engine`` when ``engine`` is a URL
                (refused with an engine: configure that engine where it is created).
            schema: The PostgreSQL schema (MySQL/MariaDB: the database) holding the
                tables, as given to ``convostore migrate --schema``; refused on SQLite.

        Raises:
            ConfigurationError: A table name, URL or option is unusable.
            UnsupportedDriverError: The URL names a synchronous driver.
        """
        for name, value in (
            ("max_items_per_session", max_items_per_session),
            ("max_item_bytes", max_item_bytes),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigurationError(f"{name} must be None or an integer >= 1, got {value!r}")
        settings = coerce_settings(session_settings)
        if isinstance(engine, AsyncEngine):
            if engine_kwargs is not None:
                raise ConfigurationError(
                    "engine_kwargs apply only when SessionStore is given a URL; this store was "
                    "given an AsyncEngine, so pass those options to create_async_engine() "
                    "where the engine is made, or give the store the URL instead"
                )
            self._given_engine = engine
            self._engines: LoopEngines | None = None
            self._owns_engine = False
            configure_engine(engine)
            track_loop(engine)
        elif isinstance(engine, (str, URL)):
            # One engine per event loop, so threads that each run a loop can share the store.
            self._engines = LoopEngines(engine, engine_kwargs or {})
            self._given_engine = self._engines.first
            self._owns_engine = True
        else:
            raise ConfigurationError(
                f"engine must be an AsyncEngine or a database URL, got {type(engine).__name__}"
            )
        try:
            self._tables = build_tables(
                sessions_table, messages_table, check_schema(schema, self._given_engine)
            )
        except BaseException:
            if self._owns_engine:
                # Nothing has connected yet; dropping the pool is enough.
                self._given_engine.sync_engine.pool.dispose()
            raise
        self._retry = retry
        self._create_tables = create_tables
        self._tables_ready = not create_tables
        self.max_items_per_session = max_items_per_session
        """The per-session bound applied on every write, or ``None``."""
        self.max_item_bytes = max_item_bytes
        """The largest item, in bytes of stored JSON, its sessions accept, or ``None``."""
        self._settings = settings
        self._backend = self._given_engine.dialect.name

    # -- properties -----------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The engine every session of the store shares, for the running event loop.

        A store opened from a URL keeps one engine per event loop; an engine passed in is
        the one engine.

        Raises:
            EventLoopError: The engine passed in holds connections of another event loop.
        """
        return serving_engine(self._engines, self._given_engine)

    @property
    def _engine(self) -> AsyncEngine:
        return self.engine

    @property
    def _ops(self) -> Operations:
        return shared_operations(self.engine, self._tables, self._retry)

    @property
    def tables(self) -> Tables:
        """The store's tables and their ``MetaData``."""
        return self._tables

    @property
    def operations(self) -> Operations:
        """The SQL of the four session operations, shared by every session handed out."""
        return self._ops

    @property
    def session_settings(self) -> Any:
        """The default settings of the sessions this store hands out (each gets a copy).

        The Agents SDK's ``SessionSettings`` when the SDK is installed, as on a session.
        Assigning validates and copies the value.
        """
        self._settings = present_settings(self._settings)
        return self._settings

    @session_settings.setter
    def session_settings(self, value: Any) -> None:
        self._settings = coerce_settings(value)

    @property
    def retry(self) -> RetryPolicy:
        """How transient database errors are retried."""
        return self._retry

    def __repr__(self) -> str:
        url = self._given_engine.url.render_as_string(hide_password=True)
        return f"<SessionStore url={url!r} sessions_table={self._tables.sessions.name!r}>"

    # -- sessions -------------------------------------------------------------------------

    def session(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        session_settings: SessionSettingsLike | dict[str, Any] | None = None,
    ) -> StoreSession:
        """Return a session on the store's engine (cheap: nothing is read or written).

        Args:
            session_id: The conversation's identifier.
            user_id: The session's user, recorded by the first write if the session has
                none yet (change it later with :meth:`update_session`).
            metadata: The session's JSON object, recorded by the first write if the session
                has none yet.
            session_settings: Overrides the store's default settings.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a usable id.
            InvalidInputError: ``user_id`` or ``metadata`` is unusable.
        """
        return StoreSession(
            session_id,
            store=self,
            user_id=user_id,
            metadata=metadata,
            session_settings=session_settings if session_settings is not None else self._settings,
        )

    async def create_tables(self) -> None:
        """Create the store's tables where they are missing (development and tests)."""
        await create_tables(self._engine, self._tables)
        self._tables_ready = True

    async def _ready(self) -> None:
        if not self._tables_ready:
            await self.create_tables()

    # -- session records ------------------------------------------------------------------

    def _info_columns(self) -> list[Any]:
        s = self._tables.sessions
        return [
            s.c.session_id,
            s.c.created_at,
            s.c.updated_at,
            s.c.item_count,
            s.c.user_id,
            s.c.metadata,
        ]

    def _info(self, row: Any) -> SessionInfo:
        return SessionInfo(
            session_id=str(row.session_id),
            created_at=row.created_at,
            updated_at=row.updated_at,
            item_count=int(row.item_count),
            user_id=row.user_id,
            metadata=row.metadata or {},
        )

    async def get_session_info(self, session_id: str) -> SessionInfo | None:
        """Return the session's record, or ``None`` if no session has that id.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a usable id.
        """
        validate_session_id(session_id)
        await self._ready()
        s = self._tables.sessions
        stmt = select(*self._info_columns()).where(s.c.session_id == bindparam("sid"))
        async with traced("get_session_info", self._backend, session_id) as trace:

            async def work(conn: AsyncConnection) -> Any:
                return (await conn.execute(stmt, {"sid": session_id})).first()

            row = await run_read(self._engine, work, retry=self._retry)
            trace.item_count = int(row.item_count) if row is not None else 0
        return self._info(row) if row is not None else None

    async def require_session_info(self, session_id: str) -> SessionInfo:
        """Return the session's record.

        Raises:
            SessionNotFoundError: No session has that id.
        """
        info = await self.get_session_info(session_id)
        if info is None:
            raise SessionNotFoundError(f"no session with id {session_id!r}")
        return info

    async def update_session(
        self,
        session_id: str,
        *,
        user_id: str | None = _UNSET,
        metadata: dict[str, Any] | None = _UNSET,
    ) -> SessionInfo:
        """Set the session's ``user_id`` and/or replace its ``metadata``; return the record.

        Args:
            session_id: An existing session's id.
            user_id: The new user id (``None`` clears it); left alone if not given.
            metadata: The new JSON object (``None`` clears it); left alone if not given.

        Raises:
            SessionNotFoundError: No session has that id.
            InvalidInputError: ``user_id`` or ``metadata`` is unusable.
        """
        validate_session_id(session_id)
        values: dict[str, Any] = {}
        if user_id is not _UNSET:
            values["user_id"] = check_user_id(user_id)
        if metadata is not _UNSET:
            values["metadata"] = check_metadata(metadata)
        await self._ready()
        s = self._tables.sessions
        async with traced("update_session", self._backend, session_id):
            if values:
                stmt = update(s).where(s.c.session_id == bindparam("sid")).values(**values)

                async def work(conn: AsyncConnection) -> int:
                    return int((await conn.execute(stmt, {"sid": session_id})).rowcount)

                await run_write(self._engine, work, retry=self._retry)
        return await self.require_session_info(session_id)

    # -- listing --------------------------------------------------------------------------

    async def list_sessions(
        self,
        *,
        user_id: str | None = None,
        updated_after: dt.datetime | None = None,
        updated_before: dt.datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """Return one page of sessions, most recently updated first.

        Pagination is by keyset on ``(updated_at, session_id)``: pass the page's
        ``next_cursor`` back as ``cursor`` for the next page. A session that is not written
        to while you page appears exactly once, in order; one that is written to meanwhile
        moves to the front of the list, so it appears at most once more (on a new listing).

        Args:
            user_id: Only this user's sessions.
            updated_after: Only sessions updated strictly after this (aware) time.
            updated_before: Only sessions updated strictly before this (aware) time.
            limit: Sessions per page (1 to 1000).
            cursor: The ``next_cursor`` of the previous page.

        Raises:
            InvalidCursorError: ``cursor`` was not handed out by this method.
            InvalidInputError: A time is not timezone-aware, or ``limit`` is out of range.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit must be an integer from 1 to 1000, got {limit!r}")
        s = self._tables.sessions
        conditions: list[Any] = []
        if user_id is not None:
            conditions.append(s.c.user_id == check_user_id(user_id))
        if updated_after is not None:
            conditions.append(s.c.updated_at > _aware(updated_after, "updated_after"))
        if updated_before is not None:
            conditions.append(s.c.updated_at < _aware(updated_before, "updated_before"))
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            conditions.append(
                or_(s.c.updated_at < at, and_(s.c.updated_at == at, s.c.session_id < last_id))
            )
        stmt = (
            select(*self._info_columns())
            .where(and_(true(), *conditions))
            .order_by(s.c.updated_at.desc(), s.c.session_id.desc())
            .limit(limit + 1)
        )
        await self._ready()
        async with traced("list_sessions", self._backend) as trace:

            async def work(conn: AsyncConnection) -> list[Any]:
                return list((await conn.execute(stmt)).all())

            rows = await run_read(self._engine, work, retry=self._retry)
            trace.item_count = len(rows)
        sessions = [self._info(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = sessions[-1]
            next_cursor = encode_cursor(last.updated_at, last.session_id)
        return SessionPage(sessions=sessions, next_cursor=next_cursor)

    async def iter_sessions(
        self, *, user_id: str | None = None, page_size: int = 500
    ) -> AsyncIterator[SessionInfo]:
        """Yield every session (of a user), newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list_sessions(user_id=user_id, limit=page_size, cursor=cursor)
            for info in page.sessions:
                yield info
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def count_sessions(self, *, user_id: str | None = None) -> tuple[int, int]:
        """Return how many sessions (of a user) there are, and how many items they hold."""
        s = self._tables.sessions
        stmt = select(func.count(), func.coalesce(func.sum(s.c.item_count), 0))
        if user_id is not None:
            stmt = stmt.where(s.c.user_id == check_user_id(user_id))
        await self._ready()

        async def work(conn: AsyncConnection) -> tuple[int, int]:
            row = (await conn.execute(stmt)).one()
            return int(row[0]), int(row[1])

        return await run_read(self._engine, work, retry=self._retry)

    # -- paging through history -----------------------------------------------------------

    async def get_page(
        self,
        session_id: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> ItemPage:
        """Return up to ``limit`` items of a session with their positions, oldest first.

        Without ``after``, the page holds the latest items before ``before`` (or the latest
        items of all): scroll back with ``before=page.first_position``. With ``after``, the
        page holds the first items after that position (and before ``before``, if given):
        read forward with ``after=page.last_position``.

        Raises:
            SessionNotFoundError: No session has that id.
            InvalidInputError: A position is not an integer, or ``limit`` is out of range.
        """
        validate_session_id(session_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInputError(f"limit must be an integer from 1 to 10000, got {limit!r}")
        for name, value in (("before", before), ("after", after)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInputError(f"{name} must be None or an integer position")
        m = self._tables.messages
        stmt = select(m.c.position, m.c.message_data, m.c.chunk_count).where(
            m.c.session_id == bindparam("sid")
        )
        if before is not None:
            stmt = stmt.where(m.c.position < before)
        if after is not None:
            stmt = stmt.where(m.c.position > after).order_by(m.c.position)
        else:
            stmt = stmt.order_by(m.c.position.desc())
        stmt = stmt.limit(limit + 1)
        await self._ready()
        async with traced("get_page", self._backend, session_id) as trace:

            async def work(conn: AsyncConnection) -> list[Any]:
                rows = (await conn.execute(stmt, {"sid": session_id})).all()
                return await assemble(conn, self._tables, session_id, rows)

            rows = await read_whole(self._engine, work, retry=self._retry)
            trace.item_count = min(len(rows), limit)
        has_more = len(rows) > limit
        rows = rows[:limit]
        if after is None:
            rows.reverse()
        if not rows:
            await self.require_session_info(session_id)
        items = []
        for row in rows:
            decoded = self._ops.decode_rows(session_id, [row])
            if decoded:
                items.append(PageItem(position=int(row[0]), item=decoded[0]))
        return ItemPage(session_id=session_id, items=items, has_more=has_more)

    # -- retention ------------------------------------------------------------------------

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and its items; return whether it existed."""
        validate_session_id(session_id)
        await self._ready()
        s = self._tables.sessions
        async with traced("delete_session", self._backend, session_id) as trace:
            report = await retention.delete_sessions(self._ops, s.c.session_id == session_id)
            trace.item_count = report.items
        return report.sessions > 0

    async def trim(self, session_id: str, keep_last: int) -> int:
        """Keep only the session's latest ``keep_last`` items; return how many were deleted.

        Raises:
            InvalidLimitError: ``keep_last`` is not a non-negative integer.
        """
        validate_session_id(session_id)
        if check_limit(keep_last, "keep_last") is None:
            raise InvalidInputError("keep_last must be an integer >= 0, got None")
        await self._ready()
        async with traced("trim", self._backend, session_id) as trace:
            removed = await retention.trim(self._ops, session_id, keep_last)
            trace.item_count = removed
        return removed

    async def prune(
        self,
        older_than: dt.timedelta,
        *,
        user_id: str | None = None,
        dry_run: bool = False,
        batch_size: int = retention.DEFAULT_BATCH_SIZE,
        progress: Callable[[int, int], None] | None = None,
    ) -> PruneReport:
        """Delete whole sessions not updated for ``older_than``, in short batches.

        A session written to while the prune runs is re-checked under its row lock before
        it is deleted, and left alone if it is no longer old.

        Args:
            older_than: How long a session must have gone without writes (positive).
            user_id: Only this user's sessions.
            dry_run: Delete nothing; report what would be deleted.
            batch_size: Sessions per transaction, at most.
            progress: Called after each batch with the sessions and items it covered.

        Raises:
            InvalidInputError: ``older_than`` is not a positive ``timedelta``.
        """
        if not isinstance(older_than, dt.timedelta) or older_than <= dt.timedelta(0):
            raise InvalidInputError(f"older_than must be a positive timedelta, got {older_than!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        s = self._tables.sessions
        where: Any = s.c.updated_at < utcnow() - older_than
        if user_id is not None:
            where = and_(where, s.c.user_id == check_user_id(user_id))
        await self._ready()
        async with traced("prune", self._backend) as trace:
            report = await retention.delete_sessions(
                self._ops, where, dry_run=dry_run, batch_size=batch_size, progress=progress
            )
            trace.item_count = report.items
        return report

    async def delete_user(
        self,
        user_id: str,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> PruneReport:
        """Delete every session of ``user_id`` (a right-to-erasure request), in short batches.

        Raises:
            InvalidInputError: ``user_id`` is not a non-empty string.
        """
        where = self._tables.sessions.c.user_id == check_user_id(user_id)
        await self._ready()
        async with traced("delete_user", self._backend) as trace:
            report = await retention.delete_sessions(
                self._ops, where, dry_run=dry_run, progress=progress
            )
            trace.item_count = report.items
        return report

    # -- export and import ----------------------------------------------------------------

    async def export(
        self,
        out: IO[str],
        *,
        session_ids: Iterable[str] | None = None,
        user_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportReport:
        """Write sessions as JSON Lines to ``out``.

        See :func:`convostore.export.export_sessions` for the arguments and the format.
        """
        from .export import export_sessions

        await self._ready()
        async with traced("export", self._backend) as trace:
            report = await export_sessions(
                self, out, session_ids=session_ids, user_id=user_id, progress=progress
            )
            trace.item_count = report.items
        return report

    async def import_(
        self,
        lines: Iterable[str],
        *,
        on_existing: str = "error",
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Store the sessions of JSON Lines written by :meth:`export`.

        See :func:`convostore.export.import_sessions` for the arguments and the errors.
        """
        from .export import import_sessions

        await self._ready()
        async with traced("import", self._backend) as trace:
            report = await import_sessions(self, lines, on_existing=on_existing, progress=progress)
            trace.item_count = report.items
        return report

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Dispose the engine if the store created it from a URL; otherwise do nothing."""
        if self._owns_engine and self._engines is not None:
            await self._engines.dispose()


class StoreSession(SQLAlchemySession):
    """A :class:`~convostore.SQLAlchemySession` handed out by a :class:`SessionStore`.

    It shares the store's engine and statements, applies ``max_items_per_session`` and
    records its ``user_id`` and ``metadata`` in the transaction of its first write, and
    traces every operation.
    """

    def __init__(
        self,
        session_id: str,
        *,
        store: SessionStore,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        session_settings: SessionSettingsLike | dict[str, Any] | None = None,
    ) -> None:
        """Create a session of ``store``; use :meth:`SessionStore.session` instead."""
        super().__init__(
            session_id,
            engine=store._given_engine,
            create_tables=not store._tables_ready,
            sessions_table=store.tables.sessions.name,
            messages_table=store.tables.messages.name,
            session_settings=session_settings,
            retry=store.retry,
            max_item_bytes=store.max_item_bytes,
            schema=store.tables.sessions.schema,
        )
        self._store = store
        self._engines = store._engines  # the store's engine for each event loop
        self._pending: dict[str, Any] = {}
        if user_id is not None:
            self._pending["user_id"] = check_user_id(user_id)
        if metadata is not None:
            self._pending["metadata"] = check_metadata(metadata)

    @property
    def store(self) -> SessionStore:
        """The store that handed out this session."""
        return self._store

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """Return the history in order (see :meth:`SQLAlchemySession.get_items`)."""
        async with traced("get_items", self._store._backend, self.session_id) as trace:
            items = await super().get_items(limit)
            trace.item_count = len(items)
        return items

    async def add_items(self, items: list[Any], *, idempotency_key: str | None = None) -> None:
        """Append ``items`` (see :meth:`SQLAlchemySession.add_items`)."""
        async with traced("add_items", self._store._backend, self.session_id) as trace:
            trace.item_count = len(items) if isinstance(items, list) else None
            await super().add_items(items, idempotency_key=idempotency_key)
        if items:
            self._pending = {}

    async def pop_item(self) -> Any | None:
        """Remove and return the latest item (see :meth:`SQLAlchemySession.pop_item`)."""
        async with traced("pop_item", self._store._backend, self.session_id) as trace:
            item = await super().pop_item()
            trace.item_count = 0 if item is None else 1
        return item

    async def clear_session(self) -> None:
        """Remove this session and its items (see :meth:`SQLAlchemySession.clear_session`)."""
        async with traced("clear_session", self._store._backend, self.session_id):
            await super().clear_session()

    def _on_write(self) -> Callable[[AsyncConnection], Awaitable[None]] | None:
        keep = self._store.max_items_per_session
        pending = self._pending
        if keep is None and not pending:
            return None
        s = self.tables.sessions
        session_id = self.session_id

        async def then(conn: AsyncConnection) -> None:
            if pending:
                # Only fills what the session does not have yet: later changes go through
                # SessionStore.update_session and are never overwritten by a stale handle.
                values = {
                    name: func.coalesce(s.c[name], literal(value, type_=s.c[name].type))
                    for name, value in pending.items()
                }
                await conn.execute(
                    update(s).where(s.c.session_id == bindparam("sid")).values(**values),
                    {"sid": session_id},
                )
            if keep is not None:
                await retention.trim_within(conn, self.tables, session_id, keep)

        return then


# -- helpers --------------------------------------------------------------------------------


def check_metadata(metadata: Any) -> dict[str, Any] | None:
    """Return ``metadata`` if it is ``None`` or a dict that is storable as a JSON object.

    Raises:
        InvalidInputError: It is not.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise InvalidInputError(f"metadata cannot be stored as JSON: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(
            f"metadata is {size:,} bytes of JSON; the limit is {MAX_METADATA_BYTES:,}: keep "
            f"large data in the session's items"
        )
    return metadata


def _aware(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


def encode_cursor(updated_at: dt.datetime, session_id: str) -> str:
    """Return the opaque cursor for the keyset position ``(updated_at, session_id)``."""
    raw = json.dumps([updated_at.isoformat(), session_id], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """Return the keyset position of a cursor from :func:`encode_cursor`.

    Raises:
        InvalidCursorError: The cursor is malformed.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, session_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(session_id, str):
            raise ValueError("not a cursor")
        return when, session_id
    except (ValueError, TypeError, binascii.Error, UnicodeError, AttributeError):
        raise InvalidCursorError(
            f"not a cursor handed out by list_sessions: {cursor!r:.80}"
        ) from None
