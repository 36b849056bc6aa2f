"""Plain URLs map to async drivers; sync drivers are refused with the URL to use."""

from __future__ import annotations

import pytest

from convostore import ConfigurationError, SQLAlchemySession, UnsupportedDriverError, to_async_url


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///file.db", "sqlite+aiosqlite"),
        ("sqlite://", "sqlite+aiosqlite"),
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg"),
        ("mysql://u:p@h/db", "mysql+aiomysql"),
        ("mariadb://u:p@h/db", "mariadb+aiomysql"),
        ("mysql+aiomysql://u:p@h/db", "mysql+aiomysql"),
        ("mysql+asyncmy://u:p@h/db", "mysql+asyncmy"),
        ("mariadb+asyncmy://u:p@h/db", "mariadb+asyncmy"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
    ],
)
def test_maps_to_async_driver(given: str, driver: str) -> None:
    assert to_async_url(given).drivername == driver


def test_mysql_gets_utf8mb4_unless_set() -> None:
    assert to_async_url("mysql://h/db").query["charset"] == "utf8mb4"
    assert to_async_url("mysql://h/db?charset=utf8").query["charset"] == "utf8"
    assert to_async_url("mysql+asyncmy://h/db").query["charset"] == "utf8mb4"


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ("postgresql+psycopg2://u:secret@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("mysql+pymysql://u:secret@h/db", "mysql+aiomysql://u:***@h/db"),
        ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_sync_driver_is_refused_with_the_async_url(given: str, suggested: str) -> None:
    with pytest.raises(UnsupportedDriverError) as caught:
        to_async_url(given)
    assert suggested in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("given", ["oracle://h/db", "not a url"])
def test_unknown_backend_is_refused(given: str) -> None:
    with pytest.raises(ConfigurationError):
        to_async_url(given)


def test_from_url_refuses_sync_driver() -> None:
    with pytest.raises(UnsupportedDriverError):
        SQLAlchemySession.from_url("s", url="postgresql+psycopg2://h/db")


async def test_from_url_memory_database_works() -> None:
    async with SQLAlchemySession.from_url("s", url="sqlite://", create_tables=True) as session:
        await session.add_items([{"n": 1}, {"n": 2}])
        assert await session.get_items() == [{"n": 1}, {"n": 2}]
        assert await session.pop_item() == {"n": 2}


async def test_owned_engine_is_disposed_and_passed_engine_is_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'owned.db'}"
    async with SQLAlchemySession.from_url("s", url=url, create_tables=True) as owned:
        await owned.add_items([{"n": 1}])
        pool = owned.engine.sync_engine.pool
        assert pool.checkedin() >= 1
    assert pool.checkedin() == 0  # type: ignore[attr-defined]

    from convostore import engine_from_url

    engine = engine_from_url(url)
    borrowed = SQLAlchemySession("s", engine=engine)
    assert await borrowed.get_items() == [{"n": 1}]
    await borrowed.close()
    async with borrowed:
        pass
    assert await SQLAlchemySession("s", engine=engine).get_items() == [{"n": 1}]
    await engine.dispose()


def test_an_os_error_is_not_worded_as_a_mysql_error() -> None:
    from convostore._db.dialect import driver_message

    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    assert driver_message(refused) == "[Errno 111] Connect call failed ('127.0.0.1', 1)"
