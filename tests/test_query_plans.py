"""The statements convostore runs on a session's rows use the primary key, without a sort.

Each test compiles the statement convostore itself prepares (from ``Statements``, the one
place statements are built) for the engine's dialect, asks the database for its plan and
checks it: an index range scan on the primary key, no full scan, no sort. Asserted through
query plans rather than timings, so the tests are exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, Tables
from convostore._db.engine import Database

EXPLAIN = {
    "sqlite": "EXPLAIN QUERY PLAN ",
    "postgresql": "EXPLAIN (COSTS OFF) ",
    "mysql": "EXPLAIN FORMAT=JSON ",
}

# Statement attribute -> the parameters it is explained with (besides the session id).
STATEMENTS: dict[str, dict[str, Any]] = {
    "select_tail": {"lim": 20},
    "select_all": {},
    "select_chunks": {"positions": [3, 5]},
    "select_last_for_update": {},
    "delete_last_returning": {},
    "delete_item": {"pos": 7},
    "lock_session": {},
    "nth_newest": {"skip": 10},
    "delete_before": {"cutoff": 100},
    "delete_items": {},
    "session_info": {},
}


def check_plan(backend: str, plan: str) -> None:
    if backend == "sqlite":
        assert "TEMP B-TREE" not in plan, plan
        for line in plan.splitlines():
            if " SCAN " in f" {line} ":
                # A scan is only allowed over the one row a MAX() subquery needs.
                assert "USING" in line, plan
                assert "INDEX" in line, plan
    elif backend == "postgresql":
        assert "Seq Scan" not in plan, plan
        assert "Sort" not in plan, plan
    else:
        assert '"access_type": "ALL"' not in plan, plan
        assert "filesort" not in plan, plan


@pytest.mark.parametrize("name", sorted(STATEMENTS))
async def test_statement_uses_the_primary_key_without_sorting(
    name: str,
    backend: str,
    engine: AsyncEngine,
    tables: Tables,
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session = make_session()
    await session.add_items([{"n": n} for n in range(200)])
    db = Database.of(engine, tables)
    statement = getattr(db.statements, name)
    if (
        db.statements.is_mysql
        and name == "delete_last_returning"
        and not engine.dialect.delete_returning
    ):
        pytest.skip("MySQL has no DELETE ... RETURNING; MariaDB has")
    values = {"sid": session.session_id, **STATEMENTS[name]}
    if isinstance(statement, Select):
        compiled = statement.params(**values).compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
        )
        args: tuple[Any, ...] = ()
        sql = str(compiled).replace("%", "%%") if backend == "mysql" else str(compiled)
    else:
        # DML has no params(): bind the values in the driver's own style, as convostore's
        # executions do.
        compiled = statement.compile(dialect=engine.dialect)
        args = tuple(values[key] for key in compiled.positiontup or ())
        sql = str(compiled)
    async with engine.connect() as conn:
        if backend == "postgresql":
            # On a tiny test table the planner prefers scan-then-sort; discourage those to
            # see the plan a large table gets. A Sort or Seq Scan still appears if no index
            # serves the statement.
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                await conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        rows = (await conn.exec_driver_sql(EXPLAIN[backend] + sql, args)).all()
        await conn.rollback()
    check_plan(backend, "\n".join(" ".join(str(value) for value in row) for row in rows))
