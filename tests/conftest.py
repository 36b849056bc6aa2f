"""Every shared fixture, and the backend markers: one suite, run on SQLite, PostgreSQL and MariaDB.

Markers (described in pyproject.toml; README.md, under "Set up", says how to use them):

- ``sqlite``, ``postgresql``, ``mysql``: the backend a test runs on. A test parametrized over
  backends (by the ``backend`` fixture, or any parameter made with ``backend_params``) gets
  the marker of each case's backend. A test written for some backends only carries their
  markers itself; if it is also parametrized over backends, the cases of the other backends
  are deselected. Every other test does not depend on the backend and gets all three
  markers, so ``pytest -m postgresql`` runs it too.
- ``slow`` (the slowest case takes over about 5 s) and ``fault`` (it injects a failure) are
  written on the tests; nothing deselects them, so plain ``pytest`` runs them.

Fixtures:

- ``backend`` (the three backends), ``engine`` (the run's engine for it) and ``tables``
  (convostore tables with names unique to the run, dropped at its end: the suite can run
  again and again on the same databases); ``sqlite_dir`` holds SQLite's database file.
- ``make_session`` / ``session``, ``store`` on the run's tables; ``new_store`` for stores on
  tables of their own.
- ``empty_database_url``: a database with no tables (for programs that use the default
  table names); ``proxied``: an engine behind a proxy that cuts connections around COMMIT;
  ``small_chunks``: a chunk size small enough that items of a few KB take many chunks.

A server that does not answer skips its tests with a how-to message; under ``CI=true`` it
fails them (tests/_databases.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import convostore._db.chunks
from convostore import (
    SessionStore,
    SQLAlchemySession,
    Tables,
    create_tables,
    engine_from_url,
    to_async_url,
)

from . import (
    _pg_partitioned,  # noqa: F401  (registers the pg_partitioned layout)
    _spider,  # noqa: F401  (registers the spider layout)
)
from ._databases import (
    BACKENDS,
    SERVERS,
    backend_params,
    backend_url,
    scratch_database,
    server_down,
    server_url,
    skip_or_fail,
)
from ._layouts import (
    Backend,
    Layout,
    asked_for,
    deselected,
    layout_params,
    make_layout,
    registered,
)
from ._proxy import CuttingProxy, Proxied
from ._stores import (
    SMALL_CHUNK,
    MakeSession,
    NewStore,
    drop_tables,
    make_store,
    run_tables,
    session_on,
    store_factory,
    unique_tables,
)

# -- markers ----------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by the markers set here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each test the markers of exactly the backends it runs on; deselect the cases of
    backends a test is not for."""
    runs_on: dict[pytest.Item, set[str]] = {}
    drop = []
    # A layout's cases start servers or databases of their own: they run only when named.
    wanted = asked_for(config.option.markexpr or "")
    for item in items:
        case, declared = _case_backends(item), _declared_backends(item)
        layout = _case_layout(item)
        if (
            layout not in (None, *wanted)
            or (case and declared and not case <= declared)
            or (layout is not None and deselected(layout, item.nodeid) is not None)
        ):
            drop.append(item)
        else:
            runs_on[item] = case or declared or set(BACKENDS)
    # A marker written on a module says where its tests may run, but every case inherits
    # it: the [mysql] case of a module marked postgresql and mysql would match -m postgresql.
    # So the written markers are replaced by each test's own.
    for item in items:
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name not in BACKENDS]
    for item, backends in runs_on.items():
        for name in sorted(backends):
            item.add_marker(name)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item in runs_on]


def _case_backends(item: pytest.Item) -> set[str]:
    """The backends whose markers the test's parameters carry (``backend_params``)."""
    callspec = getattr(item, "callspec", None)
    return {m.name for m in callspec.marks if m.name in BACKENDS} if callspec else set()


def _case_layout(item: pytest.Item) -> str | None:
    """The layout the test's ``backend`` parameter runs on, if any."""
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("backend") if callspec else None
    return backend.layout if isinstance(backend, Backend) else None


def _declared_backends(item: pytest.Item) -> set[str]:
    """The backend markers written on the test, else on its class, else on its module."""
    callspec = getattr(item, "callspec", None)
    # A parameter's marks are added to the test's own, as the same objects.
    from_case = {id(m) for m in callspec.marks} if callspec else set()
    for node in reversed(item.listchain()):
        names = {m.name for m in node.own_markers if m.name in BACKENDS and id(m) not in from_case}
        if names:
            return names
    return set()


# -- the backends -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the run's SQLite database file."""
    return tmp_path_factory.mktemp("sqlite")


