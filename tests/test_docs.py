"""The documentation keeps up with the code; `mkdocs build --strict` checks the rest."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import convostore
from convostore import errors

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def documented_modules() -> set[str]:
    text = "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md"))
    return set(re.findall(r"^::: ([\w.]+)", text, flags=re.MULTILINE))


def test_every_public_name_has_an_api_reference_page() -> None:
    modules = documented_modules()
    missing = {
        name: inspect.getmodule(getattr(convostore, name)).__name__  # type: ignore[union-attr]
        for name in convostore.__all__
        if name != "__version__"
        and inspect.getmodule(getattr(convostore, name)).__name__ not in modules  # type: ignore[union-attr]
    }
    assert not missing, f"add `::: module` to a page in docs/reference/ for {missing}"


def test_every_error_is_explained() -> None:
    page = (DOCS / "errors.md").read_text()
    missing = [name for name in errors.__all__ if f"`{name}`" not in page]
    assert not missing, f"docs/errors.md does not explain {missing}"


def test_every_example_is_run_by_the_tests() -> None:
    runner = (Path(__file__).parent / "test_examples.py").read_text()
    missing = [p.name for p in (ROOT / "examples").glob("*.py") if f'"{p.name}"' not in runner]
    assert not missing, f"tests/test_examples.py does not run {missing}"
