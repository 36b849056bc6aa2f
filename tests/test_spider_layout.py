"""The MariaDB Spider layout itself: where rows live, what the head holds, what it refuses.

The storage suite runs on a Spider head with ``pytest -m spider`` (tests/_spider.py); these
tests look at the layout from the side: the nodes' own tables, the head's schema checks,
``convostore migrate`` on a head, and ``convostore layout spider``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SchemaError, Tables, create_tables
from convostore._table_layout import Drift, compare_layout
from convostore.layouts import (
    SpiderNode,
    create_spider_head,
    drop_spider_head,
    spider_head_ddl,
    spider_tables,
)
from convostore.migrate import current, head

from ._layouts import layout_params
from ._programs import convostore
from ._spider import SpiderLayout
from ._stores import MakeSession, drop_tables, unique_tables

spider_only = pytest.mark.parametrize(
    "backend", [p for p in layout_params() if getattr(p, "id", None) == "spider"], indirect=True
)
"""The test runs in the spider layout only (``pytest -m spider``)."""


def names(tables: Tables) -> list[str]:
    return ["--sessions-table", tables.sessions.name, "--messages-table", tables.messages.name]


def head_options(tables: Tables) -> dict[str, Any]:
    return {"sessions_table": tables.sessions.name, "messages_table": tables.messages.name}


@spider_only
async def test_the_head_holds_spider_tables_that_match_the_schema(
    engine: AsyncEngine, tables: Tables, layout: SpiderLayout
) -> None:
    every = {table.name for table in tables.metadata.sorted_tables}
    async with engine.connect() as conn:
        assert await conn.run_sync(spider_tables, tables) == every
        # No foreign keys on the head, by design: not a difference from the schema.
        assert (
            await conn.run_sync(lambda c: inspect(c).get_foreign_keys(tables.messages.name)) == []
        )
        assert await conn.run_sync(compare_layout, tables, exact=True) == []
    for node in layout.node_engines:
        async with node.connect() as conn:
            keys = await conn.run_sync(lambda c: inspect(c).get_foreign_keys(tables.messages.name))
            assert [key["referred_table"] for key in keys] == [tables.sessions.name]
            assert await conn.run_sync(spider_tables, tables) == frozenset()


@spider_only
async def test_doctor_says_the_tables_are_a_spider_head(
    engine: AsyncEngine, tables: Tables
) -> None:
    from convostore import SessionStore
    from convostore.doctor import diagnose

    store = SessionStore(engine, **head_options(tables))
    checks = {check.name: check for check in await diagnose(store)}
    assert checks["tables"].status == "ok", checks["tables"]
    assert "Spider tables (a head" in checks["tables"].detail
    assert not [check for check in checks.values() if check.status == "fail"], checks


@spider_only
async def test_all_of_a_sessions_rows_live_on_one_node(
    make_session: MakeSession, tables: Tables, layout: SpiderLayout, small_chunks: int
) -> None:
    ids = [f"spread-{n}" for n in range(16)]
    for session_id in ids:
        # Chunks (an item over the small chunk size) and a key: a row in every table.
        await make_session(session_id).add_items(
            [{"n": 0}, {"big": "x" * (3 * small_chunks)}], idempotency_key="k"
        )
    where: dict[str, set[int]] = {session_id: set() for session_id in ids}
    for number, node in enumerate(layout.node_engines):
        async with node.connect() as conn:
            found = []
            for table in tables.metadata.sorted_tables:
                query = select(table.c.session_id).where(table.c.session_id.in_(ids)).distinct()
                found.append(set((await conn.execute(query)).scalars()))
        assert all(rows == found[0] for rows in found), "one node holds all of a session's rows"
        for session_id in found[0]:
            where[session_id].add(number)
    assert all(len(nodes) == 1 for nodes in where.values()), where
    assert {n for nodes in where.values() for n in nodes} == {0, 1}, "both nodes hold sessions"
    for session_id in ids:
        assert await make_session(session_id).get_items() == [
            {"n": 0},
            {"big": "x" * (3 * small_chunks)},
        ]
        await make_session(session_id).clear_session()


@spider_only
async def test_migrate_check_passes_on_the_head_and_revisions_are_refused(
    engine: AsyncEngine, tables: Tables
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    check = await asyncio.to_thread(
        convostore, "migrate", "-q", "check", "--url", url, *names(tables)
    )
    assert check.returncode == 0, check.stderr
    down = await asyncio.to_thread(
        convostore, "migrate", "-q", "downgrade", "0003", "--yes", "--url", url, *names(tables)
    )
    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    [line] = down.stderr.strip().splitlines()
    assert "Spider head" in line
    assert "convostore layout spider" in line
    assert await current(engine, **head_options(tables)) == (head(),)


@spider_only
async def test_drift_on_the_head_is_still_found(engine: AsyncEngine, layout: SpiderLayout) -> None:
    tables = unique_tables("sd")
    await layout.create_tables(engine, tables)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                f"ALTER TABLE {tables.messages.name} ADD COLUMN extra INTEGER"
            )
        async with engine.connect() as conn:
            findings = await conn.run_sync(compare_layout, tables, exact=True)
        [finding] = findings
        assert isinstance(finding, Drift)
        assert finding.difference[0] == "remove_column"
    finally:
        await layout.drop_tables(engine, tables)


@spider_only
async def test_a_head_refuses_tables_that_hold_rows_of_their_own(
    engine: AsyncEngine, layout: SpiderLayout
) -> None:
    tables = unique_tables("sl")
    await create_tables(engine, tables)  # InnoDB tables on the head itself
    try:
        with pytest.raises(SchemaError, match=r"InnoDB table, which holds rows of its own"):
            await create_spider_head(engine, nodes=layout.nodes, **head_options(tables))
        with pytest.raises(SchemaError, match="not a Spider table"):
            await drop_spider_head(engine, **head_options(tables))
    finally:
        await drop_tables(engine, tables)


@spider_only
async def test_a_head_needs_every_node_at_one_revision(
    engine: AsyncEngine, layout: SpiderLayout
) -> None:
    tables = unique_tables("sn")
    await create_tables(layout.node_engines[0], tables)  # node1 has none
    try:
        with pytest.raises(SchemaError, match=r"node node1 .* has no convostore version table"):
            await create_spider_head(engine, nodes=layout.nodes, **head_options(tables))
        async with engine.connect() as conn:
            assert await conn.run_sync(spider_tables, tables) == frozenset()
    finally:
        await drop_tables(layout.node_engines[0], tables)


def test_the_heads_ddl_is_convostores_tables_on_spider() -> None:
    nodes = [
        SpiderNode.from_url("node0", "mysql://app:secret@10.0.0.10/agents"),
        SpiderNode.from_url("node1", "mysql://app:secret@10.0.0.11:3307/agents"),
    ]
    assert nodes[1] == SpiderNode("node1", "10.0.0.11", 3307, "app", "secret", "agents")
    tables = unique_tables("ddl")
    ddl = spider_head_ddl(tables, nodes)
    creates = [statement for statement in ddl if statement.startswith("CREATE TABLE")]
    assert len(creates) == 4
    for statement in creates:
        assert "ENGINE=SPIDER" in statement
        assert "PARTITION BY KEY (session_id)" in statement
        assert "FOREIGN KEY" not in statement
        assert "InnoDB" not in statement
        assert 'srv "node0"' in statement
        assert 'srv "node1"' in statement
    assert tables.messages.dialect_kwargs["mysql_engine"] == "InnoDB"  # the schema is untouched


def test_convostore_layout_spider_prints_the_ddl_and_refuses_bad_nodes() -> None:
    nodes = ["--node", "node0=mysql://app:secret@10.0.0.10/agents"]
    printed = convostore(
        "layout", "spider", "--url", "mysql://app@10.0.0.1/agents", *nodes, "--sql"
    )
    assert printed.returncode == 0, printed.stderr
    assert "ENGINE=SPIDER" in printed.stdout
    assert "secret" not in printed.stdout
    for node, message in [
        ("node-0=mysql://app@10.0.0.10/agents", "letters, digits and underscores"),
        ("node0=postgresql://app@10.0.0.10/agents", "a Spider node is a MySQL/MariaDB server"),
        ("node0", "expected NAME=URL"),
    ]:
        bad = convostore("layout", "spider", "--url", "mysql://h/db", "--node", node, "--sql")
        assert bad.returncode == 2, bad.stderr
        assert message in bad.stderr
        assert "Traceback" not in bad.stderr


@spider_only
async def test_convostore_layout_spider_makes_the_head(
    engine: AsyncEngine, layout: SpiderLayout
) -> None:
    tables = unique_tables("sc")
    url = engine.url.render_as_string(hide_password=False)
    nodes = [
        arg
        for node in layout.nodes
        for arg in ("--node", f"{node.name}=mysql://{node.user}@{node.host}:{node.port}/test")
    ]
    missing = await asyncio.to_thread(
        convostore, "layout", "spider", "--url", url, *nodes, *names(tables)
    )
    assert missing.returncode == 1
    [line] = missing.stderr.strip().splitlines()
    assert "convostore migrate upgrade head" in line
    for node in layout.node_engines:
        await create_tables(node, tables)
    try:
        made = await asyncio.to_thread(
            convostore, "layout", "spider", "--url", url, *nodes, *names(tables)
        )
        assert made.returncode == 0, made.stderr
        assert f"at revision {head()}" in made.stdout
        async with engine.connect() as conn:
            assert len(await conn.run_sync(spider_tables, tables)) == 4
    finally:
        await layout.drop_tables(engine, tables)
