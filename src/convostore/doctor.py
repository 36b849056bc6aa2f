"""``convostore doctor``: check a database end to end and say what to fix.

``diagnose`` runs the checks in order and returns one ``Check`` each: the server
answers; the driver is async; the tables exist with convostore's columns; their recorded
migration revision is the latest; a scratch session can be written, read back and deleted;
and the server settings convostore depends on (MySQL/MariaDB ``max_allowed_packet``, SQLite
write-ahead logging and foreign keys).
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from typing import Any

from . import migrate
from ._db.chunks import chunk_chars_for_packet
from ._db.dialect import Address, describe_connect_failure, explain_unreachable, nothing_answered
from ._layouts.postgresql import Partitioning, partitioning_of
from ._layouts.spider import spider_tables
from ._store import SessionStore
from ._table_layout import compare_layout
from .errors import ConvostoreError

__all__ = ["Check", "diagnose"]

_ASYNC_DRIVERS = {"aiosqlite", "asyncpg", "aiomysql", "asyncmy", "psycopg"}
# Below this, large tool outputs (and imports of them) are refused by MySQL/MariaDB.
# Items larger than one packet are stored in chunks, so a small max_allowed_packet only
# makes large items slower (more statements); below this it is worth raising.
_MIN_PACKET = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    """What was checked."""

    status: str
    """``"ok"``, ``"warn"``, ``"fail"``, ``"unknown"`` or ``"skipped"``."""

    detail: str
    """What was found."""

    fix: str = ""
    """What to do about it, when the status is not ``"ok"``."""

    def to_dict(self) -> dict[str, str]:
        """Return the check as a plain ``dict``."""
        return dataclasses.asdict(self)


async def diagnose(store: SessionStore) -> list[Check]:
    """Run every check on the store's database; never raises for a failed check."""
    engine = store.engine
    checks: list[Check] = []
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
            version = ".".join(map(str, engine.dialect.server_version_info or ())) or "?"
        checks.append(Check("reachable", "ok", f"{engine.dialect.name} {version} answers"))
    except Exception as exc:  # any failure to connect is the finding itself
        address = Address.of(engine.url)
        if nothing_answered(exc, engine.dialect.name):
            checks.append(Check("reachable", "fail", *explain_unreachable(exc, address)))
        else:
            _, text = describe_connect_failure(exc)
            checks.append(
                Check(
                    "reachable",
                    "fail",
                    f"the server answered at {address}: {text}",
                    "check the URL's database name, user and password",
                )
            )
        rest = ("async driver", "tables", "schema revision", "write/read/delete", "settings")
        checks.extend(Check(name, "skipped", "the database is not reachable") for name in rest)
        return checks

    driver = engine.dialect.driver
    if getattr(engine.dialect, "is_async", False) and driver in _ASYNC_DRIVERS:
        checks.append(Check("async driver", "ok", driver))
    else:
        checks.append(
            Check(
                "async driver",
                "warn",
                f"{driver} is not a driver convostore is tested with",
                "use sqlite+aiosqlite, postgresql+asyncpg or mysql+aiomysql",
            )
        )

    tables_ok = await _check_tables(store, checks)
    checks.append(await _check_revision(store, tables_ok=tables_ok))
    if tables_ok:
        checks.append(await _probe(store))
    else:
        checks.append(Check("write/read/delete", "skipped", "the tables are not usable"))
    checks.extend(await _check_settings(store))
    return checks


async def _check_tables(store: SessionStore, checks: list[Check]) -> bool:
    tables = store.tables
    async with store.engine.connect() as conn:
        problems = [str(finding) for finding in await conn.run_sync(compare_layout, tables)]
    if problems:
        checks.append(
            Check(
                "tables",
                "fail",
                "; ".join(problems),
                "run `convostore migrate upgrade head` with the same --url and table names",
            )
        )
        return False
    found = f"{tables.sessions.name} and {tables.messages.name} are in place"
    layouts = await _partitioning(store)
    if layouts and len({layout.partitions for layout in layouts}) > 1:
        checks.append(
            Check(
                "tables",
                "warn",
                f"{found}; {'; '.join(layout.describe() for layout in layouts)}",
                "partition the two tables together, with convostore.layouts.partition_messages "
                "(or `convostore migrate upgrade head --partitions N`)",
            )
        )
        return True
    if layouts and layouts[0].partitions is not None:
        found += (
            f"; {tables.messages.name} and {tables.chunks.name} are hash-partitioned by "
            f"session_id into {layouts[0].partitions}"
        )
    async with store.engine.connect() as conn:
        spider = await conn.run_sync(spider_tables, tables)
    every = {table.name for table in tables.metadata.sorted_tables}
    if spider and spider != every:
        checks.append(
            Check(
                "tables",
                "warn",
                f"{found}; only {', '.join(sorted(spider))} are Spider tables on this head",
                "make the head again with `convostore layout spider` "
                "(convostore.layouts.create_spider_head)",
            )
        )
        return True
    if spider:
        found += "; they are Spider tables (a head: the rows live on its data nodes)"
    checks.append(Check("tables", "ok", found))
    return True


