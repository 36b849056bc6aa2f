"""MySQL/MariaDB on asyncmy (``mysql+asyncmy://``): the core of the suite, on the other driver.

The whole suite runs on asyncmy with ``CONVOSTORE_TEST_MYSQL_URL=mysql+asyncmy://...``; that
is too long for every CI run, so this module keeps the parts where the driver matters on
every run: the four operations, the hot statements on the driver's cursor, its error codes
(a lock wait retried, a lost connection retried, a missing table), the pool's reset skipped
after a COMMIT, and no server notes in the CLI's output. The server is the run's MySQL test
server (``CONVOSTORE_TEST_MYSQL_URL``), whatever its URL's driver.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import (
    RetryPolicy,
    SchemaError,
    StorageError,
    Tables,
    create_tables,
    engine_from_url,
    to_async_url,
)
from convostore._db.direct import executor, fetch_on_driver
from convostore._db.engine import Database
from convostore._db.schema import utcnow

from ._databases import scratch_database, server_down, server_url, skip_or_fail
from ._programs import convostore
from ._stores import drop_tables, session_on, unique_tables

pytestmark = pytest.mark.mysql


def asyncmy_url() -> URL:
    """The run's MySQL test server, on asyncmy."""
    url = to_async_url(server_url("mysql"))
    return url.set(drivername=f"{url.get_backend_name()}+asyncmy")


@pytest.fixture(scope="module")
async def asyncmy_engine() -> AsyncIterator[AsyncEngine]:
    """An engine on asyncmy; skips (under CI fails) without asyncmy or a server."""
    if importlib.util.find_spec("asyncmy") is None:
        skip_or_fail("asyncmy is not installed: pip install 'convostore[asyncmy]'")
    engine = engine_from_url(asyncmy_url(), pool_size=4, max_overflow=4)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any connection failure means "server not reachable"
        await engine.dispose()
        server_down("mysql", f"{type(exc).__name__}: {exc}")
    assert engine.dialect.driver == "asyncmy"
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def asyncmy_tables(asyncmy_engine: AsyncEngine) -> AsyncIterator[Tables]:
    """Tables of this module's own on the asyncmy engine, dropped at the end."""
    tables = unique_tables("am")
    await create_tables(asyncmy_engine, tables)
    yield tables
    await drop_tables(asyncmy_engine, tables)


async def test_the_four_operations(asyncmy_engine: AsyncEngine, asyncmy_tables: Tables) -> None:
    session = session_on(asyncmy_engine, asyncmy_tables)
    text = "café ☕ 𝄞 🙂 \\ ' \" % %s \t\n end "  # 4-byte characters, escapes, format marks
    await session.add_items([{"n": 0, "text": text}, {"n": 1}])
    await session.add_items([{"n": 2, "big": "x" * 300_000}])
    assert [item["n"] for item in await session.get_items()] == [0, 1, 2]
    assert (await session.get_items(limit=3))[0]["text"] == text
    assert await session.get_items(limit=1) == [{"n": 2, "big": "x" * 300_000}]
    assert await session.pop_item() == {"n": 2, "big": "x" * 300_000}
    assert await session.get_items(limit=1) == [{"n": 1}]
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None


async def test_concurrent_writers_get_contiguous_positions(
    asyncmy_engine: AsyncEngine, asyncmy_tables: Tables
) -> None:
    session = session_on(asyncmy_engine, asyncmy_tables)
    await asyncio.gather(
        *(session.add_items([{"w": w, "i": i} for i in range(3)]) for w in range(8))
    )
    items = await session.get_items()
    assert len(items) == 24
    for start in range(0, 24, 3):  # every batch is stored whole, in its own order
        batch = items[start : start + 3]
        assert [item["i"] for item in batch] == [0, 1, 2]
        assert len({item["w"] for item in batch}) == 1


async def test_hot_statements_run_on_the_driver(
    asyncmy_engine: AsyncEngine, asyncmy_tables: Tables
) -> None:
    statements = Database.of(asyncmy_engine, asyncmy_tables).statements
    row = {"session_id": f"am-{uuid.uuid4().hex}", "idempotency_key": "k", "created_at": utcnow()}

    def direct(conn: Connection) -> bool:
        return executor(conn, statements) is not conn

    def insert_twice(conn: Connection) -> None:
        ex = executor(conn, statements)
        assert ex is not conn
        ex.execute(statements.insert_key, row)
        ex.execute(statements.insert_key, row)

    async with asyncmy_engine.connect() as conn:
        assert await conn.run_sync(direct)
        # asyncmy's own errors come out as SQLAlchemy's, as from Connection.execute.
        with pytest.raises(IntegrityError) as caught:
            await conn.run_sync(insert_twice)
        await conn.rollback()
    assert "INSERT" in str(caught.value.statement)

    def watch(*_: Any) -> None:
        return None

    # A read: one statement on a pooled asyncmy connection, and its ROLLBACK.
    session = session_on(asyncmy_engine, asyncmy_tables)
    await session.add_items([{"n": 0}, {"n": 1}])
    params = {"sid": session.session_id, "lim": 1}
    rows = await fetch_on_driver(asyncmy_engine, statements, statements.select_tail, params)
    assert rows is not None
    assert [row[1] for row in rows] == ['{"n":1}']

    event.listen(asyncmy_engine.sync_engine, "before_cursor_execute", watch)
    try:
        async with asyncmy_engine.connect() as conn:
            assert not await conn.run_sync(direct)
        assert (
            await fetch_on_driver(asyncmy_engine, statements, statements.select_tail, params)
            is None
        )
    finally:
        event.remove(asyncmy_engine.sync_engine, "before_cursor_execute", watch)


