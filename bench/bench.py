"""Side-by-side benchmark: convostore, a raw-driver floor and the stores users leave behind.

Usage (from the repository root, after ``pip install -e '.[dev,bench]'``)::

    python bench/bench.py --backend all            # about 20 minutes on 2 busy cores
    python bench/bench.py --backend all --quick    # a few minutes
    python bench/bench.py --backend all --smoke    # checks that it runs (CI), no figures
    python bench/bench.py --backend all --check    # exit 1 naming every missed target

Measured in the same process, interleaved, after a warm-up, on the same items:

- ``floor``: the cheapest correct store, by hand on the raw async driver (bench/floor.py);
- ``convostore``;
- the Agents SDK's stores (the *peers*): on SQLite ``agents.SQLiteSession`` (its default:
  sqlite3 in a thread), ``agents.extensions.memory.AsyncSQLiteSession`` (aiosqlite) and
  ``SQLAlchemySession``; on PostgreSQL and MariaDB/MySQL ``SQLAlchemySession``;
- the SDK's ``RedisSession`` on a local Redis, as a reference line (``--redis-url``; an
  empty URL leaves it out). Its keys are named after the run and deleted at its end;
- with ``--async-path``, convostore once more on an engine with a listener (SQLAlchemy's
  full path), to show what its fast paths buy.

Each implementation has its own engine (same URL, same pool settings: 10 connections) or
its own driver pool, and on SQLite its own database file, all in WAL mode with the same
``synchronous`` setting as the SDK's SQLiteSession (SQLite's default, FULL; the run reads it
back from each implementation's connection and checks). An engine is never shared: the
SDK's ``SQLAlchemySession`` installs a pool ``connect`` listener on the engine it is given,
and convostore takes its SQLite fast path (a worker thread with a pysqlite connection) only
on an engine convostore made itself (``convostore.engine_from_url`` or
``SQLAlchemySession.from_url``) while nothing else listens to it. A shared engine would
silently measure convostore's slow path; the run checks that the fast path is on (on
PostgreSQL and MariaDB: the hot statements on the driver's cursor).

Results are printed as Markdown tables (each implementation's ops/s and its ratios to the
fastest peer and to the floor) and written as JSON to ``bench/results/`` (or ``--json
PATH``). Tables and keys are created for the run and dropped at its end. See
docs/performance.md for how to read them.

Server URLs: ``--postgresql-url`` / ``--mysql-url``, or the test suite's environment variables
``CONVOSTORE_TEST_POSTGRES_URL`` / ``CONVOSTORE_TEST_MYSQL_URL``; ``--redis-url`` or
``CONVOSTORE_BENCH_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import report
import workloads as wl
from impls import ConvostoreImpl, Impl, bench_run, implementations, set_up
from sqlalchemy.ext.asyncio import AsyncEngine

BACKENDS = ["sqlite", "postgresql", "mysql"]
DEFAULT_URLS = {
    "postgresql": os.environ.get(
        "CONVOSTORE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get(
        "CONVOSTORE_TEST_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"
    ),
}
DEFAULT_REDIS_URL = os.environ.get("CONVOSTORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def server_version(engine: AsyncEngine) -> str:
    name = engine.dialect.name
    if name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    async with engine.connect() as conn:
        query = "SHOW server_version" if name == "postgresql" else "SELECT VERSION()"
        version = str((await conn.exec_driver_sql(query)).scalar_one())
    return f"PostgreSQL {version}" if name == "postgresql" else f"MySQL/MariaDB {version}"


async def run_backend(
    backend: str,
    url: str,
    redis_url: str | None,
    sizes: wl.Sizes,
    only: set[str] | None,
    async_path: bool = False,
) -> dict[str, Any]:
    """Run every workload on one backend; always drops its tables and keys before returning."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    async with bench_run(backend, url, prefix, redis_url=redis_url, async_path=async_path) as run:
        impls = implementations(run)
        cs = next(impl for impl in impls if isinstance(impl, ConvostoreImpl))
        try:
            server = await server_version(cs.engine)
        except Exception as exc:
            for impl in impls:  # the engines made so far; nothing else is open yet
                dispose = getattr(getattr(impl, "engine", None), "dispose", None)
                if dispose is not None:
                    await dispose()
            return {"skipped": f"not reachable ({type(exc).__name__}: {exc})"}
        async with set_up(impls):
            for impl in impls:
                if impl.failure is not None:
                    log(f"{backend}: {impl.label} cannot run: {impl.failure}")
            return await _workloads(backend, server, impls, sizes, prefix, only)


