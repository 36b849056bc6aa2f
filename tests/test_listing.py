"""list_sessions: newest first, keyset pages that stay correct while sessions are written."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event

from convostore import InvalidCursorError, InvalidInputError, SessionInfo, SessionStore

from ._stores import NewStore, age


async def list_all(store: SessionStore, limit: int, **filters: object) -> list[SessionInfo]:
    listed: list[SessionInfo] = []
    cursor = None
    while True:
        page = await store.list_sessions(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        listed += page.sessions
        if page.next_cursor is None:
            return listed
        cursor = page.next_cursor


def assert_newest_first(listed: list[SessionInfo]) -> None:
    keys = [(info.updated_at, info.session_id) for info in listed]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)


async def test_pages_newest_first(new_store: NewStore) -> None:
    store = await new_store()
    ids = [f"s{i:02d}" for i in range(17)]
    for session_id in ids:
        await store.session(session_id).add_items([{"id": session_id}])
    # Equal timestamps must still page without loss: the session id breaks ties.
    for session_id in ids[:6]:
        await age(store, session_id, days=3)
    listed = await list_all(store, limit=4)
    assert sorted(info.session_id for info in listed) == ids
    assert_newest_first(listed)
    assert [info.session_id for info in listed[-6:]] == sorted(ids[:6], reverse=True)
    assert all(info.item_count == 1 for info in listed)

    one = await store.list_sessions(limit=100)
    assert one.next_cursor is None
    assert len(one.sessions) == 17


async def test_time_filters(new_store: NewStore) -> None:
    store = await new_store()
    for i, days in enumerate([0, 2, 5, 10]):
        await store.session(f"d{i}").add_items([{"i": i}])
        if days:
            await age(store, f"d{i}", days=days)
    now = dt.datetime.now(dt.timezone.utc)
    recent = await store.list_sessions(updated_after=now - dt.timedelta(days=3))
    assert [s.session_id for s in recent.sessions] == ["d0", "d1"]
    old = await store.list_sessions(updated_before=now - dt.timedelta(days=3))
    assert [s.session_id for s in old.sessions] == ["d2", "d3"]
    middle = await store.list_sessions(
        updated_after=now - dt.timedelta(days=7), updated_before=now - dt.timedelta(days=1)
    )
    assert [s.session_id for s in middle.sessions] == ["d1", "d2"]


async def test_listing_while_writers_add(new_store: NewStore) -> None:
    store = await new_store()
    idle = [f"idle-{i:03d}" for i in range(60)]
    hot = [f"hot-{i:02d}" for i in range(8)]
    for session_id in idle + hot:
        await store.session(session_id).add_items([{"id": session_id}])
    stop = asyncio.Event()

    async def writer(session_id: str) -> None:
        session = store.session(session_id)
        while not stop.is_set():
            await session.add_items([{"more": 1}])
            await asyncio.sleep(0)

    writers = [asyncio.create_task(writer(h)) for h in hot]
    try:
        listed: list[SessionInfo] = []
        cursor = None
        while True:
            page = await store.list_sessions(limit=7, cursor=cursor)
            listed += page.sessions
            await asyncio.sleep(0.005)  # let the writers move hot sessions to the front
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    finally:
        stop.set()
        await asyncio.gather(*writers)
    names = [info.session_id for info in listed]
    assert len(names) == len(set(names)), "a session was listed twice"
    assert set(idle) <= set(names), "an idle session was skipped"
    assert_newest_first(listed)
    # The counts listed were exact at the time: never more than the rows written since.
    final = {s.session_id: s.item_count for s in await list_all(store, limit=100)}
    for info in listed:
        assert 1 <= info.item_count <= final[info.session_id]


async def test_bad_arguments(new_store: NewStore) -> None:
    store = await new_store()
    for cursor in ("nonsense", "", "e30", "WyJ4IiwgMV0"):
        with pytest.raises(InvalidCursorError):
            await store.list_sessions(cursor=cursor)
    with pytest.raises(InvalidInputError):
        await store.list_sessions(limit=0)
    with pytest.raises(InvalidInputError):
        await store.list_sessions(updated_after=dt.datetime(2026, 1, 1))


async def test_a_users_sessions(new_store: NewStore) -> None:
    store = await new_store()
    for i in range(9):
        user = "u1" if i % 3 else "u2"
        await store.session(f"s{i}", user_id=user, metadata={"title": f"T{i}"}).add_items([{}])
    await store.session("anonymous").add_items([{}])
    mine = await list_all(store, limit=2, user_id="u1")
    assert sorted(s.session_id for s in mine) == ["s1", "s2", "s4", "s5", "s7", "s8"]
    assert all(s.user_id == "u1" and s.metadata["title"] == f"T{s.session_id[1:]}" for s in mine)
    assert_newest_first(mine)
    assert len(await list_all(store, limit=3)) == 10
    assert (await store.count_sessions(user_id="u2")) == (3, 3)


EXPLAIN = {
    "sqlite": ("EXPLAIN QUERY PLAN ", "?"),
    "postgresql": ("EXPLAIN (COSTS OFF) ", "$1"),
    "mysql": ("EXPLAIN FORMAT=JSON ", "%s"),
}


@pytest.mark.parametrize(
    ("where", "order", "index"),
    [
        ("user_id = {p}", "updated_at DESC, session_id DESC", "user_id_updated_at"),
        ("updated_at < {p}", "updated_at DESC, session_id DESC", "updated_at"),
        ("updated_at < {p}", "updated_at, session_id", "updated_at"),
    ],
)
async def test_listing_and_pruning_use_an_index(
    backend: str, new_store: NewStore, where: str, order: str, index: str
) -> None:
    store = await new_store()
    for i in range(30):
        await store.session(f"p{i}", user_id=f"u{i % 3}").add_items([{}])
    table = store.tables.sessions.name
    prefix, placeholder = EXPLAIN[backend]
    sql = (
        f"SELECT session_id FROM {table} WHERE {where.format(p=placeholder)} "
        f"ORDER BY {order} LIMIT 20"
    )
    value: object = "u1" if "user_id" in where else dt.datetime(2020, 1, 1)
    async with store.engine.connect() as conn:
        if backend == "postgresql":
            # A tiny table would be scanned whole; ask for the plan a large table gets.
            for setting in ("enable_seqscan", "enable_bitmapscan"):
                await conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        rows = (await conn.exec_driver_sql(prefix + sql, (value,))).all()
        await conn.rollback()
    plan = "\n".join(" ".join(str(v) for v in row) for row in rows)
    assert f"ix_{table}_{index}" in plan, plan


@pytest.mark.parametrize("case", ["listing", "user", "dry_run_prune"])
async def test_a_keyset_page_is_a_range_of_the_index(
    backend: str, new_store: NewStore, case: str
) -> None:
    """The page after a keyset position starts there in the index, not at the index's end.

    ``updated_at < t OR (updated_at = t AND session_id < id)`` alone is a filter on
    PostgreSQL and SQLite: every session before the position is read and dropped (155 ms for
    a listing page 40,000 sessions deep). The redundant ``updated_at <= t`` bounds the scan.
    """
    store = await new_store()
    for i in range(30):
        await store.session(f"c{i:02d}", user_id="u1").add_items([{}])
        await age(store, f"c{i:02d}", days=40 + i)
    user = "u1" if case == "user" else None
    first = await store.list_sessions(limit=5, user_id=user)
    seen: list[tuple[str, Any]] = []

    def watch(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    table = store.tables.sessions.name
    event.listen(store.engine.sync_engine, "before_cursor_execute", watch)
    try:
        if case == "dry_run_prune":
            await store.prune(dt.timedelta(days=30), dry_run=True, batch_size=5)
        else:
            await store.list_sessions(limit=5, cursor=first.next_cursor, user_id=user)
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", watch)
    # The statements that page from a keyset position (a dry run's second batch on).
    paged = [(sql, p) for sql, p in seen if table in sql and "ORDER BY" in sql and " OR " in sql]
    assert paged
    statement, parameters = paged[0]
    index = "user_id_updated_at" if user else "updated_at"
    prefix = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN ", "mysql": "EXPLAIN "}
    async with store.engine.connect() as conn:
        if backend == "postgresql":
            # A tiny table would be scanned whole; ask for the plan a large table gets.
            for setting in ("enable_seqscan", "enable_bitmapscan"):
                await conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        result = await conn.exec_driver_sql(prefix[backend] + statement, parameters)
        rows = [dict(row._mapping) for row in result]
        await conn.rollback()
    plan = "\n".join(" ".join(str(v) for v in row.values()) for row in rows)
    assert f"ix_{table}_{index}" in plan, plan
    bound = ">=" if case == "dry_run_prune" else "<="
    if backend == "postgresql":
        cond = next((line for line in plan.splitlines() if "Index Cond" in line), "")
        assert f"updated_at {bound}" in cond, plan
    elif backend == "sqlite":
        assert "SEARCH" in plan, plan
        assert f"updated_at{bound[0]}" in plan, plan
    else:
        assert rows[0]["type"] == "range", plan
