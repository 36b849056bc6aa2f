"""Faults: database restarts in the middle of a stream, and connections cut around COMMIT.

The restart tests start their own PostgreSQL and MariaDB servers in temporary directories,
on free ports, and restart *those*: the shared test servers are never touched. They are
marked ``fault`` (``pytest -m fault`` runs them alone) and need the server binaries
(``initdb``/``pg_ctl``, ``mariadb-install-db``/``mariadbd``); without them they skip, except
under ``CI=true``, where they fail.

The COMMIT tests put a small TCP proxy between the driver and a shared test server and cut
the connection exactly around the ``COMMIT`` statement, to check that a write is retried
only when it certainly did not commit. A real deadlock checks that lock conflicts are
retried as whole transactions, and ``bench/soak.py`` runs briefly across a restart.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import (
    CommitOutcomeUnknownError,
    ConvostoreError,
    DatabaseUnreachableError,
    RetryPolicy,
    SQLAlchemySession,
    StorageError,
    Tables,
    build_tables,
    create_tables,
    engine_from_url,
)
from convostore._db.engine import Database
from convostore._db.runner import run_write as run_on_database

from ._databases import SERVERS, backend_params
from ._proxy import Proxied
from ._servers import PrivateMariaDB, PrivatePostgres, PrivateServer
from ._stores import session_on, table_options, unique_tables

pytestmark = pytest.mark.fault

REPO = Path(__file__).resolve().parent.parent


async def run_write(engine: AsyncEngine, work: Any, **options: Any) -> Any:
    """Run ``work`` through convostore's runner on ``engine`` (default tables and retries)."""
    database = Database.of(engine, build_tables())
    return await run_on_database(database, work, retry=RetryPolicy(), **options)


