"""Alembic migrations: the revision chain builds exactly what create_tables builds, everywhere.

Every test works in a database of its own (a SQLite file, a PostgreSQL schema, a MariaDB
database) or on table names unique to it, and removes it at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import types
import uuid
import warnings
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy import String, event, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

import convostore
from convostore import (
    InvalidInputError,
    SchemaError,
    SQLAlchemySession,
    build_tables,
    engine_from_url,
)
from convostore import migrate as migrate_api
from convostore._migration_env import options_from_config
from convostore._table_layout import compare_layout
from convostore.cli import main
from convostore.migrate import (
    DEFAULT_VERSION_TABLE,
    MigrationOptions,
    current,
    downgrade,
    head,
    history,
    script_directory,
    script_location,
    version_table_for,
)

from ._programs import run as run_program
from ._stores import drop_tables, session_on

REPO = Path(__file__).resolve().parents[1]


def unique(prefix: str = "mg") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Fresh:
    """A database of the test's own: its engine, and the URL/-x settings that reach it."""

    backend: str
    engine: AsyncEngine
    url: str
    x: dict[str, str]
    """Settings that put the tables where ``engine`` sees them (the schema on PostgreSQL)."""


@pytest.fixture
async def fresh(engine: AsyncEngine, backend: str, tmp_path: Path) -> AsyncIterator[Fresh]:
    """An empty database: a SQLite file, a PostgreSQL schema (search_path), a MariaDB database."""
    name = unique()
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        eng = engine_from_url(url)
        yield Fresh(backend, eng, url, {})
        await eng.dispose()
        return
    if backend == "postgresql":
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        # The run's database: a layout's (pg_partitioned) is not the server's test database.
        url = engine.url.render_as_string(hide_password=False)
        eng = engine_from_url(
            url, poolclass=NullPool, connect_args={"server_settings": {"search_path": name}}
        )
        try:
            yield Fresh(backend, eng, url, {"schema": name})
        finally:
            await eng.dispose()
            async with engine.begin() as conn:
                await conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        return
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    # Next to the run's database (in a layout case, on the layout's server).
    url = engine.url.set(database=name).render_as_string(hide_password=False)
    eng = engine_from_url(url, poolclass=NullPool)
    try:
        yield Fresh(backend, eng, url, {})
    finally:
        await eng.dispose()
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE {name}")


@pytest.fixture
async def names(engine: AsyncEngine) -> AsyncIterator[MigrationOptions]:
    """Table names unique to the test, on the run's shared database; dropped at the end."""
    prefix = unique()
    options = MigrationOptions(f"{prefix}_sessions", f"{prefix}_messages")
    yield options
    await drop_tables(engine, options.tables)


def kwargs(options: MigrationOptions) -> dict[str, Any]:
    return {
        "sessions_table": options.sessions_table,
        "messages_table": options.messages_table,
        "schema": options.schema,
        "version_table": options.version_table,
    }


async def assert_no_drift(engine: AsyncEngine, options: MigrationOptions) -> None:
    """``alembic check``'s comparison with env.py's filters, and the MySQL collations."""
    async with engine.connect() as conn:
        findings = await conn.run_sync(compare_layout, options.tables, exact=True)
    assert findings == [], [str(finding) for finding in findings]


def default_store_tables() -> set[str]:
    """Every table of a store with the default names, its version table included."""
    return {table.name for table in build_tables().metadata.sorted_tables} | {DEFAULT_VERSION_TABLE}


async def table_names(engine: AsyncEngine, schema: str | None = None) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names(schema=schema)))


async def use_session(engine: AsyncEngine, options: MigrationOptions) -> None:
    session = session_on(engine, options.tables, unique("s-"))
    await session.add_items([{"role": "user", "content": "hello"}, {"role": "assistant"}])
    await session.add_items([{"role": "user", "content": "again"}])
    assert await session.pop_item() == {"role": "user", "content": "again"}
    assert await session.get_items() == [
        {"role": "user", "content": "hello"},
        {"role": "assistant"},
    ]