@pytest.fixture(scope="session", params=[*backend_params(), *layout_params()])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The backend's name: ``sqlite``, ``postgresql`` or ``mysql``; ``.layout`` names a layout.

    The layout cases (tests/_layouts.py) run only under ``-m spider`` or ``-m pg_partitioned``.
    """
    param = request.param
    return param if isinstance(param, Backend) else Backend(str(param))


@pytest.fixture(scope="session")
async def layout(backend: Backend) -> AsyncIterator[Layout | None]:
    """The started layout of a layout case (``None`` on a plain backend); stopped at the end."""
    if backend.layout is None:
        yield None
        return
    if backend.layout not in registered():
        skip_or_fail(f"the {backend.layout} layout is not available in this checkout")
    started = make_layout(backend.layout)
    try:
        yield started
    finally:
        await started.stop()


_unreachable: dict[str, str] = {}


async def _reachable(engine: AsyncEngine) -> str | None:
    """``None`` if ``engine`` answers; otherwise why not (and the engine is disposed)."""
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any connection failure means "server not reachable"
        await engine.dispose()
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
async def engine(
    backend: Backend, layout: Layout | None, sqlite_dir: Path
) -> AsyncIterator[AsyncEngine]:
    """The run's engine for ``backend``; skips (or, under CI, fails) if the server is down."""
    if backend.id in _unreachable:
        server_down(backend.id, _unreachable[backend.id])
    pool = {} if backend == "sqlite" else {"pool_size": 10, "max_overflow": 20}
    url = await layout.start() if layout is not None else backend_url(backend, sqlite_dir)
    eng = engine_from_url(url, **pool)
    if (reason := await _reachable(eng)) is not None:
        _unreachable[backend.id] = reason
        server_down(backend.id, reason)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
async def tables(engine: AsyncEngine, layout: Layout | None) -> AsyncIterator[Tables]:
    """Tables unique to this run on the backend (in its layout); dropped when the run ends."""
    t = run_tables()
    await (layout.create_tables if layout else create_tables)(engine, t)
    yield t
    await (layout.drop_tables if layout else drop_tables)(engine, t)


@pytest.fixture
async def empty_database_url(
    backend: str, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[str]:
    """The URL of a database with no tables: a new SQLite file, or a scratch database."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    async with scratch_database(engine) as url:
        yield url


# -- sessions and stores ----------------------------------------------------------------------


@pytest.fixture
def make_session(engine: AsyncEngine, tables: Tables) -> MakeSession:
    """Build sessions on the run's engine and tables; a fresh unique id unless one is given."""

    def make(session_id: str | None = None, **options: object) -> SQLAlchemySession:
        return session_on(engine, tables, session_id, **options)

    return make


@pytest.fixture
def session(make_session: MakeSession) -> SQLAlchemySession:
    """A new, empty session with a unique id."""
    return make_session()


@pytest.fixture
def store(engine: AsyncEngine, tables: Tables) -> SessionStore:
    """A store on the run's tables (shared with other tests: use unique session ids)."""
    return make_store(engine, tables)


@pytest.fixture
async def new_store(engine: AsyncEngine, layout: Layout | None) -> AsyncIterator[NewStore]:
    """``await new_store(**options)``: a store on tables of its own, dropped after the test."""
    async with store_factory(engine, layout) as make:
        yield make


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Store items in chunks of :data:`SMALL_CHUNK` characters; returns that size."""

    async def chunk_chars(_db: object, texts: Sequence[str] = (), **_options: object) -> int:
        return SMALL_CHUNK

    monkeypatch.setattr(convostore._db.chunks, "chunk_chars", chunk_chars)
    return SMALL_CHUNK


# -- faults -----------------------------------------------------------------------------------


@pytest.fixture(params=backend_params(*SERVERS))
async def proxied(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Proxied]:
    """An engine on the shared test server through a :class:`CuttingProxy`, and tables there."""
    backend = str(request.param)
    url = to_async_url(server_url(backend))
    host = url.host or "127.0.0.1"
    port = url.port or (5432 if backend == "postgresql" else 3306)
    # asyncpg asks for TLS by default; the proxy must see the statements in clear text.
    connect_args = {"ssl": False} if backend == "postgresql" else {}
    async with CuttingProxy(host, port) as proxy:
        engine = engine_from_url(
            url.set(host="127.0.0.1", port=proxy.port), connect_args=connect_args
        )
        if (reason := await _reachable(engine)) is not None:
            server_down(backend, reason)
        tables = unique_tables("f")
        await create_tables(engine, tables)
        try:
            yield proxy, engine, tables
        finally:
            proxy.cut = None
            await drop_tables(engine, tables)
            await engine.dispose()
