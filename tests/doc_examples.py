"""The Python examples of README.md and docs/: found by Sybil, run against a fake org.

docs/testing.md ("The examples in these docs") is the contract this module implements:

- Every fenced ``python`` block of ``README.md`` and ``docs/**/*.md`` is an example. Blocks in
  other languages are not run, but every block must name its language.
- A **program** (a top-level ``asyncio.run(...)`` or ``if __name__ == "__main__":``) runs in a
  fresh interpreter with warnings as errors, in an empty directory that holds ``server.key``,
  with the ``SF_*`` variables (`environment`) of a fake org started for it.
- A **test module** (top-level ``test_*`` functions or ``Test*`` classes) runs with pytest,
  warnings as errors, in a fresh project whose ``pyproject.toml`` is the pytest configuration
  docs/testing.md shows.
- Any other block is a **fragment**: it runs in this process, top-level ``await`` allowed,
  with the `PLACEHOLDERS` it uses, built for it on a fake org started for it. Nothing carries
  over from one block to the next.
- ``<!-- sfoauth-doctest: skip -->`` on the line right before a block: it is only compiled
  and checked for undefined names. ``<!-- sfoauth-doctest: output -->`` on the line right
  before a ``text`` block: what the Python block before it prints, compared as doctest does
  (``...`` matches anything, runs of whitespace are equal).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import doctest
import gc
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.fernet import Fernet
from pyflakes import checker, messages
from sybil import Document, Region
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, FencedCodeBlockLexer

from sfoauth_async import AsyncSession, MemoryTokenStore
from sfoauth_async.testing import FakeSalesforceOrg, FakeUser

ROOT = Path(__file__).resolve().parent.parent
DIRECTIVE = "sfoauth-doctest"
LANGUAGES = frozenset({"python", "console", "bash", "text", "toml", "json"})
EXAMPLE_TIMEOUT_S = 120.0

# The one warning an example may cause: the documented deprecation of PasswordFlow.
PASSWORD_FLOW_WARNING = "The username-password flow is deprecated"

# The names a fragment may use without defining them; docs/testing.md lists the same.
PLACEHOLDERS = {
    "org": "the fake org the example runs against: a started `FakeSalesforceOrg`",
    "flow": "`org.client_credentials_flow()`: a `ClientCredentialsFlow` of the org's app",
    "sf": "an open `AsyncSession` on a flow of its own, closed after the example",
    "token": "a `Token` that `flow` fetched",
    "store": "an empty `MemoryTokenStore`",
    "redis_url": "the URL of an empty database of a real `redis-server`",
    "key": "the app's consumer key (client id)",
    "secret": "the app's consumer secret",
    "username": "`etl@acme.com`, a user of the org",
    "password": "that user's password",
    "security_token": "that user's security token",
    "my_vault": "your own secret storage: an object with `async put(name, value)` and `get(name)`",
}

Kind = Literal["fragment", "program", "tests", "skipped"]


class DocsError(Exception):
    """A page breaks the examples' convention: a misplaced or unknown marker, say."""


@dataclass(frozen=True)
class Example:
    """One Python block of a page, as the page presents it."""

    root: Path
    """The project's root directory."""
    page: Path
    """The page, relative to the project root."""
    line: int
    """The page's line of the block's first line of code."""
    source: str
    kind: Kind
    output: str | None = None
    """What the page says the block prints, if it says so."""

    def __str__(self) -> str:
        return f"{self.page.as_posix()}:{self.line}"

    @property
    def names(self) -> frozenset[str]:
        """Every name the source reads (a superset of the placeholders it needs)."""
        return frozenset(
            node.id
            for node in ast.walk(ast.parse(self.source))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        )

    def padded(self) -> str:
        """The source with blank lines before it, so that line numbers are the page's."""
        return "\n" * (self.line - 1) + self.source


def kind_of(source: str) -> Kind:
    """Program, test module or fragment, from the block's top-level statements."""
    kind: Kind = "fragment"
    for node in ast.parse(source).body:
        if _runs_itself(node):
            return "program"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            kind = "tests"
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            kind = "tests"
    return kind


def _runs_itself(node: ast.stmt) -> bool:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "run"
            and isinstance(func.value, ast.Name)
            and func.value.id == "asyncio"
        )
    if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
        return ast.unparse(node.test) in {"__name__ == '__main__'", "'__main__' == __name__"}
    return False


