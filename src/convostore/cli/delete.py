"""``convostore delete``: delete sessions, or every session of a user."""

from __future__ import annotations

import click

from convostore import PruneReport, SessionNotFoundError, SessionStore

from ._common import reports_errors
from ._destructive import confirm_destructive, print_deleted, yes_option
from ._output import plural, session_progress
from ._store import StoreOptions, run, store_options

__all__ = ["delete"]


@click.command(short_help="Delete sessions by id, or all of a user's.")
@store_options
@click.argument("session_ids", nargs=-1)
@click.option("--user", "user_id", help="Delete every session of this user (right to erasure).")
@yes_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@reports_errors
def delete(
    target: StoreOptions,
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
    store = target.open()

    async def work(store: SessionStore) -> PruneReport:
        if user_id is not None:
            with session_progress("deleting sessions", enabled=not as_json) as progress:
                return await store.delete_user(user_id, progress=progress)
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

    print_deleted(run(store, work), as_json=as_json)
