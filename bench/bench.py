"""Side-by-side benchmark: convostore vs a raw-driver floor vs the Agents SDK's store.

Usage (from the repository root, after ``pip install -e '.[dev,bench]'``)::

    python bench/bench.py --backend all            # about 10 minutes
    python bench/bench.py --backend sqlite --quick # seconds; --quick on all: about a minute

Every workload runs for the three implementations in the same process, interleaved, after a
warm-up, on one SQLAlchemy engine per backend (pool of 10) shared by all sessions; the floor
uses its own driver pool of 10. The tables are created for the run and dropped at its end.
Results are printed as a Markdown table and written as JSON to ``bench/results/`` (or
``--json PATH``). See docs/performance.md for how to read them.

Server URLs: ``--postgresql-url`` / ``--mysql-url``, or the test suite's environment variables
``CONVOSTORE_TEST_POSTGRES_URL`` / ``CONVOSTORE_TEST_MYSQL_URL``.
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
from impls import ConvostoreImpl, FloorImpl, Impl, SdkImpl, backend_engine, set_up
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
    backend: str, url: str, sizes: wl.Sizes, only: set[str] | None
) -> dict[str, Any]:
    """Run every workload on one backend; always drops its tables before returning."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    async with backend_engine(backend, url) as (engine, sqlite_path):
        try:
            server = await server_version(engine)
        except Exception as exc:
            return {"skipped": f"not reachable ({type(exc).__name__}: {exc})"}
        impls: list[Impl] = [
            FloorImpl(engine, prefix, sqlite_path),
            ConvostoreImpl(engine, prefix),
            SdkImpl(engine, prefix),
        ]
        async with set_up(impls):
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
                    lat, wall, cpu, counts = await wl.concurrent(impl, f"{prefix}-conc{rnd}")
                except Exception as exc:
                    result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    continue
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
    return {
        "server": server,
        "workloads": workloads,
        "ratios": report.ratios(workloads),
        "tail_p50_growth": report.tail_scaling(workloads),
        "targets": report.targets(workloads),
    }


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
        "--check", action="store_true", help="exit 1 if a performance target is not met"
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
        out["backends"][backend] = await run_backend(backend, urls[backend], sizes, only)
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
    failed_integrity = failed_target = False
    for backend, result in out["backends"].items():
        print(report.table(backend, result))
        for workload in result.get("workloads", {}).get("concurrent", {}).values():
            if workload.get("integrity") and any(workload["integrity"].values()):
                failed_integrity = True
    print("targets (convostore):")
    for backend, result in out["backends"].items():
        if "targets" in result:
            print(report.target_lines(backend, result["targets"]))
            failed_target |= not all(c["met"] for c in result["targets"])
    print(f"\nJSON: {path}  ({out['seconds']}s)")
    if failed_integrity:
        print("INTEGRITY ERRORS in the concurrent workload", file=sys.stderr)
        return 2
    return 1 if args.check and failed_target else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
