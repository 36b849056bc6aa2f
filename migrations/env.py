"""Alembic environment of convostore's migrations (also packaged as ``convostore:migrations``).

Settings, first found: ``-x key=value``, ``CONVOSTORE_<KEY>`` environment variables, the ini
file (``sqlalchemy.url``, ``sessions_table``, ``messages_table``, ``schema``,
``version_table``); see ``convostore._migration_env.options_from_config``. The target
metadata is built by ``convostore.build_tables`` for the configured names: there is no
second copy of the tables. Async URLs run through an ``AsyncEngine`` with ``run_sync``; sync
URLs (psycopg2, pymysql ...) are accepted too. ``convostore.migrate.upgrade(engine)`` (and the
other commands of ``convostore.migrate``) hands env.py its own connection in
``config.attributes["connection"]``.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import NullPool

from convostore import engine_from_url
from convostore._layouts.spider import refuse_revisions_on_spider_head
from convostore._migration_env import (
    drop_empty_version_table,
    is_async_url,
    options_from_config,
    sync_engine,
)

config = context.config
# An application's ini may configure logging elsewhere (no [loggers] section): then leave it.
if config.config_file_name is not None and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

settings = options_from_config(config, context.get_x_argument(as_dictionary=True))
options = settings.options


def run_migrations_offline() -> None:
    """Write the SQL to stdout (``--sql``) instead of running it."""
    context.configure(
        url=settings.require_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **options.context_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **options.context_options(connection))
    # No revision runs on a MariaDB Spider head: its tables only link to the data nodes'.
    try:
        destination = context.get_revision_argument()
    except KeyError:  # a command with no destination: check, current
        destination = ...
    refuse_revisions_on_spider_head(connection, options, destination)
    with context.begin_transaction():
        context.run_migrations()
        # `downgrade base` leaves nothing of convostore behind, not even an empty version table.
        heads = context.get_context().get_current_heads()
        drop_empty_version_table(connection, options, heads)


async def run_async_migrations(url: URL) -> None:
    engine = engine_from_url(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    url = settings.require_url()
    if is_async_url(url):
        asyncio.run(run_async_migrations(url))
        return
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            do_run_migrations(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
