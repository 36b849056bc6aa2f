"""Every script in examples/ runs as a user would run it, against the local databases."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ._programs import free_port, run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, cwd: Path, url: str | None = None) -> str:
    result = run(sys.executable, EXAMPLES / name, cwd=cwd, env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart(tmp_path: Path) -> None:
    out = run_example("quickstart.py", tmp_path)
    assert "What is the capital of France?" in out


@pytest.mark.slow
def test_agents_sqlite_remembers_across_runs(tmp_path: Path) -> None:
    first = run_example("agents_sqlite.py", tmp_path)
    assert "0 items stored before this run" in first
    assert "1. What's the weather in Rome?" in first
    second = run_example("agents_sqlite.py", tmp_path)
    assert "7 items stored before this run" in second
    assert "14 items stored now" in second
    assert (tmp_path / "agents-example.db").exists()


@pytest.mark.postgresql
@pytest.mark.mysql
def test_agents_postgres_keeps_users_apart(empty_database_url: str, tmp_path: Path) -> None:
    out = run_example("agents_postgres.py", tmp_path, empty_database_url)
    assert "ada: Before this, you asked me: 1. What's the weather in London?\n" in out
    assert "grace: Before this, you asked me: 1. What's the weather in Washington?\n" in out
    assert out.count("7 items stored") == 3


@pytest.fixture
def web_chat(empty_database_url: str, tmp_path: Path) -> Iterator[str]:
    """``python examples/web_chat.py`` on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": empty_database_url, "PORT": str(port)}
    log = tmp_path / "web_chat.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "web_chat.py")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_web_chat_keeps_one_conversation_per_user(web_chat: str) -> None:
    users = [f"user-{n}" for n in range(6)]
    call("DELETE", f"{web_chat}/chat/{users[0]}")

    def first_turn(user: str) -> Any:
        return call(
            "POST", f"{web_chat}/chat/{user}", {"message": f"What's the weather in {user.title()}?"}
        )

    # Concurrent requests of different users.
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        replies = list(pool.map(first_turn, users))
    assert all(status == 200 for status, _ in replies), replies

    for user in users:
        status, body = call("POST", f"{web_chat}/chat/{user}", {"message": "What did I ask?"})
        assert status == 200
        assert (
            body["reply"] == f"Before this, you asked me: 1. What's the weather in {user.title()}?"
        )

    status, body = call("GET", f"{web_chat}/chat/{users[0]}")
    assert status == 200
    assert body["items"][0] == {"role": "user", "content": "What's the weather in User-0?"}
    assert len(body["items"]) == 7

    assert call("POST", f"{web_chat}/chat/{users[0]}", {"nope": 1})[0] == 400
    assert call("POST", f"{web_chat}/chat/{'x' * 300}", {"message": "hi"})[0] == 400
    for user in users:
        assert call("DELETE", f"{web_chat}/chat/{user}") == (200, {"cleared": True})
    assert call("GET", f"{web_chat}/chat/{users[0]}") == (200, {"items": []})
