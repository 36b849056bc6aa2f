"""A wrong address, user, password or database: a typed one-line error at once, from every call.

Each case is a URL a user gets wrong in their first hour: a port where nothing listens, a
host name that does not exist, a user or password the server refuses, a database that is not
there; on SQLite, a folder that does not exist. Every public call that touches the database
(a session's four operations, with and without ``create_tables``; the store's calls; the
programmatic migrations) must raise a convostore error, the driver's exception chained, in
one line that names the address and never the password, in well under a second: an engine
that never connected does not retry a refusal as if the server were restarting. The CLI says
the same in one line on standard error, through the console script.

The restart side of the rule (an engine that had connected keeps retrying) is in
``tests/test_faults.py``, on private servers it may stop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import convostore.migrate
from convostore import (
    ConvostoreError,
    DatabaseUnreachableError,
    SessionStore,
    SQLAlchemySession,
    StorageError,
    create_tables,
    engine_from_url,
)

from ._databases import SERVERS, backend_params, server_down, server_url
from ._programs import convostore as console_script
from ._programs import free_port
from ._stores import drop_tables, table_options, unique_tables

PASSWORD = "Pw-5ecret-7d21"
"""In every server URL here, so that each message can be checked for it."""

FAST = 1.0
"""Seconds: an error that takes longer was retried (the old behaviour took 5 to 7 s)."""

_DEFAULT_PORT = {"postgresql": 5432, "mysql": 3306}


@dataclasses.dataclass(frozen=True)
class Case:
    """A URL that cannot work, and what every call on it must say."""

    url: str
    """The URL as a user would write it (a plain ``postgresql://``, with a password)."""

    unreachable: bool
    """Whether nothing answers there (``DatabaseUnreachableError``), or a server says no."""

    says: tuple[str, ...]
    """Text the message must contain: the address, and what was wrong."""

    host: str | None = None
    port: int | None = None
    needs_server: str | None = None
    """The shared server whose answer the case needs (skipped, or failed under CI, if down)."""


def _server_case(backend: str, kind: str) -> Case:
    plain = make_url(server_url(backend)).set(drivername=backend)
    url = plain.set(password=PASSWORD)
    host = url.host or "127.0.0.1"
    port = url.port or _DEFAULT_PORT[backend]
    if kind == "wrong-port":
        port = free_port()
        bad = url.set(host="127.0.0.1", port=port)
        return Case(
            _text(bad), True, (f"127.0.0.1:{port}", "connection refused"), "127.0.0.1", port
        )
    if kind == "wrong-host":
        bad = url.set(host="no-such-host.invalid")
        return Case(
            _text(bad),
            True,
            (f"no-such-host.invalid:{port}", "host name is not known"),
            "no-such-host.invalid",
            port,
        )
    if kind == "wrong-password":
        # The test PostgreSQL trusts local connections (any password passes), so a user it
        # does not know stands in; the test MariaDB's root has no password, so any is wrong.
        bad = url.set(username="cs_no_such_user") if backend == "postgresql" else url
        word = "cs_no_such_user" if backend == "postgresql" else "Access denied"
        return Case(_text(bad), False, (f"{host}:{port}", word), needs_server=backend)
    assert kind == "missing-database"
    # MariaDB checks the password first: only root's own (none) reaches the database check.
    bad = (plain if backend == "mysql" else url).set(database="cs_no_such_database")
    return Case(_text(bad), False, (f"{host}:{port}", "cs_no_such_database"), needs_server=backend)


def _text(url: Any) -> str:
    return str(url.render_as_string(hide_password=False))


KINDS = ("wrong-port", "wrong-host", "wrong-password", "missing-database")

CASES = [
    pytest.param((backend, kind), marks=getattr(pytest.mark, backend), id=f"{backend}-{kind}")
    for backend in SERVERS
    for kind in KINDS
] + [
    pytest.param(("sqlite", "missing-folder"), marks=pytest.mark.sqlite, id="sqlite-missing-folder")
]

_answers: dict[str, str | None] = {}


async def _server_answers(backend: str) -> str | None:
    """``None`` if the shared server of ``backend`` answers; otherwise why not."""
    if backend not in _answers:
        engine = engine_from_url(server_url(backend))
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            _answers[backend] = None
        except Exception as exc:  # any failure: the server is not there for us
            _answers[backend] = f"{type(exc).__name__}: {exc}"
        finally:
            await engine.dispose()
    return _answers[backend]


@pytest.fixture(params=CASES)
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    """One bad URL; a case that needs a server's refusal needs the server up."""
    backend, kind = request.param
    if backend == "sqlite":
        missing = tmp_path / "no-such-folder" / "chat.db"
        return Case(f"sqlite:///{missing}", True, (str(missing), "folder", "does not exist"))
    found = _server_case(backend, kind)
    if found.needs_server and (reason := await _server_answers(backend)) is not None:
        server_down(backend, reason)
    return found


def check(error: BaseException, case: Case, elapsed: float) -> None:
    """What every failure on ``case`` must look like."""
    message = str(error)
    assert isinstance(error, ConvostoreError), f"{type(error).__module__}.{type(error).__name__}"
    assert isinstance(error, StorageError)
    assert isinstance(error, DatabaseUnreachableError) is case.unreachable, message
    assert error.__cause__ is not None, "the driver's error is not chained"
    assert "\n" not in message
    for text in case.says:
        assert text in message, f"{text!r} not in {message!r}"
    assert PASSWORD not in message
    assert elapsed < FAST, f"took {elapsed:.2f}s: {message}"
    if isinstance(error, DatabaseUnreachableError) and case.host is not None:
        assert (error.host, error.port) == (case.host, case.port)


async def fails(case: Case, call: Callable[[], Awaitable[object]]) -> None:
    """Run ``call`` and check the error it raises.

    A call slower than ``FAST`` is timed once more and the faster try counts: a busy machine
    can stall one try, while a call that retries (seconds) is slow every time.
    """
    for tries in (1, 2):
        began = time.monotonic()
        try:
            await call()
        except Exception as exc:  # whatever escapes: its type is the first thing checked
            elapsed = time.monotonic() - began
            if elapsed >= FAST and tries == 1:
                continue
            check(exc, case, elapsed)
            return
        pytest.fail("the call succeeded")


SESSION_CALLS: dict[str, Callable[[SQLAlchemySession], Awaitable[object]]] = {
    "add_items": lambda s: s.add_items([{"role": "user", "content": "hi"}]),
    "get_items": lambda s: s.get_items(),
    "pop_item": lambda s: s.pop_item(),
    "clear_session": lambda s: s.clear_session(),
}


@pytest.mark.parametrize("create", [False, True], ids=["existing-tables", "create-tables"])
@pytest.mark.parametrize("operation", sorted(SESSION_CALLS))
async def test_session_operations(case: Case, operation: str, create: bool) -> None:
    tables = unique_tables("cf")
    async with SQLAlchemySession.from_url(
        "connect-failure", url=case.url, create_tables=create, **table_options(tables)
    ) as session:
        await fails(case, lambda: SESSION_CALLS[operation](session))
        # And again: the second call on the same session says the same, as fast.
        await fails(case, lambda: SESSION_CALLS[operation](session))


EXPORT_LINE = (
    '{"convostore": 1, "session_id": "imported", "user_id": null, "metadata": null, '
    '"created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00", '
    '"first_position": 0, "next_position": 1, "items": [{"role": "user", "content": "hi"}]}'
)
"""A session as ``convostore export`` writes it: importing it needs the database."""


STORE_CALLS: dict[str, Callable[[SessionStore], Awaitable[object]]] = {
    "get_session_info": lambda st: st.get_session_info("s"),
    "list_sessions": lambda st: st.list_sessions(),
    "count_sessions": lambda st: st.count_sessions(),
    "delete_session": lambda st: st.delete_session("s"),
    "prune": lambda st: st.prune(dt.timedelta(days=30)),
    "export": lambda st: st.export(io.StringIO()),
    "import_": lambda st: st.import_([EXPORT_LINE]),
    "session.get_items": lambda st: st.session("s").get_items(),
    "session.add_items": lambda st: st.session("s").add_items([{"role": "user"}]),
    "create_tables": lambda st: st.create_tables(),
}


@pytest.mark.parametrize("create", [False, True], ids=["existing-tables", "create-tables"])
@pytest.mark.parametrize("operation", sorted(STORE_CALLS))
async def test_store_calls(case: Case, operation: str, create: bool) -> None:
    tables = unique_tables("cf")
    async with SessionStore(case.url, create_tables=create, **table_options(tables)) as store:
        await fails(case, lambda: STORE_CALLS[operation](store))


@pytest.mark.parametrize("command", ["upgrade", "current", "stamp", "downgrade", "create_tables"])
async def test_programmatic_migrations(case: Case, command: str) -> None:
    engine = engine_from_url(case.url)
    try:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "upgrade": lambda: convostore.migrate.upgrade(engine),
            "current": lambda: convostore.migrate.current(engine),
            "stamp": lambda: convostore.migrate.stamp(engine, "head"),
            "downgrade": lambda: convostore.migrate.downgrade(engine, "base"),
            "create_tables": lambda: create_tables(engine, unique_tables("cf")),
        }
        await fails(case, calls[command])
    finally:
        await engine.dispose()


