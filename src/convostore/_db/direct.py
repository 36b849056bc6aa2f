"""The hot statements on the driver's cursor: compiled once, run without the per-call path.

SQLAlchemy Core spends, per statement, about as much CPU as a local database needs to
answer a short one: it computes the statement's cache key, builds an execution context,
wraps the cursor in a result and every row in a ``Row`` (bench/layers.py). convostore's
statements are few and fixed (``Statements``), so the hot
ones are compiled once per dialect, by SQLAlchemy, from the same ``Table`` objects, and run
on the DBAPI cursor of the very connection SQLAlchemy checked out of the pool: the same
transaction, the same pool settings, the same bind and result processing of every column
type (``type.dialect_impl(dialect)``'s processors).

This is only done while nothing watches the engine's statements (``_db.watching``), for the
drivers convostore ships with. Any execute, cursor, error or driver-execution listener,
echo or engine logging turns it off, and the work goes
through ``Connection.execute`` as before, so instrumentation never goes silent. A statement
that cannot be run this way (an expanding ``IN``, a Python-side column default, one built
for a single call) always goes through ``Connection.execute``.

Driver errors come out as SQLAlchemy's ``DBAPIError``, the connection
invalidated on a disconnect, exactly as from ``Connection.execute``: the runner's retry
rules see no difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement, Executable

from . import watching
from .engine import COMMITTED, engine_state
from .statements import Statements

__all__ = ["Executor", "Result", "compiled_so_far", "executor", "fetch_on_driver"]

Params = dict[str, Any] | Sequence[dict[str, Any]] | None

# The drivers whose cursors this module has been proven on (the whole suite runs on them).
_DRIVERS = frozenset({"asyncpg", "aiomysql", "asyncmy", "aiosqlite", "pysqlite"})


class ScalarResult(Protocol):
    """The first column of a result's rows."""

    def all(self) -> Sequence[Any]: ...


class Result(Protocol):
    """What units of work use of a statement's result (SQLAlchemy's ``CursorResult`` is one)."""

    def all(self) -> Sequence[Any]: ...

    def first(self) -> Any: ...

    def scalar_one(self) -> Any: ...

    def scalar_one_or_none(self) -> Any: ...

    def scalars(self) -> ScalarResult: ...

    def __iter__(self) -> Iterator[Any]: ...

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> Any: ...


