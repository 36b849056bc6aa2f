"""The OpenAI Agents SDK's own session tests, run against convostore on every backend.

For each module listed in tests/conformance/exclusions.py, the SDK's sdist of the version
pyproject's dev extra pins is fetched once (``pip download --no-deps --no-binary :all:``) into
a cache outside this repository, and pytest runs the module in a subprocess rooted there, with
tests/conformance/convostore_sdk_shim.py swapping convostore in for the SDK's stores. One test
here per (module, backend) then checks the JUnit report against the manifest:

- every test the module collects is listed (expected to pass, excluded, or SQLite-only), so a
  new SDK test fails this run until someone classifies it;
- every expected test passes, except those in ``PENDING`` for the backend, which must fail
  (a pending test that now passes fails the run too, so the list only shrinks);
- every listed test still exists in the SDK's module.

Run: ``pytest tests/test_sdk_conformance.py`` (``-m sqlite`` etc. for one backend). The fetch
needs PyPI; without it the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests._databases import skip_or_fail
from tests._programs import run
from tests.conformance.exclusions import MODULES, PENDING, ModuleManifest, matches

ROOT = Path(__file__).resolve().parent.parent
SHIM_DIR = Path(__file__).resolve().parent / "conformance"
# Generous: a backend's whole module takes well under a minute; this only stops a hang.
RUN_TIMEOUT_S = 600


def pinned_sdk_version() -> str:
    """The ``openai-agents==X`` pin of pyproject's dev extra."""
    text = (ROOT / "pyproject.toml").read_text()
    dev = re.search(r"^dev = \[(.*?)^\]", text, re.S | re.M)
    assert dev, "pyproject.toml has no dev extra"
    pin = re.search(r'"openai-agents==([^"]+)"', dev.group(1))
    assert pin, "pyproject's dev extra must pin openai-agents==X (the conformance suite's SDK)"
    return pin.group(1)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convostore" / "sdk-tests"


