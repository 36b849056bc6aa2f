"""A database URL whose driver is not installed gets one line naming the extra to install.

Most tests make the driver unimportable in a child interpreter (an import of a module set
to ``None`` in ``sys.modules`` fails as for a package that is not installed); the slow ones
run a fresh virtual environment with nothing but ``pip install convostore``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._programs import base_install, run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
POSTGRES = ("postgresql://app@127.0.0.1/db", "pip install 'convostore[postgres]'")
MYSQL = ("mysql://app@127.0.0.1/db", "pip install 'convostore[mysql]'")
AGENTS = "pip install 'convostore[agents]'"

# Every command that opens a database, each as a user would type it (ids, stdin, --yes).
COMMANDS = [
    ["sessions", "list"],
    ["sessions", "show", "conv-1"],
    ["export"],
    ["import", "-"],
    ["prune", "--older-than", "30d", "--yes"],
    ["delete", "conv-1", "--yes"],
    ["doctor"],
    ["migrate", "upgrade", "head"],
    ["migrate", "downgrade", "base", "--yes"],
    ["migrate", "current"],
    ["migrate", "stamp", "head"],
    ["migrate", "check"],
]
# Sync drivers, which only ``migrate`` takes, and what installs each.
SYNC_URLS = [
    ("postgresql+psycopg2://app@127.0.0.1/db", "pip install psycopg2-binary"),
    ("mysql+pymysql://app@127.0.0.1/db", "pip install 'convostore[mysql]'"),
    ("mysql+mysqldb://app@127.0.0.1/db", "pip install mysqlclient"),
]


def one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one line a failed program printed, checked to contain ``words``; no traceback."""
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0, lines
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, lines
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


BLOCK = "import sys; sys.modules[{name!r}] = None\n"


@pytest.mark.parametrize(
    ("driver", "url", "extra"),
    [
        ("asyncpg", "postgresql://app@127.0.0.1/db", "pip install 'convostore[postgres]'"),
        ("aiomysql", "mysql://app@127.0.0.1/db", "pip install 'convostore[mysql]'"),
        ("asyncmy", "mysql+asyncmy://app@127.0.0.1/db", "pip install 'convostore[asyncmy]'"),
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
    "argv",
    [*COMMANDS, pytest.param(["demo"], marks=pytest.mark.slow)],  # the demo imports the SDK
    ids=" ".join,
)
def test_cli_says_which_extra_in_one_line(argv: list[str], tmp_path: Path) -> None:
    full = [*argv, "--url", POSTGRES[0]]
    program = BLOCK.format(name="asyncpg") + f"from convostore.cli import main\nmain({full!r})\n"
    done = run(sys.executable, "-c", program, cwd=tmp_path)
    assert one_line(done, POSTGRES[1]).startswith("Error: ")


@pytest.mark.parametrize(("url", "extra"), SYNC_URLS)
@pytest.mark.parametrize("argv", [["migrate", "upgrade", "head"], ["migrate", "current"]])
def test_migrate_names_a_missing_sync_driver(
    argv: list[str], url: str, extra: str, tmp_path: Path
) -> None:
    block = "".join(BLOCK.format(name=name) for name in ("psycopg2", "pymysql", "MySQLdb"))
    program = block + f"from convostore.cli import main\nmain({[*argv, '--url', url]!r})\n"
    done = run(sys.executable, "-c", program, cwd=tmp_path)
    assert one_line(done, extra).startswith("Error: ")


@pytest.mark.slow  # each imports the Agents SDK
@pytest.mark.parametrize(
    ("example", "driver", "url", "extra"),
    [
        ("agents_postgres.py", "asyncpg", *POSTGRES),
        ("agents_postgres.py", "aiomysql", *MYSQL),
        ("agents_sqlite.py", "asyncpg", *POSTGRES),
        ("web_chat.py", "aiomysql", *MYSQL),
    ],
)
def test_examples_say_which_extra_in_one_line(
    example: str, driver: str, url: str, extra: str, tmp_path: Path
) -> None:
    program = BLOCK.format(name=driver) + (
        f"import runpy; runpy.run_path({str(EXAMPLES / example)!r}, run_name='__main__')\n"
    )
    done = run(sys.executable, "-c", program, cwd=tmp_path, env={"DATABASE_URL": url})
    one_line(done, extra, driver)


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


# -- a base install: pip install convostore, no extras ----------------------------------------


@pytest.fixture(scope="module")
def base_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return base_install(tmp_path_factory.mktemp("base-install"))


def in_base(*argv: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a program of the base install, away from the test venv's settings."""
    isolated: dict[str, str | None] = {"VIRTUAL_ENV": None, "PYTHONPATH": None, **env}
    return run(*argv, cwd=cwd, env=isolated)


@pytest.mark.slow
def test_a_base_install_has_no_server_driver(base_bin: Path, tmp_path: Path) -> None:
    done = in_base(base_bin / "python", "-m", "pip", "list", cwd=tmp_path)
    installed = {line.split()[0].lower() for line in done.stdout.splitlines()[2:]}
    assert "convostore" in installed
    assert not installed & {"asyncpg", "aiomysql", "pymysql", "psycopg2", "openai-agents"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "extra", "commands"),
    [
        (*POSTGRES, COMMANDS),
        (*MYSQL, [["sessions", "list"], ["doctor"], ["migrate", "upgrade", "head"]]),
    ],
    ids=["postgresql", "mysql"],
)
def test_a_base_install_names_the_extra_in_every_command(
    base_bin: Path, url: str, extra: str, commands: list[list[str]], tmp_path: Path
) -> None:
    for argv in commands:
        done = in_base(base_bin / "convostore", *argv, "--url", url, cwd=tmp_path)
        assert one_line(done, extra).startswith("Error: "), argv
    # The demo needs the Agents SDK first: that is the extra it names.
    done = in_base(base_bin / "convostore", "demo", "--url", url, cwd=tmp_path)
    one_line(done, AGENTS)
    assert not list(tmp_path.iterdir())  # nothing was created on the way


@pytest.mark.slow
@pytest.mark.parametrize(("url", "extra"), SYNC_URLS)
def test_a_base_install_names_a_missing_sync_driver(
    base_bin: Path, url: str, extra: str, tmp_path: Path
) -> None:
    for argv in (["migrate", "upgrade", "head"], ["migrate", "current"]):
        done = in_base(base_bin / "convostore", *argv, "--url", url, cwd=tmp_path)
        assert one_line(done, extra).startswith("Error: "), argv


@pytest.mark.slow
def test_a_base_install_library_and_examples_name_the_extra(base_bin: Path, tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from convostore import MissingDependencyError, SessionStore, SQLAlchemySession\n"
        "from convostore import engine_from_url\n"
        "for make in (lambda: SQLAlchemySession.from_url('x', url=sys.argv[1]),\n"
        "             lambda: SessionStore(sys.argv[1]), lambda: engine_from_url(sys.argv[1])):\n"
        "    try:\n"
        "        make()\n"
        "    except MissingDependencyError as exc:\n"
        "        print(exc)\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
    )
    for url, extra in (POSTGRES, MYSQL):
        done = in_base(base_bin / "python", "-c", program, url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 3, lines
        assert all(extra in line for line in lines), lines
    for example in ("agents_postgres.py", "agents_sqlite.py", "web_chat.py"):
        done = in_base(
            base_bin / "python",
            EXAMPLES / example,
            cwd=tmp_path,
            DATABASE_URL=POSTGRES[0],
        )
        one_line(done, "pip install 'convostore[agents]'")
    done = in_base(base_bin / "python", EXAMPLES / "quickstart.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
