"""The documentation keeps up with the code; `mkdocs build --strict` checks the rest."""

from __future__ import annotations

import re
from pathlib import Path

import convostore
from convostore import errors

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def documented_targets() -> set[str]:
    """What the reference pages document: ``::: convostore.Name`` or ``::: module``."""
    text = "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md"))
    return set(re.findall(r"^::: ([\w.]+)", text, flags=re.MULTILINE))


def test_every_public_name_has_an_api_reference_page() -> None:
    targets = documented_targets()
    missing = sorted(
        name
        for name in convostore.__all__
        if name != "__version__"
        and f"convostore.{name}" not in targets
        and getattr(convostore, name).__module__ not in targets
    )
    assert not missing, f"add `::: convostore.NAME` to a page in docs/reference/ for {missing}"


def test_the_reference_documents_names_where_they_are_imported() -> None:
    # Private modules are the implementation, and the old module paths are stand-ins kept
    # for one release: the reference shows neither as a way to import.
    package = Path(convostore.__file__).resolve().parent
    public_modules = {"convostore"} | {
        f"convostore.{p.stem}" for p in package.glob("*.py") if not p.stem.startswith("_")
    }
    wrong = sorted(
        target
        for target in documented_targets()
        if target not in public_modules and target.split(".")[1] not in convostore.__all__
    )
    assert not wrong, f"document these through `convostore` or a public module: {wrong}"


def test_every_error_is_explained() -> None:
    page = (DOCS / "errors.md").read_text()
    missing = [name for name in errors.__all__ if f"`{name}`" not in page]
    assert not missing, f"docs/errors.md does not explain {missing}"


def test_every_example_is_run_by_the_tests() -> None:
    runner = (Path(__file__).parent / "test_examples.py").read_text()
    missing = [p.name for p in (ROOT / "examples").glob("*.py") if f'"{p.name}"' not in runner]
    assert not missing, f"tests/test_examples.py does not run {missing}"
