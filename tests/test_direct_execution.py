"""Hot statements on the driver's cursor, and only while nobody watches the statements.

On every backend convostore runs its hot statements (appends, tail and full reads, pops,
deletes) on the DBAPI cursor of the connection SQLAlchemy checked out, compiled once
(``convostore._db.direct``). These tests pin when that happens and when every statement goes
through ``Connection.execute`` instead: a statement listener, echo, engine logging, an engine
that had the application's listeners before convostore met it. That the results are the
same is the whole suite's job: it runs on such engines.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from convostore import SQLAlchemySession, engine_from_url, to_async_url
from convostore._db.direct import executor, fetch_on_driver
from convostore._db.engine import Database
from convostore._db.schema import Tables, utcnow
from tests._stores import session_on


def _direct(engine: AsyncEngine, tables: Tables) -> Callable[[Connection], bool]:
    statements = Database.of(engine, tables).statements

    def check(conn: Connection) -> bool:
        return executor(conn, statements) is not conn

    return check


async def _runs_direct(engine: AsyncEngine, tables: Tables) -> bool:
    async with engine.connect() as conn:
        return await conn.run_sync(_direct(engine, tables))


async def _round_trip(session: SQLAlchemySession) -> None:
    await session.add_items([{"n": 0}, {"n": 1}])
    await session.add_items([{"n": 2}])
    assert await session.get_items(limit=2) == [{"n": 1}, {"n": 2}]
    assert await session.pop_item() == {"n": 2}
    assert await session.get_items() == [{"n": 0}, {"n": 1}]
    await session.clear_session()
    assert await session.get_items() == []


async def test_hot_statements_run_on_the_driver_cursor(engine: AsyncEngine, tables: Tables) -> None:
    assert await _runs_direct(engine, tables)
    await _round_trip(session_on(engine, tables))


async def test_a_statement_listener_sees_every_statement(
    engine: AsyncEngine, tables: Tables
) -> None:
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", watch)
    try:
        assert not await _runs_direct(engine, tables)
        await _round_trip(session_on(engine, tables))
        for verb in ("INSERT", "SELECT", "DELETE", "UPDATE"):
            assert any(verb in s for s in seen), verb
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", watch)
    assert await _runs_direct(engine, tables)


async def test_a_listener_on_the_engine_class_sees_every_statement(
    engine: AsyncEngine, tables: Tables
) -> None:
    """Instrumentation that listens on ``Engine`` itself, after convostore met the engine."""
    session = session_on(engine, tables)
    await _round_trip(session)  # the engine is adopted, its fast paths warm
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", watch)
    try:
        assert not await _runs_direct(engine, tables)
        await _round_trip(session)
        for verb in ("INSERT", "SELECT", "DELETE", "UPDATE"):
            assert any(verb in s for s in seen), verb
    finally:
        event.remove(Engine, "before_cursor_execute", watch)
    assert await _runs_direct(engine, tables)


@pytest.mark.parametrize("name", ["handle_error", "before_execute", "after_cursor_execute"])
async def test_any_statement_event_turns_it_off(
    engine: AsyncEngine, tables: Tables, name: str
) -> None:
    def listener(*_: Any) -> None:
        return None

    event.listen(engine.sync_engine, name, listener)
    try:
        assert not await _runs_direct(engine, tables)
    finally:
        event.remove(engine.sync_engine, name, listener)
    assert await _runs_direct(engine, tables)


async def test_pool_and_transaction_listeners_keep_it(engine: AsyncEngine, tables: Tables) -> None:
    """Checkouts and COMMITs still go through SQLAlchemy: their listeners see them all."""
    commits: list[object] = []
    checkouts: list[object] = []

    def on_commit(conn: Any) -> None:
        commits.append(conn)

    def on_checkout(*args: Any) -> None:
        checkouts.append(args)

    event.listen(engine.sync_engine, "commit", on_commit)
    event.listen(engine.sync_engine, "checkout", on_checkout)
    try:
        assert await _runs_direct(engine, tables)
        await session_on(engine, tables).add_items([{"n": 0}])
        assert commits
        assert checkouts
    finally:
        event.remove(engine.sync_engine, "commit", on_commit)
        event.remove(engine.sync_engine, "checkout", on_checkout)


async def test_echo_and_engine_logging_turn_it_off(engine: AsyncEngine, tables: Tables) -> None:
    engine.sync_engine.echo = True
    try:
        assert not await _runs_direct(engine, tables)
    finally:
        engine.sync_engine.echo = False
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        assert not await _runs_direct(engine, tables)
    finally:
        logger.setLevel(level)
    assert await _runs_direct(engine, tables)


@pytest.fixture
async def own_engine(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine the application makes itself, on the run's database."""
    made = create_async_engine(to_async_url(engine.url))
    yield made
    await made.dispose()


