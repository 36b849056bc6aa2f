"""``convostore delete``: delete sessions, or every session of a user."""

from __future__ import annotations

import click

from .._records import PruneReport
from .._store import SessionStore
from ..errors import SessionNotFoundError
from ._common import (
    confirm_destructive,
    open_store,
    plural,
    print_json,
    progress_bar,
    run,
    store_options,
)

__all__ = ["delete"]


@click.command(short_help="Delete sessions by id, or all of a user's.")
@store_options
@click.argument("session_ids", nargs=-1)
@click.option("--user", "user_id", help="Delete every session of this user (right to erasure).")
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def delete(
    url: str,
    sessions_table: str,
    messages_table: str,
    schema: str | None,
    session_ids: tuple[str, ...],
    user_id: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete the sessions named, or with --user every session of a user."""
    if bool(session_ids) == bool(user_id):
        raise click.UsageError("give session ids or --user (one of the two)")
    if user_id:
        confirm_destructive(f"Delete every session of user {user_id!r}?", yes=yes)
    else:
        named = ", ".join(map(repr, session_ids))
        confirm_destructive(f"Delete {plural(len(session_ids), 'session')} ({named})?", yes=yes)
    store = open_store(url, sessions_table, messages_table, schema)

    async def work(store: SessionStore) -> PruneReport:
        if user_id is not None:
            with progress_bar(enabled=not as_json) as bar:
                task = bar.add_task("deleting sessions", total=None)
                return await store.delete_user(
                    user_id, progress=lambda sessions, _items: bar.advance(task, sessions)
                )
        report = PruneReport()
        missing = []
        for session_id in session_ids:
            info = await store.get_session_info(session_id)
            if info is None or not await store.delete_session(session_id):
                missing.append(session_id)
                continue
            report.sessions += 1
            report.items += info.item_count
            report.session_ids.append(session_id)
        if missing:
            raise SessionNotFoundError(
                f"no session with id {', '.join(map(repr, missing))}"
                + (f" (deleted {report.sessions} others)" if report.sessions else "")
            )
        return report

    report = run(store, work)
    if as_json:
        print_json(report.to_dict())
        return
    click.echo(f"Deleted {plural(report.sessions, 'session')} ({plural(report.items, 'item')}).")
