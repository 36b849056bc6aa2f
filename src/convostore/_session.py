"""``SQLAlchemySession``: a conversation's history in SQLite, PostgreSQL or MySQL/MariaDB.

Usage:

```python
from agents import Agent, Runner
from convostore import SQLAlchemySession

async with SQLAlchemySession.from_url(
    "user-123", url="sqlite:///conversations.db", create_tables=True
) as session:
    result = await Runner.run(agent, "Hello", session=session)
```

The constructor and methods match the Agents SDK's ``SQLAlchemySession``; an application
switches by changing the import. What convostore adds: order by a per-session position
assigned inside the write transaction (never by a clock), one transaction per batch with
row locking and retries, cancellation-safe writes, large payloads on every backend, typed
errors for bad input, and Alembic migrations for the same schema.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _compaction
from ._codec import encode_items
from ._config import (
    DEFAULT_RETRY,
    RetryPolicy,
    SessionSettingsLike,
    check_limit,
    coerce_settings,
)
from ._context import Context, ContextOwner
from ._db import history
from ._db.schema import DEFAULT_MESSAGES_TABLE, DEFAULT_SESSIONS_TABLE
from ._validate import validate_idempotency_key, validate_session_id
from .errors import ConfigurationError

__all__ = ["SQLAlchemySession"]


class SQLAlchemySession(ContextOwner):
    """A conversation's history, stored through an SQLAlchemy ``AsyncEngine``.

    Implements [`convostore.Session`][convostore.Session] and the Agents SDK's session protocol.
    """

    session_id: str
    """The conversation's identifier (at most 255 characters, compared exactly)."""

    def __init__(
        self,
        session_id: str,
        *,
        engine: AsyncEngine,
        create_tables: bool = False,
        sessions_table: str = DEFAULT_SESSIONS_TABLE,
        messages_table: str = DEFAULT_MESSAGES_TABLE,
        session_settings: SessionSettingsLike | dict[str, Any] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_item_bytes: int | None = None,
        schema: str | None = None,
        ensure_ascii: bool | None = None,
    ) -> None:
        """Create a session on an engine the application owns (it is never disposed here).

        Args:
            session_id: The conversation's identifier.
            engine: An async engine (``sqlite+aiosqlite``, ``postgresql+asyncpg``,
                ``mysql+aiomysql``, ``mysql+asyncmy``). On SQLite, convostore installs WAL and
                a busy timeout on the engine's new connections.
            create_tables: Create the tables if they do not exist, on first use. For
                development and tests; production schemas come from the migrations.
            sessions_table: Name of the sessions table.
            messages_table: Name of the messages table.
            session_settings: Default settings (``{"limit": N}``, or a ``SessionSettings``
                from convostore or the Agents SDK); validated and copied, so the session
                owns its settings.
            retry: How transient database errors are retried.
            max_item_bytes: Refuse (with ``PayloadTooLargeError``, before anything is
                written) an item whose stored JSON is longer than this many UTF-8 bytes.
            schema: The PostgreSQL schema holding the tables (as given to ``convostore
                migrate --schema``); on MySQL/MariaDB, the database holding them. ``None``
                uses the connection's default. Refused on SQLite, where a file has one
                schema.
            ensure_ascii: Accepted for code written for the Agents SDK's constructor, and
                without effect: convostore stores items as UTF-8 JSON text and reads back
                exactly the items given, whatever their characters.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a usable id.
            ConfigurationError: A table name or ``schema`` is not a plain identifier,
                ``schema`` is given on SQLite, ``session_settings`` is unusable, or the
                engine is not an ``AsyncEngine``.
        """
        self.session_id = validate_session_id(session_id)
        if not isinstance(engine, (AsyncEngine, Context)):
            raise ConfigurationError(
                f"engine must be a sqlalchemy.ext.asyncio.AsyncEngine, got "
                f"{type(engine).__name__}; use SQLAlchemySession.from_url(...) for a URL"
            )
        if ensure_ascii is not None and not isinstance(ensure_ascii, bool):
            raise ConfigurationError(f"ensure_ascii must be a bool, got {ensure_ascii!r}")
        self._settings = coerce_settings(session_settings)
        # from_url hands in a context it made from the URL (one engine per event loop).
        self._context = (
            engine
            if isinstance(engine, Context)
            else Context(
                engine,
                sessions_table=sessions_table,
                messages_table=messages_table,
                schema=schema,
                retry=retry,
                create_tables=create_tables,
                max_item_bytes=max_item_bytes,
            )
        )

    @classmethod
    def from_url(
        cls,
        session_id: str,
        *,
        url: str | URL,
        engine_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SQLAlchemySession:
        """Create a session with an engine of its own, from a database URL.

        Plain URLs get the async driver: ``sqlite:///file.db`` (``sqlite://`` is in memory),
        ``postgres://`` / ``postgresql://`` (asyncpg), ``mysql://`` / ``mariadb://``
        (aiomysql; ``mysql+asyncmy://`` for asyncmy). The session owns the engine:
        ``await session.close()``, or ``async with``, disposes it.

        Args:
            session_id: The conversation's identifier.
            url: The database URL.
            engine_kwargs: Passed to ``create_async_engine`` (pool size, echo, ...).
            **kwargs: Passed to the constructor (``create_tables``, table names,
                ``session_settings``, ``retry``, ``max_item_bytes``, ``schema``).

        Raises:
            UnsupportedDriverError: The URL names a synchronous driver; the message gives the
                async URL to use.
            ConfigurationError: The URL or another argument is unusable.
        """
        validate_session_id(session_id)
        if not isinstance(url, (str, URL)):
            raise ConfigurationError(f"url must be a str or a URL, got {type(url).__name__}")
        if engine_kwargs is not None and not isinstance(engine_kwargs, dict):
            raise ConfigurationError(
                f"engine_kwargs must be a dict, got {type(engine_kwargs).__name__}"
            )
        options = dict(kwargs)
        context = Context(
            url,
            sessions_table=options.pop("sessions_table", DEFAULT_SESSIONS_TABLE),
            messages_table=options.pop("messages_table", DEFAULT_MESSAGES_TABLE),
            schema=options.pop("schema", None),
            retry=options.pop("retry", DEFAULT_RETRY),
            create_tables=options.pop("create_tables", False),
            max_item_bytes=options.pop("max_item_bytes", None),
            engine_kwargs=engine_kwargs or {},
        )
        try:
            return cls(session_id, engine=context, **options)  # type: ignore[arg-type]
        except BaseException:
            context.discard()
            raise

    def __repr__(self) -> str:
        return (
            f"<SQLAlchemySession session_id={self.session_id!r} url={self._context.describe()!r}>"
        )

    # -- the session protocol -------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """Return the history in the order it was added: all of it, or the latest ``limit``.

        Args:
            limit: How many of the latest items to return; ``None`` uses
                ``session_settings.limit`` (and returns everything if that is ``None`` too).

        Raises:
            InvalidLimitError: ``limit`` is negative or not an integer.
        """
        check_limit(limit)
        if limit is None:
            # Settings are plain objects an application may change after validation.
            limit = check_limit(self._settings.limit, "session_settings.limit")
        db = await self._context.ready()
        return await history.get(db, self.session_id, limit, retry=self._context.retry)

    async def add_items(self, items: list[Any], *, idempotency_key: str | None = None) -> None:
        """Append ``items`` after everything already stored, as one transaction.

        Concurrent calls on the same session never interleave their batches.

        Args:
            items: The items to append, in order.
            idempotency_key: Makes the call safe to repeat: a batch added again under a key
                this session already has (a retry after a timeout, a cancelled stream, a
                replayed workflow step) is not stored again, and the call returns normally.
                Keys are per session and are kept until the session is deleted or
                [`SessionStore.prune_keys`][convostore.SessionStore.prune_keys] removes them; see
                docs/reliability.md.

        Raises:
            InvalidIdempotencyKeyError: The key is not a non-empty ``str`` of at most 255
                characters; nothing is written.
            InvalidItemError: An item is not a dict or cannot be stored as JSON exactly;
                nothing of the batch is written.
            PayloadTooLargeError: An item is larger than the database server accepts.
        """
        if idempotency_key is not None:
            validate_idempotency_key(idempotency_key)
        texts = encode_items(items, max_item_bytes=self._context.max_item_bytes)
        if not texts:
            return
        db = await self._context.ready()
        await history.add(
            db,
            self.session_id,
            texts,
            retry=self._context.retry,
            key=idempotency_key,
            keep_last=self._context.max_items_per_session,
            record=self._record_to_fill(),
        )

    async def pop_item(self) -> Any | None:
        """Remove and return the latest item, or ``None`` if the session has none.

        Under concurrency each item is returned by at most one call. A stored item whose JSON
        is corrupt is removed, logged and skipped.
        """
        db = await self._context.ready()
        return await history.pop(db, self.session_id, retry=self._context.retry)

    async def clear_session(self) -> None:
        """Remove this session and all its items; other sessions are untouched."""
        db = await self._context.ready()
        await history.clear(db, self.session_id, retry=self._context.retry)

    # The Agents SDK's private compaction hooks (openai-agents 0.24), offered only for the
    # SDK versions whose protocol convostore knows: see convostore._compaction.
    _get_compaction_snapshot = _compaction.snapshot_hook
    _atomic_replace_items = _compaction.replace_hook

    # -- lifecycle ------------------------------------------------------------------------

    def _record_to_fill(self) -> dict[str, Any] | None:
        """The session record a write fills in where it is empty (a store's sessions)."""
        return None
