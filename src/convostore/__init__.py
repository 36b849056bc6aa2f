"""convostore: the conversation session store for AI agents.

Ordered, atomic, concurrency-safe conversation history on SQLAlchemy, over SQLite
(aiosqlite), PostgreSQL (asyncpg) and MySQL/MariaDB (aiomysql)::

    from convostore import SQLAlchemySession

    async with SQLAlchemySession.from_url("user-123", url="sqlite:///chat.db",
                                          create_tables=True) as session:
        await session.add_items([{"role": "user", "content": "Hello"}])
        print(await session.get_items())
"""

from __future__ import annotations

# ``migrate`` is the module (``convostore.migrate.upgrade`` and the other commands).
from . import migrate
from .engine import configure_engine, create_engine
from .errors import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConvostoreError,
    DecryptionError,
    EventLoopError,
    InvalidCursorError,
    InvalidIdempotencyKeyError,
    InvalidInputError,
    InvalidItemError,
    InvalidLimitError,
    InvalidSessionIdError,
    MissingDependencyError,
    PayloadTooLargeError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
    StorageError,
    UnsupportedDriverError,
)
from .protocol import Session
from .records import (
    ExportReport,
    ImportReport,
    ItemPage,
    PageItem,
    PruneReport,
    SessionInfo,
    SessionPage,
)
from .schema import Tables, build_tables
from .session import SQLAlchemySession
from .settings import SessionSettings
from .store import SessionStore
from .transaction import RetryPolicy
from .urls import to_async_url

__version__ = "0.1.0"

__all__ = [
    "CommitOutcomeUnknownError",
    "ConfigurationError",
    "ConvostoreError",
    "DecryptionError",
    "EventLoopError",
    "ExportReport",
    "ImportReport",
    "InvalidCursorError",
    "InvalidIdempotencyKeyError",
    "InvalidInputError",
    "InvalidItemError",
    "InvalidLimitError",
    "InvalidSessionIdError",
    "ItemPage",
    "MissingDependencyError",
    "PageItem",
    "PayloadTooLargeError",
    "PruneReport",
    "RetryPolicy",
    "SQLAlchemySession",
    "SchemaError",
    "Session",
    "SessionExistsError",
    "SessionInfo",
    "SessionNotFoundError",
    "SessionPage",
    "SessionSettings",
    "SessionStore",
    "StorageError",
    "Tables",
    "UnsupportedDriverError",
    "__version__",
    "build_tables",
    "configure_engine",
    "create_engine",
    "migrate",
    "to_async_url",
]
