"""Developer tasks: ``nox -s lint typecheck tests``, ``docs``, ``bench`` and ``audit``."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
SOURCES = ["sfoauth_async", "tests", "benchmarks", "docs/examples", "noxfile.py"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (Redis and browser tests need redis-server and chromium)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.15")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package (config in pyproject.toml)."""
    session.install("-e", ".[redis,test]", "mypy>=1.13")
    session.run("mypy", "--strict", "sfoauth_async")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site (MkDocs Material + mkdocstrings), warnings as errors."""
    session.install(
        "-e", ".[redis]", "mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.27"
    )
    session.run("mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "-d", "../site")


BENCH_CHARTS = "docs/images/bench"


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against raw aiohttp and peer libraries, in one run; prints ratios.

    Also writes the charts of docs/benchmarks.md and the run's numbers (``results.json``)
    into docs/images/bench/: commit them from a full run only.
    """
    # sniffio: without it httpx retries a failing import on every request (anyio >= 4.16
    # dropped it), which would make the httpx-based peers look slower than they are.
    # matplotlib draws the charts; it is no dependency of the library.
    session.install(
        "-e", ".[test]", "aiosalesforce", "simple-salesforce", "httpx", "sniffio",
        "matplotlib>=3.8",
    )  # fmt: skip
    session.run(
        "python", "-m", "benchmarks",
        "--charts", BENCH_CHARTS, "--json", f"{BENCH_CHARTS}/results.json",
        *session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job against the embedded fake org: ``python -m sfoauth_async demo``."""
    session.install("-e", ".")
    session.run("python", "-m", "sfoauth_async", "demo", *session.posargs)


AUDITED_EXTRAS = ("redis", "starlette")


def declared_minimums(pyproject: Path = Path("pyproject.toml")) -> list[str]:
    """The floors of the runtime and audited extra dependencies, pinned: ``aiohttp==3.14.3``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in AUDITED_EXTRAS:
        specs += project["optional-dependencies"][extra]
    pins = []
    for spec in specs:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+).*", spec)
        if match is None:
            raise ValueError(f"{spec!r} has no '>=' floor to audit")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def audit_verdict(report: dict[str, Any] | None, *, what: str) -> tuple[str, str]:
    """Read a pip-audit JSON report: ``("vulnerable" | "unaudited" | "clean", message)``.

    ``report`` is ``None`` when pip-audit wrote none (it could not reach its advisory
    database). Packages it skipped were not audited: when every one was skipped, the advisory
    database was out of reach, which is reported, not failed.
    """
    if report is None:
        return "unaudited", (
            f"{what}: NOT AUDITED. pip-audit could not reach its advisory database (PyPI or "
            f"OSV); run `nox -s audit` again where the network allows."
        )
    dependencies = report.get("dependencies", [])
    found = [
        f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in "
        f"{', '.join(vuln.get('fix_versions') or ['no release yet'])})"
        for dep in dependencies
        for vuln in dep.get("vulns", [])
    ]
    if found:
        return "vulnerable", f"{what}: {len(found)} known vulnerabilities:\n  " + "\n  ".join(found)
    skipped = [dep["name"] for dep in dependencies if "skip_reason" in dep]
    if dependencies and len(skipped) == len(dependencies):
        return "unaudited", (
            f"{what}: NOT AUDITED. pip-audit could look up none of the {len(skipped)} "
            f"packages (the advisory database is out of reach: offline, or a mirror stands "
            f"in for PyPI); run `nox -s audit` again where the network allows."
        )
    note = f" ({len(skipped)} not audited: {', '.join(skipped)})" if skipped else ""
    return "clean", f"{what}: no known vulnerabilities{note}."


@nox.session(python=PYTHON)
def audit(session: nox.Session) -> None:
    """pip-audit the installed dependencies and the declared minimums (needs the network).

    Known vulnerabilities fail the session; an unreachable advisory database only says so.
    """
    session.install("-e", f".[{','.join(AUDITED_EXTRAS)}]", "pip-audit>=2.7")
    tmp = Path(session.create_tmp())
    floors = tmp / "minimums.txt"
    floors.write_text("\n".join(declared_minimums()) + "\n")
    runs = {
        "installed dependencies": ["--skip-editable"],
        "declared minimums": ["--no-deps", "--disable-pip", "--requirement", str(floors)],
    }
    failures = []
    for what, args in runs.items():
        out = tmp / "audit.json"
        out.unlink(missing_ok=True)
        output = session.run(
            "pip-audit", "--progress-spinner", "off", "--format", "json",
            "--output", str(out), *args,
            silent=True, success_codes=[0, 1],
        )  # fmt: skip
        report = json.loads(out.read_text()) if out.exists() else None
        verdict, message = audit_verdict(report, what=what)
        if report is None and isinstance(output, str) and output.strip():
            message += f" Last words of pip-audit: {output.strip().splitlines()[-1][:300]}"
        if verdict == "vulnerable":
            failures.append(message)
        session.log(message)
    if failures:
        session.error("\n".join(failures))
