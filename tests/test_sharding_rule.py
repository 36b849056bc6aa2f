"""The sharding rule (docs/design.md, "The sharding rule"), checked on every statement sent.

convostore must run unchanged where every table is distributed or partitioned by
``session_id`` (Citus, partitioned PostgreSQL, MariaDB Spider). Each test here runs
convostore's public operations on a backend while SQLAlchemy's events record every statement
and transaction, then checks the four parts of the rule:

1. every statement on a session's rows filters by ``session_id = :param`` (an inserted row
   names its session by a bound value), except the cross-session statements of
   ``CROSS_SESSION``, each with its reason, none of them on the hot path;
2. a row lock (``FOR UPDATE`` / ``FOR SHARE``) only on a statement with that equality, never
   with ``IN (...)`` or a range of sessions;
3. no sequences: no autoincrement, serial or identity column, no ``nextval``, in the tables or
   in the DDL that ``create_tables`` and the migrations send;
4. one transaction of a one-session operation (add, get, pop, clear, trim, ...) binds that
   session's id and no other.

Statements are checked as SQLAlchemy expression trees (each SELECT, UPDATE, DELETE and INSERT
in them, subqueries and CTEs included), and their SQL text for locks. The hot statements also
run on the driver's cursor, where no event sees them (``convostore._db.direct``): the same
operations run again with nothing listening, and every statement that path compiled must be
one the listened run saw, from ``Statements``, whose every statement is checked by itself on
each dialect.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Sequence as DbSequence
from sqlalchemy import event
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import ExecutableDDLElement, Table
from sqlalchemy.sql import ClauseElement, Executable, operators, visitors
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    Grouping,
    TextClause,
    Tuple,
)
from sqlalchemy.sql.selectable import Join, Select

import convostore.migrate
from convostore import (
    EncryptedSession,
    SessionStore,
    Tables,
    create_tables,
    generate_key,
)
from convostore._db.direct import compiled_so_far
from convostore._db.statements import Statements
from convostore.cli import main as cli_main
from convostore.doctor import diagnose
from convostore.migrate import MigrationOptions

from ._layouts import Layout
from ._stores import age, drop_tables, make_store, session_on, table_options, unique_tables

# -- the allowlist ----------------------------------------------------------------------------

CROSS_SESSION: dict[tuple[str, str, str], str] = {
    ("list_sessions", "SELECT", "sessions"): (
        "listing pages through the sessions by (updated_at, session_id): an operator's or a "
        "UI's call, never a conversation's"
    ),
    ("count_sessions", "SELECT", "sessions"): "counting sessions and items, for operators",
    ("prune", "SELECT", "sessions"): (
        "picks the sessions not updated since the cutoff; each is then locked and deleted by "
        "equality on its id"
    ),
    ("delete_user", "SELECT", "sessions"): (
        "picks a user's sessions by user_id; each is then locked and deleted by equality on its id"
    ),
    ("export", "SELECT", "sessions"): (
        "the export's keyset scan over the sessions (a range of ids); each session's items "
        "are then read by equality"
    ),
    ("find_corrupt_items", "SELECT", "messages"): (
        "the integrity audit's scan of the messages table in key order"
    ),
    ("prune_keys", "DELETE", "keys"): "forgets the idempotency keys older than a time",
    ("import", "SELECT", "sessions"): (
        "which of a group of imported sessions exist already (IN over at most 500 ids, no lock)"
    ),
    ("import", "INSERT", "sessions"): "a bulk load writes a group of sessions per statement",
    ("import", "INSERT", "messages"): "a bulk load writes a group of sessions per statement",
}
"""Cross-session statements: (operation, verb, table) → why it is allowed. None is on the
hot path, and none takes a row lock (docs/design.md, "The sharding rule")."""

DDL_OPERATIONS = frozenset({"create_tables", "migrate upgrade"})
"""Operations whose statements are DDL (and the migrations' own); rule 3 applies to them."""

ONE_SESSION = frozenset(
    {
        "add_items",
        "get_items",
        "pop_item",
        "clear_session",
        "trim",
        "get_page",
        "get_session_info",
        "update_session",
        "delete_session",
        "compaction",
        "rotate",
    }
)
"""Operations on one session: each of their transactions binds that session's id only."""

_LOCK = re.compile(
    r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b", re.I
)
_SEQUENCE = re.compile(
    r"\bAUTO_?INCREMENT\b|\b(SMALL|BIG)?SERIAL\b|\bIDENTITY\b|\bnextval\b|\bSEQUENCE\b", re.I
)
_ROWS_OF = r"\b(FROM|INTO|UPDATE|JOIN)\s+[`\"]?(\w+[`\"]?\.[`\"]?)?{name}\b"
_DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.asyncpg.dialect(),
    "mysql": mysql.aiomysql.dialect(),
}


