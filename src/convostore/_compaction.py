"""The Agents SDK's compaction hooks: history replaced in one transaction, never cleared first.

The SDK's ``OpenAIResponsesCompactionSession`` (and its ``EncryptedSession`` around or
inside it) replaces a conversation's history with the summary ``responses.compact``
returns. On a store without help it does that as ``clear_session()`` then ``add_items()``:
a reader in between sees an empty conversation, and a crash in between loses it. The SDK
looks for two private hooks on the session it wraps, and this module is convostore's
implementation of both:

``await session._get_compaction_snapshot(limit, *, prune_prefix=None)``
    Used by automatic compaction after a Runner turn. Reads the session's latest ``limit``
    items and returns a ``CompactionSnapshot``: ``items`` (oldest first), ``complete``
    (whether they are the whole history) and ``await replace_suffix(start, items)``, a
    compare-and-swap in one transaction: if the stored items from ``items[start]`` on are
    still exactly the latest ones, they are deleted and the new items appended after the
    history that stays; otherwise nothing changes and it returns ``False``. ``prune_prefix``
    (passed by the SDK's ``EncryptedSession``) says which of the oldest items are expired:
    the same transaction deletes the contiguous run of them at the start of the history.

``await type(session)._atomic_replace_items(session, items)``
    Used by manual ``run_compaction()`` (and whole-history replacement): the session's
    items become ``items``, in one transaction. Returns ``True``.

What the transactions keep, on SQLite, PostgreSQL and MySQL/MariaDB alike:

- Lock order: the session row first (the same position-reserving upsert as ``add_items``),
  then its messages, like every other writer; concurrent appends, pops and compactions of
  one session run one after the other.
- Positions only grow: new items get fresh positions from ``next_position`` after
  everything that stays, so order is still the position order. ``item_count`` is adjusted
  by exactly what was deleted and added.
- Large items are deleted with their chunks (``ON DELETE CASCADE``) and new ones are
  written in chunks like any add (``convostore._db.chunks``).
- Idempotency keys are kept: a retried keyed ``add_items`` is still recognised after its
  items were compacted away (as after a pop or a trim).
- Corrupt rows (JSON that does not decode) are never summarised away: a snapshot only covers
  the items after the newest corrupt row in its window, and reports itself incomplete.
- A [`StoreSession`][convostore.StoreSession] applies its store's rules in the same transaction:
  ``max_items_per_session`` trims what the replacement leaves, and metadata given to
  ``store.session(...)`` is recorded if the session has none.
- Retries follow ``convostore._db.runner.run_write``. If the connection is lost during
  COMMIT, the outcome is checked on a new connection: the replacement's last new item,
  with this try's timestamp, at its fresh position means it committed; the first replaced
  item still being there means it did not (it is run again, compare-and-swap included);
  otherwise [`CommitOutcomeUnknownError`][convostore.errors.CommitOutcomeUnknownError] is raised.

SDK versions: these hooks are private to the SDK and their protocol may change in any
release. They are offered only when the installed ``openai-agents`` is a version whose
protocol this module implements (``KNOWN_SDK_VERSIONS``: 0.24.x), resolved lazily
through ``importlib.metadata`` and never by importing the SDK. With any other version,
or without the SDK, the attributes do not exist (``getattr(session, name, None)`` is
``None``), which is how the SDK recognises a store without them: it then falls back to its
own clear-and-add replacement. They are also absent on a subclass that overrides
``get_items`` or ``add_items`` (other than convostore's own ``StoreSession``), since the
hooks would bypass whatever those overrides do to items.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import logging
import re
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from ._codec import decode_or_skip, encode_items
from ._config import check_limit
from ._db import chunks
from ._db.chunks import assemble, chunk_rows, split
from ._db.dialect import is_mysql
from ._db.engine import Database
from ._db.history import count_deleted, record_and_trim
from ._db.runner import run_read, run_write
from ._db.schema import Tables, utcnow
from ._db.statements import CountedDelete
from ._validate import whole_number

if TYPE_CHECKING:
    from ._session import SQLAlchemySession

__all__ = [
    "KNOWN_SDK_VERSIONS",
    "CompactionSnapshot",
    "hooks_offered",
    "installed_sdk_version",
    "replace_hook",
    "snapshot_hook",
]

logger = logging.getLogger("convostore")

KNOWN_SDK_VERSIONS: frozenset[tuple[int, int]] = frozenset({(0, 24)})
"""``(major, minor)`` releases of openai-agents whose compaction-hook protocol is implemented."""

_SDK_DISTRIBUTION = "openai-agents"
_VERSION = re.compile(r"(\d+)\.(\d+)")

PrunePrefix = Callable[[Any], bool]


@functools.lru_cache(maxsize=1)
def installed_sdk_version() -> str | None:
    """Return the installed openai-agents version, or ``None`` if it is not installed."""
    try:
        return importlib.metadata.version(_SDK_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def _known(version: str | None) -> bool:
    match = _VERSION.match(version or "")
    return match is not None and (int(match[1]), int(match[2])) in KNOWN_SDK_VERSIONS


@functools.cache
def _native(cls: type) -> bool:
    """Whether ``cls`` stores items exactly as convostore's own sessions do."""
    from ._session import SQLAlchemySession
    from ._store import StoreSession

    for name in ("get_items", "add_items"):
        ours = {getattr(SQLAlchemySession, name), getattr(StoreSession, name)}
        if getattr(cls, name, None) not in ours:
            return False
    return True


