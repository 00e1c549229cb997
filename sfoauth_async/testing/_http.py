"""Small wire-format helpers shared by the OAuth and REST handlers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

__all__ = ["JSON_CONTENT_TYPE", "form_fields", "json_response"]

# Salesforce writes no space before charset; clients that compare the header exactly notice.
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"


def json_response(
    payload: Any,  # noqa: ANN401 - any JSON value
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON response with Salesforce's exact ``Content-Type``."""
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
    )


async def form_fields(request: web.Request) -> dict[str, str]:
    """The fields of a form-encoded body (first value wins); other bodies count as empty.

    The query string is never read: Salesforce's token endpoint takes its parameters from the
    body, and secrets do not belong in URLs.
    """
    if request.method != "POST" or request.content_type != "application/x-www-form-urlencoded":
        return {}
    fields: dict[str, str] = {}
    for name, value in (await request.post()).items():
        if isinstance(value, str):
            fields.setdefault(name, value)
    return fields
