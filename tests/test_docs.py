"""Every Python example of README.md and docs/ runs as written (see tests/doc_examples.py)."""

from __future__ import annotations

import re
import shutil
import traceback
from pathlib import Path

import pytest
from doc_examples import (
    PLACEHOLDERS,
    ROOT,
    DocsError,
    Example,
    Sandbox,
    examples,
    pages,
    pytest_configuration,
    run,
    static_problems,
)

EXAMPLES = examples()


def _param(example: Example) -> object:
    marks = [pytest.mark.redis] if "redis_url" in example.names else []
    return pytest.param(example, id=str(example), marks=marks)


@pytest.fixture
def sandbox(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Sandbox:
    """An empty directory for one example; its variables and directory are undone after it."""
    return Sandbox(
        directory=tmp_path,
        redis_url=lambda: str(request.getfixturevalue("redis_url")),
        set_env=monkeypatch.setenv,
        chdir=monkeypatch.chdir,
    )


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES])
async def test_example_runs(example: Example, sandbox: Sandbox) -> None:
    """The example runs as its kind says, and prints what its output block shows."""
    await run(example, sandbox)


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES])
def test_example_names_only_what_it_has(example: Example) -> None:
    """It compiles, uses only names it defines, imports or gets as placeholders, imports no more."""
    assert not static_problems(example), "\n".join(static_problems(example))


# -- the collector itself ----------------------------------------------------------------------


def _project(tmp_path: Path, pages_: dict[str, str]) -> Path:
    """A project with these pages and the real docs/testing.md (for test modules' config)."""
    (tmp_path / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "testing.md", tmp_path / "docs" / "testing.md")
    for name, text in pages_.items():
        page = tmp_path / name
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text)
    return tmp_path


def _only(root: Path, page: str) -> list[Example]:
    return [e for e in examples(root) if e.page == Path(page)]


def test_new_pages_are_collected(tmp_path: Path) -> None:
    """A page added anywhere under docs/ is collected, README.md too."""
    root = _project(
        tmp_path,
        {"README.md": "```python\nx = 1\n```\n", "docs/new/page.md": "```python\ny = 2\n```\n"},
    )
    assert [p.relative_to(root).as_posix() for p in pages(root)] == [
        "README.md",
        "docs/new/page.md",
        "docs/testing.md",
    ]
    assert [str(e) for e in _only(root, "docs/new/page.md")] == ["docs/new/page.md:2"]


def test_kinds(tmp_path: Path) -> None:
    """asyncio.run makes a program, tests a test module, anything else a fragment."""
    root = _project(
        tmp_path,
        {
            "docs/p.md": (
                "```python\nimport asyncio\nasync def main(): ...\nasyncio.run(main())\n```\n"
                "```python\nif __name__ == '__main__':\n    pass\n```\n"
                "```python\nasync def test_it(): ...\n```\n"
                "```python\nclass TestIt: ...\n```\n"
                "```python\nawait sf.get('limits/')\n```\n"
                "<!-- sfoauth-doctest: skip -->\n```python\nimport asyncio\nasyncio.run(x())\n```\n"
            )
        },
    )
    kinds = [e.kind for e in _only(root, "docs/p.md")]
    assert kinds == ["program", "program", "tests", "tests", "fragment", "skipped"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- sfoauth-doctest: skip -->\n\n```python\nx = 1\n```\n", "line right before"),
        ("<!-- sfoauth-doctest: skip -->\ntext\n```python\nx = 1\n```\n", "line right before"),
        ("<!-- sfoauth-doctest: skip -->\n", "line right before"),
        ("<!-- sfoauth-doctest: skp -->\n```python\nx = 1\n```\n", "unknown"),
        ("<!-- sfoauth-doctest: skip -->\n```text\nx\n```\n", "marks a Python block"),
        ("```python\nx = 1\n```\n<!-- sfoauth-doctest: output -->\n```python\n```\n", "text block"),
        ("<!-- sfoauth-doctest: output -->\n```text\nx\n```\n", "follows a Python block"),
        ("```\nx = 1\n```\n", "must name its language"),
        ("```python\nx = (\n```\n", "does not parse"),
    ],
)
def test_misused_markers_are_errors(tmp_path: Path, text: str, message: str) -> None:
    """A marker off its block, an unknown one, or a block without a language stops collection."""
    root = _project(tmp_path, {"docs/p.md": text})
    with pytest.raises(DocsError, match=message):
        examples(root)


def test_markers_work_inside_lists(tmp_path: Path) -> None:
    """An indented block in a list item is found, dedented, and its markers apply."""
    root = _project(
        tmp_path,
        {
            "docs/p.md": (
                "- item\n\n  <!-- sfoauth-doctest: skip -->\n  ```python\n  x = y\n  ```\n"
                "- more\n\n  ```python\n  print(1)\n  ```\n  <!-- sfoauth-doctest: output -->\n"
                "  ```text\n  1\n  ```\n"
            )
        },
    )
    skipped, printing = _only(root, "docs/p.md")
    assert (skipped.kind, skipped.source, skipped.line) == ("skipped", "x = y\n", 5)
    assert (printing.source, printing.output) == ("print(1)\n", "1\n")


def _one(tmp_path: Path, source: str, output: str | None = None) -> Example:
    text = f"```python\n{source}```\n"
    if output is not None:
        text += f"<!-- sfoauth-doctest: output -->\n```text\n{output}```\n"
    root = _project(tmp_path / "docs-root", {"docs/p.md": text})
    (example,) = _only(root, "docs/p.md")
    return example