class ExampleParser:
    """A Sybil parser: each Python block as an `Example`, with the page's markers applied."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._fences = FencedCodeBlockLexer(language=r"[^\n]*")
        self._markers = DirectiveInHTMLCommentLexer(
            directive=re.escape(DIRECTIVE), arguments=r"[^\n]*?"
        )

    def __call__(self, document: Document) -> Iterator[Region]:
        """The page's Python blocks, each a region whose ``parsed`` is an `Example`."""
        page = Path(document.path).relative_to(self._root)
        fences = sorted(self._fences(document), key=lambda region: region.start)
        actions = self._actions(document, page, fences)
        found: list[tuple[Region, dict[str, Any]]] = []
        for fence in fences:
            language = str(fence.lexemes["language"]).strip()
            where = f"{page}, {document.line_column(fence.start)}"
            if language not in LANGUAGES:
                raise DocsError(
                    f"{where}: a code block must name its language, one of "
                    f"{', '.join(sorted(LANGUAGES))} (got {language!r})"
                )
            action = actions.get(fence.start)
            if action == "output":
                if language != "text" or not found or found[-1][1]["kind"] == "skipped":
                    raise DocsError(
                        f"{where}: '{DIRECTIVE}: output' marks a text block that follows a "
                        "Python block that runs"
                    )
                if found[-1][1].get("output") is not None:
                    raise DocsError(f"{where}: a Python block has one output block at most")
                found[-1][1]["output"] = str(fence.lexemes["source"])
                continue
            if language != "python":
                continue
            source = str(fence.lexemes["source"])
            try:
                kind = "skipped" if action == "skip" else kind_of(source)
            except SyntaxError as exc:
                raise DocsError(f"{where}: the Python block does not parse: {exc}") from None
            found.append((fence, {"source": source, "kind": kind, "fence": fence}))
        for fence, fields in found:
            fields.pop("fence")
            line = document.text.count("\n", 0, fence.start) + 2
            example = Example(root=self._root, page=page, line=line, **fields)
            yield Region(fence.start, fence.end, example)

    def _actions(self, document: Document, page: Path, fences: list[Region]) -> dict[int, str]:
        """Each marker's action, by the start of the block right after it."""
        actions = {}
        for marker in self._markers(document):
            action = str(marker.lexemes["arguments"]).strip()
            where = f"{page}, {document.line_column(marker.start)}"
            if action not in {"skip", "output"}:
                raise DocsError(f"{where}: unknown '{DIRECTIVE}: {action}' (skip or output)")
            marker_line = document.text.count("\n", 0, marker.end)
            following = [f for f in fences if f.start > marker.end]
            if not following or document.text.count("\n", 0, following[0].start) != (
                marker_line + 1
            ):
                raise DocsError(
                    f"{where}: '{DIRECTIVE}: {action}' must be on the line right before a "
                    "fenced code block"
                )
            if action == "skip" and str(following[0].lexemes["language"]).strip() != "python":
                raise DocsError(f"{where}: '{DIRECTIVE}: skip' marks a Python block")
            actions[following[0].start] = action
        return actions


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/, new ones included."""
    found = sorted((root / "docs").rglob("*.md"))
    readme = root / "README.md"
    return [readme, *found] if readme.exists() else found


def examples(root: Path = ROOT) -> list[Example]:
    """Every Python block of every page, in page order."""
    parser = ExampleParser(root)
    return [
        region.parsed
        for page in pages(root)
        for _, region in Document.parse(str(page), parser).regions
    ]


def pytest_configuration(root: Path = ROOT) -> str:
    """The ``pyproject.toml`` block of docs/testing.md: the fresh project's configuration."""
    document = Document.parse(str(root / "docs" / "testing.md"))
    blocks = [
        str(region.lexemes["source"])
        for region in FencedCodeBlockLexer(language="toml")(document)
        if "[tool.pytest.ini_options]" in region.lexemes["source"]
    ]
    if len(blocks) != 1:
        raise DocsError(
            f"docs/testing.md must show one pyproject.toml block with [tool.pytest.ini_options] "
            f"(found {len(blocks)}): test modules of the docs run in a project configured by it"
        )
    return blocks[0]


# -- static checks ---------------------------------------------------------------------------

_REPORTED = (
    messages.UndefinedName,
    messages.UndefinedLocal,
    messages.UndefinedExport,
    messages.UnusedImport,
)