async def test_a_lock_wait_timeout_is_retried(
    asyncmy_engine: AsyncEngine, asyncmy_tables: Tables, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncmy's error 1205 is transient: the write is tried again until the lock is free."""
    sessions = asyncmy_tables.sessions
    impatient = engine_from_url(
        asyncmy_url(), connect_args={"init_command": "SET SESSION innodb_lock_wait_timeout = 1"}
    )
    try:
        mine = session_on(asyncmy_engine, asyncmy_tables)
        await mine.add_items([{"n": 0}])
        theirs = session_on(impatient, asyncmy_tables, mine.session_id)
        once = session_on(impatient, asyncmy_tables, mine.session_id, retry=RetryPolicy(attempts=1))
        async with asyncmy_engine.connect() as holder:
            locked = select(sessions).where(sessions.c.session_id == mine.session_id)
            await holder.execute(locked.with_for_update())
            with pytest.raises(StorageError, match="1205"):
                await once.add_items([{"n": -1}])
            with caplog.at_level(logging.DEBUG, logger="convostore"):
                write = asyncio.ensure_future(theirs.add_items([{"n": 1}]))
                await asyncio.sleep(1.5)  # at least one try has met the timeout
                await holder.commit()
                await write
        assert "failed (transient, OperationalError)" in caplog.text
        assert await mine.get_items() == [{"n": 0}, {"n": 1}]
    finally:
        await impatient.dispose()


async def test_a_killed_connection_is_replaced(
    asyncmy_tables: Tables, caplog: pytest.LogCaptureFixture
) -> None:
    """The server ends the pooled connection: the next read and write run on a new one."""
    one = engine_from_url(asyncmy_url(), pool_size=1, max_overflow=0)
    try:
        session = session_on(one, asyncmy_tables)
        for work in ("read", "write"):
            await session.add_items([{"work": work}])
            async with one.connect() as conn:
                thread = (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar_one()
            async with one.connect() as conn:
                pass  # the pool's one connection, going back idle
            killer = engine_from_url(asyncmy_url())
            try:
                async with killer.connect() as conn:
                    await conn.exec_driver_sql(f"KILL {int(thread)}")
            finally:
                await killer.dispose()
            if work == "read":
                # The read on the driver fails, and runs again the usual way.
                assert (await session.get_items())[-1] == {"work": "read"}
                continue
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="convostore"):
                await session.add_items([{"after": "kill"}])
            assert "failed (disconnect, " in caplog.text  # asyncmy's 2013/2006: retried
        assert (await session.get_items())[-1] == {"after": "kill"}
    finally:
        await one.dispose()


async def test_missing_tables_are_a_schema_error(asyncmy_engine: AsyncEngine) -> None:
    session = session_on(asyncmy_engine, unique_tables("am"))
    with pytest.raises(SchemaError, match="1146"):
        await session.get_items()
    with pytest.raises(SchemaError):
        await session.add_items([{"n": 0}])


async def _rollbacks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        status = await conn.exec_driver_sql(
            "SELECT variable_value FROM information_schema.session_status"
            " WHERE variable_name = 'COM_ROLLBACK'"
        )
        return int(status.scalar_one())


async def test_no_rollback_after_a_commit_but_after_a_read(asyncmy_tables: Tables) -> None:
    """The pool skips its reset ROLLBACK after convostore's COMMIT, as asyncmy's status says.

    After a read it still rolls back: the read's snapshot would outlive it otherwise.
    """
    one = engine_from_url(asyncmy_url(), pool_size=1, max_overflow=0)
    try:
        session = session_on(one, asyncmy_tables)
        before = await _rollbacks(one)  # this read is rolled back on its way to the pool
        for n in range(5):
            await session.add_items([{"n": n}])
        after_writes = await _rollbacks(one)
        assert after_writes - before == 1  # the read before
        for _ in range(5):
            await session.get_items(limit=2)
        assert await _rollbacks(one) - after_writes == 1 + 5
    finally:
        await one.dispose()


async def test_the_operations_draw_no_server_notes(
    asyncmy_engine: AsyncEngine, asyncmy_tables: Tables, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncmy asks for and logs every note (a round trip each): the hot path draws none."""
    session = session_on(asyncmy_engine, asyncmy_tables)
    with caplog.at_level(logging.INFO, logger="asyncmy"):
        await session.add_items([{"n": 0}, {"n": 1}])
        await session.get_items(limit=1)
        await session.pop_item()
        await session.clear_session()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncmy"] == []


async def test_migrate_prints_no_server_notes(asyncmy_engine: AsyncEngine) -> None:
    """MariaDB notes that it ignores the names of primary keys; the CLI keeps them out."""
    async with scratch_database(asyncmy_engine) as url:
        assert url.startswith(f"{asyncmy_url().drivername}://")
        up = convostore("migrate", "upgrade", "head", "--url", url)
        assert up.returncode == 0, up.stderr
        lines = up.stderr.strip().splitlines()
        assert lines
        assert all(line.startswith("Running upgrade") for line in lines), lines
        assert up.stdout == ""
