"""Whether anything but convostore watches an engine: the condition for every fast path.

convostore runs some work without SQLAlchemy's per-statement machinery (a SQLite file's
worker thread, hot statements on the driver's cursor: ``_db.worker``, ``_db.direct``). An
application that watches its engine must still see every statement, so a fast path is taken
only while nobody does: echo and SQLAlchemy's engine logging are off, and the engine's
execution, dialect and pool events have no listener convostore did not install itself
(logging handlers, tracing such as OpenTelemetry's instrumentation, the application's own
hooks). The check runs before each unit of work and costs a few microseconds.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.engine.events import ConnectionEvents, DialectEvents
from sqlalchemy.pool.events import PoolEvents

__all__ = ["adopt", "has_statement_listeners", "statements_unwatched", "unwatched"]

# Every event an application (echo aside) can hook into SQLAlchemy's execution with.
_EVENT_NAMES = frozenset(
    name
    for kind in (ConnectionEvents, DialectEvents, PoolEvents)
    for name in vars(kind)
    if not name.startswith("_") and callable(getattr(kind, name))
)
# The events that see statements themselves. Work whose statements skip SQLAlchemy's
# execution but whose connections, transactions and pool still go through it (hot
# statements on the driver's cursor) needs only these to be quiet.
_STATEMENT_EVENTS = frozenset(
    {
        "before_execute",
        "after_execute",
        "before_cursor_execute",
        "after_cursor_execute",
        "handle_error",
        "do_execute",
        "do_execute_no_params",
        "do_executemany",
        "do_setinputsizes",
    }
)
# The names each kind of dispatcher answers, found once: a miss costs SQLAlchemy an exception.
_names_of: dict[tuple[type, frozenset[str]], tuple[str, ...]] = {}


def _names(dispatch: Any, events: frozenset[str]) -> tuple[str, ...]:
    names = _names_of.get((type(dispatch), events))
    if names is None:
        names = _names_of[(type(dispatch), events)] = tuple(
            sorted(name for name in events if _answers(dispatch, name))
        )
    return names


def _answers(dispatch: Any, name: str) -> bool:
    try:
        getattr(dispatch, name)
    except AttributeError:
        return False
    return True


def _collections(engine: Engine, events: frozenset[str] = _EVENT_NAMES) -> tuple[Any, ...]:
    """The engine's listener collections of ``events``, one per event, in a fixed order."""
    found: tuple[Any, ...] = ()
    for dispatch in (engine.dispatch, engine.dialect.dispatch, engine.pool.dispatch):
        found += tuple(getattr(dispatch, name) for name in _names(dispatch, events))
    return found


def has_statement_listeners(engine: Engine) -> bool:
    """Whether anything listens to ``engine``'s statements: the application, if anything.

    SQLAlchemy installs no statement listener of its own.
    """
    return any(len(c) for c in _collections(engine, _STATEMENT_EVENTS))


class _Baseline:
    """The listeners an engine had when convostore adopted it, and a cheap test for more.

    SQLAlchemy replaces an event's empty collection by a new one when a listener is added:
    while every collection is the very object it was, only those that had listeners then
    can have gained any, and counting those is enough. Anything else is counted in full.
    """

    def __init__(self, engine: Engine, events: frozenset[str]) -> None:
        self.engine = weakref.ref(engine)
        self.events = events
        self.collections = _collections(engine, events)
        self.count = sum(len(c) for c in self.collections)
        self.live = tuple(c for c in self.collections if len(c))

    def holds(self, engine: Engine) -> bool:
        current = _collections(engine, self.events)
        if current == self.collections:  # identity first: none of these define __eq__
            return sum(len(c) for c in self.live) == self.count
        return sum(len(c) for c in current) == self.count


# By dialect, which an engine shares with its views (``engine.execution_options(...)``, as
# convostore's reads use on PostgreSQL) and keeps through ``dispose()``.
_baselines: weakref.WeakKeyDictionary[Dialect, tuple[_Baseline | None, _Baseline]]
_baselines = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def adopt(engine: Engine, *, made_here: bool) -> None:
    """Take ``engine``'s current listeners as convostore's own: later ones mean "watched".

    Called once convostore has installed its listeners. ``made_here``: convostore made the
    engine, so every listener on it is convostore's or SQLAlchemy's, and ``unwatched``
    can answer; for an application's engine only ``statements_unwatched`` can, and only
    if it had no statement listener when convostore met it.
    """
    with _guard:
        _baselines[engine.dialect] = (
            _Baseline(engine, _EVENT_NAMES) if made_here else None,
            _Baseline(engine, _STATEMENT_EVENTS),
        )


def unwatched(engine: Engine) -> bool:
    """Whether nothing but convostore watches ``engine`` at all (see the module docstring).

    ``engine`` may be a view of an adopted engine made by ``execution_options``; convostore
    adds no listener to its views, so the engine they were made from is checked. ``False``
    for an engine never adopted: it had listeners of the application's from the start.
    """
    return _holds(engine, 0)


def statements_unwatched(engine: Engine) -> bool:
    """Whether nothing watches ``engine``'s statements (pool and transaction listeners may).

    No execute, cursor, error or driver-execution listener, no echo, no engine logging.
    """
    return _holds(engine, 1)


def _holds(engine: Engine, which: int) -> bool:
    baselines = _baselines.get(engine.dialect)
    if baselines is None or engine.echo or engine.logger.isEnabledFor(logging.INFO):
        return False
    baseline = baselines[which]
    if baseline is None:
        return False
    adopted = baseline.engine()
    return adopted is not None and baseline.holds(adopted)
