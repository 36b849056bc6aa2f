"""``SessionStore``: one engine and one set of tables for all of an application's sessions.

Usage:

```python
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
```

The store owns (or borrows) the engine and hands out
[`SQLAlchemySession`][convostore.SQLAlchemySession] objects that share it and its prepared
statements, so thousands of sessions use one pool. Each method validates its arguments, opens a
trace and hands plain data to one operation in ``convostore._ops`` or ``convostore._db.history``;
the module is long only by its docstrings, which are the store's reference documentation. Every
operation logs at debug level and, with ``opentelemetry-api`` installed, opens a span (see
docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable
from typing import IO, Any

from sqlalchemy import and_
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ._config import (
    DEFAULT_RETRY,
    RetryPolicy,
    SessionSettingsLike,
    check_limit,
    coerce_settings,
)
from ._context import Context, ContextOwner
from ._db import history
from ._db.schema import DEFAULT_MESSAGES_TABLE, DEFAULT_SESSIONS_TABLE, utcnow
from ._observability import traced
from ._ops import export, import_, integrity, paging, retention, sessions
from ._records import (
    CorruptItem,
    ExportReport,
    ImportReport,
    ItemPage,
    PruneReport,
    SessionInfo,
    SessionPage,
)
from ._session import SQLAlchemySession
from ._validate import (
    check_aware,
    check_metadata,
    check_user_id,
    validate_session_id,
    whole_number,
)
from .errors import InvalidInputError, SessionNotFoundError

__all__ = ["SessionStore", "StoreSession"]

_UNSET: Any = object()


class SessionStore(ContextOwner):
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
        settings = coerce_settings(session_settings)
        self._context = Context(
            engine,
            sessions_table=sessions_table,
            messages_table=messages_table,
            schema=schema,
            retry=retry,
            create_tables=create_tables,
            max_item_bytes=max_item_bytes,
            max_items_per_session=max_items_per_session,
            engine_kwargs=engine_kwargs,
        )
        self._settings = settings
        self._backend = self._context.dialect

    # -- properties -----------------------------------------------------------------------

    @property
    def max_items_per_session(self) -> int | None:
        """The per-session bound applied on every write, or ``None``."""
        return self._context.max_items_per_session

    def __repr__(self) -> str:
        return (
            f"<SessionStore url={self._context.describe()!r} "
            f"sessions_table={self.tables.sessions.name!r}>"
        )

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
            user_id: The session's user, recorded by the first write if the session has none yet
                (change it later with [`update_session`][convostore.SessionStore.update_session]).
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
        await self._context.create_tables()

    # -- session records ------------------------------------------------------------------

    async def get_session_info(self, session_id: str) -> SessionInfo | None:
        """Return the session's record, or ``None`` if no session has that id.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a usable id.
        """
        validate_session_id(session_id)
        async with traced("get_session_info", self._backend, session_id) as trace:
            info = await sessions.get_info(self._context, session_id)
            trace.item_count = info.item_count if info is not None else 0
        return info

    async def require_session_info(self, session_id: str) -> SessionInfo:
        """Return the session's record.

        Raises:
            SessionNotFoundError: No session has that id.
        """
        info = await self.get_session_info(session_id)
        if info is None:
            raise SessionNotFoundError(f"no session with id {session_id!r}", session_id=session_id)
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
        async with traced("update_session", self._backend, session_id):
            if values:
                await sessions.update_record(self._context, session_id, values)
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
        whole_number(limit, "limit", minimum=1, maximum=1000, error=InvalidInputError)
        if cursor is not None:
            sessions.decode_cursor(cursor)
        async with traced("list_sessions", self._backend) as trace:
            page = await sessions.list_sessions(
                self._context,
                user_id=check_user_id(user_id),
                updated_after=_optional_aware(updated_after, "updated_after"),
                updated_before=_optional_aware(updated_before, "updated_before"),
                limit=limit,
                cursor=cursor,
            )
            trace.item_count = len(page.sessions) + (page.next_cursor is not None)
        return page

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
        return await sessions.count_sessions(self._context, user_id=check_user_id(user_id))

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
        whole_number(limit, "limit", minimum=1, maximum=10_000, error=InvalidInputError)
        for name, value in (("before", before), ("after", after)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInputError(f"{name} must be None or an integer position")
        async with traced("get_page", self._backend, session_id) as trace:
            items, has_more, found = await paging.read_page(
                self._context, session_id, before=before, after=after, limit=limit
            )
            trace.item_count = len(items)
        if not found:
            await self.require_session_info(session_id)
        return ItemPage(session_id=session_id, items=items, has_more=has_more)

    # -- retention ------------------------------------------------------------------------

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and its items; return whether it existed."""
        validate_session_id(session_id)
        where = self.tables.sessions.c.session_id == session_id
        async with traced("delete_session", self._backend, session_id) as trace:
            report = await retention.delete_sessions(self._context, where)
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
        async with traced("trim", self._backend, session_id) as trace:
            db = await self._context.ready()
            removed = await history.trim(db, session_id, keep_last, retry=self.retry)
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
        whole_number(batch_size, "batch_size", minimum=1, error=InvalidInputError)
        s = self.tables.sessions
        where: Any = s.c.updated_at < utcnow() - older_than
        if user_id is not None:
            where = and_(where, s.c.user_id == check_user_id(user_id))
        return await self._delete_where("prune", where, dry_run, batch_size, progress)

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
        where = self.tables.sessions.c.user_id == check_user_id(user_id)
        return await self._delete_where(
            "delete_user", where, dry_run, retention.DEFAULT_BATCH_SIZE, progress
        )

    async def _delete_where(
        self,
        operation: str,
        where: Any,
        dry_run: bool,
        batch_size: int,
        progress: Callable[[int, int], None] | None,
    ) -> PruneReport:
        async with traced(operation, self._backend) as trace:
            report = await retention.delete_sessions(
                self._context, where, dry_run=dry_run, batch_size=batch_size, progress=progress
            )
            trace.item_count = report.items
        return report

    async def prune_keys(self, older_than: dt.datetime) -> int:
        """Forget every idempotency key recorded before ``older_than``; return how many.

        A batch retried with a pruned key is stored again, so choose a cutoff well past the
        longest time a caller may retry or a workflow may replay (days, not seconds).

        Raises:
            InvalidInputError: ``older_than`` is not a timezone-aware datetime.
        """
        check_aware(older_than, "older_than")
        async with traced("prune_keys", self._backend) as trace:
            removed = await retention.prune_keys(self._context, older_than)
            trace.item_count = removed
        return removed

    async def find_corrupt_items(
        self, *, session_id: str | None = None, page_size: int = 1000
    ) -> list[CorruptItem]:
        """Return every stored item that cannot be decoded, in (session, position) order.

        convostore stores only JSON it has checked, so such a row was written by something
        else; reads and pops skip it (and log it). The scan reads ``page_size`` rows per
        statement, so its memory is one page whatever the table's size.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a usable id.
            ConfigurationError: ``page_size`` is not a positive integer.
        """
        if session_id is not None:
            validate_session_id(session_id)
        whole_number(page_size, "page_size", minimum=1)
        return await integrity.find_corrupt_items(
            self._context, session_id=session_id, page_size=page_size
        )

    # -- export and import ----------------------------------------------------------------

    async def export(
        self,
        out: IO[str],
        *,
        session_ids: Iterable[str] | None = None,
        user_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportReport:
        """Write sessions as JSON Lines to ``out``: every session, those listed, or a user's.

        One line per session, with its record and its items in order (docs/operations.md
        has the format). Sessions are read in keyset batches and items streamed, so memory
        stays one batch whatever the size.

        Raises:
            SessionNotFoundError: A listed session does not exist.
            InvalidInputError: ``session_ids`` or ``user_id`` is unusable.
        """
        async with traced("export", self._backend) as trace:
            report = await export.export_sessions(
                self._context, out, session_ids=session_ids, user_id=user_id, progress=progress
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
        """Store the sessions of JSON Lines written by [`export`][convostore.SessionStore.export].

        Each comes back exactly: the same ids, metadata, times, items and positions.

        Args:
            lines: The lines (a file opened for reading works).
            on_existing: ``"error"`` (the default) raises ``SessionExistsError`` at the first
                session that exists, the sessions before it stored; ``"skip"`` skips and
                reports it.
            progress: Called after each stored batch with its sessions and items.

        Raises:
            SessionExistsError: A session exists and ``on_existing="error"``.
            InvalidInputError: A line is not a convostore export line.
        """
        async with traced("import", self._backend) as trace:
            report = await import_.import_sessions(
                self._context, lines, on_existing=on_existing, progress=progress
            )
            trace.item_count = report.items
        return report


class StoreSession(SQLAlchemySession):
    """A session handed out by a store.

    A [`SQLAlchemySession`][convostore.SQLAlchemySession] of a
    [`SessionStore`][convostore.SessionStore]: it shares the store's engine and statements, applies
    ``max_items_per_session`` and records its ``user_id`` and ``metadata`` in the transaction of its
    first write, and traces every operation.
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
        """Made by [`SessionStore.session`][convostore.SessionStore.session], not directly."""
        # The store's own context: its engines, statements and tables, shared.
        super().__init__(session_id, engine=store._context, session_settings=session_settings)  # type: ignore[arg-type]
        self._store = store
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
        """Return the history in order.

        As [`SQLAlchemySession.get_items`][convostore.SQLAlchemySession.get_items].
        """
        async with traced("get_items", self._store._backend, self.session_id) as trace:
            items = await super().get_items(limit)
            trace.item_count = len(items)
        return items

    async def add_items(self, items: list[Any], *, idempotency_key: str | None = None) -> None:
        """Append ``items``.

        As [`SQLAlchemySession.add_items`][convostore.SQLAlchemySession.add_items].
        """
        async with traced("add_items", self._store._backend, self.session_id) as trace:
            trace.item_count = len(items) if isinstance(items, list) else None
            await super().add_items(items, idempotency_key=idempotency_key)
        if items:
            self._pending = {}

    async def pop_item(self) -> Any | None:
        """Remove and return the latest item.

        As [`SQLAlchemySession.pop_item`][convostore.SQLAlchemySession.pop_item].
        """
        async with traced("pop_item", self._store._backend, self.session_id) as trace:
            item = await super().pop_item()
            trace.item_count = 0 if item is None else 1
        return item

    async def clear_session(self) -> None:
        """Remove this session and its items.

        As [`SQLAlchemySession.clear_session`][convostore.SQLAlchemySession.clear_session].
        """
        async with traced("clear_session", self._store._backend, self.session_id):
            await super().clear_session()

    async def close(self) -> None:
        """Do nothing: the store owns the engine (close the store instead)."""

    def _record_to_fill(self) -> dict[str, Any] | None:
        return self._pending or None


def _optional_aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
    return None if value is None else check_aware(value, name)
