"""Tables in a named schema: migrated with ``--schema``, opened with ``schema=``.

On PostgreSQL a schema is a namespace in the database; on MySQL/MariaDB it is another
database on the same server (what MySQL itself calls a schema). SQLite refuses the option.
Every session and store operation runs against the tables in that schema, and nothing is
written to the connection's default schema.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SessionStore, SQLAlchemySession
from convostore._db.schema import DEFAULT_MESSAGES_TABLE, DEFAULT_SESSIONS_TABLE
from convostore.errors import ConfigurationError
from convostore.migrate import upgrade

from ._databases import autocommit
from ._programs import convostore

pytestmark = [pytest.mark.postgresql, pytest.mark.mysql]


@pytest.fixture
async def schema(engine: AsyncEngine, backend: str) -> AsyncIterator[str]:
    """A new schema (PostgreSQL) or database (MariaDB), migrated to head, then dropped."""
    name = f"cs_schema_{uuid.uuid4().hex[:10]}"
    kind = "SCHEMA" if backend == "postgresql" else "DATABASE"
    await autocommit(engine, f"CREATE {kind} {name}")
    try:
        await upgrade(engine, schema=name)
        yield name
    finally:
        await autocommit(
            engine, f"DROP {kind} {name}" + (" CASCADE" if backend == "postgresql" else "")
        )


async def _tables_in(engine: AsyncEngine, schema: str | None) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names(schema=schema)))


def items(n: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"m{i}"} for i in range(n)]


async def test_session_operations_in_a_schema(engine: AsyncEngine, schema: str) -> None:
    default_before = await _tables_in(engine, None)
    session = SQLAlchemySession(f"s-{uuid.uuid4().hex}", engine=engine, schema=schema)
    assert session.tables.sessions.schema == schema
    await session.add_items(items(3))
    await session.add_items([{"role": "user", "content": "x" * 300_000}])  # chunked on MySQL
    assert [i["content"] for i in await session.get_items(limit=3)][:2] == ["m1", "m2"]
    assert (await session.pop_item())["content"] == "x" * 300_000  # type: ignore[index]
    await session.add_items(items(1), idempotency_key="k1")
    await session.add_items(items(1), idempotency_key="k1")
    assert len(await session.get_items()) == 4
    await session.clear_session()
    assert await session.get_items() == []
    # Nothing was created in the connection's default schema.
    assert await _tables_in(engine, None) == default_before
    assert {DEFAULT_SESSIONS_TABLE, DEFAULT_MESSAGES_TABLE} <= await _tables_in(engine, schema)


async def test_from_url_takes_a_schema(engine: AsyncEngine, schema: str) -> None:
    url = engine.url.render_as_string(hide_password=False)
    async with SQLAlchemySession.from_url(f"u-{uuid.uuid4().hex}", url=url, schema=schema) as s:
        await s.add_items(items(2))
        assert len(await s.get_items()) == 2
    reader = SQLAlchemySession(s.session_id, engine=engine, schema=schema)
    assert len(await reader.get_items()) == 2


async def test_store_operations_in_a_schema(engine: AsyncEngine, schema: str) -> None:
    url = engine.url.render_as_string(hide_password=False)
    user = f"user-{uuid.uuid4().hex}"
    async with SessionStore(url, schema=schema, max_items_per_session=5) as store:
        ids = [f"st-{uuid.uuid4().hex}" for _ in range(3)]
        for n, sid in enumerate(ids):
            await store.session(sid, user_id=user, metadata={"n": n}).add_items(items(7))
        info = await store.require_session_info(ids[0])
        assert (info.item_count, info.user_id, info.metadata) == (5, user, {"n": 0})
        page = await store.list_sessions(user_id=user, limit=2)
        assert len(page.sessions) == 2
        assert page.next_cursor
        rest = await store.list_sessions(user_id=user, cursor=page.next_cursor)
        assert {s.session_id for s in [*page.sessions, *rest.sessions]} == set(ids)
        assert await store.count_sessions(user_id=user) == (3, 15)
        items_page = await store.get_page(ids[0], limit=2)
        assert [p.item["content"] for p in items_page.items] == ["m5", "m6"]
        await store.update_session(ids[0], metadata={"n": 9})
        assert (await store.require_session_info(ids[0])).metadata == {"n": 9}
        assert await store.trim(ids[0], keep_last=2) == 3

        out = io.StringIO()
        await store.export(out, session_ids=[ids[1]])
        assert await store.delete_session(ids[1])
        await store.import_(out.getvalue().splitlines())
        assert (await store.require_session_info(ids[1])).item_count == 5

        report = await store.prune(older_than=dt.timedelta(days=1), user_id=user)
        assert report.sessions == 0
        deleted = await store.delete_user(user)
        assert deleted.sessions == 3
        assert await store.count_sessions(user_id=user) == (0, 0)


@pytest.mark.sqlite  # not the servers of this module
async def test_sqlite_refuses_a_schema(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="not supported on SQLite"):
        SQLAlchemySession.from_url("s", url=f"sqlite:///{tmp_path}/x.db", schema="agents")
    with pytest.raises(ConfigurationError, match="not supported on SQLite"):
        SessionStore(f"sqlite:///{tmp_path}/x.db", schema="agents")


async def test_store_refuses_engine_kwargs_with_an_engine(engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="engine_kwargs apply only when"):
        SessionStore(engine, engine_kwargs={"pool_size": 3})


def test_schema_must_be_an_identifier(engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        SQLAlchemySession("s", engine=engine, schema="bad name; --")


async def test_cli_commands_take_a_schema(engine: AsyncEngine, schema: str) -> None:
    sid = f"cli-{uuid.uuid4().hex}"
    await SQLAlchemySession(sid, engine=engine, schema=schema).add_items(items(2))
    env = {"CONVOSTORE_URL": engine.url.render_as_string(hide_password=False)}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return convostore(*argv, env=env)

    listed = cli("sessions", "list", "--schema", schema, "--json")
    assert listed.returncode == 0, listed.stderr
    assert sid in {row["session_id"] for row in json.loads(listed.stdout)["sessions"]}
    doctor = cli("doctor", "--schema", schema)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    shown = cli("sessions", "show", sid, "--schema", schema, "--json")
    assert shown.returncode == 0, shown.stderr
