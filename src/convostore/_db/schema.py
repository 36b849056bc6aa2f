"""The tables, defined once and used by ``create_tables``, the migrations and the tools.

Four tables, all keyed by ``session_id`` so that every hot query stays on one session:

``sessions``
    One row per conversation: ``session_id`` (primary key), ``next_position`` (the counter
    that hands out message positions; it never goes back), ``item_count`` (the number of
    items, kept exact by every write), ``created_at`` and ``updated_at`` (UTC), and the
    application's ``user_id`` and ``metadata`` (a JSON object as text), both optional.
    Indexed on ``(user_id, updated_at)`` and ``(updated_at)`` for listing and pruning.

``messages``
    One row per item: primary key ``(session_id, position)``, the item as JSON text in
    ``message_data``, and ``created_at``. The primary key is the order of the conversation
    and the index that serves ``ORDER BY position DESC LIMIT n`` without a sort.

``<messages>_chunks`` (see ``chunks_table_name``)
    The pieces of items too large for one row (``convostore._db.chunks``): primary key
    ``(session_id, position, chunk_no)``, the text in ``data``, and a foreign key to the
    message row with ``ON DELETE CASCADE``. The message row's ``chunk_count`` says how many
    pieces follow its ``message_data`` (0 for every item that fits in one row).

``<sessions>_keys`` (see ``keys_table_name``)
    The idempotency keys of keyed ``add_items`` calls: primary key ``(session_id,
    idempotency_key)``, ``created_at`` (indexed, for pruning), and a foreign key to the
    session with ``ON DELETE CASCADE``, so deleting a session forgets its keys.

Use [`build_tables`][convostore.build_tables] to get the [`Tables`][convostore.Tables] (and their
``MetaData``) for a pair of table names.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from .._codec import compact_json
from ..errors import ConfigurationError

__all__ = [
    "utcnow",
    "DEFAULT_MESSAGES_TABLE",
    "DEFAULT_SESSIONS_TABLE",
    "JSONObjectText",
    "MAX_METADATA_BYTES",
    "MAX_SESSION_ID_LENGTH",
    "NAMING_CONVENTION",
    "PayloadText",
    "ExactString",
    "Tables",
    "UTCDateTime",
    "build_tables",
    "chunks_table_name",
    "keys_table_name",
    "validate_identifier",
]

DEFAULT_SESSIONS_TABLE = "agent_sessions"
"""The sessions table's default name, the same as the Agents SDK's."""

DEFAULT_MESSAGES_TABLE = "agent_messages"
"""The messages table's default name, the same as the Agents SDK's."""

MAX_SESSION_ID_LENGTH = 255
"""The longest session id, in characters, that every backend stores."""

MAX_METADATA_BYTES = 65_535
"""The largest session ``metadata`` object, in bytes of compact UTF-8 JSON."""

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names, the same on every dialect so revisions can refer to them."""

# Lower-case plain identifiers only: they need no quoting on any backend, and PostgreSQL's
# 63-character limit is the tightest of the three.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def validate_identifier(name: str, what: str) -> str:
    """Return ``name`` if it is a plain lower-case SQL identifier, else raise ConfigurationError.

    Args:
        name: The identifier to check.
        what: What the name is for, used in the error message (e.g. ``"sessions_table"``).
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"{what} must be a plain SQL identifier (lower-case letters, digits and "
            f"underscores, starting with a letter or underscore, at most 63 characters); "
            f"got {name!r}"
        )
    return name


class ExactString(TypeDecorator[str]):
    """Text that names something exactly (session ids, user ids, idempotency keys).

    ``VARCHAR(255)`` that compares byte for byte on every backend.

    MySQL and MariaDB compare strings case- and accent-insensitively by default, and their
    ``_bin`` collations still ignore trailing spaces; the id column uses the NO PAD binary
    collation of the server instead (``utf8mb4_nopad_bin`` on MariaDB, ``utf8mb4_0900_bin`` on
    MySQL 8), so ``"Conv-x"``, ``"conv-x"`` and ``"Conv-x "`` are three sessions.
    """

    impl = String(MAX_SESSION_ID_LENGTH)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Pick the exact-comparison collation on MySQL and MariaDB."""
        if dialect.name in ("mysql", "mariadb"):
            mariadb = dialect.name == "mariadb" or getattr(dialect, "is_mariadb", False)
            collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
            return dialect.type_descriptor(
                mysql.VARCHAR(MAX_SESSION_ID_LENGTH, charset="utf8mb4", collation=collation)
            )
        return dialect.type_descriptor(String(MAX_SESSION_ID_LENGTH))


