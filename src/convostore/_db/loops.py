"""Engines and event loops: which engine serves the running loop.

An asyncio driver's connection belongs to the event loop that opened it (asyncpg and
aiomysql wait on that loop's futures), and SQLAlchemy's async pool queues waiters on a
loop as well. So one ``AsyncEngine`` with a pool cannot serve two loops at once, which is
what a sync web app does when each worker thread calls ``asyncio.run`` or
``Runner.run_sync``. SQLAlchemy's own rule: do not share a pooled engine between loops;
``dispose()`` it before another loop uses it, or use ``NullPool``.

- ``LoopEngines`` is what a session or store opened from a URL holds: one engine per
  event loop, made on demand from the same URL and options, so one object can be shared by
  threads that each run their own loop. An in-memory SQLite database is one connection that
  is the database itself; it is never duplicated, and its connection (aiosqlite runs it on
  a thread of its own) serves every loop, one caller at a time. The engines share what
  they know of the address (``Reach``, in ``convostore._db.engine``): once any of them has
  connected, a refused connection on another is a server restarting, and is retried.
- ``check_loop`` guards an engine the application passed in: used from a loop other than the one its
  pooled connections belong to, it raises [`EventLoopError`][convostore.errors.EventLoopError] at
  once instead of hanging or failing deep in the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import EventLoopError
from .engine import engine_from_url, engine_state

__all__ = ["LoopEngines", "check_loop"]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopEngines:
    """The engines of one session or store opened from a URL: one per event loop."""

    def __init__(self, url: str | URL, engine_kwargs: dict[str, Any]) -> None:
        """Make the first engine now (so a bad URL fails at construction), more on demand."""
        self._url = url
        self._kwargs = dict(engine_kwargs)
        self._first = engine_from_url(url, **self._kwargs)
        self._shared = engine_state(self._first).serves_any_loop
        self._lock = threading.Lock()
        self._by_loop: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
        self._guards: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._latest = self._first

    @property
    def first(self) -> AsyncEngine:
        """The engine made at construction (the one the first loop to use this gets)."""
        return self._first

    def current(self) -> AsyncEngine:
        """Return the engine for the running event loop (the latest one outside a loop)."""
        loop = _running_loop()
        if self._shared:
            return self._first
        if loop is None:
            return self._latest
        engine = self._by_loop.get(loop)
        if engine is not None:
            return engine
        with self._lock:
            engine = self._by_loop.get(loop)
            if engine is None:
                self._forget_closed_loops()
                in_use = any(e is self._first for e in self._by_loop.values())
                if in_use:
                    engine = engine_from_url(self._url, **self._kwargs)
                    # One address: a connection by any of them means it is the right one.
                    engine_state(engine).reach = engine_state(self._first).reach
                else:
                    engine = self._first
                self._by_loop[loop] = engine
                self._guards[loop] = _dispose_when_loop_ends(engine)
                self._latest = engine
        return engine

    def _forget_closed_loops(self) -> None:
        for loop, engine in list(self._by_loop.items()):
            if loop.is_closed():
                del self._by_loop[loop]
                self._guards.pop(loop, None)
                # Its connections cannot be closed politely any more: drop them.
                engine.sync_engine.dispose(close=False)

    async def dispose(self) -> None:
        """Dispose every engine: this loop's here, each other live loop's on its own loop."""
        if self._shared:
            await self._first.dispose()
            return
        current = _running_loop()
        with self._lock:
            owned = list(self._by_loop.items())
            self._by_loop.clear()
            self._guards.clear()
        for loop, engine in owned:
            if loop is current:
                await engine.dispose()
            elif loop.is_closed():
                engine.sync_engine.dispose(close=False)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(engine.dispose(), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(future), timeout=10)
            else:
                # An idle loop kept for later calls (Runner.run_sync keeps one per thread):
                # run it once, on a worker thread, to close its connections properly.
                try:
                    await asyncio.to_thread(loop.run_until_complete, engine.dispose())
                except Exception:
                    engine.sync_engine.dispose(close=False)
        if not any(engine is self._first for _, engine in owned):
            # Never used, or its loop ended and it was let go: it holds no connection.
            await self._first.dispose()


def _dispose_when_loop_ends(engine: AsyncEngine) -> AsyncGenerator[None, None]:
    """Arrange for ``engine`` to be disposed on the running loop before that loop closes.

    ``asyncio.run`` (and so ``Runner.run_sync``) finalizes the loop's asynchronous
    generators before closing it; this one, started here, disposes the engine then, while
    its connections can still be closed politely. Without that finalization (a loop closed
    by hand), the engine is let go when a later call finds its loop closed.
    """

    async def guard() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await engine.dispose()

    agen = guard()
    # Run it to its first yield now, on this loop, so the loop knows it.
    step = agen.asend(None)
    with contextlib.suppress(StopIteration):
        step.send(None)
    return agen


def check_loop(engine: AsyncEngine) -> AsyncEngine:
    """Return ``engine`` if it can serve the running loop; raise ``EventLoopError`` if not.

    A pool that holds connections opened on another event loop cannot serve this one. A
    pool with no connections (new, or after ``await engine.dispose()``) may move to a new
    loop; ``NullPool`` and SQLite (aiosqlite connections are not tied to a loop) serve any
    loop.
    """
    # Only pooled engines of loop-bound drivers record a loop (SQLite's aiosqlite
    # connections answer any loop).
    ref = engine_state(engine).connection_loop
    owner = ref() if ref is not None else None
    if owner is None:
        return engine
    loop = _running_loop()
    if loop is None or loop is owner:
        return engine
    pool: Any = engine.sync_engine.pool
    held = int(pool.checkedin()) + int(pool.checkedout())
    if held == 0:
        return engine
    where = "an event loop that has ended" if owner.is_closed() else "another event loop"
    raise EventLoopError(
        f"this engine's pool holds {held} connection(s) opened on {where}, and an asyncio "
        f"driver's connection serves only its own loop; create one engine per event loop, "
        f"`await engine.dispose()` before using it from another loop, pass "
        f"poolclass=NullPool, or open the session or store from a URL (it keeps an engine "
        f"per loop)"
    )
