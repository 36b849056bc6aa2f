"""The workloads, timed: every implementation in turn, round after round, after a warm-up.

Sequential workloads run in rounds; in each round every implementation runs a slice of the
operations, in an order that rotates from round to round, so that a slow patch of the shared
machine hits all of them alike. The first round is a warm-up and is not recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from impls import Impl
from items import item, items

Op = Callable[[], Awaitable[Any]]


@dataclass
class Result:
    """The timings of one implementation on one workload."""

    latencies: list[float] = field(default_factory=list)
    wall: float | None = None
    """Elapsed time of a concurrent run; ``None`` for sequential workloads."""
    ops: int = 0
    cpu: float = 0.0
    """CPU seconds this process spent in the operations (all threads): the client's cost,
    which a busy machine disturbs far less than elapsed time."""
    error: str | None = None
    integrity: dict[str, int] | None = None

    def summary(self) -> dict[str, Any]:
        if self.error is not None or not self.latencies:
            return {"error": self.error or "no samples"}
        lat = sorted(self.latencies)
        elapsed = self.wall if self.wall is not None else sum(lat)
        out: dict[str, Any] = {
            "ops": self.ops,
            "ops_per_s": self.ops / elapsed,
            "p50_ms": _percentile(lat, 50) * 1e3,
            "p99_ms": _percentile(lat, 99) * 1e3,
            "mean_ms": sum(lat) / len(lat) * 1e3,
            "cpu_ms": self.cpu / self.ops * 1e3,
        }
        if self.integrity is not None:
            out["integrity"] = self.integrity
        return out


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


@dataclass
class Sizes:
    """How many operations each workload runs, per implementation."""

    rounds: int
    append1: int
    append10: int
    tail: int
    full1k: int
    pop: int
    concurrent_rounds: int
    small: int = 10_000
    large: int = 100_000
    concurrent_sessions: int = 50
    concurrent_appends: int = 40
    """The concurrent workload: this many sessions append this many items each, at once."""


# Many short rounds: on a shared machine a slow patch then hits every implementation alike.
QUICK = Sizes(
    rounds=10, append1=300, append10=100, tail=500, full1k=50, pop=200, concurrent_rounds=1
)
# A check that everything runs and the concurrent workload keeps its integrity, for CI: its
# figures are too few to compare.
SMOKE = Sizes(
    rounds=2,
    append1=20,
    append10=10,
    tail=20,
    full1k=4,
    pop=10,
    concurrent_rounds=1,
    small=1000,
    large=5000,
    concurrent_sessions=10,
    concurrent_appends=10,
)
FULL = Sizes(
    rounds=30,
    append1=2000,
    append10=600,
    tail=4000,
    full1k=300,
    pop=1000,
    concurrent_rounds=3,
)


async def interleaved(
    impls: list[Impl], make_op: Callable[[Impl], Op], total: int, rounds: int
) -> dict[str, Result]:
    """Run ``total`` operations per implementation, in ``rounds`` rotating slices + warm-up."""
    results = {impl.name: Result() for impl in impls}
    ops = {impl.name: make_op(impl) for impl in impls}
    per_round = max(1, total // rounds)
    for rnd in range(rounds + 1):
        shift = rnd % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            result = results[impl.name]
            if result.error is not None:
                continue
            op = ops[impl.name]
            try:
                cpu = time.process_time()
                for _ in range(per_round):
                    start = time.perf_counter()
                    await op()
                    elapsed = time.perf_counter() - start
                    if rnd > 0:  # round 0 warms up connections, caches and the server
                        result.latencies.append(elapsed)
                        result.ops += 1
                if rnd > 0:
                    result.cpu += time.process_time() - cpu
            except Exception as exc:
                result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return results


def appender(batch: int, sid: str) -> Callable[[Impl], Op]:
    def make(impl: Impl) -> Op:
        session = impl.session(sid)
        counter = iter(range(0, 10**9, batch))

        async def op() -> None:
            await session.add_items(items(next(counter), batch))

        return op

    return make


def reader(sid: str, limit: int | None, expect: int) -> Callable[[Impl], Op]:
    def make(impl: Impl) -> Op:
        session = impl.session(sid)

        async def op() -> None:
            got = await session.get_items(limit=limit)
            if len(got) != expect:
                raise AssertionError(f"read {len(got)} items, expected {expect}")

        return op

    return make


def popper(sid: str) -> Callable[[Impl], Op]:
    def make(impl: Impl) -> Op:
        session = impl.session(sid)

        async def op() -> None:
            if await session.pop_item() is None:
                raise AssertionError("pop_item returned None on a populated session")

        return op

    return make


async def concurrent(
    impl: Impl, prefix: str, sessions: int = 50, appends: int = 40
) -> tuple[list[float], float, float, dict[str, int]]:
    """``sessions`` tasks append ``appends`` items each, all at once; then check integrity.

    Returns the append latencies, the wall time, the CPU time, and the counts of lost, duplicated,
    misordered and foreign items found when reading every session back.
    """
    latencies: list[float] = []
    sids = [f"{prefix}-{k}" for k in range(sessions)]
    # Made before the clock starts: some stores connect (and create tables) in the constructor.
    objects = [impl.session(sid) for sid in sids]

    async def worker(k: int) -> None:
        session = objects[k]
        for j in range(appends):
            start = time.perf_counter()
            await session.add_items([item(j, tag=f"c{k}-")])
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(worker(k) for k in range(sessions)))
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu

    counts = {"lost": 0, "duplicated": 0, "misordered": 0, "foreign": 0}
    for k, sid in enumerate(sids):
        expected = [_key(item(j, tag=f"c{k}-")) for j in range(appends)]
        index = {key: j for j, key in enumerate(expected)}
        got = [_key(x) for x in await impl.session(sid).get_items()]
        seen = Counter(got)
        counts["lost"] += sum(1 for key in expected if seen[key] == 0)
        counts["duplicated"] += sum(seen[key] - 1 for key in expected if seen[key] > 1)
        counts["foreign"] += sum(1 for key in got if key not in index)
        order = [index[key] for key in dict.fromkeys(got) if key in index]
        counts["misordered"] += sum(1 for a, b in itertools.pairwise(order) if b < a)
    return latencies, wall, cpu, counts


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
