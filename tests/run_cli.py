"""Run the ``sfoauth`` command line from tests: in this process, or as the installed script."""

from __future__ import annotations

import asyncio
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sfoauth_async._cli import run

SFOAUTH = Path(sys.executable).with_name("sfoauth")


@dataclass
class Ran:
    """What one command did."""

    code: int
    out: str
    err: str


async def sfoauth(env: dict[str, str], *argv: str) -> Ran:
    """Run one command in this process, on this event loop (the fake org's)."""
    out, err = io.StringIO(), io.StringIO()
    code = await run(list(argv), env=env, out=out, err=err, open_url=None)
    return Ran(code, out.getvalue(), err.getvalue())


async def sfoauth_process(env: dict[str, str], *argv: str, module: bool = False) -> Ran:
    """Run the installed console script (or ``python -m sfoauth_async``) in a subprocess."""
    if not module and not SFOAUTH.exists():
        pytest.fail(f"the console script is not installed at {SFOAUTH}: pip install -e .")
    command = [sys.executable, "-m", "sfoauth_async"] if module else [str(SFOAUTH)]
    process = await asyncio.create_subprocess_exec(
        *command,
        *argv,
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())
