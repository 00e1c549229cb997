"""`APIMiddleware`: what `AsyncSession` does to every API call besides signing it.

It sits outside `BearerMiddleware` (``middlewares=(*yours, APIMiddleware, BearerMiddleware)``),
so it sees each answer after the 401 healing, and every retry it sends goes through the
bearer middleware again, signed with the token current at that moment. For requests to the
token's instance origin it:

1. refuses to send once the session's ``api_usage_limit`` is reached (`APIUsageLimitError`);
2. sends, and with an ``api_retry`` policy sends again what Salesforce did not carry out
   (see ``_api_retry``), each attempt checked against the budget first;
3. records ``Sforce-Limit-Info`` of every answer (`UsageTracker`).

For every request, with ``raise_for_status=True``, an error answer becomes an `APIError`.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse
from yarl import URL

from ._api_errors import api_error_from_response
from ._api_retry import Retryable, api_retrying, retryable_answer
from ._errors import ConfigurationError
from ._middleware import Origin, origin_tuple
from ._refresher import Refresher
from ._retry import RetryPolicy
from ._usage import LIMIT_INFO, APIUsage, UsageTracker

__all__ = ["APIMiddleware"]


class APIMiddleware:
    """Usage tracking, the usage budget, API retries and ``raise_for_status``, as middleware.

    Args:
        refresher: Tells which origin is the org's (the current token's ``instance_url``).
        raise_for_status: Turn error answers (status >= 400) into `APIError`.
        api_usage_limit: Refuse calls at this fraction of the daily allocation, or ``None``.
        api_retry: Retry what Salesforce did not carry out, or ``None`` for no retries.
        inner: A middleware to run inside this one for every attempt (the bearer
            middleware), as if it came next in ``middlewares``.

    Example:
        ```python
        api = APIMiddleware(refresher, raise_for_status=True, api_retry=RetryPolicy())
        http = aiohttp.ClientSession(middlewares=(api, BearerMiddleware(refresher)))
        ```
    """

    __slots__ = ("_inner", "_origin", "_raise_for_status", "_refresher", "_retry", "_usage")

    def __init__(
        self,
        refresher: Refresher,
        *,
        raise_for_status: bool = False,
        api_usage_limit: float | None = None,
        api_retry: RetryPolicy | None = None,
        inner: ClientMiddlewareType | None = None,
    ) -> None:
        if not isinstance(raise_for_status, bool):
            # aiohttp's own hook would also run on the token requests that borrow the session.
            raise ConfigurationError(
                f"raise_for_status must be True or False, got {raise_for_status!r}; for a "
                f"check of your own, add a client middleware (middlewares=...)."
            )
        if api_retry is not None and not isinstance(api_retry, RetryPolicy):
            raise ConfigurationError(f"api_retry must be a RetryPolicy, got {api_retry!r}.")
        self._refresher = refresher
        self._raise_for_status = raise_for_status
        self._usage = UsageTracker(limit=api_usage_limit)
        self._retry = api_retry
        self._origin: tuple[str, Origin] = ("", ("", None, None))
        # The middleware to run inside this one (AsyncSession's bearer middleware), called
        # directly: one middleware in aiohttp's chain instead of two saves a closure and a
        # coroutine per request.
        self._inner = inner

    @property
    def usage(self) -> APIUsage | None:
        """The latest API usage the org reported, or ``None`` before the first answer.

        Example:
            ```python
            print(api.usage)
            ```
        """
        return self._usage.latest

    async def _to_org(self, url: URL) -> bool:
        # Like BearerMiddleware, a first request to an absolute URL fetches the token that
        # tells which origin is the org's.
        token = self._refresher.token or await self._refresher.get_token()
        instance_url, origin = self._origin
        if instance_url != token.instance_url:
            origin = origin_tuple(URL(token.instance_url))
            self._origin = (token.instance_url, origin)
        return origin == origin_tuple(url)

    async def _next(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        inner = self._inner
        return await (handler(req) if inner is None else inner(req, handler))

    async def _send(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """One attempt: the budget check, the call, the usage it reports."""
        self._usage.check(req)
        resp = await self._next(req, handler)
        self._usage.observe(resp.headers.get(LIMIT_INFO))
        return resp

    async def _send_retrying(
        self, req: ClientRequest, handler: ClientHandlerType, policy: RetryPolicy
    ) -> ClientResponse:
        async def attempt() -> ClientResponse:
            resp = await self._send(req, handler)
            reason = await retryable_answer(req, resp)
            if reason is not None:
                raise Retryable(resp, reason)
            return resp

        try:
            return await api_retrying(policy, req)(attempt)
        except Retryable as last:
            # Out of attempts or time, or the body cannot be sent again: the answer stands.
            return last.response

    def _is_org(self, url: URL) -> bool:
        """Whether ``url`` goes to the org, as far as the current token tells (no await)."""
        token = self._refresher.token
        if token is None:
            return False
        instance_url, origin = self._origin
        if instance_url != token.instance_url:
            origin = origin_tuple(URL(token.instance_url))
            self._origin = (token.instance_url, origin)
        return origin == (url.scheme, url.host, url.port)

    @property
    def acts_before_sending(self) -> bool:
        """Whether it has work before a request is sent (a usage limit, API retries).

        Without, `AsyncSession` leaves it out of aiohttp's chain and gives it each answer
        itself (`answered`): one step less on every request.

        Example:
            ```python
            assert not APIMiddleware(refresher).acts_before_sending
            ```
        """
        return self._retry is not None or self._usage.limit is not None

    def answered(self, resp: ClientResponse) -> Awaitable[None] | None:
        """Take one final answer into account: its reported usage, ``raise_for_status``.

        Synchronous on the way of every answer; for an error answer under
        ``raise_for_status`` it returns what to await, which raises the `APIError`.

        Example:
            ```python
            raising = api.answered(resp)
            if raising is not None:
                await raising
            ```
        """
        info = resp.headers.get(LIMIT_INFO)
        if info is not None and self._is_org(resp.url):
            self._usage.observe(info)
        if self._raise_for_status and resp.status >= 400:
            return self._raise_for(resp)
        return None

    async def _raise_for(self, resp: ClientResponse) -> None:
        try:
            exc = await api_error_from_response(resp)
        finally:
            resp.release()
        raise exc

    async def __call__(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if not self.acts_before_sending:
            inner = self._inner
            resp = await (handler(req) if inner is None else inner(req, handler))
            info = resp.headers.get(LIMIT_INFO)
            if info is not None and self._is_org(req.url):
                self._usage.observe(info)
        elif not await self._to_org(req.url):
            resp = await self._next(req, handler)
        elif self._retry is None:
            resp = await self._send(req, handler)
        else:
            resp = await self._send_retrying(req, handler, self._retry)
        if self._raise_for_status and resp.status >= 400:
            await self._raise_for(resp)
        return resp
