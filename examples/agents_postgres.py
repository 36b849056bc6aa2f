"""Many conversations on PostgreSQL: one shared engine, one session per user, run at once.

Runs offline with convostore's ScriptedModel (no API key); needs a PostgreSQL server:

    DATABASE_URL=postgresql://user:password@host/db python examples/agents_postgres.py

(the default is the local test server, ``postgresql://postgres@127.0.0.1:5432/test``).
A MySQL/MariaDB URL (``mysql://...``) works the same way.
"""

from __future__ import annotations

import asyncio
import os
import sys

try:
    from agents import Agent, RunConfig, Runner
except ModuleNotFoundError:
    sys.exit("this example needs the OpenAI Agents SDK: pip install 'convostore[agents]'")

from convostore import MissingDependencyError, SQLAlchemySession, engine_from_url
from convostore.demo import ScriptedModel, demo_responder, get_weather

URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
USERS = ["ada", "grace", "linus"]
CITIES = {"ada": "London", "grace": "Washington", "linus": "Helsinki"}

agent = Agent(
    name="Assistant",
    instructions="Answer weather questions with the get_weather tool.",
    tools=[get_weather],
    model=ScriptedModel(demo_responder, record_inputs=False),
)
config = RunConfig(tracing_disabled=True)


async def converse(user: str, session: SQLAlchemySession) -> str:
    await Runner.run(
        agent, f"What's the weather in {CITIES[user]}?", session=session, run_config=config
    )
    result = await Runner.run(
        agent, "What did I ask you so far?", session=session, run_config=config
    )
    return str(result.final_output)


async def main() -> None:
    # One engine (and connection pool) for the whole application; sessions are cheap views.
    engine = engine_from_url(URL, pool_size=5, max_overflow=10, pool_pre_ping=True)
    try:
        sessions = {
            user: SQLAlchemySession(f"example-{user}", engine=engine, create_tables=True)
            for user in USERS
        }
        for session in sessions.values():
            await session.clear_session()
        replies = await asyncio.gather(*(converse(u, sessions[u]) for u in USERS))
        for user, reply in zip(USERS, replies, strict=True):
            print(f"{user:>6}: {reply}")
        for user, session in sessions.items():
            print(f"{user:>6}: {len(await session.get_items())} items stored")
            await session.clear_session()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except MissingDependencyError as exc:  # the URL's driver: one line naming the extra
        sys.exit(f"error: {exc}")
