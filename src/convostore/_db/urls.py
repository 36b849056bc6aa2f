"""Turn the database URLs users already have into URLs for the async drivers.

``postgres://``, ``postgresql://``, ``mysql://``, ``mariadb://`` and ``sqlite://`` get the
async driver convostore ships with (asyncpg, aiomysql, aiosqlite). An explicit async driver
(``mysql+asyncmy://``, ``postgresql+psycopg://`` ...) is kept as written; a sync-only driver
is refused with the URL to use instead.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import ConfigurationError, UnsupportedDriverError

__all__ = ["to_async_url"]

# The async driver chosen for a URL that names a backend but no driver.
_DEFAULT_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
    "sqlite": "sqlite+aiosqlite",
}

_ASYNC_DRIVERS = {
    "postgresql": {"asyncpg", "psycopg", "psycopg_async"},
    "mysql": {"aiomysql", "asyncmy"},
    "mariadb": {"aiomysql", "asyncmy"},
    "sqlite": {"aiosqlite"},
}


def to_async_url(url: str | URL) -> URL:
    """Return ``url`` with an async driver, mapping plain backend names to convostore's drivers.

    Args:
        url: A SQLAlchemy URL or URL string, for example ``postgres://u:p@host/db``.

    Returns:
        The URL to pass to ``create_async_engine``. MySQL/MariaDB URLs without a ``charset``
        get ``charset=utf8mb4`` so that every Unicode character round-trips.

    Raises:
        ConfigurationError: The URL cannot be parsed or names an unknown backend.
        UnsupportedDriverError: The URL names a synchronous driver such as psycopg2 or pymysql.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise ConfigurationError(f"not a database URL: {exc}") from None

    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise ConfigurationError(
            f"unsupported database {parsed.drivername!r} in "
            f"{parsed.render_as_string(hide_password=True)!r}: "
            "use a sqlite://, postgresql:// or mysql:// (mariadb://) URL"
        )
    if not driver:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[backend])
    elif driver in _ASYNC_DRIVERS[backend]:
        parsed = parsed.set(drivername=f"{backend}+{driver}")
    else:
        suggested = parsed.set(drivername=_DEFAULT_DRIVERS[backend])
        raise UnsupportedDriverError(
            f"{parsed.drivername!r} is a synchronous driver; convostore needs an async one: "
            f"use {suggested.render_as_string(hide_password=True)!r}"
        )

    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed
