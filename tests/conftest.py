"""Shared fixtures: one suite, run against SQLite, PostgreSQL and MySQL/MariaDB.

- ``backend`` is parametrized over the three backends, each with its pytest marker, so
  ``pytest -m postgresql`` runs one of them.
- ``engine`` is an :class:`AsyncEngine` for the backend, shared by the whole run.
- ``tables`` are convostore tables with names unique to this run, created at the start and
  dropped at the end, so the suite can run again and again against the same databases.
- A server that does not answer skips its backend with a how-to message, except under
  ``CI=true``, where it fails.

Server URLs come from ``CONVOSTORE_TEST_POSTGRES_URL`` and ``CONVOSTORE_TEST_MYSQL_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, Tables, build_tables, create_tables, engine_from_url
from convostore.migrate import drop_version_table

POSTGRES_URL = os.environ.get(
    "CONVOSTORE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("CONVOSTORE_TEST_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

HOW_TO_START = {
    "postgresql": (
        "start PostgreSQL with `pg_ctlcluster --skip-systemctl-redirect "
        "$(ls /etc/postgresql) main start`, or set CONVOSTORE_TEST_POSTGRES_URL"
    ),
    "mysql": (
        "start MariaDB with `start-stop-daemon --start --oknodo --background "
        "--exec /usr/sbin/mariadbd`, or set CONVOSTORE_TEST_MYSQL_URL"
    ),
}

BACKENDS = ["sqlite", "postgresql", "mysql"]

# A prefix unique to this run (and to each xdist worker), for table names.
RUN_ID = uuid.uuid4().hex[:8]


def backend_url(backend: str, tmp_dir: Path) -> str:
    """The database URL of ``backend`` for this run."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_dir / 'convostore-test.db'}"
    return POSTGRES_URL if backend == "postgresql" else MYSQL_URL


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the backends a test does not apply to (``@pytest.mark.backends("mysql")``)."""
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("backends")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        if marker and backend and backend not in marker.args:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite")


@pytest.fixture(
    scope="session", params=[pytest.param(b, marks=getattr(pytest.mark, b)) for b in BACKENDS]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_engines: dict[str, AsyncEngine] = {}
_unreachable: dict[str, str] = {}


@pytest.fixture(scope="session")
async def engine(backend: str, sqlite_dir: Path) -> AsyncIterator[AsyncEngine]:
    """The run's engine for ``backend``; skips (or, under CI, fails) if the server is down."""
    if backend in _unreachable:
        _skip_or_fail(backend, _unreachable[backend])
    url = backend_url(backend, sqlite_dir)
    pool = {} if backend == "sqlite" else {"pool_size": 10, "max_overflow": 20}
    eng = engine_from_url(url, **pool)
    try:
        async with eng.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any connection failure means "server not reachable"
        await eng.dispose()
        _unreachable[backend] = f"{type(exc).__name__}: {exc}"
        _skip_or_fail(backend, _unreachable[backend])
    _engines[backend] = eng
    yield eng
    await eng.dispose()


def _skip_or_fail(backend: str, reason: str) -> None:
    message = f"{backend} is not reachable ({reason}); {HOW_TO_START.get(backend, '')}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
async def tables(engine: AsyncEngine, backend: str) -> AsyncIterator[Tables]:
    """Tables unique to this run on ``backend``; dropped when the run ends."""
    t = build_tables(f"cs_{RUN_ID}_sessions", f"cs_{RUN_ID}_messages")
    await create_tables(engine, t)
    yield t
    async with engine.begin() as conn:
        await conn.run_sync(t.metadata.drop_all)
        await conn.run_sync(drop_version_table, t)  # stamped by create_tables


@pytest.fixture
def make_session(engine: AsyncEngine, tables: Tables) -> Callable[..., SQLAlchemySession]:
    """Build sessions on the run's engine and tables; a fresh unique id unless one is given."""

    def make(session_id: str | None = None, **kwargs: object) -> SQLAlchemySession:
        return SQLAlchemySession(
            session_id or f"test-{uuid.uuid4().hex}",
            engine=engine,
            sessions_table=tables.sessions.name,
            messages_table=tables.messages.name,
            **kwargs,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def session(make_session: Callable[..., SQLAlchemySession]) -> SQLAlchemySession:
    """A new, empty session with a unique id."""
    return make_session()
