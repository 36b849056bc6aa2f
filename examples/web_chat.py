"""A chat endpoint with one conversation per user, on Starlette (works the same in FastAPI).

    python examples/web_chat.py                      # http://127.0.0.1:8000, SQLite file
    DATABASE_URL=postgresql://... PORT=9000 python examples/web_chat.py

    curl -X POST localhost:8000/chat/ada -d '{"message": "What is the weather in Paris?"}'
    curl localhost:8000/chat/ada                     # ada's stored conversation
    curl -X DELETE localhost:8000/chat/ada           # forget it

One engine (one connection pool) serves every request; each request builds a cheap
SQLAlchemySession for its user, so users never see each other's history, and concurrent
requests of one user append their turns without interleaving. Runs offline with
convostore's ScriptedModel; give the agent a real model name to use an LLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

try:
    import uvicorn
    from agents import Agent, RunConfig, Runner
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
except ModuleNotFoundError as exc:
    sys.exit(f"this example needs {exc.name}: pip install 'convostore[agents]' starlette uvicorn")

from convostore import (
    InvalidInputError,
    MissingDependencyError,
    SQLAlchemySession,
    engine_from_url,
)
from convostore.demo import ScriptedModel, demo_responder, get_weather

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///web-chat.db")

agent = Agent(
    name="Assistant",
    instructions="Answer weather questions with the get_weather tool.",
    tools=[get_weather],
    model=ScriptedModel(demo_responder, record_inputs=False),
)
run_config = RunConfig(tracing_disabled=True)


def user_session(request: Request) -> SQLAlchemySession:
    # The user id would come from authentication; here it is the path.
    return SQLAlchemySession(
        request.path_params["user_id"], engine=request.app.state.engine, create_tables=True
    )


async def chat(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        return JSONResponse({"error": 'send {"message": "..."}'}, status_code=400)
    session = user_session(request)
    result = await Runner.run(agent, message, session=session, run_config=run_config)
    return JSONResponse({"reply": result.final_output})


async def history(request: Request) -> JSONResponse:
    return JSONResponse({"items": await user_session(request).get_items()})


async def forget(request: Request) -> JSONResponse:
    await user_session(request).clear_session()
    return JSONResponse({"cleared": True})


async def chat_or_history(request: Request) -> JSONResponse:
    handlers = {"POST": chat, "GET": history, "DELETE": forget}
    try:
        return await handlers[request.method](request)
    except InvalidInputError as exc:  # a bad user id or message: the client's mistake
        return JSONResponse({"error": str(exc)}, status_code=400)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.engine = engine_from_url(DATABASE_URL, pool_pre_ping=True)
    try:
        yield
    finally:
        await app.state.engine.dispose()


app = Starlette(
    routes=[Route("/chat/{user_id}", chat_or_history, methods=["GET", "POST", "DELETE"])],
    lifespan=lifespan,
)

if __name__ == "__main__":
    try:
        # A URL whose driver is not installed fails here, in one line, rather than in the
        # server's startup (a traceback in its log).
        asyncio.run(engine_from_url(DATABASE_URL).dispose())
    except MissingDependencyError as exc:
        sys.exit(f"error: {exc}")
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
