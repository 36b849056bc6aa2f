"""Encryption at rest: a session wrapper that encrypts every item before it is stored.

Usage:

```python
from convostore import SQLAlchemySession
from convostore import EncryptedSession, generate_key

key = generate_key()  # keep it in your secrets manager, not in the database
inner = SQLAlchemySession.from_url("user-123", url="postgresql://app@db/agents")
session = EncryptedSession(inner, keys=[key])
await Runner.run(agent, "Hello", session=session)
```

Each item is stored as ``{"convostore_encrypted": 1, "token": "..."}``, where the token is a
Fernet token (AES-128-CBC with an HMAC-SHA256 over it, from the ``cryptography`` package): the
database never sees the message text, and a token that was altered, or was written with a
key you did not supply, raises [`DecryptionError`][convostore.errors.DecryptionError] instead of
returning garbage.

Key rotation: pass the new key first and the old ones after it. New items are encrypted with the
first key; every key is tried for reading.
[`EncryptedSession.rotate`][convostore.EncryptedSession.rotate] re-encrypts a
[`SQLAlchemySession`][convostore.SQLAlchemySession]'s stored items with the first key, after which
the old keys can be dropped. Needs ``pip install 'convostore[encryption]'``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from ._closing import AsyncClosing
from ._codec import decode_item, encode_item, encode_items
from ._db import chunks
from ._db.chunks import assemble, rewrite
from ._db.runner import run_write
from ._protocol import Session
from ._session import SQLAlchemySession
from .errors import ConfigurationError, DecryptionError, MissingDependencyError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = ["MARKER", "EncryptedSession", "generate_key"]

MARKER = "convostore_encrypted"
"""The key that marks a stored item as encrypted; its value is the format version (1)."""


def _fernet() -> Any:
    try:
        from cryptography import fernet
    except ImportError as exc:
        raise MissingDependencyError(
            "encryption needs the cryptography package, which is not installed: "
            "pip install 'convostore[encryption]'",
            package="cryptography",
            extra="pip install 'convostore[encryption]'",
        ) from exc
    return fernet


def generate_key() -> str:
    """Return a new random key (URL-safe base64 text).

    Pass it in the ``keys`` of an [`EncryptedSession`][convostore.EncryptedSession].
    """
    key: bytes = _fernet().Fernet.generate_key()
    return key.decode("ascii")


class EncryptedSession(AsyncClosing):
    """Wraps a session so that every item is encrypted before it reaches the database.

    Implements [`convostore.Session`][convostore.Session]; pass it to an agent runner like any
    session.
    """

    def __init__(
        self,
        inner: Session,
        *,
        keys: Sequence[str | bytes],
        allow_plaintext: bool = False,
    ) -> None:
        """Wrap ``inner``.

        Args:
            inner: The session that stores the encrypted items.
            keys: One or more keys from [`generate_key`][convostore.generate_key]; the first
                encrypts, all decrypt.
            allow_plaintext: Return items stored before encryption was turned on as they
                are, instead of raising [`DecryptionError`][convostore.errors.DecryptionError].

        Raises:
            ConfigurationError: No keys, or a key that is not a valid Fernet key.
        """
        if isinstance(keys, (str, bytes)) or not keys:
            raise ConfigurationError("keys must be a non-empty list of keys from generate_key()")
        fernet = _fernet()
        try:
            self._fernet: MultiFernet = fernet.MultiFernet([fernet.Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"not a valid encryption key ({exc}); make keys with "
                f"convostore.encryption.generate_key()"
            ) from None
        self._invalid_token = fernet.InvalidToken
        self._inner = inner
        self._allow_plaintext = allow_plaintext

    @property
    def session_id(self) -> str:
        """The wrapped session's id."""
        return self._inner.session_id

    @property
    def session_settings(self) -> Any:
        """The wrapped session's settings (read by agent runners for the default limit)."""
        return getattr(self._inner, "session_settings", None)

    @property
    def inner(self) -> Session:
        """The wrapped session."""
        return self._inner

    def __repr__(self) -> str:
        return f"<EncryptedSession {self._inner!r}>"

    # -- the session protocol -------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """Return the decrypted history, in order (all of it, or the latest ``limit``)."""
        return [self._decrypt(item) for item in await self._inner.get_items(limit)]

    async def add_items(self, items: list[Any], *, idempotency_key: str | None = None) -> None:
        """Encrypt ``items`` and append them, as one batch.

        ``idempotency_key`` is passed to the wrapped session (see
        [`SQLAlchemySession.add_items`][convostore.SQLAlchemySession.add_items]), which must accept
        it.
        """
        texts = encode_items(items)  # refuse bad items with the usual errors, before anything
        sealed = [self._seal(text) for text in texts]
        if idempotency_key is None:
            await self._inner.add_items(sealed)
        else:
            # The Session protocol (the Agents SDK's) has no such keyword; convostore's do.
            add = self._inner.add_items
            await add(sealed, idempotency_key=idempotency_key)  # type: ignore[call-arg]

    async def pop_item(self) -> Any | None:
        """Remove and return the latest item, decrypted."""
        item = await self._inner.pop_item()
        return None if item is None else self._decrypt(item)

    async def clear_session(self) -> None:
        """Remove every item of the session."""
        await self._inner.clear_session()

    # -- rotation -------------------------------------------------------------------------

    async def rotate(self) -> int:
        """Re-encrypt every stored item with the first key, in one transaction.

        Works when the wrapped session is a [`SQLAlchemySession`][convostore.SQLAlchemySession].

        Returns:
            How many items were rewritten.

        Raises:
            DecryptionError: An item cannot be decrypted with any key; nothing is changed.
        """
        inner = self._inner
        if not isinstance(inner, SQLAlchemySession):
            raise ConfigurationError("rotate() needs an SQLAlchemySession inside")
        session_id = inner.session_id
        context = inner._context
        db = await context.ready()
        size = await chunks.chunk_chars(db, retry=context.retry)
        # Locking every row: a concurrent writer of an item waits for the rotation.
        locked = db.statements.select_all.with_for_update()

        def work(conn: Connection) -> int:
            rows = (conn.execute(locked, {"sid": session_id})).all()
            rewritten = 0
            # Large items come whole from their chunks; a batch of rows at a time would bound
            # memory, but a session's items are read whole by get_items anyway.
            for position, text in assemble(conn, db.statements, session_id, rows):
                stored = decode_item(text)
                if not (isinstance(stored, dict) and stored.get(MARKER) == 1):
                    continue
                try:
                    token = self._fernet.rotate(str(stored["token"]).encode("ascii"))
                except (self._invalid_token, KeyError, UnicodeEncodeError):
                    raise DecryptionError(
                        f"item at position {position} of session {session_id!r} cannot be "
                        f"decrypted with any of the keys supplied; nothing was re-encrypted",
                        session_id=session_id,
                        position=position,
                    ) from None
                sealed = encode_item({MARKER: 1, "token": token.decode("ascii")})
                rewrite(conn, db.statements, session_id, position, sealed, size)
                rewritten += 1
            return rewritten

        return await run_write(db, work, retry=context.retry)

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the wrapped session if it can be closed."""
        close = getattr(self._inner, "close", None)
        if close is not None:
            await close()

    # -- tokens ---------------------------------------------------------------------------

    def _seal(self, text: str) -> dict[str, Any]:
        token: bytes = self._fernet.encrypt(text.encode("utf-8"))
        return {MARKER: 1, "token": token.decode("ascii")}

    def _decrypt(self, stored: Any) -> Any:
        if not (isinstance(stored, dict) and MARKER in stored):
            if self._allow_plaintext:
                return stored
            raise DecryptionError(
                f"an item of session {self.session_id!r} is not encrypted; pass "
                f"allow_plaintext=True to read items stored before encryption was turned on",
                session_id=self.session_id,
            )
        try:
            plain = self._fernet.decrypt(str(stored.get("token", "")).encode("ascii"))
            return json.loads(plain.decode("utf-8"))
        except (self._invalid_token, UnicodeError, ValueError):
            raise DecryptionError(
                f"an item of session {self.session_id!r} cannot be decrypted with any of the "
                f"keys supplied (wrong key, or the stored token was altered)",
                session_id=self.session_id,
            ) from None
