"""One session or store object shared by threads that each run their own event loop.

A sync web app calls ``asyncio.run`` or ``Runner.run_sync`` from worker threads. A session
or store opened from a URL keeps one engine per event loop, so it serves all of them; an
engine passed in that holds another loop's connections raises ``EventLoopError`` at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from convostore import SessionStore, SQLAlchemySession, Tables, engine_from_url
from convostore.demo import ScriptedModel, message
from convostore.errors import EventLoopError

from ._stores import table_options

THREADS = 4
ROUNDS = 10


def in_threads(count: int, work: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run ``work(n)`` in ``count`` threads, each in its own ``asyncio.run``, at once."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def thread(n: int) -> None:
        async def main() -> Any:
            barrier.wait(timeout=30)
            return await asyncio.wait_for(work(n), timeout=60)

        try:
            results[n] = asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


async def test_one_from_url_session_in_many_loops(
    backend: str, engine: AsyncEngine, tables: Tables, sqlite_dir: Path
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    session = SQLAlchemySession.from_url(
        f"loops-{uuid.uuid4().hex}", url=url, **table_options(tables)
    )

    async def work(n: int) -> int:
        for r in range(ROUNDS):
            await session.add_items([{"t": n, "r": r, "i": 0}, {"t": n, "r": r, "i": 1}])
            assert len(await session.get_items(limit=2)) == 2
        popped = await session.pop_item()
        assert popped is not None
        return 1

    await asyncio.to_thread(in_threads, THREADS, work)
    items = await session.get_items()
    # Batches never interleave, every thread's items are there, and pops took one each.
    assert len(items) == THREADS * ROUNDS * 2 - THREADS
    for n in range(THREADS):
        mine = [(i["r"], i["i"]) for i in items if i["t"] == n]
        assert mine == sorted(mine)
    await session.close()


async def test_one_store_in_many_loops(engine: AsyncEngine, tables: Tables) -> None:
    url = engine.url.render_as_string(hide_password=False)
    store = SessionStore(url, **table_options(tables))
    sid = f"store-loops-{uuid.uuid4().hex}"

    async def work(n: int) -> None:
        session = store.session(sid)
        for r in range(ROUNDS):
            await session.add_items([{"t": n, "r": r}])
        info = await store.get_session_info(sid)
        assert info is not None

    await asyncio.to_thread(in_threads, THREADS, work)
    info = await store.require_session_info(sid)
    assert info.item_count == THREADS * ROUNDS
    await store.close()


async def test_runner_run_sync_from_worker_threads(engine: AsyncEngine, tables: Tables) -> None:
    url = engine.url.render_as_string(hide_password=False)
    session = SQLAlchemySession.from_url(
        f"run-sync-{uuid.uuid4().hex}", url=url, **table_options(tables)
    )
    lock = threading.Lock()  # one turn at a time, as one user's requests are
    config = RunConfig(tracing_disabled=True)

    def worker(n: int) -> list[str]:
        seen = []
        for turn in range(3):
            model = ScriptedModel(lambda sent: [message(f"saw {len(sent) - 1}")])
            agent = Agent(name="t", instructions="Be brief.", model=model)
            with lock:
                result = Runner.run_sync(agent, f"{n}-{turn}", session=session, run_config=config)
            seen.append(str(result.final_output))
        return seen

    def run_all() -> None:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

    await asyncio.to_thread(run_all)
    assert len(await session.get_items()) == 3 * 3 * 2
    await session.close()


@pytest.mark.sqlite
async def test_in_memory_sqlite_is_one_database_across_loops() -> None:
    session = SQLAlchemySession.from_url("memory", url="sqlite://", create_tables=True)

    async def work(n: int) -> None:
        for r in range(ROUNDS):
            await session.add_items([{"t": n, "r": r}])

    await asyncio.to_thread(in_threads, THREADS, work)
    assert len(await session.get_items()) == THREADS * ROUNDS
    await session.close()


@pytest.mark.postgresql
@pytest.mark.mysql
async def test_a_passed_in_engine_refuses_another_live_loop(
    backend: str, engine: AsyncEngine, tables: Tables
) -> None:
    own = engine_from_url(engine.url)
    session = SQLAlchemySession(f"given-{uuid.uuid4().hex}", engine=own, **table_options(tables))
    await session.add_items([{"n": 1}])  # the pool now holds a connection of this loop

    async def elsewhere() -> None:
        await session.get_items()

    started = time.monotonic()
    with pytest.raises(EventLoopError, match="another event loop"):
        await asyncio.to_thread(asyncio.run, elsewhere())
    assert time.monotonic() - started < 5
    # After dispose() the engine may move to another loop.
    await own.dispose()
    assert await asyncio.to_thread(asyncio.run, _items(session)) == [{"n": 1}]
    await own.dispose()


async def _items(session: SQLAlchemySession) -> list[Any]:
    return await session.get_items()


@pytest.mark.postgresql
@pytest.mark.mysql
async def test_a_null_pool_engine_serves_any_loop(engine: AsyncEngine, tables: Tables) -> None:
    own = engine_from_url(engine.url, poolclass=NullPool)
    session = SQLAlchemySession(f"nullpool-{uuid.uuid4().hex}", engine=own, **table_options(tables))

    # SQLAlchemy initializes a new engine's dialect on its first connection under a lock of
    # the loop making it: connect once before other loops share the engine (as documented).
    await session.get_items()

    async def work(n: int) -> None:
        await session.add_items([{"t": n}])

    await asyncio.to_thread(in_threads, THREADS, work)
    assert len(await session.get_items()) == THREADS
    await own.dispose()


async def test_close_after_use_in_other_loops_leaves_nothing_open(
    engine: AsyncEngine, tables: Tables, recwarn: pytest.WarningsRecorder
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    session = SQLAlchemySession.from_url(
        f"close-{uuid.uuid4().hex}", url=url, **table_options(tables)
    )
    keep_running = threading.Event()
    ready = threading.Barrier(2)

    def long_lived_loop() -> None:
        async def main() -> None:
            await session.add_items([{"n": 1}])
            ready.wait(timeout=30)
            await asyncio.to_thread(keep_running.wait, 60)

        asyncio.run(main())

    thread = threading.Thread(target=long_lived_loop)
    thread.start()
    await asyncio.to_thread(ready.wait, 30)
    await session.add_items([{"n": 2}])
    await session.close()  # disposes this loop's engine here, the other on its own loop
    keep_running.set()
    await asyncio.to_thread(thread.join, 60)
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
