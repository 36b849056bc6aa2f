"""Large items in bounded chunks, so no statement or result row outgrows the server's limits.

MySQL and MariaDB refuse any statement or result row larger than ``max_allowed_packet`` (16 MB
by default), and aiomysql and asyncmy send parameters inline in the statement text. An item
whose JSON text is longer than the store's chunk size is therefore stored in pieces:

- its message row holds the first ``chunk_chars`` characters in ``message_data`` and the
  number of further pieces in ``chunk_count`` (0, the default, for every item that fits);
- the chunks table (``<messages>_chunks``, see ``convostore._db.schema.chunks_table_name``)
  holds the other pieces, keyed ``(session_id, position, chunk_no)`` with ``chunk_no`` from 1,
  with a foreign key to the message row ``ON DELETE CASCADE``: every path that deletes an
  item (pop, clear, trim, prune, delete) deletes its chunks with it.

The chunk size bounds one piece's statement: at most 4 bytes per character (UTF-8; the
characters MySQL escapes are ASCII and take 2), plus the statement's fixed text, within
``max_allowed_packet``. On PostgreSQL and SQLite, which have no such limit, a fixed size keeps
statements and rows of bounded size all the same.

Reads fetch chunks only for rows whose ``chunk_count`` is positive, in one extra indexed
query per read; a session without large items reads exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from .._config import RetryPolicy
from .direct import Executor
from .engine import Database
from .runner import ReadAgain, run_read
from .statements import Statements

__all__ = [
    "DEFAULT_CHUNK_CHARS",
    "MYSQL_STATEMENT_OVERHEAD",
    "IncompleteItemError",
    "assemble",
    "chunk_chars",
    "chunk_chars_for_packet",
    "chunk_rows",
    "rewrite",
    "split",
]

DEFAULT_CHUNK_CHARS = 4 * 1024 * 1024
"""Characters per piece on PostgreSQL and SQLite (at most 16 MB of UTF-8)."""

MYSQL_STATEMENT_OVERHEAD = 4096
"""Bytes of a MySQL statement besides the piece: the INSERT text and the other columns."""

# Below this many bytes a batch cannot reach any max_allowed_packet a server allows (1 MB
# is the smallest MySQL and MariaDB default there has ever been), so the setting is not read.
_MYSQL_PACKET_FLOOR = 1 << 20


class IncompleteItemError(ReadAgain):
    """An item's chunks were not all found: it was deleted between two statements of a read."""


async def chunk_chars(db: Database, texts: Sequence[str] = (), *, retry: RetryPolicy) -> int:
    """Characters of an item kept per row; longer items are stored in chunks.

    On MySQL/MariaDB it follows the server's ``max_allowed_packet`` (read once per engine,
    and only when one of ``texts``, if given, could come near it).
    """
    state = db.state
    if not state.is_mysql:
        return DEFAULT_CHUNK_CHARS
    largest = max((len(text) for text in texts), default=None)
    # A character is at most 4 bytes in the statement; skip the query when even that
    # cannot reach the smallest packet limit a server has.
    if largest is not None and largest * 4 + MYSQL_STATEMENT_OVERHEAD <= _MYSQL_PACKET_FLOOR:
        return chunk_chars_for_packet(_MYSQL_PACKET_FLOOR)
    if state.max_allowed_packet is None:

        def work(conn: Connection) -> int:
            result = conn.exec_driver_sql("SELECT @@max_allowed_packet")
            return int(result.scalar_one())

        state.max_allowed_packet = await run_read(db, work, retry=retry)
    return chunk_chars_for_packet(state.max_allowed_packet)


def chunk_chars_for_packet(max_allowed_packet: int) -> int:
    """Characters per piece so that one piece's statement fits ``max_allowed_packet``."""
    return max(1024, (max_allowed_packet - MYSQL_STATEMENT_OVERHEAD) // 4)


def split(text: str, chunk_chars: int) -> tuple[str, list[str]]:
    """Return the part of ``text`` kept in the message row and the pieces after it."""
    if len(text) <= chunk_chars:
        return text, []
    rest = [
        text[start : start + chunk_chars] for start in range(chunk_chars, len(text), chunk_chars)
    ]
    return text[:chunk_chars], rest


def chunk_rows(session_id: str, position: int, pieces: Sequence[str]) -> list[dict[str, Any]]:
    """The chunks table's rows for the pieces of the item at ``position``."""
    return [
        {"session_id": session_id, "position": position, "chunk_no": number, "data": piece}
        for number, piece in enumerate(pieces, start=1)
    ]


def assemble(
    conn: Executor, sql: Statements, session_id: str, rows: Iterable[Any]
) -> list[tuple[int, str]]:
    """Return ``(position, text)`` for rows of ``(position, message_data, chunk_count)``.

    Rows with chunks get them from one query on the chunks table's primary key.

    Raises:
        IncompleteItemError: Some chunks are missing (the item was deleted meanwhile: a read
            outside a transaction is run again).
    """
    rows = list(rows)
    wanted = {int(row[0]): int(row[2]) for row in rows if row[2]}
    if not wanted:
        return [(int(row[0]), row[1]) for row in rows]
    result = conn.execute(sql.select_chunks, {"sid": session_id, "positions": sorted(wanted)})
    pieces: dict[int, list[str]] = {}
    for position, data in result:
        pieces.setdefault(int(position), []).append(data)
    out = []
    for row in rows:
        position, head, count = int(row[0]), row[1], int(row[2] or 0)
        if count:
            found = pieces.get(position, [])
            if len(found) != count:
                raise IncompleteItemError(
                    f"item at position {position} of session {session_id!r} has "
                    f"{len(found)} of its {count} chunks"
                )
            head = head + "".join(found)
        out.append((position, head))
    return out


def rewrite(
    conn: Executor, sql: Statements, session_id: str, position: int, text: str, size: int
) -> None:
    """Replace the stored text of the item at ``position`` with ``text``, in ``size`` chunks."""
    head, rest = split(text, size)
    conn.execute(sql.delete_chunks, {"sid": session_id, "pos": position})
    conn.execute(
        sql.rewrite_item,
        {"sid": session_id, "pos": position, "head": head, "pieces": len(rest)},
    )
    for row in chunk_rows(session_id, position, rest):
        conn.execute(sql.insert_chunk, row)
