"""Soak: N processes x M concurrent sessions of mixed adds, pops and reads, then an audit.

Usage (from the repository root)::

    python bench/soak.py --url postgresql://postgres@127.0.0.1/test --seconds 30
    python bench/soak.py --url mysql://root@127.0.0.1/test -n 2 -m 8 --seconds 30
    python bench/soak.py --url sqlite:///soak.db --seconds 10

Every task of every process owns one session and also works on a few "hot" sessions shared
by all tasks of all processes (so writers and poppers of one session contend, across
processes). Each step is an ``add_items`` of 1 to 3 items, a ``pop_item`` or a
``get_items(limit)``, on the task's own session or a hot one. Every item carries its session,
its writer and the writer's sequence number, so the audit at the end can check, against
what each process saw acknowledged:

- every acknowledged add is stored or was popped, exactly once, never both;
- nothing is stored or popped that was not written (a write that raised left nothing,
  except one whose commit outcome was reported unknown: at most once);
- no item was popped twice;
- each writer's items are in the order written, in every read and in the final history,
  and every batch is contiguous;
- no read or pop ever returned an item of another session.

The processes start together once every one has connected, which is said on standard
error. It prints operations per second and the audit's result, and exits with status 1 if
the audit failed (2 if an operation raised an error that should not happen). The tables are
made for the run and dropped at its end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from convostore import (
    CommitOutcomeUnknownError,
    ConvostoreError,
    SQLAlchemySession,
    build_tables,
    create_tables,
    engine_from_url,
)
from convostore.migrate import version_table_for

HOT_SESSIONS = 4
"""Sessions shared by every task of every process."""

_READY_TIMEOUT = 120.0
"""Seconds the processes wait for each other to start and connect."""


def _session_ids(run: str, processes: int, per_process: int) -> tuple[list[str], list[str]]:
    own = [f"soak-{run}-p{p}-t{t}" for p in range(processes) for t in range(per_process)]
    hot = [f"soak-{run}-hot{h}" for h in range(HOT_SESSIONS)]
    return own, hot


async def _task(
    session: SQLAlchemySession,
    hot: list[SQLAlchemySession],
    writer: str,
    deadline: float,
    rng: random.Random,
    log: dict[str, Any],
) -> None:
    seq = 0
    while time.monotonic() < deadline:
        target = session if rng.random() < 0.7 else rng.choice(hot)
        sid = target.session_id
        roll = rng.random()
        began = time.perf_counter()
        try:
            if roll < 0.55:
                batch = [
                    {
                        "sid": sid,
                        "w": writer,
                        "s": seq + k,
                        "b": seq,
                        "pad": "x" * rng.randint(0, 200),
                    }
                    for k in range(rng.randint(1, 3))
                ]
                seq += len(batch)
                try:
                    await target.add_items(batch)
                    log["acked"].extend([sid, writer, item["s"]] for item in batch)
                except CommitOutcomeUnknownError:
                    log["unknown"].extend([sid, writer, item["s"]] for item in batch)
                kind = "add"
            elif roll < 0.75:
                try:
                    item = await target.pop_item()
                except CommitOutcomeUnknownError:
                    # The pop may have taken an item that nobody will ever see: the audit
                    # allows one missing item per such pop, in that session.
                    log["unknown_pops"].append(sid)
                    item = None
                if item is not None:
                    if item["sid"] != sid:
                        log["leaks"].append(f"pop on {sid} returned an item of {item['sid']}")
                    log["popped"].append([item["sid"], item["w"], item["s"]])
                kind = "pop"
            else:
                items = await target.get_items(limit=rng.choice([None, 1, 5, 20]))
                log["problems"].extend(_read_problems(sid, items))
                kind = "read"
        except ConvostoreError as exc:
            log["errors"].append(f"{type(exc).__name__}: {exc}")
            kind = "error"
        log["ops"][kind] += 1
        log["latency"].append(time.perf_counter() - began)


def _read_problems(sid: str, items: list[dict[str, Any]]) -> list[str]:
    """Items of another session, or a writer's items out of order, in one read."""
    problems = []
    last: dict[str, int] = {}
    for item in items:
        if item["sid"] != sid:
            problems.append(f"a read of {sid} returned an item of {item['sid']}")
        if last.get(item["w"], -1) >= item["s"]:
            problems.append(f"a read of {sid} returned writer {item['w']}'s items out of order")
        last[item["w"]] = item["s"]
    return problems


