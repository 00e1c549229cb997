"""`BearerMiddleware`: signs requests to the org, and heals an expired session once.

An aiohttp client middleware (aiohttp >= 3.12) runs on every hop of a request, redirects
included. This one attaches ``Authorization: Bearer`` only when the hop goes to the origin
(scheme, host, port) of the token's ``instance_url``, so the token never follows a redirect
or an absolute URL to another host. When Salesforce answers that the session is invalid
(HTTP 401 ``INVALID_SESSION_ID``; Bulk API 1.0: HTTP 400 ``InvalidSessionId``), it
invalidates exactly the token that request carried, waits for the one shared refresh, and
sends the request once more. A second rejection goes back to the caller unchanged.
"""

from __future__ import annotations

import json

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from aiohttp.payload import Payload
from yarl import URL

from ._refresher import Refresher
from ._token import Token

__all__ = ["BearerMiddleware", "says_session_invalid"]

Origin = tuple[str, str | None, int | None]
"""(scheme, host, port): what the same-origin rule compares."""


def origin_tuple(url: URL) -> Origin:
    """The origin of ``url`` as a tuple: cheaper than building ``url.origin()`` per request.

    Example:
        ```python
        assert origin_tuple(URL("https://a.my.salesforce.com/x")) == (
            "https",
            "a.my.salesforce.com",
            443,
        )
        ```
    """
    return (url.scheme, url.host, url.port)


_BULK_V1 = "/services/async/"  # Bulk API 1.0, whose expired sessions are HTTP 400

# 401s with INVALID_SESSION_ID that a new token cannot fix (jsforce's skip list): refreshing
# on them would only burn logins.
_NOT_FIXED_BY_REFRESH = (
    "this session is not valid for use with the rest api",
    "connected app is not attached to agent",
    "blacktab users cannot perform api operations",
)


def says_session_invalid(status: int, path: str, body: bytes) -> bool:
    """Whether an API answer says the session expired in a way a new token fixes.

    True for HTTP 401 whose body carries ``INVALID_SESSION_ID`` (REST, Bulk 2.0), except the
    messages a refresh cannot fix ("This session is not valid for use with the REST API",
    ...), and for Bulk API 1.0's HTTP 400 ``InvalidSessionId``.

    Example:
        ```python
        body = b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
        assert says_session_invalid(401, "/services/data/v67.0/limits/", body)
        ```
    """
    if status == 400:
        return path.startswith(_BULK_V1) and b"InvalidSessionId" in body
    if status != 401 or b"INVALID_SESSION_ID" not in body:
        return False
    try:
        errors = json.loads(body)
    except ValueError:
        errors = None
    if isinstance(errors, list):
        messages = [
            str(e.get("message", "")).lower()
            for e in errors
            if isinstance(e, dict) and e.get("errorCode") == "INVALID_SESSION_ID"
        ]
    else:
        messages = [body.decode("utf-8", "replace").lower()]
    return any(not m.startswith(_NOT_FIXED_BY_REFRESH) for m in messages)


class BearerMiddleware:
    """The aiohttp client middleware behind `AsyncSession`, usable on any `ClientSession`.

    Args:
        refresher: Where tokens come from.

    Example:
        ```python
        refresher = Refresher(flow)
        async with (
            refresher,
            aiohttp.ClientSession(middlewares=(BearerMiddleware(refresher),)) as http,
        ):
            token = await refresher.get_token()
            async with http.get(token.instance_url + "/services/data/v67.0/limits/") as resp:
                print(await resp.json())
        ```
    """

    __slots__ = ("_origin", "_refresher")

    def __init__(self, refresher: Refresher) -> None:
        self._refresher = refresher
        self._origin: tuple[str, Origin] = ("", ("", None, None))

    def _origin_of(self, token: Token) -> Origin:
        # Parsed once per instance_url, not once per request.
        instance_url, origin = self._origin
        if instance_url != token.instance_url:
            origin = origin_tuple(URL(token.instance_url))
            self._origin = (token.instance_url, origin)
        return origin

    async def _token_for(self, target: Origin) -> Token | None:
        """The token to attach to a request to ``target``, or ``None`` for another origin."""
        known = self._refresher.token
        if known is not None and self._origin_of(known) != target:
            return None
        token = await self._refresher.get_token()
        return token if self._origin_of(token) == target else None

    async def _replacement(
        self, req: ClientRequest, resp: ClientResponse, rejected: Token
    ) -> Token | None:
        """After a rejection: the token to replay with, or ``None`` to return the answer."""
        refresher = self._refresher
        refresher.stats.unauthorized += 1
        if refresher.invalidate(rejected):
            refresher.stats.invalidations += 1
        body = req.body
        if isinstance(body, Payload) and body.consumed:
            # A stream cannot be sent twice: the caller gets the 401, the next call a new token.
            return None
        try:
            fresh = await refresher.get_token()
        except BaseException:
            resp.release()
            raise
        # If the org moved to another instance, the caller must resolve its URL again.
        return fresh if self._origin_of(fresh) == origin_tuple(req.url) else None

    async def __call__(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        token = await self._token_for(origin_tuple(req.url))
        if token is None:
            return await handler(req)
        req.headers[hdrs.AUTHORIZATION] = f"Bearer {token.access_token}"
        resp = await handler(req)
        path = req.url.path
        if not (resp.status == 401 or (resp.status == 400 and path.startswith(_BULK_V1))):
            return resp
        if not says_session_invalid(resp.status, path, await resp.read()):
            return resp
        fresh = await self._replacement(req, resp, token)
        if fresh is None:
            return resp
        resp.release()
        req.headers[hdrs.AUTHORIZATION] = f"Bearer {fresh.access_token}"
        return await handler(req)
