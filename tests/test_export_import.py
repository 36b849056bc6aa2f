"""export/import: JSON Lines round trips that are exact, refusing or skipping existing sessions."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import tracemalloc
from typing import Any

import pytest

from convostore import (
    InvalidInputError,
    SessionExistsError,
    SessionNotFoundError,
    SessionStore,
    engine_from_url,
)

from ._stores import NewStore, make_store

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)


def make_records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        count = rng.randint(0, 5)
        first = rng.choice([0, 0, 3, 10])
        items = [
            {"role": rng.choice(["user", "assistant"]), "content": f'msg {i}.{k} é ✓ \n"q"'}
            if k % 2 == 0
            else {"type": "function_call_output", "call_id": f"c{k}", "output": [1, 2.5, None]}
            for k in range(count)
        ]
        gap = rng.choice([0, 2])
        if not count:
            # An empty session has no first item: its first position is its next one.
            first, gap = first + gap, 0
        records.append(
            {
                "convostore": 1,
                "session_id": f"exp-{i:05d}",
                "user_id": rng.choice([None, "u1", "u2", "Ünï ✓"]),
                "metadata": rng.choice([{}, {"title": f"T{i}", "tags": ["a", 1, None]}]),
                "created_at": (T0 + dt.timedelta(seconds=i)).isoformat(),
                "updated_at": (T0 + dt.timedelta(seconds=i, microseconds=17)).isoformat(),
                "first_position": first,
                "next_position": first + count + gap,
                "items": items,
            }
        )
    return records


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


async def export_text(store: SessionStore, **kwargs: Any) -> str:
    out = io.StringIO()
    await store.export(out, **kwargs)
    return out.getvalue()


async def test_round_trip_of_1000_sessions_is_exact(new_store: NewStore) -> None:
    source, target = await new_store(), await new_store()
    records = make_records(1000)
    loaded = await source.import_(io.StringIO(jsonl(records)))
    assert loaded.sessions == 1000
    assert loaded.items == sum(len(r["items"]) for r in records)

    progress: list[int] = []
    out = io.StringIO()
    report = await source.export(out, progress=lambda s, i: progress.append(s))
    first = out.getvalue()
    assert report.sessions == 1000
    assert sum(progress) == 1000
    exported = [json.loads(line) for line in first.splitlines()]
    assert exported == records  # ids, times, positions, metadata, items: all as given

    await target.import_(io.StringIO(first))
    assert await export_text(target) == first
    # The items read back through a session are the same objects, at the same positions.
    sample = records[123]
    page = await target.get_page(sample["session_id"], after=-1, limit=100)
    assert [p.item for p in page.items] == sample["items"]
    assert [p.position for p in page.items] == [
        sample["first_position"] + k for k in range(len(sample["items"]))
    ]
    info = await target.require_session_info(sample["session_id"])
    assert info.item_count == len(sample["items"])
    assert info.created_at.isoformat() == sample["created_at"]
    assert info.updated_at.isoformat() == sample["updated_at"]


async def test_export_selected_sessions_and_positions_after_trim(new_store: NewStore) -> None:
    source, target = await new_store(), await new_store()
    session = source.session("trimmed")
    await session.add_items([{"n": i} for i in range(8)])
    await source.trim("trimmed", keep_last=3)
    await session.pop_item()
    await source.session("other").add_items([{"o": 1}])
    text = await export_text(source, session_ids=["trimmed"])
    assert len(text.splitlines()) == 1
    await target.import_(io.StringIO(text))
    assert await target.session("trimmed").get_items() == [{"n": 5}, {"n": 6}]
    page = await target.get_page("trimmed")
    assert [p.position for p in page.items] == [5, 6]
    # New writes continue after the exported session's last position, as at the source.
    await target.session("trimmed").add_items([{"n": 99}])
    await session.add_items([{"n": 99}])
    assert [p.position for p in (await target.get_page("trimmed")).items] == [
        p.position for p in (await source.get_page("trimmed")).items
    ]
    with pytest.raises(SessionNotFoundError):
        await export_text(source, session_ids=["nope"])


async def test_existing_sessions_refused_or_skipped(new_store: NewStore) -> None:
    store = await new_store()
    records = make_records(5)
    await store.import_(io.StringIO(jsonl(records[:2])))
    with pytest.raises(SessionExistsError):
        await store.import_(io.StringIO(jsonl(records)))
    report = await store.import_(io.StringIO(jsonl(records)), on_existing="skip")
    assert report.skipped == [r["session_id"] for r in records[:2]]
    assert report.sessions == 3
    assert (await store.count_sessions())[0] == 5


async def test_bad_input_names_the_line(new_store: NewStore) -> None:
    store = await new_store()
    good = jsonl(make_records(1))
    bad_lines = [
        "not json",
        json.dumps({"session_id": "x"}),
        json.dumps({**make_records(1)[0], "items": [1]}),
        json.dumps({**make_records(1)[0], "created_at": "2026-01-01T00:00:00"}),
        json.dumps({**make_records(1)[0], "session_id": ""}),
        json.dumps({**make_records(1)[0], "user_id": "lone \ud800"}),
        json.dumps({**make_records(1)[0], "user_id": "u" * 256}),
    ]
    for bad in bad_lines:
        with pytest.raises(InvalidInputError, match="line 3"):
            await store.import_(io.StringIO(good.replace("exp-00000", "ok") + "\n" + bad))
    with pytest.raises(InvalidInputError):
        await store.import_([], on_existing="merge")


class _Sink(io.TextIOBase):
    def __init__(self) -> None:
        self.size = 0

    def write(self, text: str) -> int:
        self.size += len(text)
        return len(text)


async def test_export_streams_in_constant_memory(new_store: NewStore) -> None:
    made = await new_store()
    tables = made.tables
    # One connection: a pool of warm and cold connections would add per-connection
    # allocations (prepared statements) that have nothing to do with the export.
    engine = engine_from_url(made.engine.url, pool_size=1, max_overflow=0)
    store = make_store(engine, tables)
    filler = "x" * 300
    try:
        for session_id, count in (("small", 2_000), ("large", 20_000)):
            record = {**make_records(1)[0], "session_id": session_id}
            record.update(first_position=0, next_position=count)
            record["items"] = [{"k": k, "text": filler} for k in range(count)]
            await store.import_([json.dumps(record)])
            del record

        async def peak(session_id: str) -> tuple[int, int]:
            await store.export(_Sink(), session_ids=[session_id])  # warm the caches
            sink = _Sink()
            tracemalloc.start()
            try:
                await store.export(sink, session_ids=[session_id])
                return tracemalloc.get_traced_memory()[1], sink.size
            finally:
                tracemalloc.stop()

        small_peak, small_size = await peak("small")
        large_peak, large_size = await peak("large")
    finally:
        await engine.dispose()
    assert large_size - small_size > 5_000_000
    # Ten times the items, the same memory: holding the export (or the session) would add
    # the 5 MB difference here.
    assert large_peak - small_peak < 1_000_000, (small_peak, large_peak)


async def test_export_a_users_sessions(new_store: NewStore) -> None:
    store = await new_store()
    records = make_records(40)
    await store.import_(io.StringIO(jsonl(records)))
    text = await export_text(store, user_id="u1")
    assert [json.loads(line) for line in text.splitlines()] == [
        r for r in records if r["user_id"] == "u1"
    ]
