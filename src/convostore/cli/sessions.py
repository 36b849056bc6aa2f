"""``convostore sessions``: list sessions and read one as a transcript."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from convostore import ItemPage, SessionInfo, SessionPage, SessionStore

from ._common import reports_errors
from ._durations import Duration
from ._output import print_json
from ._store import StoreOptions, run, store_options

__all__ = ["sessions"]


@click.group(short_help="List sessions and show their history.")
def sessions() -> None:
    """List sessions and show their history."""


@sessions.command("list")
@store_options
@click.option("--user", "user_id", help="Only this user's sessions.")
@click.option(
    "--updated-within",
    type=Duration(),
    help="Only sessions updated within this long (30d, 12h, ...).",
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Page size."
)
@click.option("--cursor", help="The next-page cursor printed by the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@reports_errors
def list_command(
    target: StoreOptions,
    user_id: str | None,
    updated_within: dt.timedelta | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List sessions, most recently updated first, a page at a time."""
    store = target.open(read_only=True)
    after = dt.datetime.now(dt.timezone.utc) - updated_within if updated_within else None

    async def work(store: SessionStore) -> SessionPage:
        return await store.list_sessions(
            user_id=user_id, updated_after=after, limit=limit, cursor=cursor
        )

    page = run(store, work)
    if as_json:
        print_json(
            {
                "sessions": [info.to_dict() for info in page.sessions],
                "next_cursor": page.next_cursor,
            }
        )
        return
    console = Console(highlight=False)
    if not page.sessions:
        console.print("No sessions.")
        return
    rows = [
        (
            info.session_id,
            info.user_id or "",
            str(info.metadata.get("title", "")),
            f"{info.item_count:,}",
            _when(info.updated_at),
            _when(info.created_at),
        )
        for info in page.sessions
    ]
    headers = ("session", "user", "title", "items", "updated (UTC)", "created (UTC)")
    if not console.is_terminal:
        # Piped or redirected: whole values, one line per session, tab-separated.
        for row in (headers, *rows):
            click.echo("\t".join(row))
        if page.next_cursor:
            click.echo(f"More: --cursor {page.next_cursor}")
        return
    table = Table(header_style="bold")
    for header in headers:
        # Ids and names wrap rather than lose characters: they are what users copy.
        table.add_column(
            header,
            justify="right" if header == "items" else "left",
            overflow="fold",
            no_wrap=header in ("items",),
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}")


@sessions.command("show")
@store_options
@click.argument("session_id")
@click.option(
    "--last",
    type=click.IntRange(1),
    help="Show only the latest N items (default: the whole conversation).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@reports_errors
def show_command(
    target: StoreOptions,
    session_id: str,
    last: int | None,
    as_json: bool,
) -> None:
    """Show one session: its record and its items as a readable transcript."""
    store = target.open(read_only=True)
    console = Console(highlight=False)

    async def pages(store: SessionStore) -> AsyncIterator[ItemPage]:
        if last is not None:
            yield await store.get_page(session_id, limit=last)
            return
        after = -1
        while True:
            page = await store.get_page(session_id, after=after, limit=1000)
            yield page
            if not page.has_more or page.last_position is None:
                return
            after = page.last_position

    async def as_document(store: SessionStore) -> dict[str, Any]:
        info = await store.require_session_info(session_id)
        items = [
            {"position": e.position, "item": e.item}
            async for page in pages(store)
            for e in page.items
        ]
        return {**info.to_dict(), "items": items}

    async def as_transcript(store: SessionStore) -> None:
        # Printed a page at a time: a long conversation never has to fit in memory.
        info = await store.require_session_info(session_id)
        _print_header(console, info)
        async for page in pages(store):
            for entry in page.items:
                label, style, text = _describe(entry.item)
                line = Text(f"{entry.position:>6}  {label:>12}  ", style=f"bold {style}")
                line.append(text, style=style if label != "assistant" else "")
                console.print(line)

    if as_json:
        print_json(run(store, as_document))
    else:
        run(store, as_transcript)


def _print_header(console: Console, info: SessionInfo) -> None:
    console.print(f"[bold]session[/]  {info.session_id}")
    if info.user_id:
        console.print(f"[bold]user[/]     {info.user_id}")
    if info.metadata:
        console.print(f"[bold]metadata[/] {info.metadata}")
    console.print(
        f"[bold]items[/]    {info.item_count:,}   [bold]created[/] {_when(info.created_at)}   "
        f"[bold]updated[/] {_when(info.updated_at)}"
    )
    console.print()


def _describe(item: Any) -> tuple[str, str, str]:
    from .demo import describe_item

    if not isinstance(item, dict):
        return "item", "dim", repr(item)
    return describe_item(item)


def _when(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
