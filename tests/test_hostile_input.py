"""Hostile input: every value round-trips exactly or is refused by a documented rule.

The rules are in :mod:`convostore.codec` (items), :func:`convostore.session.validate_session_id`
(session ids), :func:`convostore.schema.validate_identifier` (table names) and
``docs/reliability.md``. After every refusal the data already stored is checked unchanged.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import (
    ConfigurationError,
    InvalidItemError,
    InvalidLimitError,
    InvalidSessionIdError,
    PayloadTooLargeError,
    SQLAlchemySession,
    Tables,
)
from convostore._codec import MAX_DEPTH

from ._stores import MakeSession, make_store

HOSTILE_IDS = [
    "it's",
    'double"quote',
    "semi;colon; DROP TABLE agent_messages; --",
    "100%",
    "%",
    "_",
    "a_b",
    "a%b",
    "back\\slash",
    "new\nline\ttab",
    "ünïcødé 会话 🚀 \u200b",
    "Case",
    "case",
    "trailing ",
    " leading",
    "x" * 255,
    "🚀" * 255,
]


async def test_hostile_session_ids_round_trip_and_stay_apart(make_session: MakeSession) -> None:
    sessions = [make_session(sid) for sid in HOSTILE_IDS]
    for index, session in enumerate(sessions):
        await session.clear_session()  # the ids are fixed: start from nothing on a re-run
        await session.add_items([{"index": index, "id": session.session_id}])
    for index, session in enumerate(sessions):
        # Neither LIKE wildcards (%, _), case, trailing spaces nor collation merge sessions.
        assert await session.get_items() == [{"index": index, "id": session.session_id}]
    for session in sessions:
        assert await session.pop_item() is not None
        await session.clear_session()
        assert await session.get_items() == []


@pytest.mark.parametrize(
    "bad", ["x" * 256, "x" * 10_000, "", "nul\x00", "lone\udc00", 7, b"bytes", None]
)
def test_unusable_session_ids_are_refused(engine: AsyncEngine, bad: Any) -> None:
    with pytest.raises(InvalidSessionIdError):
        SQLAlchemySession(bad, engine=engine)
    with pytest.raises(InvalidSessionIdError):
        SQLAlchemySession.from_url(bad, url="sqlite://")


@pytest.mark.parametrize(
    "name",
    [
        "agent_messages; DROP TABLE agent_sessions",
        "agent_messages--",
        "x' OR '1'='1",
        'x"y',
        "t\x00",
        "tablé",
        "a.b",
        "UPPER",
        "x" * 64,
    ],
)
def test_table_names_carrying_sql_are_refused_at_construction(
    engine: AsyncEngine, name: str
) -> None:
    with pytest.raises(ConfigurationError, match="plain SQL identifier"):
        SQLAlchemySession("s", engine=engine, messages_table=name)
    with pytest.raises(ConfigurationError, match="plain SQL identifier"):
        SQLAlchemySession.from_url("s", url="sqlite://", sessions_table=name)


def _nested_dicts(depth: int) -> dict[str, Any]:
    """An item whose containers nest ``depth`` levels deep (the item is level 1)."""
    item: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        item = {"d": item}
    return item


def _nested_lists(depth: int) -> dict[str, Any]:
    value: Any = []  # level 2; the item holding it is level 1
    for _ in range(depth - 2):
        value = [value]
    return {"l": value}


class StrKey(str):
    pass


ROUND_TRIPS = [
    pytest.param({"nul": "a\x00b", "ctl": "\x01\x1f\x7f"}, id="control-characters"),
    pytest.param({"emoji": "🚀", "cjk": "会话", "rtl": "\u202eabc", "bom": "\ufeff"}, id="unicode"),
    pytest.param({"big": 10**100, "neg": -(10**40)}, id="huge-ints"),
    pytest.param({"f": 1e308, "tiny": 5e-324, "negzero": -0.0, "pi": math.pi}, id="floats"),
    pytest.param({"sql": "'); DELETE FROM agent_messages; --", "pct": "%_"}, id="sql-text"),
    pytest.param({"": "empty key", " ": "space key", "\x00": "nul key"}, id="odd-keys"),
    pytest.param(_nested_dicts(MAX_DEPTH), id="dicts-at-max-depth"),
    pytest.param(_nested_lists(MAX_DEPTH), id="lists-at-max-depth"),
]


@pytest.mark.parametrize("item", ROUND_TRIPS)
async def test_unusual_items_round_trip_exactly(session: SQLAlchemySession, item: Any) -> None:
    await session.add_items([item])
    (stored,) = await session.get_items()
    assert stored == item
    assert repr(stored) == repr(item)  # -0.0 stays -0.0, ints stay ints
    assert await session.pop_item() == item


async def test_str_subclass_keys_and_tuples_follow_the_documented_conversion(
    session: SQLAlchemySession,
) -> None:
    await session.add_items([{StrKey("k"): (1, 2, (3,))}])
    assert await session.get_items() == [{"k": [1, 2, [3]]}]  # JSON has one array type


def _self_containing() -> dict[str, Any]:
    item: dict[str, Any] = {"list": []}
    item["list"].append(item)
    return item


REFUSED = [
    pytest.param(_nested_dicts(10_000), "levels deep", id="dicts-10000-deep"),
    pytest.param(_nested_lists(10_000), "levels deep", id="lists-10000-deep"),
    pytest.param(_nested_dicts(MAX_DEPTH + 1), "levels deep", id="dicts-max-depth-plus-one"),
    pytest.param(_self_containing(), "contains itself", id="self-containing"),
    pytest.param({"nan": math.nan}, "JSON", id="nan"),
    pytest.param({"deep": [[{"inf": math.inf}]]}, "JSON", id="infinity"),
    pytest.param({"ninf": -math.inf}, "JSON", id="minus-infinity"),
    pytest.param({"s": "lone \ud800 high"}, "Unicode", id="lone-high-surrogate"),
    pytest.param({"s": "lone \udfff low"}, "Unicode", id="lone-low-surrogate"),
    pytest.param({"key\udc80": 1}, "Unicode", id="surrogate-in-key"),
    pytest.param({1: "int key"}, "not a str", id="int-key"),
    pytest.param({1.5: "float key"}, "not a str", id="float-key"),
    pytest.param({True: "bool key"}, "not a str", id="bool-key"),
    pytest.param({None: "none key"}, "not a str", id="none-key"),
    pytest.param({"ok": [{"deeper": {2: "x"}}]}, "not a str", id="nested-int-key"),
    pytest.param({"b": b"bytes"}, "JSON", id="bytes"),
    pytest.param({"s": {1, 2}}, "JSON", id="set"),
]


@pytest.mark.parametrize(("item", "reason"), REFUSED)
async def test_hostile_items_are_refused_and_nothing_changes(
    session: SQLAlchemySession, item: Any, reason: str
) -> None:
    await session.add_items([{"kept": 0}, {"kept": 1}])
    with pytest.raises(InvalidItemError, match=reason):
        await session.add_items([{"fine": True}, item])
    assert await session.get_items() == [{"kept": 0}, {"kept": 1}]
    await session.add_items([{"kept": 2}])  # the session and the process carry on
    assert await session.get_items(limit=1) == [{"kept": 2}]


async def test_limits(session: SQLAlchemySession) -> None:
    items = [{"n": n} for n in range(5)]
    await session.add_items(items)
    assert await session.get_items(limit=0) == []
    assert await session.get_items(limit=2) == items[-2:]
    assert await session.get_items(limit=10**12) == items
    assert await session.get_items(limit=2**63 - 1) == items
    # Beyond what a BIGINT can count: still "everything", never a driver overflow.
    assert await session.get_items(limit=2**63) == items
    assert await session.get_items(limit=10**30) == items
    for bad in (-1, -(10**12), 1.0, "2", True):
        with pytest.raises(InvalidLimitError):
            await session.get_items(limit=bad)  # type: ignore[arg-type]
    assert await session.get_items() == items


async def test_max_item_bytes_is_checked_before_anything_is_written(
    make_session: MakeSession,
) -> None:
    session = make_session(max_item_bytes=100)
    at_limit = {"t": "x" * (100 - len('{"t":""}'))}  # exactly 100 bytes of JSON
    await session.add_items([at_limit])
    with pytest.raises(PayloadTooLargeError, match=r"items\[1\] is 101 bytes .* limit of 100"):
        await session.add_items([{"ok": 1}, {"t": "x" * 93}])
    # Bytes, not characters: 60 two-byte characters are over a 100-byte limit.
    with pytest.raises(PayloadTooLargeError, match="128 bytes"):
        await session.add_items([{"t": "é" * 60}])
    assert await session.get_items() == [at_limit]
    assert make_session().max_item_bytes is None  # no limit unless asked


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", True])
def test_max_item_bytes_must_be_a_positive_int(engine: AsyncEngine, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_item_bytes"):
        SQLAlchemySession("s", engine=engine, max_item_bytes=bad)


async def test_corrupt_rows_are_skipped_logged_and_listed(
    engine: AsyncEngine,
    tables: Tables,
    make_session: MakeSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = make_session()
    neighbour = make_session(session.session_id + "-neighbour")
    await session.add_items([{"n": n} for n in range(5)])
    await neighbour.add_items([{"n": 0}])
    m = tables.messages
    async with engine.begin() as conn:
        for position, text in ((1, "{not json"), (3, "[" * 100_000 + "]" * 100_000)):
            await conn.execute(
                update(m)
                .where(m.c.session_id == session.session_id, m.c.position == position)
                .values(message_data=text)
            )
    with caplog.at_level(logging.WARNING, logger="convostore"):
        assert await session.get_items() == [{"n": 0}, {"n": 2}, {"n": 4}]
    assert "position 1" in caplog.text
    assert "position 3" in caplog.text
    corrupt = await make_store(engine, tables).find_corrupt_items(session_id=session.session_id)
    assert [(c.session_id, c.position) for c in corrupt] == [
        (session.session_id, 1),
        (session.session_id, 3),
    ]
    assert "nested too deeply" in corrupt[1].error
    # The whole table, in small pages: the same two rows among whatever else is there.
    everywhere = await make_store(engine, tables).find_corrupt_items(page_size=2)
    assert [c for c in everywhere if c.session_id == session.session_id] == corrupt
    assert (
        await make_store(engine, tables).find_corrupt_items(session_id=neighbour.session_id) == []
    )