async def _worker_main(args: dict[str, Any], process: int, ready: Any) -> dict[str, Any]:
    engine = engine_from_url(args["url"], pool_size=args["sessions"] + 2, max_overflow=4)
    tables = args["tables"]
    # Connect before the clock starts, and start together: an engine that never connected
    # takes a refused connection for a wrong address and does not retry it, so a process
    # still starting when the server goes down would fail, not wait.
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
    await asyncio.to_thread(ready.wait, _READY_TIMEOUT)

    def make(sid: str) -> SQLAlchemySession:
        return SQLAlchemySession(
            sid, engine=engine, sessions_table=tables[0], messages_table=tables[1]
        )

    own, hot_ids = _session_ids(args["run"], args["processes"], args["sessions"])
    hot = [make(sid) for sid in hot_ids]
    log: dict[str, Any] = {
        "acked": [],
        "unknown": [],
        "unknown_pops": [],
        "popped": [],
        "problems": [],
        "leaks": [],
        "errors": [],
        "ops": Counter(),
        "latency": [],
    }
    deadline = time.monotonic() + args["seconds"]
    rng = random.Random(f"{args['run']}-{process}")
    tasks = []
    for t in range(args["sessions"]):
        sid = own[process * args["sessions"] + t]
        seeded = random.Random(rng.random())
        tasks.append(_task(make(sid), hot, f"p{process}t{t}", deadline, seeded, log))
    await asyncio.gather(*tasks)
    await engine.dispose()
    latency = sorted(log.pop("latency"))
    log["p50_ms"] = 1000 * latency[len(latency) // 2] if latency else 0.0
    log["p99_ms"] = 1000 * latency[int(len(latency) * 0.99)] if latency else 0.0
    return log


def _worker(args: dict[str, Any], process: int, results: Any, ready: Any) -> None:
    results.put((process, asyncio.run(_worker_main(args, process, ready))))


async def _audit(args: dict[str, Any], logs: list[dict[str, Any]]) -> list[str]:
    """Read every session back and check it against what the processes saw."""
    failures: list[str] = []
    acked = [tuple(key) for log in logs for key in log["acked"]]
    unknown = {tuple(key) for log in logs for key in log["unknown"]}
    popped = [tuple(key) for log in logs for key in log["popped"]]
    for log in logs:
        failures += log["problems"] + log["leaks"]

    engine = engine_from_url(args["url"])
    tables = args["tables"]
    own, hot = _session_ids(args["run"], args["processes"], args["sessions"])
    stored: list[tuple[str, str, int]] = []
    try:
        for sid in own + hot:
            session = SQLAlchemySession(
                sid, engine=engine, sessions_table=tables[0], messages_table=tables[1]
            )
            items = await session.get_items()
            failures += _read_problems(sid, items)
            failures += _batch_problems(sid, items)
            stored += [(item["sid"], item["w"], item["s"]) for item in items]
    finally:
        await engine.dispose()

    popped_twice = [key for key, n in Counter(popped).items() if n > 1]
    if popped_twice:
        failures.append(f"{len(popped_twice)} items popped more than once, e.g. {popped_twice[0]}")
    seen = Counter(stored) + Counter(popped)
    duplicated = [key for key, n in seen.items() if n > 1]
    if duplicated:
        failures.append(f"{len(duplicated)} items stored/popped more than once: {duplicated[:3]}")
    acked_set = set(acked)
    lost = Counter(key[0] for key in acked if key not in seen)
    may_be_lost = Counter(sid for log in logs for sid in log["unknown_pops"])
    for sid, count in lost.items():
        if count > may_be_lost[sid]:
            failures.append(
                f"{count} acknowledged items of {sid} lost ({may_be_lost[sid]} pops of it "
                f"had an unknown outcome)"
            )
    ghosts = [key for key in seen if key not in acked_set and key not in unknown]
    if ghosts:
        failures.append(f"{len(ghosts)} items stored that no write acknowledged: {ghosts[:3]}")
    return failures


def _batch_problems(sid: str, items: list[dict[str, Any]]) -> list[str]:
    """A batch whose stored items are not contiguous (pops only ever take the tail)."""
    problems = []
    for prev, item in itertools.pairwise(items):
        if item["w"] == prev["w"] and item["b"] == prev["b"] and item["s"] != prev["s"] + 1:
            problems.append(f"a batch of writer {item['w']} in {sid} has a gap")
    starts = defaultdict(list)
    for index, item in enumerate(items):
        starts[(item["w"], item["b"])].append(index)
    for (writer, _), indexes in starts.items():
        if indexes != list(range(indexes[0], indexes[0] + len(indexes))):
            problems.append(f"a batch of writer {writer} in {sid} is interleaved with another")
    return problems


async def _setup(args: dict[str, Any], drop: bool = False) -> None:
    engine = engine_from_url(args["url"])
    tables = build_tables(*args["tables"])
    try:
        if drop:
            async with engine.begin() as conn:
                await conn.run_sync(tables.metadata.drop_all)
                # create_tables stamped the migration version in a table of its own.
                version_table = version_table_for(tables.sessions.name)
                await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {version_table}")
        else:
            await create_tables(engine, tables)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="database URL (plain or async driver)")
    parser.add_argument("-n", "--processes", type=int, default=2)
    parser.add_argument(
        "-m", "--sessions", type=int, default=8, help="concurrent sessions per process"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the tables after the run")
    opts = parser.parse_args(argv)

    run = uuid.uuid4().hex[:8]
    args = {
        "url": opts.url,
        "processes": opts.processes,
        "sessions": opts.sessions,
        "seconds": opts.seconds,
        "run": run,
        "tables": (f"soak_{run}_sessions", f"soak_{run}_messages"),
    }
    asyncio.run(_setup(args))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Barrier(opts.processes + 1)
    workers = [
        context.Process(target=_worker, args=(args, p, results, ready))
        for p in range(opts.processes)
    ]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    ready.wait(_READY_TIMEOUT)
    # A test that restarts the server mid-run waits for this line.
    print("soak: workers started, every one connected", file=sys.stderr, flush=True)
    logs = [results.get(timeout=opts.seconds + 300)[1] for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - began

    failures = asyncio.run(_audit(args, logs))
    if not opts.keep:
        asyncio.run(_setup(args, drop=True))

    ops: Counter[str] = Counter()
    for log in logs:
        ops.update(log["ops"])
    total = sum(ops.values())
    errors = [error for log in logs for error in log["errors"]]
    summary = {
        "backend": engine_from_url(opts.url).dialect.name,
        "processes": opts.processes,
        "sessions_per_process": opts.sessions,
        "hot_sessions": HOT_SESSIONS,
        "seconds": opts.seconds,
        "wall_seconds": round(elapsed, 1),
        "ops": dict(ops),
        "ops_per_second": round(total / opts.seconds, 1),
        "p50_ms": round(max(log["p50_ms"] for log in logs), 2),
        "p99_ms": round(max(log["p99_ms"] for log in logs), 2),
        "acknowledged_items": sum(len(log["acked"]) for log in logs),
        "popped_items": sum(len(log["popped"]) for log in logs),
        "commit_outcome_unknown": {
            "added_items": sum(len(log["unknown"]) for log in logs),
            "pops": sum(len(log["unknown_pops"]) for log in logs),
        },
        "errors": len(errors),
        "integrity": "OK" if not failures else "FAILED",
    }
    print(json.dumps(summary, indent=2))
    for line in failures[:20] + errors[:5]:
        print(f"  {line}", file=sys.stderr)
    if failures:
        return 1
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
