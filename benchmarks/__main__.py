"""``python -m benchmarks [--quick] [--only NAME] [--json PATH] [--charts DIR]``: run, report.

The tables are printed as markdown; ``--json`` writes every number, and ``--charts`` draws
the PNGs of docs/benchmarks.md from the same report (``benchmarks/_charts.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from . import FULL, QUICK, Settings, etl, fastpath, instructions, queued, steady, storm
from ._charts import write_charts
from ._org import OrgProcess, pin_client
from ._report import Section

Scenario = Callable[[OrgProcess, Settings], Awaitable[Section | list[Section]]]

SCENARIOS: dict[str, Scenario] = {
    "steady": steady.run,
    "storm": storm.run_storm,
    "invalid_grant": storm.run_invalid_grant,
    "fastpath": fastpath.run,
    "instructions": instructions.run,
    "queued": queued.run,
    "etl_query": etl.run_query,
    "etl_upsert": etl.run_upsert,
}

_DISTS = (
    "sfoauth-async",
    "aiohttp",
    "yarl",
    "aiosalesforce",
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "simple-salesforce",
    "requests",
)


def environment() -> dict[str, Any]:
    """Where and with what the run happened."""
    versions = {}
    for dist in _DISTS:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "versions": versions,
    }


def caveats(load: float) -> list[str]:
    """Things about this environment that skew the numbers."""
    notes = []
    if load > 0.5:
        notes.append(
            f"The 1-minute load average was {load:.2f} before the run: other processes share "
            "the CPUs, so absolute rates are low and noisy; ratios are taken per round, "
            "which cancels much (not all) of it."
        )
    if importlib.util.find_spec("httpx") and not importlib.util.find_spec("sniffio"):
        notes.append(
            "sniffio is not installed: httpcore then retries `import sniffio` (a failing "
            "search of sys.path) on every lock, event and cancel scope it creates, several "
            "times per request, so httpx-based clients (plain httpx, aiosalesforce) run up to "
            "~2x slower than they can. `pip install sniffio` to measure them at their best "
            "(see benchmarks/README.md)."
        )
    return notes


async def run_all(org: OrgProcess, settings: Settings, names: list[str]) -> list[Section]:
    """The chosen scenarios, in order, each printed as soon as it is done."""
    sections: list[Section] = []
    for name in names:
        started = time.perf_counter()
        got = await SCENARIOS[name](org, settings)
        for section in got if isinstance(got, list) else [got]:
            print(section.markdown(), flush=True)
            sections.append(section)
        print(f"({name}: {time.perf_counter() - started:.0f} s)\n", flush=True)
    return sections


def main(argv: list[str] | None = None) -> int:
    """Parse the options, start the org process, run, report."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "sfoauth_async against raw aiohttp and peer libraries, all measured in this run; "
            "the fake org runs in a separate process."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--charts",
        type=Path,
        metavar="DIR",
        help="also draw the charts of docs/benchmarks.md (PNG) into DIR; needs matplotlib",
    )
    args = parser.parse_args(argv)
    if args.charts is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--charts needs matplotlib: pip install matplotlib (nox -s bench has it)")

    # Storms make refreshes fail on purpose; the library logs each at WARNING or ERROR.
    logging.getLogger("sfoauth_async").setLevel(logging.CRITICAL)
    settings = QUICK if args.quick else FULL
    names = args.only or list(SCENARIOS)
    env = environment()
    notes = caveats(env["load_average_before"])
    started = time.perf_counter()
    print(f"# sfoauth_async benchmarks ({'quick' if args.quick else 'full'} run)\n")
    print(f"{env['date']}, Python {env['python']}, {env['cpus']} CPUs, {env['platform']}")
    print(", ".join(f"{d} {v}" for d, v in env["versions"].items() if v) + "\n")
    for note in notes:
        print(f"Note: {note}\n")
    pin_client()
    with OrgProcess() as org:
        sections = asyncio.run(run_all(org, settings, names))
    elapsed = time.perf_counter() - started
    print(f"Total: {elapsed:.0f} s")
    report = {
        **env,
        "run": "quick" if args.quick else "full",
        "elapsed_s": round(elapsed, 1),
        "settings": settings.as_dict(),
        "caveats": notes,
        "sections": {s.name: s.as_dict() for s in sections},
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"Wrote {args.json}")
    if args.charts is not None:
        for path in write_charts(report, args.charts):
            print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
