"""Typed records the store returns: a session's facts, a page of sessions, a page of items.

All are frozen dataclasses; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

__all__ = [
    "CorruptItem",
    "ExportReport",
    "ImportReport",
    "ItemPage",
    "PageItem",
    "PruneReport",
    "SessionInfo",
    "SessionPage",
]


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """What the store knows about one session, without its items."""

    session_id: str
    """The session's id."""

    created_at: dt.datetime
    """When the session's first item was added (UTC)."""

    updated_at: dt.datetime
    """When an item was last added or popped (UTC)."""

    item_count: int
    """How many items the session holds, exactly."""

    user_id: str | None = None
    """The user the session belongs to, if the application said so."""

    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The application's JSON object for the session (title, agent name, ...)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready values (times as ISO 8601 strings)."""
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "metadata": self.metadata,
            "item_count": self.item_count,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclasses.dataclass(frozen=True)
class SessionPage:
    """One page of sessions, newest first.

    What [`SessionStore.list_sessions`][convostore.SessionStore.list_sessions] returns.
    """

    sessions: list[SessionInfo]
    """The sessions of this page, most recently updated first."""

    next_cursor: str | None
    """Pass as ``cursor=`` for the next page; ``None`` when this page is the last."""


@dataclasses.dataclass(frozen=True)
class PageItem:
    """An item with its position in the session."""

    position: int
    """The item's position: increases with every item added to the session, never reused."""

    item: Any
    """The item as it was added."""


@dataclasses.dataclass(frozen=True)
class ItemPage:
    """One page of a session's history, oldest first.

    What [`SessionStore.get_page`][convostore.SessionStore.get_page] returns.
    """

    session_id: str
    """The session's id."""

    items: list[PageItem]
    """The items of this page in the order they were added."""

    has_more: bool
    """Whether more items lie beyond this page in the direction it was read (older items
    for a page read backwards, newer ones for a page read with ``after=``)."""

    @property
    def first_position(self) -> int | None:
        """The position of the page's oldest item (pass as ``before=`` to scroll back)."""
        return self.items[0].position if self.items else None

    @property
    def last_position(self) -> int | None:
        """The position of the page's newest item (pass as ``after=`` to read forward)."""
        return self.items[-1].position if self.items else None


@dataclasses.dataclass
class PruneReport:
    """What a deletion removed.

    Returned by [`SessionStore.prune`][convostore.SessionStore.prune] and
    [`SessionStore.delete_user`][convostore.SessionStore.delete_user].
    """

    sessions: int = 0
    """Sessions removed (or, in a dry run, that would be removed)."""

    items: int = 0
    """Items those sessions held."""

    batches: int = 0
    """Transactions used; each removed at most one batch."""

    dry_run: bool = False
    """True if nothing was deleted."""

    session_ids: list[str] = dataclasses.field(default_factory=list)
    """The ids of the sessions removed."""

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ExportReport:
    """What [`SessionStore.export`][convostore.SessionStore.export] wrote."""

    sessions: int = 0
    """Session records written."""

    items: int = 0
    """Items written."""

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ImportReport:
    """What [`SessionStore.import_`][convostore.SessionStore.import_] read and stored."""

    sessions: int = 0
    """Sessions stored."""

    items: int = 0
    """Items stored."""

    skipped: list[str] = dataclasses.field(default_factory=list)
    """Ids of sessions that already existed and were skipped."""

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CorruptItem:
    """A stored row whose JSON cannot be decoded."""

    session_id: str
    """The session the row belongs to."""

    position: int
    """The row's position in its session."""

    error: str
    """Why it cannot be decoded."""
