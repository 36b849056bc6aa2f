"""Where the time between convostore and the raw-driver floor goes, layer by layer.

Usage (from the repository root, after ``pip install -e '.[dev,bench]'``)::

    python bench/layers.py --backend all      # about a minute and a half

For a tail read (``get_items(limit=20)`` on a 1,000-item session) and a one-item append, it
measures in one process, interleaved after a warm-up, on convostore's own engine (made by
``convostore.engine_from_url``, as in bench/bench.py; on SQLite the floor's tables share its
file) and tables:

- ``floor``: the raw-driver floor (bench/floor.py), its own driver pool;
- ``pool``: nothing but a connection taken from SQLAlchemy's pool and given back
  (``async with engine.connect(): pass``), what any store on a SQLAlchemy engine pays
  before its first statement;
- ``pool+driver`` (reads): the floor's own SQL and decoding, on the driver connection of a
  connection taken from SQLAlchemy's pool; the statement does not go through SQLAlchemy;
- ``core``: convostore's statements executed by bare SQLAlchemy Core, in one ``run_sync``
  call on an ``AsyncConnection`` as convostore's units of work are run (read: the same
  autocommit view convostore uses; append: one ``engine.begin()`` transaction), and the
  floor's decoding;
- ``runner``: the same work and decoding, run by convostore's runner (``run_read`` /
  ``run_write``: the retry loop, the cancellation shield, SQLite's writer queue);
- ``history``: convostore's history layer (``get`` / ``add`` on already encoded items:
  chunk assembly, its decoding, the bookkeeping that verifies a lost COMMIT);
- ``convostore``: the session itself (validation, encoding, the context).

It prints CPU time and wall time per operation and each layer's throughput over the
floor's. ``pool`` bounds what any store that takes its connections from SQLAlchemy's pool
can reach: ``floor ÷ (floor + pool)`` is printed as that ceiling. See
docs/performance.md ("Where the time goes").

``--profile`` then runs convostore's operations under cProfile and prints where the
client's time goes, by package (time waiting in ``epoll`` left out): convostore's own code,
its JSON codec, SQLAlchemy, the driver, the event loop, built-ins.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import pstats
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import workloads as wl
from bench import BACKENDS, DEFAULT_URLS, log
from impls import ConvostoreImpl, FloorImpl, bench_run, set_up
from items import item
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convostore import RetryPolicy
from convostore._codec import encode_item
from convostore._db import history
from convostore._db.engine import Database
from convostore._db.runner import run_read, run_write
from convostore._db.schema import utcnow

TAIL_SESSION = "layers-tail"
APPEND_SESSION = "layers-append"


class Layer:
    """One way of doing the operation; ``make(kind)`` returns an op for ``interleaved``."""

    def __init__(self, name: str, ops: dict[str, Callable[[], Any]]) -> None:
        self.name = name
        self.ops = ops


def _decode(texts: list[str]) -> list[Any]:
    return [json.loads(text) for text in texts]


async def _driver_tail(conn: AsyncConnection, store: Any, backend: str) -> list[str]:
    """The floor's tail read, on the driver connection under a SQLAlchemy connection."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if backend == "postgresql":
        rows = await driver.fetch(store.tail, TAIL_SESSION, 20)
    elif backend == "sqlite":
        rows = await driver.execute_fetchall(store.tail, (TAIL_SESSION, 20))
    else:
        async with driver.cursor() as cur:
            await cur.execute(store.tail, (TAIL_SESSION, 20))
            rows = await cur.fetchall()
    return [row[0] for row in reversed(rows)]


