"""What the commands print besides their data: the error console, JSON, counts, progress.

Data goes to standard output; progress and notes go to standard error, so a command's
output can be piped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

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

__all__ = ["err_console", "plural", "print_json", "progress_bar", "session_progress"]

err_console = Console(stderr=True, highlight=False)
"""The console on standard error: progress, notes and summaries next to piped data."""


def plural(count: int, noun: str) -> str:
    """Return ``1 session``, ``2 sessions``, ``1,000 items``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


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


@contextlib.contextmanager
def session_progress(
    description: str, *, total: int | None = None, enabled: bool = True
) -> Iterator[Callable[[int, int], None]]:
    """Show a bar counting sessions; yield the ``progress`` callback the store's methods take.

    The store calls it with the sessions and items of each batch; the bar counts sessions.
    """
    with progress_bar(enabled=enabled) as bar:
        task = bar.add_task(description, total=total)
        yield lambda sessions, _items: bar.advance(task, sessions)
