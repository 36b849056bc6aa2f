"""The one rule for text that names something exactly: session ids, idempotency keys, user ids.

Such text is a non-empty ``str`` of at most 255 characters, without NUL characters (which
PostgreSQL cannot store in text) or lone surrogates (which cannot be encoded as UTF-8). It
is compared byte for byte on every backend: case, accents and trailing spaces count.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInputError

__all__ = ["check_key_text", "check_user_id"]


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


def check_user_id(user_id: Any) -> str | None:
    """Return ``user_id`` if it is ``None`` or follows the rule, with at most 255 characters.

    Raises:
        InvalidInputError: It does not.
    """
    if user_id is None:
        return None
    return check_key_text(
        user_id, name="user_id", error=InvalidInputError, max_length=255, expected="a str or None"
    )
