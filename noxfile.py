"""Developer tasks: `nox` (lint, types, tests), `nox -s "tests-backend(mysql)"`, ..."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests"]

BACKENDS = ["sqlite", "postgresql", "mysql"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole suite on every backend."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(name="tests-backend")
@nox.parametrize("backend", BACKENDS, ids=BACKENDS)
def tests_backend(session: nox.Session, backend: str) -> None:
    """Run the suite on one backend: ``nox -s "tests-backend(postgresql)"``."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-m", backend, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "src")
