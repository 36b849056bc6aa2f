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


REPO = Path(__file__).resolve().parent.parent


def base_install(root: Path) -> Path:
    """A fresh virtual environment under ``root`` with ``pip install convostore``, no extras.

    The wheel is built from this checkout without an index (the test venv has hatchling);
    its dependencies come from the package index, as for a user: so no database driver but
    aiosqlite, no Agents SDK, nothing of the test venv. Returns the environment's ``bin``.
    """
    isolated: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("CONVOSTORE_", "PYTHON", "VIRTUAL_ENV"))
    }

    def check(*argv: str | Path) -> None:
        done = run(*argv, cwd=root, env=isolated, timeout=600)
        assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"

    dist = root / "dist"
    check(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", dist, REPO,
    )  # fmt: skip
    (wheel,) = dist.glob("convostore-*.whl")
    venv = root / "venv"
    check(sys.executable, "-m", "venv", venv)
    check(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    return venv / "bin"
