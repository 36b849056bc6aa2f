"""Idempotent writes: a batch added again under the same key is stored once, on every backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import (
    InvalidIdempotencyKeyError,
    InvalidInputError,
    SQLAlchemySession,
    Tables,
)

from ._proxy import Proxied
from ._stores import MakeSession, make_store, session_on


def batch(tag: str, n: int = 2) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{tag}-{i}"} for i in range(n)]


async def key_count(engine: AsyncEngine, tables: Tables, session_id: str) -> int:
    k = tables.keys
    async with engine.connect() as conn:
        query = select(func.count()).select_from(k).where(k.c.session_id == session_id)
        return int((await conn.execute(query)).scalar_one())


async def test_same_key_twice_is_stored_once(session: SQLAlchemySession) -> None:
    await session.add_items(batch("a"), idempotency_key="turn-1")
    await session.add_items(batch("a"), idempotency_key="turn-1")
    assert await session.get_items() == batch("a")
    # The rolled-back retry left the counters alone: the next batch follows directly.
    await session.add_items(batch("b", 1))
    assert await session.get_items() == batch("a") + batch("b", 1)


async def test_retry_with_other_items_under_the_same_key_is_not_stored(
    session: SQLAlchemySession,
) -> None:
    """The key names the write; what a retry carries is not compared."""
    await session.add_items(batch("a"), idempotency_key="k")
    await session.add_items(batch("changed"), idempotency_key="k")
    assert await session.get_items() == batch("a")


async def test_different_keys_are_both_stored(session: SQLAlchemySession) -> None:
    await session.add_items(batch("a"), idempotency_key="k1")
    await session.add_items(batch("a"), idempotency_key="k2")
    await session.add_items(batch("a"))  # no key: always stored
    assert await session.get_items() == batch("a") * 3


async def test_keys_compare_exactly(session: SQLAlchemySession) -> None:
    for key in ("Key", "key", "key ", "kéy"):
        await session.add_items([{"k": key}], idempotency_key=key)
    assert await session.get_items() == [{"k": k} for k in ("Key", "key", "key ", "kéy")]


async def test_same_key_on_two_sessions_is_stored_on_both(make_session: MakeSession) -> None:
    first, second = make_session(), make_session()
    await first.add_items(batch("a"), idempotency_key="shared")
    await second.add_items(batch("b"), idempotency_key="shared")
    assert await first.get_items() == batch("a")
    assert await second.get_items() == batch("b")


async def test_concurrent_retries_store_once_and_all_return(
    make_session: MakeSession, engine: AsyncEngine, tables: Tables
) -> None:
    """20 callers retry the same keyed batch at once (each on its own session object)."""
    session_id = f"idem-{uuid.uuid4().hex}"
    await make_session(session_id).add_items([{"first": True}])
    results = await asyncio.gather(
        *(
            make_session(session_id).add_items(batch("x", 3), idempotency_key="replayed")
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    assert results == [None] * 20
    assert await make_session(session_id).get_items() == [{"first": True}, *batch("x", 3)]
    assert await key_count(engine, tables, session_id) == 1


async def test_concurrent_different_keys_are_all_stored(make_session: MakeSession) -> None:
    session_id = f"idem-{uuid.uuid4().hex}"
    await asyncio.gather(
        *(
            make_session(session_id).add_items([{"n": i}], idempotency_key=f"k{i}")
            for i in range(10)
        )
    )
    items = await make_session(session_id).get_items()
    assert sorted(item["n"] for item in items) == list(range(10))


async def test_key_survives_pop_of_its_items(session: SQLAlchemySession) -> None:
    await session.add_items(batch("a"), idempotency_key="k")
    assert await session.pop_item() == batch("a")[1]
    assert await session.pop_item() == batch("a")[0]
    await session.add_items(batch("a"), idempotency_key="k")  # a late replay
    assert await session.get_items() == []


async def test_key_is_reusable_after_clear_session(
    session: SQLAlchemySession, engine: AsyncEngine, tables: Tables
) -> None:
    await session.add_items(batch("a"), idempotency_key="k")
    await session.clear_session()
    assert await key_count(engine, tables, session.session_id) == 0
    await session.add_items(batch("b"), idempotency_key="k")
    assert await session.get_items() == batch("b")


async def test_empty_batch_records_no_key(session: SQLAlchemySession) -> None:
    await session.add_items([], idempotency_key="k")
    await session.add_items(batch("a"), idempotency_key="k")
    assert await session.get_items() == batch("a")


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("", "empty"),
        ("k" * 256, "256 characters"),
        (7, "must be a str"),
        (b"k", "must be a str"),
        ("a\x00b", "NUL"),
        ("\ud800", "surrogate"),
    ],
)
async def test_bad_keys_are_refused_before_anything_is_written(
    session: SQLAlchemySession, key: Any, match: str
) -> None:
    with pytest.raises(InvalidIdempotencyKeyError, match=match):
        await session.add_items(batch("a"), idempotency_key=key)
    assert await session.get_items() == []


async def test_longest_key_is_stored(session: SQLAlchemySession) -> None:
    key = "é" * 255
    await session.add_items(batch("a"), idempotency_key=key)
    await session.add_items(batch("a"), idempotency_key=key)
    assert await session.get_items() == batch("a")


async def test_prune_keys_forgets_old_keys_only(
    make_session: MakeSession, engine: AsyncEngine, tables: Tables
) -> None:
    session = make_session()
    await session.add_items(batch("a"), idempotency_key="old")
    # Timestamps come from this process's clock: a cutoff between the two adds splits them.
    await asyncio.sleep(0.01)
    cutoff = dt.datetime.now(dt.timezone.utc)
    await asyncio.sleep(0.01)
    await session.add_items(batch("b"), idempotency_key="new")
    assert await make_store(engine, tables).prune_keys(cutoff) >= 1
    assert await key_count(engine, tables, session.session_id) == 1
    await session.add_items(batch("a"), idempotency_key="old")  # forgotten: stored again
    await session.add_items(batch("b"), idempotency_key="new")  # still known
    assert await session.get_items() == batch("a") + batch("b") + batch("a")
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        await make_store(engine, tables).prune_keys(dt.datetime(2020, 1, 1))


async def test_store_sessions_pass_the_key_through(engine: AsyncEngine, tables: Tables) -> None:
    store = make_store(engine, tables)
    session = store.session(f"idem-{uuid.uuid4().hex}")
    await session.add_items(batch("a"), idempotency_key="k")
    await session.add_items(batch("a"), idempotency_key="k")
    assert await session.get_items() == batch("a")
    assert await store.delete_session(session.session_id)
    assert await key_count(engine, tables, session.session_id) == 0


@pytest.mark.fault
async def test_lost_commit_of_a_keyed_add_is_resolved_by_its_key(
    proxied: Proxied,
) -> None:
    """Without a key, a COMMIT that never reached the server is an unknown outcome; with
    one, the key is looked up: absent, so the add runs again, once."""
    proxy, engine, tables = proxied
    session = session_on(engine, tables, f"idem-{uuid.uuid4().hex}")
    await session.add_items([{"n": 0}])
    proxy.cut = "before"
    await session.add_items([{"n": 1}], idempotency_key="k1")
    assert proxy.cuts == 1
    proxy.cut = "after"
    await session.add_items([{"n": 2}], idempotency_key="k2")  # committed, answer lost
    assert proxy.cuts == 2
    await session.add_items([{"n": 2}], idempotency_key="k2")  # the caller's own retry
    assert await session.get_items() == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_encrypted_sessions_pass_the_key_through(session: SQLAlchemySession) -> None:
    pytest.importorskip("cryptography")
    from cryptography.fernet import Fernet

    from convostore import EncryptedSession

    encrypted = EncryptedSession(session, keys=[Fernet.generate_key()])
    await encrypted.add_items(batch("a"), idempotency_key="k")
    await encrypted.add_items(batch("a"), idempotency_key="k")
    assert await encrypted.get_items() == batch("a")
