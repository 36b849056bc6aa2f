"""The documentation keeps up with the code; `mkdocs build --strict` checks the rest."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import convostore
from convostore import errors

from ._programs import run

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


def test_the_reference_index_lists_every_reference_page() -> None:
    index = (DOCS / "reference" / "index.md").read_text()
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.name for p in (DOCS / "reference").glob("*.md") if p.name != "index.md")
    unlisted = [name for name in pages if f"]({name})" not in index]
    assert not unlisted, f"docs/reference/index.md does not link {unlisted}"
    outside_nav = [name for name in pages if f"reference/{name}" not in nav]
    assert not outside_nav, f"mkdocs.yml's nav does not list {outside_nav}"


# What reStructuredText markup looks like once Markdown has rendered it: a role before the
# code span it became (``:class:`X``` -> ``:class:<code>X</code>``), and a literal-block
# marker left at the end of a paragraph (``Usage::``).
RAW_ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|mod|attr|exc|data|obj|ref|const)(?::|&#58;)(?:`|<code)"
)
LITERAL_MARKER = re.compile(r"::\s*</p>")


@pytest.mark.slow
def test_the_built_site_shows_no_restructuredtext(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    assert mkdocs.exists(), "mkdocs is not installed: pip install -e '.[dev]'"
    site = tmp_path / "site"
    done = run(
        mkdocs, "build", "--strict", "--quiet",
        "--site-dir", site, cwd=ROOT, env={"NO_MKDOCS_2_WARNING": "1"}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    found = []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text()
        for pattern in (RAW_ROLE, LITERAL_MARKER):
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                snippet = text[max(0, match.start() - 60) : match.end() + 40].replace("\n", " ")
                found.append(f"{page.relative_to(site)}:{line}: ...{snippet}...")
    assert not found, (
        "raw reST in the built site (use [`Name`][convostore.Name] and fenced code):\n"
        + "\n".join(found)
    )