class Statements:
    """The SQL an engine runs while the block is open."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.seen: list[str] = []

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    @property
    def writes(self) -> list[str]:
        verbs = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "RENAME")
        return [s for s in self.seen if s.lstrip().upper().startswith(verbs)]


# -- the revision chain -----------------------------------------------------------------


def test_history_has_a_single_head() -> None:
    scripts = script_directory()
    assert len(scripts.get_heads()) == 1
    assert len(scripts.get_bases()) == 1
    assert history()[0].startswith("0001: ")
    assert history()[-1].startswith(f"{head()}: ")


def test_version_table_names() -> None:
    assert MigrationOptions().version_table == DEFAULT_VERSION_TABLE == "convostore_alembic_version"
    assert version_table_for("chat_sessions") == "chat_sessions_alembic_version"
    assert MigrationOptions("a", "b", version_table="mine").version_table == "mine"
    with pytest.raises(convostore.ConfigurationError, match="version_table"):
        version_table_for("s" * 60)
    with pytest.raises(convostore.ConfigurationError):
        MigrationOptions("a", "b", version_table="a")


async def test_upgrade_builds_exactly_the_schema(
    engine: AsyncEngine, names: MigrationOptions
) -> None:
    await convostore.migrate.upgrade(engine, **kwargs(names))
    assert await current(engine, **kwargs(names)) == (head(),)
    await assert_no_drift(engine, names)
    await use_session(engine, names)


async def test_upgrade_of_an_up_to_date_database_is_a_no_op(
    engine: AsyncEngine, names: MigrationOptions
) -> None:
    await convostore.migrate.upgrade(engine, **kwargs(names))
    with Statements(engine) as statements:
        await convostore.migrate.upgrade(engine, **kwargs(names))
    assert statements.writes == []
    assert await current(engine, **kwargs(names)) == (head(),)


async def test_downgrade_base_removes_everything_and_upgrade_again_works(
    engine: AsyncEngine, names: MigrationOptions
) -> None:
    ours = {names.sessions_table, names.messages_table, names.version_table}
    await convostore.migrate.upgrade(engine, **kwargs(names))
    assert ours <= await table_names(engine)
    await downgrade(engine, "base", **kwargs(names))
    assert not ours & await table_names(engine)
    assert await current(engine, **kwargs(names)) == ()
    await convostore.migrate.upgrade(engine, **kwargs(names))
    await assert_no_drift(engine, names)
    await use_session(engine, names)


async def test_create_tables_stamps_head(engine: AsyncEngine, names: MigrationOptions) -> None:
    session = session_on(engine, names.tables, unique("s-"), create_tables=True)
    await session.add_items([{"role": "user", "content": "hi"}])
    assert await current(engine, **kwargs(names)) == (head(),)
    await assert_no_drift(engine, names)
    with Statements(engine) as statements:
        await convostore.migrate.upgrade(engine, **kwargs(names))
    assert statements.writes == []
    assert await session.get_items() == [{"role": "user", "content": "hi"}]


async def test_create_tables_refuses_tables_at_an_older_revision(
    engine: AsyncEngine, names: MigrationOptions
) -> None:
    revisions = [script.revision for script in script_directory().walk_revisions()]
    if len(revisions) < 2:
        pytest.skip("one revision so far: no database can be older than head")
    await convostore.migrate.upgrade(engine, revisions[1], **kwargs(names))
    with pytest.raises(SchemaError, match="upgrade head"):
        await session_on(engine, names.tables, "x", create_tables=True).get_items()

    await convostore.migrate.upgrade(engine, **kwargs(names))
    await use_session(engine, names)


async def test_create_tables_leaves_a_newer_revision_alone(
    engine: AsyncEngine, names: MigrationOptions
) -> None:
    """A revision this convostore does not know was written by a newer one: no error."""
    await convostore.migrate.upgrade(engine, **kwargs(names))
    async with engine.begin() as conn:
        await conn.execute(text(f"UPDATE {names.version_table} SET version_num = 'f00d'"))
    session = session_on(engine, names.tables, unique("s-"), create_tables=True)
    await session.add_items([{"role": "user"}])
    assert await current(engine, **kwargs(names)) == ("f00d",)


async def test_two_stores_keep_separate_histories(engine: AsyncEngine) -> None:
    first = MigrationOptions(f"{unique()}_sessions", f"{unique()}_messages")
    second = MigrationOptions(f"{unique()}_sessions", f"{unique()}_messages")
    assert first.version_table != second.version_table
    try:
        await convostore.migrate.upgrade(engine, **kwargs(first))
        await convostore.migrate.upgrade(engine, **kwargs(second))
        await downgrade(engine, "base", **kwargs(first))
        assert await current(engine, **kwargs(first)) == ()
        assert await current(engine, **kwargs(second)) == (head(),)
        await assert_no_drift(engine, second)
        await use_session(engine, second)
    finally:
        await drop_tables(engine, first.tables)
        await drop_tables(engine, second.tables)


@pytest.mark.postgresql
async def test_custom_postgresql_schema(engine: AsyncEngine) -> None:
    schema = unique()
    options = MigrationOptions(schema=schema)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        await convostore.migrate.upgrade(engine, schema=schema)
        assert await table_names(engine, schema) == default_store_tables()
        assert await current(engine, schema=schema) == (head(),)
        await assert_no_drift(engine, options)
        await downgrade(engine, "base", schema=schema)
        assert await table_names(engine, schema) == set()
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


async def test_migrate_shares_the_callers_connection_settings(fresh: Fresh) -> None:
    """``upgrade(engine)`` with default names lands where the engine points (search_path...)."""
    await convostore.migrate.upgrade(fresh.engine)
    assert default_store_tables() == await table_names(fresh.engine)
    await assert_no_drift(fresh.engine, MigrationOptions())
    await use_session(fresh.engine, MigrationOptions())


# -- the module and its old names -----------------------------------------------------------


def test_convostore_migrate_is_the_module() -> None:
    import convostore.migrate as m

    assert isinstance(m, types.ModuleType)
    assert m is convostore.migrate
    assert m.upgrade.__module__ == "convostore.migrate"
    from convostore.errors import SchemaError as FrozenSchemaError  # frozen too
    from convostore.migrate import revision_names  # frozen: the released revisions import it

    assert revision_names is m.revision_names
    assert FrozenSchemaError is SchemaError


async def test_calling_the_module_warns_and_still_upgrades(
    engine: AsyncEngine, names: MigrationOptions
) -> None:
    with pytest.warns(DeprecationWarning, match=r"convostore\.migrate\.upgrade") as caught:
        pending = convostore.migrate(engine, **kwargs(names))
    assert caught[0].filename == __file__  # the warning points at the caller
    await pending
    assert await current(engine, **kwargs(names)) == (head(),)
    await assert_no_drift(engine, names)

    with pytest.warns(DeprecationWarning, match="upgrade"):
        from convostore.migrate import migrate
    assert migrate is convostore.migrate.upgrade


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("options_from_config", "convostore._migration_env"),
        ("EnvSettings", "convostore._migration_env"),
        ("migration_url", "convostore._migration_env"),
        ("is_async_url", "convostore._migration_env"),
        ("drop_empty_version_table", "convostore._migration_env"),
        ("check_revision", "convostore._table_creation"),
        ("stamp_head", "convostore._table_creation"),
    ],
)
def test_moved_names_warn_and_still_work(name: str, module: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"convostore.migrate.{name} is deprecated"):
        moved = getattr(convostore.migrate, name)
    assert moved is getattr(sys.modules[module], name)
    assert name not in convostore.migrate.__all__


def test_current_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in convostore.migrate.__all__:
            getattr(convostore.migrate, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        convostore.migrate.nope  # noqa: B018


# -- settings -----------------------------------------------------------------------------


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        "[alembic]\nsqlalchemy.url = sqlite:///from-ini.db\nsessions_table = ini_sessions\n"
    )
    config = Config(str(ini))
    monkeypatch.delenv("CONVOSTORE_URL", raising=False)
    monkeypatch.delenv("CONVOSTORE_SESSIONS_TABLE", raising=False)
    settings = options_from_config(config, {})
    assert settings.url is not None
    assert settings.url.render_as_string() == "sqlite+aiosqlite:///from-ini.db"
    assert settings.options.sessions_table == "ini_sessions"
    assert settings.options.version_table == "ini_sessions_alembic_version"

    monkeypatch.setenv("CONVOSTORE_URL", "postgres://u:secret@h/db")
    monkeypatch.setenv("CONVOSTORE_SESSIONS_TABLE", "env_sessions")
    settings = options_from_config(config, {})
    assert settings.url is not None
    assert settings.url.drivername == "postgresql+asyncpg"
    assert settings.options.sessions_table == "env_sessions"

    settings = options_from_config(
        config, {"url": "mysql+pymysql://u@h/db", "sessions_table": "x_sessions"}
    )
    assert settings.url is not None
    assert settings.url.drivername == "mysql+pymysql"  # a sync driver is kept for migrations
    assert settings.options.sessions_table == "x_sessions"

    with pytest.raises(convostore.ConfigurationError, match="unknown -x"):
        options_from_config(config, {"sesions_table": "typo"})
    with pytest.raises(convostore.ConfigurationError):
        options_from_config(config, {"schema": "Bad Name"})


# -- the command line ---------------------------------------------------------------------


def cli_url(backend: str, url: str) -> str:
    """The plain URL a user would type (``postgresql://``, ``mysql://``, ``sqlite:///``)."""
    parsed = make_url(url)
    plain = parsed.set(drivername=parsed.get_backend_name())
    return plain.render_as_string(hide_password=False)


async def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    # env.py runs its own event loop: call the command from a thread without one.
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, list(args), env=env)