def layers(backend: str, engine: AsyncEngine, fl: FloorImpl, cs: ConvostoreImpl) -> list[Layer]:
    db = Database.of(engine, cs.tables)  # what a session on this engine and tables runs on
    sql = db.statements
    read_engine = db.read_engine  # the autocommit view convostore reads through
    retry = RetryPolicy()  # a session's default
    floor_tail = fl.session(TAIL_SESSION)
    floor_append = fl.session(APPEND_SESSION)
    cs_tail = cs.session(TAIL_SESSION)
    cs_append = cs.session(APPEND_SESSION)
    counter = iter(range(10**9))

    async def pool_read() -> None:  # also the pool's share of full1k
        async with read_engine.connect():
            pass

    async def pool_write() -> None:
        async with engine.connect():
            pass

    async def pool_driver_tail() -> None:
        async with read_engine.connect() as conn:
            _decode(await _driver_tail(conn, fl.store, backend))

    # Units of work as convostore writes them: plain functions of a synchronous Connection.
    def tail_rows(conn: Connection) -> list[Any]:
        result = conn.execute(sql.select_tail, {"sid": TAIL_SESSION, "lim": 20})
        return _decode([row.message_data for row in reversed(result.all())])

    def full_rows(conn: Connection) -> list[Any]:
        result = conn.execute(sql.select_all, {"sid": TAIL_SESSION})
        return _decode([row.message_data for row in result.all()])

    def append_one() -> Callable[[Connection], None]:
        text = encode_item(item(next(counter)))

        def write(conn: Connection) -> None:
            now = utcnow()
            if sql.append is not None:
                params = {"sid": APPEND_SESSION, "n": 1, "now": now, "texts": [text]}
                conn.execute(sql.append, params).scalars().all()
                return
            result = conn.execute(sql.reserve, {"sid": APPEND_SESSION, "n": 1, "now": now})
            end = result.lastrowid if sql.is_mysql else result.scalar_one()
            row = {
                "session_id": APPEND_SESSION,
                "position": end - 1,
                "message_data": text,
                "created_at": now,
                "chunk_count": 0,
            }
            conn.execute(sql.insert_items, row)

        return write

    async def core_tail() -> None:
        async with read_engine.connect() as conn:
            await conn.run_sync(tail_rows)

    async def core_full() -> None:
        async with read_engine.connect() as conn:
            await conn.run_sync(full_rows)

    async def core_append() -> None:
        write = append_one()
        async with engine.begin() as conn:
            await conn.run_sync(write)

    async def runner_tail() -> None:
        await run_read(db, tail_rows, retry=retry)

    async def runner_full() -> None:
        await run_read(db, full_rows, retry=retry)

    async def runner_append() -> None:
        await run_write(db, append_one(), retry=retry)

    async def history_tail() -> None:
        await history.get(db, TAIL_SESSION, 20, retry=retry)

    async def history_full() -> None:
        await history.get(db, TAIL_SESSION, None, retry=retry)

    async def history_append() -> None:
        await history.add(db, APPEND_SESSION, [encode_item(item(next(counter)))], retry=retry)

    async def floor_tail_op() -> None:
        await floor_tail.get_items(limit=20)

    async def cs_tail_op() -> None:
        await cs_tail.get_items(limit=20)

    async def floor_full_op() -> None:
        await floor_tail.get_items()

    async def cs_full_op() -> None:
        await cs_tail.get_items()

    async def floor_append_op() -> None:
        await floor_append.add_items([item(next(counter))])

    async def cs_append_op() -> None:
        await cs_append.add_items([item(next(counter))])

    return [
        Layer(
            "floor", {"tail20": floor_tail_op, "full1k": floor_full_op, "append1": floor_append_op}
        ),
        Layer("pool", {"tail20": pool_read, "full1k": pool_read, "append1": pool_write}),
        Layer("pool+driver", {"tail20": pool_driver_tail}),
        Layer("core", {"tail20": core_tail, "full1k": core_full, "append1": core_append}),
        Layer("runner", {"tail20": runner_tail, "full1k": runner_full, "append1": runner_append}),
        Layer(
            "history", {"tail20": history_tail, "full1k": history_full, "append1": history_append}
        ),
        Layer("convostore", {"tail20": cs_tail_op, "full1k": cs_full_op, "append1": cs_append_op}),
    ]


async def run_backend(backend: str, url: str, total: int, rounds: int) -> dict[str, Any]:
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    # One SQLite file for both: the pool+driver layer runs the floor's SQL on convostore's
    # connections.
    async with bench_run(backend, url, prefix, one_file=True) as run:
        fl, cs = FloorImpl(run), ConvostoreImpl(run)
        engine = cs.engine
        async with set_up([fl, cs]):
            for impl in (fl, cs):
                if impl.failure is not None:
                    raise RuntimeError(f"{impl.name} cannot run: {impl.failure}")
            for impl in (fl, cs):
                await impl.populate(TAIL_SESSION, 1000)
            out: dict[str, Any] = {}
            for kind in ("tail20", "full1k", "append1"):
                usable = [layer for layer in layers(backend, engine, fl, cs) if kind in layer.ops]
                results = await wl.interleaved(
                    usable,  # type: ignore[arg-type]
                    lambda layer, kind=kind: layer.ops[kind],
                    total,
                    rounds,
                )
                out[kind] = {name: result.summary() for name, result in results.items()}
            return out


_PACKAGES = ("sqlalchemy", "asyncpg", "aiomysql", "pymysql", "aiosqlite", "greenlet")


