"""The store behaves like a list: hypothesis drives random operations against both.

A :class:`~hypothesis.stateful.RuleBasedStateMachine` runs random sequences of
``add_items``, ``pop_item``, ``clear_session`` and ``get_items(limit)`` on two sessions of a
real backend and on two plain Python lists, and checks after every step that they agree.
Two sessions rather than one also checks that operations on one never show in the other.

Hypothesis' rules are synchronous, so the machine runs the session's coroutines on an
event loop of its own, with an engine of its own on that loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, Tables, engine_from_url

T = TypeVar("T")

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
)
_keys = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)
ITEMS = st.dictionaries(_keys, _values, max_size=4)
"""Items that must round-trip exactly: str keys, JSON values, no NaN, no lone surrogates."""

SESSIONS = 2


class StoreVersusList(RuleBasedStateMachine):
    """Two sessions of one backend against two lists."""

    loop: ClassVar[asyncio.AbstractEventLoop]
    engine: ClassVar[AsyncEngine]
    tables: ClassVar[Tables]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[list[Any]] = [[] for _ in range(SESSIONS)]
        self.sessions = [
            SQLAlchemySession(
                f"model-{uuid.uuid4().hex}",
                engine=self.engine,
                sessions_table=self.tables.sessions.name,
                messages_table=self.tables.messages.name,
            )
            for _ in range(SESSIONS)
        ]

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    @rule(which=st.integers(0, SESSIONS - 1), items=st.lists(ITEMS, max_size=4))
    def add_items(self, which: int, items: list[dict[str, Any]]) -> None:
        self.run(self.sessions[which].add_items(items))
        self.models[which].extend(items)

    @rule(which=st.integers(0, SESSIONS - 1))
    def pop_item(self, which: int) -> None:
        popped = self.run(self.sessions[which].pop_item())
        model = self.models[which]
        assert popped == (model.pop() if model else None)

    @precondition(lambda self: any(self.models))
    @rule(which=st.integers(0, SESSIONS - 1))
    def clear_session(self, which: int) -> None:
        self.run(self.sessions[which].clear_session())
        self.models[which].clear()

    @rule(
        which=st.integers(0, SESSIONS - 1),
        limit=st.none() | st.integers(0, 10) | st.just(10**12),
    )
    def get_items(self, which: int, limit: int | None) -> None:
        got = self.run(self.sessions[which].get_items(limit))
        model = self.models[which]
        expected = model if limit is None else model[max(0, len(model) - limit) :]
        assert got == expected

    def teardown(self) -> None:
        for session in self.sessions:
            self.run(session.clear_session())


@pytest.mark.slow
def test_store_behaves_like_a_list(engine: AsyncEngine, tables: Tables) -> None:
    # `tables` made the run's tables on the shared loop; this loop gets an engine of its own,
    # on the run's database (a layout's, under -m pg_partitioned).
    loop = asyncio.new_event_loop()
    own = engine_from_url(engine.url)
    StoreVersusList.loop = loop
    StoreVersusList.engine = own
    StoreVersusList.tables = tables
    try:
        run_state_machine_as_test(
            StoreVersusList,
            settings=settings(
                max_examples=75,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(own.dispose())
        loop.close()
