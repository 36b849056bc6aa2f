"""convostore: the conversation session store for AI agents.

Ordered, atomic, concurrency-safe conversation history on SQLAlchemy, over SQLite
(aiosqlite), PostgreSQL (asyncpg) and MySQL/MariaDB (aiomysql):

```python
from convostore import SQLAlchemySession

async with SQLAlchemySession.from_url("user-123", url="sqlite:///chat.db",
                                      create_tables=True) as session:
    await session.add_items([{"role": "user", "content": "Hello"}])
    print(await session.get_items())
```

This module is the package's public edge: everything a program needs is imported from it
(and errors also from [`convostore.errors`][convostore.errors]; the programmatic Alembic API from
[`convostore.migrate`][convostore.migrate]). Modules whose names start with an underscore are the
implementation and may change in any release.
"""

from __future__ import annotations

from typing import Any

# ``migrate`` is the module (``convostore.migrate.upgrade`` and the other commands).
from . import _deprecated, migrate
from ._codec import corrupt_items_skipped
from ._config import RetryPolicy, SessionSettings
from ._db.engine import configure_engine, engine_from_url
from ._db.schema import Tables, build_tables
from ._db.urls import to_async_url
from ._encryption import EncryptedSession, generate_key
from ._protocol import Session
from ._records import (
    CorruptItem,
    ExportReport,
    ImportReport,
    ItemPage,
    PageItem,
    PruneReport,
    SessionInfo,
    SessionPage,
)
from ._session import SQLAlchemySession
from ._store import SessionStore, StoreSession
from ._table_creation import create_tables
from .errors import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConvostoreError,
    DatabaseUnreachableError,
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

__version__ = "0.1.0"

__all__ = [
    "CommitOutcomeUnknownError",
    "ConfigurationError",
    "ConvostoreError",
    "CorruptItem",
    "DatabaseUnreachableError",
    "DecryptionError",
    "EncryptedSession",
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
    "StoreSession",
    "Tables",
    "UnsupportedDriverError",
    "__version__",
    "build_tables",
    "configure_engine",
    "corrupt_items_skipped",
    "create_tables",
    "engine_from_url",
    "generate_key",
    "migrate",
    "to_async_url",
]

_deprecated.install()


def __getattr__(name: str) -> Any:
    """Old names of the package, kept for one release with a ``DeprecationWarning``."""
    target = _deprecated.PACKAGE_RENAMES.get(name)
    if target is None:
        raise AttributeError(f"module 'convostore' has no attribute {name!r}")
    _deprecated.warn_moved(f"convostore.{name}", f"convostore.{target.rpartition(':')[2]}")
    return _deprecated.resolve(target)
