"""SessionStore: shared engine and statements, the four operations, trim, paging, tracing."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import (
    ConfigurationError,
    InvalidInputError,
    PayloadTooLargeError,
    SessionInfo,
    SessionNotFoundError,
    SessionStore,
    SQLAlchemySession,
    Tables,
)
from convostore._observability import record_retry, traced

from ._stores import NewStore, count_rows, session_on

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)


def sid() -> str:
    return f"store-{uuid.uuid4().hex}"


async def test_sessions_share_the_engine_and_operations(
    store: SessionStore, engine: AsyncEngine, tables: Tables
) -> None:
    a, b = store.session(sid()), store.session(sid())
    assert a.engine is b.engine is store.engine is engine
    assert a._context is b._context is store._context
    # A plain SQLAlchemySession on the same engine and tables shares them too.
    plain = session_on(engine, tables, sid())
    # The statements are built once per engine and table set.
    assert plain._context.database().statements is store._context.database().statements
    assert isinstance(a, SQLAlchemySession)


async def test_four_operations_and_exact_count(store: SessionStore) -> None:
    session = store.session(sid())
    assert await store.get_session_info(session.session_id) is None
    await session.add_items([{"n": i} for i in range(5)])
    await session.add_items([{"n": 5}])
    assert await session.get_items() == [{"n": i} for i in range(6)]
    assert await session.get_items(2) == [{"n": 4}, {"n": 5}]
    assert await session.pop_item() == {"n": 5}
    info = await store.require_session_info(session.session_id)
    assert info.item_count == 5 == await count_rows(store, session.session_id)
    assert info.created_at <= info.updated_at
    assert info.user_id is None
    assert info.metadata == {}
    await session.clear_session()
    assert await store.get_session_info(session.session_id) is None


async def test_max_items_per_session_trims_on_write(
    new_store: NewStore,
) -> None:
    store = await new_store(max_items_per_session=4)
    session = store.session(sid())
    await session.add_items([{"n": i} for i in range(3)])
    await session.add_items([{"n": i} for i in range(3, 7)])
    assert await session.get_items() == [{"n": i} for i in range(3, 7)]
    await session.add_items([{"n": i} for i in range(7, 17)])
    assert await session.get_items() == [{"n": i} for i in range(13, 17)]
    info = await store.require_session_info(session.session_id)
    assert info.item_count == 4 == await count_rows(store, session.session_id)
    page = await store.get_page(session.session_id, limit=10)
    assert [p.position for p in page.items] == [13, 14, 15, 16]


async def test_max_items_exact_under_concurrent_writers(
    new_store: NewStore,
) -> None:
    store = await new_store(max_items_per_session=10)
    session_id = sid()

    async def writer(w: int) -> None:
        session = store.session(session_id)
        for b in range(5):
            await session.add_items([{"w": w, "b": b, "i": i} for i in range(3)])

    await asyncio.gather(*(writer(w) for w in range(8)))
    items = await store.session(session_id).get_items()
    assert len(items) == 10
    info = await store.require_session_info(session_id)
    assert info.item_count == 10 == await count_rows(store, session_id)
    page = await store.get_page(session_id, limit=20)
    assert [p.position for p in page.items] == list(range(110, 120))


async def test_trim(store: SessionStore) -> None:
    session = store.session(sid())
    await session.add_items([{"n": i} for i in range(10)])
    assert await store.trim(session.session_id, keep_last=3) == 7
    assert await session.get_items() == [{"n": 7}, {"n": 8}, {"n": 9}]
    assert await store.trim(session.session_id, keep_last=3) == 0
    assert await session.pop_item() == {"n": 9}
    assert await store.trim(session.session_id, keep_last=1) == 1
    assert await session.get_items() == [{"n": 8}]
    assert await store.trim(session.session_id, keep_last=0) == 1
    info = await store.require_session_info(session.session_id)
    assert info.item_count == 0 == await count_rows(store, session.session_id)
    assert await store.trim(sid(), keep_last=2) == 0
    with pytest.raises(InvalidInputError):
        await store.trim(session.session_id, keep_last=-1)


async def test_get_page_backwards_and_forwards(store: SessionStore) -> None:
    session = store.session(sid())
    await session.add_items([{"n": i} for i in range(23)])
    page = await store.get_page(session.session_id, limit=10)
    assert [p.position for p in page.items] == list(range(13, 23))
    assert [p.item for p in page.items] == [{"n": i} for i in range(13, 23)]
    assert page.has_more
    seen = [p.position for p in page.items]
    while page.has_more:
        page = await store.get_page(session.session_id, before=page.first_position, limit=10)
        seen = [p.position for p in page.items] + seen
    assert seen == list(range(23))
    forward: list[int] = []
    page = await store.get_page(session.session_id, after=-1, limit=7)
    forward += [p.position for p in page.items]
    while page.has_more:
        page = await store.get_page(session.session_id, after=page.last_position, limit=7)
        forward += [p.position for p in page.items]
    assert forward == list(range(23))
    window = await store.get_page(session.session_id, after=4, before=9, limit=50)
    assert [p.position for p in window.items] == [5, 6, 7, 8]
    empty = await store.get_page(session.session_id, before=0)
    assert empty.items == []
    assert not empty.has_more
    with pytest.raises(SessionNotFoundError):
        await store.get_page(sid())
    with pytest.raises(InvalidInputError):
        await store.get_page(session.session_id, limit=0)
    with pytest.raises(InvalidInputError):
        await store.get_page(session.session_id, before="3")  # type: ignore[arg-type]


async def test_delete_session(store: SessionStore) -> None:
    keep, gone = store.session(sid()), store.session(sid())
    await keep.add_items([{"k": 1}])
    await gone.add_items([{"g": 1}, {"g": 2}])
    assert await store.delete_session(gone.session_id) is True
    assert await store.delete_session(gone.session_id) is False
    assert await gone.get_items() == []
    assert await count_rows(store, gone.session_id) == 0
    assert await keep.get_items() == [{"k": 1}]


async def test_store_from_url_owns_its_engine(tmp_path: Any) -> None:
    async with SessionStore(f"sqlite:///{tmp_path / 'own.db'}", create_tables=True) as store:
        await store.session("a").add_items([{"a": 1}])
        assert (await store.require_session_info("a")).item_count == 1
        assert "own.db" in repr(store)
    with pytest.raises(ConfigurationError):
        SessionStore(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SessionStore("sqlite://", max_items_per_session=0)
    with pytest.raises(ConfigurationError):
        SessionStore("sqlite://", max_item_bytes=0)


async def test_max_item_bytes_applies_to_the_stores_sessions(store: SessionStore) -> None:
    limited = SessionStore(
        store.engine,
        sessions_table=store.tables.sessions.name,
        messages_table=store.tables.messages.name,
        max_item_bytes=100,
    )
    session = limited.session(sid())
    await session.add_items([{"text": "x" * 50}])
    with pytest.raises(PayloadTooLargeError):
        await session.add_items([{"text": "x" * 200}])
    assert await session.get_items() == [{"text": "x" * 50}]


async def test_operations_log_and_span(
    store: SessionStore, caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    _exporter.clear()
    session = store.session(sid())
    with caplog.at_level(logging.DEBUG, logger="convostore"):
        await session.add_items([{"a": 1}, {"a": 2}])
        await store.get_page(session.session_id)
    messages = [r.getMessage() for r in caplog.records]
    assert any("add_items" in m and session.session_id in m and "items=2" in m for m in messages)
    spans = {s.name: s for s in _exporter.get_finished_spans()}
    span = spans["convostore.add_items"]
    attributes = dict(span.attributes or {})
    assert attributes["convostore.session_id"] == session.session_id
    assert attributes["convostore.item_count"] == 2
    assert attributes["convostore.retries"] == 0
    assert attributes["db.system"] == store.engine.dialect.name
    assert "convostore.get_page" in spans


async def test_retries_are_counted() -> None:
    _exporter.clear()
    async with traced("probe", "sqlite", "x") as record:
        record_retry()
        record_retry()
    assert record.retries == 2
    (span,) = _exporter.get_finished_spans()
    assert dict(span.attributes or {})["convostore.retries"] == 2
    record_retry()  # outside an operation: nothing to count, no error


async def test_user_and_metadata(store: SessionStore) -> None:
    session_id = sid()
    first = store.session(session_id, user_id="User-7", metadata={"title": "Trip ✓", "n": [1]})
    assert await store.get_session_info(session_id) is None  # nothing written yet
    await first.add_items([{"a": 1}])
    info = await store.require_session_info(session_id)
    assert info.user_id == "User-7"
    assert info.metadata == {"title": "Trip ✓", "n": [1]}
    # A later handle with other values does not overwrite what the session has.
    await store.session(session_id, user_id="other", metadata={"x": 1}).add_items([{"a": 2}])
    assert await store.require_session_info(session_id) == SessionInfo(
        session_id=session_id,
        created_at=info.created_at,
        updated_at=(await store.require_session_info(session_id)).updated_at,
        item_count=2,
        user_id="User-7",
        metadata={"title": "Trip ✓", "n": [1]},
    )
    updated = await store.update_session(session_id, metadata={"title": "Oslo"})
    assert updated.metadata == {"title": "Oslo"}
    assert updated.user_id == "User-7"
    updated = await store.update_session(session_id, user_id=None)
    assert updated.user_id is None
    assert updated.metadata == {"title": "Oslo"}
    updated = await store.update_session(session_id, user_id="user-7", metadata=None)
    assert updated.user_id == "user-7"
    assert updated.metadata == {}
    with pytest.raises(SessionNotFoundError):
        await store.update_session(sid(), user_id="u")
    for bad in ([1], {"x": float("nan")}, {"x": object()}, {"x": "y" * 70_000}):
        with pytest.raises(InvalidInputError):
            await store.update_session(session_id, metadata=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            store.session(sid(), metadata=bad)  # type: ignore[arg-type]
    for bad_user in ("", 5, "u" * 256, "a\x00b", "lone \ud800"):
        with pytest.raises(InvalidInputError):
            store.session(sid(), user_id=bad_user)  # type: ignore[arg-type]


async def test_user_ids_compare_exactly(new_store: NewStore) -> None:
    store = await new_store()
    for user in ("Ann", "ann", "ann "):
        await store.session(f"s-{user!r}", user_id=user).add_items([{"u": user}])
    for user in ("Ann", "ann", "ann "):
        page = await store.list_sessions(user_id=user)
        assert [s.user_id for s in page.sessions] == [user]


async def test_doctor_checks(store: SessionStore, engine: AsyncEngine, backend: str) -> None:
    from convostore.doctor import diagnose

    checks = {check.name: check for check in await diagnose(store)}
    assert not [c for c in checks.values() if c.status == "fail"], checks
    assert checks["reachable"].status == "ok"
    assert checks["async driver"].status == "ok"
    assert checks["write/read/delete"].status == "ok"
    assert checks["schema revision"].status == "ok"  # create_tables stamps head
    expected = {"sqlite": "sqlite journal", "mysql": "max_allowed_packet"}.get(backend)
    if expected:
        assert checks[expected].status in ("ok", "warn")
    # The probe cleaned up after itself.
    listed = await store.list_sessions(limit=1000)
    assert not [s for s in listed.sessions if s.session_id.startswith("convostore-doctor-")]

    missing = SessionStore(engine, sessions_table="cs_absent_s", messages_table="cs_absent_m")
    checks = {check.name: check for check in await diagnose(missing)}
    assert checks["tables"].status == "fail"
    assert "migrate upgrade head" in checks["tables"].fix
    assert checks["write/read/delete"].status == "skipped"
