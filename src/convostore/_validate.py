"""The rules for what callers pass in: ids and keys, user ids, metadata, counts, times.

Each rule is written once and raises the typed error of the caller's argument, with a
message that names the argument and says what it may be.

Text that names something exactly (session ids, idempotency keys, user ids) is a non-empty
``str`` of at most 255 characters, without NUL characters (which PostgreSQL cannot store in
text) or lone surrogates (which cannot be encoded as UTF-8). It is compared byte for byte on
every backend: case, accents and trailing spaces count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict

from ._codec import compact_json
from ._db.schema import MAX_METADATA_BYTES, MAX_SESSION_ID_LENGTH
from .errors import (
    ConfigurationError,
    InvalidIdempotencyKeyError,
    InvalidInputError,
    InvalidSessionIdError,
)

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_SESSION_ID_LENGTH",
    "check_aware",
    "check_key_text",
    "check_metadata",
    "check_user_id",
    "optional_int",
    "validate_idempotency_key",
    "validate_session_id",
    "whole_number",
]

MAX_IDEMPOTENCY_KEY_LENGTH = 255
"""The longest idempotency key, in characters."""


def check_key_text(
    value: Any, *, name: str, error: type[InvalidInputError], max_length: int, expected: str
) -> str:
    """Return ``value`` if it follows the rule; raise ``error`` saying which part it breaks.

    Args:
        value: The text to check.
        name: The argument's name, for the message (``"session_id"``).
        error: The error class to raise.
        max_length: The most characters allowed.
        expected: What the argument may be, for the message (``"a str"``).
    """
    if not isinstance(value, str):
        raise error(f"{name} must be {expected}, got {type(value).__name__}")
    if not value:
        raise error(f"{name} must not be empty")
    if len(value) > max_length:
        raise error(f"{name} is {len(value)} characters long; the limit is {max_length}")
    if "\x00" in value:
        raise error(f"{name} must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{name} must be valid Unicode (it contains a lone surrogate)") from None
    return value


def validate_session_id(session_id: Any) -> str:
    """Return ``session_id`` if it can name a session on every backend.

    A session id is a non-empty ``str`` of at most 255 characters, without NUL characters
    or lone surrogates. It is compared exactly: case, accents and trailing spaces count.

    Raises:
        InvalidSessionIdError: The id breaks one of these rules; the message says which.
    """
    return check_key_text(session_id, **_SESSION_ID)


def validate_idempotency_key(key: Any) -> str:
    """Return ``key`` if it can be stored as an idempotency key on every backend.

    A key follows the same rule as a session id (compared exactly, case and trailing spaces
    counting).

    Raises:
        InvalidIdempotencyKeyError: The key breaks one of these rules; the message says which.
    """
    return check_key_text(key, **_IDEMPOTENCY_KEY)


def check_user_id(user_id: Any) -> str | None:
    """Return ``user_id`` if it is ``None`` or follows the rule, with at most 255 characters.

    Raises:
        InvalidInputError: It does not.
    """
    return None if user_id is None else check_key_text(user_id, **_USER_ID)


class _Rule(TypedDict):
    name: str
    error: type[InvalidInputError]
    max_length: int
    expected: str


_SESSION_ID = _Rule(
    name="session_id",
    error=InvalidSessionIdError,
    max_length=MAX_SESSION_ID_LENGTH,
    expected="a str",
)
_IDEMPOTENCY_KEY = _Rule(
    name="idempotency_key",
    error=InvalidIdempotencyKeyError,
    max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
    expected="a str or None",
)
_USER_ID = _Rule(name="user_id", error=InvalidInputError, max_length=255, expected="a str or None")


def check_metadata(metadata: Any) -> dict[str, Any] | None:
    """Return ``metadata`` if it is ``None`` or a dict that is storable as a JSON object.

    Raises:
        InvalidInputError: It is not.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        size = len(compact_json(metadata).encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise InvalidInputError(f"metadata cannot be stored as JSON: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(
            f"metadata is {size:,} bytes of JSON; the limit is {MAX_METADATA_BYTES:,}: keep "
            f"large data in the session's items"
        )
    return metadata


def whole_number(
    value: Any,
    name: str,
    *,
    minimum: int,
    maximum: int | None = None,
    error: type[Exception] = ConfigurationError,
) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) within the bounds.

    Raises:
        error: It is not; the message names the argument and its bounds.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise error(f"{name} must be an integer {bounds}, got {value!r}")
    return value


def optional_int(
    value: Any, name: str, *, minimum: int, error: type[Exception] = ConfigurationError
) -> int | None:
    """Return ``value`` if it is ``None`` or an ``int`` of at least ``minimum``.

    Raises:
        error: It is neither; the message names the argument.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(f"{name} must be None or an integer >= {minimum}, got {value!r}")
    return value


def check_aware(value: Any, name: str) -> dt.datetime:
    """Return ``value`` if it is a timezone-aware ``datetime``.

    Raises:
        InvalidInputError: It is not.
    """
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value
