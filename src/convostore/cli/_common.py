"""What the database commands share: the URL and table options, errors, durations, output."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ConvostoreError, SessionNotFoundError
from ..store import SessionStore

__all__ = [
    "err_console",
    "open_store",
    "parse_duration",
    "print_json",
    "progress_bar",
    "run",
    "store_options",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False)

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def store_options(command: F) -> F:
    """Add ``--url``, ``--sessions-table``, ``--messages-table`` and ``--schema`` to a command."""
    command = click.option(
        "--schema",
        envvar="CONVOSTORE_SCHEMA",
        default=None,
        help="PostgreSQL schema (MySQL: database) holding the tables, as given to "
        "`convostore migrate --schema` (also CONVOSTORE_SCHEMA).",
    )(command)
    command = click.option(
        "--messages-table",
        envvar="CONVOSTORE_MESSAGES_TABLE",
        default="agent_messages",
        show_default=True,
        help="Name of the messages table (also CONVOSTORE_MESSAGES_TABLE).",
    )(command)
    command = click.option(
        "--sessions-table",
        envvar="CONVOSTORE_SESSIONS_TABLE",
        default="agent_sessions",
        show_default=True,
        help="Name of the sessions table (also CONVOSTORE_SESSIONS_TABLE).",
    )(command)
    command = click.option(
        "--url",
        envvar="CONVOSTORE_URL",
        required=True,
        help="Database URL (also CONVOSTORE_URL): sqlite:///file.db, postgresql://..., mysql://...",
    )(command)
    return command


def open_store(
    url: str, sessions_table: str, messages_table: str, schema: str | None = None
) -> SessionStore:
    """Open a store on ``url`` (it owns its engine), turning bad options into usage errors."""
    try:
        return SessionStore(
            url, sessions_table=sessions_table, messages_table=messages_table, schema=schema
        )
    except ConvostoreError as exc:
        raise click.UsageError(str(exc)) from exc


def run(
    store: SessionStore,
    work: Callable[[SessionStore], Awaitable[T]],
    *,
    check_reachable: bool = True,
) -> T:
    """Run ``work(store)`` to the end, closing the store; errors become clear messages.

    Any error exits with status 1 and one line on standard error, never a traceback and
    never the URL's password. With ``check_reachable``, the database is first connected to
    once, so an unreachable server is reported at once.
    """
    url = store.engine.url.render_as_string(hide_password=True)

    async def main() -> T:
        try:
            if check_reachable:
                # One try, no retries: an operator wants to hear at once that the server is
                # down, not after the store's retry budget for lost connections is spent.
                try:
                    async with store.engine.connect():
                        pass
                except (OSError, SQLAlchemyError) as exc:
                    detail = getattr(exc, "orig", None) or exc
                    raise click.ClickException(
                        f"cannot reach the database at {url}: {type(detail).__name__}: {detail}"
                    ) from exc
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except SessionNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    except ConvostoreError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    except (OSError, SQLAlchemyError) as exc:
        # Connection refused, unknown host, authentication failed, unknown database...
        detail = getattr(exc, "orig", None) or exc
        raise click.ClickException(
            f"cannot use the database at {url}: {type(detail).__name__}: {detail}"
        ) from exc


def parse_duration(text: str) -> dt.timedelta:
    """Return the duration written as ``30d``, ``12h``, ``1w2d``, ``90m`` or ``45s``.

    Raises:
        click.BadParameter: The text is not such a duration, or is zero.
    """
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not parts or _DURATION_PART.sub("", compact).strip():
        raise click.BadParameter(
            f"{text!r} is not a duration: use a number and a unit, such as 30d, 12h, 90m, "
            f"45s or 1w2d (s=seconds, m=minutes, h=hours, d=days, w=weeks)"
        )
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} is zero; give a positive duration")
    return dt.timedelta(seconds=seconds)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A click parameter type for :func:`parse_duration`."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> dt.timedelta:
        """Parse the option's text."""
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_duration(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def print_json(value: Any) -> None:
    """Write ``value`` as JSON on standard output."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def progress_bar(*, enabled: bool = True) -> Progress:
    """A progress display on standard error (standard output stays clean for data)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not enabled,
    )
