"""Scenario 4c: instructions per request, counted by callgrind: the hot path, exactly.

The CPU-time figures of scenario 4b scatter by tens of percent on a shared machine, far
more than the few percent a middleware costs. Valgrind's callgrind counts the instructions
the client process executes instead: repeatable to about 0.1 % for the same code and
inputs, whatever else the machine does. Each client variant runs twice under callgrind
against the echo server, with 0 and with `Settings.instruction_calls` requests; the
difference divided by the requests is its cost per request, start-up excluded.

Needs ``valgrind`` on the PATH (Debian: ``apt-get install valgrind``); without it the
scenario says so and measures nothing.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
from pathlib import Path

from . import Settings
from ._org import OrgProcess
from ._report import Section

_VARIANTS = {
    "raw": "raw aiohttp, session-wide header",
    "bearer": "aiohttp + `BearerMiddleware`",
    "session": "`AsyncSession.get(path)`",
}
_COLLECTED = re.compile(rb"Collected : (\d+)")


async def _instructions(variant: str, calls: int, echo_url: str, out: Path) -> int:
    """Instructions the client executed for ``calls`` requests, start-up included."""
    proc = await asyncio.create_subprocess_exec(
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks._instructions_client",
        variant,
        str(calls),
        echo_url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    found = _COLLECTED.search(err)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {variant} failed: {err[-500:]!r}")
    return int(found.group(1))


async def run(org: OrgProcess, settings: Settings) -> Section:
    """Scenario 4c: instructions per request of each client variant, and the ratio to raw."""
    section = Section(
        name="instructions",
        title=(
            f"4c. Instructions per request, counted by callgrind "
            f"({settings.instruction_calls} requests at concurrency 50, echo server)"
        ),
        columns=["client", "instructions per request", "vs raw aiohttp"],
    )
    if shutil.which("valgrind") is None:
        section.notes.append("Not measured: valgrind is not installed (apt-get install valgrind).")
        return section
    assert org.info is not None
    per_request: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        for variant in _VARIANTS:
            empty = await _instructions(variant, 0, org.info.echo_url, out)
            full = await _instructions(variant, settings.instruction_calls, org.info.echo_url, out)
            per_request[variant] = (full - empty) / settings.instruction_calls
    raw = per_request["raw"]
    for variant, label in _VARIANTS.items():
        section.add(
            [label, f"{per_request[variant]:,.0f}", f"{per_request[variant] / raw:.3f}x"],
            client=label,
            instructions_per_request=per_request[variant],
            ratio=per_request[variant] / raw,
        )
    section.notes.append(
        "Start-up is taken out (a run with no request is subtracted). The event loop's own "
        "work varies a little with timing, so repeated runs agree to about 0.1-0.2 %."
    )
    return section
