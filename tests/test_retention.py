"""prune and delete_session: bounded batches, dry runs, and only what should go."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from convostore import InvalidInputError

from ._stores import NewStore, age, count_rows

DAY = dt.timedelta(days=1)


async def test_prune_deletes_only_old_sessions(new_store: NewStore) -> None:
    store = await new_store()
    old = [f"old-{i}" for i in range(11)]
    fresh = [f"fresh-{i}" for i in range(4)]
    for n, session_id in enumerate(old + fresh):
        await store.session(session_id).add_items([{"n": k} for k in range(n % 3 + 1)])
    for session_id in old:
        await age(store, session_id, days=40)
    expected_items = sum(n % 3 + 1 for n in range(len(old)))

    dry = await store.prune(30 * DAY, dry_run=True, batch_size=4)
    assert dry.dry_run
    assert dry.sessions == 11
    assert dry.items == expected_items
    assert sorted(dry.session_ids) == sorted(old)
    assert (await store.count_sessions())[0] == 15  # nothing deleted

    progress: list[tuple[int, int]] = []
    report = await store.prune(
        30 * DAY, batch_size=4, progress=lambda s, i: progress.append((s, i))
    )
    assert sorted(report.session_ids) == sorted(old)
    assert report.sessions == 11
    assert report.items == expected_items
    assert report.batches >= 3
    assert all(s <= 4 for s, _ in progress)
    assert sum(s for s, _ in progress) == 11
    for session_id in old:
        assert await store.get_session_info(session_id) is None
        assert await count_rows(store, session_id) == 0
    for session_id in fresh:
        assert await store.get_session_info(session_id) is not None
    again = await store.prune(30 * DAY)
    assert again.sessions == 0


async def test_prune_under_concurrent_writes(new_store: NewStore) -> None:
    store = await new_store()
    idle = [f"idle-{i:02d}" for i in range(30)]
    revived = [f"revived-{i:02d}" for i in range(10)]
    for session_id in idle + revived:
        await store.session(session_id).add_items([{"old": session_id, "k": k} for k in range(5)])
        await age(store, session_id, days=60)
    recent = [f"recent-{i}" for i in range(3)]
    for session_id in recent:
        await store.session(session_id).add_items([{"recent": 1}])

    async def revive(session_id: str, delay: float) -> None:
        await asyncio.sleep(delay)  # staggered: some before the prune reaches them, some after
        for _ in range(3):
            await store.session(session_id).add_items([{"new": session_id}])
            await asyncio.sleep(0)

    report, *_ = await asyncio.gather(
        store.prune(30 * DAY, batch_size=3), *(revive(r, i * 0.003) for i, r in enumerate(revived))
    )
    removed = set(report.session_ids)
    assert set(idle) <= removed
    assert not removed & set(recent)
    for session_id in idle:
        assert await store.get_session_info(session_id) is None
    for session_id in recent:
        assert (await store.require_session_info(session_id)).item_count == 1
    for session_id in revived:
        items = await store.session(session_id).get_items()
        info = await store.get_session_info(session_id)
        assert info is not None  # every revived session was written after any delete
        assert info.item_count == len(items) == await count_rows(store, session_id)
        old_items = [item for item in items if "old" in item]
        if session_id in removed:
            # Deleted while still old: only writes made after the deletion remain.
            assert old_items == []
        else:
            # Written before the prune reached it: kept whole, never partly deleted.
            assert old_items == [{"old": session_id, "k": k} for k in range(5)]
        assert 1 <= len(items) - len(old_items) <= 3


async def test_prune_by_batches_of_items(new_store: NewStore) -> None:
    store = await new_store()
    for i in range(4):
        await store.session(f"big-{i}").add_items([{"k": k} for k in range(30)])
        await age(store, f"big-{i}", days=10)
    from convostore._ops import retention

    s = store.tables.sessions
    report = await retention.delete_sessions(
        store._context, s.c.updated_at < dt.datetime.now(dt.timezone.utc), max_batch_items=50
    )
    assert report.sessions == 4
    assert report.items == 120
    assert report.batches == 4


async def test_prune_arguments(new_store: NewStore) -> None:
    store = await new_store()
    for bad in (dt.timedelta(0), -DAY, 30):
        with pytest.raises(InvalidInputError):
            await store.prune(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await store.prune(DAY, batch_size=0)


async def test_delete_user_and_prune_one_user(new_store: NewStore) -> None:
    store = await new_store()
    for i in range(7):
        await store.session(f"a{i}", user_id="alice").add_items([{"k": k} for k in range(i + 1)])
        await store.session(f"b{i}", user_id="bob").add_items([{"k": 1}])
        await age(store, f"a{i}", days=40)
        await age(store, f"b{i}", days=40)
    await store.session("alice-new", user_id="alice").add_items([{"k": 1}])

    pruned = await store.prune(30 * DAY, user_id="bob", batch_size=2)
    assert sorted(pruned.session_ids) == [f"b{i}" for i in range(7)]
    assert (await store.count_sessions(user_id="alice")) == (8, sum(range(8)) + 1)

    dry = await store.delete_user("alice", dry_run=True)
    assert dry.sessions == 8
    assert (await store.count_sessions(user_id="alice"))[0] == 8
    report = await store.delete_user("alice")
    assert report.sessions == 8
    assert report.items == sum(range(8)) + 1
    assert (await store.count_sessions()) == (0, 0)
    assert (await store.delete_user("alice")).sessions == 0
    with pytest.raises(InvalidInputError):
        await store.delete_user("")
