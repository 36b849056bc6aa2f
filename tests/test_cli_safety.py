"""The CLI as a new user meets it: units that mean one thing, confirmation before deleting,
read-only commands that never create a database, options where the user puts them."""

from __future__ import annotations

import datetime as dt
import os
import pty
import signal
import subprocess
import time
import uuid
from pathlib import Path

import click
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SessionStore, SQLAlchemySession
from convostore.cli._durations import describe_duration, parse_duration

from ._programs import CONSOLE_SCRIPT, convostore


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", dt.timedelta(days=30)),
        ("30 days", dt.timedelta(days=30)),
        ("1w2d", dt.timedelta(days=9)),
        ("1 week, 2 days", dt.timedelta(days=9)),
        ("6mo", dt.timedelta(days=180)),
        ("6 months", dt.timedelta(days=180)),
        ("1y", dt.timedelta(days=365)),
        ("2 years", dt.timedelta(days=730)),
        ("90min", dt.timedelta(minutes=90)),
        ("12h", dt.timedelta(hours=12)),
        ("45s", dt.timedelta(seconds=45)),
        ("1D", dt.timedelta(days=1)),
    ],
)
def test_durations_people_write(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["6m", "1M", "3 m", "10x", "month", "", "0d", "-3d"])
def test_ambiguous_or_wrong_durations_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_duration(text)


def test_durations_are_printed_in_words() -> None:
    assert describe_duration(dt.timedelta(days=30)) == "30 days"
    assert describe_duration(dt.timedelta(days=1, hours=12)) == "1 day 12 hours"
    assert describe_duration(dt.timedelta(minutes=90)) == "1 hour 30 minutes"


async def _sqlite_store_with(path: Path, *session_ids: str) -> None:
    async with SessionStore(f"sqlite:///{path}", create_tables=True) as store:
        for sid in session_ids:
            await store.session(sid).add_items([{"role": "user", "content": sid}])


def _on_a_terminal(argv: list[str], answer: str) -> tuple[int, str]:
    """Run the CLI with a terminal as standard input, typing ``answer``."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [CONSOLE_SCRIPT, *argv],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(leader, answer.encode())
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out + err
    finally:
        os.close(leader)
        os.close(follower)


@pytest.mark.parametrize(
    "command",
    [["prune", "--older-than", "1s"], ["delete", "keep"], ["delete", "--user", "nobody"]],
)
async def test_destructive_commands_ask_on_a_terminal(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "ask.db"
    await _sqlite_store_with(db, "keep")
    await _sqlite_store_with(db)
    url = ["--url", f"sqlite:///{db}"]
    code, output = _on_a_terminal([*command, *url], "n\n")
    assert code == 1, output
    assert "Aborted" in output
    async with SessionStore(f"sqlite:///{db}") as store:
        assert await store.get_session_info("keep") is not None
    # Without a terminal, only --yes goes ahead.
    refused = convostore(*command, *url)
    assert refused.returncode == 1
    assert "needs --yes" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_a_yes_on_the_terminal_deletes(tmp_path: Path) -> None:
    db = tmp_path / "yes.db"
    await _sqlite_store_with(db, "gone")
    code, output = _on_a_terminal(["delete", "gone", "--url", f"sqlite:///{db}"], "y\n")
    assert code == 0, output
    assert "Deleted 1 session (1 item)." in output
    async with SessionStore(f"sqlite:///{db}") as store:
        assert await store.get_session_info("gone") is None


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions", "list"],
        ["sessions", "show", "x"],
        ["export"],
        ["doctor"],
        ["migrate", "current"],
        ["migrate", "check"],
    ],
)
def test_read_only_commands_never_create_a_sqlite_file(tmp_path: Path, argv: list[str]) -> None:
    typo = tmp_path / "typo.db"
    result = convostore(*argv, "--url", f"sqlite:///{typo}")
    assert result.returncode == 2, result.stderr
    assert f"no SQLite database at {typo}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not typo.exists()


def test_migrate_takes_the_url_after_the_subcommand(tmp_path: Path) -> None:
    db = tmp_path / "after.db"
    up = convostore("migrate", "-q", "upgrade", "head", "--url", f"sqlite:///{db}")
    assert up.returncode == 0, up.stderr
    current = convostore("migrate", "current", "--url", f"sqlite:///{db}")
    assert current.returncode == 0, current.stderr
    assert "(head)" in current.stdout
    # Given in both places, the one after the subcommand wins.
    both = convostore(
        "migrate", "--url", "sqlite:///nowhere.db", "check", "--url", f"sqlite:///{db}"
    )
    assert both.returncode == 0, both.stderr


@pytest.mark.postgresql
@pytest.mark.mysql
async def test_migrate_table_options_after_the_subcommand(engine: AsyncEngine) -> None:
    tag = uuid.uuid4().hex[:8]
    names = ["--sessions-table", f"cs_{tag}_s", "--messages-table", f"cs_{tag}_m"]
    url = engine.url.render_as_string(hide_password=False)
    try:
        up = convostore("migrate", "-q", "upgrade", "head", "--url", url, *names)
        assert up.returncode == 0, up.stderr
        session = SQLAlchemySession(
            "after", engine=engine, sessions_table=f"cs_{tag}_s", messages_table=f"cs_{tag}_m"
        )
        await session.add_items([{"role": "user", "content": "hi"}])
        assert convostore("migrate", "check", "--url", url, *names).returncode == 0
    finally:
        refused = convostore("migrate", "-q", "downgrade", "base", "--url", url, *names)
        assert refused.returncode == 1
        assert "needs --yes" in refused.stderr
        down = convostore("migrate", "-q", "downgrade", "base", "--yes", "--url", url, *names)
        assert down.returncode == 0, down.stderr


def test_import_needs_a_source(tmp_path: Path) -> None:
    result = convostore("import", "--url", f"sqlite:///{tmp_path / 'i.db'}")
    assert result.returncode == 2
    assert "Missing argument 'SOURCE'" in result.stderr


def _import_then_ctrl_c(target: Path, text: str) -> tuple[int, str]:
    """Type ``text`` into ``convostore import -`` on a terminal, wait, then press Ctrl-C."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [CONSOLE_SCRIPT, "import", "-", "--create-tables", "--url", f"sqlite:///{target}"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(leader, text.encode())
        time.sleep(3)  # it waits for more input, as a program reading a terminal does
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out + err
    finally:
        os.close(leader)
        os.close(follower)


