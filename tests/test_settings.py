"""Session settings as the Agents SDK and its wrappers see them, on every backend.

The SDK's wrappers (``EncryptedSession``, ``OpenAIResponsesCompactionSession``) accept only
the SDK's own ``SessionSettings`` class or a dict, so a convostore session presents the SDK's
class whenever the SDK is importable, owns its settings object, and validates what it is
given when it is built.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner
from agents import SessionSettings as SDKSessionSettings
from agents.extensions.memory.encrypt_session import EncryptedSession as SDKEncryptedSession
from agents.memory import OpenAIResponsesCompactionSession
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SessionSettings, SessionStore, Tables
from convostore._config import sdk_settings_class
from convostore.demo import ScriptedModel, message
from convostore.errors import ConfigurationError, InvalidLimitError

from ._stores import MakeSession, make_store

CONFIG = RunConfig(tracing_disabled=True)
KEY = "a-high-entropy-master-key-for-tests-only-0123456789"


def items(n: int, tag: str = "m") -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{tag}{i}"} for i in range(n)]


@pytest.mark.parametrize(
    "given", [None, {"limit": 4}, SessionSettings(limit=4), SDKSessionSettings(limit=4)]
)
def test_settings_are_the_sdks_class(make_session: MakeSession, given: Any) -> None:
    session = make_session(session_settings=given)
    assert type(session.session_settings) is SDKSessionSettings
    assert session.session_settings.limit == (None if given is None else 4)


def test_each_session_owns_its_settings(make_session: MakeSession) -> None:
    shared = SDKSessionSettings(limit=5)
    a, b = make_session(session_settings=shared), make_session(session_settings=shared)
    a.session_settings.limit = 3
    assert b.session_settings.limit == 5
    assert shared.limit == 5


def test_store_sessions_own_their_settings(engine: AsyncEngine, tables: Tables) -> None:
    store = make_store(engine, tables, session_settings=SDKSessionSettings(limit=5))
    a, b = store.session("a"), store.session("b")
    a.session_settings.limit = 3
    assert b.session_settings.limit == 5
    assert store.session_settings.limit == 5
    assert type(store.session_settings) is SDKSessionSettings
    assert store.session("c", session_settings={"limit": 2}).session_settings.limit == 2


async def test_a_changed_limit_applies_to_that_session(make_session: MakeSession) -> None:
    session = make_session(session_settings={"limit": 5})
    await session.add_items(items(8))
    assert len(await session.get_items()) == 5
    session.session_settings.limit = 2
    assert [i["content"] for i in await session.get_items()] == ["m6", "m7"]
    session.session_settings = {"limit": None}
    assert len(await session.get_items()) == 8
    session.session_settings.limit = -1
    with pytest.raises(InvalidLimitError, match=r"session_settings\.limit"):
        await session.get_items()


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"lmit": 3}, "unknown keys \\['lmit'\\]"),
        ({"limit": -1}, "limit must be None or an integer >= 0"),
        ({"limit": "3"}, "limit must be None or an integer >= 0"),
        (SDKSessionSettings(limit=None), None),
        (5, "must be a SessionSettings"),
    ],
)
def test_store_validates_settings_at_construction(
    engine: AsyncEngine, tables: Tables, settings: Any, words: str | None
) -> None:
    if words is None:
        make_store(engine, tables, session_settings=settings)
        return
    with pytest.raises(ConfigurationError, match=words):
        make_store(engine, tables, session_settings=settings)
    with pytest.raises(ConfigurationError, match=words):
        SessionStore("sqlite://", session_settings=settings)


def test_settings_assignment_is_validated(make_session: MakeSession) -> None:
    session = make_session()
    with pytest.raises(ConfigurationError, match="unknown keys"):
        session.session_settings = {"lmit": 3}


def test_without_the_sdk_settings_are_convostores(
    make_session: MakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An import of a module set to None in sys.modules raises ImportError, as for a
    # missing package.
    monkeypatch.setitem(sys.modules, "agents.memory.session_settings", None)
    sdk_settings_class.cache_clear()
    try:
        session = make_session(session_settings={"limit": 2})
        assert type(session.session_settings) is SessionSettings
        assert session.session_settings.limit == 2
    finally:
        monkeypatch.undo()
        sdk_settings_class.cache_clear()


def test_importing_convostore_does_not_import_the_sdk() -> None:
    program = (
        "import sys, convostore\n"
        "s = convostore.SQLAlchemySession.from_url('x', url='sqlite://', "
        "session_settings={'limit': 2})\n"
        "assert 'agents' not in sys.modules, 'imported at construction'\n"
        "assert type(s.session_settings).__module__.startswith('agents')\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)


@pytest.mark.parametrize("default_limit", [None, 3])
async def test_sdk_encrypted_session_over_convostore(
    make_session: MakeSession, default_limit: int | None
) -> None:
    inner = make_session(session_settings={"limit": default_limit})
    wrapped = SDKEncryptedSession(inner.session_id, inner, KEY)
    await wrapped.add_items(items(6))
    got = await wrapped.get_items()
    expected = items(6)[-default_limit:] if default_limit else items(6)
    assert got == expected
    assert await wrapped.get_items(limit=2) == items(6)[-2:]
    # What is stored is ciphertext, not the text.
    stored = await inner.get_items(limit=100)
    assert len(stored) == 6
    assert all("role" not in item and "content" not in item for item in stored)


@pytest.mark.parametrize("default_limit", [None, 3])
async def test_sdk_compaction_session_reads_through_settings(
    make_session: MakeSession, default_limit: int | None
) -> None:
    inner = make_session(session_settings={"limit": default_limit})
    compacting = OpenAIResponsesCompactionSession(inner.session_id, inner, client=None)  # type: ignore[arg-type]
    await compacting.add_items(items(5))
    expected = items(5)[-default_limit:] if default_limit else items(5)
    assert await compacting.get_items() == expected


@pytest.mark.parametrize("wrap", ["plain", "encrypted"])
async def test_run_config_settings_overlay_the_sessions(
    make_session: MakeSession, wrap: str
) -> None:
    inner = make_session(f"overlay-{uuid.uuid4().hex}", session_settings={"limit": 4})
    session: Any = inner if wrap == "plain" else SDKEncryptedSession(inner.session_id, inner, KEY)
    model = ScriptedModel(lambda sent: [message(f"saw {len(sent) - 1}")])
    agent = Agent(name="t", instructions="Be brief.", model=model)
    for n in range(3):
        await Runner.run(agent, f"turn {n}", session=session, run_config=CONFIG)
    assert [len(sent) - 1 for sent in model.inputs] == [0, 2, 4]

    for override in (SDKSessionSettings(limit=1), {"limit": 1}):
        run_config = RunConfig(tracing_disabled=True, session_settings=override)
        await Runner.run(agent, "short", session=session, run_config=run_config)
        assert len(model.inputs[-1]) - 1 == 1
    # A run without an override is back to the session's own limit.
    await Runner.run(agent, "again", session=session, run_config=CONFIG)
    assert len(model.inputs[-1]) - 1 == 4
    assert inner.session_settings.limit == 4


@pytest.mark.parametrize("ensure_ascii", [True, False])
async def test_the_sdks_ensure_ascii_argument_is_accepted(
    make_session: MakeSession, ensure_ascii: bool
) -> None:
    session = make_session(ensure_ascii=ensure_ascii)
    item = {"role": "user", "content": "héllo ✓ 😀"}
    await session.add_items([item])
    assert await session.get_items() == [item]
    with pytest.raises(ConfigurationError, match="ensure_ascii"):
        make_session(ensure_ascii="no")
