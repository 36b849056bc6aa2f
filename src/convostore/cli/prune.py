"""``convostore prune``: delete sessions not updated for a while."""

from __future__ import annotations

import datetime as dt

import click

from convostore import PruneReport, SessionStore

from ._common import reports_errors
from ._destructive import confirm_destructive, print_deleted, yes_option
from ._durations import Duration, describe_duration
from ._output import session_progress
from ._store import StoreOptions, run, store_options

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
@yes_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reports_errors
def prune(
    target: StoreOptions,
    older_than: dt.timedelta,
    user_id: str | None,
    dry_run: bool,
    batch_size: int,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete whole sessions not updated for --older-than, in short batches."""
    since = (dt.datetime.now(dt.timezone.utc) - older_than).strftime("%Y-%m-%d %H:%M UTC")
    which = f"session{f' of user {user_id!r}' if user_id else ''}"
    span = f"not updated for {describe_duration(older_than)} (since {since})"
    if not dry_run:
        confirm_destructive(f"Delete every {which} {span}?", yes=yes)
    store = target.open()

    async def work(store: SessionStore) -> PruneReport:
        description = "counting" if dry_run else "pruning sessions"
        with session_progress(description, enabled=not as_json) as progress:
            return await store.prune(
                older_than,
                user_id=user_id,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress,
            )

    verb = "Would delete" if dry_run else "Deleted"
    print_deleted(run(store, work), as_json=as_json, verb=verb, which=span)
