"""How every command reports a failure: one ``Error: ...`` line, never a traceback.

Each command's callback is wrapped in ``reports_errors``, the one place where errors
become click's: click prints them on standard error and exits with status 1, or 2 for an
unusable option (with the usage line). A command that knows its database names it with
``about_database``, so connection errors say which database, without its password.

What each error becomes:

- ``ConfigurationError`` (a bad URL, table name or option): a usage error, exit status 2.
- ``MissingDependencyError``: its message, which ends with the ``pip install`` line.
- ``SchemaError`` from the database (missing tables): which database, and how to create them.
- ``SessionNotFoundError``, any other ``SchemaError``, Alembic's ``CommandError``: the message.
- ``DatabaseUnreachableError``: its message (the address, and what to check).
- any other ``ConvostoreError``: its class name and message.
- a driver's or the network's error: nothing answered at the address (in the words of
  ``DatabaseUnreachableError``), or what the server said.
- Ctrl-C: click's ``Aborted!``; a command that says what an interruption leaves behind
  prints that instead and exits with status 130.

Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

import click
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from convostore import (
    ConfigurationError,
    ConvostoreError,
    DatabaseUnreachableError,
    MissingDependencyError,
    SchemaError,
    SessionNotFoundError,
)

# The CLI's one import of a module that is not public: how a failed connection is told.
from convostore._db.dialect import (
    Address,
    describe_connect_failure,
    nothing_answered,
    unreachable,
)

from ._output import err_console

__all__ = ["about_database", "reports_errors"]

F = TypeVar("F", bound=Callable[..., Any])

_MISSING_TABLES_HINT = "run `convostore migrate upgrade head`"

# Where a command records the database it works on (click shares ``meta`` along the
# chain of contexts of one invocation).
_DATABASE = "convostore.database"


@overload
def reports_errors(command: F, /) -> F: ...


@overload
def reports_errors(
    *, missing_tables_hint: str = ..., interrupted: str | None = ...
) -> Callable[[F], F]: ...


def reports_errors(
    command: F | None = None,
    /,
    *,
    missing_tables_hint: str = _MISSING_TABLES_HINT,
    interrupted: str | None = None,
) -> F | Callable[[F], F]:
    """Wrap a command's callback so that its errors become one clear line (see the module).

    Use it bare (``@reports_errors``) or with the command's own words; either way it goes
    right above the ``def``, below click's decorators.

    Args:
        command: The callback, when used bare.
        missing_tables_hint: What to do when the tables are missing, in the command's terms.
        interrupted: Printed on Ctrl-C before exiting with status 130: what the interrupted
            work leaves behind. Without it, Ctrl-C is click's ``Aborted!`` (status 1).
    """

    def decorate(callback: F) -> F:
        @functools.wraps(callback)
        def reporting(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except (click.ClickException, click.Abort, click.exceptions.Exit):
                raise
            except KeyboardInterrupt:
                if interrupted is None:
                    raise
                err_console.print(interrupted)
                raise click.exceptions.Exit(130) from None
            except Exception as exc:
                database = click.get_current_context().meta.get(_DATABASE)
                error = _click_error(exc, database, missing_tables_hint)
                if error is None:
                    raise
                raise error from exc

        return reporting  # type: ignore[return-value]

    return decorate if command is None else decorate(command)


def about_database(url: str | URL) -> None:
    """Name the database the running command works on, for its error messages.

    The password is never shown; a URL that cannot be parsed is not named at all.
    """
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return
    click.get_current_context().meta[_DATABASE] = shown


def _click_error(
    exc: Exception, database: str | None, missing_tables_hint: str
) -> click.ClickException | None:
    from alembic.util import CommandError

    if isinstance(exc, MissingDependencyError):
        return click.ClickException(str(exc))
    if isinstance(exc, ConfigurationError):
        return click.UsageError(str(exc))
    if isinstance(exc, SchemaError) and exc.detail is not None:
        where = f" in {database}" if database else ""
        return click.ClickException(
            f"the convostore tables are missing or out of date{where} ({exc.detail}): "
            f"{missing_tables_hint}"
        )
    if isinstance(exc, (SessionNotFoundError, SchemaError, CommandError, DatabaseUnreachableError)):
        return click.ClickException(str(exc))
    if isinstance(exc, ConvostoreError):
        return click.ClickException(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (OSError, SQLAlchemyError)):
        # Connection refused, unknown host, authentication failed, unknown database...
        return click.ClickException(_connect_failure_text(exc, database))
    return None


def _connect_failure_text(exc: BaseException, database: str | None) -> str:
    """One line for a database error: nothing answered at the address, or what it said."""
    if database:
        url = make_url(database)
        if nothing_answered(exc, url.get_backend_name()):
            return str(unreachable(exc, Address.of(url)))
    reached, text = describe_connect_failure(exc)
    if reached:
        return f"the database{f' at {database}' if database else ''} answered with an error: {text}"
    return f"cannot reach the database server{f' at {database}' if database else ''}: {text}"
