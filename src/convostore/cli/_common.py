"""What the database commands share: the URL and table options, errors, durations, output."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .._db.dialect import describe_connect_failure
from .._store import SessionStore
from ..errors import ConvostoreError, SchemaError, SessionNotFoundError

__all__ = [
    "confirm_destructive",
    "connect_failure_text",
    "describe_duration",
    "err_console",
    "interruptible",
    "open_store",
    "parse_duration",
    "plural",
    "print_json",
    "progress_bar",
    "require_existing_sqlite_file",
    "run",
    "store_options",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False)


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
    url: str,
    sessions_table: str,
    messages_table: str,
    schema: str | None = None,
    *,
    read_only: bool = False,
) -> SessionStore:
    """Open a store on ``url`` (it owns its engine), turning bad options into usage errors.

    With ``read_only``, a SQLite URL must name a file that exists: a command that only
    reads must not leave an empty database behind a mistyped path.
    """
    if read_only:
        require_existing_sqlite_file(url)
    try:
        return SessionStore(
            url, sessions_table=sessions_table, messages_table=messages_table, schema=schema
        )
    except ConvostoreError as exc:
        raise click.UsageError(str(exc)) from exc


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
    missing_tables_hint: str = "run `convostore migrate upgrade head`",
) -> T:
    """Run ``work(store)`` to the end, closing the store; errors become clear messages.

    Any error exits with status 1 and one line on standard error, never a traceback and
    never the URL's password. With ``check_reachable``, the database is first connected to
    once, so an unreachable server is reported at once. Missing tables are reported with
    ``missing_tables_hint``, in the command's own terms.
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
                    raise click.ClickException(connect_failure_text(exc, url)) from exc
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except SessionNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    except SchemaError as exc:
        if exc.detail is None:
            raise click.ClickException(str(exc)) from exc
        raise click.ClickException(
            f"the convostore tables are missing or out of date in {url} ({exc.detail}): "
            f"{missing_tables_hint}"
        ) from exc
    except ConvostoreError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    except (OSError, SQLAlchemyError) as exc:
        # Connection refused, unknown host, authentication failed, unknown database...
        raise click.ClickException(connect_failure_text(exc, url)) from exc


def connect_failure_text(exc: BaseException, url: str) -> str:
    """One line for a database error: nothing answered at the address, or what it said."""
    reached, text = describe_connect_failure(exc)
    if reached:
        return f"the database at {url} answered with an error: {text}"
    return f"cannot reach the database server at {url}: {text}"


# Every unit a duration may be written in, with its length. Bare "m" and "M" are refused:
# one reader takes them for minutes, another for months (see parse_duration).
_UNITS: dict[str, int] = {}
for _names, _seconds in (
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("min", "mins", "minute", "minutes"), 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "wk", "wks", "week", "weeks"), 7 * 86400),
    (("mo", "mon", "month", "months"), 30 * 86400),
    (("y", "yr", "yrs", "year", "years"), 365 * 86400),
):
    for _name in _names:
        _UNITS[_name] = _seconds
_DURATION_PART = re.compile(r"(\d+)\s*([a-zA-Z]+)")
_DURATION_HELP = (
    "use numbers with units, such as 30d, 12h, 90min, 6mo, 1y or 1w2d (s, min, h, d, w, "
    "mo = 30 days, y = 365 days; units may be spelled out: 30 days, 6 months)"
)


def parse_duration(text: str) -> dt.timedelta:
    """Return the duration written as ``30d``, ``12h``, ``90min``, ``6mo``, ``1y`` or ``1w2d``.

    Units may be spelled out (``30 days``, ``6 months``); a month is 30 days and a year 365.

    Raises:
        click.BadParameter: The text is not such a duration, uses the ambiguous unit ``m``
            or ``M``, or is zero.
    """
    compact = text.strip()
    parts = _DURATION_PART.findall(compact)
    if not parts or _DURATION_PART.sub("", compact).strip(" ,"):
        raise click.BadParameter(f"{text!r} is not a duration: {_DURATION_HELP}")
    seconds = 0
    for number, unit in parts:
        if unit in ("m", "M"):
            raise click.BadParameter(
                f"{text!r} is ambiguous: write {number}min for minutes or {number}mo for months"
            )
        length = _UNITS.get(unit.lower())
        if length is None:
            raise click.BadParameter(f"{text!r} has an unknown unit {unit!r}: {_DURATION_HELP}")
        seconds += int(number) * length
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} is zero; give a positive duration")
    return dt.timedelta(seconds=seconds)


def describe_duration(duration: dt.timedelta) -> str:
    """Return ``duration`` as people write it: ``30 days``, ``1 day 12 hours``, ``90 minutes``."""
    seconds = int(duration.total_seconds())
    parts = []
    for name, length in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, length)
        if count:
            parts.append(plural(count, name))
    return " ".join(parts) or "0 seconds"


def plural(count: int, noun: str) -> str:
    """Return ``1 session``, ``2 sessions``, ``1,000 items``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def confirm_destructive(question: str, *, yes: bool) -> None:
    """Ask ``question`` on a terminal before deleting; without one, require ``--yes``.

    Raises:
        click.ClickException: Standard input is not a terminal and ``--yes`` was not given.
        click.Abort: The user answered no.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.ClickException(
            f"not confirmed: {question.rstrip('?')} needs --yes when there is no terminal to ask on"
        )
    click.confirm(question, abort=True, err=True)


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


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Let Ctrl-C interrupt a blocking read inside the event loop (a terminal, a pipe).

    While a coroutine runs, asyncio turns Ctrl-C into a cancellation that a blocking call
    never sees, so a read of standard input ignored it. Inside this block Ctrl-C raises
    ``KeyboardInterrupt`` at once, as in a plain program; outside, asyncio's handling stays.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def print_json(value: Any) -> None:
    """Write ``value`` as JSON on standard output."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def progress_bar(*, enabled: bool = True) -> Progress:
    """A progress display on standard error (standard output stays clean for data).

    Shown only when standard error is a terminal: piped or logged output gets the summary
    line alone.
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not enabled or not err_console.is_terminal,
    )
