"""``convostore prune``: delete sessions not updated for a while."""

from __future__ import annotations

import datetime as dt

import click

from .._db.schema import utcnow
from .._records import PruneReport
from .._store import SessionStore
from ._common import (
    Duration,
    confirm_destructive,
    describe_duration,
    open_store,
    plural,
    print_json,
    progress_bar,
    run,
    store_options,
)

__all__ = ["prune"]


@click.command(short_help="Delete sessions not updated for a while.")
@store_options
@click.option(
    "--older-than",
    type=Duration(),
    required=True,
    help="Delete sessions not updated for this long: 30d, 12h, 90min, 6mo, 1y, 1w2d.",
)
@click.option("--user", "user_id", help="Only this user's sessions.")
@click.option("--dry-run", is_flag=True, help="Delete nothing; report what would be deleted.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Sessions per transaction.",
)
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def prune(
    url: str,
    sessions_table: str,
    messages_table: str,
    schema: str | None,
    older_than: dt.timedelta,
    user_id: str | None,
    dry_run: bool,
    batch_size: int,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete whole sessions not updated for --older-than, in short batches."""
    since = (utcnow() - older_than).strftime("%Y-%m-%d %H:%M UTC")
    which = f"session{f' of user {user_id!r}' if user_id else ''}"
    span = f"not updated for {describe_duration(older_than)} (since {since})"
    if not dry_run:
        confirm_destructive(f"Delete every {which} {span}?", yes=yes)
    store = open_store(url, sessions_table, messages_table, schema)

    async def work(store: SessionStore) -> PruneReport:
        with progress_bar(enabled=not as_json) as bar:
            task = bar.add_task("pruning sessions" if not dry_run else "counting", total=None)
            return await store.prune(
                older_than,
                user_id=user_id,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=lambda sessions, _items: bar.advance(task, sessions),
            )

    report = run(store, work)
    if as_json:
        print_json(report.to_dict())
        return
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(
        f"{verb} {plural(report.sessions, 'session')} ({plural(report.items, 'item')}) {span}."
    )
