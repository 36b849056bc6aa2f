"""The OpenAI Agents SDK's real runner on convostore sessions, on every backend.

The model is convostore's ScriptedModel (canned responses, no network); everything else is
the SDK as users run it: Runner.run, run_streamed and run_sync, tools, session settings.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from typing import Any

from agents import Agent, RunConfig, Runner, function_tool
from agents import SessionSettings as SDKSessionSettings
from agents.memory import Session as SDKSession
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, Tables, engine_from_url
from convostore.demo import ScriptedModel, function_call, message, reasoning

from ._stores import MakeSession, session_on, table_options

CONFIG = RunConfig(tracing_disabled=True)


def echo(items: list[dict[str, Any]]) -> list[Any]:
    """A script that answers every message with its text and how much history it saw."""
    last = items[-1]
    return [message(f"echo: {last.get('content')} (saw {len(items) - 1} earlier items)")]


def agent_for(model: ScriptedModel, tools: list[Any] | None = None) -> Agent[Any]:
    return Agent(name="test", instructions="Be brief.", model=model, tools=tools or [])


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant_texts(items: list[dict[str, Any]]) -> list[str]:
    return [
        part["text"]
        for item in items
        if item.get("role") == "assistant"
        for part in item["content"]
    ]


@function_tool
def add(a: int, b: int) -> str:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return str(a + b)


def test_convostore_sessions_are_sdk_sessions(make_session: MakeSession) -> None:
    assert isinstance(make_session(), SDKSession)


async def test_turn_two_sees_turn_one(make_session: MakeSession) -> None:
    session = make_session()
    model = ScriptedModel(echo)
    agent = agent_for(model)

    first = await Runner.run(agent, "My name is Ada.", session=session, run_config=CONFIG)
    second = await Runner.run(agent, "What is my name?", session=session, run_config=CONFIG)

    assert first.final_output == "echo: My name is Ada. (saw 0 earlier items)"
    assert second.final_output == "echo: What is my name? (saw 2 earlier items)"
    sent = model.inputs[1]
    assert sent[0] == user("My name is Ada.")
    assert assistant_texts(sent[1:2]) == [first.final_output]
    assert sent[2] == user("What is my name?")

    stored = await session.get_items()
    assert [item.get("role") for item in stored] == ["user", "assistant", "user", "assistant"]
    assert assistant_texts(stored) == [first.final_output, second.final_output]


async def test_tool_call_and_its_output_are_stored(make_session: MakeSession) -> None:
    session = make_session()
    model = ScriptedModel(
        [
            [reasoning("Add them with the tool."), function_call("add", {"a": 2, "b": 3})],
            [message("2 + 3 = 5")],
        ]
    )
    result = await Runner.run(
        agent_for(model, [add]), "What is 2 + 3?", session=session, run_config=CONFIG
    )

    assert result.final_output == "2 + 3 = 5"
    stored = await session.get_items()
    assert [item.get("type", "message") for item in stored] == [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "message",
    ]
    call, output = stored[2], stored[3]
    assert call["name"] == "add"
    assert json.loads(call["arguments"]) == {"a": 2, "b": 3}
    assert output["call_id"] == call["call_id"]
    assert output["output"] == "5"
    # The second model request saw the call and its output, in order.
    assert [item.get("type") for item in model.inputs[1][-2:]] == [
        "function_call",
        "function_call_output",
    ]


async def test_run_streamed(make_session: MakeSession) -> None:
    session = make_session()
    model = ScriptedModel(echo)
    agent = agent_for(model)

    for text in ("first", "second"):
        result = Runner.run_streamed(agent, text, session=session, run_config=CONFIG)
        deltas = [
            event.data.delta
            async for event in result.stream_events()
            if event.type == "raw_response_event"
            and event.data.type == "response.output_text.delta"
        ]
        assert "".join(deltas) == result.final_output

    assert model.inputs[1][0] == user("first")
    stored = await session.get_items()
    assert [item.get("content") for item in stored if item.get("role") == "user"] == [
        "first",
        "second",
    ]
    assert assistant_texts(stored) == [
        "echo: first (saw 0 earlier items)",
        "echo: second (saw 2 earlier items)",
    ]


async def test_run_sync_in_its_own_thread_and_loop(engine: AsyncEngine, tables: Tables) -> None:
    session_id = f"sync-{uuid.uuid4().hex}"
    model = ScriptedModel(echo)

    def sync_program() -> list[str]:
        # What a synchronous application does: no running loop; run_sync makes its own, and
        # the engine's connections belong to it.
        own_engine = engine_from_url(engine.url)
        session = session_on(own_engine, tables, session_id)
        agent = agent_for(model)
        outputs = [
            Runner.run_sync(agent, text, session=session, run_config=CONFIG).final_output
            for text in ("one", "two")
        ]
        loop = asyncio.get_event_loop_policy().get_event_loop()
        loop.run_until_complete(own_engine.dispose())
        loop.close()
        return outputs

    outputs = await asyncio.to_thread(sync_program)

    assert outputs == ["echo: one (saw 0 earlier items)", "echo: two (saw 2 earlier items)"]
    reader = session_on(engine, tables, session_id)
    assert assistant_texts(await reader.get_items()) == outputs
    await reader.clear_session()


async def test_new_session_object_and_engine_continue(
    engine: AsyncEngine, tables: Tables, make_session: MakeSession
) -> None:
    session = make_session()
    await Runner.run(
        agent_for(ScriptedModel(echo)), "remember me", session=session, run_config=CONFIG
    )

    # A restarted process: a new engine, a new session object, the same id.
    restarted = engine_from_url(engine.url)
    try:
        again = session_on(restarted, tables, session.session_id)
        model = ScriptedModel(echo)
        result = await Runner.run(
            agent_for(model), "still there?", session=again, run_config=CONFIG
        )
    finally:
        await restarted.dispose()

    assert result.final_output == "echo: still there? (saw 2 earlier items)"
    assert model.inputs[0][0] == user("remember me")


async def test_runner_honours_session_settings_limit(make_session: MakeSession) -> None:
    session = make_session(session_settings={"limit": 3})
    model = ScriptedModel(echo)
    agent = agent_for(model)
    for n in range(4):
        await Runner.run(agent, f"turn {n}", session=session, run_config=CONFIG)

    # Each turn stores 2 items; the runner asked for the latest 3 only.
    assert [len(sent) - 1 for sent in model.inputs] == [0, 2, 3, 3]
    assert model.inputs[3][0]["role"] == "assistant"
    assert model.inputs[3][1] == user("turn 2")
    assert len(await session.get_items(limit=100)) == 8

    # The run's own settings (the SDK's class) override the session's.
    override = RunConfig(tracing_disabled=True, session_settings=SDKSessionSettings(limit=1))
    await Runner.run(agent, "turn 4", session=session, run_config=override)
    assert len(model.inputs[4]) - 1 == 1


async def test_ten_concurrent_runs_keep_their_histories_apart(make_session: MakeSession) -> None:
    sessions = [make_session() for _ in range(10)]
    models = [ScriptedModel(echo) for _ in sessions]

    async def converse(n: int) -> None:
        agent = agent_for(models[n])
        for turn in range(3):
            await Runner.run(agent, f"s{n} t{turn}", session=sessions[n], run_config=CONFIG)

    await asyncio.gather(*(converse(n) for n in range(10)))

    for n, (session, model) in enumerate(zip(sessions, models, strict=True)):
        stored = await session.get_items()
        assert [item.get("content") for item in stored if item.get("role") == "user"] == [
            f"s{n} t{turn}" for turn in range(3)
        ]
        assert len(stored) == 6
        last_request = model.inputs[-1]
        assert [item["content"] for item in last_request if item.get("role") == "user"] == [
            f"s{n} t{turn}" for turn in range(3)
        ]


class RecordingSession(SQLAlchemySession):
    """Keeps a deep copy of every batch the runner hands to add_items."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.added: list[dict[str, Any]] = []

    async def add_items(self, items: list[Any]) -> None:
        self.added.extend(copy.deepcopy(items))
        await super().add_items(items)


async def test_stored_items_round_trip_unchanged(engine: AsyncEngine, tables: Tables) -> None:
    session = RecordingSession(
        f"roundtrip-{uuid.uuid4().hex}", engine=engine, **table_options(tables)
    )
    model = ScriptedModel(
        [
            [reasoning("Zürich ☃ — think 🤔"), function_call("add", {"a": 40, "b": 2})],
            [message('La réponse est 42 🎉\nsecond line\t"quoted"')],
        ]
    )
    result = await Runner.run(
        agent_for(model, [add]), "Wie viel ist 40 + 2? 你好", session=session, run_config=CONFIG
    )

    stored = await session.get_items()
    assert stored == session.added
    assert {item.get("type", "message") for item in stored} == {
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
    }
    # What the SDK would replay as the next turn's input is what the store gives back.
    assert stored == json.loads(json.dumps(result.to_input_list()))
    await session.clear_session()
