"""An OpenAI Agents SDK agent whose conversation convostore keeps in a SQLite file.

Runs offline: the agent's model is convostore's ScriptedModel (canned answers, no API key).
With an OpenAI API key, pass a model name instead (``model="gpt-4.1"``) and drop the script.

    python examples/agents_sqlite.py            # run it twice: the second run remembers
"""

from __future__ import annotations

import asyncio
import os
import sys

try:
    from agents import Agent, RunConfig, Runner, function_tool
except ModuleNotFoundError:
    sys.exit("this example needs the OpenAI Agents SDK: pip install 'convostore[agents]'")

from convostore import MissingDependencyError, SQLAlchemySession
from convostore.demo import ScriptedModel, demo_responder

URL = os.environ.get("DATABASE_URL", "sqlite:///agents-example.db")


@function_tool
def get_weather(city: str) -> str:
    """Return today's weather in a city.

    Args:
        city: The city's name.
    """
    return "21°C and clear"


agent = Agent(
    name="Assistant",
    instructions="Answer weather questions with the get_weather tool.",
    tools=[get_weather],
    model=ScriptedModel(demo_responder),  # or "gpt-4.1" with OPENAI_API_KEY set
)


async def main() -> None:
    # create_tables is for trying things out; production schemas come from the migrations.
    async with SQLAlchemySession.from_url("user-42", url=URL, create_tables=True) as session:
        print(f"{len(await session.get_items())} items stored before this run")
        for question in ("What's the weather in Rome?", "What did I ask you so far?"):
            result = await Runner.run(
                agent, question, session=session, run_config=RunConfig(tracing_disabled=True)
            )
            print(f"user:      {question}\nassistant: {result.final_output}")
        print(f"{len(await session.get_items())} items stored now")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except MissingDependencyError as exc:  # the URL's driver: one line naming the extra
        sys.exit(f"error: {exc}")
