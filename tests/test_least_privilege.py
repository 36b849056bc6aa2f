"""A session works under a runtime role with only SELECT, INSERT, UPDATE and DELETE.

The role is created on the shared test server for this test, granted those four privileges
on the run's four tables (and nothing else: no DDL, no other table), used, then dropped. The
grants are the ones ``docs/reliability.md`` documents for production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SchemaError, SQLAlchemySession, StorageError, Tables, engine_from_url

from ._databases import autocommit
from ._stores import session_on

pytestmark = [pytest.mark.postgresql, pytest.mark.mysql]


@pytest.fixture
async def runtime_engine(
    engine: AsyncEngine, tables: Tables, backend: str
) -> AsyncIterator[AsyncEngine]:
    """An engine logged in as a role that may only read and write the run's four tables."""
    role = f"cs_rt_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    names = (tables.sessions.name, tables.messages.name, tables.keys.name, tables.chunks.name)
    database = engine.url.database
    if backend == "postgresql":
        grants = [
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
            f"GRANT CONNECT ON DATABASE {database} TO {role}",
            f"GRANT USAGE ON SCHEMA public TO {role}",
            *(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {role}" for name in names),
        ]
        revokes = [f"DROP OWNED BY {role}", f"DROP ROLE {role}"]
    else:
        # aiomysql formats driver SQL with %: the host wildcard is written %%.
        grants = [
            f"CREATE USER '{role}'@'%%' IDENTIFIED BY '{password}'",
            *(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON {database}.{name} TO '{role}'@'%%'"
                for name in names
            ),
        ]
        revokes = [f"DROP USER '{role}'@'%%'"]
    await autocommit(engine, *grants)
    runtime = engine_from_url(engine.url.set(username=role, password=password))
    try:
        yield runtime
    finally:
        await runtime.dispose()
        await autocommit(engine, *revokes)


async def test_session_works_with_only_dml_grants(
    runtime_engine: AsyncEngine, tables: Tables
) -> None:
    session = session_on(runtime_engine, tables, f"least-privilege-{uuid.uuid4().hex}")
    await session.add_items([{"n": 0}, {"n": 1}, {"n": 2}])
    await session.add_items([{"n": 3}], idempotency_key="turn-3")
    await session.add_items([{"n": 3}], idempotency_key="turn-3")  # a retry: stored once
    assert await session.get_items() == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]
    assert await session.get_items(limit=1) == [{"n": 3}]
    # Large enough to be stored in chunks on every backend (the chunks table is written).
    large = {"output": "x" * (5 * 1024 * 1024)}
    await session.add_items([large])
    assert await session.pop_item() == large
    assert await session.pop_item() == {"n": 3}
    await session.clear_session()
    assert await session.get_items() == []


async def test_the_runtime_role_cannot_change_the_schema(
    runtime_engine: AsyncEngine, tables: Tables
) -> None:
    async with runtime_engine.connect() as conn:
        with pytest.raises(Exception, match=r"denied|must be owner"):
            await conn.exec_driver_sql(f"DROP TABLE {tables.messages.name}")
    # A store on tables it has no rights to fails with a typed error, not a crash.
    other = SQLAlchemySession("x", engine=runtime_engine, sessions_table="cs_no_rights_here")
    with pytest.raises((StorageError, SchemaError)):
        await other.get_items()
