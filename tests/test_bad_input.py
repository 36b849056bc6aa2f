"""Bad input gets a typed error and changes nothing; corrupt rows are skipped, not returned."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import (
    ConfigurationError,
    ConvostoreError,
    InvalidItemError,
    InvalidLimitError,
    InvalidSessionIdError,
    SQLAlchemySession,
    Tables,
    corrupt_items_skipped,
)


class NotJSON:
    pass


@pytest.mark.parametrize(
    "bad",
    [
        [{"ok": 1}, {"obj": NotJSON()}],
        [{"ok": 1}, "a string"],
        [{"ok": 1}, ["a", "list"]],
        [{"ok": 1}, None],
        [{"nan": math.nan}],
        [{"inf": math.inf}],
        [{"surrogate": "\ud800"}],
        [{"bytes": b"raw"}],
        [{"set": {1, 2}}],
    ],
)
async def test_bad_items_are_refused_and_nothing_written(
    session: SQLAlchemySession, bad: list[Any]
) -> None:
    await session.add_items([{"kept": True}])
    with pytest.raises(InvalidItemError) as caught:
        await session.add_items(bad)
    assert isinstance(caught.value, ConvostoreError)
    assert isinstance(caught.value, TypeError)  # what json.dumps raised, for old callers
    assert await session.get_items() == [{"kept": True}]


async def test_items_must_be_a_list(session: SQLAlchemySession) -> None:
    with pytest.raises(InvalidItemError, match="list"):
        await session.add_items({"role": "user"})  # type: ignore[arg-type]


async def test_circular_item_is_refused(session: SQLAlchemySession) -> None:
    item: dict[str, Any] = {}
    item["self"] = item
    with pytest.raises(InvalidItemError):
        await session.add_items([item])
    assert await session.get_items() == []


@pytest.mark.parametrize("limit", [-1, 1.5, "3", True])
async def test_bad_limit(session: SQLAlchemySession, limit: Any) -> None:
    with pytest.raises(InvalidLimitError):
        await session.get_items(limit=limit)


@pytest.mark.parametrize(
    "session_id", ["", "x" * 256, 42, None, "nul\x00inside", "lone\ud800surrogate"]
)
def test_bad_session_id(engine: AsyncEngine, session_id: Any) -> None:
    with pytest.raises(InvalidSessionIdError):
        SQLAlchemySession(session_id, engine=engine)


@pytest.mark.parametrize(
    "name",
    ["messages; DROP TABLE x", "a-b", "Mixed", "1abc", "", "x" * 64, 'q"uote', "sp ace"],
)
def test_table_names_must_be_plain_identifiers(engine: AsyncEngine, name: str) -> None:
    with pytest.raises(ConfigurationError):
        SQLAlchemySession("s", engine=engine, sessions_table=name)
    with pytest.raises(ConfigurationError):
        SQLAlchemySession("s", engine=engine, messages_table=name)


def test_same_name_for_both_tables(engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError):
        SQLAlchemySession("s", engine=engine, sessions_table="t", messages_table="t")


@pytest.mark.parametrize("settings", [{"limit": -1}, {"lmit": 3}, 5])
def test_bad_session_settings(engine: AsyncEngine, settings: Any) -> None:
    with pytest.raises(ConfigurationError):
        SQLAlchemySession("s", engine=engine, session_settings=settings)


def test_engine_must_be_async(engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="AsyncEngine"):
        SQLAlchemySession("s", engine=engine.sync_engine)  # type: ignore[arg-type]


async def test_values_never_reach_sql_text(make_session: Callable[..., SQLAlchemySession]) -> None:
    hostile = "x'); DELETE FROM agent_messages; --"
    session = make_session(hostile)
    await session.add_items([{"content": hostile}])
    other = make_session()
    await other.add_items([{"n": 1}])
    assert await session.get_items() == [{"content": hostile}]
    assert await other.get_items() == [{"n": 1}]
    await session.clear_session()


async def test_corrupt_rows_are_skipped_and_logged(
    engine: AsyncEngine,
    tables: Tables,
    session: SQLAlchemySession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await session.add_items([{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}])
    m = tables.messages
    async with engine.begin() as conn:
        await conn.execute(
            update(m)
            .where(m.c.session_id == session.session_id, m.c.position == 1)
            .values(message_data="{not json")
        )
    skipped_before = corrupt_items_skipped()
    with caplog.at_level(logging.WARNING, logger="convostore"):
        assert await session.get_items() == [{"n": 0}, {"n": 2}, {"n": 3}]
        assert await session.get_items(limit=3) == [{"n": 2}, {"n": 3}]
    assert corrupt_items_skipped() == skipped_before + 2
    assert "position 1" in caplog.text
    assert session.session_id in caplog.text
    # pop skips the corrupt row as well, and removes it.
    assert await session.pop_item() == {"n": 3}
    assert await session.pop_item() == {"n": 2}
    assert await session.pop_item() == {"n": 0}
    assert await session.pop_item() is None
