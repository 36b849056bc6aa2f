"""The store a database command works on: the options that pick it, opening it, running on it.

Commands take the database URL from ``--url`` or ``CONVOSTORE_URL``, and the table names and
schema from their options or ``CONVOSTORE_*`` variables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from convostore import SessionStore

from ._common import about_database

__all__ = ["StoreOptions", "require_existing_sqlite_file", "run", "store_options"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# (option, environment variable, default, help); a default of None makes the option required.
_OPTIONS = (
    (
        "--url",
        "CONVOSTORE_URL",
        None,
        "Database URL (also CONVOSTORE_URL): sqlite:///file.db, postgresql://..., mysql://...",
    ),
    (
        "--sessions-table",
        "CONVOSTORE_SESSIONS_TABLE",
        "agent_sessions",
        "Name of the sessions table (also CONVOSTORE_SESSIONS_TABLE).",
    ),
    (
        "--messages-table",
        "CONVOSTORE_MESSAGES_TABLE",
        "agent_messages",
        "Name of the messages table (also CONVOSTORE_MESSAGES_TABLE).",
    ),
)
_SCHEMA_HELP = (
    "PostgreSQL schema (MySQL: database) holding the tables, as given to "
    "`convostore migrate --schema` (also CONVOSTORE_SCHEMA)."
)


@dataclasses.dataclass(frozen=True)
class StoreOptions:
    """The store a command was pointed at: ``--url``, the table names and the schema."""

    url: str
    """The database URL as given."""

    sessions_table: str
    """Name of the sessions table."""

    messages_table: str
    """Name of the messages table."""

    schema: str | None
    """The schema (MySQL: database) holding the tables, if not the connection's default."""

    def open(self, *, read_only: bool = False) -> SessionStore:
        """Open the store (it owns its engine) and name its database for error messages.

        With ``read_only``, a SQLite URL must name a file that exists: a command that only
        reads must not leave an empty database behind a mistyped path.
        """
        if read_only:
            require_existing_sqlite_file(self.url)
        store = SessionStore(
            self.url,
            sessions_table=self.sessions_table,
            messages_table=self.messages_table,
            schema=self.schema,
        )
        about_database(store.engine.url)
        return store


def store_options(command: F) -> F:
    """Add ``--url``, ``--sessions-table``, ``--messages-table`` and ``--schema`` to a command.

    The command receives them as one keyword argument, ``target`` (a ``StoreOptions``).
    """

    @functools.wraps(command)
    def with_target(
        *args: Any,
        url: str,
        sessions_table: str,
        messages_table: str,
        schema: str | None,
        **kwargs: Any,
    ) -> Any:
        target = StoreOptions(url, sessions_table, messages_table, schema)
        return command(*args, target=target, **kwargs)

    decorated: Callable[..., Any] = click.option(
        "--schema", envvar="CONVOSTORE_SCHEMA", default=None, help=_SCHEMA_HELP
    )(with_target)
    for flag, envvar, default, help_text in reversed(_OPTIONS):
        # No default at all, not None: click counts a default of None as a value given.
        given: dict[str, Any] = (
            {"required": True} if default is None else {"default": default, "show_default": True}
        )
        decorated = click.option(flag, envvar=envvar, help=help_text, **given)(decorated)
    return decorated  # type: ignore[return-value]


def require_existing_sqlite_file(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (read-only commands never create one).

    Raises:
        click.UsageError: The URL names a SQLite file that is not there.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # the store reports an unusable URL in its own words
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return
    if database.startswith("file:") or Path(database).exists():
        return
    raise click.UsageError(
        f"no SQLite database at {Path(database).resolve()}; check --url (this command only "
        f"reads, so it does not create the file)"
    )


def run(
    store: SessionStore,
    work: Callable[[SessionStore], Awaitable[T]],
    *,
    check_reachable: bool = True,
) -> T:
    """Run ``work(store)`` to the end in an event loop of its own, then close the store.

    With ``check_reachable``, the database is first connected to once, so an unreachable
    server is reported at once. Errors are left to ``reports_errors``.
    """

    async def main() -> T:
        try:
            if check_reachable:
                # One try, no retries: an operator wants to hear at once that the server is
                # down, not after the store's retry budget for lost connections is spent.
                async with store.engine.connect():
                    pass
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())