class PayloadText(TypeDecorator[str]):
    """The item's JSON text: ``TEXT`` (unbounded) on PostgreSQL and SQLite, ``LONGTEXT`` on MySQL.

    MySQL's plain ``TEXT`` stops at 64 KB; ``LONGTEXT`` holds up to 4 GB.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Use ``LONGTEXT`` (utf8mb4) on MySQL and MariaDB."""
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.LONGTEXT(charset="utf8mb4"))
        # Text itself: the asyncpg dialect would turn a Text descriptor into VARCHAR.
        return Text()


class JSONObjectText(TypeDecorator[dict[str, Any]]):
    """A JSON object stored as compact text: ``TEXT`` (``MEDIUMTEXT`` on MySQL), read as a dict.

    Stored as text rather than each backend's JSON type so that the value reads back the
    same on every backend (key order, number formats) and needs no JSON support in SQLite.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Use ``MEDIUMTEXT`` (utf8mb4) on MySQL and MariaDB, whose ``TEXT`` stops at 64 KB."""
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.MEDIUMTEXT(charset="utf8mb4"))
        # Not dialect.type_descriptor(Text()): PostgreSQL's drivers map that to a string
        # type that renders as VARCHAR.
        return self.impl_instance

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        """Encode the object as compact JSON."""
        if value is None:
            return None
        return compact_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        """Decode the stored JSON text."""
        if value is None:
            return None
        decoded = json.loads(value)
        return decoded if isinstance(decoded, dict) else None


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A point in time, stored in UTC and always returned timezone-aware.

    PostgreSQL stores ``TIMESTAMP WITH TIME ZONE``; MySQL (``DATETIME(6)``) and SQLite have no
    zone, so the value is converted to UTC on the way in and marked UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Keep microseconds on MySQL and MariaDB."""
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Convert to UTC; drop the zone where the column has none."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        value = value.astimezone(dt.timezone.utc)
        if dialect.name != "postgresql":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, str):  # SQLite, when read through a raw text expression
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)  # type: ignore[no-any-return]
        return value.astimezone(dt.timezone.utc)  # type: ignore[no-any-return]


def utcnow() -> dt.datetime:
    """Return the current time in UTC; the one clock convostore reads (for timestamps only)."""
    return dt.datetime.now(dt.timezone.utc)


def _suffixed(name: str, suffix: str) -> str:
    """``<name>_<suffix>``, shortened with a hash of ``name`` if longer than 63 characters."""
    full = f"{name}_{suffix}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return f"{name[: 63 - len(suffix) - 14]}_{digest}_{suffix}"


def chunks_table_name(messages_table: str) -> str:
    """Return the name of the chunks table of the store whose messages table is given.

    ``<messages_table>_chunks``; a name too long for that suffix is shortened and given a
    hash of the full name, so the result is unique to it and at most 63 characters long.
    """
    return _suffixed(messages_table, "chunks")


def keys_table_name(sessions_table: str) -> str:
    """Return the name of the idempotency-keys table of the store whose sessions table is given.

    ``<sessions_table>_keys``; a sessions table name too long for that suffix (past 58
    characters) is shortened and given a hash of the full name, so the result is still
    unique to it and at most 63 characters long.
    """
    return _suffixed(sessions_table, "keys")


# Every table: InnoDB (row locks, foreign keys) and 4-byte UTF-8 on MySQL/MariaDB.
_MYSQL_TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


@dataclass(frozen=True)
class Tables:
    """The sessions and messages tables of one convostore store, sharing one ``MetaData``."""

    metadata: MetaData
    """Holds both tables; pass it to ``create_all`` or to Alembic as ``target_metadata``."""

    sessions: Table
    """One row per session: ``session_id``, ``next_position``, ``item_count``, ``created_at``,
    ``updated_at``, ``user_id``, ``metadata``."""

    messages: Table
    """One row per item: ``session_id``, ``position``, ``message_data``, ``created_at``,
    ``chunk_count``."""

    chunks: Table
    """The pieces of large items: ``session_id``, ``position``, ``chunk_no``, ``data``."""

    keys: Table
    """One row per idempotency key used on a session: ``session_id``, ``idempotency_key``,
    ``created_at``."""


@functools.lru_cache(maxsize=64)
def build_tables(
    sessions_table: str = DEFAULT_SESSIONS_TABLE,
    messages_table: str = DEFAULT_MESSAGES_TABLE,
    schema: str | None = None,
) -> Tables:
    """Return the convostore tables for these names, built once per distinct set of names.

    The same arguments always return the same [`Tables`][convostore.Tables] object, so statements
    built on it hit SQLAlchemy's compiled-statement cache.

    Args:
        sessions_table: Name of the sessions table.
        messages_table: Name of the messages table.
        schema: Optional database schema (PostgreSQL) or database (MySQL) holding both tables.

    Raises:
        ConfigurationError: A name is not a plain identifier, or the two names are equal.
    """
    validate_identifier(sessions_table, "sessions_table")
    validate_identifier(messages_table, "messages_table")
    if schema is not None:
        validate_identifier(schema, "schema")
    if sessions_table == messages_table:
        raise ConfigurationError(
            f"sessions_table and messages_table must differ; both are {sessions_table!r}"
        )
    keys_table = keys_table_name(sessions_table)
    chunks_table = chunks_table_name(messages_table)
    if len({sessions_table, messages_table, keys_table, chunks_table}) < 4:
        raise ConfigurationError(
            f"sessions_table {sessions_table!r} and messages_table {messages_table!r} clash "
            f"with the names derived from them: {keys_table!r} (idempotency keys) and "
            f"{chunks_table!r} (chunks of large items)"
        )

    metadata = MetaData(naming_convention=NAMING_CONVENTION, schema=schema)
    sessions = Table(
        sessions_table,
        metadata,
        Column("session_id", ExactString(), nullable=False),
        Column("next_position", BigInteger(), nullable=False),
        Column("item_count", BigInteger(), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
        # Compared exactly, like session ids: "User-7" and "user-7" are two users.
        Column("user_id", ExactString(), nullable=True),
        Column("metadata", JSONObjectText(), nullable=True),
        PrimaryKeyConstraint("session_id"),
        # A user's sessions newest first (list_sessions, delete_user); all sessions by age
        # (list_sessions, prune). Names come from NAMING_CONVENTION.
        Index(None, "user_id", "updated_at"),
        Index(None, "updated_at"),
        **_MYSQL_TABLE,
    )
    sessions_id = f"{schema}.{sessions_table}" if schema else sessions_table
    messages = Table(
        messages_table,
        metadata,
        Column("session_id", ExactString(), nullable=False),
        Column("position", BigInteger(), nullable=False, autoincrement=False),
        Column("message_data", PayloadText(), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        # Pieces of the item in the chunks table after message_data (convostore._db.chunks).
        Column("chunk_count", Integer(), nullable=False, server_default=text("0")),
        PrimaryKeyConstraint("session_id", "position"),
        ForeignKeyConstraint(["session_id"], [f"{sessions_id}.session_id"], ondelete="CASCADE"),
        **_MYSQL_TABLE,
    )
    messages_id = f"{schema}.{messages_table}" if schema else messages_table
    chunks = Table(
        chunks_table,
        metadata,
        Column("session_id", ExactString(), nullable=False),
        Column("position", BigInteger(), nullable=False, autoincrement=False),
        Column("chunk_no", Integer(), nullable=False, autoincrement=False),
        Column("data", PayloadText(), nullable=False),
        PrimaryKeyConstraint("session_id", "position", "chunk_no"),
        ForeignKeyConstraint(
            ["session_id", "position"],
            [f"{messages_id}.session_id", f"{messages_id}.position"],
            ondelete="CASCADE",
        ),
        **_MYSQL_TABLE,
    )
    keys = Table(
        keys_table,
        metadata,
        Column("session_id", ExactString(), nullable=False),
        # Compared exactly, like session ids: "Retry-1" and "retry-1" are two keys.
        Column("idempotency_key", ExactString(), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        PrimaryKeyConstraint("session_id", "idempotency_key"),
        ForeignKeyConstraint(["session_id"], [f"{sessions_id}.session_id"], ondelete="CASCADE"),
        # Pruning keys by age (SessionStore.prune_keys).
        Index(None, "created_at"),
        **_MYSQL_TABLE,
    )
    return Tables(metadata=metadata, sessions=sessions, messages=messages, keys=keys, chunks=chunks)
