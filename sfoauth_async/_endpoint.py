"""The HTTP client for Salesforce's ``/services/oauth2/*`` endpoints.

Every token, revoke and introspect call goes through `post_form`: a form-encoded POST that
bypasses the session's middlewares (a token request must never carry a bearer token or be
retried by the 401 logic), follows no redirect (a redirect would carry secrets elsewhere)
and turns every failure into a typed error from `._errors`. Answers are read within the
bounds of `._limits` (1 MiB after decompression, JSON nested at most 32 deep).

A connection failure says whether the request may have left this machine
(`TokenEndpointConnectionError.request_sent`): with rotation, a refresh token that reached
Salesforce may be spent, and must never be sent again. The sessions this module makes
record it exactly (an aiohttp trace hook on "request headers sent"); for a session of the
caller's, only a failure to connect counts as "not sent".
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import hdrs
from yarl import URL

from ._errors import (
    InvalidTokenError,
    InvalidTokenResponseError,
    TokenEndpointConnectionError,
    TokenEndpointUnavailableError,
    TokenRequestError,
    oauth_error_from_response,
)
from ._limits import MAX_BODY_BYTES, loads_limited, read_capped
from ._retry import retry_after_s
from ._untrusted import printable

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "HttpSettings",
    "OAuthResponse",
    "get_json",
    "interpret",
    "post_form",
]

DEFAULT_REQUEST_TIMEOUT_S = 30.0
"""Time limit of one request to an OAuth endpoint when no session timeout applies."""

_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_TRANSIENT_OAUTH_CODES = frozenset({"server_error", "temporarily_unavailable"})
# Only what read_capped inflates itself (never br or zstd, which it cannot bound).
_ACCEPT_ENCODING = "gzip, deflate"


# Failures that happen before a request can leave: resolving, connecting (proxy included),
# the TLS handshake, a connect timeout.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """How requests to the OAuth endpoints reach Salesforce: network settings and nothing else.

    `Refresher` opens a private aiohttp session from these for each refresh (one fresh
    connection per request, no keep-alive to go stale between retries), so token requests
    never queue behind API calls, never pass through a user's middlewares, trace configs,
    cookies or ``raise_for_status``, and never use a pool a user may close. `AsyncSession`
    copies them from its own aiohttp options.

    Attributes:
        ssl: TLS verification: ``True`` (default, the system's CAs), an `ssl.SSLContext`
            (your CAs, a client certificate), ``False`` (verification off: tests only) or an
            `aiohttp.Fingerprint`.
        proxy: A proxy URL for every request, or ``None``.
        proxy_auth: Proxy credentials (an `aiohttp.BasicAuth`), or ``None``.
        trust_env: Read proxy settings (``HTTPS_PROXY``, ``NO_PROXY``) and ``.netrc`` from
            the environment, as `aiohttp.ClientSession` does.

    Example:
        ```python
        settings = HttpSettings(ssl=ssl.create_default_context(cafile="corp-ca.pem"))
        refresher = Refresher(flow, http=settings)
        ```
    """

    ssl: ssl.SSLContext | bool | aiohttp.Fingerprint = True
    proxy: str | URL | None = None
    proxy_auth: Any = None
    trust_env: bool = False

    @classmethod
    def from_session_options(cls, options: Mapping[str, Any]) -> HttpSettings:
        """The settings of an `aiohttp.ClientSession` made with ``options``.

        TLS settings come from a `aiohttp.TCPConnector` given as ``connector`` (aiohttp
        keeps them on the connector), proxy and ``trust_env`` from the options themselves.

        Example:
            ```python
            settings = HttpSettings.from_session_options({"trust_env": True})
            ```
        """
        connector = options.get("connector")
        tls = (
            getattr(connector, "_ssl", True)
            if isinstance(connector, aiohttp.TCPConnector)
            else True
        )
        return cls(
            ssl=tls,
            proxy=options.get("proxy"),
            proxy_auth=options.get("proxy_auth"),
            trust_env=bool(options.get("trust_env", False)),
        )

    def session(self) -> aiohttp.ClientSession:
        """A new private session with these settings; close it when done.

        Example:
            ```python
            async with settings.session() as http:
                token = await flow.fetch_token(http)
            ```
        """
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, force_close=True),
            proxy=self.proxy,
            proxy_auth=self.proxy_auth,
            trust_env=self.trust_env,
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[_progress_trace()],
        )


class _Progress:
    """How far one request got: whether our trace hook saw it start, and send its headers."""

    __slots__ = ("sent", "tracked")

    def __init__(self) -> None:
        self.tracked = False
        self.sent = False


async def _on_request_start(
    _session: aiohttp.ClientSession, context: SimpleNamespace, _params: object
) -> None:
    progress = context.trace_request_ctx
    if isinstance(progress, _Progress):
        progress.tracked = True


async def _on_headers_sent(
    _session: aiohttp.ClientSession, context: SimpleNamespace, _params: object
) -> None:
    progress = context.trace_request_ctx
    if isinstance(progress, _Progress):
        progress.sent = True


_TRACE: list[aiohttp.TraceConfig] = []


def _progress_trace() -> aiohttp.TraceConfig:
    # One frozen TraceConfig serves every session; it holds no loop or state of its own.
    if not _TRACE:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(_on_request_start)
        trace.on_request_headers_sent.append(_on_headers_sent)
        trace.freeze()
        _TRACE.append(trace)
    return _TRACE[0]


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
    status: int,
    content_type: str,
    text: str,
    *,
    url: str,
    allow_empty: bool = False,
    retry_after: str | None = None,
    bearer: bool = False,
) -> Mapping[str, Any]:
    """Turn a raw OAuth endpoint answer into data, or raise the error it stands for.

    Only an OAuth error body (``{"error": ...}``) is a refusal of the credential; a 3xx,
    or a 4xx page without one (a proxy's, a firewall's), is not.

    Args:
        status: The HTTP status.
        content_type: The response's ``Content-Type``, lower-cased.
        text: The response body.
        url: The endpoint, for messages.
        allow_empty: Whether an empty 2xx body is a success (``revoke`` answers so).
        retry_after: The answer's ``Retry-After`` header, if any.
        bearer: Whether the request carried a bearer token (userinfo, identity URL): a bare
            401 or 403 then means the token was refused.

    Raises:
        OAuthError: A 4xx with an OAuth error body (the subclass says which); a bare 401 or
            403 to a bearer request (`InvalidTokenError`).
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
            retry_after_s=retry_after_s(retry_after),
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
    raise _error_for(status, content_type, text, url=url, bearer=bearer)


def _error_for(
    status: int, content_type: str, text: str, *, url: str, bearer: bool
) -> TokenRequestError:
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
    if status in (401, 403) and bearer:
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
    # Not a refusal of the credential: a proxy's or firewall's page, or the wrong host.
    return InvalidTokenResponseError(
        f"{url} answered HTTP {status} without an OAuth error body: a proxy or firewall on "
        f"the way may have answered, or login_url is not your Salesforce login, My Domain or "
        f"Experience Cloud site URL. Tried again after the cooldown.",
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
    connect_timeout_s: float | None = None,
    bearer: bool = False,
    **kwargs: Any,  # noqa: ANN401 - aiohttp's request options, passed through
) -> OAuthResponse:
    timeout = aiohttp.ClientTimeout(
        total=timeout_s or DEFAULT_REQUEST_TIMEOUT_S, connect=connect_timeout_s
    )
    progress = _Progress()
    try:
        async with AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(HttpSettings().session())
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
                trace_request_ctx=progress,
                # Inflated by read_capped, within its limit: a gzip bomb stays small.
                auto_decompress=False,
                **kwargs,
            ) as resp:
                raw = await read_capped(resp, limit_bytes=MAX_BODY_BYTES, inflate=True)
                received_at = datetime.now(UTC)
                status = resp.status
                content_type = resp.headers.get("Content-Type", "").lower()
                retry_after = resp.headers.get(hdrs.RETRY_AFTER)
    except TokenRequestError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError) as exc:
        # RuntimeError: a caller's session was closed under us ("Session is closed").
        sent = progress.sent if progress.tracked else not isinstance(exc, _NOT_SENT)
        kind = "timed out" if isinstance(exc, TimeoutError) else "failed"
        when = (
            "after it was sent: Salesforce may have received it" if sent else "before it was sent"
        )
        raise TokenEndpointConnectionError(
            f"The request to {url} {kind} {when} ({type(exc).__name__}: {printable(str(exc))}). If "
            f"it persists, check the network, proxy and TLS settings.",
            url=url,
            request_sent=sent,
        ) from exc
    text = raw.decode("utf-8", errors="replace")
    data = interpret(
        status,
        content_type,
        text,
        url=url,
        allow_empty=allow_empty,
        retry_after=retry_after,
        bearer=bearer,
    )
    return OAuthResponse(status, data, received_at)


async def post_form(
    session: aiohttp.ClientSession | None,
    url: str,
    form: Mapping[str, str],
    *,
    authorization: str | None = None,
    allow_empty: bool = False,
    timeout_s: float | None = None,
    connect_timeout_s: float | None = None,
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
        connect_timeout_s: Time limit of connecting (TLS included), within ``timeout_s``.

    Returns:
        The decoded answer.

    Raises:
        OAuthError: Salesforce refused the request.
        TokenEndpointUnavailableError: 5xx/408/429 or a maintenance page (transient).
        TokenEndpointConnectionError: No answer (transient); its ``request_sent`` says
            whether Salesforce may have received the request.
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
        connect_timeout_s=connect_timeout_s,
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
        bearer=True,
        timeout_s=timeout_s,
    )
