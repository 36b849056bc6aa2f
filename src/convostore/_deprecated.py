"""Old import paths, kept working for one release with a ``DeprecationWarning``.

Before the package drew its public edge, every module was public. The names that moved
are listed here once; importing one of the old modules gives a stand-in whose attributes
are looked up where the names live now, each lookup warning with the new way to import
it. Everything public is importable from ``convostore`` itself.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["install"]

# old module -> (the module most of its names went to, {old name: "module:new name"}).
_MOVED: dict[str, tuple[str, dict[str, str]]] = {
    "session": (
        "_session",
        {
            "validate_session_id": "_validate:validate_session_id",
            "check_schema": "_context:check_schema",
            "create_tables": "_table_creation:create_tables",
        },
    ),
    "store": (
        "_store",
        {
            "check_metadata": "_validate:check_metadata",
            "encode_cursor": "_ops.sessions:encode_cursor",
            "decode_cursor": "_ops.sessions:decode_cursor",
        },
    ),
    "engine": ("_db.engine", {"create_engine": "_db.engine:engine_from_url"}),
    "urls": ("_db.urls", {}),
    "schema": (
        "_db.schema",
        {
            "SessionIdString": "_db.schema:ExactString",
            "MAX_METADATA_BYTES": "_db.schema:MAX_METADATA_BYTES",
        },
    ),
    "codec": ("_codec", {}),
    "operations": ("_db.history", {"utcnow": "_db.schema:utcnow"}),
    "transaction": (
        "_db.runner",
        {
            "RetryPolicy": "_config:RetryPolicy",
            "DEFAULT_RETRY": "_config:DEFAULT_RETRY",
            "classify": "_db.dialect:classify",
            "is_transient": "_db.dialect:is_transient",
            "translate": "_db.dialect:translate",
            "describe_connect_failure": "_db.dialect:describe_connect_failure",
        },
    ),
    "chunks": ("_db.chunks", {}),
    "idempotency": (
        "_validate",
        {"prune_keys": "_deprecated:prune_keys"},
    ),
    "integrity": (
        "_ops.integrity",
        {
            "CorruptItem": "_records:CorruptItem",
            "corrupt_items_skipped": "_codec:corrupt_items_skipped",
            "find_corrupt_items": "_deprecated:find_corrupt_items",
        },
    ),
    "keytext": ("_validate", {}),
    "retention": ("_ops.retention", {}),
    "export": (
        "_ops.export",
        {
            "export_sessions": "_deprecated:export_sessions",
            "import_sessions": "_deprecated:import_sessions",
            "FORMAT_VERSION": "_ops.export:FORMAT_VERSION",
        },
    ),
    "settings": ("_config", {}),
    "records": ("_records", {}),
    "protocol": ("_protocol", {}),
    "closing": ("_closing", {}),
    "observability": ("_observability", {}),
    "encryption": ("_encryption", {}),
}

# Names the package itself used to export under another name.
PACKAGE_RENAMES = {"create_engine": "_db.engine:engine_from_url"}


def resolve(target: str) -> Any:
    """The object ``"module:name"`` (relative to the package) names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(f"convostore.{module}"), name)


def warn_moved(old: str, new: str) -> None:
    """Warn, at the caller's import or use, that ``old`` is now ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


class _MovedModule(types.ModuleType):
    """Stands in for an old module: each attribute comes from where it lives now."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            # Module machinery (inspect, pickle, doctest) asks for these: not moved names.
            raise AttributeError(name)
        short = self.__name__.rpartition(".")[2]
        default, renamed = _MOVED[short]
        target = renamed.get(name, f"{default}:{name}")
        try:
            value = resolve(target)
        except AttributeError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None
        public = f"convostore.{name}"
        warn_moved(f"{self.__name__}.{name}", public if _exported(name) else target)
        return value


def _exported(name: str) -> bool:
    package = sys.modules.get("convostore")
    return package is not None and name in getattr(package, "__all__", ())


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths (after the real ones: a module that exists wins)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, short = fullname.partition(".")
        if package != "convostore" or short not in _MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _MovedModule(spec.name, f"Deprecated: the names of {spec.name} moved.")

    def exec_module(self, module: types.ModuleType) -> None:
        return None


_finder = _Finder()


def install() -> None:
    """Make the old module paths importable (once per process)."""
    if _finder not in sys.meta_path:
        sys.meta_path.append(_finder)


# -- old signatures of functions that became SessionStore methods ----------------------------


def _store_for(engine: Any, tables: Any, retry: Any = None) -> Any:
    from ._config import DEFAULT_RETRY
    from ._store import SessionStore

    return SessionStore(
        engine,
        sessions_table=tables.sessions.name,
        messages_table=tables.messages.name,
        schema=tables.sessions.schema,
        retry=retry or DEFAULT_RETRY,
    )


async def prune_keys(
    engine: Any, tables: Any, *, older_than: dt.datetime, retry: Any = None
) -> int:
    """Deprecated: use ``SessionStore.prune_keys``."""
    return int(await _store_for(engine, tables, retry).prune_keys(older_than))


async def find_corrupt_items(
    engine: Any,
    tables: Any,
    *,
    session_id: str | None = None,
    page_size: int = 1000,
    retry: Any = None,
) -> list[Any]:
    """Deprecated: use ``SessionStore.find_corrupt_items``."""
    store = _store_for(engine, tables, retry)
    return list(await store.find_corrupt_items(session_id=session_id, page_size=page_size))


async def export_sessions(store: Any, out: IO[str], **options: Any) -> Any:
    """Deprecated: use ``SessionStore.export``."""
    return await store.export(out, **options)


async def import_sessions(store: Any, lines: Any, **options: Any) -> Any:
    """Deprecated: use ``SessionStore.import_``."""
    return await store.import_(lines, **options)
