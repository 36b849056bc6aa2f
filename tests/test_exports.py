"""The package's public edge: its names are exactly these, each with a docstring; every
other module is private; old import paths still work, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import pytest

import convostore
from convostore import errors

EXPECTED = {
    "CommitOutcomeUnknownError",
    "ConfigurationError",
    "ConvostoreError",
    "CorruptItem",
    "DatabaseUnreachableError",
    "DecryptionError",
    "EncryptedSession",
    "EventLoopError",
    "ExportReport",
    "ImportReport",
    "InvalidCursorError",
    "InvalidIdempotencyKeyError",
    "ItemPage",
    "PageItem",
    "PruneReport",
    "InvalidInputError",
    "InvalidItemError",
    "InvalidLimitError",
    "InvalidSessionIdError",
    "MissingDependencyError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "SQLAlchemySession",
    "SchemaError",
    "Session",
    "SessionExistsError",
    "SessionInfo",
    "SessionNotFoundError",
    "SessionPage",
    "SessionSettings",
    "SessionStore",
    "StorageError",
    "StoreSession",
    "Tables",
    "UnsupportedDriverError",
    "__version__",
    "build_tables",
    "configure_engine",
    "corrupt_items_skipped",
    "create_tables",
    "engine_from_url",
    "generate_key",
    "migrate",
    "to_async_url",
}


def test_exports_are_pinned() -> None:
    assert set(convostore.__all__) == EXPECTED
    assert convostore.__all__ == sorted(convostore.__all__)


def test_public_names_have_docstrings() -> None:
    for name in convostore.__all__:
        obj = getattr(convostore, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_error_tree_has_one_root() -> None:
    for name in convostore.__all__:
        obj = getattr(convostore, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, convostore.ConvostoreError), name


# Modules a program may import by path; everything else starts with an underscore. The
# paths of errors and migrate are frozen: released migration revisions import
# convostore.errors.SchemaError and convostore.migrate.revision_names.
PUBLIC_MODULES = {
    "convostore.errors",
    "convostore.migrate",
    "convostore.cli",
    "convostore.demo",
    "convostore.doctor",
    "convostore.layouts",
    "convostore.testing",
}


def test_implementation_modules_are_private() -> None:
    found = {
        info.name
        for info in pkgutil.walk_packages(convostore.__path__, "convostore.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    }
    assert {
        name.rsplit(".", 1)[0] if name.startswith("convostore.cli.") else name for name in found
    } <= PUBLIC_MODULES


def test_frozen_paths_import() -> None:
    from convostore.errors import SchemaError
    from convostore.migrate import revision_names

    assert SchemaError is convostore.SchemaError
    assert callable(revision_names)


@pytest.mark.parametrize(
    ("path", "name", "now"),
    [
        ("convostore.session", "SQLAlchemySession", convostore.SQLAlchemySession),
        ("convostore.session", "create_tables", convostore.create_tables),
        ("convostore.store", "SessionStore", convostore.SessionStore),
        ("convostore.encryption", "EncryptedSession", convostore.EncryptedSession),
        ("convostore.engine", "create_engine", convostore.engine_from_url),
        ("convostore.integrity", "corrupt_items_skipped", convostore.corrupt_items_skipped),
        ("convostore.transaction", "RetryPolicy", convostore.RetryPolicy),
    ],
)
def test_old_module_paths_warn_and_work(path: str, name: str, now: object) -> None:
    module = importlib.import_module(path)
    with pytest.warns(DeprecationWarning, match=f"{path}.{name} is deprecated"):
        assert getattr(module, name) is now


def test_old_package_names_warn_and_work() -> None:
    with pytest.warns(DeprecationWarning, match="convostore.create_engine is deprecated"):
        assert convostore.create_engine is convostore.engine_from_url  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        convostore.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_old_module_has_no_made_up_names() -> None:
    module = importlib.import_module("convostore.session")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not hasattr(module, "no_such_name")


def test_errors_carry_what_they_are_about() -> None:
    from convostore._codec import encode_items

    with pytest.raises(errors.PayloadTooLargeError) as too_large:
        encode_items([{"a": 1}, {"b": "x" * 100}], max_item_bytes=50)
    assert (too_large.value.index, too_large.value.limit) == (1, 50)
    assert too_large.value.size is not None
    assert too_large.value.size > 50
    with pytest.raises(errors.InvalidItemError) as bad:
        encode_items([{"a": 1}, "not a dict"])
    assert bad.value.index == 1
    assert errors.SessionNotFoundError("x", session_id="s").session_id == "s"
    assert errors.SessionExistsError("x", session_id="s").session_id == "s"
    assert errors.DecryptionError("x", session_id="s", position=3).position == 3
    unreachable = errors.DatabaseUnreachableError("x", host="db", port=5432)
    assert isinstance(unreachable, errors.StorageError)
    assert (unreachable.host, unreachable.port, unreachable.path) == ("db", 5432, None)
    assert "DatabaseUnreachableError" in errors.__all__
