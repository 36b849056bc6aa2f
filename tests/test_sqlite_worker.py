"""SQLite files: work runs whole on a worker thread, and only while nobody is watching.

Engines convostore makes from a URL run each unit of work in one call on a thread that keeps
a synchronous connection (``convostore._db.worker``). These tests pin when that happens and
when SQLAlchemy's full async path is taken instead: a listener on the engine, echo, an
engine the application made itself, an in-memory database. Everything else about storage is
the rest of the suite's job: it runs on such an engine.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from convostore import SQLAlchemySession, build_tables, configure_engine, engine_from_url
from convostore._config import RetryPolicy
from convostore._db.engine import Database, engine_state
from convostore._db.runner import run_read, run_write

pytestmark = pytest.mark.sqlite


@pytest.fixture
async def file_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = engine_from_url(f"sqlite:///{tmp_path / 'w.db'}")
    yield engine
    await engine.dispose()


def _thread_name(_conn: Connection) -> str:
    return threading.current_thread().name


async def _threads(engine: AsyncEngine) -> tuple[str, str]:
    """The threads a write and a read run their work on."""
    db = Database.of(engine, build_tables())
    write = await run_write(db, _thread_name, retry=RetryPolicy())
    read = await run_read(db, _thread_name, retry=RetryPolicy())
    return write, read


async def test_work_runs_whole_on_the_worker_threads(file_engine: AsyncEngine) -> None:
    write, read = await _threads(file_engine)
    assert write.startswith("convostore-sqlite-write")
    assert read.startswith("convostore-sqlite-read")
    # One thread per lane: writes take turns in order, reads never wait behind them.
    assert await _threads(file_engine) == (write, read)


async def test_a_listener_on_the_engine_sees_every_statement(file_engine: AsyncEngine) -> None:
    session = SQLAlchemySession("watched", engine=file_engine, create_tables=True)
    await session.add_items([{"n": 0}])
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(file_engine.sync_engine, "before_cursor_execute", watch)
    try:
        assert not (await _threads(file_engine))[0].startswith("convostore-sqlite")
        await session.add_items([{"n": 1}])
        assert await session.get_items() == [{"n": 0}, {"n": 1}]
        assert await session.pop_item() == {"n": 1}
        assert any("INSERT" in s for s in seen)
        assert any("SELECT" in s for s in seen)
        assert any("DELETE" in s for s in seen)
    finally:
        event.remove(file_engine.sync_engine, "before_cursor_execute", watch)
    # Nobody watching any more: back on the worker, on the same data.
    assert (await _threads(file_engine))[0].startswith("convostore-sqlite-write")
    assert await session.get_items() == [{"n": 0}]


@pytest.mark.parametrize("event_name", ["handle_error", "checkout", "do_execute", "commit"])
async def test_any_listener_takes_the_full_path(file_engine: AsyncEngine, event_name: str) -> None:
    def listener(*_: Any, **__: Any) -> None:
        return None

    event.listen(file_engine.sync_engine, event_name, listener)
    try:
        assert not (await _threads(file_engine))[1].startswith("convostore-sqlite")
    finally:
        event.remove(file_engine.sync_engine, event_name, listener)


async def test_listeners_added_again_or_beside_convostore_are_seen(
    file_engine: AsyncEngine,
) -> None:
    def listener(*_: Any, **__: Any) -> None:
        return None

    for target, name in [
        (file_engine.sync_engine, "before_execute"),
        (file_engine.sync_engine, "connect"),
    ]:
        for _ in range(2):  # added, removed, added again
            event.listen(target, name, listener)
            try:
                assert not (await _threads(file_engine))[0].startswith("convostore-sqlite")
            finally:
                event.remove(target, name, listener)
            assert (await _threads(file_engine))[0].startswith("convostore-sqlite")


async def test_echo_takes_the_full_path(file_engine: AsyncEngine) -> None:
    file_engine.echo = True
    try:
        assert not (await _threads(file_engine))[0].startswith("convostore-sqlite")
    finally:
        file_engine.echo = False


async def test_an_engine_the_application_made_keeps_the_async_path(tmp_path: Path) -> None:
    # Its URL, pool and listeners are the application's: convostore runs on that engine only.
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    configure_engine(engine)
    try:
        write, read = await _threads(engine)
        assert not write.startswith("convostore-sqlite")
        assert not read.startswith("convostore-sqlite")
        session = SQLAlchemySession("own", engine=engine, create_tables=True)
        await session.add_items([{"n": 1}])
        assert await session.get_items() == [{"n": 1}]
    finally:
        await engine.dispose()


async def test_in_memory_databases_keep_their_one_connection() -> None:
    engine = engine_from_url("sqlite://")
    try:
        assert engine_state(engine).worker is None
        session = SQLAlchemySession("mem", engine=engine, create_tables=True)
        await session.add_items([{"n": 1}])
        assert await session.get_items() == [{"n": 1}]
    finally:
        await engine.dispose()


class _OpenConnections:
    """Counts the worker's open connections (listening on its own engine, not the app's)."""

    def __init__(self, engine: AsyncEngine) -> None:
        worker = engine_state(engine).worker
        assert worker is not None
        self.count = 0
        event.listen(worker.engine, "connect", self._opened)
        event.listen(worker.engine, "close", self._closed)

    def _opened(self, *_: Any) -> None:
        self.count += 1

    def _closed(self, *_: Any) -> None:
        self.count -= 1


async def test_dispose_closes_the_worker_connections(tmp_path: Path) -> None:
    engine = engine_from_url(f"sqlite:///{tmp_path / 'd.db'}", pool_size=1, max_overflow=0)
    opened = _OpenConnections(engine)
    session = SQLAlchemySession("d", engine=engine, create_tables=True)
    await session.add_items([{"n": 1}])
    assert await session.get_items() == [{"n": 1}]
    assert opened.count == 2  # one per lane, whatever the application's pool size
    await engine.dispose()
    await asyncio.sleep(0.1)  # the lanes close their connections on their own threads
    assert opened.count == 0
    # A disposed engine may be used again, as any SQLAlchemy engine: new lanes, same file.
    await session.add_items([{"n": 2}])
    assert await session.get_items() == [{"n": 1}, {"n": 2}]
    await engine.dispose()


async def test_session_close_closes_the_worker(tmp_path: Path) -> None:
    session = SQLAlchemySession.from_url(
        "c", url=f"sqlite:///{tmp_path / 'c.db'}", create_tables=True
    )
    opened = _OpenConnections(session.engine)
    await session.add_items([{"n": 1}])
    assert opened.count == 1
    await session.close()
    await asyncio.sleep(0.1)
    assert opened.count == 0


def _child_adds(session: SQLAlchemySession) -> None:
    asyncio.run(session.add_items([{"from": "child"}]))


async def test_a_forked_child_starts_its_own_worker(file_engine: AsyncEngine) -> None:
    session = SQLAlchemySession("fork", engine=file_engine, create_tables=True)
    await session.add_items([{"from": "parent"}])  # the parent's lanes are running
    child = multiprocessing.get_context("fork").Process(target=_child_adds, args=(session,))
    child.start()
    await asyncio.to_thread(child.join, 60)
    assert child.exitcode == 0
    assert await session.get_items() == [{"from": "parent"}, {"from": "child"}]
