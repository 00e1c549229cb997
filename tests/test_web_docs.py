"""docs/web.md runs as written: its runnable example prints what the page says."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "web.md"
BLOCKS = re.findall(
    r"(<!-- sfoauth-doctest: skip -->\n)?```python\n(.*?)```", PAGE.read_text(), re.DOTALL
)
RUNNABLE = [code for skip, code in BLOCKS if not skip]
SKIPPED = [code for skip, code in BLOCKS if skip]


def test_skipped_examples_are_valid_python():
    """The examples that need a real org are at least Python that compiles."""
    assert len(SKIPPED) == 3
    for code in SKIPPED:
        compile(code, str(PAGE), "exec")


async def test_user_sessions_example_runs_as_written(tmp_path: Path):
    """The UserSessions example exits 0 and prints the three lines the page gives."""
    assert len(RUNNABLE) == 1
    script = tmp_path / "web_example.py"
    script.write_text(RUNNABLE[0])
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(120):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-3000:]
    assert stdout.decode().splitlines() == [
        "user key names the user: True",
        "name: Fake Admin",
        "revoked: True",
    ]