async def test_cli_upgrade_current_history_downgrade(
    backend: str, engine: AsyncEngine, names: MigrationOptions, sqlite_dir: Path
) -> None:
    url = cli_url(backend, str(engine.url.render_as_string(hide_password=False)))
    opts = [
        "--sessions-table",
        names.sessions_table,
        "-x",
        f"messages_table={names.messages_table}",
    ]
    result = await run_cli("migrate", "--url", url, *opts, "upgrade", "head")
    assert result.exit_code == 0, result.output
    await assert_no_drift(engine, names)

    result = await run_cli("migrate", *opts, "current", env={"CONVOSTORE_URL": url})
    assert result.exit_code == 0, result.output
    assert f"{head()} (head)" in result.output

    result = await run_cli("migrate", "history")
    assert result.exit_code == 0, result.output
    assert "0001" in result.output

    result = await run_cli("migrate", "--url", url, *opts, "check")
    assert result.exit_code == 0, result.output

    result = await run_cli("migrate", "--url", url, *opts, "stamp", "base")
    assert result.exit_code == 0, result.output
    assert await current(engine, **kwargs(names)) == ()
    assert names.sessions_table in await table_names(engine)  # stamp runs no migration
    result = await run_cli("migrate", "--url", url, *opts, "stamp", "head")
    assert result.exit_code == 0, result.output
    assert await current(engine, **kwargs(names)) == (head(),)

    result = await run_cli("migrate", "--url", url, *opts, "downgrade", "base", "--yes")
    assert result.exit_code == 0, result.output
    assert not {names.sessions_table, names.version_table} & await table_names(engine)