@pytest.fixture(scope="module", params=backend_params(*SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[PrivateServer]:
    """A private server of the backend, started for this module and removed at the end."""
    srv: PrivateServer = PrivatePostgres() if request.param == "postgresql" else PrivateMariaDB()
    try:
        yield srv
    finally:
        srv.destroy()


@pytest.fixture
async def fault_engine(server: PrivateServer) -> AsyncIterator[tuple[AsyncEngine, Tables]]:
    """An engine with a warm pool on the private server, and fresh tables there."""
    engine = engine_from_url(server.url, pool_size=8, max_overflow=4)
    tables = unique_tables("f")
    await create_tables(engine, tables)
    try:
        yield engine, tables
    finally:
        await engine.dispose()


def _session(engine: AsyncEngine, tables: Tables, **options: Any) -> SQLAlchemySession:
    return session_on(engine, tables, f"fault-{uuid.uuid4().hex}", **options)


@dataclass
class Stream:
    """What a stream of writes and reads saw while the server restarted under it."""

    acked: dict[int, list[int]] = field(default_factory=dict)
    unknown: dict[int, list[int]] = field(default_factory=dict)
    failed: list[tuple[int, int, BaseException]] = field(default_factory=list)
    read_errors: list[BaseException] = field(default_factory=list)
    pops: dict[int, list[int]] = field(default_factory=dict)
    slowest: float = 0.0


async def _run_stream(
    sessions: list[SQLAlchemySession], during: Callable[[], Any], settle: float = 1.0
) -> Stream:
    """Write batches of two items and read tails on every session while ``during`` runs."""
    seen = Stream()
    stop = asyncio.Event()

    async def timed(call: Any) -> Any:
        began = time.monotonic()
        try:
            return await call
        finally:
            seen.slowest = max(seen.slowest, time.monotonic() - began)

    async def writer(k: int, session: SQLAlchemySession) -> None:
        seen.acked[k], seen.unknown[k] = [], []
        i = 0
        while not stop.is_set():
            batch = [{"k": k, "i": i, "half": 0}, {"k": k, "i": i, "half": 1}]
            try:
                await timed(session.add_items(batch))
                seen.acked[k].append(i)
            except CommitOutcomeUnknownError:
                seen.unknown[k].append(i)
            except ConvostoreError as exc:
                seen.failed.append((k, i, exc))
            i += 1
            await asyncio.sleep(0.002)

    async def reader(session: SQLAlchemySession) -> None:
        while not stop.is_set():
            try:
                items = await timed(session.get_items(limit=4))
                assert all(isinstance(item, dict) for item in items)
            except ConvostoreError as exc:
                seen.read_errors.append(exc)
            await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(writer(k, s)) for k, s in enumerate(sessions)]
    tasks += [asyncio.create_task(reader(s)) for s in sessions]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(during)
    await asyncio.sleep(settle)
    stop.set()
    await asyncio.gather(*tasks)
    return seen


async def _check_integrity(sessions: list[SQLAlchemySession], seen: Stream) -> None:
    """Acknowledged batches stored once each, in order; failed ones absent; unknown at most once."""
    failed = {(k, i) for k, i, _ in seen.failed}
    for k, session in enumerate(sessions):
        items = await session.get_items()
        assert len(items) % 2 == 0, "a batch was stored in part"
        stored = []
        for first, second in zip(items[::2], items[1::2], strict=True):
            assert (first["half"], second["half"]) == (0, 1), "a batch was stored in part"
            assert first["i"] == second["i"]
            assert first["k"] == second["k"] == k
            stored.append(first["i"])
        assert stored == sorted(stored), "batches out of order"
        assert len(stored) == len(set(stored)), "a batch was stored twice"
        assert set(seen.acked[k]) <= set(stored), "an acknowledged batch was lost"
        for i in stored:
            assert (k, i) not in failed, "a batch whose write raised was stored"
            assert i in seen.acked[k] or i in seen.unknown[k]


@pytest.mark.slow
@pytest.mark.parametrize("crash", [False, True], ids=["clean-shutdown", "crash"])
async def test_restart_mid_stream_is_invisible(
    server: PrivateServer, fault_engine: tuple[AsyncEngine, Tables], crash: bool
) -> None:
    engine, tables = fault_engine
    sessions = [_session(engine, tables) for _ in range(4)]
    outage: list[float] = []
    seen = await _run_stream(sessions, lambda: outage.append(server.restart(1.0, crash=crash)))

    assert seen.read_errors == [], "a read raised during the restart"
    assert seen.failed == [], "a write raised something other than CommitOutcomeUnknownError"
    assert sum(map(len, seen.acked.values())) > 20
    await _check_integrity(sessions, seen)
    # Every session works again, without being recreated.
    for session in sessions:
        await session.add_items([{"after": True}])
        assert (await session.get_items(limit=1)) == [{"after": True}]
    print(
        f"{server.name} {'crash' if crash else 'clean'} restart: outage {outage[0]:.2f}s, "
        f"slowest call {seen.slowest:.2f}s, unknown outcomes "
        f"{sum(map(len, seen.unknown.values()))}"
    )


async def test_stale_pool_after_restart_is_not_an_error(
    server: PrivateServer, fault_engine: tuple[AsyncEngine, Tables]
) -> None:
    engine, tables = fault_engine
    sessions = [_session(engine, tables) for _ in range(8)]
    # Fill the pool with connections that the restart will leave dead.
    await asyncio.gather(*(s.add_items([{"n": 0}]) for s in sessions))
    await asyncio.to_thread(server.restart, 0.2)
    assert await asyncio.gather(*(s.get_items() for s in sessions)) == [[{"n": 0}]] * 8
    await asyncio.gather(*(s.add_items([{"n": 1}]) for s in sessions))
    assert await asyncio.gather(*(s.pop_item() for s in sessions)) == [{"n": 1}] * 8


async def test_outage_longer_than_the_policy_raises_then_recovers(
    server: PrivateServer, fault_engine: tuple[AsyncEngine, Tables]
) -> None:
    engine, tables = fault_engine
    session = _session(engine, tables, retry=RetryPolicy(max_elapsed=0.5))
    await session.add_items([{"n": 0}])
    await asyncio.to_thread(server.stop)
    try:
        began = time.monotonic()
        with pytest.raises(StorageError, match="gave up after") as caught:
            await session.get_items()
        assert time.monotonic() - began < 5
        assert not isinstance(caught.value, CommitOutcomeUnknownError)
        with pytest.raises(StorageError):
            await session.add_items([{"n": 1}])
    finally:
        await asyncio.to_thread(server.start)
    assert await session.get_items() == [{"n": 0}]


@pytest.mark.slow
def test_soak_survives_a_restart(server: PrivateServer) -> None:
    """bench/soak.py (processes, shared sessions, adds, pops, reads) across a restart."""
    options = ["--seconds", "6", "--processes", "2", "--sessions", "4"]
    soak = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--url", server.url, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert soak.stderr is not None
        started = []  # set-up takes from one second to several on a loaded machine
        while not any("workers started" in line for line in started):
            line = soak.stderr.readline()
            assert line, "bench/soak.py ended before its workers started"
            started.append(line)
        # Every worker has connected (one that had not would take the outage for a wrong
        # address and fail at once); they run for six seconds from here.
        time.sleep(2.0)
        server.restart(1.0)
        out, err = soak.communicate(timeout=180)
        err = "".join(started) + err
    finally:
        soak.kill()
    assert soak.returncode == 0, f"{out}\n{err[-3000:]}"
    summary = json.loads(out)
    assert summary["integrity"] == "OK"
    assert summary["errors"] == 0
    print(f"{server.name} soak across a restart: {summary}")


async def test_an_engine_that_connected_waits_out_a_restart_a_new_one_fails_fast(
    server: PrivateServer,
) -> None:
    """Refused while the server is down: retried by engines that had connected, at once not.

    A session opened from a URL connects once; the server stops, and comes back a second
    later. Meanwhile a new engine on the same address (never connected) raises
    ``DatabaseUnreachableError`` at once; the session's calls wait and succeed, on its own
    loop and on another thread's loop, whose engine is made during the outage (it shares
    what the session's first engine knows about the address).
    """
    tables = unique_tables("f")
    session = SQLAlchemySession.from_url(
        f"fault-{uuid.uuid4().hex}", url=server.url, create_tables=True, **table_options(tables)
    )
    await session.add_items([{"n": 0}])
    main_engine = session.engine
    await asyncio.to_thread(server.stop)
    back = threading.Thread(target=lambda: (time.sleep(1.0), server.start()))
    back.start()
    try:
        began = time.monotonic()
        async with SQLAlchemySession.from_url(
            "never-connected", url=server.url, **table_options(tables)
        ) as fresh:
            with pytest.raises(DatabaseUnreachableError) as caught:
                await fresh.get_items()
        assert time.monotonic() - began < 1.0
        assert (caught.value.host, caught.value.port) == ("127.0.0.1", server.port)
        assert back.is_alive(), "the server came back before the new engine was tried"

        def on_another_loop() -> tuple[list[Any], bool]:
            async def read() -> tuple[list[Any], bool]:
                return await session.get_items(), session.engine is not main_engine

            return asyncio.run(read())

        began = time.monotonic()
        here, there = await asyncio.gather(session.get_items(), asyncio.to_thread(on_another_loop))
        waited = time.monotonic() - began
    finally:
        await asyncio.to_thread(back.join)
    assert here == [{"n": 0}]
    assert there == ([{"n": 0}], True), "the other loop's read failed or shared the engine"
    assert waited > 0.5, "the reads did not wait for the server"
    await session.add_items([{"n": 1}])
    assert await session.get_items() == [{"n": 0}, {"n": 1}]
    await session.close()


# -- connections cut around COMMIT ---------------------------------------------------------


def _add_commits_at(engine: AsyncEngine) -> str:
    """Where a plain add commits: on PostgreSQL its one statement runs in autocommit (no
    BEGIN, no COMMIT); elsewhere at its COMMIT."""
    return "next" if engine.dialect.name == "postgresql" else "commit"


async def test_add_whose_commit_answer_was_lost_is_stored_once(
    proxied: Proxied,
) -> None:
    proxy, engine, tables = proxied
    session = _session(engine, tables)
    await session.add_items([{"n": 0}])
    proxy.cut, proxy.at = "after", _add_commits_at(engine)
    await session.add_items([{"n": 1}, {"n": 2}])  # committed; the lost answer is looked up
    assert proxy.cuts == 1
    assert await session.get_items() == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_add_whose_commit_was_never_sent_raises_outcome_unknown(
    proxied: Proxied,
) -> None:
    proxy, engine, tables = proxied
    session = _session(engine, tables)
    await session.add_items([{"n": 0}])
    proxy.cut, proxy.at = "before", _add_commits_at(engine)
    with pytest.raises(CommitOutcomeUnknownError, match="may or may not"):
        await session.add_items([{"n": 1}])
    assert proxy.cuts == 1
    # Not retried blindly: the write did not commit, and nothing was written twice.
    assert await session.get_items() == [{"n": 0}]
    await session.add_items([{"n": 1}])
    assert await session.get_items() == [{"n": 0}, {"n": 1}]


@pytest.mark.parametrize("cut", ["before", "after"])
async def test_pop_and_clear_with_lost_commit_raise_outcome_unknown(
    proxied: Proxied, cut: str
) -> None:
    proxy, engine, tables = proxied
    session = _session(engine, tables)
    await session.add_items([{"n": 0}, {"n": 1}])
    proxy.cut = cut
    with pytest.raises(CommitOutcomeUnknownError):
        await session.pop_item()
    remaining = await session.get_items()
    assert remaining == ([{"n": 0}] if cut == "after" else [{"n": 0}, {"n": 1}])
    proxy.cut = cut
    with pytest.raises(CommitOutcomeUnknownError):
        await session.clear_session()
    assert await session.get_items() == ([] if cut == "after" else remaining)


async def test_verify_false_runs_the_write_again(
    proxied: Proxied,
) -> None:
    proxy, engine, _ = proxied
    marks = Table(f"f_{uuid.uuid4().hex[:8]}_marks", MetaData(), Column("k", String(64)))
    async with engine.begin() as conn:
        await conn.run_sync(marks.create)
    key = uuid.uuid4().hex
    tries = []

    def work(conn: Connection) -> str:
        tries.append(1)
        conn.execute(marks.insert().values(k=key))
        return "done"

    def verify(conn: Connection) -> bool | None:
        found = conn.execute(select(marks.c.k).where(marks.c.k == key))
        return found.first() is not None

    try:
        proxy.cut = "before"
        assert await run_write(engine, work, verify=verify) == "done"
        assert len(tries) == 2  # the first try certainly did not commit: run again, once
        proxy.cut = "after"
        assert await run_write(engine, work, verify=verify) == "done"
        assert len(tries) == 3  # committed, answer lost: found by verify, not run again
        async with engine.connect() as conn:
            rows = (await conn.execute(select(marks.c.k).where(marks.c.k == key))).all()
        assert len(rows) == 2
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(marks.drop)


# -- lock conflicts ------------------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.mysql
async def test_deadlock_is_retried_as_a_whole_transaction(engine: AsyncEngine) -> None:
    """Two transactions lock two rows in opposite orders: the server kills one, it runs again."""
    counters = Table(
        f"f_{uuid.uuid4().hex[:8]}_locks",
        MetaData(),
        Column("k", String(8), primary_key=True),
        Column("v", Integer, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(counters.create)
        await conn.execute(counters.insert(), [{"k": "a", "v": 0}, {"k": "b", "v": 0}])
    # A unit of work is synchronous: each transaction runs on a thread of its own (its own
    # loop and engine), so one can wait for the other while holding its first lock.
    holding = {"x": threading.Event(), "y": threading.Event()}
    tries = {"x": 0, "y": 0}

    def transfer(name: str, other: str, first: str, second: str) -> Any:
        def work(conn: Connection) -> None:
            tries[name] += 1
            bump = counters.update().values(v=counters.c.v + 1)
            conn.execute(bump.where(counters.c.k == first))
            if tries[name] == 1:  # only the first tries meet, each holding one lock
                holding[name].set()
                assert holding[other].wait(30)
            conn.execute(bump.where(counters.c.k == second))

        return work

    def in_thread(work: Any) -> None:
        async def main() -> None:
            own = engine_from_url(engine.url)
            try:
                await run_write(own, work)
            finally:
                await own.dispose()

        asyncio.run(main())

    try:
        await asyncio.gather(
            asyncio.to_thread(in_thread, transfer("x", "y", "a", "b")),
            asyncio.to_thread(in_thread, transfer("y", "x", "b", "a")),
        )
        assert sorted(tries.values()) == [1, 2]  # one deadlock victim, run once more
        async with engine.connect() as conn:
            values = dict((await conn.execute(select(counters.c.k, counters.c.v))).all())
        assert values == {"a": 2, "b": 2}  # each transaction applied exactly once
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(counters.drop)
