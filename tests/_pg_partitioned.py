"""The ``pg_partitioned`` layout: the storage suite on hash-partitioned messages tables.

A database of its own on the local PostgreSQL server (created by :meth:`start`, dropped by
:meth:`stop`), where every store's messages and chunks tables are hash-partitioned by
``session_id`` into :data:`PARTITIONS` partitions by the product's own
``convostore.layouts.partition_messages``, right after ``create_tables``.
"""

from __future__ import annotations

import uuid

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from convostore import Tables, create_tables, engine_from_url
from convostore.layouts import partition_messages

from ._databases import RUN_ID, autocommit, server_down, server_url
from ._layouts import register
from ._stores import drop_tables

PARTITIONS = 8
"""How many hash partitions each messages and chunks table gets."""


class PgPartitioned:
    """PostgreSQL with the messages and chunks tables hash-partitioned by ``session_id``."""

    name = "pg_partitioned"
    backend = "postgresql"

    def __init__(self) -> None:
        self.database = f"cs_part_{RUN_ID}_{uuid.uuid4().hex[:6]}"
        self._created = False

    def _server(self) -> AsyncEngine:
        return engine_from_url(server_url("postgresql"), poolclass=NullPool)

    async def start(self) -> str:
        """Create the layout's database on the test server; return its URL."""
        server = self._server()
        try:
            await autocommit(server, f"CREATE DATABASE {self.database}")
        except Exception as exc:  # any failure here means the server cannot host the layout
            server_down("postgresql", f"{type(exc).__name__}: {exc}")
        finally:
            await server.dispose()
        self._created = True
        url = make_url(server_url("postgresql")).set(database=self.database)
        return url.render_as_string(hide_password=False)

    async def create_tables(self, engine: AsyncEngine, tables: Tables) -> None:
        """convostore's ``create_tables``, then the product's partitioning of them."""
        await create_tables(engine, tables)
        await partition_messages(
            engine,
            PARTITIONS,
            sessions_table=tables.sessions.name,
            messages_table=tables.messages.name,
            schema=tables.sessions.schema,
        )

    async def drop_tables(self, engine: AsyncEngine, tables: Tables) -> None:
        """Drop the tables (a partitioned table takes its partitions with it)."""
        await drop_tables(engine, tables)

    async def stop(self) -> None:
        """Drop the layout's database, closing any connection a test left open on it."""
        if not self._created:
            return
        server = self._server()
        try:
            await autocommit(server, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        finally:
            await server.dispose()


register("pg_partitioned", PgPartitioned)
