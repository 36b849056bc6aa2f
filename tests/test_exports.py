"""The public names of the package are exactly these, each with a docstring."""

from __future__ import annotations

import convostore

EXPECTED = {
    "CommitOutcomeUnknownError",
    "ConfigurationError",
    "ConvostoreError",
    "DecryptionError",
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
    "Tables",
    "UnsupportedDriverError",
    "__version__",
    "build_tables",
    "configure_engine",
    "create_engine",
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