def fetch_sdk_tests(version: str) -> Path:
    """The SDK sdist's tests/ and pyproject.toml, extracted once into the cache; its root."""
    target = cache_root() / f"openai_agents-{version}"
    if (target / "tests" / "conftest.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                tmp,
                f"openai-agents=={version}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archives = list(Path(tmp).glob("openai_agents-*.tar.gz"))
        if download.returncode != 0 or not archives:
            skip_or_fail(
                f"could not fetch the openai-agents {version} sdist from PyPI for the "
                f"conformance suite (needs network): {download.stderr.strip()[-500:]}"
            )
        staging = Path(tmp) / "extracted"
        prefix = f"openai_agents-{version}/"
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                relative = member.name[len(prefix) :] if member.name.startswith(prefix) else ""
                wanted = relative == "pyproject.toml" or relative.startswith("tests/")
                if (
                    not wanted
                    or ".." in Path(relative).parts
                    or not (member.isfile() or member.isdir())
                ):
                    continue
                destination = staging / relative
                if member.isdir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                destination.write_bytes(source.read())
        try:
            staging.rename(target)
        except OSError:  # another run extracted it first
            if not (target / "tests" / "conftest.py").is_file():
                raise
    return target


def run_module(
    sdk_root: Path, module: str, manifest: ModuleManifest, backend: str, server_url: str | None
) -> tuple[list[str], dict[str, tuple[str, str]], set[str]]:
    """Run one SDK test module: its collected names, each run test's outcome, and the tests
    that constructed a convostore session."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        collected_out = work / "collected.json"
        used_out = work / "used.json"
        junit = work / "junit.xml"
        deselect = list(manifest.excluded)
        if backend != "sqlite":
            deselect += list(manifest.sqlite_only)
        (work / "shim.json").write_text(
            json.dumps(
                {
                    "backend": backend,
                    "server_url": server_url,
                    "deselect": deselect,
                    "collected_out": str(collected_out),
                    "used_out": str(used_out),
                    "substitute_sqlite_session": manifest.substitute_sqlite_session,
                }
            )
        )
        env = {
            "CONVOSTORE_SDK_SHIM": str(work / "shim.json"),
            "PYTHONPATH": os.pathsep.join(
                [str(SHIM_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            module,
            "-c",
            str(sdk_root / "pyproject.toml"),
            "--rootdir",
            str(sdk_root),
            "-p",
            "convostore_sdk_shim",
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=native",
            "-W",
            "ignore",
            f"--junitxml={junit}",
        ]
        proc = run(*command, cwd=sdk_root, env=env, timeout=RUN_TIMEOUT_S)
        if not collected_out.is_file() or not junit.is_file():
            pytest.fail(
                f"the SDK's {module} did not run (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
                pytrace=False,
            )
        collected = json.loads(collected_out.read_text())
        outcomes = parse_junit(junit, module)
        used = set(json.loads(used_out.read_text())) if used_out.is_file() else set()
    return collected, outcomes, used


def parse_junit(path: Path, module: str) -> dict[str, tuple[str, str]]:
    """``{test name: (passed|failed|skipped, message)}`` from a JUnit XML report."""
    dotted = module.removesuffix(".py").replace("/", ".")
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        inner = classname[len(dotted) + 1 :] if classname.startswith(dotted + ".") else ""
        name = f"{inner.replace('.', '::')}::{case.get('name')}" if inner else case.get("name")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                message = (child.get("message") or child.text or "").strip().splitlines()[0:1]
                message = message[0] if message else ""
                break
            if child.tag == "skipped":
                outcome, message = "skipped", child.get("message", "")
        if name in outcomes and outcomes[name][0] == "failed":
            continue  # an error in teardown after a failure: keep the first
        outcomes[str(name)] = (outcome, message)
    return outcomes


def check(
    module: str,
    manifest: ModuleManifest,
    backend: str,
    collected: list[str],
    outcomes: dict[str, tuple[str, str]],
) -> list[str]:
    """Every way the run disagrees with the manifest, one line each."""
    problems: list[str] = []
    pending = PENDING.get(module, {}).get(backend, {})
    listed = {
        "expected_pass": manifest.expected_pass,
        "excluded": tuple(manifest.excluded),
        "sqlite_only": tuple(manifest.sqlite_only),
    }
    for name in collected:
        found = [kind for kind, names in listed.items() if matches(name, names)]
        if not found:
            problems.append(f"{name}: new SDK test, not in the manifest (classify it)")
        elif len(found) > 1:
            problems.append(f"{name}: listed more than once ({', '.join(found)})")
    for kind, names in [*listed.items(), ("PENDING", tuple(pending))]:
        for entry in names:
            if not any(matches(name, (entry,)) for name in collected):
                problems.append(f"{entry}: in {kind} but the SDK module has no such test")
    for name in collected:
        runs_here = matches(name, manifest.expected_pass) or (
            backend == "sqlite" and matches(name, tuple(manifest.sqlite_only))
        )
        if not runs_here:
            continue
        outcome, message = outcomes.get(name, ("missing", "not in the JUnit report"))
        if matches(name, tuple(pending)):
            if outcome == "passed":
                problems.append(f"{name}: passes now, remove it from PENDING[{backend}]")
        elif outcome != "passed":
            problems.append(f"{name}: {outcome}: {message}")
    return problems


def summary(
    module: str,
    manifest: ModuleManifest,
    backend: str,
    collected: list[str],
    outcomes: dict[str, tuple[str, str]],
    used: set[str],
) -> str:
    """One line of counts for the run, as the docs and the issue's closing note give them."""
    pending = PENDING.get(module, {}).get(backend, {})
    passed = [name for name, (outcome, _) in outcomes.items() if outcome == "passed"]
    excluded = [name for name in collected if matches(name, tuple(manifest.excluded))]
    sqlite_only = [name for name in collected if matches(name, tuple(manifest.sqlite_only))]
    failing = [
        name
        for name, (outcome, _) in outcomes.items()
        if outcome != "passed" and matches(name, tuple(pending))
    ]
    return (
        f"{module} on {backend}: {len(collected)} collected, {len(passed)} passed "
        f"({len(set(passed) & used)} on a convostore session), {len(excluded)} excluded, "
        f"{0 if backend == 'sqlite' else len(sqlite_only)} SQLite-only, "
        f"{len(failing)} pending"
    )


@pytest.fixture(scope="session")
def sdk_root() -> Path:
    from importlib.metadata import version

    pinned = pinned_sdk_version()
    installed = version("openai-agents")
    if installed != pinned:
        skip_or_fail(
            f"openai-agents {installed} is installed but the conformance suite pins {pinned}: "
            "pip install -e '.[dev]'"
        )
    return fetch_sdk_tests(pinned)


@pytest.mark.slow
@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: Path(m).stem)
async def test_sdk_module(module: str, backend: str, engine: AsyncEngine, sdk_root: Path) -> None:
    manifest = MODULES[module]
    server_url = None if backend == "sqlite" else engine.url.render_as_string(hide_password=False)
    collected, outcomes, used = await asyncio.to_thread(
        run_module, sdk_root, module, manifest, backend, server_url
    )
    print(summary(module, manifest, backend, collected, outcomes, used))
    problems = check(module, manifest, backend, collected, outcomes)
    assert not problems, f"{module} on {backend}:\n" + "\n".join(problems)


def test_the_check_notices_new_failing_and_fixed_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest check itself: what makes the conformance run fail."""
    manifest = ModuleManifest(
        expected_pass=("test_a", "test_b", "test_p"),
        excluded={"test_x": "reaches into internals"},
        sqlite_only={"test_s": "SQLite's own lock"},
    )
    monkeypatch.setitem(PENDING, "m.py", {"postgresql": {"test_p": "fixed elsewhere"}})
    collected = ["test_a[1]", "test_a[2]", "test_b", "test_p", "test_x", "test_s", "test_new"]
    outcomes = {
        "test_a[1]": ("passed", ""),
        "test_a[2]": ("failed", "AssertionError"),
        "test_b": ("passed", ""),
        "test_p": ("passed", ""),
    }
    problems = check("m.py", manifest, "postgresql", collected, outcomes)
    assert problems == [
        "test_new: new SDK test, not in the manifest (classify it)",
        "test_a[2]: failed: AssertionError",
        "test_p: passes now, remove it from PENDING[postgresql]",
    ]
    # On SQLite the SQLite-only test must pass, and test_p is not pending there.
    problems = check("m.py", manifest, "sqlite", collected, outcomes)
    assert "test_s: missing: not in the JUnit report" in problems
    assert not any(p.startswith("test_p") for p in problems)
    # A manifest entry naming no SDK test is stale.
    assert "test_gone: in expected_pass but the SDK module has no such test" in check(
        "m.py",
        dataclasses.replace(manifest, expected_pass=(*manifest.expected_pass, "test_gone")),
        "sqlite",
        collected,
        outcomes,
    )


def test_the_sdk_tests_are_fetched_outside_the_repository() -> None:
    assert ROOT not in cache_root().resolve().parents
