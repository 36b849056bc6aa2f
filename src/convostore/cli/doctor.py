"""``convostore doctor``: check a database end to end and print what to fix."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from convostore.doctor import Check, diagnose

from ._common import reports_errors
from ._output import plural, print_json
from ._store import StoreOptions, run, store_options

__all__ = ["doctor"]

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "unknown": "dim", "skipped": "dim"}


@click.command(short_help="Check a database end to end and say what to fix.")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@reports_errors
def doctor(target: StoreOptions, as_json: bool) -> None:
    """Check the database: reachable, async driver, schema, a write/read/delete, settings.

    Exits with status 1 if a check fails.
    """
    store = target.open(read_only=True)
    checks: list[Check] = run(store, diagnose, check_reachable=False)
    failed = [check for check in checks if check.status == "fail"]
    if as_json:
        print_json({"ok": not failed, "checks": [check.to_dict() for check in checks]})
    else:
        console = Console(highlight=False)
        table = Table(header_style="bold")
        table.add_column("check")
        table.add_column("status")
        table.add_column("found")
        table.add_column("to fix")
        for check in checks:
            style = _STYLE.get(check.status, "")
            table.add_row(check.name, f"[{style}]{check.status}[/]", check.detail, check.fix)
        console.print(table)
        if failed:
            console.print(f"[bold red]{plural(len(failed), 'check')} failed.[/]")
        else:
            console.print("[green]No failures.[/]")
    if failed:
        raise SystemExit(1)