def hooks_offered(cls: type) -> bool:
    """Whether sessions of ``cls`` offer the SDK's compaction hooks (see the module docstring)."""
    return _known(installed_sdk_version()) and _native(cls)


class _Hook:
    """A method that exists only where ``hooks_offered`` says so.

    The SDK probes with ``getattr(..., None)``, on the instance for the snapshot and on the
    class for the whole replacement: an ``AttributeError`` from here reads as "no hook".
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func
        self._name = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        cls = owner if owner is not None else type(obj)
        if not hooks_offered(cls):
            raise AttributeError(
                f"{cls.__name__} has no {self._name}: offered for openai-agents "
                f"{_known_text()} and convostore's own session classes only "
                f"(installed: {installed_sdk_version() or 'none'})"
            )
        return self._func if obj is None else types.MethodType(self._func, obj)


def _known_text() -> str:
    return ", ".join(f"{major}.{minor}.x" for major, minor in sorted(KNOWN_SDK_VERSIONS))


# -- SQL --------------------------------------------------------------------------------------


class _Statements:
    """The statements of compaction, built once per table set."""

    def __init__(self, tables: Tables) -> None:
        s, m = tables.sessions, tables.messages
        sid = bindparam("sid", type_=s.c.session_id.type)
        columns = (m.c.position, m.c.message_data, m.c.chunk_count)
        self.tail = (
            select(*columns)
            .where(m.c.session_id == sid)
            .order_by(m.c.position.desc())
            .limit(bindparam("lim"))
        )
        # Under the session's row lock already; FOR UPDATE also makes MySQL read the latest
        # rows rather than its transaction snapshot, and waits for an in-place rewrite
        # (key rotation) that does not take the session lock.
        self.tail_locked = self.tail.with_for_update()
        self.oldest_before = (
            select(*columns)
            .where(m.c.session_id == sid, m.c.position < bindparam("before"))
            .order_by(m.c.position)
            .limit(bindparam("lim"))
            .with_for_update()
        )
        self.delete_through = CountedDelete.of(
            delete(m).where(m.c.session_id == sid, m.c.position <= bindparam("last")),
            m.c.position,
        )
        self.delete_range = CountedDelete.of(
            delete(m).where(
                m.c.session_id == sid,
                m.c.position >= bindparam("first"),
                m.c.position < bindparam("stop"),
            ),
            m.c.position,
        )
        self.delete_before = delete(m).where(
            m.c.session_id == sid, m.c.position < bindparam("stop")
        )
        self.delete_all = delete(m).where(m.c.session_id == sid)
        self.subtract = (
            update(s)
            .where(s.c.session_id == sid)
            .values(item_count=s.c.item_count - bindparam("removed"))
        )
        self.set_count = (
            update(s)
            .where(s.c.session_id == sid)
            .values(item_count=bindparam("n"), updated_at=bindparam("now"))
        )
        self.row_at = select(m.c.message_data, m.c.created_at).where(
            m.c.session_id == sid, m.c.position == bindparam("pos")
        )
        self.session_row = select(s.c.next_position, s.c.updated_at).where(s.c.session_id == sid)
        self.any_item = select(m.c.position).where(m.c.session_id == sid).limit(1)
        self.insert_messages = insert(m)
        self.insert_chunk = insert(tables.chunks)


@functools.lru_cache(maxsize=64)
def _statements(tables: Tables) -> _Statements:
    return _Statements(tables)


class _Stale(Exception):
    """Raised inside a replacement's transaction to roll it back: the stored tail changed."""


@dataclasses.dataclass(frozen=True)
class _Planned:
    """Encoded replacement items, split into row heads and chunks."""

    texts: list[str]
    pieces: list[tuple[str, list[str]]]

    @property
    def last_head(self) -> str:
        return self.pieces[-1][0]


async def _plan(session: SQLAlchemySession, db: Database, items: Any) -> _Planned:
    context = session._context
    texts = encode_items(items, max_item_bytes=context.max_item_bytes)
    size = await chunks.chunk_chars(db, texts, retry=context.retry)
    return _Planned(texts, [split(text, size) for text in texts])


