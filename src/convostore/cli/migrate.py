"""``convostore migrate``: run convostore's packaged Alembic migrations.

A thin wrapper over Alembic's command API on the scripts shipped in the package, for users
who installed convostore and have no ``alembic.ini``:

```sh
convostore migrate --url postgresql://app@db/agents upgrade head
CONVOSTORE_URL=mysql://app@db/agents convostore migrate current
convostore migrate --url postgresql://app@db/agents upgrade head --sql > convostore.sql
```
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._common import about_database, reports_errors
from ._destructive import confirm_destructive, yes_option
from ._store import require_existing_sqlite_file

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import URL

    from convostore.migrate import MigrationOptions

__all__ = ["migrate"]


def _x_pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="-x")
        pairs[key.strip()] = setting.strip()
    return pairs


F = TypeVar("F", bound=Callable[..., Any])

_QUIET = "convostore.migrate.quiet"

_URL_HELP = (
    "Database URL (default: $CONVOSTORE_URL). Plain postgres://, mysql://, sqlite:/// URLs get "
    "convostore's drivers."
)
# The options that choose the database and the tables: on the group (`migrate --url X
# upgrade`) and on every subcommand (`migrate upgrade --url X`).
_TARGET_OPTIONS = (
    ("--url", _URL_HELP),
    ("--sessions-table", "Name of the sessions table (default agent_sessions)."),
    ("--messages-table", "Name of the messages table (default agent_messages)."),
    ("--schema", "PostgreSQL schema (MySQL: database) holding the tables and version table."),
    ("--version-table", "Alembic version table (default derived from the names)."),
)


@click.group("migrate", short_help="Create or upgrade the tables (Alembic).")
@click.option("--url", envvar="CONVOSTORE_URL", help=_URL_HELP)
@click.option("--sessions-table", help=_TARGET_OPTIONS[1][1])
@click.option("--messages-table", help=_TARGET_OPTIONS[2][1])
@click.option("--schema", help=_TARGET_OPTIONS[3][1])
@click.option("--version-table", help=_TARGET_OPTIONS[4][1])
@click.option(
    "-x",
    "x_arguments",
    multiple=True,
    metavar="KEY=VALUE",
    help="An Alembic -x setting: url, sessions_table, messages_table, schema, version_table.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not log the revisions being run.")
@click.pass_context
@reports_errors
def migrate(
    ctx: click.Context,
    url: str | None,
    sessions_table: str | None,
    messages_table: str | None,
    schema: str | None,
    version_table: str | None,
    x_arguments: tuple[str, ...],
    quiet: bool,
) -> None:
    """Create or upgrade convostore's tables with its Alembic migrations.

    Settings not given here come from CONVOSTORE_SESSIONS_TABLE, CONVOSTORE_MESSAGES_TABLE,
    CONVOSTORE_SCHEMA and CONVOSTORE_VERSION_TABLE. See docs/migrations.md.
    """
    settings = _x_pairs(x_arguments)
    given = {
        "url": url,
        "sessions_table": sessions_table,
        "messages_table": messages_table,
        "schema": schema,
        "version_table": version_table,
    }
    for key, value in given.items():
        if value and key not in settings:
            settings[key] = value
    ctx.obj = settings
    ctx.meta[_QUIET] = quiet
    if not quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        # Only the revisions being run; Alembic's chatter about its context is noise here.
        handler.addFilter(lambda record: record.getMessage().startswith("Running "))
        logger = logging.getLogger("alembic.runtime.migration")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # The same option given after the subcommand: it wins over the group's.
    if value and param.name:
        ctx.ensure_object(dict)[param.name] = value


def _target_options(command: F) -> F:
    """Accept the options that pick the database and tables after the subcommand too."""
    for flag, help_text in reversed(_TARGET_OPTIONS):
        command = click.option(
            flag, expose_value=False, callback=_remember, help=help_text, is_eager=False
        )(command)
    return command


def _subcommand(short_help: str, *params: Callable[[Any], Any]) -> Callable[[F], click.Command]:
    """Register a subcommand of ``migrate``: its ``params``, then the target options.

    The callback receives the click context first; its errors are reported as every
    command's are.
    """

    def register(callback: F) -> click.Command:
        decorated = _target_options(click.pass_context(reports_errors(callback)))
        for param in reversed(params):
            decorated = param(decorated)
        return migrate.command(short_help=short_help)(decorated)

    return register


def _run(
    ctx: click.Context, work: Callable[[ModuleType, Config], object], *, read_only: bool = False
) -> None:
    """Call ``work(alembic.command, config)`` with the Alembic config of the options given."""
    from alembic import command

    from convostore.migrate import make_config

    config = make_config(x_arguments=ctx.obj, stdout=sys.stdout)
    url = ctx.obj.get("url") or os.environ.get("CONVOSTORE_URL")
    if url:
        about_database(url)
        if read_only:
            require_existing_sqlite_file(url)
    work(command, config)


_SQL = click.option(
    "--sql", is_flag=True, help="Print the SQL instead of running it (offline mode)."
)


_PARTITIONS = click.option(
    "--partitions",
    type=click.IntRange(2, None),
    metavar="N",
    help="PostgreSQL: then hash-partition the messages and chunks tables by session_id into "
    "N partitions, keeping their rows (nothing to do if they already are).",
)


@_subcommand(
    "Upgrade to REVISION (default head).",
    click.argument("revision", default="head"),
    _SQL,
    _PARTITIONS,
)
def upgrade(ctx: click.Context, revision: str, sql: bool, partitions: int | None) -> None:
    """Upgrade to REVISION (default: head); adopts an Agents SDK database.

    With --partitions N (PostgreSQL), the messages and chunks tables are then
    hash-partitioned by session_id into N partitions (see docs/scaling.md).
    """
    if partitions is not None and sql:
        raise click.UsageError(
            "--partitions cannot be combined with --sql: partitioning looks at the tables it "
            "rebuilds; print the upgrade's SQL first, then run `upgrade head --partitions N`"
        )
    if partitions is not None:
        _require_postgresql(ctx)
    _run(ctx, lambda command, cfg: command.upgrade(cfg, revision, sql=sql))
    if partitions is not None:
        _partition(ctx, partitions)


def _require_postgresql(ctx: click.Context) -> None:
    """Refuse --partitions before upgrading a database that cannot be partitioned."""
    from convostore._layouts.postgresql import require_postgresql
    from convostore._migration_env import options_from_config
    from convostore.migrate import make_config

    url = options_from_config(make_config(), ctx.obj).url
    if url is not None:
        require_postgresql(url.get_backend_name(), None)


def _partition(ctx: click.Context, partitions: int) -> None:
    """Hash-partition the store's messages tables on the database the options name."""
    import asyncio

    from convostore._layouts.postgresql import partition_tables
    from convostore._migration_env import is_async_url, options_from_config, sync_engine
    from convostore.migrate import make_config

    settings = options_from_config(make_config(), ctx.obj)
    url = settings.require_url()
    tables = settings.options.tables
    if is_async_url(url):
        changed = asyncio.run(_partition_async(url, settings.options, partitions))
    else:
        engine = sync_engine(url)
        try:
            with engine.begin() as conn:
                changed = partition_tables(conn, tables, partitions)
        finally:
            engine.dispose()
    if not ctx.meta.get(_QUIET):
        both = f"{tables.messages.name} and {tables.chunks.name}"
        done = "are now" if changed else "already were"
        click.echo(f"{both} {done} hash-partitioned by session_id into {partitions}", err=True)


