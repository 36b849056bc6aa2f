"""Hash partitions by session_id (``convostore.layouts``): rows kept, schema checks clean, pruning.

Each test partitions tables with names of its own on the run's database and drops them.
The storage suite itself runs on partitioned tables under ``pytest -m pg_partitioned``
(tests/_pg_partitioned.py); these tests check the rebuild, its refusals, what the schema
checks make of partitions, and that the planner reads one partition per session.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Select, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import (
    ConfigurationError,
    InvalidInputError,
    SchemaError,
    SessionStore,
    Tables,
    build_tables,
    create_tables,
)
from convostore._db.engine import Database
from convostore._table_layout import Drift, compare_layout
from convostore.cli import main
from convostore.doctor import diagnose
from convostore.layouts import message_partitions, partition_messages

from ._stores import drop_tables, make_store, table_options

PARTITIONS = 4


@pytest.fixture
async def own(engine: AsyncEngine) -> AsyncIterator[Tables]:
    """Plain convostore tables with names unique to the test, dropped at its end."""
    tag = uuid.uuid4().hex[:8]
    tables = build_tables(f"pt{tag}_s", f"pt{tag}_m")
    await create_tables(engine, tables)
    yield tables
    await drop_tables(engine, tables)


async def partition(engine: AsyncEngine, tables: Tables, partitions: int = PARTITIONS) -> bool:
    return await partition_messages(engine, partitions, **table_options(tables))


async def findings(engine: AsyncEngine, tables: Tables) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.run_sync(compare_layout, tables, exact=True))


async def fill(store: SessionStore) -> dict[str, list[dict[str, Any]]]:
    """Sessions with small items, a large (chunked) one and an idempotency key."""
    stored: dict[str, list[dict[str, Any]]] = {}
    for n in range(6):
        items = [{"role": "user", "n": n, "i": i} for i in range(5)]
        if n == 2:
            items.append({"role": "tool", "output": "x" * 300_000})
        session = store.session(f"part-{n}")
        await session.add_items(items, idempotency_key=f"k{n}")
        stored[session.session_id] = items
    return stored


@pytest.mark.postgresql
async def test_partitioning_keeps_the_rows_and_convostores_schema(
    engine: AsyncEngine, own: Tables
) -> None:
    store = make_store(engine, own)
    stored = await fill(store)

    assert await message_partitions(engine, **table_options(own)) is None
    assert await partition(engine, own) is True
    assert await message_partitions(engine, **table_options(own)) == PARTITIONS

    for session_id, items in stored.items():
        assert await store.session(session_id).get_items() == items
        info = await store.get_session_info(session_id)
        assert info is not None
        assert info.item_count == len(items)
    # The keys survive: the same keyed add is not applied twice.
    await store.session("part-0").add_items([{"again": True}], idempotency_key="k0")
    assert await store.session("part-0").get_items() == stored["part-0"]
    # Writes after the rebuild land in the partitions, with the order kept.
    await store.session("part-1").add_items([{"after": 1}])
    assert (await store.session("part-1").get_items(limit=1)) == [{"after": 1}]

    assert await findings(engine, own) == []
    async with engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        keys = await conn.execute(
            text(
                "SELECT conrelid::regclass::text, confrelid::regclass::text, confdeltype::text "
                "FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 "
                "AND conrelid IN (to_regclass(:m), to_regclass(:c))"
            ),
            {"m": own.messages.name, "c": own.chunks.name},
        )
        foreign_keys = sorted(tuple(row) for row in keys)
    children = {f"{t.name}_p{r}" for t in (own.messages, own.chunks) for r in range(PARTITIONS)}
    assert children <= names
    # Real foreign keys on the partitioned tables, both ON DELETE CASCADE ("c").
    assert foreign_keys == sorted(
        [(own.chunks.name, own.messages.name, "c"), (own.messages.name, own.sessions.name, "c")]
    )
    # Deleting a session takes its items and their chunks with it, through the keys.
    await store.session("part-2").clear_session()
    async with engine.connect() as conn:
        left = await conn.execute(
            text(f"SELECT count(*) FROM {own.chunks.name} WHERE session_id = 'part-2'")
        )
        assert left.scalar_one() == 0


@pytest.mark.postgresql
async def test_partitioning_again_is_a_no_op_and_another_count_is_refused(
    engine: AsyncEngine, own: Tables
) -> None:
    assert await partition(engine, own) is True
    assert await partition(engine, own) is False
    with pytest.raises(SchemaError, match=rf"into {PARTITIONS}.*does not re-partition them into 8"):
        await partition(engine, own, 8)
    assert await message_partitions(engine, **table_options(own)) == PARTITIONS


@pytest.mark.postgresql
@pytest.mark.parametrize("partitions", [0, 1, 1025, "8", 2.0, True])
async def test_a_bad_partition_count_is_refused(
    engine: AsyncEngine, own: Tables, partitions: Any
) -> None:
    with pytest.raises(InvalidInputError, match="partitions must be"):
        await partition_messages(engine, partitions, **table_options(own))


@pytest.mark.postgresql
async def test_missing_tables_and_foreign_columns_are_refused(engine: AsyncEngine) -> None:
    tag = uuid.uuid4().hex[:8]
    missing = build_tables(f"pt{tag}_s", f"pt{tag}_m")
    with pytest.raises(SchemaError, match=f"table {missing.messages.name} is missing"):
        await partition(engine, missing)

    extra = build_tables(f"px{tag}_s", f"px{tag}_m")
    await create_tables(engine, extra)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"ALTER TABLE {extra.messages.name} ADD COLUMN note TEXT")
        with pytest.raises(SchemaError, match="columns convostore does not know: note"):
            await partition(engine, extra)
        assert await message_partitions(engine, **table_options(extra)) is None
    finally:
        await drop_tables(engine, extra)


@pytest.mark.sqlite
@pytest.mark.mysql
async def test_other_databases_are_refused(backend: str, engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
        await partition_messages(engine, 8)
    assert await message_partitions(engine) is None


# -- the schema checks ----------------------------------------------------------------------


@pytest.mark.postgresql
async def test_drift_on_a_partitioned_schema_is_still_found(
    engine: AsyncEngine, own: Tables
) -> None:
    await partition(engine, own)
    assert await findings(engine, own) == []
    fk = f"fk_{own.chunks.name}_session_id_{own.messages.name}"
    async with engine.begin() as conn:
        # Dropping the chunks foreign key drops PostgreSQL's per-partition copies with it.
        await conn.exec_driver_sql(f"ALTER TABLE {own.chunks.name} DROP CONSTRAINT {fk}")
        await conn.exec_driver_sql(f"CREATE INDEX ix_extra ON {own.messages.name} (created_at)")
    found = await findings(engine, own)
    assert all(isinstance(f, Drift) for f in found), found
    steps = {(f.table, f.difference[0]) for f in found}
    assert steps == {(own.chunks.name, "add_fk"), (own.messages.name, "remove_index")}


@pytest.mark.postgresql
async def test_doctor_reports_the_partitions(engine: AsyncEngine, own: Tables) -> None:
    await partition(engine, own)
    checks = {check.name: check for check in await diagnose(make_store(engine, own))}
    assert checks["tables"].status == "ok", checks["tables"]
    assert f"hash-partitioned by session_id into {PARTITIONS}" in checks["tables"].detail
    assert checks["write/read/delete"].status == "ok", checks["write/read/delete"]


async def run_cli(*args: str) -> Any:
    # The command runs its own event loop: call it from a thread without one.
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


@pytest.mark.postgresql
async def test_migrate_upgrade_partitions_and_check_is_clean(engine: AsyncEngine) -> None:
    tag = uuid.uuid4().hex[:8]
    tables = build_tables(f"pc{tag}_s", f"pc{tag}_m")
    parsed = engine.url.set(drivername="postgresql")
    url = parsed.render_as_string(hide_password=False)
    names = ["--sessions-table", tables.sessions.name, "--messages-table", tables.messages.name]
    try:
        upgrade = ["migrate", "--url", url, *names, "upgrade", "head", "--partitions", "4"]
        result = await run_cli(*upgrade)
        assert result.exit_code == 0, result.output
        assert "are now hash-partitioned by session_id into 4" in result.output
        result = await run_cli(*upgrade)
        assert result.exit_code == 0, result.output
        assert "already were hash-partitioned by session_id into 4" in result.output
        assert await message_partitions(engine, **table_options(tables)) == 4

        result = await run_cli("migrate", "--url", url, *names, "check")
        assert result.exit_code == 0, result.output

        result = await run_cli("migrate", "--url", url, *names, "upgrade", "--partitions", "8")
        assert result.exit_code == 1
        assert "does not re-partition them into 8" in result.output
        result = await run_cli("migrate", "--url", url, *names, "upgrade", "--partitions", "1")
        assert result.exit_code == 2
    finally:
        await drop_tables(engine, tables)


@pytest.mark.sqlite
async def test_migrate_upgrade_partitions_refuses_other_databases_before_upgrading(
    tmp_path: Any,
) -> None:
    path = tmp_path / "plain.db"
    result = await run_cli(
        "migrate", "--url", f"sqlite:///{path}", "upgrade", "head", "--partitions", "4"
    )
    assert result.exit_code == 2
    assert "needs PostgreSQL" in result.output
    assert not path.exists()


# -- partition pruning --------------------------------------------------------------------

# The statements on one session's messages or chunks, with their parameters besides ``sid``.
PRUNED: dict[str, dict[str, Any]] = {
    "select_tail": {"lim": 20},
    "select_all": {},
    "select_chunks": {"positions": [3, 5]},
    "select_last_for_update": {},
    "nth_newest": {"skip": 10},
}


@pytest.mark.postgresql
@pytest.mark.parametrize("name", sorted(PRUNED))
async def test_a_sessions_reads_use_one_partition(
    name: str, engine: AsyncEngine, own: Tables
) -> None:
    await partition(engine, own)
    store = make_store(engine, own)
    for n in range(20):
        await store.session(f"prune-{n}").add_items([{"n": i} for i in range(30)])
    db = Database.of(engine, own)
    statement = getattr(db.statements, name)
    assert isinstance(statement, Select)
    compiled = statement.params(sid="prune-3", **PRUNED[name]).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
    )
    partitions = {f"{t.name}_p{r}" for t in (own.messages, own.chunks) for r in range(PARTITIONS)}
    async with engine.connect() as conn:
        # A session id as a literal: the planner keeps one partition of each table.
        plan = "\n".join(
            row[0] for row in await conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) {compiled}")
        )
        scanned = {p for p in partitions if f" {p} " in f" {plan} ".replace("\n", " ")}
        tables = {p.rsplit("_p", 1)[0] for p in scanned}
        assert len(scanned) == len(tables) == 1, plan

        # A prepared statement's generic plan (asyncpg prepares every statement) knows no
        # session id: it prunes when it runs, all partitions but one.
        generic = statement.compile(dialect=engine.dialect).construct_expanded_state(
            {"sid": "prune-3", **PRUNED[name]}
        )
        values = ", ".join(
            f"'{value}'" if isinstance(value, str) else str(value)
            for value in generic.positional_parameters
        )
        await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql(f"PREPARE cs_pruned AS {generic.statement}")
        rows = await conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE cs_pruned({values})"
        )
        analyzed = "\n".join(row[0] for row in rows)
        await conn.exec_driver_sql("DEALLOCATE cs_pruned")
        await conn.rollback()
    assert f"Subplans Removed: {PARTITIONS - 1}" in analyzed, analyzed