CLI_COMMANDS = {
    "sessions-list": ["sessions", "list"],
    "import": ["import", "-", "--create-tables"],
    "migrate-upgrade": ["migrate", "upgrade", "head"],
    "migrate-current": ["migrate", "current"],
    "migrate-downgrade": ["migrate", "downgrade", "base", "--yes"],
}
"""A command of each kind: the store's (read, write), and Alembic's (read, write)."""

# Commands that only read: they refuse a SQLite file that does not exist before connecting.
READ_ONLY = {"sessions-list", "migrate-current"}


@pytest.mark.parametrize("command", sorted(CLI_COMMANDS))
def test_cli_prints_one_line(case: Case, command: str, tmp_path: Path) -> None:
    result = console_script(*CLI_COMMANDS[command], "--url", case.url, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    if case.url.startswith("sqlite") and command in READ_ONLY:
        assert result.returncode == 2, result.stderr
        assert f"no SQLite database at {case.says[0]}" in result.stderr
        return
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Error: Error" not in lines[0]
    for text in case.says:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


def test_doctor_names_the_address(case: Case, tmp_path: Path) -> None:
    result = console_script("doctor", "--json", "--url", case.url, cwd=tmp_path)
    assert PASSWORD not in result.stderr + result.stdout
    if case.url.startswith("sqlite"):
        # doctor only reads: it refuses a SQLite file that is not there.
        assert result.returncode == 2, result.stderr
        assert f"no SQLite database at {case.says[0]}" in result.stderr
        return
    assert result.returncode == 1, result.stderr
    reachable = json.loads(result.stdout)["checks"][0]
    assert (reachable["name"], reachable["status"]) == ("reachable", "fail")
    assert case.says[0] in reachable["detail"]


@pytest.mark.parametrize("backend", backend_params(*SERVERS))
async def test_pool_timeout_names_the_pool_settings(backend: str) -> None:
    if (reason := await _server_answers(backend)) is not None:
        server_down(backend, reason)
    tables = unique_tables("cf")
    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.5}
    async with SQLAlchemySession.from_url(
        "pool",
        url=server_url(backend),
        create_tables=True,
        engine_kwargs=pool,
        **table_options(tables),
    ) as session:
        await session.add_items([{"n": 0}])
        try:
            async with session.engine.connect():  # the pool's one connection, held
                began = time.monotonic()
                with pytest.raises(StorageError) as caught:
                    await session.get_items()
                elapsed = time.monotonic() - began
        finally:
            await drop_tables(session.engine, tables)
    message = str(caught.value)
    assert not isinstance(caught.value, DatabaseUnreachableError)
    assert "pool_size=1" in message
    assert "pool_timeout=0.5 s" in message
    assert "\n" not in message
    assert caught.value.__cause__ is not None
    # Repeated, the wait would be 1.0 s at least.
    assert 0.5 <= elapsed < 1.0, f"waited {elapsed:.2f}s: the pool's wait was repeated"


@pytest.mark.postgresql
async def test_a_port_that_never_answers_times_out_once() -> None:
    # A listener that accepts and says nothing: a wrong service, a firewall that swallows.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/agents"
        began = time.monotonic()
        async with SQLAlchemySession.from_url(
            "silent", url=url, engine_kwargs={"connect_args": {"timeout": 0.3}}
        ) as session:
            with pytest.raises(DatabaseUnreachableError) as caught:
                await session.get_items()
        elapsed = time.monotonic() - began
    assert "no answer before the connect timeout" in str(caught.value)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert elapsed < 0.3 + FAST, f"took {elapsed:.2f}s: the timeout was retried"
