"""The shell walk-throughs of README.md and docs/cli.md run as written against a served org."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The walk-throughs that need nothing but this package: a served org, then the command line.
# `login --web` needs a person at a browser; tests/test_cli.py drives it with Chromium.
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)


def walkthroughs() -> list[pytest.ParameterSet]:
    """Every console block that serves a fake org and logs in without a browser."""
    found = []
    for page in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        scripts = [
            script
            for script in CONSOLE.findall(page.read_text())
            if "sfoauth_async.testing serve --format env" in script and "login --web" not in script
        ]
        found += [
            pytest.param(script, id=f"{page.relative_to(ROOT)}-{number}")
            for number, script in enumerate(scripts)
        ]
    return found


def test_the_pages_have_walkthroughs() -> None:
    """README.md and docs/cli.md each show one, so the test below cannot pass on nothing."""
    assert [p.id for p in walkthroughs()] == ["README.md-0", "docs/cli.md-0"]


@pytest.mark.parametrize("script", walkthroughs())
async def test_a_walkthrough_runs_as_written(script: str, tmp_path: Path, virtualenv: Path) -> None:
    """Each line succeeds in bash, in a directory whose .venv is this one; `check` passes."""
    (tmp_path / ".venv").symlink_to(virtualenv)
    env = {
        "PATH": f"{virtualenv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "SFOAUTH_CONFIG_DIR": str(tmp_path / "config"),
        "LANG": "C.UTF-8",
    }
    bash = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # the served org is in its group: killed whatever happens
    )
    try:
        async with asyncio.timeout(120):
            out, err = await bash.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bash.pid, signal.SIGKILL)
    printed = out.decode()
    assert bash.returncode == 0, printed + err.decode()
    assert "Everything works." in printed.splitlines()
    assert "Org ID" in printed  # display ran too