async def _partitioning(store: SessionStore) -> list[Partitioning]:
    """How the messages and chunks tables are laid out (PostgreSQL); empty elsewhere."""
    tables = store.tables
    if store.engine.dialect.name != "postgresql":
        return []
    async with store.engine.connect() as conn:
        found = [await conn.run_sync(partitioning_of, t) for t in (tables.messages, tables.chunks)]
    return [layout for layout in found if layout is not None]


async def _check_revision(store: SessionStore, *, tables_ok: bool) -> Check:
    name = "schema revision"
    try:
        latest = migrate.head()
        recorded = await migrate.current(
            store.engine,
            sessions_table=store.tables.sessions.name,
            messages_table=store.tables.messages.name,
            schema=store.tables.sessions.schema,
        )
    except ImportError as exc:
        return Check(name, "unknown", f"migrations are not available ({exc})")
    except Exception as exc:  # a broken version table is a finding, not a crash
        return Check(name, "unknown", f"could not read the revision: {exc}")
    if latest in recorded:
        return Check(name, "ok", f"at head ({latest})")
    if not recorded and not tables_ok:
        # Stamping would record a revision for tables that are not there.
        return Check(
            name,
            "warn",
            "no revision is recorded, and the tables are missing or incomplete",
            "run `convostore migrate upgrade head`",
        )
    if not recorded:
        return Check(
            name,
            "warn",
            "no revision is recorded for these tables",
            "if the tables are up to date, `convostore migrate stamp head`; "
            "otherwise `convostore migrate upgrade head`",
        )
    return Check(
        name,
        "fail",
        f"at {', '.join(recorded)}; the latest is {latest}",
        "run `convostore migrate upgrade head`",
    )


async def _probe(store: SessionStore) -> Check:
    name = "write/read/delete"
    session_id = f"convostore-doctor-{uuid.uuid4().hex}"
    session = store.session(session_id)
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "doctor probe ✓ " + "x" * 1000},
        {"type": "function_call_output", "call_id": "probe", "output": "ok"},
    ]
    try:
        await session.add_items(items)
        back = await session.get_items()
        info = await store.get_session_info(session_id)
        if back != items or info is None or info.item_count != len(items):
            return Check(
                name,
                "fail",
                f"read back {back!r:.200} (count {info and info.item_count})",
                "report this as a bug with the database version",
            )
        await session.clear_session()
        if await store.get_session_info(session_id) is not None:
            return Check(name, "fail", "the scratch session survived its deletion")
    except ConvostoreError as exc:
        return Check(
            name,
            "fail",
            f"{type(exc).__name__}: {exc}",
            "check that this user may write the database file and its folder (SQLite "
            "keeps its journal beside the file)"
            if store.engine.dialect.name == "sqlite"
            else "check that the database user may INSERT, SELECT, UPDATE and DELETE on the tables",
        )
    finally:
        with contextlib.suppress(ConvostoreError):
            await session.clear_session()
    return Check(name, "ok", "a scratch session was written, read back exactly and deleted")


async def _check_settings(store: SessionStore) -> list[Check]:
    engine = store.engine
    dialect = engine.dialect.name
    async with engine.connect() as conn:
        if dialect in ("mysql", "mariadb"):
            packet = int((await conn.exec_driver_sql("SELECT @@max_allowed_packet")).scalar_one())
            if packet < _MIN_PACKET:
                return [
                    Check(
                        "max_allowed_packet",
                        "warn",
                        f"{packet:,} bytes: large items are split into many small chunks "
                        f"({chunk_chars_for_packet(packet):,} characters each), which is slow",
                        f"SET GLOBAL max_allowed_packet = {_MIN_PACKET} (and in the server's "
                        f"configuration file)",
                    )
                ]
            return [
                Check(
                    "max_allowed_packet",
                    "ok",
                    f"{packet:,} bytes; larger items are stored in chunks of "
                    f"{chunk_chars_for_packet(packet):,} characters",
                )
            ]
        if dialect == "sqlite":
            mode = str((await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one())
            keys = int((await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one())
            database = engine.url.database or ""
            found = []
            if mode.lower() == "wal" or database in ("", ":memory:"):
                found.append(Check("sqlite journal", "ok", f"journal_mode={mode}"))
            else:
                found.append(
                    Check(
                        "sqlite journal",
                        "warn",
                        f"journal_mode={mode}: readers wait for writers",
                        "create the engine with convostore.engine_from_url (or call "
                        "configure_engine) so connections use WAL",
                    )
                )
            if keys:
                found.append(Check("sqlite foreign keys", "ok", "foreign_keys=ON"))
            else:
                found.append(
                    Check(
                        "sqlite foreign keys",
                        "warn",
                        "foreign_keys=OFF",
                        "use convostore.configure_engine on the engine",
                    )
                )
            return found
    return [Check("settings", "ok", f"nothing to check on {dialect}")]
