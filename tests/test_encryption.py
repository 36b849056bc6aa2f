"""EncryptedSession: the database never sees message text; wrong keys raise, never garble."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from convostore import (
    ConfigurationError,
    DecryptionError,
    EncryptedSession,
    InvalidItemError,
    SQLAlchemySession,
    generate_key,
)

SECRET = "the launch code is 0000 — ünïcödé 🚀"


async def stored_texts(session: SQLAlchemySession) -> list[str]:
    m = session.tables.messages
    async with session.engine.connect() as conn:
        result = await conn.execute(
            select(m.c.message_data)
            .where(m.c.session_id == session.session_id)
            .order_by(m.c.position)
        )
        return list(result.scalars())


async def test_round_trip_and_database_sees_no_text(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    inner = make_session()
    session = EncryptedSession(inner, keys=[generate_key()])
    items = [{"role": "user", "content": SECRET}, {"role": "assistant", "content": "ok"}]
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=1) == items[1:]
    for text in await stored_texts(inner):
        assert "launch" not in text
        assert "assistant" not in text
        assert '"convostore_encrypted":1' in text
    assert await session.pop_item() == items[1]
    await session.clear_session()
    assert await session.get_items() == []


async def test_wrong_key_raises(make_session: Callable[..., SQLAlchemySession]) -> None:
    inner = make_session()
    await EncryptedSession(inner, keys=[generate_key()]).add_items([{"content": SECRET}])
    other = EncryptedSession(inner, keys=[generate_key()])
    with pytest.raises(DecryptionError, match="cannot be decrypted"):
        await other.get_items()


async def test_altered_token_raises(make_session: Callable[..., SQLAlchemySession]) -> None:
    inner = make_session()
    session = EncryptedSession(inner, keys=[generate_key()])
    await session.add_items([{"content": SECRET}])
    [text] = await stored_texts(inner)
    tampered = text.replace('"token":"', '"token":"A', 1)
    m = inner.tables.messages
    async with inner.engine.begin() as conn:
        await conn.execute(
            update(m).where(m.c.session_id == inner.session_id).values(message_data=tampered)
        )
    with pytest.raises(DecryptionError):
        await session.get_items()


async def test_plaintext_items_need_opt_in(make_session: Callable[..., SQLAlchemySession]) -> None:
    inner = make_session()
    await inner.add_items([{"old": "plain"}])
    key = generate_key()
    with pytest.raises(DecryptionError, match="allow_plaintext"):
        await EncryptedSession(inner, keys=[key]).get_items()
    mixed = EncryptedSession(inner, keys=[key], allow_plaintext=True)
    await mixed.add_items([{"new": "sealed"}])
    assert await mixed.get_items() == [{"old": "plain"}, {"new": "sealed"}]


async def test_key_rotation(make_session: Callable[..., SQLAlchemySession]) -> None:
    inner = make_session()
    old, new = generate_key(), generate_key()
    await EncryptedSession(inner, keys=[old]).add_items([{"n": 0}, {"n": 1}])
    rotating = EncryptedSession(inner, keys=[new, old])
    await rotating.add_items([{"n": 2}])
    assert await rotating.get_items() == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert await rotating.rotate() == 3
    only_new = EncryptedSession(inner, keys=[new])
    assert await only_new.get_items() == [{"n": 0}, {"n": 1}, {"n": 2}]
    with pytest.raises(DecryptionError):
        await EncryptedSession(inner, keys=[old]).get_items()


async def test_rotation_with_a_missing_key_changes_nothing(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    inner = make_session()
    await EncryptedSession(inner, keys=[generate_key()]).add_items([{"n": 0}])
    before = await stored_texts(inner)
    with pytest.raises(DecryptionError):
        await EncryptedSession(inner, keys=[generate_key()]).rotate()
    assert await stored_texts(inner) == before


async def test_bad_items_and_keys_are_refused(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    inner = make_session()
    session = EncryptedSession(inner, keys=[generate_key()])
    with pytest.raises(InvalidItemError):
        await session.add_items([{"ok": 1}, "not a dict"])  # type: ignore[list-item]
    assert await inner.get_items() == []
    for keys in ([], ["not-a-key"], generate_key()):
        with pytest.raises(ConfigurationError):
            EncryptedSession(inner, keys=keys)  # type: ignore[arg-type]


async def test_is_a_session_and_keeps_settings(
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    from convostore import Session

    inner = make_session(session_settings={"limit": 1})
    session = EncryptedSession(inner, keys=[generate_key()])
    assert isinstance(session, Session)
    assert session.session_id == inner.session_id
    await session.add_items([{"n": 0}, {"n": 1}])
    assert session.session_settings.limit == 1
    assert await session.get_items() == [{"n": 1}]
    assert await session.get_items(limit=2) == [{"n": 0}, {"n": 1}]
