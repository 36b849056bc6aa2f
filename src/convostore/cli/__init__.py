"""The ``convostore`` command line (also ``python -m convostore``).

Each command lives in a module of its own in this package and is registered below.
Commands take the database URL from ``--url`` or the ``CONVOSTORE_URL`` environment variable.
"""

from __future__ import annotations

import logging

import click

from convostore import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convostore")
def main() -> None:
    """convostore: the conversation session store for AI agents."""
    # asyncmy logs each note the server sends at WARNING (MariaDB notes, for instance, that it
    # ignores the name of every primary key the migrations create). They say nothing a user
    # can act on, and with no logging set up Python would print them between our own lines.
    logging.getLogger("asyncmy").setLevel(logging.ERROR)


def _register() -> None:
    # One line per command module; each module exposes one click command or group.
    from .demo import demo

    main.add_command(demo)
    from .migrate import migrate

    main.add_command(migrate)
    from .sessions import sessions

    main.add_command(sessions)
    from .export import export

    main.add_command(export)
    from .import_ import import_command

    main.add_command(import_command)
    from .prune import prune

    main.add_command(prune)
    from .delete import delete

    main.add_command(delete)
    from .doctor import doctor

    main.add_command(doctor)
    from .layout import layout

    main.add_command(layout)


_register()
