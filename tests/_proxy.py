"""A TCP proxy that cuts a database connection exactly around its ``COMMIT``.

It stands between the driver and a test server, so that a test can check what convostore
does when a write certainly did not commit (the ``COMMIT`` never arrived) and when it did but
the answer was lost. The ``proxied`` fixture (conftest.py) puts one in front of each server.
"""

from __future__ import annotations

import asyncio
import re

from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import Tables

_COMMIT = re.compile(rb"\bCOMMIT\b", re.IGNORECASE)


class CuttingProxy:
    """A TCP proxy that can cut the connection just before or just after a COMMIT passes."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.cut: str | None = None
        """``"before"``: drop the COMMIT; ``"after"``: deliver it, then drop the answer."""
        self.at = "commit"
        """``"commit"``: cut around the COMMIT statement; ``"next"``: around whatever the
        client sends next (a write of one statement in autocommit is its own COMMIT)."""
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(*self.target)
        answer_lost = asyncio.Event()

        async def upstream() -> None:
            while data := await c_reader.read(65536):
                # The COMMIT statement itself, not "BEGIN ... READ COMMITTED".
                if self.cut and (self.at == "next" or _COMMIT.search(data)):
                    mode, self.cut, self.at = self.cut, None, "commit"
                    self.cuts += 1
                    if mode == "before":
                        return  # dropped: the server never sees the COMMIT
                    answer_lost.set()
                    s_writer.write(data)
                    await s_writer.drain()
                    await asyncio.Event().wait()  # downstream cuts once the server answered
                s_writer.write(data)
                await s_writer.drain()

        async def downstream() -> None:
            while data := await s_reader.read(65536):
                if answer_lost.is_set():
                    return  # the server answered the COMMIT (it is done); drop the answer
                c_writer.write(data)
                await c_writer.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for writer in (c_writer, s_writer):
            writer.transport.abort()


Proxied = tuple[CuttingProxy, AsyncEngine, Tables]
"""The ``proxied`` fixture: the proxy, an engine that connects through it, tables there."""