async def test_a_failing_fragment_fails(tmp_path: Path, sandbox: Sandbox) -> None:
    """A fragment that raises fails its test, with the page's line in the traceback."""
    example = _one(tmp_path, "resp = await sf.get('limits/')\nresp.release()\nassert False\n")
    with pytest.raises(AssertionError) as caught:
        await run(example, sandbox)
    assert 'File "docs/p.md", line 4' in "".join(traceback.format_exception(caught.value))


async def test_fragments_get_their_placeholders(tmp_path: Path, sandbox: Sandbox) -> None:
    """A fragment gets a started org, a flow, an open session and a token of that org."""
    source = (
        "async with sf.get('limits/') as resp:\n"
        "    print(resp.status, token.instance_url == org.my_domain_url)\n"
        "print(type(flow).__name__, key == org.app.client_id, username)\n"
    )
    example = _one(tmp_path, source, "200 True\nClientCredentialsFlow True etl@acme.com\n")
    await run(example, sandbox)


async def test_a_fragment_the_library_warns_about_fails(tmp_path: Path, sandbox: Sandbox) -> None:
    """A fragment that works only because the library copes (a store that is down) fails."""
    source = (
        "from sfoauth_async import AsyncSession, RedisTokenStore\n\n"
        "async with (\n"
        "    RedisTokenStore.from_url('redis://127.0.0.1:1/0') as store,\n"
        "    AsyncSession(flow, store=store) as sf,\n"
        "):\n"
        "    async with sf.get('limits/') as resp:\n"
        "        assert resp.status == 200\n"
    )
    with pytest.raises(AssertionError, match="log warnings or errors"):
        await run(_one(tmp_path, source), sandbox)


async def test_wrong_output_fails(tmp_path: Path, sandbox: Sandbox) -> None:
    """A program that prints something else than its output block fails its test."""
    source = "import asyncio\n\nasync def main():\n    print('one')\n\nasyncio.run(main())\n"
    await run(_one(tmp_path / "right", source, "one\n"), sandbox)
    with pytest.raises(AssertionError, match="printed something else"):
        await run(_one(tmp_path / "wrong", source, "two\n"), sandbox)


async def test_programs_run_alone_with_the_org_in_their_environment(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """A program sees no placeholder, but SF_* variables of a running org and server.key."""
    source = (
        "import asyncio, os, pathlib\n"
        "from sfoauth_async import JWTBearerFlow\n\n"
        "async def main():\n"
        "    print('sf' in globals(), pathlib.Path('server.key').exists())\n"
        "    flow = JWTBearerFlow(client_id=os.environ['SF_CLIENT_ID'], username='etl@acme.com',\n"
        "                         private_key='server.key', login_url=os.environ['SF_LOGIN_URL'])\n"
        "    print((await flow.fetch_token()).instance_url == os.environ['SF_LOGIN_URL'])\n\n"
        "asyncio.run(main())\n"
    )
    await run(_one(tmp_path, source, "False True\nTrue\n"), sandbox)


async def test_a_failing_program_fails(tmp_path: Path, sandbox: Sandbox) -> None:
    """A program that exits non-zero fails its test, with its error."""
    source = (
        "import asyncio\n\nasync def main():\n    raise SystemExit('broken')\n\n"
        "asyncio.run(main())\n"
    )
    with pytest.raises(AssertionError, match="broken"):
        await run(_one(tmp_path, source), sandbox)


async def test_a_failing_test_module_fails(tmp_path: Path, sandbox: Sandbox) -> None:
    """A test module whose test fails in the fresh project fails its test."""
    with pytest.raises(AssertionError, match="fresh project"):
        await run(_one(tmp_path, "async def test_it(fake_org):\n    assert False\n"), sandbox)


async def test_test_modules_need_the_configuration_the_page_shows(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Without the loop scope in docs/testing.md's pyproject.toml, its test modules fail."""
    source = "async def test_it(fake_org):\n    assert fake_org.login_url\n"
    example = _one(tmp_path, source)
    await run(example, sandbox)
    testing = example.root / "docs" / "testing.md"
    text = testing.read_text()
    testing.write_text(text.replace('asyncio_default_fixture_loop_scope = "function"\n', ""))
    with pytest.raises(AssertionError, match="fresh project"):
        await run(example, sandbox)


def test_static_check_finds_undefined_names(tmp_path: Path) -> None:
    """A name used on a branch that never runs is still found, and placeholders are known."""
    source = "try:\n    await sf.get('x')\nexcept OSError:\n    log.warning('x')\n"
    (problem,) = static_problems(_one(tmp_path, source))
    assert "undefined name 'log'" in problem
    assert "docs/p.md:5" in problem


# -- what the docs promise about this ------------------------------------------------------------


def test_placeholders_are_the_documented_ones() -> None:
    """docs/testing.md lists exactly the placeholder names fragments get."""
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text.split("## The examples in these docs", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)
    assert documented == list(PLACEHOLDERS)


def test_testing_page_shows_a_test_module_and_its_configuration() -> None:
    """docs/testing.md has test modules, run in a fresh project with the configuration it shows."""
    configuration = pytest_configuration()
    assert 'asyncio_mode = "auto"' in configuration
    assert "asyncio_default_fixture_loop_scope" in configuration
    tests = [e for e in EXAMPLES if e.page == Path("docs/testing.md") and e.kind == "tests"]
    assert len(tests) >= 2


def test_readme_test_command_is_what_ci_runs() -> None:
    """The README's second Try-it command is the command .ci/run runs."""
    readme = (ROOT / "README.md").read_text()
    try_it = readme.split("## Try it", 1)[1]
    commands = re.search(r"```console\n(.*?)```", try_it, re.DOTALL)
    assert commands is not None
    demo, test = commands.group(1).splitlines()
    ci_commands = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert test == ci_commands[-1]
    assert demo.endswith("-m sfoauth_async demo")
