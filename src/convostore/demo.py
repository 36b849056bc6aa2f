"""A scripted agent conversation, run by the OpenAI Agents SDK and stored by convostore.

Needs the Agents SDK (``pip install 'convostore[agents]'``); no network and no API key:
[`ScriptedModel`][convostore.testing.ScriptedModel] is an Agents SDK model that answers from a
script instead of calling a provider (it lives in [`convostore.testing`][convostore.testing], and is
importable from here too). Use it to try convostore with a real runner:

```python
from agents import Agent, Runner
from convostore import SQLAlchemySession
from convostore.demo import ScriptedModel, demo_agent, demo_responder

agent = demo_agent(ScriptedModel(demo_responder))
async with SQLAlchemySession.from_url("me", url="sqlite:///chat.db",
                                      create_tables=True) as session:
    await Runner.run(agent, "What's the weather in Paris?", session=session)
    result = await Runner.run(agent, "What did I ask you so far?", session=session)
    print(result.final_output)  # names the Paris question: the session remembered it
```

[`run_demo`][convostore.demo.run_demo] is what ``convostore demo`` runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL

from ._db.urls import to_async_url
from ._session import SQLAlchemySession
from .errors import MissingDependencyError

INSTALL_HINT = "pip install 'convostore[agents]'"
"""The command that installs what this module needs."""

try:
    from agents import Agent, RunConfig, Runner, function_tool
    from agents.items import TResponseOutputItem
    from agents.models.interface import Model

    # The scripted model lives in convostore.testing; its names stay importable from here.
    from .testing import Responder, ScriptedModel, function_call, message, reasoning
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingDependencyError(
        f"convostore's demo needs the OpenAI Agents SDK (openai-agents): {INSTALL_HINT}",
        package="agents",
        extra="pip install 'convostore[agents]'",
    ) from exc

__all__ = [
    "DEFAULT_SESSION_ID",
    "DEFAULT_URL",
    "INSTALL_HINT",
    "DemoRun",
    "DemoTurn",
    "Responder",
    "ScriptedModel",
    "demo_agent",
    "demo_responder",
    "function_call",
    "get_weather",
    "message",
    "reasoning",
    "run_demo",
]

DEFAULT_URL = "sqlite:///convostore-demo.db"
"""Where ``convostore demo`` stores its conversation unless told otherwise."""

DEFAULT_SESSION_ID = "convostore-demo"
"""The session id of the demo's conversation."""


# -- the demo's agent -----------------------------------------------------------------------

_WEATHER = {
    "paris": "18°C and sunny",
    "lisbon": "22°C with a light breeze",
    "tokyo": "15°C and raining",
    "oslo": "4°C with snow showers",
}


@function_tool
def get_weather(city: str) -> str:
    """Return today's weather in ``city`` (made up: the demo never calls the network).

    Args:
        city: The city's name.
    """
    return _WEATHER.get(city.lower(), "20°C and cloudy")


def _text_of(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def demo_responder(items: list[dict[str, Any]]) -> list[TResponseOutputItem]:
    """The demo's script: answers weather questions with a tool, and recaps the conversation.

    It sees only what the runner sends, so its recap lists exactly the user messages the
    session handed back: the proof that the conversation was remembered.
    """
    last = items[-1]
    if last.get("type") == "function_call_output":
        call = next(
            (
                i
                for i in reversed(items)
                if i.get("type") == "function_call" and i.get("call_id") == last.get("call_id")
            ),
            {"arguments": '{"city": "that city"}'},
        )
        city = json.loads(call["arguments"]).get("city", "that city")
        return [message(f"It is {last.get('output')} in {city} today.")]
    question = _text_of(last)
    match = re.search(r"weather in ([A-Z][\w-]*)", question)
    if match:
        city = match.group(1)
        return [
            reasoning(f"The user asks about the weather in {city}: call get_weather."),
            function_call("get_weather", {"city": city}),
        ]
    asked = [_text_of(i) for i in items[:-1] if i.get("role") == "user"]
    if not asked:
        return [message("Nothing yet: this is your first message.")]
    listing = "; ".join(f"{n}. {text}" for n, text in enumerate(asked, 1))
    return [message(f"Before this, you asked me: {listing}")]


def demo_agent(model: Model) -> Agent[Any]:
    """The demo's agent: one tool (``get_weather``) and the given model."""
    return Agent(
        name="Weather assistant",
        instructions="Answer weather questions with the get_weather tool.",
        tools=[get_weather],
        model=model,
    )


# -- ``convostore demo`` ----------------------------------------------------------------------

_CITIES = ["Paris", "Lisbon", "Tokyo", "Oslo"]


@dataclass
class DemoTurn:
    """One turn of the demo: what the user said and the items the session stored for it."""

    prompt: str
    """The user's message."""

    items: list[dict[str, Any]]
    """The items stored by this turn, read back from the database."""


@dataclass
class DemoRun:
    """What [`run_demo`][convostore.demo.run_demo] did."""

    url: str
    """The database URL, password hidden."""

    session_id: str
    """The conversation's session id."""

    earlier_items: int
    """How many items earlier runs had stored (0 on a new conversation)."""

    turns: list[DemoTurn] = field(default_factory=list)
    """This run's turns."""

    total_items: int = 0
    """How many items the session holds at the end."""


async def run_demo(
    url: str | URL = DEFAULT_URL,
    *,
    session_id: str = DEFAULT_SESSION_ID,
    reset: bool = False,
    on_start: Callable[[DemoRun], Awaitable[None] | None] | None = None,
    on_turn: Callable[[DemoTurn], Awaitable[None] | None] | None = None,
) -> DemoRun:
    """Run two scripted turns through the Agents SDK runner, stored in the session.

    The first turn asks for the weather (a tool call); the second asks what was asked so far,
    and the scripted model answers from the history the session handed back, including the
    turns of earlier runs.

    Args:
        url: The database URL (plain ``sqlite://``, ``postgresql://``, ``mysql://`` URLs work).
        session_id: The conversation to continue.
        reset: Clear the conversation first.
        on_start: Called once the stored history has been counted.
        on_turn: Called after each turn.

    Raises:
        ConvostoreError: The URL or the database is unusable.
    """
    shown_url = to_async_url(url).render_as_string(hide_password=True)
    async with SQLAlchemySession.from_url(session_id, url=url, create_tables=True) as session:
        if reset:
            await session.clear_session()
        history = await session.get_items()
        run = DemoRun(url=shown_url, session_id=session_id, earlier_items=len(history))
        await _call(on_start, run)
        earlier_questions = sum(1 for item in history if item.get("role") == "user")
        city = _CITIES[(earlier_questions // 2) % len(_CITIES)]
        agent = demo_agent(ScriptedModel(demo_responder))
        config = RunConfig(tracing_disabled=True)
        stored = len(history)
        for prompt in (f"What's the weather in {city}?", "What did I ask you so far?"):
            await Runner.run(agent, prompt, session=session, run_config=config)
            items = await session.get_items()
            turn = DemoTurn(prompt=prompt, items=items[stored:])
            stored = len(items)
            run.turns.append(turn)
            await _call(on_turn, turn)
        run.total_items = stored
    return run


async def _call(callback: Callable[[Any], Awaitable[None] | None] | None, arg: Any) -> None:
    if callback is not None:
        result = callback(arg)
        if result is not None:
            await result
