"""How many convostore functions, in how many modules, one session operation passes.

A maintainer's measure of how far a call travels through the package: each operation is run
once to warm up, then once under a profiler that records every convostore function entered
(``async`` functions count once, however often they resume).

    python bench/callpath.py                      # SQLite, a store's session and a plain one
    python bench/callpath.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import convostore
from convostore import SessionStore, SQLAlchemySession

PACKAGE = Path(convostore.__file__).resolve().parent


def _module_of(filename: str) -> str | None:
    path = Path(filename).resolve()
    if PACKAGE not in path.parents:
        return None
    return ".".join(("convostore", *path.relative_to(PACKAGE).with_suffix("").parts))


async def _trace(call: Callable[[], Awaitable[Any]]) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        module = _module_of(frame.f_code.co_filename)
        if module is not None:
            seen.add((module, frame.f_code.co_qualname))

    sys.setprofile(profile)
    try:
        await call()
    finally:
        sys.setprofile(None)
    return seen


async def measure(session: Any, label: str) -> None:
    item = {"role": "user", "content": "hello"}
    operations: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("add_items", lambda: session.add_items([item, item])),
        ("get_items", lambda: session.get_items()),
        ("pop_item", lambda: session.pop_item()),
        ("clear_session", lambda: session.clear_session()),
    ]
    for name, call in operations:
        await call()  # warm: tables created, statements built, engine connected
        await session.add_items([item, item])
        seen = await _trace(call)
        modules = sorted({module for module, _ in seen})
        print(f"{label:<14} {name:<14} {len(seen):>3} functions in {len(modules):>2} modules")
        if os.environ.get("CALLPATH_VERBOSE"):
            for module, function in sorted(seen):
                print(f"    {module}:{function}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{tmp}/callpath.db"
        async with SQLAlchemySession.from_url("callpath-plain", url=url, create_tables=True) as s:
            await measure(s, "session")
        async with SessionStore(url, create_tables=True, max_items_per_session=100) as store:
            await measure(store.session("callpath-store", user_id="u"), "store session")
            await store.delete_session("callpath-store")


if __name__ == "__main__":
    asyncio.run(main())