# -- reading a statement ----------------------------------------------------------------------


def _roles(tables: Tables) -> dict[str, str]:
    """Each session table's full name and its part. By name: a store may build its own
    ``Table`` objects for the same tables."""
    return {
        tables.sessions.fullname: "sessions",
        tables.messages.fullname: "messages",
        tables.chunks.fullname: "chunks",
        tables.keys.fullname: "keys",
    }


def _role(table: Any, roles: dict[str, str]) -> str | None:
    return roles.get(table.fullname) if isinstance(table, Table) else None


def _conjuncts(clause: Any) -> Iterator[Any]:
    """The terms of a WHERE clause joined by AND (all of them must hold)."""
    if clause is None:
        return
    if isinstance(clause, Grouping):
        yield from _conjuncts(clause.element)
    elif isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        for term in clause.clauses:
            yield from _conjuncts(term)
    else:
        yield clause


def _is_session_id(element: Any, roles: dict[str, str]) -> bool:
    return getattr(element, "name", None) == "session_id" and (
        _role(getattr(element, "table", None), roles) is not None
    )


@dataclass
class Scope:
    """One SELECT, UPDATE, DELETE or INSERT on a session table, inside a statement."""

    verb: str
    role: str
    keys: list[BindParameter[Any]] = field(default_factory=list)
    """The parameters of its ``session_id = :param`` terms (empty: not keyed by session)."""
    across: list[str] = field(default_factory=list)
    """Conditions on ``session_id`` other than equality (IN, ranges)."""
    locks: bool = False


def scopes(statement: ClauseElement, roles: dict[str, str]) -> list[Scope]:
    """Every part of ``statement`` that reads or writes a session table, and how it is keyed."""
    found = []
    for element in visitors.iterate(statement):
        if isinstance(element, Select):
            found_roles = [r for t in _tables(element.get_final_froms()) if (r := _role(t, roles))]
            if not found_roles:
                continue
            scope = Scope("SELECT", found_roles[0])
            text = str(element.compile(dialect=_DIALECTS["postgresql"]))
            scope.locks = bool(_LOCK.search(text.rsplit(")", 1)[-1]))
        elif isinstance(element, (Update, Delete)):
            role = _role(element.table, roles)
            if role is None:
                continue
            scope = Scope(type(element).__name__.upper(), role)
        elif isinstance(element, Insert):
            role = _role(element.table, roles)
            if role is None:
                continue
            found.append(Scope("INSERT", role))
            continue
        else:
            continue
        for term in _conjuncts(element.whereclause):
            if (
                isinstance(term, BinaryExpression)
                and term.operator is operators.eq
                and isinstance(term.right, BindParameter)
                and not term.right.expanding
                and _is_session_id(term.left, roles)
            ):
                scope.keys.append(term.right)
        for term in (
            visitors.iterate(element.whereclause) if element.whereclause is not None else ()
        ):
            if isinstance(term, BinaryExpression) and term.operator is not operators.eq:
                sides = (term.left, term.right)
                if any(_is_session_id(side, roles) for side in sides) or any(
                    isinstance(side, Tuple) and any(_is_session_id(c, roles) for c in side.clauses)
                    for side in sides
                ):
                    scope.across.append(str(term.operator.__name__))
        found.append(scope)
    return found


def _tables(froms: Sequence[Any]) -> Iterator[Any]:
    for source in froms:
        if isinstance(source, Join):
            yield from _tables([source.left, source.right])
        else:
            yield source


def problems_of(statement: ClauseElement, roles: dict[str, str]) -> list[str]:
    """What breaks rules 1 and 2 in ``statement`` on its own (no allowlist applied)."""
    found = []
    for scope in scopes(statement, roles):
        if scope.verb == "INSERT":
            continue  # its rows' session ids are checked where it runs (bound values)
        if scope.across:
            found.append(f"{scope.verb} {scope.role} with session_id {'/'.join(scope.across)}")
        elif not scope.keys:
            found.append(f"{scope.verb} {scope.role} without session_id = :param")
        if scope.locks and (scope.across or not scope.keys):
            found.append(f"row lock on {scope.role} without session_id = :param only")
    return found


# -- capturing what is sent -------------------------------------------------------------------


