"""The tail read is an index range scan with no sort: its cost does not grow with length.

Asserted through each database's query plan rather than timings, so the test is exact.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import SQLAlchemySession, Tables

EXPLAIN = {
    "sqlite": ("EXPLAIN QUERY PLAN ", "?"),
    "postgresql": ("EXPLAIN (COSTS OFF) ", "$1"),
    "mysql": ("EXPLAIN FORMAT=JSON ", "%s"),
}


async def test_tail_read_uses_the_primary_key_without_sorting(
    backend: str,
    engine: AsyncEngine,
    tables: Tables,
    make_session: Callable[..., SQLAlchemySession],
) -> None:
    session = make_session()
    await session.add_items([{"n": n} for n in range(200)])
    prefix, placeholder = EXPLAIN[backend]
    sql = (
        f"SELECT position, message_data FROM {tables.messages.name} "
        f"WHERE session_id = {placeholder} ORDER BY position DESC LIMIT 20"
    )
    async with engine.connect() as conn:
        if backend == "postgresql":
            # On a tiny test table the planner prefers scan-then-sort; discourage those to
            # see the plan a large table gets. A Sort still appears if no index gives order.
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                await conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        rows = (await conn.exec_driver_sql(prefix + sql, (session.session_id,))).all()
        await conn.rollback()
    plan = "\n".join(" ".join(str(value) for value in row) for row in rows)
    if backend == "sqlite":
        assert "USING INDEX sqlite_autoindex" in plan or "USING PRIMARY KEY" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    elif backend == "postgresql":
        assert "Index Scan Backward" in plan, plan
        assert "Sort" not in plan, plan
    else:
        assert '"key": "PRIMARY"' in plan, plan
        assert "filesort" not in plan, plan
