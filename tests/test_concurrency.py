"""Concurrent writers never interleave inside a batch, lose or duplicate an item."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, Tables, engine_from_url

from . import _workers
from ._stores import session_on


def assert_whole_batches(
    items: list[dict[str, Any]], writers: int, batches: int, size: int
) -> None:
    """Every batch present once, contiguous, in its own order; each writer's batches in order."""
    assert len(items) == writers * batches * size
    seen: dict[int, list[int]] = {w: [] for w in range(writers)}
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        writer, batch = chunk[0]["w"], chunk[0]["b"]
        assert chunk == [{"w": writer, "b": batch, "i": i} for i in range(size)], chunk
        seen[writer].append(batch)
    for writer in range(writers):
        assert seen[writer] == list(range(batches))


async def test_concurrent_tasks_one_engine(make_session: Callable[..., SQLAlchemySession]) -> None:
    # 20 tasks writing at once to one new session: on MySQL/MariaDB this is the shape that
    # ends in InnoDB deadlocks unless locking and retries are right.
    session_id = make_session().session_id
    writers, batches, size = 20, 5, 4

    async def writer(w: int) -> None:
        session = make_session(session_id)
        for b in range(batches):
            await session.add_items([{"w": w, "b": b, "i": i} for i in range(size)])

    await asyncio.gather(*(writer(w) for w in range(writers)))
    assert_whole_batches(await make_session(session_id).get_items(), writers, batches, size)


async def test_concurrent_engines(
    backend: str,
    engine: AsyncEngine,
    tables: Tables,
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session_id = make_session().session_id
    engines = [engine_from_url(engine.url) for _ in range(4)]
    writers, batches, size = 8, 4, 3
    try:

        async def writer(w: int) -> None:
            session = session_on(engines[w % len(engines)], tables, session_id)
            for b in range(batches):
                await session.add_items([{"w": w, "b": b, "i": i} for i in range(size)])

        await asyncio.gather(*(writer(w) for w in range(writers)))
    finally:
        for e in engines:
            await e.dispose()
    assert_whole_batches(await make_session(session_id).get_items(), writers, batches, size)


async def test_concurrent_processes(
    engine: AsyncEngine, tables: Tables, make_session: Callable[..., SQLAlchemySession]
) -> None:
    session_id = make_session().session_id
    url = engine.url.render_as_string(hide_password=False)
    writers, batches, size = 4, 10, 5
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_workers.write_batches,
            args=(url, tables.sessions.name, tables.messages.name, session_id, w, batches, size),
        )
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    await asyncio.gather(*(asyncio.to_thread(p.join, 120) for p in procs))
    assert [p.exitcode for p in procs] == [0] * writers
    assert_whole_batches(await make_session(session_id).get_items(), writers, batches, size)


async def test_concurrent_pops_return_each_item_once(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session = make_session()
    await session.add_items([{"n": n} for n in range(60)])

    async def popper() -> list[Any]:
        mine = make_session(session.session_id)
        got = []
        while (item := await mine.pop_item()) is not None:
            got.append(item)
        return got

    results = await asyncio.gather(*(popper() for _ in range(8)))
    popped = [item["n"] for got in results for item in got]
    assert sorted(popped) == list(range(60))
    for got in results:  # each popper sees the tail shrinking
        assert [item["n"] for item in got] == sorted((item["n"] for item in got), reverse=True)
    assert await session.get_items() == []


async def test_concurrent_pops_across_processes(
    engine: AsyncEngine, tables: Tables, make_session: Callable[..., SQLAlchemySession]
) -> None:
    session = make_session()
    await session.add_items([{"n": n} for n in range(100)])
    url = engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.list()
        procs = [
            ctx.Process(
                target=_workers.pop_all,
                args=(url, tables.sessions.name, tables.messages.name, session.session_id, out),
            )
            for _ in range(3)
        ]
        for p in procs:
            p.start()
        await asyncio.gather(*(asyncio.to_thread(p.join, 120) for p in procs))
        popped = sorted(item["n"] for item in out)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert popped == list(range(100))


async def test_writers_pop_and_read_mixed(make_session: Callable[..., SQLAlchemySession]) -> None:
    session_id = make_session().session_id
    added: list[int] = []
    popped: list[int] = []
    counter = iter(range(10_000))

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        s = make_session(session_id)
        for _ in range(15):
            action = rng.random()
            if action < 0.5:
                batch = [next(counter) for _ in range(rng.randint(1, 4))]
                await s.add_items([{"n": n} for n in batch])
                added.extend(batch)
            elif action < 0.75:
                item = await s.pop_item()
                if item is not None:
                    popped.append(item["n"])
            else:
                items = await s.get_items(limit=rng.randint(1, 10))
                assert len({i["n"] for i in items}) == len(items)

    await asyncio.gather(*(worker(seed) for seed in range(10)))
    remaining = [i["n"] for i in await make_session(session_id).get_items()]
    assert len(popped) == len(set(popped))
    assert sorted(remaining + popped) == sorted(added)


async def test_different_sessions_do_not_mix(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    sessions = [make_session() for _ in range(10)]

    async def fill(index: int, s: SQLAlchemySession) -> None:
        for n in range(5):
            await s.add_items([{"s": index, "n": n}])

    await asyncio.gather(*(fill(i, s) for i, s in enumerate(sessions)))
    for index, s in enumerate(sessions):
        assert await s.get_items() == [{"s": index, "n": n} for n in range(5)]


async def test_cancelled_writes_leave_whole_batches(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session = make_session()
    size = 50
    cancelled = 0
    for attempt in range(30):

        async def write(a: int = attempt) -> None:
            await session.add_items([{"a": a, "i": i} for i in range(size)])

        task = asyncio.create_task(write())
        # Cancel at a different moment each time: before, during and after the SQL.
        await asyncio.sleep(random.Random(attempt).uniform(0, 0.01))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
    items = await session.get_items()
    assert len(items) % size == 0
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        assert chunk == [{"a": chunk[0]["a"], "i": i} for i in range(size)]
    # The session still works, and positions continue after the stored batches.
    await session.add_items([{"after": True}])
    assert (await session.get_items(limit=1)) == [{"after": True}]
    assert cancelled > 0


async def test_timeout_around_a_write_leaves_whole_batches(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session = make_session()
    for attempt in range(10):
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(
                session.add_items([{"a": attempt, "i": i} for i in range(20)]),
                timeout=0.001 * attempt,
            )
    items = await session.get_items()
    assert len(items) % 20 == 0
    for start in range(0, len(items), 20):
        assert [i["i"] for i in items[start : start + 20]] == list(range(20))