class Executor(Protocol):
    """What units of work run statements on: a ``Connection``, or ``executor``'s answer."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, statement: Executable, parameters: Params = None, /) -> Result: ...


def executor(conn: Connection, statements: Statements, *, read_only: bool = False) -> Executor:
    """The fastest way to run ``statements`` on ``conn`` that keeps the engine observable.

    ``conn`` itself whenever anything watches its engine's statements or the driver is not
    one of convostore's; otherwise a wrapper that runs the hot statements on the driver's
    cursor (in ``conn``'s transaction) and hands every other statement to ``conn``.
    ``read_only``: the work will not be committed (a read), so needs no transaction of
    SQLAlchemy's.
    """
    engine = conn.engine
    if engine.dialect.driver not in _DRIVERS or not watching.statements_unwatched(engine):
        return conn
    return _Direct(conn, _compiled(statements, conn.dialect), read_only)


async def fetch_on_driver(
    engine: AsyncEngine, statements: Statements, statement: Executable, params: dict[str, Any]
) -> Sequence[Any] | None:
    """Run one read-only hot statement straight on a pooled driver connection.

    A read needs no transaction of SQLAlchemy's, so it needs none of its connection
    machinery either: a connection from the engine's pool (``AsyncEngine.raw_connection()``,
    its checkout and checkin events included), the statement on the driver, and back. That
    is half the CPU of the same read through an ``AsyncConnection`` (bench/layers.py), the
    floor's own path on SQLAlchemy's pool. On PostgreSQL (asyncpg) the read runs in the
    driver's autocommit. On MySQL and MariaDB it ends with the ROLLBACK that releases its
    snapshot, and only on engines convostore made, whose pool then does not roll back again.

    Returns the processed rows, or ``None`` when this path does not apply (another driver,
    someone watching the statements, a statement that needs the full path) or the driver
    failed: the caller then runs the read the usual way, whose retries and errors apply. A
    read is safe to run twice. A pool with no connection free within ``pool_timeout`` is
    raised at once, as the usual path would (a ``StorageError`` naming the pool's settings).
    """
    dialect = engine.dialect
    driver_name = dialect.driver
    mysql = driver_name in ("aiomysql", "asyncmy")
    if driver_name != "asyncpg" and not (mysql and engine_state(engine).rolls_back_reads):
        return None
    if not watching.statements_unwatched(engine.sync_engine):
        return None
    plan = _compiled(statements, dialect).plan(statement, tuple(params))
    if plan is None:
        return None
    try:
        fairy = await engine.raw_connection()
    except PoolTimeoutError as exc:
        # The pool has waited pool_timeout already: the usual path would wait as long again.
        raise engine_state(engine).error_for(exc) from exc
    except Exception:
        return None  # the usual path connects again, and retries or reports
    driver: Any = fairy.driver_connection
    try:
        if mysql:
            async with driver.cursor() as cursor:
                await cursor.execute(plan.sql, plan.arguments(params))
                raw = await cursor.fetchall()
            await driver.rollback()
            fairy.info[COMMITTED] = True  # rolled back just now: nothing left to reset
        else:
            raw = await driver.fetch(plan.sql, *plan.arguments(params))
    except BaseException as exc:
        # Whatever happened mid-statement, the connection is not used again.
        fairy.invalidate(exc if isinstance(exc, Exception) else None)
        if isinstance(exc, Exception):
            return None
        raise
    fairy.close()
    return plan.rows(raw)


def compiled_so_far(statements: Statements) -> list[tuple[str, Executable, str]]:
    """The statements of ``statements`` compiled for the driver's cursor so far.

    For each: its dialect's name, the statement and the SQL sent. These are exactly the
    statements the fast paths have run (a statement is compiled the first time it is run
    this way), for checks that see SQL only through SQLAlchemy's events, which the fast
    paths skip (tests/test_sharding_rule.py).
    """
    found = []
    for dialect, compiled in list(_cache.get(statements, {}).items()):
        for (key, _), plan in list(compiled.plans.items()):
            if plan is not None:
                found.append((dialect.name, compiled.hot[key], plan.sql))
    return found


class _Rows:
    """A fully fetched result: the processed rows, the row count and the last row id."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int, lastrowid: Any) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def all(self) -> Sequence[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self._rows)}")
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> ScalarResult:
        return _Rows([row[0] for row in self._rows], self.rowcount, self.lastrowid)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


Processor = Callable[[Any], Any]


class _Plan:
    """One statement compiled for one dialect and set of parameter names."""

    __slots__ = ("binds", "results", "sql")

    def __init__(
        self,
        sql: str,
        binds: list[tuple[str, Any, Processor | None]],
        results: list[Processor | None] | None,
    ) -> None:
        self.sql = sql
        self.binds = binds
        """For each positional parameter: its name, its default value, its bind processor."""
        self.results = results
        """Each result column's processor; ``None`` when no column needs one."""

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        out = []
        for name, default, process in self.binds:
            value = params.get(name, default)
            out.append(value if process is None else process(value))
        return out

    def rows(self, raw: Sequence[Any]) -> Sequence[Any]:
        results = self.results
        if results is None:
            return raw
        return [
            tuple(v if p is None else p(v) for v, p in zip(row, results, strict=True))
            for row in raw
        ]


class _Compiled:
    """The plans of one ``Statements`` on one dialect, made as statements are first run."""

    def __init__(self, statements: Statements, dialect: Dialect) -> None:
        self.dialect = dialect
        self.hot = {id(v): v for v in vars(statements).values() if isinstance(v, Executable)}
        self.plans: dict[tuple[int, tuple[str, ...]], _Plan | None] = {}

    def plan(self, statement: Executable, names: tuple[str, ...]) -> _Plan | None:
        key = (id(statement), names)
        try:
            return self.plans[key]
        except KeyError:
            pass
        plan = None
        if self.hot.get(id(statement)) is statement:
            plan = _plan(statement, names, self.dialect)
        return self.plans.setdefault(key, plan)