def static_problems(example: Example) -> list[str]:
    """What compiling the block and pyflakes find: syntax, undefined names, unused imports."""
    top_level_await = example.kind in {"fragment", "skipped"}
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if top_level_await else 0
    try:
        compile(example.padded(), str(example.page), "exec", flags=flags, dont_inherit=True)
    except SyntaxError as exc:
        return [f"{example.page}:{exc.lineno}: {exc.msg}"]
    builtins = set(PLACEHOLDERS) if top_level_await else set()
    flakes = checker.Checker(
        ast.parse(example.padded()), filename=str(example.page), builtins=builtins
    )
    return sorted(str(message) for message in flakes.messages if isinstance(message, _REPORTED))


# -- running ---------------------------------------------------------------------------------


class Vault:
    """The ``my_vault`` placeholder: your own secret storage."""

    def __init__(self) -> None:
        self.secrets: dict[str, str | None] = {}

    async def put(self, name: str, value: str | None) -> None:
        """Keep ``value`` under ``name``."""
        self.secrets[name] = value

    async def get(self, name: str) -> str | None:
        """The value kept under ``name``."""
        return self.secrets.get(name)


@dataclass
class Sandbox:
    """What one example runs with."""

    directory: Path
    """Empty but for ``server.key``; the example's working directory."""
    redis_url: Callable[[], str]
    """Starts (or empties) the test run's redis-server and returns its URL."""
    set_env: Callable[[str, str], None]
    """Sets a variable of this process for the example (undone after it)."""
    chdir: Callable[[Path], None]
    """Changes this process's directory for the example (undone after it)."""


@dataclass
class DocsOrg:
    """The fake org of one example, its user ``etl@acme.com``, and the ``SF_*`` variables."""

    org: FakeSalesforceOrg
    user: FakeUser
    env: dict[str, str]


@contextlib.asynccontextmanager
async def docs_org(directory: Path) -> AsyncIterator[DocsOrg]:
    """A started fake org with the user ``etl@acme.com``; its key in ``server.key``."""
    async with FakeSalesforceOrg() as org:
        user = org.add_user(username="etl@acme.com", email="etl@acme.com")
        key_file = directory / "server.key"
        key_file.write_bytes(org.private_key_pem)
        key_file.chmod(0o600)
        yield DocsOrg(
            org,
            user,
            {
                "SF_CLIENT_ID": org.app.client_id,
                "SF_CLIENT_SECRET": org.app.client_secret,
                "SF_LOGIN_URL": org.my_domain_url,
                "SF_USERNAME": user.username,
                "SF_PASSWORD": user.password,
                "SF_SECURITY_TOKEN": user.security_token,
                "SF_PRIVATE_KEY_FILE": str(key_file),
                "SF_REFRESH_TOKEN": org.issue_refresh_token(user=user),
                "SF_TOKEN_KEY": Fernet.generate_key().decode(),
            },
        )


async def run(example: Example, sandbox: Sandbox) -> None:
    """Run the example as its kind says, and compare what it prints with its output block.

    Raises:
        AssertionError: the example failed, or printed something else than its page says.
    """
    if example.kind == "skipped":
        problems = static_problems(example)
        assert not problems, "\n".join(problems)
        return
    if example.kind == "tests":
        await _run_tests(example, sandbox.directory)
        return
    async with docs_org(sandbox.directory) as fake:
        if example.kind == "program":
            printed = await _run_program(example, sandbox.directory, fake.env)
        else:
            for name, value in fake.env.items():
                sandbox.set_env(name, value)
            sandbox.chdir(sandbox.directory)
            printed = await _run_fragment(example, fake, sandbox)
    if example.output is not None:
        check_output(example, printed)


def check_output(example: Example, printed: str) -> None:
    """The example printed what its output block shows (doctest's rules)."""
    want = example.output or ""
    checker_ = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    if not checker_.check_output(want, printed, flags):
        difference = checker_.output_difference(doctest.Example("", want), printed, flags)
        raise AssertionError(f"{example} printed something else than its page says:\n{difference}")


def _clean_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's variables without SF_* or PYTEST_* ones, plus ``env``."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SF_", "PYTEST_", "SFOAUTH_"))
    }
    return {**kept, **(env or {})}


