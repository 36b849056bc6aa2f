"""Many workers open one new database with ``create_tables=True`` at the same moment.

Each starts on a database with no tables: a new SQLite file, or a scratch database on the
server. All succeed, every write is there, and the version table holds one row, the head.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SessionStore, SQLAlchemySession, engine_from_url
from convostore.migrate import head

from ._workers import first_use

THREADS = 8
PROCESSES = 4


async def _check(url: str, session_ids: list[str]) -> None:
    engine = engine_from_url(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM convostore_alembic_version"))
            assert [r[0] for r in rows] == [head()]
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert {"agent_sessions", "agent_messages", "convostore_alembic_version"} <= names
        for sid in session_ids:
            items = await SQLAlchemySession(sid, engine=engine).get_items()
            assert items == [{"role": "user", "content": sid}]
    finally:
        await engine.dispose()


async def test_eight_engines_in_threads(empty_database_url: str) -> None:
    ids = [f"thread-{n}-{uuid.uuid4().hex[:6]}" for n in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(session_id: str) -> None:
        async def main() -> None:
            session = SQLAlchemySession.from_url(
                session_id, url=empty_database_url, create_tables=True
            )
            async with session:
                barrier.wait(timeout=30)
                await session.add_items([{"role": "user", "content": session_id}])

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(sid,)) for sid in ids]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [t.join(timeout=120) for t in threads])
    assert not errors, errors
    await _check(empty_database_url, ids)


@pytest.mark.slow
async def test_four_processes(empty_database_url: str) -> None:
    ids = [f"process-{n}-{uuid.uuid4().hex[:6]}" for n in range(PROCESSES)]
    context = multiprocessing.get_context("spawn")
    # Spawned interpreters take a while to import; all start their first use together.
    start_at = time.time() + 4
    processes = [
        context.Process(target=first_use, args=(empty_database_url, sid, start_at)) for sid in ids
    ]
    for process in processes:
        process.start()
    await asyncio.to_thread(lambda: [p.join(timeout=120) for p in processes])
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    await _check(empty_database_url, ids)


async def test_many_tasks_and_a_store_at_once(empty_database_url: str) -> None:
    ids = [f"task-{n}-{uuid.uuid4().hex[:6]}" for n in range(6)]
    engine = engine_from_url(empty_database_url)
    store = SessionStore(engine, create_tables=True)
    try:
        await asyncio.gather(
            *(
                SQLAlchemySession(sid, engine=engine, create_tables=True).add_items(
                    [{"role": "user", "content": sid}]
                )
                for sid in ids[:3]
            ),
            *(store.session(sid).add_items([{"role": "user", "content": sid}]) for sid in ids[3:]),
        )
    finally:
        await engine.dispose()
    await _check(empty_database_url, ids)


@pytest.mark.postgresql
@pytest.mark.mysql
async def test_a_failed_creation_is_a_convostore_error(engine: AsyncEngine) -> None:
    from convostore.errors import StorageError

    missing = engine.url.set(database="cs_no_such_database").render_as_string(False)
    async with SQLAlchemySession.from_url("x", url=missing, create_tables=True) as session:
        with pytest.raises(StorageError) as caught:
            await session.add_items([{"role": "user", "content": "hi"}])
    assert caught.value.__cause__ is not None
    assert "cs_no_such_database" in str(caught.value)
