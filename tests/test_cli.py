"""The ``convostore`` console script end to end: sessions, export/import, prune, delete, doctor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from convostore import SessionStore

from ._programs import convostore, run
from ._stores import NewStore, age


def cli(
    store: SessionStore | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console script; the store gives --url (by environment) and table names."""
    full_env = dict(env or {})
    options: list[str] = []
    if store is not None:
        full_env["CONVOSTORE_URL"] = store.engine.url.render_as_string(hide_password=False)
        options = [
            "--sessions-table",
            store.tables.sessions.name,
            "--messages-table",
            store.tables.messages.name,
        ]
    command, *rest = args
    if command == "sessions":
        sub, *rest = rest
        argv = [command, sub, *options, *rest]
    else:
        argv = [command, *options, *rest]
    return convostore(*argv, env=full_env)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


TRANSCRIPT: list[dict[str, Any]] = [
    {"role": "user", "content": "What is the weather in Oslo?"},
    {
        "type": "function_call",
        "call_id": "c1",
        "name": "get_weather",
        "arguments": '{"city": "Oslo"}',
    },
    {"type": "function_call_output", "call_id": "c1", "output": "4°C and rain"},
    {"role": "assistant", "content": [{"type": "output_text", "text": "Cold and wet."}]},
]


# The store API is tested on every backend; the commands on SQLite and one server.
@pytest.mark.slow
@pytest.mark.sqlite
@pytest.mark.postgresql
async def test_operator_workflow(new_store: NewStore, tmp_path: Path) -> None:
    store, other = await new_store(), await new_store()
    await store.session("chat-1").add_items(TRANSCRIPT)
    await store.session("chat-2").add_items([{"role": "user", "content": "hi"}])
    await store.session("stale").add_items([{"role": "user", "content": "old"}])
    await age(store, "stale", days=45)

    table = ok(cli(store, "sessions", "list"))
    assert "chat-1" in table
    assert "chat-2" in table
    assert "stale" in table
    listed = json.loads(ok(cli(store, "sessions", "list", "--json", "--limit", "2")))
    assert [s["session_id"] for s in listed["sessions"]] in (
        ["chat-2", "chat-1"],
        ["chat-1", "chat-2"],
    )
    more = json.loads(
        ok(cli(store, "sessions", "list", "--json", "--cursor", listed["next_cursor"]))
    )
    assert [s["session_id"] for s in more["sessions"]] == ["stale"]

    shown = ok(cli(store, "sessions", "show", "chat-1"))
    for text in (
        "What is the weather in Oslo?",
        "get_weather(city='Oslo')",
        "4°C and rain",
        "Cold and wet.",
    ):
        assert text in shown
    data = json.loads(ok(cli(store, "sessions", "show", "chat-1", "--json")))
    assert [e["item"] for e in data["items"]] == TRANSCRIPT
    assert data["item_count"] == 4

    dump = tmp_path / "dump.jsonl"
    ok(cli(store, "export", "-o", str(dump)))
    assert len(dump.read_text(encoding="utf-8").splitlines()) == 3
    report = json.loads(ok(cli(other, "import", str(dump), "--json")))
    assert report["sessions"] == 3
    assert report["items"] == 6
    assert await other.session("chat-1").get_items() == TRANSCRIPT
    refused = cli(other, "import", str(dump))
    assert refused.returncode == 1
    assert "already exists" in refused.stderr
    skipped = json.loads(ok(cli(other, "import", str(dump), "--skip-existing", "--json")))
    assert skipped["sessions"] == 0
    assert len(skipped["skipped"]) == 3

    dry = json.loads(ok(cli(store, "prune", "--older-than", "30d", "--dry-run", "--json")))
    assert dry["session_ids"] == ["stale"]
    assert dry["dry_run"]
    assert await store.get_session_info("stale") is not None
    unconfirmed = cli(store, "prune", "--older-than", "30d")  # no terminal to say yes
    assert unconfirmed.returncode == 1
    assert "needs --yes" in unconfirmed.stderr
    assert await store.get_session_info("stale") is not None
    pruned = ok(cli(store, "prune", "--older-than", "30d", "--yes"))
    assert "Deleted 1 session (1 item) not updated for 30 days (since " in pruned
    assert await store.get_session_info("stale") is None

    assert cli(store, "delete", "chat-2").returncode == 1
    assert await store.get_session_info("chat-2") is not None
    assert "Deleted 1 session (1 item)." in ok(cli(store, "delete", "chat-2", "--yes"))
    assert await store.get_session_info("chat-2") is None

    doctor = json.loads(ok(cli(store, "doctor", "--json")))
    assert doctor["ok"], doctor
    assert {c["name"] for c in doctor["checks"]} >= {
        "reachable",
        "async driver",
        "tables",
        "schema revision",
        "write/read/delete",
    }
    assert await store.list_sessions() is not None
    assert [s.session_id for s in (await store.list_sessions()).sessions] == ["chat-1"]


