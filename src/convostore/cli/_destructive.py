"""What the commands that destroy data share: ``--yes``, asking first, saying what went."""

from __future__ import annotations

import sys

import click

from convostore import PruneReport

from ._output import plural, print_json

__all__ = ["confirm_destructive", "print_deleted", "yes_option"]

yes_option = click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
"""The ``--yes`` flag of a command that asks before it destroys data."""


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


def print_deleted(
    report: PruneReport, *, as_json: bool, verb: str = "Deleted", which: str = ""
) -> None:
    """Print what was deleted: the report as JSON, or one line such as ``Deleted 2 sessions``.

    Args:
        report: What the deletion covered.
        as_json: Print the whole report as JSON instead of the line.
        verb: How the line starts (``Would delete`` for a dry run).
        which: Said after the counts, such as ``not updated for 30 days``.
    """
    if as_json:
        print_json(report.to_dict())
        return
    counts = f"{plural(report.sessions, 'session')} ({plural(report.items, 'item')})"
    click.echo(f"{verb} {counts}{f' {which}' if which else ''}.")