async def _partition_async(url: URL, options: MigrationOptions, partitions: int) -> bool:
    from sqlalchemy.pool import NullPool

    from convostore import engine_from_url
    from convostore.layouts import partition_messages

    engine = engine_from_url(url, poolclass=NullPool)
    try:
        return await partition_messages(
            engine,
            partitions,
            sessions_table=options.sessions_table,
            messages_table=options.messages_table,
            schema=options.schema,
        )
    finally:
        await engine.dispose()


@_subcommand(
    "Downgrade to REVISION (base drops the tables).", click.argument("revision"), _SQL, yes_option
)
def downgrade(ctx: click.Context, revision: str, sql: bool, yes: bool) -> None:
    """Downgrade to REVISION ("base" drops the tables and their data; with --sql: head:base)."""
    if not sql:
        confirm_destructive(
            f"Downgrade to {revision} (data in the columns and tables it removes is lost)?",
            yes=yes,
        )
    _run(ctx, lambda command, cfg: command.downgrade(cfg, revision, sql=sql))


@_subcommand(
    "Show the revision the database is at.",
    click.option("-v", "--verbose", is_flag=True, help="Show the revision's details."),
)
def current(ctx: click.Context, verbose: bool) -> None:
    """Show the revision the database is at."""
    _run(ctx, lambda command, cfg: command.current(cfg, verbose=verbose), read_only=True)


@_subcommand(
    "List convostore's revisions, newest first.",
    click.option("-v", "--verbose", is_flag=True, help="Show each revision's details."),
)
def history(ctx: click.Context, verbose: bool) -> None:
    """List convostore's revisions, newest first."""
    _run(ctx, lambda command, cfg: command.history(cfg, verbose=verbose))


@_subcommand("Record REVISION without running migrations.", click.argument("revision"), _SQL)
def stamp(ctx: click.Context, revision: str, sql: bool) -> None:
    """Record REVISION in the version table without running migrations."""
    _run(ctx, lambda command, cfg: command.stamp(cfg, revision, sql=sql))


@_subcommand("Fail if the tables differ from this version's.")
def check(ctx: click.Context) -> None:
    """Fail if the database's tables differ from this convostore's schema."""
    _run(ctx, lambda command, cfg: command.check(cfg), read_only=True)
