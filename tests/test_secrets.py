"""Database passwords never show: not in logs, exception messages, tracebacks or ``repr()``.

Every test gives convostore a URL carrying :data:`PASSWORD`, captures everything that could
leak it (every log record of every logger at DEBUG, with SQLAlchemy's echo on; the whole
chain of a raised exception, formatted as a traceback; the ``repr`` of the objects made),
and looks for the password there. Failures are exercised too: a refused port, an unknown
host, a wrong password, a URL convostore refuses.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from convostore import (
    ConvostoreError,
    RetryPolicy,
    SessionStore,
    SQLAlchemySession,
    StorageError,
)
from convostore.cli import main

from ._databases import MYSQL_URL, POSTGRES_URL, SERVERS, backend_params, server_url
from ._stores import drop_tables

PASSWORD = "Pw-5ecret-4f9c"


def _with_password(url: str, **changes: object) -> str:
    return make_url(url).set(password=PASSWORD, **changes).render_as_string(hide_password=False)


_DRIVER_LOGGERS = (
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "asyncpg",
    "aiomysql",
    "asyncmy",
)


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every record of every logger at DEBUG."""
    loggers = [logging.getLogger(name) for name in _DRIVER_LOGGERS]
    levels = [logger.level for logger in loggers]
    with caplog.at_level(logging.DEBUG):
        for logger in loggers:
            logger.setLevel(logging.DEBUG)
        try:
            yield caplog
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.getMessage()} {record.args!r} {record.__dict__!r}" for record in caplog.records
    )


def _exception_text(exc: BaseException) -> str:
    """The exception, its causes and contexts, as printed and as repr'd, all of it."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(getattr(current, "args", ()))]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _assert_secret_kept(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


@pytest.mark.parametrize("server", backend_params(*SERVERS))
async def test_unreachable_port(server: str, everything_logged: pytest.LogCaptureFixture) -> None:
    url = _with_password(server_url(server), host="127.0.0.1", port=1)  # nothing listens on port 1
    session = SQLAlchemySession.from_url(
        "s", url=url, retry=RetryPolicy(max_elapsed=0.3), engine_kwargs={"echo": "debug"}
    )
    with pytest.raises(StorageError) as caught:
        await session.get_items()
    await session.close()
    _assert_secret_kept(
        _exception_text(caught.value), _logged_text(everything_logged), repr(session)
    )
    assert "***" in repr(session)


@pytest.mark.parametrize("server", backend_params(*SERVERS))
async def test_unknown_host(server: str, everything_logged: pytest.LogCaptureFixture) -> None:
    url = _with_password(server_url(server), host="no-such-host.invalid")
    async with SQLAlchemySession.from_url(
        "s", url=url, retry=RetryPolicy(max_elapsed=0.3)
    ) as session:
        with pytest.raises(StorageError) as caught:
            await session.add_items([{"a": 1}])
    _assert_secret_kept(_exception_text(caught.value), _logged_text(everything_logged))


@pytest.mark.mysql
async def test_wrong_password(everything_logged: pytest.LogCaptureFixture) -> None:
    # The test MariaDB's root has no password, so any password is the wrong one (the test
    # PostgreSQL trusts local connections and accepts any).
    url = _with_password(MYSQL_URL)
    async with SQLAlchemySession.from_url("s", url=url) as session:
        with pytest.raises(StorageError, match="Access denied") as caught:
            await session.get_items()
    _assert_secret_kept(_exception_text(caught.value), _logged_text(everything_logged))


@pytest.mark.postgresql
async def test_working_session_at_debug_with_echo(
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    url = _with_password(POSTGRES_URL)  # trust authentication: the password is not checked
    store = SessionStore(url, create_tables=False, engine_kwargs={"echo": "debug"})
    prefix = f"cs_secrets_{uuid.uuid4().hex[:8]}"
    session = SQLAlchemySession.from_url(
        "secrets-test",
        url=url,
        engine_kwargs={"echo": "debug", "echo_pool": "debug"},
        sessions_table=f"{prefix}_sessions",
        messages_table=f"{prefix}_messages",
        create_tables=True,
    )
    try:
        await session.add_items([{"role": "user", "content": "hello"}])
        assert await session.get_items() == [{"role": "user", "content": "hello"}]
        await session.clear_session()
        texts = [
            repr(session),
            str(session),
            repr(session.engine),
            repr(store),
            str(store),
            _logged_text(everything_logged),
        ]
        _assert_secret_kept(*texts)
        assert any("SELECT" in record.getMessage() for record in everything_logged.records)
    finally:
        await drop_tables(session.engine, session.tables)
        await session.close()
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg2://u:{PASSWORD}@localhost/db",  # a sync driver
        f"mysql+pymysql://u:{PASSWORD}@localhost/db",
        f"oracle://u:{PASSWORD}@localhost/db",  # not a convostore backend
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(ConvostoreError) as caught:
        SQLAlchemySession.from_url("s", url=url)
    _assert_secret_kept(_exception_text(caught.value))
    with pytest.raises(ConvostoreError) as caught:
        SessionStore(url)
    _assert_secret_kept(_exception_text(caught.value))


@pytest.mark.parametrize("server", backend_params(*SERVERS))
def test_cli_failure_output(server: str) -> None:
    url = _with_password(server_url(server), host="127.0.0.1", port=1)
    result = CliRunner().invoke(main, ["doctor", "--url", url])
    _assert_secret_kept(result.output)
    assert result.output