def _reserve(db: Database, conn: Connection, sid: str, n: int, now: Any) -> int:
    """Lock the session row (creating it if missing) and reserve ``n`` positions: the end."""
    # The very statement add_items starts with, so the counter and the lock order have one
    # definition.
    result = conn.execute(db.statements.reserve, {"sid": sid, "n": n, "now": now})
    return int(result.lastrowid if is_mysql(db.state.dialect) else result.scalar_one())


def _settle(session: SQLAlchemySession, conn: Connection, db: Database) -> None:
    """What every write of the session does last: a store's record and bound."""
    record_and_trim(
        conn,
        db.statements,
        session.session_id,
        record=session._record_to_fill(),
        keep_last=session._context.max_items_per_session,
    )


def _insert(
    sid: str,
    conn: Connection,
    sql: _Statements,
    planned: _Planned,
    start: int,
    now: Any,
) -> None:
    rows = [
        {
            "session_id": sid,
            "position": start + offset,
            "message_data": head,
            "created_at": now,
            "chunk_count": len(rest),
        }
        for offset, (head, rest) in enumerate(planned.pieces)
    ]
    conn.execute(sql.insert_messages, rows)
    for offset, (_, rest) in enumerate(planned.pieces):
        # One statement per chunk, each within the server's packet limit (as add_items).
        for chunk in chunk_rows(sid, start + offset, rest):
            conn.execute(sql.insert_chunk, chunk)


def _lands(
    conn: Connection, sql: _Statements, sid: str, position: int, head: str, now: Any
) -> bool:
    """Whether the row at ``position`` is the one this try wrote (positions are never reused)."""
    row = (conn.execute(sql.row_at, {"sid": sid, "pos": position})).first()
    return row is not None and row.created_at == now and row.message_data == head


# -- the snapshot -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CompactionSnapshot:
    """The latest items of a session, and the one way to replace them.

    Structurally the SDK's ``agents.memory.session._CompactionSnapshot``.
    """

    items: list[Any]
    """The items, oldest first."""

    complete: bool
    """Whether ``items`` is the session's whole history."""

    _session: SQLAlchemySession = dataclasses.field(repr=False)
    _rows: list[tuple[int, str]] = dataclasses.field(repr=False)
    _limit: int = dataclasses.field(repr=False)
    _prune_prefix: PrunePrefix | None = dataclasses.field(repr=False)

    async def replace_suffix(self, start: int, items: list[Any]) -> bool:
        """Replace ``self.items[start:]`` with ``items`` in one transaction, if still current.

        Returns:
            ``True`` if replaced; ``False`` (nothing changed) if the stored items from
            ``start`` on are no longer exactly the session's latest ones, or there are none.

        Raises:
            InvalidItemError: An item cannot be stored; nothing is changed.
            PayloadTooLargeError: An item is over the session's ``max_item_bytes``.
        """
        whole_number(start, "start", minimum=0, error=ValueError)
        expected = self._rows[start:]
        if not expected:
            return False
        session = self._session
        sid = session.session_id
        db = await session._context.ready()
        sql = _statements(db.tables)
        planned = await _plan(session, db, items)
        first = expected[0][0]
        n = len(planned.texts)
        last_try: dict[str, Any] = {}

        def work(conn: Connection) -> bool:
            now = utcnow()
            end = _reserve(db, conn, sid, n, now)
            last_try.update(now=now, end=end)
            current = (conn.execute(sql.tail_locked, {"sid": sid, "lim": len(expected)})).all()[
                ::-1
            ]
            if assemble(conn, db.statements, sid, current) != expected:
                raise _Stale
            removed = 0
            if self._prune_prefix is not None:
                removed += self._prune(conn, db, sql, first)
            bounds = {"sid": sid, "first": first, "stop": end - n}
            removed += count_deleted(conn, sql.delete_range, bounds)
            if n:
                _insert(sid, conn, sql, planned, end - n, now)
            conn.execute(sql.subtract, {"sid": sid, "removed": removed})
            _settle(session, conn, db)
            return True

        def committed(conn: Connection) -> bool | None:
            now, end = last_try["now"], last_try["end"]
            if n and _lands(conn, sql, sid, end - 1, planned.last_head, now):
                return True
            if n == 0:
                row = (conn.execute(sql.session_row, {"sid": sid})).first()
                if row is not None and row.updated_at == now:
                    return True
            if (conn.execute(sql.row_at, {"sid": sid, "pos": first})).first() is not None:
                return False  # the replaced items are still there: it did not commit
            return None

        try:
            return await run_write(db, work, retry=session._context.retry, verify=committed)
        except _Stale:
            logger.debug("convostore: compaction of session %r found newer history", sid)
            return False

    def _prune(self, conn: Connection, db: Database, sql: _Statements, before: int) -> int:
        """Delete the run of oldest items ``prune_prefix`` accepts, a window at a time."""
        assert self._prune_prefix is not None
        session = self._session
        sid = session.session_id
        removed = 0
        while True:
            rows = (
                conn.execute(sql.oldest_before, {"sid": sid, "before": before, "lim": self._limit})
            ).all()
            last = None
            for position, text in assemble(conn, db.statements, sid, rows):
                ok, item = decode_or_skip(sid, position, text)
                if not ok or not self._prune_prefix(item):
                    break
                last = position
            if last is None:
                return removed
            removed += count_deleted(conn, sql.delete_through, {"sid": sid, "last": last})
            if last != rows[-1].position or len(rows) < self._limit:
                return removed