@dataclass
class Sent:
    """One statement as the driver received it, with what it was made from."""

    operation: str
    session_id: str | None
    sql: str
    statement: ClauseElement | None
    rows: list[dict[str, Any]]
    transaction: int


class Capture:
    """Every statement sent to ``target``'s engines, with the operation that sent it."""

    def __init__(self, target: Engine | type[Engine]) -> None:
        self.target = target
        self.sent: list[Sent] = []
        self.operation: tuple[str, str | None] | None = None
        self._numbers = itertools.count(1)
        self._open: dict[int, int] = {}
        self._given: dict[int, list[Any]] = {}

    @contextlib.contextmanager
    def listening(self) -> Iterator[Capture]:
        events = {
            "before_execute": self._before_execute,
            "before_cursor_execute": self._before_cursor_execute,
            "begin": self._begin,
            "commit": self._end,
            "rollback": self._end,
        }
        for name, listener in events.items():
            event.listen(self.target, name, listener)
        try:
            yield self
        finally:
            for name, listener in events.items():
                event.remove(self.target, name, listener)

    @contextlib.contextmanager
    def op(self, name: str, session_id: str | None = None) -> Iterator[None]:
        """Record what is sent meanwhile as the work of operation ``name`` (on one session)."""
        self.operation = (name, session_id)
        try:
            yield
        finally:
            self.operation = None

    def _begin(self, conn: Connection) -> None:
        self._open[id(conn)] = next(self._numbers)

    def _end(self, conn: Connection) -> None:
        self._open.pop(id(conn), None)

    def _before_execute(
        self, conn: Connection, element: Any, multiparams: Any, params: Any, options: Any
    ) -> None:
        rows = list(multiparams) if multiparams else [params or {}]
        if rows and isinstance(rows[0], (list, tuple)):
            rows = list(rows[0])
        self._given[id(conn)] = [element, rows, False]

    def _before_cursor_execute(
        self, conn: Connection, cursor: Any, sql: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if self.operation is None:
            return  # the test's own set-up
        given = self._given.get(id(conn))
        statement, rows = context.invoked_statement, []
        if given is not None and (
            given[0] is statement
            or (statement is None and isinstance(given[0], ExecutableDDLElement) and not given[2])
        ):
            statement, rows = given[0], given[1]
            given[2] = True
        # A statement outside any transaction (autocommit) is a transaction of its own.
        transaction = self._open.get(id(conn)) or next(self._numbers)
        name, session_id = self.operation
        self.sent.append(Sent(name, session_id, sql, statement, rows, transaction))


@contextlib.contextmanager
def no_capture() -> Iterator[Any]:
    """The operations' labels, with nothing listening (the fast paths' run)."""

    class Quiet:
        @contextlib.contextmanager
        def op(self, name: str, session_id: str | None = None) -> Iterator[None]:
            yield

    yield Quiet()


# -- checking what was sent -------------------------------------------------------------------


def bound_sessions(sent: Sent, roles: dict[str, str]) -> set[str] | None:
    """The session ids a statement binds; ``None`` when it is not on a session's rows."""
    if not isinstance(sent.statement, ClauseElement) or isinstance(
        sent.statement, ExecutableDDLElement
    ):
        return None
    found = scopes(sent.statement, roles)
    if not found:
        return None
    ids: set[str] = set()
    for scope in found:
        if scope.verb == "INSERT":
            # Inserted rows carry their session as ``session_id`` (a row given at execution)
            # or as ``sid`` (the statements of convostore._db.statements).
            ids |= {str(row[k]) for row in sent.rows for k in ("session_id", "sid") if k in row}
        for key in scope.keys:
            for row in sent.rows or [{}]:
                value = row.get(key.key, key.value)
                if value is not None:
                    ids.add(str(value))
    return ids


def locks_across_sessions(sql: str) -> bool:
    """Rule 2 on SQL text: a row lock whose statement has no ``session_id =``, or an IN."""
    return bool(_LOCK.search(sql)) and (
        "session_id =" not in sql or bool(re.search(r"\bIN\s*\(", sql, re.I))
    )


def violations(
    sent_list: Sequence[Sent], tables: Tables, used: set[tuple[str, str, str]] | None = None
) -> list[str]:
    """Every break of rules 1, 2 and 4 among ``sent_list``; ``used`` gets the exceptions met."""
    used = set() if used is None else used
    roles = _roles(tables)
    names = [name.rsplit(".", 1)[-1] for name in roles]
    out: list[str] = []
    transactions: dict[int, list[tuple[Sent, set[str]]]] = {}
    for sent in sent_list:
        where = f"[{sent.operation}] {' '.join(sent.sql.split())[:160]}"
        if locks_across_sessions(sent.sql):
            out.append(f"rule 2: row lock without session_id = :param only: {where}")
        if sent.operation in DDL_OPERATIONS:
            continue
        statement = sent.statement
        if not isinstance(statement, ClauseElement) or isinstance(statement, TextClause):
            if any(re.search(_ROWS_OF.format(name=n), sent.sql, re.I) for n in names):
                out.append(f"rule 1: SQL text on a session table, not checkable: {where}")
            continue
        found = scopes(statement, roles)
        for scope in found:
            keyed = bool(scope.keys) and not scope.across
            if scope.locks and not keyed:
                out.append(f"rule 2: {scope.verb} {scope.role} locks without equality: {where}")
            if scope.verb == "INSERT" or keyed:
                continue
            allowed = (sent.operation, scope.verb, scope.role)
            if allowed not in CROSS_SESSION or sent.operation in ONE_SESSION:
                out.append(f"rule 1: {scope.verb} {scope.role} not keyed by session: {where}")
            used.add(allowed)
        ids = bound_sessions(sent, roles)
        if ids is None:
            continue
        if sent.session_id is not None:
            transactions.setdefault(sent.transaction, []).append((sent, ids))
        elif found[0].verb == "INSERT" and len(ids) != 1:
            allowed = (sent.operation, "INSERT", found[0].role)
            if allowed not in CROSS_SESSION:
                out.append(f"rule 1: one INSERT writes sessions {sorted(ids)}: {where}")
            used.add(allowed)
    for members in transactions.values():
        expected = {members[0][0].session_id}
        for sent, ids in members:
            if ids != expected:
                out.append(
                    f"rule 4: a transaction of {sent.operation} on {expected} binds "
                    f"{sorted(ids) or 'no session'}: {' '.join(sent.sql.split())[:160]}"
                )
    return out


def sequence_problems(sent_list: Sequence[Sent], tables: Tables) -> list[str]:
    """Rule 3: sequences in the tables or in the DDL sent."""
    out = []
    for table in (tables.sessions, tables.messages, tables.chunks, tables.keys):
        if table.autoincrement_column is not None:
            out.append(f"{table.name}.{table.autoincrement_column.name} autoincrements")
        for column in table.columns:
            if column.identity is not None or isinstance(column.default, DbSequence):
                out.append(f"{table.name}.{column.name} takes its value from a sequence")
    for sent in sent_list:
        if re.match(r"\s*(CREATE|ALTER)\b", sent.sql, re.I) and _SEQUENCE.search(sent.sql):
            out.append(f"[{sent.operation}] DDL with a sequence: {' '.join(sent.sql.split())}")
    return out


# -- the operations ---------------------------------------------------------------------------


def item(n: int, size: int = 20) -> dict[str, Any]:
    return {"role": "user", "content": f"{n}:" + "x" * size}


async def exercise(engine: AsyncEngine, tables: Tables, cap: Any) -> SessionStore:
    """Every public operation on ``tables``, each under ``cap.op(its name, its session)``."""
    tag = uuid.uuid4().hex[:8]
    user = f"u-{tag}"
    store = make_store(engine, tables, max_items_per_session=4)

    plain = session_on(engine, tables, f"plain-{tag}")
    sid = plain.session_id
    with cap.op("add_items", sid):
        await plain.add_items([item(1), item(2)])
    with cap.op("add_items", sid):
        await plain.add_items([item(3)], idempotency_key="k-1")
    with cap.op("add_items", sid):
        await plain.add_items([item(3)], idempotency_key="k-1")  # already stored
    with cap.op("add_items", sid):
        await plain.add_items([item(4, size=1000), item(5)])  # chunked under small_chunks
    with cap.op("get_items", sid):
        await plain.get_items()
    with cap.op("get_items", sid):
        await plain.get_items(limit=2)
    with cap.op("pop_item", sid):
        await plain.pop_item()
    with cap.op("pop_item", sid):
        await plain.pop_item()  # the chunked item
    with cap.op("trim", sid):
        await store.trim(sid, 1)
    with cap.op("clear_session", sid):
        await plain.clear_session()
    with cap.op("pop_item", sid):
        await plain.pop_item()  # an empty session

    bounded = store.session(f"bounded-{tag}", user_id=user, metadata={"t": 1})
    b = bounded.session_id
    with cap.op("add_items", b):
        await bounded.add_items([item(n) for n in range(6)])  # record filled, trimmed to 4
    with cap.op("add_items", b):
        await bounded.add_items([item(7, size=1000)], idempotency_key="k-2")
    with cap.op("get_items", b):
        await bounded.get_items()
    with cap.op("get_session_info", b):
        await store.get_session_info(b)
    with cap.op("update_session", b):
        await store.update_session(b, metadata={"t": 2})
    with cap.op("get_page", b):
        page = await store.get_page(b, limit=2)
    with cap.op("get_page", b):
        await store.get_page(b, before=page.first_position, limit=2)
    with cap.op("get_page", b):
        await store.get_page(b, after=page.first_position, limit=2)

    with cap.op("compaction", b):
        snapshot = await bounded._get_compaction_snapshot(3)  # type: ignore[attr-defined]
        await snapshot.replace_suffix(1, [item(8)])
        await bounded._atomic_replace_items([item(9), item(10, size=1000)])  # type: ignore[attr-defined]

    other = store.session(f"other-{tag}", user_id=user)
    with cap.op("add_items", other.session_id):
        await other.add_items([item(11)])
    keys = [generate_key(), generate_key()]
    secret = store.session(f"secret-{tag}", user_id=user)
    encrypted = EncryptedSession(secret, keys=[keys[0]])
    with cap.op("add_items", secret.session_id):
        await encrypted.add_items([item(12), item(13, size=1000)])
    with cap.op("get_items", secret.session_id):
        await encrypted.get_items()
    with cap.op("rotate", secret.session_id):
        await EncryptedSession(secret, keys=[keys[1], keys[0]]).rotate()
    with cap.op("pop_item", secret.session_id):
        await EncryptedSession(secret, keys=[keys[1]]).pop_item()

    with cap.op("list_sessions"):
        first = await store.list_sessions(user_id=user, limit=1)
        await store.list_sessions(user_id=user, limit=1, cursor=first.next_cursor)
        await store.list_sessions(updated_after=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
        [info async for info in store.iter_sessions(user_id=user, page_size=2)]
    with cap.op("count_sessions"):
        await store.count_sessions()
        await store.count_sessions(user_id=user)
    with cap.op("find_corrupt_items"):
        await store.find_corrupt_items(page_size=2)
    with cap.op("find_corrupt_items", b):
        await store.find_corrupt_items(session_id=b)

    exported = io.StringIO()
    with cap.op("export"):
        await store.export(exported, user_id=user)
        await store.export(io.StringIO())
    with cap.op("export", b):
        await store.export(io.StringIO(), session_ids=[b])

    with cap.op("prune_keys"):
        await store.prune_keys(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
    await age(store, other.session_id, days=40)
    with cap.op("prune"):
        await store.prune(dt.timedelta(days=30), user_id=user, dry_run=True)
        await store.prune(dt.timedelta(days=30), user_id=user, batch_size=1)
    with cap.op("delete_session", b):
        await store.delete_session(b)
    with cap.op("delete_user"):
        await store.delete_user(user, dry_run=True)
        await store.delete_user(user)
    with cap.op("import"):
        await store.import_(io.StringIO(exported.getvalue()))
        await store.import_(io.StringIO(exported.getvalue()), on_existing="skip")
    with cap.op("delete_user"):
        await store.delete_user(user)
    with cap.op("doctor"):
        await diagnose(store)
    return store


# -- the tests --------------------------------------------------------------------------------


@pytest.fixture
async def fresh_tables(engine: AsyncEngine, layout: Layout | None) -> AsyncIterator[Tables]:
    """Tables of the test's own, so its statement cache and data are its own."""
    tables = unique_tables("sh")
    with Capture(engine.sync_engine).listening() as cap, cap.op("create_tables"):
        await (layout.create_tables if layout else create_tables)(engine, tables)
    assert not sequence_problems(cap.sent, tables)
    try:
        yield tables
    finally:
        await (layout.drop_tables if layout else drop_tables)(engine, tables)


def test_every_prebuilt_statement_is_keyed_by_session() -> None:
    """Rules 1 and 2 on each of ``Statements`` (the fast paths' only statements), per dialect."""
    tables = unique_tables("sh")
    roles = _roles(tables)
    for name, dialect in _DIALECTS.items():
        statements = Statements(tables, name)
        built = {k: v for k, v in vars(statements).items() if isinstance(v, Executable)}
        assert len(built) > 20
        for attribute, statement in built.items():
            assert isinstance(statement, ClauseElement)
            assert problems_of(statement, roles) == [], (name, attribute)
            sql = str(statement.compile(dialect=dialect))
            assert not locks_across_sessions(sql), sql
        extra = [
            statements.fill_record({"user_id": "u"}),
            statements.lock_session_where(tables.sessions.c.updated_at < dt.datetime.now()),
        ]
        for statement in extra:
            assert problems_of(statement, roles) == []


def test_the_tables_have_no_sequences() -> None:
    """Rule 3 on the tables themselves: positions come from the session's counter."""
    assert sequence_problems([], unique_tables("sh")) == []


@pytest.mark.usefixtures("small_chunks")
async def test_every_operation_keeps_the_rule(engine: AsyncEngine, fresh_tables: Tables) -> None:
    """Rules 1, 2 and 4 on everything the public operations send, on both execution paths."""
    # The fast paths first, with nothing listening: what they compile is what they run.
    with no_capture() as quiet:
        store = await exercise(engine, fresh_tables, quiet)
    statements = (await store._context.ready()).statements
    fast = compiled_so_far(statements)
    assert {name for name, _, _ in fast} >= {engine.dialect.name}, "the fast path was not taken"

    with Capture(engine.sync_engine).listening() as cap:
        await exercise(engine, fresh_tables, cap)
    used: set[tuple[str, str, str]] = set()
    assert violations(cap.sent, fresh_tables, used) == []
    assert used == set(CROSS_SESSION), "every exception is still needed"
    # Every operation was seen, and the checks had statements and transactions to check.
    seen = {sent.operation for sent in cap.sent}
    keyed = [sent for sent in cap.sent if bound_sessions(sent, _roles(fresh_tables))]
    assert len(keyed) > len(cap.sent) // 2
    assert len({sent.transaction for sent in keyed if sent.session_id}) > 20
    assert seen >= ONE_SESSION | {op for op, _, _ in CROSS_SESSION} | {"doctor"}
    assert compiled_so_far(statements) == fast  # nothing ran on the driver while watched

    listened = {id(sent.statement) for sent in cap.sent}
    unseen = [sql for _, statement, sql in fast if id(statement) not in listened]
    assert unseen == [], "statements the fast path ran that the listened run did not send"
    assert [sql for _, _, sql in fast if locks_across_sessions(sql)] == []


async def test_command_line_deletes_keep_the_rule(
    engine: AsyncEngine, fresh_tables: Tables
) -> None:
    """``convostore delete --user`` and ``convostore prune`` lock one session at a time."""
    store = make_store(engine, fresh_tables)
    user = f"u-{uuid.uuid4().hex[:8]}"
    for n in range(3):
        await store.session(f"cli-{user}-{n}", user_id=user).add_items([item(n)])
    await age(store, f"cli-{user}-0", days=40)
    url = engine.url.render_as_string(hide_password=False)
    options = [
        "--url",
        url,
        *itertools.chain(
            *((f"--{k.replace('_', '-')}", v) for k, v in table_options(fresh_tables).items())
        ),
    ]
    runs = {
        "prune": ["prune", *options, "--older-than", "30d", "--yes"],
        "delete_user": ["delete", *options, "--user", user, "--yes"],
    }
    cap = Capture(Engine)  # the command makes its own engine
    with cap.listening():
        for name, args in runs.items():
            with cap.op(name):
                result = await asyncio.to_thread(CliRunner().invoke, cli_main, args)
            assert result.exit_code == 0, result.output
    assert {sent.operation for sent in cap.sent} == set(runs)
    assert violations(cap.sent, fresh_tables) == []
    assert await store.count_sessions(user_id=user) == (0, 0)


async def test_migrations_have_no_sequences(engine: AsyncEngine) -> None:
    """Rule 3 on the DDL every migration sends, from an empty database to head."""
    prefix = f"shm{uuid.uuid4().hex[:8]}"
    names = MigrationOptions(f"{prefix}_sessions", f"{prefix}_messages")
    cap = Capture(engine.sync_engine)
    try:
        with cap.listening(), cap.op("migrate upgrade"):
            await convostore.migrate.upgrade(
                engine, sessions_table=names.sessions_table, messages_table=names.messages_table
            )
    finally:
        await drop_tables(engine, names.tables)
    assert any(re.match(r"\s*CREATE TABLE", s.sql, re.I) for s in cap.sent)
    assert sequence_problems(cap.sent, names.tables) == []
    assert violations(cap.sent, names.tables) == []
