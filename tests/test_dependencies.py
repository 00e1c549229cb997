"""Dependency floors past published advisories, and ``nox -s audit``'s reading of pip-audit.

Issue 8, item 17. The noxfile is loaded with a stand-in ``nox`` module, so this runs wherever
the tests run.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# The first release past every advisory we know of (see the comment in pyproject.toml).
FIXED_IN = {
    "aiohttp": "3.14.3",
    "anyio": "4.14.2",
    "cryptography": "50.0.0",
    "pyjwt": "2.13.0",
    "redis": "6.2.0",
    "pytest": "9.0.3",
    "starlette": "1.3.1",
}


def _floors() -> dict[str, list[Version]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        specs += extra
    floors: dict[str, list[Version]] = {}
    for spec in specs:
        requirement = Requirement(spec)
        lows = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        floors.setdefault(requirement.name.lower(), []).extend(lows)
    return floors


@pytest.mark.parametrize(("name", "fixed"), sorted(FIXED_IN.items()))
def test_every_floor_is_past_the_known_advisories(name: str, fixed: str):
    """No declared minimum (runtime or extra) allows a version with a published advisory."""
    floors = _floors()[name]
    assert floors, f"{name} has no '>=' floor"
    assert min(floors) >= Version(fixed)


@pytest.fixture(scope="module")
def noxfile() -> types.ModuleType:
    """The project's noxfile, imported with a stand-in for the nox package."""
    fake_nox = types.ModuleType("nox")
    fake_nox.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    fake_nox.Session = object  # type: ignore[attr-defined]
    fake_nox.session = lambda **_: lambda function: function  # type: ignore[attr-defined]
    saved = sys.modules.get("nox")
    sys.modules["nox"] = fake_nox
    try:
        spec = importlib.util.spec_from_file_location("project_noxfile", ROOT / "noxfile.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["nox"]
        else:
            sys.modules["nox"] = saved
    return module


def test_audit_pins_the_declared_minimums(noxfile: types.ModuleType):
    """The audit checks the floors themselves, runtime and redis extra, as exact pins."""
    pins = noxfile.declared_minimums(ROOT / "pyproject.toml")
    assert "aiohttp==3.14.3" in pins
    assert "PyJWT==2.13.0" in pins
    assert "redis==6.2.0" in pins
    assert all("==" in pin and ">=" not in pin for pin in pins)


def _report(*deps: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(deps), "fixes": []}


def test_audit_fails_on_a_known_vulnerability(noxfile: types.ModuleType):
    """A vulnerability is reported with its id and fixed version, and fails the session."""
    report = _report(
        {"name": "aiohttp", "version": "3.12.1", "vulns": [{"id": "CVE-2025-53643",
                                                             "fix_versions": ["3.12.14"]}]},
        {"name": "yarl", "version": "1.25.1", "vulns": []},
    )  # fmt: skip
    verdict, message = noxfile.audit_verdict(report, what="declared minimums")
    assert verdict == "vulnerable"
    assert "aiohttp 3.12.1: CVE-2025-53643 (fixed in 3.12.14)" in message


@pytest.mark.parametrize(
    "report",
    [
        None,
        _report(
            {"name": "aiohttp", "skip_reason": "Dependency not found on PyPI"},
            {"name": "yarl", "skip_reason": "Dependency not found on PyPI"},
        ),
    ],
)
def test_audit_without_the_advisory_database_says_so(
    noxfile: types.ModuleType, report: dict[str, Any] | None
):
    """No report, or every package skipped: 'NOT AUDITED', which is not a failure."""
    verdict, message = noxfile.audit_verdict(report, what="installed dependencies")
    assert verdict == "unaudited"
    assert "NOT AUDITED" in message
    assert "network" in message


def test_audit_clean_report_names_what_was_skipped(noxfile: types.ModuleType):
    """A clean report passes and still lists the packages it could not look up."""
    report = _report(
        {"name": "aiohttp", "version": "3.14.5", "vulns": []},
        {"name": "local-thing", "skip_reason": "Dependency not found on PyPI"},
    )
    verdict, message = noxfile.audit_verdict(report, what="installed dependencies")
    assert verdict == "clean"
    assert "local-thing" in message
