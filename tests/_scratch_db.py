"""A throw-away database on a server, for programs that use convostore's default table names."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine


@contextlib.asynccontextmanager
async def scratch_database(engine: AsyncEngine) -> AsyncIterator[str]:
    """Create a database next to ``engine``'s, yield its URL (with password), then drop it."""
    name = f"cs_scratch_{uuid.uuid4().hex[:12]}"
    await _autocommit(engine, f"CREATE DATABASE {name}")
    try:
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        await _autocommit(engine, f"DROP DATABASE {name}")


async def _autocommit(engine: AsyncEngine, statement: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction on PostgreSQL.
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql(statement)
