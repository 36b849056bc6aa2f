"""The raw-driver floor: the cheapest correct session store, written by hand on each driver.

It keeps the same guarantees as convostore with the fewest statements a careful person would
write, and nothing else (no validation, no retries, no error translation, no SQLAlchemy):

- tables: ``sessions (session_id PK, next_position, created_at, updated_at)`` and
  ``messages (session_id, position, message_data, created_at, PK (session_id, position))``;
- append: one transaction: an upsert of the session row that bumps its counter and returns
  it (the row lock serializes writers of one session), then one multi-row insert;
- tail: one ``SELECT ... ORDER BY position DESC LIMIT n`` on the primary key, no transaction;
- pop: one transaction: touch (lock) the session row, then delete the last row and return it
  (``DELETE ... RETURNING`` where the server has it);
- items are stored as compact JSON text and decoded with the standard library.

Pools hold 10 connections, like each SQLAlchemy engine of the run (one per implementation).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy.engine import URL

POOL_SIZE = 10


def encode(item: Any) -> str:
    return json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class FloorSession:
    """The session protocol over one of the floor stores below."""

    def __init__(self, store: Any, session_id: str) -> None:
        self.store = store
        self.session_id = session_id

    async def add_items(self, items: list[Any]) -> None:
        await self.store.add(self.session_id, [encode(item) for item in items])

    async def get_items(self, limit: int | None = None) -> list[Any]:
        texts = await self.store.get(self.session_id, limit)
        return [json.loads(text) for text in texts]

    async def pop_item(self) -> Any | None:
        text = await self.store.pop(self.session_id)
        return None if text is None else json.loads(text)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- PostgreSQL (asyncpg) --------------------------------------------------------------------


class PostgresFloor:
    def __init__(self, url: URL, sessions: str, messages: str) -> None:
        self.url = url
        self.s, self.m = sessions, messages
        s, m = sessions, messages
        self.ddl = [
            f"CREATE TABLE {s} (session_id VARCHAR(255) PRIMARY KEY, next_position BIGINT NOT "
            f"NULL, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
            f"CREATE TABLE {m} (session_id VARCHAR(255) NOT NULL, position BIGINT NOT NULL, "
            f"message_data TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, "
            f"PRIMARY KEY (session_id, position))",
        ]
        self.upsert = (
            f"INSERT INTO {s} (session_id, next_position, created_at, updated_at) "
            f"VALUES ($1, $2, $3, $3) ON CONFLICT (session_id) DO UPDATE SET "
            f"next_position = {s}.next_position + EXCLUDED.next_position, "
            f"updated_at = EXCLUDED.updated_at RETURNING next_position"
        )
        self.insert_one = (
            f"INSERT INTO {m} (session_id, position, message_data, created_at) "
            f"VALUES ($1, $2, $3, $4)"
        )
        self.insert_many = (
            f"INSERT INTO {m} (session_id, position, message_data, created_at) "
            f"SELECT $1, $2 + u.i - 1, u.t, $4 FROM unnest($3::text[]) WITH ORDINALITY AS u(t, i)"
        )
        self.tail = (
            f"SELECT message_data FROM {m} WHERE session_id = $1 ORDER BY position DESC LIMIT $2"
        )
        self.all = f"SELECT message_data FROM {m} WHERE session_id = $1 ORDER BY position"
        self.lock = f"UPDATE {s} SET updated_at = $2 WHERE session_id = $1"
        self.pop_last = (
            f"DELETE FROM {m} WHERE session_id = $1 AND position = "
            f"(SELECT max(position) FROM {m} WHERE session_id = $1) RETURNING message_data"
        )
        self.pool: Any = None

    async def open(self) -> None:
        import asyncpg

        async def no_reset(_conn: Any) -> None:
            # Every operation ends its own transaction; asyncpg's default reset would add a
            # round trip (RESET ALL, UNLISTEN, ...) to every release.
            return None

        u = self.url
        self.pool = await asyncpg.create_pool(
            host=u.host,
            port=u.port or 5432,
            user=u.username,
            password=u.password,
            database=u.database,
            min_size=POOL_SIZE,
            max_size=POOL_SIZE,
            reset=no_reset,
        )

    async def create(self) -> None:
        async with self.pool.acquire() as conn:
            for statement in self.ddl:
                await conn.execute(statement)

    async def drop(self) -> None:
        if self.pool is None:
            return
        async with self.pool.acquire() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {self.m}, {self.s}")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def add(self, sid: str, texts: Sequence[str]) -> None:
        n = len(texts)
        now = _utcnow()
        async with self.pool.acquire() as conn, conn.transaction():
            end = await conn.fetchval(self.upsert, sid, n, now)
            if n == 1:
                await conn.execute(self.insert_one, sid, end - 1, texts[0], now)
            else:
                await conn.execute(self.insert_many, sid, end - n, list(texts), now)

    async def get(self, sid: str, limit: int | None) -> list[str]:
        async with self.pool.acquire() as conn:
            if limit is None:
                return [row[0] for row in await conn.fetch(self.all, sid)]
            rows = await conn.fetch(self.tail, sid, limit)
        return [row[0] for row in reversed(rows)]

    async def pop(self, sid: str) -> str | None:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(self.lock, sid, _utcnow())
            if status.endswith(" 0"):
                return None
            text: str | None = await conn.fetchval(self.pop_last, sid)
            return text

    async def populate(self, sid: str, texts: Sequence[str], start: dt.datetime) -> None:
        n = len(texts)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"INSERT INTO {self.s} VALUES ($1, $2, $3, $3)", sid, n, start)
            await conn.copy_records_to_table(
                self.m,
                records=[
                    (sid, i, text, start + dt.timedelta(milliseconds=i))
                    for i, text in enumerate(texts)
                ],
                columns=["session_id", "position", "message_data", "created_at"],
            )


# -- MySQL / MariaDB (aiomysql) --------------------------------------------------------------


class MysqlFloor:
    def __init__(self, url: URL, sessions: str, messages: str) -> None:
        self.url = url
        self.s, self.m = sessions, messages
        self.pool: Any = None
        self.mariadb = True

    def _statements(self) -> None:
        s, m = self.s, self.m
        collation = "utf8mb4_nopad_bin" if self.mariadb else "utf8mb4_0900_bin"
        sid = f"VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL"
        self.ddl = [
            f"CREATE TABLE {s} (session_id {sid} PRIMARY KEY, next_position BIGINT NOT NULL, "
            f"created_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NOT NULL) "
            f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            f"CREATE TABLE {m} (session_id {sid}, position BIGINT NOT NULL, "
            f"message_data LONGTEXT CHARACTER SET utf8mb4 NOT NULL, "
            f"created_at DATETIME(6) NOT NULL, PRIMARY KEY (session_id, position)) "
            f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ]
        self.upsert = (
            f"INSERT INTO {s} (session_id, next_position, created_at, updated_at) "
            f"VALUES (%s, LAST_INSERT_ID(%s), %s, %s) ON DUPLICATE KEY UPDATE "
            f"next_position = LAST_INSERT_ID(next_position + %s), updated_at = %s"
        )
        self.insert = (
            f"INSERT INTO {m} (session_id, position, message_data, created_at) "
            f"VALUES (%s, %s, %s, %s)"
        )
        self.tail = (
            f"SELECT message_data FROM {m} WHERE session_id = %s ORDER BY position DESC LIMIT %s"
        )
        self.all = f"SELECT message_data FROM {m} WHERE session_id = %s ORDER BY position"
        self.lock = f"UPDATE {s} SET updated_at = %s WHERE session_id = %s"
        self.pop_returning = (
            f"DELETE FROM {m} WHERE session_id = %s ORDER BY position DESC LIMIT 1 "
            f"RETURNING message_data"
        )
        self.last_for_update = (
            f"SELECT position, message_data FROM {m} WHERE session_id = %s "
            f"ORDER BY position DESC LIMIT 1 FOR UPDATE"
        )
        self.delete_one = f"DELETE FROM {m} WHERE session_id = %s AND position = %s"

    async def open(self) -> None:
        import aiomysql

        u = self.url
        self.pool = await aiomysql.create_pool(
            host=u.host,
            port=u.port or 3306,
            user=u.username,
            password=u.password or "",
            db=u.database,
            charset="utf8mb4",
            autocommit=True,
            minsize=POOL_SIZE,
            maxsize=POOL_SIZE,
        )
        async with self.pool.acquire() as conn:
            self.mariadb = "mariadb" in conn.get_server_info().lower()
        self._statements()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self.pool.acquire() as conn:
            await conn.begin()
            try:
                async with conn.cursor() as cur:
                    yield cur
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    async def create(self) -> None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            for statement in self.ddl:
                await cur.execute(statement)

    async def drop(self) -> None:
        if self.pool is None:
            return
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(f"DROP TABLE IF EXISTS {self.m}, {self.s}")

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()

    async def add(self, sid: str, texts: Sequence[str]) -> None:
        n = len(texts)
        now = _utcnow().replace(tzinfo=None)
        async with self._transaction() as cur:
            await cur.execute(self.upsert, (sid, n, now, now, n, now))
            start = cur.lastrowid - n
            # aiomysql sends executemany of an INSERT ... VALUES as one multi-row statement.
            await cur.executemany(
                self.insert, [(sid, start + i, text, now) for i, text in enumerate(texts)]
            )

    async def get(self, sid: str, limit: int | None) -> list[str]:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            if limit is None:
                await cur.execute(self.all, (sid,))
                return [row[0] for row in await cur.fetchall()]
            await cur.execute(self.tail, (sid, limit))
            rows = await cur.fetchall()
        return [row[0] for row in reversed(rows)]

    async def pop(self, sid: str) -> str | None:
        async with self._transaction() as cur:
            if await cur.execute(self.lock, (_utcnow().replace(tzinfo=None), sid)) == 0:
                return None
            if self.mariadb:
                await cur.execute(self.pop_returning, (sid,))
                row = await cur.fetchone()
                return None if row is None else str(row[0])
            await cur.execute(self.last_for_update, (sid,))
            row = await cur.fetchone()
            if row is None:
                return None
            await cur.execute(self.delete_one, (sid, row[0]))
            return str(row[1])

    async def populate(self, sid: str, texts: Sequence[str], start: dt.datetime) -> None:
        naive = start.replace(tzinfo=None)
        async with self._transaction() as cur:
            await cur.execute(
                f"INSERT INTO {self.s} VALUES (%s, %s, %s, %s)", (sid, len(texts), naive, naive)
            )
            for chunk in range(0, len(texts), 2000):
                await cur.executemany(
                    self.insert,
                    [
                        (sid, i, texts[i], naive + dt.timedelta(milliseconds=i))
                        for i in range(chunk, min(chunk + 2000, len(texts)))
                    ],
                )


# -- SQLite (aiosqlite) ----------------------------------------------------------------------


class SqliteFloor:
    def __init__(self, path: str, sessions: str, messages: str) -> None:
        self.path = path
        self.s, self.m = sessions, messages
        s, m = sessions, messages
        self.ddl = [
            f"CREATE TABLE {s} (session_id VARCHAR(255) PRIMARY KEY, next_position INTEGER NOT "
            f"NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
            f"CREATE TABLE {m} (session_id VARCHAR(255) NOT NULL, position INTEGER NOT NULL, "
            f"message_data TEXT NOT NULL, created_at TEXT NOT NULL, "
            f"PRIMARY KEY (session_id, position))",
        ]
        self.upsert = (
            f"INSERT INTO {s} (session_id, next_position, created_at, updated_at) "
            f"VALUES (?1, ?2, ?3, ?3) ON CONFLICT (session_id) DO UPDATE SET "
            f"next_position = next_position + excluded.next_position, "
            f"updated_at = excluded.updated_at RETURNING next_position"
        )
        self.insert = (
            f"INSERT INTO {m} (session_id, position, message_data, created_at) VALUES (?, ?, ?, ?)"
        )
        self.tail = (
            f"SELECT message_data FROM {m} WHERE session_id = ? ORDER BY position DESC LIMIT ?"
        )
        self.all = f"SELECT message_data FROM {m} WHERE session_id = ? ORDER BY position"
        self.lock = f"UPDATE {s} SET updated_at = ? WHERE session_id = ?"
        self.pop_last = (
            f"DELETE FROM {m} WHERE session_id = ?1 AND position = "
            f"(SELECT max(position) FROM {m} WHERE session_id = ?1) RETURNING message_data"
        )
        # Last in, first out: a sequential caller keeps one connection and its page cache,
        # as SQLAlchemy's pool does (it only opens a second connection when one is busy).
        self.free: asyncio.LifoQueue[Any] = asyncio.LifoQueue()
        self.conns: list[Any] = []

    async def open(self) -> None:
        import aiosqlite

        for _ in range(POOL_SIZE):
            conn = await aiosqlite.connect(self.path)
            self.conns.append(conn)
            # The same per-connection settings convostore installs; fetch the rows so that no
            # statement stays open and holds a lock.
            await conn.execute_fetchall("PRAGMA busy_timeout = 10000")
            await conn.execute_fetchall("PRAGMA journal_mode = WAL")
            self.free.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        conn = await self.free.get()
        try:
            yield conn
        finally:
            self.free.put_nowait(conn)

    async def create(self) -> None:
        async with self._conn() as conn:
            for statement in self.ddl:
                await conn.execute(statement)
            await conn.commit()

    async def drop(self) -> None:
        if not self.conns:
            return
        async with self._conn() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {self.m}")
            await conn.execute(f"DROP TABLE IF EXISTS {self.s}")
            await conn.commit()

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()

    async def add(self, sid: str, texts: Sequence[str]) -> None:
        n = len(texts)
        now = _utcnow().isoformat()
        async with self._conn() as conn:
            try:
                # sqlite3 opens the transaction (BEGIN) before the upsert by itself.
                rows = await conn.execute_fetchall(self.upsert, (sid, n, now))
                start = next(iter(rows))[0] - n
                await conn.executemany(
                    self.insert, [(sid, start + i, text, now) for i, text in enumerate(texts)]
                )
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise

    async def get(self, sid: str, limit: int | None) -> list[str]:
        async with self._conn() as conn:
            if limit is None:
                return [row[0] for row in await conn.execute_fetchall(self.all, (sid,))]
            rows = list(await conn.execute_fetchall(self.tail, (sid, limit)))
        return [row[0] for row in reversed(rows)]

    async def pop(self, sid: str) -> str | None:
        async with self._conn() as conn:
            try:
                locked = await conn.execute(self.lock, (_utcnow().isoformat(), sid))
                if locked.rowcount == 0:
                    await conn.rollback()
                    return None
                rows = list(await conn.execute_fetchall(self.pop_last, (sid,)))
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        return str(rows[0][0]) if rows else None

    async def populate(self, sid: str, texts: Sequence[str], start: dt.datetime) -> None:
        stamp = start.isoformat()
        async with self._conn() as conn:
            await conn.execute(
                f"INSERT INTO {self.s} VALUES (?, ?, ?, ?)", (sid, len(texts), stamp, stamp)
            )
            await conn.executemany(
                self.insert,
                [
                    (sid, i, text, (start + dt.timedelta(milliseconds=i)).isoformat())
                    for i, text in enumerate(texts)
                ],
            )
            await conn.commit()


def make_floor(url: URL, sqlite_path: str | None, sessions: str, messages: str) -> Any:
    """Return the floor store for the backend of ``url``."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        return PostgresFloor(url, sessions, messages)
    if backend in ("mysql", "mariadb"):
        return MysqlFloor(url, sessions, messages)
    assert sqlite_path is not None
    return SqliteFloor(sqlite_path, sessions, messages)
