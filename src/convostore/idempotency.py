"""Idempotency keys: a batch added twice under the same key is stored once.

``add_items(items, idempotency_key="...")`` records the key in the store's keys table
(``<sessions>_keys``, see :func:`convostore.schema.keys_table_name`) in the same transaction
as the batch. The rules:

- The key is checked after the add has taken the session's row lock (its first statement),
  so concurrent calls with the same key on a session run one after the other: the first
  stores the batch and its key, every later one finds the key, rolls its transaction back
  and returns normally, having written nothing.
- A key belongs to its session: the same key on two sessions is two keys.
- A key outlives the batch's items: popping or trimming them does not make a retry store
  the batch again. It is forgotten when its session is deleted (``clear_session``,
  ``SessionStore.delete_session``, ``prune``, ``delete_user``: the foreign key cascades), or
  when :func:`prune_keys` removes keys older than a cutoff.
- A keyed add whose COMMIT was lost with the connection is resolved by looking the key up
  on a new connection: present means stored (the call returns normally), absent means not
  stored (the add runs again).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .errors import InvalidIdempotencyKeyError, InvalidInputError
from .keytext import check_key_text
from .schema import Tables
from .transaction import DEFAULT_RETRY, RetryPolicy, run_write

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "claim_key",
    "key_stored",
    "prune_keys",
    "validate_idempotency_key",
]

MAX_IDEMPOTENCY_KEY_LENGTH = 255
"""The longest idempotency key, in characters."""


def validate_idempotency_key(key: Any) -> str:
    """Return ``key`` if it can be stored as an idempotency key on every backend.

    A key is a non-empty ``str`` of at most 255 characters, without NUL characters or lone
    surrogates, compared exactly (case and trailing spaces count), like a session id.

    Raises:
        InvalidIdempotencyKeyError: The key breaks one of these rules; the message says which.
    """
    return check_key_text(
        key,
        name="idempotency_key",
        error=InvalidIdempotencyKeyError,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        expected="a str or None",
    )


async def claim_key(
    conn: AsyncConnection, tables: Tables, session_id: str, key: str, now: dt.datetime
) -> bool:
    """Record ``key`` for the session in this transaction; ``False`` if it is already there.

    Call it while holding the session's row lock. The lookup is a locking read, so on
    MySQL/MariaDB (repeatable read) it sees a key committed after this transaction began.
    """
    k = tables.keys
    found = await conn.execute(
        select(k.c.idempotency_key)
        .where(k.c.session_id == session_id, k.c.idempotency_key == key)
        .with_for_update()
    )
    if found.first() is not None:
        return False
    await conn.execute(insert(k).values(session_id=session_id, idempotency_key=key, created_at=now))
    return True


async def key_stored(conn: AsyncConnection, tables: Tables, session_id: str, key: str) -> bool:
    """Whether ``key`` is recorded for the session (committed)."""
    k = tables.keys
    found = await conn.execute(
        select(k.c.idempotency_key).where(k.c.session_id == session_id, k.c.idempotency_key == key)
    )
    return found.first() is not None


async def prune_keys(
    engine: AsyncEngine,
    tables: Tables,
    *,
    older_than: dt.datetime,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> int:
    """Forget every idempotency key recorded before ``older_than``; return how many.

    A batch retried with a pruned key is stored again, so choose a cutoff well past the
    longest time a caller may retry or a workflow may replay (days, not seconds).

    Args:
        engine: The store's engine.
        tables: The store's tables (``SessionStore.tables`` or ``session.tables``).
        older_than: A timezone-aware cutoff; keys recorded before it are deleted.
        retry: How transient database errors are retried.

    Raises:
        InvalidInputError: ``older_than`` is not a timezone-aware datetime.
    """
    if not isinstance(older_than, dt.datetime) or older_than.tzinfo is None:
        raise InvalidInputError(f"older_than must be a timezone-aware datetime, got {older_than!r}")
    k = tables.keys
    statement = delete(k).where(k.c.created_at < older_than)

    async def work(conn: AsyncConnection) -> int:
        return int((await conn.execute(statement)).rowcount)

    return await run_write(engine, work, retry=retry)
