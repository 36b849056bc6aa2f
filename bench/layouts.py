"""What each operation costs on a sharded or partitioned layout against the plain server.

Layouts (the test suite's, tests/_layouts.py): ``spider`` (a MariaDB Spider head over two
InnoDB data nodes, private servers on this machine) against the shared MariaDB, and
``pg_partitioned`` (the messages and chunks tables hash-partitioned by ``session_id`` into 8,
in a database of its own) against the shared PostgreSQL. For each pair the same convostore
sessions, with the same items, run ``append1``, ``tail20`` (on a session of 10,000 items) and
``pop``, interleaved in rounds after a warm-up round, so a slow patch of the machine hits both
alike. Prints ops/s, p50 and the layout's ratio to the plain server.

    python bench/layouts.py [--layout spider|pg_partitioned|all] [--ops 1000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from items import item, items
from report import number
from tests import _layouts
from tests._databases import server_url
from tests._stores import drop_tables, table_options

from convostore import (
    SQLAlchemySession,
    Tables,
    build_tables,
    create_tables,
    engine_from_url,
)

LAYOUT_NAMES = ("spider", "pg_partitioned")
HISTORY = 10_000
Op = Callable[[], Awaitable[Any]]


def _load_layout(name: str) -> None:
    # Each layout's module registers it on import.
    importlib.import_module(f"tests._{name}")


class Side:
    """One store (plain server or layout): its engine, tables and the sessions of the run."""

    def __init__(self, label: str, url: str, layout: Any | None) -> None:
        self.label, self.layout = label, layout
        self.engine = engine_from_url(url, pool_size=10, max_overflow=0)
        tag = uuid.uuid4().hex[:6]
        self.tables: Tables = build_tables(f"lb_{tag}_s", f"lb_{tag}_m")
        self.latencies: dict[str, list[float]] = {}

    def session(self, sid: str) -> SQLAlchemySession:
        return SQLAlchemySession(sid, engine=self.engine, **table_options(self.tables))

    async def setup(self) -> None:
        create = self.layout.create_tables if self.layout else create_tables
        await create(self.engine, self.tables)
        self.history = self.session("history")
        for start in range(0, HISTORY, 500):
            await self.history.add_items(items(start, 500))
        self.writer = self.session("writer")
        await self.writer.add_items(items(0, 20))

    async def close(self) -> None:
        drop = self.layout.drop_tables if self.layout else drop_tables
        await drop(self.engine, self.tables)
        await self.engine.dispose()

    def ops(self) -> dict[str, Op]:
        counter = iter(range(10**9))
        return {
            "append1": lambda: self.writer.add_items([item(next(counter), "bench")]),
            "tail20": lambda: self.history.get_items(limit=20),
            "pop": self.writer.pop_item,
        }


async def _time(op: Op, n: int) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        await op()
        out.append(time.perf_counter() - began)
    return out


async def compare(layout_name: str, ops: int, rounds: int) -> list[str]:
    layout = _layouts.make_layout(layout_name)
    backend = _layouts.LAYOUT_BACKENDS[layout_name]
    url = await layout.start()
    try:
        plain = Side(f"plain {backend}", server_url(backend), None)
        laid = Side(layout_name, url, layout)
        sides = [plain, laid]
        for side in sides:
            await side.setup()
        try:
            per_round = max(1, ops // (rounds - 1))
            for r in range(rounds):
                for name in ("append1", "tail20", "pop"):
                    # pops follow appends, so the writer's session never runs dry
                    order = sides if r % 2 == 0 else sides[::-1]
                    for side in order:
                        times = await _time(side.ops()[name], per_round)
                        if r:  # the first round warms up
                            side.latencies.setdefault(name, []).extend(times)
            lines = [
                f"| operation | plain {backend} ops/s | {layout_name} ops/s | "
                f"plain p50 ms | {layout_name} p50 ms | {layout_name} ÷ plain |",
                "|---|--:|--:|--:|--:|--:|",
            ]
            for name in ("append1", "tail20", "pop"):
                a, b = plain.latencies[name], laid.latencies[name]
                ra, rb = len(a) / sum(a), len(b) / sum(b)
                lines.append(
                    f"| {name} | {number(ra)} | {number(rb)} | "
                    f"{statistics.median(a) * 1e3:.2f} | {statistics.median(b) * 1e3:.2f} | "
                    f"{rb / ra:.2f} |"
                )
            return lines
        finally:
            for side in sides:
                await side.close()
    finally:
        await layout.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=[*LAYOUT_NAMES, "all"], default="all")
    parser.add_argument("--ops", type=int, default=1000, help="timed operations per kind and side")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    for name in LAYOUT_NAMES if args.layout == "all" else (args.layout,):
        _load_layout(name)
        began = time.monotonic()
        lines = await compare(name, args.ops, args.rounds)
        print(f"\n#### {name} ({time.monotonic() - began:.0f} s)\n")
        print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
