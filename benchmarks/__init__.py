"""Benchmarks of sfoauth_async against raw aiohttp and peer libraries: ``nox -s bench``.

Every number is measured in the same run as its baseline and reported as a ratio; nothing
here asserts a time. See ``benchmarks/README.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    """How big a run is; `FULL` takes about 3 minutes on 2 cores, `QUICK` about 40 s."""

    concurrency: int = 50
    requests: int = 3000
    """Scenario 1: calls per client per round (fewer if `max_s` runs out first)."""
    rounds: int = 7
    """Scenario 1: rounds, clients interleaved; ratios are medians of per-round ratios."""
    max_s: float = 2.0
    """Scenario 1: no call starts after this many seconds of a round."""
    warmup: int = 300
    storm_calls: int = 500
    slow_token_s: float = 0.5
    """Scenario 2: delay of the slow token endpoint."""
    echo_requests: int = 2000
    echo_rounds: int = 9
    micro_iterations: int = 100_000
    micro_repeats: int = 5
    etl_records: int = 100_000
    """ETL scenarios: records queried, and records upserted, per run."""
    etl_rounds: int = 5
    """ETL scenarios: rounds, clients interleaved; ratios are medians of per-round ratios."""
    etl_concurrency: int = 10
    """ETL upsert: collection calls in flight (the session's connection limit)."""
    queued_calls: int = 5000
    """Scenario 5: concurrent calls on a 100-connection pool, sessions ending halfway."""
    instruction_calls: int = 4000
    """Scenario 4c: requests per client variant run under callgrind."""

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return asdict(self)


FULL = Settings()
QUICK = Settings(
    requests=1000,
    rounds=2,
    max_s=1.0,
    warmup=100,
    storm_calls=200,
    echo_requests=1000,
    echo_rounds=2,
    micro_iterations=20_000,
    micro_repeats=3,
    etl_records=20_000,
    etl_rounds=2,
    queued_calls=2000,
    instruction_calls=1000,
)
