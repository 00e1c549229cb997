"""Durations on the command line: ``90`` or ``90s`` (seconds), ``30m``, ``2h``."""

from __future__ import annotations

import argparse
import math
import re

__all__ = ["duration_argument", "parse_duration_s"]

_DURATION = re.compile(r"\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[smh]?)\s*", re.IGNORECASE)
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """Seconds in ``text``: a number of seconds, or a number with ``s``, ``m`` or ``h``.

    Raises:
        ValueError: Not such a duration, or not positive.

    Example:
        ```python
        assert parse_duration_s("2h") == 7200.0
        ```
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use seconds (90) or 90s, 30m, 2h")
    seconds = float(match["number"]) * _UNIT_S[match["unit"].lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def duration_argument(text: str) -> float:
    """`parse_duration_s` as an argparse ``type=``: errors become usage errors.

    Example:
        ```python
        parser.add_argument("--timeout", type=duration_argument, default=300.0)
        ```
    """
    try:
        return parse_duration_s(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
