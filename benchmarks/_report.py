"""What a scenario hands back: a markdown table for the terminal and data for ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    """One scenario's results."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)

    def add(self, cells: list[str], **data: Any) -> None:
        """One table row, and its raw numbers for the JSON report."""
        self.rows.append(cells)
        self.data.append(data)

    def markdown(self) -> str:
        """The section as markdown: a heading, the table, then the notes."""
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {"title": self.title, "rows": self.data, "notes": self.notes}


def rate(value: float) -> str:
    """Calls per second, thousands separated."""
    return f"{value:,.0f}"


def ratio(value: float) -> str:
    """A ratio to a baseline, two decimals (three below 0.1)."""
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"