@pytest.mark.slow
@pytest.mark.sqlite
async def test_errors_are_clear(new_store: NewStore) -> None:
    store = await new_store()
    unknown = cli(store, "sessions", "show", "no-such-session")
    assert unknown.returncode == 1
    assert "no session with id 'no-such-session'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing = cli(store, "delete", "no-such-session", "--yes")
    assert missing.returncode == 1
    assert "no-such-session" in missing.stderr
    for duration, words in (
        ("30x", "unknown unit 'x'"),
        ("d30", "is not a duration"),
        ("0d", "is zero"),
        ("soon", "is not a duration"),
        ("6m", "ambiguous: write 6min for minutes or 6mo for months"),
        ("1M", "ambiguous"),
    ):
        bad = cli(store, "prune", "--older-than", duration, "--yes")
        assert bad.returncode == 2, bad.stderr
        assert words in bad.stderr
    cursor = cli(store, "sessions", "list", "--cursor", "garbage")
    assert cursor.returncode == 1
    assert "cursor" in cursor.stderr
    no_url = cli(None, "sessions", "list", env={"CONVOSTORE_URL": ""})
    assert no_url.returncode == 2
    assert "--url" in no_url.stderr


def test_unreachable_database_hides_the_password() -> None:
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/nowhere"
    result = convostore("sessions", "list", "--url", url)
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    doctor = convostore("doctor", "--url", url, "--json")
    assert doctor.returncode == 1
    checks = json.loads(doctor.stdout)["checks"]
    assert checks[0]["name"] == "reachable"
    assert checks[0]["status"] == "fail"
    assert "s3cret-pw" not in doctor.stdout


def test_python_dash_m() -> None:
    result = run(sys.executable, "-m", "convostore", "--help")
    assert result.returncode == 0
    for command in ("sessions", "export", "import", "prune", "delete", "doctor"):
        assert command in result.stdout


async def test_user_commands(new_store: NewStore) -> None:
    store = await new_store()
    await store.session("u1-a", user_id="u1", metadata={"title": "Oslo trip"}).add_items([{}])
    await store.session("u1-b", user_id="u1").add_items([{}, {}])
    await store.session("u2-a", user_id="u2").add_items([{}])

    table = ok(cli(store, "sessions", "list", "--user", "u1"))
    assert "Oslo trip" in table
    assert "u1-b" in table
    assert "u2-a" not in table
    listed = json.loads(ok(cli(store, "sessions", "list", "--user", "u1", "--json")))
    assert sorted(s["session_id"] for s in listed["sessions"]) == ["u1-a", "u1-b"]
    dump = ok(cli(store, "export", "--user", "u1"))
    assert [json.loads(line)["session_id"] for line in dump.splitlines()] == ["u1-a", "u1-b"]

    unconfirmed = cli(store, "delete", "--user", "u1")  # no terminal to say yes
    assert unconfirmed.returncode == 1
    assert (await store.count_sessions(user_id="u1"))[0] == 2
    report = json.loads(ok(cli(store, "delete", "--user", "u1", "--yes", "--json")))
    assert report["sessions"] == 2
    assert report["items"] == 3
    assert [s.session_id for s in (await store.list_sessions()).sessions] == ["u2-a"]
