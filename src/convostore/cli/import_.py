"""``convostore import``: read sessions written by ``convostore export``."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import IO, Any

import click

from convostore import ImportReport, SessionStore

from ._common import reports_errors
from ._output import err_console, print_json, progress_bar
from ._store import StoreOptions, run, store_options

__all__ = ["import_command"]


@click.command("import", short_help="Import sessions from JSON Lines.")
@store_options
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Leave sessions that already exist as they are (default: stop with an error).",
)
@click.option("--create-tables", is_flag=True, help="Create the tables if they are missing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reports_errors(
    missing_tables_hint="add --create-tables to create them, or run "
    "`convostore migrate upgrade head` first",
    # Sessions are written in whole transactions, a group at a time, after their lines are
    # read: a group not yet written is dropped, none is stored in part.
    interrupted="Interrupted: sessions already written stay stored, none in part; import the "
    "same input again with --skip-existing to finish.",
)
def import_command(
    target: StoreOptions,
    source: IO[str],
    skip_existing: bool,
    create_tables: bool,
    as_json: bool,
) -> None:
    """Import sessions from SOURCE, a JSON Lines file (- for standard input), as exported."""
    if source.isatty():
        err_console.print(
            "Reading sessions from standard input (end with Ctrl-D; or give a file name)."
        )
    store = target.open()
    try:
        total: int | None = os.fstat(source.fileno()).st_size or None
    except (OSError, ValueError, AttributeError):
        total = None

    async def work(store: SessionStore) -> ImportReport:
        if create_tables:
            await store.create_tables()
        with progress_bar() as bar:
            task = bar.add_task("importing (bytes)", total=total)

            def lines() -> Iterator[str]:
                while True:
                    with _interruptible():
                        line = source.readline()
                    if not line:
                        return
                    # Characters, not bytes, but close enough for a progress bar.
                    bar.advance(task, len(line))
                    yield line

            return await store.import_(lines(), on_existing="skip" if skip_existing else "error")

    report = run(store, work)
    if as_json:
        print_json(report.to_dict())
        return
    click.echo(f"Imported {report.sessions:,} sessions, {report.items:,} items.")
    if report.skipped:
        click.echo(f"Skipped {len(report.skipped):,} sessions that already existed.")


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
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