async def test_import_from_a_terminal_says_so_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "source.db"
    await _sqlite_store_with(db, "one")
    exported = convostore("export", "--url", f"sqlite:///{db}")
    assert exported.returncode == 0, exported.stderr
    code, output = _import_then_ctrl_c(tmp_path / "target.db", exported.stdout)
    assert code == 130, output
    assert "Reading sessions from standard input" in output
    assert "Interrupted" in output
    assert "Traceback" not in output


async def test_import_without_tables_says_how_in_cli_terms(tmp_path: Path) -> None:
    db = tmp_path / "source.db"
    await _sqlite_store_with(db, "one")
    dump = tmp_path / "dump.jsonl"
    assert convostore("export", "--url", f"sqlite:///{db}", "-o", str(dump)).returncode == 0
    empty = tmp_path / "empty.db"
    result = convostore("import", str(dump), "--url", f"sqlite:///{empty}")
    assert result.returncode == 1
    assert "add --create-tables" in result.stderr
    assert "convostore migrate upgrade head" in result.stderr
    assert "create_tables=True" not in result.stderr
    created = convostore("import", str(dump), "--create-tables", "--url", f"sqlite:///{empty}")
    assert created.returncode == 0, created.stderr


@pytest.mark.postgresql
@pytest.mark.mysql
def test_a_missing_database_is_an_answer_not_an_unreachable_server(engine: AsyncEngine) -> None:
    url = engine.url.set(database="cs_no_such_db").render_as_string(hide_password=False)
    for argv in (["sessions", "list"], ["migrate", "current"], ["export"]):
        result = convostore(*argv, "--url", url)
        assert result.returncode == 1, result.stderr
        line = result.stderr.strip()
        assert "answered with an error" in line
        assert "cs_no_such_db" in line
        assert "cannot reach" not in line
        assert "Error: Error" not in line
        assert len(line.splitlines()) == 1
    doctor = convostore("doctor", "--url", url)
    assert "the server answered" in doctor.stdout
    assert "1 check failed." in doctor.stdout


@pytest.mark.postgresql
def test_doctor_does_not_suggest_stamping_missing_tables(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    result = convostore(
        "doctor", "--url", url, "--sessions-table", "cs_none_s", "--messages-table", "cs_none_m"
    )
    assert result.returncode == 1
    assert "stamp head" not in result.stdout
    assert "migrate upgrade head" in result.stdout


async def test_sqlite_write_failures_talk_about_files(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    await _sqlite_store_with(db, "x")
    # Opened read-only, as a file the user may not write would be (even for root).
    result = convostore("doctor", "--url", f"sqlite:///file:{db}?mode=ro&uri=true")
    assert result.returncode == 1
    assert "may write the database file" in result.stdout
    assert "INSERT" not in result.stdout


@pytest.mark.parametrize("group", [[], ["sessions"], ["migrate"]])
def test_help_lists_commands_in_whole_sentences(group: list[str]) -> None:
    result = convostore(*group, "--help", env={"COLUMNS": "80"})
    assert result.returncode == 0
    commands = result.stdout.split("Commands:")[1].strip().splitlines()
    assert commands
    for line in commands:
        assert not line.rstrip().endswith("..."), line
        assert line.rstrip().endswith("."), line


async def test_piped_listing_keeps_whole_ids(tmp_path: Path) -> None:
    long_id = "a-long-session-id-" + "x" * 80
    db = tmp_path / "ids.db"
    await _sqlite_store_with(db, long_id)
    result = convostore("sessions", "list", "--url", f"sqlite:///{db}", env={"COLUMNS": "60"})
    assert result.returncode == 0
    assert long_id in result.stdout.splitlines()[1].split("\t")
    assert "━" not in result.stdout  # a table's rules are for terminals