async def get_compaction_snapshot(
    self: SQLAlchemySession, limit: int, *, prune_prefix: PrunePrefix | None = None
) -> CompactionSnapshot:
    """The SDK's ``_get_compaction_snapshot``: the latest ``limit`` items, replaceable.

    Args:
        self: The session.
        limit: How many of the latest items the snapshot covers, at most.
        prune_prefix: Says whether one of the oldest items may be deleted with the
            replacement (the SDK's ``EncryptedSession`` passes its expiry test).
    """
    limit = check_limit(limit) or 0
    db = await self._context.ready()
    sql = _statements(db.tables)
    sid = self.session_id

    def read(conn: Connection) -> tuple[list[tuple[int, str]], bool]:
        # One row past the window tells whether it is the whole history.
        rows = (conn.execute(sql.tail, {"sid": sid, "lim": limit + 1})).all()
        window = rows[:limit][::-1]
        return assemble(conn, db.statements, sid, window), len(rows) <= limit

    rows, complete = await run_read(db, read, retry=self._context.retry)
    kept: list[tuple[int, str]] = []
    items: list[Any] = []
    for position, text in rows:
        ok, item = decode_or_skip(sid, position, text)
        if ok:
            kept.append((position, text))
            items.append(item)
        else:
            # Only what could be read may be summarised: start after the corrupt row.
            kept.clear()
            items.clear()
            complete = False
    return CompactionSnapshot(items, complete, self, kept, max(limit, 1), prune_prefix)


# -- the whole replacement --------------------------------------------------------------------


async def atomic_replace_items(self: SQLAlchemySession, items: list[Any]) -> bool:
    """The SDK's ``_atomic_replace_items``: the session's history becomes ``items``.

    Raises:
        InvalidItemError: An item cannot be stored; nothing is changed.
        PayloadTooLargeError: An item is over the session's ``max_item_bytes``.
    """
    db = await self._context.ready()
    planned = await _plan(self, db, items)
    sql = _statements(db.tables)
    sid = self.session_id
    n = len(planned.texts)
    last_try: dict[str, Any] = {}

    def work(conn: Connection) -> bool:
        now = utcnow()
        last_try["now"] = now
        if n == 0:
            # No positions to reserve, and no session row to create for an empty history.
            # Without a row there are no items (foreign key), and no lock was taken: a
            # concurrent first add must not lose its items to the delete.
            locked = conn.execute(sql.set_count, {"sid": sid, "n": 0, "now": now})
            if locked.rowcount:
                conn.execute(sql.delete_all, {"sid": sid})
        else:
            end = _reserve(db, conn, sid, n, now)
            last_try["end"] = end
            conn.execute(sql.delete_before, {"sid": sid, "stop": end - n})
            _insert(sid, conn, sql, planned, end - n, now)
            # Exact again even if rows were deleted by hand behind the counter's back.
            conn.execute(sql.set_count, {"sid": sid, "n": n, "now": now})
        _settle(self, conn, db)
        return True

    def committed(conn: Connection) -> bool | None:
        now = last_try["now"]
        if n == 0:
            # Replacing with nothing is done whenever nothing is there.
            left = (conn.execute(sql.any_item, {"sid": sid})).first()
            return True if left is None else None
        end = last_try["end"]
        if _lands(conn, sql, sid, end - 1, planned.last_head, now):
            return True
        row = (conn.execute(sql.session_row, {"sid": sid})).first()
        if row is None or row.next_position < end:
            return False  # the reservation itself did not commit
        return None

    return await run_write(db, work, retry=self._context.retry, verify=committed)


snapshot_hook = _Hook(get_compaction_snapshot)
"""``SQLAlchemySession._get_compaction_snapshot``."""

replace_hook = _Hook(atomic_replace_items)
"""``SQLAlchemySession._atomic_replace_items``."""
