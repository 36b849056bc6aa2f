"""Table layouts beyond one plain server: the storage suite again, on sharded or partitioned tables.

A layout is a backend (its dialect, its SQL) whose tables are laid out differently: MariaDB
Spider (a head server sharding every table by ``session_id`` over data nodes) and PostgreSQL
with the messages tables hash-partitioned by ``session_id``. Each has its pytest marker, and
every test parametrized by the ``backend`` fixture gets a case for it: ``test_x[spider]``.

Layout cases run only when asked for by name (``pytest -m spider``, ``pytest -m
pg_partitioned``): plain ``pytest`` and ``pytest -m mysql`` leave them out, since a layout
starts servers or databases of its own. In a layout case ``backend`` still compares equal to
its dialect's name (``backend == "mysql"`` on Spider), so a test's dialect branches hold;
``backend.layout`` names the layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import Tables


class Backend(str):
    """A backend's name (``"sqlite"``, ``"postgresql"``, ``"mysql"``) and the layout it runs on."""

    layout: str | None

    def __new__(cls, name: str, layout: str | None = None) -> Backend:
        self = super().__new__(cls, name)
        self.layout = layout
        return self

    @property
    def id(self) -> str:
        """The test id of its cases: the layout's name, else the backend's."""
        return self.layout or str(self)


class Layout(Protocol):
    """What the ``engine`` and ``tables`` fixtures ask of a layout."""

    name: str
    """The layout's name, also its pytest marker."""

    backend: str
    """The dialect's backend name: ``"mysql"`` or ``"postgresql"``."""

    async def start(self) -> str:
        """Start what the layout needs (servers, a database); return the URL tests connect to.

        Skips (under ``CI=true``: fails) the test, saying what is missing, when it cannot.
        """
        ...

    async def create_tables(self, engine: AsyncEngine, tables: Tables) -> None:
        """Create ``tables`` in the layout (the counterpart of ``convostore.create_tables``)."""
        ...

    async def drop_tables(self, engine: AsyncEngine, tables: Tables) -> None:
        """Drop ``tables`` and everything :meth:`create_tables` made for them."""
        ...

    async def stop(self) -> None:
        """Stop and remove what :meth:`start` started."""
        ...


LAYOUT_BACKENDS = {"spider": "mysql", "pg_partitioned": "postgresql"}
"""Each layout's name (and marker) and the backend whose dialect it speaks."""

_factories: dict[str, Callable[[], Layout]] = {}
_not_here: dict[str, Mapping[str, str]] = {}


def register(
    name: str, factory: Callable[[], Layout], *, deselect: Mapping[str, str] | None = None
) -> None:
    """Make ``factory`` build the layout ``name`` (called by each layout's module on import).

    ``deselect`` maps test ids (``test_x.py::test_y[spider-case]``) that cannot work in the
    layout by its nature to the reason; those cases are deselected in it, and only there.
    """
    _factories[name] = factory
    _not_here[name] = dict(deselect or {})


def deselected(layout: str, nodeid: str) -> str | None:
    """Why the test ``nodeid`` does not run in ``layout`` (``None``: it runs)."""
    for test, reason in _not_here.get(layout, {}).items():
        if nodeid.endswith(test):
            return reason
    return None


def make_layout(name: str) -> Layout:
    """A new, not yet started, layout of that name."""
    return _factories[name]()


def layout_params() -> list[object]:
    """Parameters of the ``backend`` fixture for the layouts, each with both markers."""
    return [
        pytest.param(
            Backend(backend, layout),
            marks=[getattr(pytest.mark, backend), getattr(pytest.mark, layout)],
            id=layout,
        )
        for layout, backend in LAYOUT_BACKENDS.items()
    ]


def asked_for(markexpr: str) -> set[str]:
    """The layouts a ``-m`` expression names: their cases run only then."""
    words = set(markexpr.replace("(", " ").replace(")", " ").split())
    return {name for name in LAYOUT_BACKENDS if name in words}


def registered() -> set[str]:
    """The layouts this checkout can build."""
    return set(_factories)
