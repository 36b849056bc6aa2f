"""What a SQLite append costs on each table layout, on raw ``sqlite3`` (no convostore code).

An append here is what convostore's is, statement for statement: ``BEGIN IMMEDIATE``, the
upsert that bumps and returns the session's counter, the insert of the item, ``COMMIT``; WAL
with ``synchronous=FULL`` and foreign keys on. It runs on four layouts of convostore's tables
(messages and chunks as rowid tables or ``WITHOUT ROWID``; the sessions table with or without
its two ``updated_at`` indexes) and on the Agents SDK's ``SQLiteSession`` schema with that
store's own statements, interleaved in rounds, and prints the median wall and CPU time per
append. It answers "what does the schema cost", apart from any Python above ``sqlite3``.

    python bench/sqlite_schema.py [--appends 400] [--rounds 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ITEM = json.dumps({"role": "user", "content": "x" * 300})
SESSIONS = [f"s{i}" for i in range(20)]

LAYOUTS = {
    "convostore (rowid tables, 2 indexes)": (True, True),
    "messages WITHOUT ROWID": (False, True),
    "no updated_at indexes": (True, False),
    "WITHOUT ROWID, no updated_at indexes": (False, False),
}


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def convostore_layout(path: Path, rowid: bool, indexes: bool) -> sqlite3.Connection:
    conn = _open(path)
    suffix = "" if rowid else " WITHOUT ROWID"
    conn.execute(
        "CREATE TABLE s (session_id VARCHAR(255) NOT NULL PRIMARY KEY, next_position BIGINT "
        "NOT NULL, item_count BIGINT NOT NULL, created_at DATETIME NOT NULL, updated_at "
        "DATETIME NOT NULL, user_id VARCHAR(255), metadata TEXT)"
    )
    if indexes:
        conn.execute("CREATE INDEX ix_s_user ON s (user_id, updated_at)")
        conn.execute("CREATE INDEX ix_s_updated ON s (updated_at)")
    conn.execute(
        "CREATE TABLE m (session_id VARCHAR(255) NOT NULL, position BIGINT NOT NULL, "
        "message_data TEXT NOT NULL, created_at DATETIME NOT NULL, chunk_count INTEGER "
        "DEFAULT 0 NOT NULL, PRIMARY KEY (session_id, position), FOREIGN KEY (session_id) "
        f"REFERENCES s (session_id) ON DELETE CASCADE){suffix}"
    )
    conn.execute(
        "CREATE TABLE c (session_id VARCHAR(255) NOT NULL, position BIGINT NOT NULL, chunk_no "
        "INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session_id, position, chunk_no), "
        "FOREIGN KEY (session_id, position) REFERENCES m (session_id, position) "
        f"ON DELETE CASCADE){suffix}"
    )
    return conn


def sdk_layout(path: Path) -> sqlite3.Connection:
    conn = _open(path)
    conn.execute(
        "CREATE TABLE agent_sessions (session_id TEXT PRIMARY KEY, created_at TIMESTAMP "
        "DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
    )
    conn.execute(
        "CREATE TABLE agent_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT "
        "NOT NULL, message_data TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
        "FOREIGN KEY (session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE)"
    )
    conn.execute("CREATE INDEX idx_agent_messages ON agent_messages (session_id, id)")
    return conn


def convostore_append(conn: sqlite3.Connection, sid: str) -> None:
    now = dt.datetime.now(dt.timezone.utc).isoformat(" ")
    conn.execute("BEGIN IMMEDIATE")
    (end,) = conn.execute(
        "INSERT INTO s (session_id, next_position, item_count, created_at, updated_at) "
        "VALUES (?, 1, 1, ?, ?) ON CONFLICT (session_id) DO UPDATE SET next_position = "
        "s.next_position + 1, item_count = s.item_count + 1, updated_at = excluded.updated_at "
        "RETURNING next_position",
        (sid, now, now),
    ).fetchone()
    conn.execute(
        "INSERT INTO m (session_id, position, message_data, created_at) VALUES (?, ?, ?, ?)",
        (sid, end - 1, ITEM, now),
    )
    conn.execute("COMMIT")


def sdk_append(conn: sqlite3.Connection, sid: str) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT OR IGNORE INTO agent_sessions (session_id) VALUES (?)", (sid,))
    conn.executemany(
        "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)", [(sid, ITEM)]
    )
    conn.execute(
        "UPDATE agent_sessions SET updated_at = CURRENT_TIMESTAMP WHERE session_id = ?", (sid,)
    )
    conn.execute("COMMIT")


def timed(append: Callable[[sqlite3.Connection, str], None], conn: sqlite3.Connection, n: int):
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        append(conn, SESSIONS[i % len(SESSIONS)])
    return (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=400, help="appends per round and layout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the database files go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        runs = {
            name: (convostore_layout(Path(tmp, f"{i}.db"), *shape), convostore_append)
            for i, (name, shape) in enumerate(LAYOUTS.items())
        }
        runs["the SDK's SQLiteSession schema and statements"] = (
            sdk_layout(Path(tmp, "sdk.db")),
            sdk_append,
        )
        for conn, append in runs.values():  # warm-up, and sessions with some history
            timed(append, conn, 5 * args.appends)
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, (conn, append) in runs.items():
                figures[name].append(timed(append, conn, args.appends))
        base = statistics.median(w for w, _ in figures[next(iter(LAYOUTS))])
        print(f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL; median of {args.rounds}")
        print("| layout | wall ms/append | CPU ms/append | wall ÷ convostore's |")
        print("|---|--:|--:|--:|")
        for name, rows in figures.items():
            wall = statistics.median(w for w, _ in rows)
            cpu = statistics.median(c for _, c in rows)
            print(f"| {name} | {wall:.3f} | {cpu:.3f} | {wall / base:.2f} |")
        for conn, _ in runs.values():
            conn.close()


if __name__ == "__main__":
    main()
