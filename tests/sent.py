"""What a mocked aiohttp (aioresponses) was asked to send: for request-shape unit tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aioresponses import aioresponses
from yarl import URL


def only_request(mock: aioresponses) -> tuple[str, URL, dict[str, Any]]:
    """The one request sent: method, URL and aiohttp keyword arguments."""
    assert len(mock.requests) == 1
    ((method, url), calls) = next(iter(mock.requests.items()))
    assert len(calls) == 1
    return method, url, calls[0].kwargs


def posts_to(mock: aioresponses, url: str) -> list[dict[str, Any]]:
    """Every POST sent to ``url``, in order, as aiohttp keyword arguments; nothing else sent."""
    assert set(mock.requests) <= {("POST", URL(url))}
    return [call.kwargs for call in mock.requests.get(("POST", URL(url)), [])]


def form(kwargs: dict[str, Any]) -> dict[str, str]:
    """The body aiohttp sends for the request, decoded; it must be form-urlencoded."""
    payload = aiohttp.FormData(kwargs["data"])()
    assert payload.content_type == "application/x-www-form-urlencoded"
    pairs = parse_qsl(payload._value.decode(), keep_blank_values=True)
    assert len(pairs) == len(dict(pairs)), "a field is sent twice"
    return dict(pairs)


def authorization(kwargs: dict[str, Any]) -> str | None:
    """The Authorization header the request carries (never through aiohttp's auth=)."""
    assert kwargs.get("auth") is None
    headers = {k.lower(): v for k, v in (kwargs.get("headers") or {}).items()}
    return headers.get("authorization")
