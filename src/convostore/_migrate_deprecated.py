"""What ``convostore.migrate`` offered before issue 12, kept for one release with a warning.

Delete this module (and the two lines of ``convostore.migrate`` that use it) in the release
after: every use has warned with ``DeprecationWarning`` for a release by then.
"""

from __future__ import annotations

import importlib
import types
import warnings
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from typing_extensions import Unpack

    from .migrate import StoreNames

__all__ = ["CallableModule", "moved_name"]

# Where each name went: env.py's settings, and create_tables' stamping.
_MOVED = {
    "EnvSettings": "convostore._migration_env",
    "drop_empty_version_table": "convostore._migration_env",
    "is_async_url": "convostore._migration_env",
    "migration_url": "convostore._migration_env",
    "options_from_config": "convostore._migration_env",
    "check_revision": "convostore._table_creation",
    "stamp_head": "convostore._table_creation",
}


def _warn(message: str, frames_up: int) -> None:
    # Point the warning at the caller's code, ``frames_up`` frames above the function
    # that calls this one.
    warnings.warn(message, DeprecationWarning, stacklevel=2 + frames_up)


def moved_name(name: str) -> Any:
    """``convostore.migrate.__getattr__``: a name that moved, fetched from where it lives now.

    Raises:
        AttributeError: ``convostore.migrate`` never had ``name``.
    """
    if name == "migrate":
        _warn("convostore.migrate.migrate is deprecated; use convostore.migrate.upgrade", 2)
        return importlib.import_module("convostore.migrate").upgrade
    if name not in _MOVED:
        raise AttributeError(f"module 'convostore.migrate' has no attribute {name!r}")
    _warn(f"convostore.migrate.{name} is deprecated: it is internal to convostore now", 2)
    return getattr(importlib.import_module(_MOVED[name]), name)


class CallableModule(types.ModuleType):
    """The class of the module ``convostore.migrate``: calling it runs ``upgrade``, and warns.

    ``convostore.migrate`` was a function (re-exported by the package) that hid the module of
    the same name; it is the module now, and ``convostore.migrate.upgrade`` is the function.
    """

    def __call__(
        self, engine: AsyncEngine, revision: str = "head", **names: Unpack[StoreNames]
    ) -> Coroutine[Any, Any, None]:
        """Return ``convostore.migrate.upgrade(engine, revision, **names)``, with a warning."""
        _warn(
            "calling convostore.migrate(engine, ...) is deprecated; "
            "use convostore.migrate.upgrade(engine, ...)",
            1,
        )
        upgrade = importlib.import_module("convostore.migrate").upgrade
        result: Coroutine[Any, Any, None] = upgrade(engine, revision, **names)
        return result
