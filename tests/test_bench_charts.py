"""docs/benchmarks.md: its charts and numbers come from the one run in docs/images/bench/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks._charts import charts

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "docs" / "images" / "bench"
PAGE = (ROOT / "docs" / "benchmarks.md").read_text()


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """The committed run's report, as ``python -m benchmarks --json`` wrote it."""
    loaded: dict[str, Any] = json.loads((BENCH / "results.json").read_text())
    return loaded


def _rows(report: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return [row for row in report["sections"][section]["rows"] if row]


def test_the_run_is_a_full_one(report: dict[str, Any]) -> None:
    """The committed charts are of a full run, with every scenario the page shows."""
    assert report["run"] == "full"
    assert {"storm", "queued", "steady", "instructions"} <= set(report["sections"])


def test_every_chart_is_drawn_and_shown(report: dict[str, Any]) -> None:
    """Each chart of the report is a committed PNG that the page shows, and ours is in it."""
    drawn = charts(report)
    assert [chart.name for chart in drawn] == ["storm", "queued", "steady", "instructions"]
    for chart in drawn:
        assert (BENCH / f"{chart.name}.png").stat().st_size > 10_000
        assert f"](images/bench/{chart.name}.png)" in PAGE
        assert any(row.ours for row in chart.rows), chart.name


def test_storm_chart_counts_token_requests(report: dict[str, Any]) -> None:
    """The storm chart shows each client's token requests, fast and slow; n/a for the others."""
    (storm,) = [chart for chart in charts(report) if chart.name == "storm"]
    by_label = {row.label: row for row in storm.rows}
    for data in _rows(report, "storm"):
        row = by_label[data.get("version") or data["client"]]
        if "fast" in data:
            assert row.values == (data["fast"]["token_requests"], data["slow"]["token_requests"])
        else:
            assert row.values == (None, None)
            assert row.note


def test_page_cites_the_run(report: dict[str, Any]) -> None:
    """The page names the run's date and load, and cites its numbers as the tables print them."""
    assert report["date"][:10] in PAGE
    assert f"load average {report['load_average_before']}" in PAGE
    cited = [
        f"{data['fast']['token_requests']} / {data['slow']['token_requests']}"
        for data in _rows(report, "storm")
        if "fast" in data
    ]
    for data in _rows(report, "queued"):
        cited += [f"{data['unauthorized']:,.0f}", f"{data['api_requests']:,.0f}"]
    for data in _rows(report, "steady"):
        ratio = data["ratio_to_raw"]
        cited += [f"{ratio:.3f}" if ratio < 0.1 else f"{ratio:.2f}"]
        cited += [f"{data['cpu_ratio_to_raw']:.2f}x"]
    for data in _rows(report, "instructions"):
        cited += [f"{data['instructions_per_request']:,.0f}", f"{data['ratio']:.3f}x"]
    missing = [
        number for number in cited if not re.search(rf"(?<![\d.,]){re.escape(number)}", PAGE)
    ]
    assert not missing, f"docs/benchmarks.md does not cite these numbers of the run: {missing}"
