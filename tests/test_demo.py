"""``convostore demo``, end to end through the console script, as a new user runs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from convostore.cli.demo import describe_item

from ._programs import convostore, run

INSTALL_HINT = "pip install 'convostore[agents]'"


@pytest.mark.slow
def test_demo_on_the_default_sqlite_file_continues_on_the_second_run(tmp_path: Path) -> None:
    first = convostore("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "convostore-demo.db").exists()
    assert "New conversation" in first.stdout
    assert "get_weather(city='Paris')" in first.stdout
    assert "18°C and sunny" in first.stdout

    # A second process (and the `python -m` entry point) continues the stored conversation.
    second = run(sys.executable, "-m", "convostore", "demo", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Continuing the stored conversation: 7 items" in second.stdout
    assert "get_weather(city='Lisbon')" in second.stdout
    # The scripted model can only know the first run's question from the stored history.
    assert "1. What's the weather in Paris?" in second.stdout

    reset = convostore("demo", "--reset", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "New conversation" in reset.stdout
    assert "get_weather(city='Paris')" in reset.stdout
    assert "2. What did I ask you so far?" not in reset.stdout


@pytest.mark.slow
@pytest.mark.postgresql
@pytest.mark.mysql
def test_demo_on_a_server_with_convostore_url(empty_database_url: str, tmp_path: Path) -> None:
    env = {"CONVOSTORE_URL": empty_database_url}
    first = convostore("demo", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "New conversation" in first.stdout
    second = convostore("demo", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "Continuing the stored conversation: 7 items" in second.stdout
    assert "1. What's the weather in Paris?" in second.stdout
    assert not (tmp_path / "convostore-demo.db").exists()


def test_demo_without_the_agents_sdk_names_the_extra(tmp_path: Path) -> None:
    # The import of `agents` is blocked, as on a machine where openai-agents is not installed.
    program = (
        "import sys; sys.modules['agents'] = None; "
        "from convostore.cli import main; main(['demo'], prog_name='convostore')"
    )
    result = run(sys.executable, "-c", program, cwd=tmp_path)
    assert result.returncode == 1
    assert INSTALL_HINT in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "convostore-demo.db").exists()

    library = "import sys; sys.modules['agents'] = None; import convostore.demo"
    result = run(sys.executable, "-c", library, cwd=tmp_path)
    assert "MissingDependencyError" in result.stderr  # a ModuleNotFoundError too
    assert INSTALL_HINT in result.stderr


def test_demo_reports_an_unreachable_server_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nothing"
    result = convostore("demo", "--url", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "Error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_describe_item_covers_the_sdk_item_types() -> None:
    assert describe_item({"role": "user", "content": "hi"}) == ("you", "cyan", "hi")
    assert describe_item(
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "yo"}]}
    ) == ("assistant", "green", "yo")
    assert describe_item({"type": "function_call", "name": "f", "arguments": '{"x": 1}'})[2] == (
        "f(x=1)"
    )
    assert describe_item({"type": "function_call_output", "output": "42"})[2] == "42"
    assert describe_item({"type": "reasoning", "summary": [{"text": "hmm"}]})[2] == "hmm"
    assert describe_item({"type": "other"})[0] == "other"
