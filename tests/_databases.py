"""The test databases: where each backend's server is, and what a test does when one is down.

Server URLs come from ``CONVOSTORE_TEST_POSTGRES_URL`` and ``CONVOSTORE_TEST_MYSQL_URL``
(defaults: the local servers). A server that does not answer skips the tests that need it,
with a message saying how to start it; under ``CI=true`` it fails them instead, so a CI job
never passes by skipping.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

POSTGRES_URL = os.environ.get(
    "CONVOSTORE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("CONVOSTORE_TEST_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

BACKENDS = ("sqlite", "postgresql", "mysql")
"""The backends, each also the name of its pytest marker."""

SERVERS = ("postgresql", "mysql")

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

RUN_ID = uuid.uuid4().hex[:8]
"""A prefix unique to this run (and to each worker of a parallel run), for table names."""


def backend_params(*names: str) -> list[object]:
    """Parameters for ``names`` (default: every backend), each carrying its backend's marker.

    Every fixture or test parametrized over backends takes its parameters from here, so that
    ``pytest -m postgresql`` selects exactly its PostgreSQL cases.
    """
    return [
        pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in names or BACKENDS
    ]


def server_url(backend: str) -> str:
    """The URL of the shared test server of ``backend`` (``postgresql`` or ``mysql``)."""
    return POSTGRES_URL if backend == "postgresql" else MYSQL_URL


def backend_url(backend: str, sqlite_dir: Path) -> str:
    """The URL of ``backend``'s test database; SQLite's is a file in ``sqlite_dir``."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{sqlite_dir / 'convostore-test.db'}"
    return server_url(backend)


def skip_or_fail(message: str) -> NoReturn:
    """Skip the test because something it needs is missing; under ``CI=true``, fail it."""
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def server_down(backend: str, reason: str) -> NoReturn:
    """Skip (or, under CI, fail) a test whose server does not answer, saying how to start it."""
    skip_or_fail(f"{backend} is not reachable ({reason}); {HOW_TO_START.get(backend, '')}")


async def autocommit(engine: AsyncEngine, *statements: str) -> None:
    """Run ``statements`` outside a transaction: PostgreSQL refuses CREATE/DROP DATABASE in one."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for statement in statements:
            await conn.exec_driver_sql(statement)


@contextlib.asynccontextmanager
async def scratch_database(engine: AsyncEngine) -> AsyncIterator[str]:
    """Create a database next to ``engine``'s, yield its URL (with password), then drop it.

    For programs that use convostore's default table names, which the run's shared database
    must not get.
    """
    name = f"cs_scratch_{uuid.uuid4().hex[:12]}"
    await autocommit(engine, f"CREATE DATABASE {name}")
    try:
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        await autocommit(engine, f"DROP DATABASE {name}")
