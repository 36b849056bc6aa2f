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
import operator
import threading
import weakref
from collections.abc import Callable
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
# For each kind of dispatcher and set of events, one getter of the listener collections of
# the events it answers, found once: a miss costs SQLAlchemy an exception, and one C-level
# getter keeps the check before every unit of work to about a microsecond.
_getters: dict[tuple[type, frozenset[str]], Callable[[Any], tuple[Any, ...]]] = {}


def _none(_dispatch: Any) -> tuple[Any, ...]:
    return ()


def _getter(dispatch: Any, events: frozenset[str]) -> Callable[[Any], tuple[Any, ...]]:
    getter = _getters.get((type(dispatch), events))
    if getter is None:
        names = sorted(name for name in events if _answers(dispatch, name))
        if not names:
            getter = _none
        elif len(names) == 1:  # attrgetter of one name returns the value, not a tuple
            one = operator.attrgetter(names[0])
            getter = lambda d: (one(d),)  # noqa: E731
        else:
            getter = operator.attrgetter(*names)
        _getters[(type(dispatch), events)] = getter
    return getter


def _answers(dispatch: Any, name: str) -> bool:
    try:
        getattr(dispatch, name)
    except AttributeError:
        return False
    return True


def _collections(engine: Engine, events: frozenset[str] = _EVENT_NAMES) -> tuple[Any, ...]:
    """The engine's listener collections of ``events``, one per event, in a fixed order."""
    dispatches = (engine.dispatch, engine.dialect.dispatch, engine.pool.dispatch)
    found: tuple[Any, ...] = ()
    for dispatch in dispatches:
        found += _getter(dispatch, events)(dispatch)
    return found


def has_statement_listeners(engine: Engine) -> bool:
    """Whether anything listens to ``engine``'s statements: the application, if anything.

    SQLAlchemy installs no statement listener of its own.
    """
    return _count(engine, _STATEMENT_EVENTS) > 0


class _Baseline:
    """The number of listeners an engine had when convostore adopted it; more means watched.

    Every collection is counted each time: a listener added to the class (``Engine``, a
    pool or dialect class) after adoption joins the count of the engine's own collection
    without replacing it, so identity alone cannot tell.
    """

    def __init__(self, engine: Engine, events: frozenset[str]) -> None:
        self.engine = weakref.ref(engine)
        self.events = events
        self.count = _count(engine, events)

    def holds(self, engine: Engine) -> bool:
        return _count(engine, self.events) == self.count


def _count(engine: Engine, events: frozenset[str]) -> int:
    return sum(map(len, _collections(engine, events)))


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
