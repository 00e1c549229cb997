"""docs/etl.md runs as written: each Python example, as a script, prints what the page says."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "etl.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)

# What each example prints, in order, as the page describes it.
EXPECTED = [
    [
        "001GEN000000000YBA,Account 000000,",
        "extracted 25000 of 25000 accounts",
        "API calls: 13, usage now 13/100,000 (0.0%)",
    ],
    [
        "998 created, 2 rejected, 5 calls",
        "CRM-00017 [('REQUIRED_FIELD_MISSING', ('Name',))]",
        "CRM-00640 [('REQUIRED_FIELD_MISSING', ('Name',))]",
        "998 updated",
    ],
    ["REQUEST_LIMIT_EXCEEDED: 400 rows to send tomorrow"],
    [
        "stopped after 5000 contacts at 90,000/100,000 (90.0%)",
        "the org answered 10 calls; usage 90,000/100,000 (90.0%)",
    ],
    ["404 NOT_FOUND", "ENTITY_IS_DELETED"],
    ["3000 accounts after 3 calls", "updated: True", "gave up: UNABLE_TO_LOCK_ROW"],
]


def test_every_example_has_its_expected_output() -> None:
    """The page and this test agree on how many examples there are."""
    assert len(EXAMPLES) == len(EXPECTED)


@pytest.mark.parametrize("index", range(len(EXPECTED)))
async def test_example_runs_as_written(index: int, tmp_path: Path) -> None:
    """Example N runs in a fresh interpreter, exits 0 and prints the lines the page gives."""
    script = tmp_path / f"etl_example_{index}.py"
    script.write_text(EXAMPLES[index])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-3000:]
    printed = stdout.decode()
    position = 0
    for line in EXPECTED[index]:
        found = printed.find(line, position)
        assert found >= 0, f"{line!r} not printed (in order) by example {index}:\n{printed}"
        position = found + len(line)
