"""Programs run as a user runs them: the ``convostore`` console script, examples, ``python -c``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

CONSOLE_SCRIPT = Path(sys.executable).with_name("convostore")
"""The console script installed next to this interpreter."""


def run(
    *argv: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a program and capture its text output; it does not raise if the program fails.

    The environment is this process's, without a ``CONVOSTORE_URL`` of the developer's own
    (a test that wants one passes it), with wide ``COLUMNS`` so that printed lines stay
    whole, then ``env``, where ``None`` removes a variable.
    """
    environ = {k: v for k, v in os.environ.items() if k != "CONVOSTORE_URL"}
    environ["COLUMNS"] = "200"
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def convostore(
    *args: str, cwd: Path | None = None, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``convostore *args`` (see :func:`run`)."""
    return run(CONSOLE_SCRIPT, *args, cwd=cwd, env=env)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
