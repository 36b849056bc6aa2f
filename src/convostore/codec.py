r"""Items to stored text and back.

An item is stored as compact JSON text (UTF-8, non-ASCII characters kept as they are), a
format any tool can read. The rules for what can be stored, checked before anything is
written:

- an item is a ``dict``; its values are what :func:`json.dumps` writes natively (``dict``,
  ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``);
- ``NaN`` and ``Infinity`` are refused: they are not JSON, and other readers choke on them;
- strings must be valid Unicode: a lone surrogate (``"\ud800"``) cannot be stored as UTF-8.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .errors import InvalidItemError

__all__ = ["decode_item", "encode_item", "encode_items"]

logger = logging.getLogger("convostore")

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_decoder = json.JSONDecoder()


def encode_item(item: Any) -> str:
    """Return the JSON text stored for ``item``.

    Raises:
        InvalidItemError: ``item`` is not a dict, or cannot be stored as JSON exactly.
    """
    if not isinstance(item, dict):
        raise InvalidItemError(
            f"a session item must be a dict (a JSON object), got {type(item).__name__}"
        )
    try:
        text = _encoder.encode(item)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidItemError(f"item cannot be stored as JSON: {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidItemError(
                f"item contains text that is not valid Unicode ({exc.reason} at character "
                f"{exc.start} of its JSON): lone surrogates cannot be stored"
            ) from None
    return text


def encode_items(items: Any) -> list[str]:
    """Encode a batch of items, refusing the whole batch if any item is refused.

    Raises:
        InvalidItemError: ``items`` is not a list or tuple, or one of its items is refused;
            the message names the item's index.
    """
    if not isinstance(items, (list, tuple)):
        raise InvalidItemError(f"items must be a list of dicts, got {type(items).__name__}")
    encoded = []
    for index, item in enumerate(items):
        try:
            encoded.append(encode_item(item))
        except InvalidItemError as exc:
            raise InvalidItemError(f"items[{index}]: {exc}") from None
    return encoded


def decode_item(text: str) -> Any:
    """Return the item stored as ``text``.

    Raises:
        ValueError: ``text`` is not valid JSON (:class:`json.JSONDecodeError`).
    """
    return _decoder.decode(text)
