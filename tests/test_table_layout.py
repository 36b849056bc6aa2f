"""One table-layout check: what create_tables refuses, what doctor reports, what drift means.

Each test works on table names of its own on the run's shared database, and drops them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import convostore
from convostore import SchemaError, SessionStore, SQLAlchemySession, Tables, build_tables
from convostore._table_layout import (
    Drift,
    MissingColumns,
    MissingTable,
    WrongCollation,
    compare_layout,
)
from convostore.doctor import diagnose
from convostore.migrate import MigrationOptions, drop_version_table


@pytest.fixture
async def tables(engine: AsyncEngine) -> AsyncIterator[Tables]:
    """Tables with names unique to the test; whatever was made of them is dropped at the end."""
    prefix = f"tl{uuid.uuid4().hex[:10]}"
    made = build_tables(f"{prefix}_sessions", f"{prefix}_messages")
    yield made
    async with engine.begin() as conn:
        await conn.run_sync(made.metadata.drop_all)
        await conn.run_sync(drop_version_table, made)


async def layout(engine: AsyncEngine, tables: Tables, *, exact: bool = False) -> list[object]:
    async with engine.connect() as conn:
        return list(await conn.run_sync(compare_layout, tables, exact=exact))


async def create_foreign_sessions_table(engine: AsyncEngine, tables: Tables) -> None:
    """A table of the sessions table's name with another library's columns."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            f"CREATE TABLE {tables.sessions.name} (session_id VARCHAR(255) PRIMARY KEY, "
            f"created_at TIMESTAMP NULL)"
        )


async def test_no_tables_are_missing_tables(engine: AsyncEngine, tables: Tables) -> None:
    assert await layout(engine, tables) == [
        MissingTable(tables.sessions.name),
        MissingTable(tables.messages.name),
    ]
    assert str(MissingTable("t")) == "table t is missing"


async def test_created_tables_match_exactly(engine: AsyncEngine, tables: Tables) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
    assert await layout(engine, tables) == []
    assert await layout(engine, tables, exact=True) == []


async def test_a_foreign_table_lacks_columns(engine: AsyncEngine, tables: Tables) -> None:
    await create_foreign_sessions_table(engine, tables)
    lacking = ("item_count", "metadata", "next_position", "updated_at", "user_id")
    assert await layout(engine, tables) == [
        MissingColumns(tables.sessions.name, lacking),
        MissingTable(tables.messages.name),
    ]
    assert str(MissingColumns("t", ("a", "b"))) == "t lacks columns a, b"


async def test_create_tables_and_doctor_report_the_same_finding(
    engine: AsyncEngine, tables: Tables
) -> None:
    await create_foreign_sessions_table(engine, tables)
    session = SQLAlchemySession(
        "x",
        engine=engine,
        create_tables=True,
        sessions_table=tables.sessions.name,
        messages_table=tables.messages.name,
    )
    with pytest.raises(SchemaError, match=r"missing columns \['item_count', 'metadata'"):
        await session.get_items()

    store = SessionStore(
        engine, sessions_table=tables.sessions.name, messages_table=tables.messages.name
    )
    checks = {check.name: check for check in await diagnose(store)}
    assert checks["tables"].status == "fail"
    assert checks["tables"].detail == (
        f"{tables.sessions.name} lacks columns item_count, metadata, next_position, "
        f"updated_at, user_id; table {tables.messages.name} is missing"
    )


async def test_exact_reports_what_alembic_check_reports(
    engine: AsyncEngine, tables: Tables
) -> None:
    options = MigrationOptions.for_tables(tables)
    await convostore.migrate.upgrade(
        engine, sessions_table=options.sessions_table, messages_table=options.messages_table
    )
    assert await layout(engine, tables, exact=True) == []
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"ALTER TABLE {tables.messages.name} ADD COLUMN extra INTEGER")

    assert await layout(engine, tables) == []  # extra columns are allowed
    findings = await layout(engine, tables, exact=True)
    assert len(findings) == 1
    assert isinstance(findings[0], Drift)
    assert findings[0].table == tables.messages.name
    assert findings[0].difference[0] == "remove_column"
    assert "extra" in str(findings[0])


@pytest.mark.mysql
async def test_exact_compares_mysql_collations(engine: AsyncEngine, tables: Tables) -> None:
    """Alembic does not compare collations; a case-insensitive session id would merge ids."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            f"CREATE TABLE {tables.sessions.name} (session_id VARCHAR(255) CHARACTER SET utf8mb4 "
            f"COLLATE utf8mb4_general_ci PRIMARY KEY)"
        )
    exact = "utf8mb4_nopad_bin" if engine.dialect.is_mariadb else "utf8mb4_0900_bin"
    findings = await layout(engine, tables, exact=True)
    wrong = WrongCollation(tables.sessions.name, "session_id", "utf8mb4_general_ci", exact)
    assert wrong in findings
    assert str(wrong) == (
        f"{tables.sessions.name}.session_id has collation utf8mb4_general_ci, not {exact}"
    )
    # The tables that are not there at all are findings too.
    assert MissingTable(tables.messages.name) in findings
