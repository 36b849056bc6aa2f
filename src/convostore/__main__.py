"""``python -m convostore``: the same as the ``convostore`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main(prog_name="convostore")
