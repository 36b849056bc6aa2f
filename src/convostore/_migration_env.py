"""What ``migrations/env.py`` reads: the store's settings, the URL, and how to connect.

env.py runs inside Alembic, whichever way it was started (``convostore migrate``, ``alembic`` with
convostore's ``alembic.ini`` or an application's, or
[`convostore.migrate.upgrade`][convostore.migrate.upgrade]); everything it decides lives here, where
it is typed and tested.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from . import _version_table
from ._db.engine import missing_driver
from ._db.schema import DEFAULT_MESSAGES_TABLE, DEFAULT_SESSIONS_TABLE
from ._db.urls import to_async_url
from .errors import ConfigurationError, UnsupportedDriverError
from .migrate import MigrationOptions

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "EnvSettings",
    "drop_empty_version_table",
    "is_async_url",
    "migration_url",
    "options_from_config",
    "sync_engine",
]

# The settings a user may give with ``-x key=value``, an environment variable or the ini file.
_SETTINGS = ("url", "sessions_table", "messages_table", "schema", "version_table")
_ENV_VARS = {key: f"CONVOSTORE_{key.upper()}" for key in _SETTINGS}


@dataclass(frozen=True)
class EnvSettings:
    """What env.py needs: the store's options and the database URL (if one was given)."""

    options: MigrationOptions
    """The store the migrations apply to."""

    url: URL | None
    """The database URL, with an async driver where convostore maps one; may be sync."""

    def require_url(self) -> URL:
        """Return the URL, or raise ConfigurationError saying how to give one."""
        if self.url is None:
            raise ConfigurationError(
                "no database URL: pass `-x url=...` (convostore migrate --url ...), set "
                "CONVOSTORE_URL, or set sqlalchemy.url in the ini file"
            )
        return self.url


def options_from_config(config: Config, x_arguments: Mapping[str, str]) -> EnvSettings:
    """Resolve env.py's settings: ``-x key=value``, then ``CONVOSTORE_*``, then the ini file.

    Settings: ``url`` (``CONVOSTORE_URL``, ini ``sqlalchemy.url``), ``sessions_table``,
    ``messages_table``, ``schema`` and ``version_table`` (``CONVOSTORE_SESSIONS_TABLE`` ...,
    ini keys of the same names). Options set by the programmatic API (``config.attributes``)
    come before all of them.

    Raises:
        ConfigurationError: An unknown ``-x`` key, or an unusable name or URL.
    """
    unknown = sorted(set(x_arguments) - set(_SETTINGS))
    if unknown:
        raise ConfigurationError(
            f"unknown -x setting(s) {unknown}; convostore's are {', '.join(_SETTINGS)}"
        )

    def setting(key: str) -> str | None:
        value = x_arguments.get(key) or os.environ.get(_ENV_VARS[key])
        if not value:
            ini_key = "sqlalchemy.url" if key == "url" else key
            value = config.get_main_option(ini_key)
        return value or None

    given = config.attributes.get("convostore_options")
    if isinstance(given, MigrationOptions):
        options = given
    else:
        options = MigrationOptions(
            sessions_table=setting("sessions_table") or DEFAULT_SESSIONS_TABLE,
            messages_table=setting("messages_table") or DEFAULT_MESSAGES_TABLE,
            schema=setting("schema"),
            version_table=setting("version_table") or "",
        )
    raw_url = setting("url")
    return EnvSettings(options=options, url=migration_url(raw_url) if raw_url else None)


def migration_url(url: str | URL) -> URL:
    """Map a plain URL to convostore's async driver; keep an explicit sync driver as written.

    Raises:
        ConfigurationError: The URL cannot be parsed or names an unknown backend.
    """
    try:
        return to_async_url(url)
    except UnsupportedDriverError:
        # Migrations run fine on a sync driver (psycopg2, pymysql ...): env.py uses it as is.
        from sqlalchemy.engine import make_url

        return make_url(url) if isinstance(url, str) else url


def is_async_url(url: URL) -> bool:
    """Whether ``url`` names an async driver (one that needs ``create_async_engine``)."""
    return bool(getattr(url.get_dialect(), "is_async", False))


def sync_engine(url: URL) -> Engine:
    """Create the engine that runs the migrations of a sync URL (psycopg2, pymysql ...).

    Raises:
        MissingDependencyError: The URL's driver is not installed; the message names the
            package to install.
    """
    try:
        return create_engine(url, poolclass=NullPool)
    except ModuleNotFoundError as exc:
        raise missing_driver(exc, url.get_backend_name()) from exc


def drop_empty_version_table(
    conn: Connection, options: MigrationOptions, heads: Sequence[str]
) -> None:
    """Drop the store's version table if it records no revision (after ``downgrade base``).

    Args:
        conn: The migration's connection.
        options: The store.
        heads: The revisions the version table records now.
    """
    if not heads:
        _version_table.drop(conn, options)