async def test_cli_sql_prints_the_ddl_and_runs_nothing(
    backend: str, engine: AsyncEngine, names: MigrationOptions
) -> None:
    url = cli_url(backend, str(engine.url.render_as_string(hide_password=False)))
    if backend == "mysql":
        url = url.replace("mysql://", "mariadb://", 1)  # offline: no server to ask
    result = await run_cli(
        "migrate",
        "--url",
        url,
        "--sessions-table",
        names.sessions_table,
        "--messages-table",
        names.messages_table,
        "upgrade",
        "head",
        "--sql",
    )
    assert result.exit_code == 0, result.output
    assert f"CREATE TABLE {names.messages_table}" in result.output
    assert f"INSERT INTO {names.version_table}" in result.output
    if backend == "mysql":
        assert "utf8mb4_nopad_bin" in result.output
        assert "LONGTEXT" in result.output
    assert not {names.sessions_table, names.version_table} & await table_names(engine)


async def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    result = await run_cli("migrate", "current", env={"CONVOSTORE_URL": ""})
    assert result.exit_code != 0
    assert "no database URL" in result.output
    (tmp_path / "x.db").touch()  # an empty file is an empty SQLite database
    result = await run_cli(
        "migrate", "--url", f"sqlite:///{tmp_path / 'x.db'}", "-x", "bogus=1", "current"
    )
    assert result.exit_code != 0
    assert "unknown -x" in result.output
    result = await run_cli("migrate", "--url", "postgresql://u:hunter2@127.0.0.1:1/db", "current")
    assert result.exit_code != 0
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


# -- Alembic's own command line -----------------------------------------------------------


def alembic(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return run(sys.executable, "-m", "alembic", *args, cwd=cwd, env=env)


def x_args(settings: dict[str, str]) -> list[str]:
    return [arg for key, value in settings.items() for arg in ("-x", f"{key}={value}")]


async def test_alembic_upgrade_head_from_the_repository_root(fresh: Fresh) -> None:
    url = cli_url(fresh.backend, fresh.url)
    out = await asyncio.to_thread(
        alembic, *x_args({"url": url, **fresh.x}), "upgrade", "head", cwd=REPO
    )
    assert "Running upgrade  -> 0001" in out
    await assert_no_drift(fresh.engine, MigrationOptions())
    await use_session(fresh.engine, MigrationOptions())
    # CONVOSTORE_URL is used when -x url is absent; the database is already at head.
    out = await asyncio.to_thread(
        alembic, *x_args(fresh.x), "current", cwd=REPO, env={"CONVOSTORE_URL": url}
    )
    assert f"{head()} (head)" in out


APP_INI = """\
[alembic]
script_location = %(here)s/app_migrations

[convostore]
script_location = {location}
sqlalchemy.url = {url}
{extra}
"""


async def test_app_ini_section_runs_beside_the_apps_own_alembic_history(
    fresh: Fresh, tmp_path: Path
) -> None:
    """``alembic --name convostore upgrade head`` with a section in the app's alembic.ini."""
    async with fresh.engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        await conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('app0007')")
        await conn.exec_driver_sql("CREATE TABLE app_items (id INTEGER PRIMARY KEY)")
    extra = "".join(f"{key} = {value}\n" for key, value in fresh.x.items())
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        APP_INI.format(
            location=script_location(), url=cli_url(fresh.backend, fresh.url), extra=extra
        )
    )
    await asyncio.to_thread(alembic, "--name", "convostore", "upgrade", "head", cwd=tmp_path)
    out = await asyncio.to_thread(alembic, "--name", "convostore", "check", cwd=tmp_path)
    assert "No new upgrade operations detected" in out

    async with fresh.engine.connect() as conn:
        versions = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
    assert [tuple(v) for v in versions] == [("app0007",)]
    assert {"alembic_version", "app_items", DEFAULT_VERSION_TABLE} <= await table_names(
        fresh.engine
    )
    assert await current(fresh.engine) == (head(),)
    await assert_no_drift(fresh.engine, MigrationOptions())
    # downgrade base removes convostore's tables only.
    await asyncio.to_thread(alembic, "--name", "convostore", "downgrade", "base", cwd=tmp_path)
    assert await table_names(fresh.engine) == {"alembic_version", "app_items"}


# -- adopting a database written by the Agents SDK ----------------------------------------


SDK_SESSIONS = ["user-1", "user-2", "Café ☕ 42", "conv-with-one-turn", "empty-after-pop"]


def turn(session: str, number: int, size: int) -> list[dict[str, Any]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{session} turn {number}.{i}"}
        for i in range(size)
    ]


async def sdk_factory(engine: AsyncEngine, backend: str) -> Callable[[str], Any]:
    """Return ``session_id -> the SDK's own SQLAlchemySession``, its tables created."""
    from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession as SDKSession

    def sdk(session_id: str) -> Any:
        # The SDK's DDL fails on MySQL (VARCHAR without length): there its tables are made
        # below, by hand, from the SDK's own table definitions.
        return SDKSession(session_id, engine=engine, create_tables=backend != "mysql")

    if backend == "mysql":
        template = sdk("template")
        for table in template._metadata.tables.values():
            for column in table.columns:
                if isinstance(column.type, String) and column.type.length is None:
                    column.type = String(255)
        async with engine.begin() as conn:
            await conn.run_sync(template._metadata.create_all)
    return sdk


async def write_with_sdk(engine: AsyncEngine, backend: str) -> dict[str, list[Any]]:
    """Fill the SDK's tables with the real SDK; return each session as the SDK reads it."""
    sdk = await sdk_factory(engine, backend)
    for number in range(4):
        for index, session_id in enumerate(SDK_SESSIONS):
            if session_id == "conv-with-one-turn" and number > 0:
                continue
            # Batches of several items share one CURRENT_TIMESTAMP: the id breaks the tie.
            await sdk(session_id).add_items(turn(session_id, number, 1 + (number + index) % 3))
    await sdk("empty-after-pop").clear_session()
    await sdk("empty-after-pop").add_items(turn("empty-after-pop", 9, 1))
    await sdk("empty-after-pop").pop_item()
    await sdk("user-1").pop_item()

    # A row whose timestamp is older than rows with smaller ids: the SDK orders by the
    # timestamp first, and so must the conversion.
    messages = sdk("user-2")._messages
    async with engine.begin() as conn:
        last_id = (
            await conn.execute(
                select(messages.c.id)
                .where(messages.c.session_id == "user-2")
                .order_by(messages.c.id.desc())
                .limit(1)
            )
        ).scalar_one()
        first_at = (
            await conn.execute(
                select(messages.c.created_at)
                .where(messages.c.session_id == "user-2")
                .order_by(messages.c.id)
                .limit(1)
            )
        ).scalar_one()
        await conn.execute(
            update(messages).where(messages.c.id == last_id).values(created_at=first_at)
        )
    return {session_id: await sdk(session_id).get_items() for session_id in SDK_SESSIONS}


async def test_adopt_a_database_written_by_the_agents_sdk(fresh: Fresh) -> None:
    expected = await write_with_sdk(fresh.engine, fresh.backend)
    assert expected["user-2"][0] == expected["user-2"][1] or len(expected["user-2"]) > 3
    assert expected["empty-after-pop"] == []
    assert sum(len(items) for items in expected.values()) > 20

    # create_tables never half-works on the SDK's layout: it says to run the migration.
    with pytest.raises(SchemaError, match="convostore migrate upgrade head"):
        await SQLAlchemySession("user-1", engine=fresh.engine, create_tables=True).get_items()

    await convostore.migrate.upgrade(fresh.engine)

    await assert_no_drift(fresh.engine, MigrationOptions())
    assert await current(fresh.engine) == (head(),)
    assert await table_names(fresh.engine) == default_store_tables()
    tables = build_tables()
    for session_id, items in expected.items():
        session = SQLAlchemySession(session_id, engine=fresh.engine)
        assert await session.get_items() == items, session_id
        async with fresh.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(tables.sessions.c.next_position, tables.sessions.c.item_count).where(
                        tables.sessions.c.session_id == session_id
                    )
                )
            ).one()
        assert tuple(row) == (len(items), len(items))
        # The adopted session goes on where the SDK left off.
        await session.add_items([{"role": "user", "content": "after adoption"}])
        assert await session.get_items() == [*items, {"role": "user", "content": "after adoption"}]
        assert await session.pop_item() == {"role": "user", "content": "after adoption"}
        assert await session.get_items(limit=2) == items[-2:]


async def test_adoption_keeps_order_within_a_second(fresh: Fresh) -> None:
    """Many one-item turns in the same second: the SDK's id order survives the conversion."""
    sdk = (await sdk_factory(fresh.engine, fresh.backend))("fast")
    items = [{"role": "user", "content": str(i)} for i in range(30)]
    for item in items:
        await sdk.add_items([item])
    assert await sdk.get_items() == items
    await convostore.migrate.upgrade(fresh.engine)
    assert await SQLAlchemySession("fast", engine=fresh.engine).get_items() == items