async def _workloads(
    backend: str,
    server: str,
    impls: list[Impl],
    sizes: wl.Sizes,
    prefix: str,
    only: set[str] | None,
) -> dict[str, Any]:
    usable = [impl for impl in impls if impl.failure is None]
    results: dict[str, dict[str, wl.Result]] = {}
    settings: dict[str, Any] = {}
    for impl in usable:
        found = await impl.sqlite_settings()
        if found is not None:
            settings[impl.name] = found
    await _close_sessions(usable)

    def wanted(name: str) -> bool:
        return only is None or name in only

    pop_count = sizes.pop + sizes.pop // sizes.rounds + 10  # the warm-up round pops too
    populate = [("tail-small", sizes.small), ("tail-large", sizes.large), ("full", 1000)]
    populate.append(("pop", pop_count))
    needed = {
        "tail-small": wanted("tail20_10k") or wanted("tail20_100k"),
        "tail-large": wanted("tail20_100k") or wanted("tail20_10k"),
        "full": wanted("full1k"),
        "pop": wanted("pop"),
    }
    started = time.perf_counter()
    for impl in usable:
        for sid, n in populate:
            if needed[sid]:
                await impl.populate(f"{prefix}-{sid}", n)
    log(f"{backend}: populated in {time.perf_counter() - started:.1f}s")

    plan: list[tuple[str, Any, int]] = [
        ("append1", wl.appender(1, f"{prefix}-append1"), sizes.append1),
        ("append10", wl.appender(10, f"{prefix}-append10"), sizes.append10),
        ("tail20_10k", wl.reader(f"{prefix}-tail-small", 20, 20), sizes.tail),
        ("tail20_100k", wl.reader(f"{prefix}-tail-large", 20, 20), sizes.tail),
        ("full1k", wl.reader(f"{prefix}-full", None, 1000), sizes.full1k),
        ("pop", wl.popper(f"{prefix}-pop"), sizes.pop),
    ]
    for name, make_op, total in plan:
        if not wanted(name):
            continue
        started = time.perf_counter()
        results[name] = await wl.interleaved(usable, make_op, total, sizes.rounds)
        await _close_sessions(usable)
        log(f"{backend}: {name} in {time.perf_counter() - started:.1f}s")

    if wanted("concurrent"):
        started = time.perf_counter()
        conc = {impl.name: wl.Result(wall=0.0) for impl in usable}
        for rnd in range(sizes.concurrent_rounds):
            shift = rnd % len(usable)
            for impl in usable[shift:] + usable[:shift]:
                result = conc[impl.name]
                if result.error is not None:
                    continue
                try:
                    lat, wall, cpu, counts = await wl.concurrent(
                        impl,
                        f"{prefix}-conc{rnd}",
                        sizes.concurrent_sessions,
                        sizes.concurrent_appends,
                    )
                except Exception as exc:
                    result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    continue
                finally:
                    await _close_sessions([impl])
                result.latencies += lat
                result.ops += len(lat)
                result.cpu += cpu
                result.wall = (result.wall or 0.0) + wall
                merged = result.integrity or dict.fromkeys(counts, 0)
                result.integrity = {k: merged[k] + counts[k] for k in counts}
        results["concurrent"] = conc
        log(f"{backend}: concurrent in {time.perf_counter() - started:.1f}s")

    workloads: dict[str, Any] = {}
    for name, per_impl in results.items():
        workloads[name] = {impl: result.summary() for impl, result in per_impl.items()}
        for impl in impls:
            if impl.failure is not None:
                workloads[name][impl.name] = {"error": impl.failure}
    out: dict[str, Any] = {
        "server": server,
        "implementations": {impl.name: impl.info() for impl in impls},
        "workloads": workloads,
    }
    if settings:
        out["sqlite_settings"] = settings
    out["fastest_peer"] = {name: report.fastest_peer(out, name) for name in workloads}
    out["ratios"] = report.ratios(out)
    out["tail_p50_growth"] = report.tail_scaling(out)
    out["targets"] = report.targets(backend, out)
    return out