def _plan(statement: Executable, names: tuple[str, ...], dialect: Dialect) -> _Plan | None:
    """Compile ``statement`` for ``dialect``, or ``None`` if it must take the full path."""
    assert isinstance(statement, ClauseElement)
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(names))
    sql = compiled.string
    if (
        not compiled.positional
        or "POSTCOMPILE" in sql  # expanding IN, literal-rendered values
        or compiled.insert_prefetch  # column defaults computed in Python
        or compiled.update_prefetch
    ):
        return None
    binds = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        if bind.callable is not None:  # a value computed at execution time
            return None
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        binds.append((name, bind.value, process))
    columns = list(getattr(statement, "exported_columns", ()))
    processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
    results = processors if any(p is not None for p in processors) else None
    return _Plan(sql, binds, results)


_cache: weakref.WeakKeyDictionary[Statements, dict[Dialect, _Compiled]]
_cache = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def _compiled(statements: Statements, dialect: Dialect) -> _Compiled:
    by_dialect = _cache.get(statements)
    if by_dialect is None:
        with _guard:
            by_dialect = _cache.setdefault(statements, {})
    found = by_dialect.get(dialect)
    if found is None:
        with _guard:
            found = by_dialect.setdefault(dialect, _Compiled(statements, dialect))
    return found


class _Direct:
    """An ``Executor`` that runs the hot statements on ``conn``'s DBAPI cursor."""

    def __init__(self, conn: Connection, compiled: _Compiled, read_only: bool) -> None:
        self._conn = conn
        self._compiled = compiled
        self._mysql = compiled.dialect.name in ("mysql", "mariadb")
        if not read_only and not conn.in_transaction():
            # SQLAlchemy's COMMIT and ROLLBACK reach the driver only for a transaction it
            # began; the driver's own transaction starts with the first statement.
            conn.begin()

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    def execute(self, statement: Executable, parameters: Params = None, /) -> Result:
        many = isinstance(parameters, (list, tuple))
        rows: Sequence[dict[str, Any]] = (
            parameters if many else [parameters or {}]  # type: ignore[list-item,assignment]
        )
        plan = self._compiled.plan(statement, tuple(rows[0]) if rows else ())
        if plan is None or not rows or (many and plan.results is not None):
            return self._conn.execute(statement, parameters)
        args: Any = [plan.arguments(p) for p in rows] if many else plan.arguments(rows[0])
        return self._run(plan, args, many)

    def _run(self, plan: _Plan, args: Any, many: bool) -> _Rows:
        dbapi_connection = self._conn.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = dbapi_connection.cursor()
        try:
            if many:
                cursor.executemany(plan.sql, args)
            else:
                cursor.execute(plan.sql, args)
            rows = plan.rows(cursor.fetchall()) if cursor.description is not None else ()
            return _Rows(rows, cursor.rowcount, cursor.lastrowid if self._mysql else None)
        except self._conn.dialect.loaded_dbapi.Error as exc:
            raise self._translate(exc, plan.sql, args, cursor) from exc
        except (OSError, asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            # Cut off mid-statement: as SQLAlchemy does, the connection's state is unknown
            # and it is not used again.
            self._conn.invalidate()
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def _translate(self, exc: Any, sql: str, args: Any, cursor: Any) -> BaseException:
        dialect = self._conn.dialect
        dbapi_connection = self._conn.connection.dbapi_connection
        disconnect = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if disconnect:
            self._conn.invalidate(exc)
        error: BaseException = DBAPIError.instance(
            sql,
            args,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=self._conn.engine.hide_parameters,
            connection_invalidated=disconnect,
            dialect=dialect,
        )
        return error
