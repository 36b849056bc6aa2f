"""``convostore export``: write sessions as JSON Lines."""

from __future__ import annotations

from typing import IO

import click

from convostore import ExportReport, SessionStore

from ._common import reports_errors
from ._output import err_console, print_json, session_progress
from ._store import StoreOptions, run, store_options

__all__ = ["export"]


@click.command(short_help="Export sessions as JSON Lines.")
@store_options
@click.option(
    "-o",
    "--output",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    show_default=True,
    help="File to write; - is standard output.",
)
@click.option("--session", "session_ids", multiple=True, help="Export this session (repeatable).")
@click.option("--user", "user_id", help="Export this user's sessions.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as JSON (on stderr when the export goes to stdout).",
)
@reports_errors
def export(
    target: StoreOptions,
    output: IO[str],
    session_ids: tuple[str, ...],
    user_id: str | None,
    as_json: bool,
) -> None:
    """Export sessions (all, some, or a user's) as JSON Lines, one session per line."""
    if session_ids and user_id:
        raise click.UsageError("give --session or --user, not both")
    store = target.open(read_only=True)
    to_stdout = getattr(output, "name", "-") in ("-", "<stdout>")

    async def work(store: SessionStore) -> ExportReport:
        if session_ids:
            total = len(session_ids)
        else:
            total = (await store.count_sessions(user_id=user_id))[0]
        with session_progress("exporting sessions", total=total) as progress:
            report = await store.export(
                output, session_ids=session_ids or None, user_id=user_id, progress=progress
            )
        output.flush()
        return report

    report = run(store, work)
    if as_json and to_stdout:
        err_console.print_json(data=report.to_dict())
    elif as_json:
        print_json(report.to_dict())
    else:
        where = "" if to_stdout else f" to {output.name}"
        err_console.print(f"Exported {report.sessions:,} sessions, {report.items:,} items{where}.")