async def _close_sessions(impls: list[Impl]) -> None:
    for impl in impls:
        await impl.close_sessions()


def machine() -> dict[str, Any]:
    memory = None
    try:
        with open("/proc/meminfo") as meminfo:
            kb = int(meminfo.readline().split()[1])
            memory = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    versions = {}
    for package in (
        "convostore",
        "sqlalchemy",
        "asyncpg",
        "aiomysql",
        "aiosqlite",
        "openai-agents",
        "redis",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="fewer operations (~1 min)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few operations on small sessions: checks that it runs (CI), no figures",
    )
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    parser.add_argument("--only", help="comma-separated workloads, e.g. append1,tail20_100k")
    parser.add_argument("--postgresql-url", default=DEFAULT_URLS["postgresql"])
    parser.add_argument("--mysql-url", default=DEFAULT_URLS["mysql"])
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="the Redis of the RedisSession reference line; empty: leave it out",
    )
    parser.add_argument(
        "--async-path",
        action="store_true",
        help="also measure convostore on an engine with a listener (SQLAlchemy's full path)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 naming every missed performance target (not in --smoke mode)",
    )
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = wl.SMOKE if args.smoke else wl.QUICK if args.quick else wl.FULL
    only = set(args.only.split(",")) if args.only else None
    backends = BACKENDS if args.backend == "all" else [args.backend]
    urls = {"sqlite": "", "postgresql": args.postgresql_url, "mysql": args.mysql_url}
    started = dt.datetime.now(dt.timezone.utc)
    out: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/bench.py", *(argv or sys.argv[1:])]),
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
        "machine": machine(),
        "backends": {},
    }
    for backend in backends:
        log(f"{backend}: starting")
        out["backends"][backend] = await run_backend(
            backend, urls[backend], args.redis_url or None, sizes, only, args.async_path
        )
    out["seconds"] = round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)

    path = args.json
    if path is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")

    m = out["machine"]
    print(
        f"\nconvostore benchmark, {out['mode']} mode, {out['started']}: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory']}, Python {m['python']}\n"
    )
    failed_integrity = False
    misses: list[str] = []
    for backend, result in out["backends"].items():
        print(report.summary_table(backend, result))
        print(report.detail_table(backend, result))
        concurrent = result.get("workloads", {}).get("concurrent", {})
        for name in ("floor", "convostore"):  # ours: the peers' figures are only reported
            integrity = concurrent.get(name, {}).get("integrity")
            if integrity and any(integrity.values()):
                failed_integrity = True
        if "targets" in result:
            misses += report.missed(backend, result["targets"])
    print("targets (convostore):")
    for backend, result in out["backends"].items():
        if "targets" in result:
            print(report.target_lines(backend, result["targets"]))
    print(f"\nJSON: {path}  ({out['seconds']}s)")
    if failed_integrity:
        print("INTEGRITY ERRORS in the concurrent workload", file=sys.stderr)
        return 2
    if not args.check:
        return 0
    if args.smoke:
        print("--check: targets are not checked in --smoke mode", file=sys.stderr)
        return 0
    skipped = [b for b, result in out["backends"].items() if "skipped" in result]
    misses += [f"{b}: not measured ({out['backends'][b]['skipped']})" for b in skipped]
    if misses:
        print(f"{len(misses)} target(s) missed:", file=sys.stderr)
        for line in misses:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