async def test_an_application_engine_without_listeners_gets_it(
    own_engine: AsyncEngine, tables: Tables
) -> None:
    assert await _runs_direct(own_engine, tables)
    await _round_trip(session_on(own_engine, tables))


async def test_an_engine_watched_before_convostore_met_it_never_gets_it(
    own_engine: AsyncEngine, tables: Tables
) -> None:
    seen: list[str] = []

    @event.listens_for(own_engine.sync_engine, "before_cursor_execute")
    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    await _round_trip(session_on(own_engine, tables))
    assert any("INSERT" in s for s in seen)
    event.remove(own_engine.sync_engine, "before_cursor_execute", watch)
    # Its baseline is unknown: convostore cannot tell its own listeners from the
    # application's, and keeps to SQLAlchemy's full path.
    assert not await _runs_direct(own_engine, tables)


async def test_driver_errors_come_out_as_sqlalchemy_errors(
    engine: AsyncEngine, tables: Tables
) -> None:
    statements = Database.of(engine, tables).statements
    row = {
        "session_id": f"direct-{uuid.uuid4().hex}",
        "idempotency_key": "k",
        "created_at": utcnow(),
    }

    def insert_twice(conn: Connection) -> None:
        ex = executor(conn, statements)
        assert ex is not conn
        ex.execute(statements.insert_key, row)
        ex.execute(statements.insert_key, row)

    async with engine.connect() as conn:
        with pytest.raises(IntegrityError) as caught:
            await conn.run_sync(insert_twice)
        await conn.rollback()
    assert caught.value.orig is not None
    assert "INSERT" in str(caught.value.statement)


async def test_a_pooled_connection_keeps_no_snapshot(engine: AsyncEngine, tables: Tables) -> None:
    """Each read sees what others committed before it, on the one connection of a pool.

    On MySQL and MariaDB a read leaves a snapshot open until ROLLBACK, although the server
    reports no transaction: the pool must still roll back after reads (it may skip that
    after convostore's COMMIT).
    """
    one = engine_from_url(engine.url, pool_size=1, max_overflow=0)
    other = engine_from_url(engine.url)
    try:
        mine = session_on(one, tables)
        theirs = session_on(other, tables, mine.session_id)
        assert await mine.get_items() == []
        await theirs.add_items([{"n": 0}])
        assert await mine.get_items() == [{"n": 0}]
        await mine.add_items([{"n": 1}])
        await theirs.add_items([{"n": 2}])
        assert await mine.get_items(limit=2) == [{"n": 1}, {"n": 2}]
        assert await mine.pop_item() == {"n": 2}
        await theirs.add_items([{"n": 3}])
        assert await mine.get_items() == [{"n": 0}, {"n": 1}, {"n": 3}]
        await mine.clear_session()
    finally:
        await one.dispose()
        await other.dispose()


async def test_reads_go_straight_to_the_driver(engine: AsyncEngine, tables: Tables) -> None:
    """A read needs no transaction of SQLAlchemy's: one fetch on a pooled driver connection
    (PostgreSQL, and MySQL/MariaDB on engines convostore made; SQLite has its worker)."""
    statements = Database.of(engine, tables).statements
    session = session_on(engine, tables)
    await session.add_items([{"n": 0}, {"n": 1}])
    params = {"sid": session.session_id, "lim": 1}
    rows = await fetch_on_driver(engine, statements, statements.select_tail, params)
    if engine.dialect.name == "sqlite":
        assert rows is None  # a SQLite file's reads run on the worker
        return
    assert rows is not None
    assert [row[1] for row in rows] == ['{"n":1}']
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", watch)
    try:
        assert await fetch_on_driver(engine, statements, statements.select_tail, params) is None
        assert await session.get_items(limit=1) == [{"n": 1}]
        assert any("SELECT" in s for s in seen)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", watch)