def _package(path: str, name: str) -> str | None:
    if path == "~":  # a built-in function or method
        return None if "epoll" in name else "built-ins"
    if "/convostore/_codec" in path:
        return "convostore codec"
    if "/convostore/" in path and "/bench/" not in path:
        return "convostore"
    for package in _PACKAGES:
        if f"/{package}/" in path:
            return package
    return "event loop" if "/asyncio/" in path or "/selectors" in path else "other"


async def profile(backend: str, url: str, total: int) -> dict[str, dict[str, float]]:
    """Share of the client's profiled time per package, for convostore's tail20 and append1."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    async with bench_run(backend, url, prefix) as run:
        cs = ConvostoreImpl(run)
        async with set_up([cs]):
            if cs.failure is not None:
                raise RuntimeError(f"convostore cannot run: {cs.failure}")
            return await _profile(cs, total)


async def _profile(cs: ConvostoreImpl, total: int) -> dict[str, dict[str, float]]:
    await cs.populate(TAIL_SESSION, 1000)
    tail, append = cs.session(TAIL_SESSION), cs.session(APPEND_SESSION)
    ops = {
        "tail20": lambda i: tail.get_items(limit=20),
        "append1": lambda i: append.add_items([item(i)]),
    }
    shares: dict[str, dict[str, float]] = {}
    for name, op in ops.items():
        for i in range(total // 10):  # warm-up
            await op(i)
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(total):
            await op(i)
        profiler.disable()
        by_package: collections.Counter[str] = collections.Counter()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        for (path, _line, func), (_cc, _nc, own, _cum, _callers) in stats.items():
            package = _package(path, func)
            if package is not None:
                by_package[package] += own
        spent = sum(by_package.values())
        shares[name] = {k: v / spent for k, v in by_package.most_common()}
        shares[name]["ms per op (profiled)"] = spent / total * 1e3
    return shares


def profile_lines(backend: str, shares: dict[str, dict[str, float]]) -> str:
    lines = []
    for op, by_package in shares.items():
        ms = by_package.pop("ms per op (profiled)")
        parts = ", ".join(f"{k} {v:.0%}" for k, v in by_package.items())
        lines.append(f"{backend} {op} ({ms:.3f} ms/op under cProfile): {parts}")
    return "\n".join(lines) + "\n"


def table(backend: str, out: dict[str, Any]) -> str:
    lines = [f"#### {backend}", ""]
    lines.append("| operation | layer | CPU ms/op | p50 ms | ops/s | ÷ floor ops/s |")
    lines.append("|---|---|--:|--:|--:|--:|")
    for kind, by_layer in out.items():
        base = by_layer["floor"]
        for name, s in by_layer.items():
            if s.get("error"):
                lines.append(f"| {kind} | {name} | failed: {s['error']} | | | |")
                continue
            ratio = s["ops_per_s"] / base["ops_per_s"]
            lines.append(
                f"| {kind} | {name} | {s['cpu_ms']:.3f} | {s['p50_ms']:.2f} | "
                f"{s['ops_per_s']:,.0f} | {ratio:.2f} |"
            )
        pool = by_layer["pool"]
        # Mean time per operation is 1 / (ops/s); the pool's time adds to the floor's.
        ceiling = (1 / base["ops_per_s"]) / (1 / base["ops_per_s"] + 1 / pool["ops_per_s"])
        lines.append(f"| {kind} | *ceiling on SQLAlchemy's pool* | | | | *{ceiling:.2f}* |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--ops", type=int, default=3000, help="operations per layer")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--profile", action="store_true", help="then profile convostore's operations by package"
    )
    parser.add_argument("--postgresql-url", default=DEFAULT_URLS["postgresql"])
    parser.add_argument("--mysql-url", default=DEFAULT_URLS["mysql"])
    args = parser.parse_args(argv)
    urls = {"sqlite": "", "postgresql": args.postgresql_url, "mysql": args.mysql_url}
    backends = BACKENDS if args.backend == "all" else [args.backend]
    figures: dict[str, Any] = {}
    for backend in backends:
        log(f"{backend}: starting")
        started = time.perf_counter()
        figures[backend] = asyncio.run(run_backend(backend, urls[backend], args.ops, args.rounds))
        log(f"{backend}: {time.perf_counter() - started:.0f}s")
        print(table(backend, figures[backend]))
        if args.profile:
            shares = asyncio.run(profile(backend, urls[backend], args.ops))
            figures[backend]["profile"] = shares
            print(profile_lines(backend, {k: dict(v) for k, v in shares.items()}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
