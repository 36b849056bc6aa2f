"""pytest plugin that runs the Agents SDK's own session tests against convostore.

Loaded with ``-p convostore_sdk_shim`` into a pytest run rooted in the SDK's extracted sdist
(so the SDK's ``tests`` package, not ours, is importable), by tests/test_sdk_conformance.py.
Its configuration comes from the JSON file named by ``CONVOSTORE_SDK_SHIM``:

- ``backend``: ``sqlite``, ``postgresql`` or ``mysql``.
- ``server_url``: the server's admin URL (PostgreSQL and MariaDB only).
- ``deselect``: test names (``test_x[param]`` or ``Class::test_x``) not to run.
- ``collected_out``: where to write the names of every collected test, deselected included.
- ``used_out``: where to write the names of the tests that constructed a convostore session.
- ``substitute_sqlite_session``: put convostore under the tests that use the SDK's
  ``SQLiteSession`` as their underlying store.

What it changes:

- ``agents.extensions.memory.sqlalchemy_session.SQLAlchemySession`` *is*
  ``convostore.SQLAlchemySession`` (the class itself, not a subclass).
- Optionally ``agents.SQLiteSession`` / ``agents.memory.SQLiteSession`` become
  :class:`ConvostoreSQLiteSession`, a convostore session with ``SQLiteSession``'s constructor.
- On a server backend every SQLite URL a test makes (the module's ``DB_URL``, ``tmp_path``
  files, ``:memory:``) points to a database created for that test alone and dropped after it,
  as fresh as SQLite's in-memory database is for each test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import json
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import convostore
import convostore._db.engine
from convostore._context import Context

_CONFIG: dict[str, Any] = json.loads(Path(os.environ["CONVOSTORE_SDK_SHIM"]).read_text())
_BACKEND: str = _CONFIG["backend"]


class _SQLiteShaped(convostore.SQLAlchemySession):
    """A convostore session built the way the SDK's ``SQLiteSession`` is.

    ``SQLiteSession(session_id, db_path=":memory:", sessions_table=..., messages_table=...,
    session_settings=...)`` becomes a convostore session on ``sqlite+aiosqlite`` at that path
    (or, on a server backend, on the test's database), creating its tables on first use.
    """

    def __init__(
        self,
        session_id: str,
        db_path: str | Path = ":memory:",
        sessions_table: str = "agent_sessions",
        messages_table: str = "agent_messages",
        session_settings: Any = None,
    ) -> None:
        self.db_path = db_path
        path = str(db_path)
        url = (
            "sqlite+aiosqlite:///:memory:" if path == ":memory:" else f"sqlite+aiosqlite:///{path}"
        )
        # As SQLiteSession owns its connection, this session owns its engines, one per event
        # loop, exactly as SQLAlchemySession.from_url makes them.
        context = Context(
            url,
            sessions_table=sessions_table,
            messages_table=messages_table,
            schema=None,
            retry=convostore.RetryPolicy(),
            create_tables=True,
        )
        super().__init__(session_id, engine=context, session_settings=session_settings)


class ConvostoreSQLiteSession(_SQLiteShaped):
    """Stands in for ``SQLiteSession``."""

    def close(self) -> None:  # type: ignore[override]
        """``SQLiteSession.close()`` is synchronous; the tests call it without ``await``.

        The engine's connections go with the test: its file or database is dropped after it.
        """


class ConvostoreAsyncSQLiteSession(_SQLiteShaped):
    """Stands in for ``AsyncSQLiteSession`` (whose ``close()`` is awaited, like convostore's)."""


_current: list[str] = []
_used_convostore: set[str] = set()


def _record_use(init: Callable[..., None]) -> Callable[..., None]:
    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if _current:
            _used_convostore.add(_current[0])
        init(self, *args, **kwargs)

    return recording_init


def pytest_configure(config: pytest.Config) -> None:
    # Which tests put a convostore session to work (others exercise only the SDK's wrappers
    # over its test doubles); the report counts them apart.
    convostore.SQLAlchemySession.__init__ = _record_use(  # type: ignore[method-assign]
        convostore.SQLAlchemySession.__init__
    )
    import agents
    import agents.extensions.memory
    import agents.extensions.memory.sqlalchemy_session as sdk_sqlalchemy
    import agents.memory

    sdk_sqlalchemy.SQLAlchemySession = convostore.SQLAlchemySession  # type: ignore[misc]
    agents.extensions.memory.SQLAlchemySession = convostore.SQLAlchemySession  # type: ignore[attr-defined]
    if _CONFIG.get("substitute_sqlite_session"):
        agents.SQLiteSession = ConvostoreSQLiteSession  # type: ignore[misc,assignment]
        agents.memory.SQLiteSession = ConvostoreSQLiteSession  # type: ignore[misc,assignment]
        import agents.extensions.memory.async_sqlite_session as sdk_async_sqlite

        sdk_async_sqlite.AsyncSQLiteSession = ConvostoreAsyncSQLiteSession  # type: ignore[misc]


def _name_of(item: pytest.Item) -> str:
    """The test's name within its module: ``test_x[param]`` or ``Class::test_x[param]``."""
    return item.nodeid.split("::", 1)[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    names = [_name_of(item) for item in items]
    Path(_CONFIG["collected_out"]).write_text(json.dumps(names))
    deselect = set(_CONFIG.get("deselect", ()))

    def deselected(item: pytest.Item) -> bool:
        # An entry without "[...]" covers every parametrization of the test.
        name = _name_of(item)
        return name in deselect or name.split("[", 1)[0] in deselect

    keep = [item for item in items if not deselected(item)]
    dropped = [item for item in items if deselected(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Any:
    _current[:] = [_name_of(item)]
    try:
        return (yield)
    finally:
        _current.clear()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _CONFIG.get("used_out"):
        Path(_CONFIG["used_out"]).write_text(json.dumps(sorted(_used_convostore)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    finally:
        # Connections a test never closed belong to its event loop, which is gone; their
        # finalizers fail noisily. Collected here, before pytest formats the report: a
        # finalizer run by a garbage collection inside Python's compiler (pytest parses
        # test sources for tracebacks) breaks it with a SystemError.
        gc.collect()


# -- a database of its own for each test, on PostgreSQL and MariaDB ----------------------------


def _run_in_own_loop(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # The test's event loop is not running while fixtures set up and tear down; a thread
    # with its own loop keeps the admin connection away from it either way.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, make()).result()


async def _admin(server_url: str, statements: list[str], name: str) -> None:
    engine = create_async_engine(server_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                if statement == "KILL-OTHERS":
                    # A test's engine that was never disposed keeps connections that would
                    # make MariaDB's DROP DATABASE wait.
                    rows = await conn.exec_driver_sql(
                        "SELECT id FROM information_schema.processlist "
                        "WHERE db = %s AND id <> CONNECTION_ID()",
                        (name,),
                    )
                    for (thread_id,) in rows.fetchall():
                        # The connection may have ended in between.
                        with contextlib.suppress(Exception):
                            await conn.exec_driver_sql(f"KILL {int(thread_id)}")
                else:
                    await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
def _convostore_server_database(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    if _BACKEND == "sqlite":
        yield
        return
    server_url: str = _CONFIG["server_url"]
    name = f"cs_sdk_{uuid.uuid4().hex[:12]}"
    test_url = make_url(server_url).set(database=name)
    test_url_text = test_url.render_as_string(hide_password=False)
    _run_in_own_loop(lambda: _admin(server_url, [f"CREATE DATABASE {name}"], name))

    def map_url(url: Any) -> Any:
        text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
        return test_url if text.startswith("sqlite") else url

    real_create = create_async_engine

    def mapped_create_async_engine(url: Any, *args: Any, **kwargs: Any) -> Any:
        return real_create(map_url(url), *args, **kwargs)

    monkeypatch.setattr(convostore._db.engine, "create_async_engine", mapped_create_async_engine)
    module = request.module
    if module is not None:
        if isinstance(getattr(module, "DB_URL", None), str):
            monkeypatch.setattr(module, "DB_URL", test_url_text)
        if getattr(module, "create_async_engine", None) is real_create:
            monkeypatch.setattr(module, "create_async_engine", mapped_create_async_engine)
    try:
        yield
    finally:
        if _BACKEND == "postgresql":
            drop = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]
        else:
            drop = ["KILL-OTHERS", f"DROP DATABASE IF EXISTS {name}"]
        _run_in_own_loop(lambda: _admin(server_url, drop, name))
