"""The four operations and their guarantees, on every backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from sqlalchemy import select

import convostore._db.history
from convostore import Session, SessionSettings, SQLAlchemySession


async def test_is_a_session(session: SQLAlchemySession) -> None:
    assert isinstance(session, Session)


async def test_new_session_is_empty(session: SQLAlchemySession) -> None:
    assert await session.get_items() == []
    assert await session.get_items(limit=5) == []
    assert await session.pop_item() is None


async def test_items_come_back_in_order(session: SQLAlchemySession) -> None:
    await session.add_items([{"n": 0}, {"n": 1}])
    await session.add_items([{"n": 2}])
    await session.add_items([{"n": i} for i in range(3, 10)])
    assert await session.get_items() == [{"n": i} for i in range(10)]


async def test_empty_batch_writes_nothing(session: SQLAlchemySession) -> None:
    await session.add_items([])
    assert await session.get_items() == []
    assert await session.pop_item() is None


async def test_order_does_not_depend_on_the_clock(
    session: SQLAlchemySession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every write sees the same instant, then a clock running backwards: order must hold.
    frozen = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(convostore._db.history, "utcnow", lambda: frozen)
    await session.add_items([{"n": 0}])
    await session.add_items([{"n": 1}])
    backwards = (frozen - dt.timedelta(hours=h) for h in itertools.count(1))
    monkeypatch.setattr(convostore._db.history, "utcnow", lambda: next(backwards))
    for n in range(2, 6):
        await session.add_items([{"n": n}])
    assert await session.get_items() == [{"n": n} for n in range(6)]
    assert await session.get_items(limit=3) == [{"n": n} for n in range(3, 6)]


async def test_limit_returns_latest_in_order(session: SQLAlchemySession) -> None:
    await session.add_items([{"n": i} for i in range(20)])
    assert await session.get_items(limit=3) == [{"n": 17}, {"n": 18}, {"n": 19}]
    assert await session.get_items(limit=1) == [{"n": 19}]
    assert await session.get_items(limit=0) == []
    assert await session.get_items(limit=100) == [{"n": i} for i in range(20)]


async def test_session_settings_limit_and_explicit_limit_wins(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    writer = make_session()
    await writer.add_items([{"n": i} for i in range(10)])
    for settings in ({"limit": 4}, SessionSettings(limit=4)):
        reader = make_session(writer.session_id, session_settings=settings)
        assert reader.session_settings.limit == 4
        assert await reader.get_items() == [{"n": i} for i in range(6, 10)]
        assert await reader.get_items(limit=2) == [{"n": 8}, {"n": 9}]


async def test_pop_returns_latest_then_none(session: SQLAlchemySession) -> None:
    await session.add_items([{"n": 0}, {"n": 1}, {"n": 2}])
    assert await session.pop_item() == {"n": 2}
    assert await session.pop_item() == {"n": 1}
    await session.add_items([{"n": 3}])
    assert await session.get_items() == [{"n": 0}, {"n": 3}]
    assert await session.pop_item() == {"n": 3}
    assert await session.pop_item() == {"n": 0}
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_clear_removes_only_that_session(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    a, b = make_session(), make_session()
    await a.add_items([{"who": "a"}] * 3)
    await b.add_items([{"who": "b"}] * 2)
    await a.clear_session()
    assert await a.get_items() == []
    assert await b.get_items() == [{"who": "b"}] * 2
    await a.clear_session()  # clearing an empty session is fine
    await a.add_items([{"again": True}])
    assert await a.get_items() == [{"again": True}]


async def test_clear_unknown_session_is_a_no_op(session: SQLAlchemySession) -> None:
    await session.clear_session()
    assert await session.get_items() == []


async def test_session_ids_are_exact(make_session: Callable[..., SQLAlchemySession]) -> None:
    base = f"conv-{id(make_session)}"
    ids = [f"C{base[1:]}-x", f"{base}-x", f"C{base[1:]}-x ", f"{base}-é", f"{base}-e"]
    assert len(set(ids)) == 5
    for index, session_id in enumerate(ids):
        await make_session(session_id).add_items([{"i": index}])
    for index, session_id in enumerate(ids):
        assert await make_session(session_id).get_items() == [{"i": index}]
        await make_session(session_id).clear_session()


async def test_longest_session_id(make_session: Callable[..., SQLAlchemySession]) -> None:
    session_id = "é" * 200 + "x" * 55
    assert len(session_id) == 255
    session = make_session(session_id)
    await session.add_items([{"long": True}])
    assert await make_session(session_id).get_items() == [{"long": True}]
    await session.clear_session()


async def test_a_new_object_sees_the_same_history(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    first = make_session()
    await first.add_items([{"turn": 1}])
    second = make_session(first.session_id)
    await second.add_items([{"turn": 2}])
    assert await first.get_items() == [{"turn": 1}, {"turn": 2}]


async def test_text_round_trips_exactly(session: SQLAlchemySession) -> None:
    items = [
        {"text": "héllo wörld — 你好 — مرحبا — 🚀🔥👩‍👩‍👧"},
        {"nul": "a\u0000b", "ctl": "\t\n\r\x1b\x7f", "quote": "'\"\\`;--"},
        {"nested": {"list": [1, 2.5, None, True, False, "x"], "empty": {}, "e": []}},
        {"big": 2**62, "neg": -(2**62), "float": 1e-300, "zero": -0.0},
    ]
    await session.add_items(items)
    got = await session.get_items()
    assert got == items
    assert str(got[3]["zero"]) == "-0.0"


async def stored_count(session: SQLAlchemySession) -> int | None:
    s = session.tables.sessions
    async with session.engine.connect() as conn:
        result = await conn.execute(
            select(s.c.item_count).where(s.c.session_id == session.session_id)
        )
        return result.scalar_one_or_none()


async def test_item_count_follows_every_write(session: SQLAlchemySession) -> None:
    assert await stored_count(session) is None
    await session.add_items([{"n": 0}, {"n": 1}, {"n": 2}])
    await session.add_items([{"n": 3}])
    assert await stored_count(session) == 4
    await session.pop_item()
    assert await stored_count(session) == 3
    for _ in range(5):
        await session.pop_item()
    assert await stored_count(session) == 0
    await session.add_items([{"n": 4}])
    assert await stored_count(session) == 1
    await session.clear_session()
    assert await stored_count(session) is None


async def test_item_count_exact_under_concurrency(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session = make_session()
    await session.add_items([{"n": n} for n in range(30)])

    async def worker(w: int) -> None:
        mine = make_session(session.session_id)
        for i in range(5):
            await mine.add_items([{"w": w, "i": i}, {"w": w, "i": i}])
            await mine.pop_item()

    await asyncio.gather(*(worker(w) for w in range(8)))
    assert await stored_count(session) == len(await session.get_items()) == 30 + 8 * 5
