r"""Items to stored text and back.

An item is stored as compact JSON text (UTF-8, non-ASCII characters kept as they are), a
format any tool can read. An item either round-trips exactly (``get_items`` returns a value
equal to the one added) or is refused with [`InvalidItemError`][convostore.errors.InvalidItemError]
before anything is written. The rules:

- an item is a ``dict``; its values are what ``json.dumps`` writes natively (``dict``,
  ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``, and their
  subclasses). The one conversion: a ``tuple`` comes back as a ``list`` (JSON has one
  array type);
- every key of every ``dict``, at any depth, is a ``str``: ``json.dumps`` would turn
  ``1``, ``1.5``, ``True`` or ``None`` keys into strings silently, so they are refused;
- containers (``dict``, ``list``, ``tuple``) nest at most ``MAX_DEPTH`` levels deep,
  the item itself being level 1. Deeper items are refused rather than stored in a form that
  might exceed the interpreter's recursion limit when it is read back; an item that contains
  itself is refused by the same rule;
- ``NaN`` and ``Infinity`` are refused: they are not JSON, and other readers choke on them;
- strings must be valid Unicode: a lone surrogate (``"\ud800"``) cannot be stored as UTF-8.
  Any other character, NUL included, is stored (escaped by JSON where needed);
- integers of any size round-trip (they are JSON text, not a database number type).

A stored row whose JSON does not decode (written by something other than convostore) is skipped by
every read and pop, logged at ``WARNING`` with its session and position, and counted
([`corrupt_items_skipped`][convostore.corrupt_items_skipped]): the policy lives here, in
``decode_rows``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .errors import InvalidItemError, PayloadTooLargeError

__all__ = [
    "MAX_DEPTH",
    "compact_json",
    "corrupt_items_skipped",
    "decode_item",
    "decode_or_skip",
    "decode_positioned",
    "decode_rows",
    "encode_item",
    "encode_items",
]

MAX_DEPTH = 256
"""How deeply containers may nest in an item, the item itself being level 1."""

logger = logging.getLogger("convostore")

# The one set of JSON options for everything convostore stores: compact, UTF-8 kept as it
# is, no NaN or Infinity.
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_decoder = json.JSONDecoder()
# The decoder's scanner (set by its constructor; the type stubs leave it out).
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def compact_json(value: Any) -> str:
    """Return ``value`` as the compact JSON text convostore stores (items, metadata, exports).

    Raises:
        TypeError, ValueError: ``value`` is not JSON (as ``json.dumps`` raises them).
    """
    return _encoder.encode(value)


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
        _check_keys_and_depth(item, 1)
    except RecursionError:  # the caller's own stack was already nearly full
        raise InvalidItemError("item is nested too deeply to check at this call depth") from None
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


_SCALARS = frozenset({str, int, float, bool, type(None)})
_CONTAINERS = (dict, list, tuple)


def _check_keys_and_depth(value: dict[Any, Any] | list[Any] | tuple[Any, ...], depth: int) -> None:
    """Refuse non-``str`` keys and nesting deeper than ``MAX_DEPTH``, before encoding."""
    # json.dumps converts non-str keys without a word, and its C encoder has no hook for
    # keys: this walk is the only place to catch them. It skips scalars by exact type first,
    # the cheap test that settles almost every value.
    if depth > MAX_DEPTH:
        raise InvalidItemError(
            f"item nests containers more than {MAX_DEPTH} levels deep (or contains itself)"
        )
    if isinstance(value, dict):
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                raise InvalidItemError(
                    f"item has a dict key that is not a str: {key!r} ({type(key).__name__}); "
                    f"JSON would turn it into a string, so it would not read back the same"
                )
        children: Any = value.values()
    else:
        children = value
    for child in children:
        if type(child) not in _SCALARS and isinstance(child, _CONTAINERS):
            _check_keys_and_depth(child, depth + 1)


def encode_items(items: Any, *, max_item_bytes: int | None = None) -> list[str]:
    """Encode a batch of items, refusing the whole batch if any item is refused.

    Args:
        items: The items, a list (or tuple) of dicts.
        max_item_bytes: If set, refuse any item whose stored JSON is longer than this many
            UTF-8 bytes.

    Raises:
        InvalidItemError: ``items`` is not a list or tuple, or one of its items is refused;
            the message names the item's index.
        PayloadTooLargeError: An item is larger than ``max_item_bytes``; the message gives
            its size and the limit.
    """
    if not isinstance(items, (list, tuple)):
        raise InvalidItemError(f"items must be a list of dicts, got {type(items).__name__}")
    encoded = []
    for index, item in enumerate(items):
        try:
            text = encode_item(item)
        except InvalidItemError as exc:
            raise InvalidItemError(f"items[{index}]: {exc}", index=index) from None
        # A character is 1 to 4 UTF-8 bytes: count bytes only when that can matter.
        if max_item_bytes is not None and len(text) * 4 > max_item_bytes:
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
            if size > max_item_bytes:
                raise PayloadTooLargeError(
                    f"items[{index}] is {size:,} bytes as stored JSON, over this store's "
                    f"max_item_bytes limit of {max_item_bytes:,} bytes; nothing was written",
                    size=size,
                    limit=max_item_bytes,
                    index=index,
                )
        encoded.append(text)
    return encoded


def decode_item(text: str) -> Any:
    """Return the item stored as ``text``.

    Raises:
        ValueError: ``text`` is not valid JSON (``json.JSONDecodeError``), or is nested
            too deeply to decode (written by something other than convostore).
    """
    try:
        # Decoding dominates a full read (bench/: full1k). The standard decoder's own
        # scanner, called directly, skips two whitespace matches and two calls per item, a
        # third of the decoding time; anything but one bare JSON value (whitespace around
        # it, an error) goes to decode() for the standard result or error. orjson would be
        # faster still, but it reads integers past 64 bits back as floats, and checking a
        # text for them costs what it saves.
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            return _decoder.decode(text)
        if end != len(text):
            return _decoder.decode(text)
        return value
    except RecursionError:
        raise ValueError("the stored JSON is nested too deeply to decode") from None


# Reads and pops that skip a corrupt row count it here, so a monitoring job can alert on a
# count that moves without scraping logs. One process-wide number; the event loop and the
# GIL make the increment safe.
_skipped = [0]


def corrupt_items_skipped() -> int:
    """How many corrupt rows reads and pops have skipped in this process since it started.

    Each skip is also logged at ``WARNING`` with its session and position;
    ``SessionStore.find_corrupt_items`` lists the rows themselves.
    """
    return _skipped[0]


def _skip(session_id: str, position: int, exc: ValueError) -> None:
    _skipped[0] += 1
    logger.warning(
        "convostore: skipped a corrupt item in session %r at position %d: %s",
        session_id,
        position,
        exc,
    )


def decode_or_skip(session_id: str, position: int, text: str) -> tuple[bool, Any]:
    """Decode one stored item: ``(True, item)``, or ``(False, None)`` for a corrupt one."""
    try:
        return True, decode_item(text)
    except ValueError as exc:
        _skip(session_id, position, exc)
        return False, None


def decode_rows(session_id: str, rows: Iterable[tuple[int, str]]) -> list[Any]:
    """Decode stored ``(position, text)`` rows into items, skipping corrupt ones."""
    items = []
    for position, text in rows:
        try:
            items.append(decode_item(text))
        except ValueError as exc:
            _skip(session_id, position, exc)
    return items


def decode_positioned(session_id: str, rows: Iterable[tuple[int, str]]) -> list[tuple[int, Any]]:
    """Decode stored ``(position, text)`` rows into ``(position, item)``, skipping corrupt ones."""
    items = []
    for position, text in rows:
        try:
            items.append((position, decode_item(text)))
        except ValueError as exc:
            _skip(session_id, position, exc)
    return items
