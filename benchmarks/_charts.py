"""Charts of a run for docs/benchmarks.md: matplotlib PNGs of the numbers the tables show.

``python -m benchmarks --charts DIR`` draws them at the end of a run (``nox -s bench`` writes
them into ``docs/images/bench/``), from the same report ``--json`` writes.
``python -m benchmarks._charts REPORT.json DIR`` draws them again from a saved report.
matplotlib is imported only to draw: the bench session installs it, sfoauth_async does not
depend on it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OURS = "#1565c0"
OURS_LIGHT = "#90caf9"
PEER = "#616161"
PEER_LIGHT = "#bdbdbd"


@dataclass(frozen=True)
class Row:
    """One client of a chart: a value per series (``None``: does not apply)."""

    label: str
    values: tuple[float | None, ...]
    texts: tuple[str, ...]
    """What is written at the end of each bar."""
    ours: bool
    note: str = ""
    """Why there are no values."""


@dataclass(frozen=True)
class Chart:
    """One PNG: horizontal bars, one group per client."""

    name: str
    title: str
    axis: str
    series: tuple[str, ...]
    rows: tuple[Row, ...]


def _label(data: dict[str, Any]) -> str:
    return str(data.get("version") or data.get("client", "?")).replace("`", "")


def _ours(label: str) -> bool:
    return label.startswith("sfoauth_async") or "AsyncSession" in label or "Bearer" in label


def _rows(report: dict[str, Any], section: str) -> list[dict[str, Any]]:
    found = report.get("sections", {}).get(section)
    return [row for row in found["rows"] if row] if found else []


def _storm(report: dict[str, Any]) -> Chart | None:
    rows = []
    for data in _rows(report, "storm"):
        label = _label(data)
        if "fast" not in data:
            note = str(data.get("skipped", "not measured")).split(": ")[-1]
            rows.append(Row(label, (None, None), ("", ""), _ours(label), note))
            continue
        fast, slow = data["fast"]["token_requests"], data["slow"]["token_requests"]
        texts = (f"{fast:.0f}", f"{slow:.0f}")
        rows.append(Row(label, (fast, slow), texts, _ours(label)))
    if not rows:
        return None
    calls = report["settings"]["storm_calls"]
    slow_s = report["settings"]["slow_token_s"]
    return Chart(
        name="storm",
        title=f"Token requests per storm: {calls} calls right after the session ended",
        axis="token requests the org received (1 is ideal)",
        series=("fast token endpoint", f"token endpoint {slow_s:g} s slow"),
        rows=tuple(rows),
    )


def _bars(
    report: dict[str, Any], section: str, bar: Callable[[dict[str, Any]], tuple[float, str]]
) -> tuple[Row, ...]:
    """One single-valued row per measured client of ``section``: ``bar`` gives value and text."""
    rows = []
    for data in _rows(report, section):
        label = _label(data)
        value, text = bar(data)
        rows.append(Row(label, (value,), (text,), _ours(label)))
    return tuple(rows)


def _queued(report: dict[str, Any]) -> Chart | None:
    def wasted(data: dict[str, Any]) -> tuple[float, str]:
        count = float(data["unauthorized"])
        return count, f"{count:.0f} ({count / data['calls']:.3f} per call)"

    rows = _bars(report, "queued", wasted)
    if not rows:
        return None
    calls = report["settings"]["queued_calls"]
    return Chart(
        name="queued",
        title=f"Wasted calls when sessions end halfway through {calls:,} concurrent calls",
        axis="calls sent with the dead token (401s served), each sent again",
        series=("401s",),
        rows=rows,
    )


def _steady(report: dict[str, Any]) -> Chart | None:
    def ratio(data: dict[str, Any]) -> tuple[float, str]:
        value = float(data["ratio_to_raw"])
        return value, f"{value:.3f}" if value < 0.1 else f"{value:.2f}"

    rows = _bars(report, "steady", ratio)
    if not rows:
        return None
    concurrency = report["settings"]["concurrency"]
    return Chart(
        name="steady",
        title=f"Throughput at concurrency {concurrency}, valid token, relative to raw aiohttp",
        axis="calls/s ÷ raw aiohttp's calls/s in the same round (median; higher is better)",
        series=("÷ raw aiohttp",),
        rows=rows,
    )


def _instructions(report: dict[str, Any]) -> Chart | None:
    def ratio(data: dict[str, Any]) -> tuple[float, str]:
        value, count = float(data["ratio"]), float(data["instructions_per_request"])
        return value, f"{value:.3f}x ({count:,.0f})"

    rows = _bars(report, "instructions", ratio)
    if not rows:
        return None
    return Chart(
        name="instructions",
        title="Instructions per request (callgrind), relative to raw aiohttp",
        axis="instructions per request ÷ raw aiohttp's (lower is better)",
        series=("vs raw aiohttp",),
        rows=rows,
    )


def charts(report: dict[str, Any]) -> list[Chart]:
    """The charts a report has the numbers for (a scenario that did not run has none)."""
    found = [make(report) for make in (_storm, _queued, _steady, _instructions)]
    return [chart for chart in found if chart is not None]


def _footer(report: dict[str, Any]) -> str:
    versions = report.get("versions", {})
    return (
        f"{report.get('run', '?')} run of {report.get('date', '?')[:10]}, "
        f"{report.get('cpus', '?')} CPUs, Python {report.get('python', '?')}, "
        f"aiohttp {versions.get('aiohttp', '?')}; load average before "
        f"{report.get('load_average_before', '?')}"
    )


def draw(chart: Chart, path: Path, *, footer: str) -> None:
    """Write the chart as a PNG."""
    import matplotlib as mpl  # noqa: PLC0415 - only the bench session installs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    groups = len(chart.series)
    height = 0.8 / groups
    figure, axes = plt.subplots(figsize=(9, 1.3 + 0.32 * groups * len(chart.rows)), dpi=110)
    top = max((v for row in chart.rows for v in row.values if v is not None), default=1.0)
    for index, row in enumerate(reversed(chart.rows)):
        for n, (value, text) in enumerate(zip(row.values, row.texts, strict=True)):
            y = index + (groups - 1 - n - (groups - 1) / 2) * height
            if value is None:
                if n == 0:
                    axes.text(top * 0.01, index, f"n/a: {row.note}", va="center", color=PEER)
                continue
            colors = (OURS, OURS_LIGHT) if row.ours else (PEER, PEER_LIGHT)
            axes.barh(y, value, height=height * 0.9, color=colors[n % 2])
            axes.text(value + top * 0.01, y, text, va="center", fontsize=9)
    axes.set_yticks(range(len(chart.rows)), [row.label for row in reversed(chart.rows)])
    axes.set_xlim(0, top * 1.3)
    axes.set_ylim(-0.6, len(chart.rows) - 0.4)
    axes.set_xlabel(chart.axis)
    axes.set_title(chart.title, fontsize=11, loc="left")
    if groups > 1:
        handles = [
            Patch(color=color, label=label)
            for color, label in zip((PEER, PEER_LIGHT), chart.series, strict=False)
        ]
        axes.legend(handles=handles, loc="best", fontsize=9)
    axes.spines[["top", "right"]].set_visible(False)
    figure.text(0.01, 0.01, f"{footer}. Ours in blue.", fontsize=7, color=PEER)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, facecolor="white")
    plt.close(figure)


def write_charts(report: dict[str, Any], directory: Path) -> list[Path]:
    """Draw every chart the report has numbers for into ``directory``; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts(report):
        path = directory / f"{chart.name}.png"
        draw(chart, path, footer=_footer(report))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks._charts REPORT.json DIR``: draw the charts of a saved report."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(main.__doc__, file=sys.stderr)
        return 2
    report = json.loads(Path(args[0]).read_text())
    for path in write_charts(report, Path(args[1])):
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