# -- the wheel ----------------------------------------------------------------------------


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a program away from this checkout's settings; its output, which must be a success."""
    isolated: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("CONVOSTORE_", "PYTHON", "VIRTUAL_ENV"))
    }
    done = run_program(*args, cwd=cwd, env={**isolated, **(env or {})}, timeout=180)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv under a temp dir with convostore installed from a wheel built offline.

    The dependencies come from the test venv's site-packages (added by a .pth file), so no
    index is needed; the test venv's editable convostore is not visible there.
    """
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-q", "-w", dist, REPO, cwd=root,
    )  # fmt: skip
    (wheel,) = dist.glob("convostore-*.whl")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root)
    deps = run(
        sys.executable,
        "-c",
        "import sqlalchemy, os; print(os.path.dirname(os.path.dirname(sqlalchemy.__file__)))",
        cwd=root,
    )
    Path(site.strip(), "zz_test_deps.pth").write_text(deps.strip() + "\n")
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
        "--no-index", "-q", wheel, cwd=root,
    )  # fmt: skip
    return wheel


def test_wheel_ships_the_migrations(installed_wheel: Path) -> None:
    names = zipfile.ZipFile(installed_wheel).namelist()
    assert "convostore/migrations/env.py" in names
    assert "convostore/migrations/script.py.mako" in names
    assert "convostore/migrations/versions/0001_initial.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("migrations/")]
    # The licence the metadata names, in the wheel itself.
    (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    text = zipfile.ZipFile(installed_wheel).read(license_file).decode()
    assert text.startswith("MIT License")
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in zipfile.ZipFile(installed_wheel).read(metadata).decode()


@pytest.mark.slow
@pytest.mark.sqlite
def test_installed_wheel_migrates_from_outside_the_repository(
    backend: str, installed_wheel: Path, tmp_path: Path
) -> None:
    venv = installed_wheel.parents[1] / "venv" / "bin"
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run(
        venv / "python", "-c",
        "import convostore; from convostore.migrate import script_location; "
        "print(convostore.__file__); print(script_location())",
        cwd=work,
    )  # fmt: skip
    assert str(REPO) not in where.splitlines()[0]
    assert where.splitlines()[1] == "convostore:migrations"

    db = tmp_path / "wheel.db"
    out = run(
        venv / "convostore", "migrate", "--url", f"sqlite:///{db}", "upgrade", "head", cwd=work
    )
    assert "Running upgrade  -> 0001" in out
    out = run(venv / "python", "-m", "convostore", "migrate", "current", cwd=work,
              env={"CONVOSTORE_URL": f"sqlite:///{db}"})  # fmt: skip
    assert f"{head()} (head)" in out

    # An application's alembic.ini naming the package resource, as the docs show.
    (work / "alembic.ini").write_text(
        APP_INI.format(location="convostore:migrations", url=f"sqlite:///{work / 'app.db'}",
                       extra="sessions_table = chat_sessions\nmessages_table = chat_messages\n")
    )  # fmt: skip
    run(venv / "python", "-m", "alembic", "--name", "convostore", "upgrade", "head", cwd=work)
    out = run(venv / "python", "-m", "alembic", "--name", "convostore", "current", cwd=work)
    assert f"{head()} (head)" in out
    out = run(venv / "python", "-m", "alembic", "--name", "convostore", "check", cwd=work)
    assert "No new upgrade operations detected" in out
    import sqlite3

    with sqlite3.connect(work / "app.db") as conn:
        found = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert found == {
        *(
            table.name
            for table in build_tables("chat_sessions", "chat_messages").metadata.sorted_tables
        ),
        "chat_sessions_alembic_version",
    }


@pytest.mark.sqlite
@pytest.mark.parametrize("command", ["upgrade", "downgrade", "stamp"])
async def test_an_unknown_revision_is_a_typed_error(tmp_path: Path, command: str) -> None:
    engine = engine_from_url(f"sqlite:///{tmp_path / 'rev.db'}")
    try:
        with pytest.raises(InvalidInputError, match=r"nosuchrev.*migrate history"):
            await getattr(migrate_api, command)(engine, "nosuchrev")
    finally:
        await engine.dispose()
