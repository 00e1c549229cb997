"""`BearerMiddleware`: signs requests to the org, and heals an expired session once.

An aiohttp client middleware (aiohttp >= 3.12) runs on every hop of a request, redirects
included. This one attaches ``Authorization: Bearer`` only when the hop goes to the origin
(scheme, host, port) of the token's ``instance_url``, so the token never follows a redirect
or an absolute URL to another host. When Salesforce answers that the session is invalid
(HTTP 401 ``INVALID_SESSION_ID``; Bulk API 1.0: HTTP 400 ``InvalidSessionId``), it
invalidates exactly the token that request carried, waits for the one shared refresh, and
sends the request once more. A second rejection goes back to the caller unchanged. A 401
to HEAD (which has no body) counts as an expired session. A request to an instance the org
has moved away from raises `InstanceChangedError` rather than go out unsigned.

The fast path (a fresh token, a 2xx answer) reads the token once, without awaiting, builds
the ``Bearer`` value once per token, and looks at neither the path nor the body.
"""

from __future__ import annotations

from contextvars import ContextVar

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from aiohttp.payload import Payload
from yarl import URL

from ._errors import InstanceChangedError
from ._limits import MAX_BODY_BYTES, loads_limited, read_kept
from ._refresher import Refresher
from ._token import Token

__all__ = ["REPLAYED", "BearerMiddleware", "says_session_invalid"]

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

REPLAYED: ContextVar[bool] = ContextVar("sfoauth_replayed", default=False)
"""True while AsyncSession sends a request for the second time (after the org moved): its
one replay is spent, so a 401 then goes back to the caller."""

# 401s with INVALID_SESSION_ID that a new token cannot fix (jsforce's skip list): refreshing
# on them would only burn logins.
_NOT_FIXED_BY_REFRESH = (
    "this session is not valid for use with the rest api",
    "connected app is not attached to agent",
    "blacktab users cannot perform api operations",
)


def says_session_invalid(status: int, path: str, body: bytes, *, method: str = "GET") -> bool:
    """Whether an API answer says the session expired in a way a new token fixes.

    True for HTTP 401 whose body carries ``INVALID_SESSION_ID`` (REST, Bulk 2.0), except the
    messages a refresh cannot fix ("This session is not valid for use with the REST API",
    ...); for any 401 to a HEAD request, which has no body to tell; and for Bulk API 1.0's
    HTTP 400 ``InvalidSessionId``.

    Example:
        ```python
        body = b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
        assert says_session_invalid(401, "/services/data/v67.0/limits/", body)
        ```
    """
    if status == 400:
        return path.startswith(_BULK_V1) and b"InvalidSessionId" in body
    if status != 401:
        return False
    if method == "HEAD":
        # A HEAD answer has no body: on the org's own origin, a 401 is the session.
        return True
    if b"INVALID_SESSION_ID" not in body:
        return False
    try:
        errors = loads_limited(body.decode("utf-8", "replace"))
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

    __slots__ = ("_bearer", "_origin", "_refresher")

    def __init__(self, refresher: Refresher) -> None:
        self._refresher = refresher
        self._origin: tuple[str, Origin] = ("", ("", None, None))
        self._bearer: tuple[str, str] = ("", "")

    def _origin_of(self, token: Token) -> Origin:
        # Parsed once per instance_url, not once per request.
        instance_url, origin = self._origin
        if instance_url != token.instance_url:
            origin = origin_tuple(URL(token.instance_url))
            self._origin = (token.instance_url, origin)
        return origin

    def _header(self, token: Token) -> str:
        # Built once per token, not once per request.
        access_token, header = self._bearer
        if access_token != token.access_token:
            header = f"Bearer {token.access_token}"
            self._bearer = (token.access_token, header)
        return header

    def _refuse_former(self, target: Origin, token: Token) -> None:
        """Raise if ``target`` is an instance the org has moved away from."""
        for former in self._refresher.former_instance_urls:
            if origin_tuple(URL(former)) == target:
                raise InstanceChangedError(
                    f"This request goes to {former}, the org's instance before a refresh "
                    f"moved it to {token.instance_url}; it is neither signed nor sent. Use "
                    f"relative paths (AsyncSession follows the move), or build URLs from the "
                    f"current token's instance_url.",
                    old_instance_url=former,
                    new_instance_url=token.instance_url,
                )

    async def _token_for(self, target: Origin) -> Token | None:
        """The token for a request to ``target``, or ``None``: not the org's origin."""
        known = self._refresher.token
        if known is None or self._origin_of(known) == target:
            # The first request of all learns the origin from the first token.
            known = await self._refresher.get_token()
            if self._origin_of(known) == target:
                return known
        self._refuse_former(target, known)
        return None

    async def _heal(
        self, req: ClientRequest, handler: ClientHandlerType, resp: ClientResponse, token: Token
    ) -> ClientResponse:
        """A 401 (or Bulk 1.0 400): refresh once for everybody and replay once, if it helps."""
        method = req.method
        body = b"" if method == "HEAD" else await read_kept(resp, limit_bytes=MAX_BODY_BYTES)
        if not says_session_invalid(resp.status, req.url.path, body, method=method):
            return resp
        refresher = self._refresher
        refresher.stats.unauthorized += 1
        if refresher.invalidate(token):
            refresher.stats.invalidations += 1
        payload = req.body
        if REPLAYED.get() or (isinstance(payload, Payload) and payload.consumed):
            # Replayed once already (AsyncSession followed a move), or a stream that cannot
            # be sent twice: the caller gets the 401, the next call a new token.
            return resp
        try:
            fresh = await refresher.get_token()
        except BaseException:
            resp.release()
            raise
        resp.release()
        if self._origin_of(fresh) != self._origin_of(token):
            raise InstanceChangedError(
                f"The refresh that followed this request's 401 moved the org from "
                f"{token.instance_url} to {fresh.instance_url}.",
                old_instance_url=token.instance_url,
                new_instance_url=fresh.instance_url,
            )
        req.headers[hdrs.AUTHORIZATION] = self._header(fresh)
        return await handler(req)

    async def __call__(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        url = req.url
        target = (url.scheme, url.host, url.port)
        token = self._refresher.fresh_token()
        # The fast path compares cached values by identity: the origin and the header were
        # built from this very token (its instance_url and access_token objects).
        instance_url, origin = self._origin
        if token is None or token.instance_url is not instance_url or origin != target:
            token = await self._token_for(target)
            if token is None:
                return await handler(req)
        access_token, header = self._bearer
        if token.access_token is not access_token:
            header = self._header(token)
        req.headers[hdrs.AUTHORIZATION] = header
        resp = await handler(req)
        status = resp.status
        if status == 401 or (status == 400 and url.path.startswith(_BULK_V1)):
            return await self._heal(req, handler, resp, token)
        return resp
