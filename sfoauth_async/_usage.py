"""`APIUsage`: the org's daily API usage, read from ``Sforce-Limit-Info``, and its budget.

Every REST answer but the versions list carries ``Sforce-Limit-Info: api-usage=USED/MAX``
(calls in the rolling 24 hours / the org's allocation), sometimes followed by
``; api-bursts=1/750`` or ``per-app-api-usage=17/250(appName=...)``. `UsageTracker` keeps
the latest value a session saw, warns once in the log at 80 % and at 95 %, and refuses to
send once an optional limit is reached. Usage only falls as calls age out of the 24 hours,
and a session that sends nothing hears nothing, so while it refuses, one call every
`PROBE_INTERVAL_S` goes out anyway to learn whether the org has room again.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

from aiohttp import ClientRequest
from multidict import istr

from ._api_errors import APIUsageLimitError
from ._errors import ConfigurationError

__all__ = ["LIMIT_INFO", "PROBE_INTERVAL_S", "WARN_AT", "APIUsage", "UsageTracker"]

LIMIT_INFO = istr("Sforce-Limit-Info")  # istr: no case folding on each lookup
WARN_AT = (0.80, 0.95)
"""Fractions of the daily allocation at which a session logs one warning each."""
PROBE_INTERVAL_S = 300.0
"""While a session refuses calls, it lets one through this often, to see if usage fell."""

log = logging.getLogger("sfoauth_async")

_API_USAGE = re.compile(r"(?:^|[;,])\s*api-usage\s*=\s*(\d+)\s*/\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class APIUsage:
    """The org's API usage as one ``Sforce-Limit-Info`` header reported it.

    Attributes:
        used: API calls made in the org over the rolling 24 hours.
        limit: The org's allocation over the same window.

    Example:
        ```python
        usage = APIUsage.parse("api-usage=18000/100000; api-bursts=1/750")
        assert usage == APIUsage(used=18000, limit=100000)
        assert usage.fraction == 0.18 and usage.remaining == 82000
        ```
    """

    used: int
    limit: int

    @property
    def fraction(self) -> float:
        """``used / limit`` (1.0 for an org with no allocation at all).

        Example:
            ```python
            assert APIUsage(used=45, limit=100).fraction == 0.45
            ```
        """
        return self.used / self.limit if self.limit > 0 else 1.0

    @property
    def remaining(self) -> int:
        """Calls left in the allocation (never negative).

        Example:
            ```python
            assert APIUsage(used=120, limit=100).remaining == 0
            ```
        """
        return max(self.limit - self.used, 0)

    @classmethod
    def parse(cls, header: str) -> APIUsage | None:
        """Read the ``api-usage`` entry of a ``Sforce-Limit-Info`` value; ``None`` if absent.

        Other entries (``api-bursts``, ``per-app-api-usage``, ...) are ignored, in any order.

        Example:
            ```python
            assert APIUsage.parse("per-app-api-usage=2/250(appName=etl); api-usage=7/500") == (
                APIUsage(used=7, limit=500)
            )
            assert APIUsage.parse("api-bursts=1/750") is None
            ```
        """
        found = _API_USAGE.search(header)
        if found is None:
            return None
        return cls(used=int(found[1]), limit=int(found[2]))

    def __str__(self) -> str:
        return f"{self.used:,}/{self.limit:,} ({self.fraction:.1%})"


def check_usage_limit(limit: object) -> None:
    """Refuse an ``api_usage_limit`` that is not a fraction in (0, 1].

    Example:
        ```python
        check_usage_limit(0.9)
        ```
    """
    if limit is None:
        return
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int | float)
        or not math.isfinite(limit)
        or not 0 < limit <= 1
    ):
        raise ConfigurationError(
            f"api_usage_limit must be a fraction of the org's daily API allocation, "
            f"0 < limit <= 1 (e.g. 0.9 for 90 %), got {limit!r}."
        )


class UsageTracker:
    """The latest `APIUsage` a session saw, its log warnings and its budget stop.

    Args:
        limit: Refuse calls once usage reaches this fraction; ``None`` never refuses.

    Example:
        ```python
        tracker = UsageTracker(limit=0.9)
        tracker.observe("api-usage=95/100")
        tracker.check(req)  # raises APIUsageLimitError
        ```
    """

    __slots__ = ("_header", "_heard_at", "_latest", "_limit", "_used", "_warned", "limit")

    def __init__(self, *, limit: float | None = None) -> None:
        check_usage_limit(limit)
        self.limit: float | None = limit
        # Every answer brings a new count: keep two ints, and build the value object only
        # when someone asks for it.
        self._used = self._limit = -1
        self._latest: APIUsage | None = None
        self._header = ""
        self._warned = 0
        self._heard_at = 0.0

    @property
    def latest(self) -> APIUsage | None:
        """The usage of the latest answer that reported one, or ``None``.

        Example:
            ```python
            print(tracker.latest)
            ```
        """
        if self._latest is None and self._used >= 0:
            self._latest = APIUsage(used=self._used, limit=self._limit)
        return self._latest

    def observe(self, header: str | None) -> None:
        """Take the ``Sforce-Limit-Info`` value of one answer (``None``: the answer had none).

        Example:
            ```python
            tracker.observe(resp.headers.get("Sforce-Limit-Info"))
            ```
        """
        if not header:
            return
        if self.limit is not None:
            self._heard_at = time.monotonic()
        if header == self._header:
            return
        used, limit = _counts(header)
        if used < 0:
            return
        self._header = header
        self._used, self._limit, self._latest = used, limit, None
        if self._warned == len(WARN_AT) or used < WARN_AT[self._warned] * limit:
            return
        crossed = sum(1 for threshold in WARN_AT if used >= threshold * limit)
        self._warned = crossed
        log.warning(
            "The org has used %s of its daily API allocation (at least %.0f%%); every "
            "integration of the org stops when it runs out.",
            self.latest,
            WARN_AT[crossed - 1] * 100,
        )

    def check(self, req: ClientRequest) -> None:
        """Raise `APIUsageLimitError` if the limit is set and the latest usage reached it.

        Except for one call every `PROBE_INTERVAL_S` without news, which may go out.

        Example:
            ```python
            tracker.check(req)
            ```
        """
        limit = self.limit
        if limit is None or self._used < 0 or self._used < limit * self._limit:
            return
        now = time.monotonic()
        if now - self._heard_at >= PROBE_INTERVAL_S:
            self._heard_at = now  # one probe per interval, however many callers wait
            return
        usage = self.latest
        assert usage is not None
        raise APIUsageLimitError(
            f"Not sending {req.method} {req.url.with_query(None)}: the org has used {usage} "
            f"of its daily API allocation, and this session stops at {limit:.0%} "
            f"(api_usage_limit={limit}). Run the job later, when older calls have aged out "
            f"of the rolling 24 hours, or raise api_usage_limit if the org can spare the calls.",
            usage=usage,
            limit=limit,
        )


def _counts(header: str) -> tuple[int, int]:
    """``(used, limit)`` of a ``Sforce-Limit-Info`` value, or ``(-1, -1)`` without one."""
    # Salesforce puts api-usage first: read that without a regex, the rest with one.
    if header.startswith("api-usage="):
        used, slash, rest = header[10:].partition("/")
        limit = rest.partition(";")[0].strip()
        if slash and used.isdigit() and limit.isdigit():
            return int(used), int(limit)
    usage = APIUsage.parse(header)
    return (usage.used, usage.limit) if usage is not None else (-1, -1)
