"""The HTTP client for Salesforce's ``/services/oauth2/*`` endpoints.

Every token, revoke and introspect call goes through `post_form`: a form-encoded POST that
bypasses the session's middlewares (a token request must never carry a bearer token or be
retried by the 401 logic), follows no redirect (a redirect would carry secrets elsewhere)
and turns every failure into a typed error from `._errors`. Answers are read within the
bounds of `._limits` (1 MiB after decompression, JSON nested at most 32 deep).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import hdrs

from ._errors import (
    InvalidTokenError,
    InvalidTokenResponseError,
    TokenEndpointConnectionError,
    TokenEndpointUnavailableError,
    TokenRequestError,
    oauth_error_from_response,
)
from ._limits import MAX_BODY_BYTES, loads_limited, read_capped
from ._untrusted import printable

__all__ = ["DEFAULT_REQUEST_TIMEOUT_S", "OAuthResponse", "get_json", "interpret", "post_form"]

DEFAULT_REQUEST_TIMEOUT_S = 30.0
"""Time limit of one request to an OAuth endpoint when no session timeout applies."""

_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_TRANSIENT_OAUTH_CODES = frozenset({"server_error", "temporarily_unavailable"})
# Only what read_capped inflates itself (never br or zstd, which it cannot bound).
_ACCEPT_ENCODING = "gzip, deflate"


class OAuthResponse:
    """A decoded successful answer of an OAuth endpoint and the local time it arrived.

    Example:
        ```python
        response = await post_form(None, token_url, {"grant_type": "client_credentials"})
        token = Token.from_response(response.data, received_at=response.received_at)
        ```
    """

    __slots__ = ("data", "received_at", "status")

    def __init__(self, status: int, data: Mapping[str, Any], received_at: datetime) -> None:
        self.status = status
        self.data = data
        self.received_at = received_at


def _looks_like_html(content_type: str, text: str) -> bool:
    return "html" in content_type or text.lstrip()[:1] == "<"


def _decode_error_body(content_type: str, text: str) -> Mapping[str, Any] | None:
    stripped = text.strip()
    if not stripped:
        return None
    if stripped[:1] in "{[":
        try:
            value = loads_limited(stripped)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    # The revoke endpoint's error encoding is not documented; jsforce reads it as a form.
    if "x-www-form-urlencoded" in content_type or stripped.startswith("error="):
        return dict(parse_qsl(stripped))
    return None


def interpret(
    status: int, content_type: str, text: str, *, url: str, allow_empty: bool = False
) -> Mapping[str, Any]:
    """Turn a raw OAuth endpoint answer into data, or raise the error it stands for.

    Args:
        status: The HTTP status.
        content_type: The response's ``Content-Type``, lower-cased.
        text: The response body.
        url: The endpoint, for messages.
        allow_empty: Whether an empty 2xx body is a success (``revoke`` answers so).

    Raises:
        OAuthError: A 4xx with an OAuth error body (the subclass says which).
        TokenEndpointUnavailableError: 5xx, 408, 425, 429, or an HTML maintenance page.
        InvalidTokenResponseError: Anything else that is not the expected JSON object.

    Example:
        ```python
        data = interpret(200, "application/json", '{"access_token": "..."}', url=token_url)
        ```
    """
    if status >= 500 or status in _TRANSIENT_STATUSES:
        code = (_decode_error_body(content_type, text) or {}).get("error")
        detail = f" ({printable(code)})" if isinstance(code, str) else ""
        raise TokenEndpointUnavailableError(
            f"Salesforce answered HTTP {status}{detail} from {url}: the service is unavailable "
            f"or overloaded (maintenance, an incident). This is retried with backoff; if it "
            f"persists, check https://status.salesforce.com.",
            status=status,
            url=url,
        )
    if 200 <= status < 300:
        if not text.strip():
            if allow_empty:
                return {}
        elif text.strip()[:1] == "{":
            try:
                value = loads_limited(text)
            except ValueError:  # not JSON, or nested deeper than any OAuth answer
                pass
            else:
                if isinstance(value, dict):
                    return value
        if _looks_like_html(content_type, text):
            # Salesforce serves its "down for maintenance" page with a 2xx status at times.
            raise TokenEndpointUnavailableError(
                f"Salesforce answered an HTML page instead of JSON from {url}: usually a "
                f"maintenance page. This is retried with backoff; if it persists, check "
                f"https://status.salesforce.com and that login_url is a Salesforce login URL.",
                status=status,
                url=url,
            )
        raise InvalidTokenResponseError(
            f"Salesforce answered HTTP {status} from {url} with a body that is not a JSON "
            f"object. Check that login_url is a Salesforce login or My Domain URL.",
            status=status,
            url=url,
        )
    raise _error_for(status, content_type, text, url=url)


def _error_for(status: int, content_type: str, text: str, *, url: str) -> TokenRequestError:
    body = _decode_error_body(content_type, text)
    if body is not None and isinstance(body.get("error"), str):
        code = body["error"]
        description = body.get("error_description")
        if code in _TRANSIENT_OAUTH_CODES:
            return TokenEndpointUnavailableError(
                f"Salesforce answered {printable(code)} from {url}; this is retried with backoff.",
                status=status,
                url=url,
            )
        return oauth_error_from_response(
            code,
            description if isinstance(description, str) else None,
            status=status,
            url=url,
        )
    if status in (401, 403):
        # userinfo and the identity URL answer a bad bearer token without an OAuth body.
        return InvalidTokenError(
            f"Salesforce refused the token or credentials at {url} (HTTP {status}): an "
            f"access token may be expired, revoked or lack the scope the endpoint needs "
            f"(openid/id/profile); client credentials may be wrong.",
            error="invalid_token",
            description=text.strip()[:200] or None,
            status=status,
            url=url,
        )
    if 300 <= status < 400:
        return InvalidTokenResponseError(
            f"{url} answered a redirect (HTTP {status}); credentials are never sent after a "
            f"redirect. Set login_url to the URL Salesforce redirects to.",
            status=status,
            url=url,
        )
    return InvalidTokenResponseError(
        f"Salesforce answered HTTP {status} from {url} without an OAuth error body. Check "
        f"that login_url is your Salesforce login, My Domain or Experience Cloud site URL.",
        status=status,
        url=url,
    )


async def _send(
    session: aiohttp.ClientSession | None,
    method: str,
    url: str,
    *,
    allow_empty: bool,
    timeout_s: float | None,
    **kwargs: Any,  # noqa: ANN401 - aiohttp's request options, passed through
) -> OAuthResponse:
    timeout = aiohttp.ClientTimeout(total=timeout_s or DEFAULT_REQUEST_TIMEOUT_S)
    try:
        async with AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(aiohttp.ClientSession())
            elif hdrs.AUTHORIZATION in session.headers:
                # The caller's default Authorization (a bearer, say) must not reach this
                # endpoint: borrow only the connection pool.
                session = await stack.enter_async_context(
                    aiohttp.ClientSession(
                        connector=session.connector,
                        connector_owner=False,
                        trust_env=session.trust_env,
                    )
                )
            # middlewares=(): our bearer middleware must never see (or retry) a token call.
            async with session.request(
                method,
                url,
                allow_redirects=False,
                middlewares=(),
                timeout=timeout,
                # Inflated by read_capped, within its limit: a gzip bomb stays small.
                auto_decompress=False,
                **kwargs,
            ) as resp:
                raw = await read_capped(resp, limit_bytes=MAX_BODY_BYTES, inflate=True)
                received_at = datetime.now(UTC)
                status = resp.status
                content_type = resp.headers.get("Content-Type", "").lower()
    except TokenRequestError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError) as exc:
        # RuntimeError: the borrowed session was closed under us ("Session is closed").
        kind = "timed out" if isinstance(exc, TimeoutError) else "failed"
        raise TokenEndpointConnectionError(
            f"The request to {url} {kind} ({type(exc).__name__}: {exc}). This is retried "
            f"with backoff; if it persists, check the network, proxy and TLS settings.",
            url=url,
        ) from exc
    text = raw.decode("utf-8", errors="replace")
    data = interpret(status, content_type, text, url=url, allow_empty=allow_empty)
    return OAuthResponse(status, data, received_at)


async def post_form(
    session: aiohttp.ClientSession | None,
    url: str,
    form: Mapping[str, str],
    *,
    authorization: str | None = None,
    allow_empty: bool = False,
    timeout_s: float | None = None,
) -> OAuthResponse:
    """POST a form to an OAuth endpoint and decode the JSON answer.

    Args:
        session: The aiohttp session to use, or ``None`` for a private one.
        url: The endpoint URL.
        form: The form fields (secrets go here, never in the URL).
        authorization: An ``Authorization`` header value (HTTP Basic client
            authentication), when chosen instead of body fields.
        allow_empty: Whether an empty 2xx body counts as success.
        timeout_s: Total time limit of the request (default 30 s).

    Returns:
        The decoded answer.

    Raises:
        OAuthError: Salesforce refused the request.
        TokenEndpointUnavailableError: 5xx/408/429 or a maintenance page (transient).
        TokenEndpointConnectionError: No answer (transient).
        InvalidTokenResponseError: An answer that is not an OAuth JSON object, or one
            larger than 1 MiB (after decompression).

    Example:
        ```python
        response = await post_form(
            session,
            token_url,
            {"grant_type": "client_credentials"},
            authorization="Basic " + base64.b64encode(b"id:secret").decode(),
        )
        ```
    """
    headers = {hdrs.ACCEPT: "application/json", hdrs.ACCEPT_ENCODING: _ACCEPT_ENCODING}
    if authorization is not None:
        headers[hdrs.AUTHORIZATION] = authorization
    return await _send(
        session,
        "POST",
        url,
        data=dict(form),
        headers=headers,
        allow_empty=allow_empty,
        timeout_s=timeout_s,
    )


async def get_json(
    session: aiohttp.ClientSession | None,
    url: str,
    *,
    bearer: str,
    timeout_s: float | None = None,
) -> OAuthResponse:
    """GET a JSON resource of the OAuth family (userinfo, identity URL) with a bearer token.

    Raises:
        OAuthError: Salesforce refused the token.
        TokenEndpointUnavailableError: 5xx/408/429 or a maintenance page (transient).
        TokenEndpointConnectionError: No answer (transient).
        InvalidTokenResponseError: An answer that is not a JSON object.

    Example:
        ```python
        info = (await get_json(None, userinfo_url, bearer=token.access_token)).data
        ```
    """
    return await _send(
        session,
        "GET",
        url,
        headers={
            hdrs.ACCEPT: "application/json",
            hdrs.ACCEPT_ENCODING: _ACCEPT_ENCODING,
            hdrs.AUTHORIZATION: f"Bearer {bearer}",
        },
        allow_empty=False,
        timeout_s=timeout_s,
    )
