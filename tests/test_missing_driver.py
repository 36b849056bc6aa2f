"""A database URL whose driver is not installed gets one line naming the extra to install.

The driver is made unimportable in a child interpreter (an import of a module set to
``None`` in ``sys.modules`` fails as for a package that is not installed).
"""

from __future__ import annotations

import sys

import pytest

from ._programs import run

BLOCK = "import sys; sys.modules[{name!r}] = None\n"


@pytest.mark.parametrize(
    ("driver", "url", "extra"),
    [
        ("asyncpg", "postgresql://app@127.0.0.1/db", "pip install 'convostore[postgres]'"),
        ("aiomysql", "mysql://app@127.0.0.1/db", "pip install 'convostore[mysql]'"),
    ],
)
def test_library_names_the_extra(driver: str, url: str, extra: str) -> None:
    program = BLOCK.format(name=driver) + (
        "from convostore import MissingDependencyError, SQLAlchemySession, SessionStore\n"
        f"for make in (lambda: SQLAlchemySession.from_url('x', url={url!r}),\n"
        f"             lambda: SessionStore({url!r})):\n"
        "    try:\n"
        "        make()\n"
        "    except MissingDependencyError as exc:\n"
        "        assert isinstance(exc, ImportError)\n"
        f"        assert exc.package == {driver!r}, exc.package\n"
        "        print(exc)\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
    )
    done = run(sys.executable, "-c", program)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all(extra in line and driver in line for line in lines)


@pytest.mark.parametrize(
    "argv", [["sessions", "list"], ["export"], ["prune", "--older-than", "30d", "--yes"]]
)
def test_cli_says_which_extra_in_one_line(argv: list[str]) -> None:
    full = [*argv, "--url", "postgresql://app@127.0.0.1/db"]
    program = BLOCK.format(name="asyncpg") + f"from convostore.cli import main\nmain({full!r})\n"
    done = run(sys.executable, "-c", program)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "pip install 'convostore[postgres]'" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("Error")]) == 1


def test_encryption_names_its_extra() -> None:
    program = BLOCK.format(name="cryptography") + (
        "from convostore import EncryptedSession, MissingDependencyError, SQLAlchemySession\n"
        "inner = SQLAlchemySession.from_url('x', url='sqlite://')\n"
        "try:\n"
        "    EncryptedSession(inner, keys=['k'])\n"
        "except MissingDependencyError as exc:\n"
        "    assert isinstance(exc, ImportError)\n"
        "    assert exc.package == 'cryptography', exc.package\n"
        "    print(exc.extra)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    done = run(sys.executable, "-c", program)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pip install 'convostore[encryption]'"
