"""Developer tasks: ``nox -s lint typecheck tests``, ``nox -s docs``, ``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
SOURCES = ["sfoauth_async", "tests", "benchmarks", "noxfile.py"]


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
    """Build the documentation site (MkDocs + mkdocstrings) with warnings as errors."""
    session.install("-e", ".[redis]", "mkdocs>=1.6", "mkdocstrings[python]>=0.27")
    session.run("mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "-d", "../site")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against raw aiohttp and peer libraries, in one run; prints ratios."""
    # sniffio: without it httpx retries a failing import on every request (anyio >= 4.16
    # dropped it), which would make the httpx-based peers look slower than they are.
    session.install("-e", ".[test]", "aiosalesforce", "simple-salesforce", "httpx", "sniffio")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job against the embedded fake org: ``python -m sfoauth_async demo``."""
    session.install("-e", ".")
    session.run("python", "-m", "sfoauth_async", "demo", *session.posargs)