async def _communicate(
    example: Example, command: list[str], *, cwd: Path, env: dict[str, str]
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(EXAMPLE_TIMEOUT_S):
            out, err = await process.communicate()
    except TimeoutError:
        raise AssertionError(f"{example} did not end within {EXAMPLE_TIMEOUT_S:.0f} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def _run_program(example: Example, directory: Path, env: dict[str, str]) -> str:
    script = directory / f"{example.page.stem}_{example.line}.py"
    script.write_text(example.padded())
    command = [
        sys.executable,
        "-W",
        "error",
        "-W",
        f"ignore:{PASSWORD_FLOW_WARNING}:DeprecationWarning",
        str(script),
    ]
    status, out, err = await _communicate(
        example, command, cwd=directory, env=_clean_environment(env)
    )
    assert status == 0, (
        f"{example} (a program; line numbers are the page's) exited with status {status}:\n"
        f"{err[-4000:]}"
    )
    return out


async def _run_tests(example: Example, directory: Path) -> None:
    project = Path(tempfile.mkdtemp(prefix="fresh-project-", dir=directory))
    (project / "tests").mkdir()
    (project / "pyproject.toml").write_text(pytest_configuration(example.root))
    (project / "tests" / "test_example.py").write_text(example.padded())
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error"]
    status, out, err = await _communicate(example, command, cwd=project, env=_clean_environment())
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    assert status == 0, f"{example} (a test module) failed in a fresh project:\n{out}{err}"
    assert re.search(r"\d+ passed", summary), f"{example}: no test passed:\n{out}"
    assert "warning" not in summary, f"{example}: warnings in a fresh project:\n{out}"


async def _run_fragment(example: Example, fake: DocsOrg, sandbox: Sandbox) -> str:
    code = compile(
        example.padded(),
        str(example.page),
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )
    printed = io.StringIO()
    complaints = _Complaints()
    library = logging.getLogger("sfoauth_async")
    library.addHandler(complaints)
    try:
        async with contextlib.AsyncExitStack() as stack:
            namespace = await _placeholders(example.names, fake, sandbox, stack)
            namespace["__name__"] = "docs_example"
            with (
                _logging_restored(),
                warnings.catch_warnings(),
                contextlib.redirect_stdout(printed),
            ):
                warnings.filterwarnings(
                    "ignore", message=PASSWORD_FLOW_WARNING, category=DeprecationWarning
                )
                result = eval(code, namespace)  # the docs' own examples
                if asyncio.iscoroutine(result):
                    await result
    finally:
        library.removeHandler(complaints)
    gc.collect()  # unclosed sessions warn now, inside this test, not in a later one
    assert not complaints.messages, (
        f"{example} made the library log warnings or errors:\n" + "\n".join(complaints.messages)
    )
    return printed.getvalue()


class _Complaints(logging.Handler):
    """What the library logs at WARNING or above while a fragment runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


async def _placeholders(
    wanted: Iterable[str],
    fake: DocsOrg,
    sandbox: Sandbox,
    stack: contextlib.AsyncExitStack,
) -> dict[str, Any]:
    """The placeholders among ``wanted``, each new for this example."""
    wanted = set(wanted) & set(PLACEHOLDERS)
    org, user = fake.org, fake.user
    flow = org.client_credentials_flow()
    names: dict[str, Any] = {
        "org": org,
        "flow": flow,
        "key": org.app.client_id,
        "secret": org.app.client_secret,
        "username": user.username,
        "password": user.password,
        "security_token": user.security_token,
    }
    if "sf" in wanted:
        names["sf"] = await stack.enter_async_context(AsyncSession(org.client_credentials_flow()))
    if "token" in wanted:
        names["token"] = await flow.fetch_token()
    if "store" in wanted:
        names["store"] = MemoryTokenStore()
    if "redis_url" in wanted:
        names["redis_url"] = sandbox.redis_url()
    if "my_vault" in wanted:
        names["my_vault"] = Vault()
    return {name: value for name, value in names.items() if name in wanted}


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """Undo what an example does to logging (``basicConfig``, ``setLevel``)."""
    manager = logging.Logger.manager
    levels = {
        name: logger.level
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root_level, root_handlers = logging.root.level, list(logging.root.handlers)
    try:
        yield
    finally:
        for name, logger in manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))
        logging.root.setLevel(root_level)
        for handler in logging.root.handlers[:]:
            if handler not in root_handlers:
                logging.root.removeHandler(handler)
