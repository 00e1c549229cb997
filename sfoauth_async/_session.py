"""`AsyncSession`: aiohttp for Salesforce, with tokens that take care of themselves."""

from __future__ import annotations

import re
from collections.abc import Coroutine, Generator, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from ._api_middleware import APIMiddleware
from ._collections import (
    RecordResult,
    connection_limit,
    create_records,
    delete_records,
    update_records,
    upsert_records,
)
from ._endpoint import HttpSettings
from ._errors import ConfigurationError, InstanceChangedError
from ._flow import Flow
from ._middleware import REPLAYED, BearerMiddleware
from ._query import Query
from ._refresher import OnNewToken, Refresher, RefresherStats
from ._retry import RetryPolicy
from ._slots import Slots
from ._store import TokenStore
from ._token import DEFAULT_SESSION_TIMEOUT, Token
from ._usage import LIMIT_INFO, APIUsage

__all__ = ["AsyncSession"]

_AIOHTTP_LIMIT = 100  # aiohttp.TCPConnector's default limit of connections

_VERSION = re.compile(r"\d+\.\d+")
# Only a scheme at the very start makes a URL absolute: "query/?q=... 'https://a.com'" is a
# path, whatever its query holds.
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _relative_path(url: str | URL) -> str | None:
    """The path of a relative URL, or ``None`` for an absolute one."""
    if isinstance(url, URL):
        return None if url.absolute else str(url)
    if "://" not in url or url[:1] == "/":
        return url
    return None if _ABSOLUTE.match(url) else url


class _RequestContext(Coroutine[Any, Any, aiohttp.ClientResponse]):
    """What the request methods return: await it, use it with ``async with``, or make a task.

    Like aiohttp's own request context manager, it is a coroutine, so ``asyncio.gather``
    and ``asyncio.create_task`` take it as it is.
    """

    __slots__ = ("_coro", "_resp")

    def __init__(self, session: AsyncSession, method: str, url: str | URL, options: Any) -> None:  # noqa: ANN401 - aiohttp's request options
        self._resp: aiohttp.ClientResponse | None = None
        # The request records its response here, for __aexit__.
        self._coro = session._request(method, url, options, self)

    def send(self, value: Any) -> Any:  # noqa: ANN401 - the coroutine protocol
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:  # noqa: ANN401 - the coroutine protocol
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, aiohttp.ClientResponse]:
        return self._coro.__await__()

    def __aenter__(self) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        # The request itself, not a coroutine awaiting it: one step less on every request
        # (a step costs at each suspension of the request, not once).
        return self._coro

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._resp is not None
        self._resp.release()
        await self._resp.wait_for_close()


class AsyncSession:
    """An aiohttp session for one Salesforce credential that keeps its token fresh.

    It speaks aiohttp: ``async with sf.get(path) as resp``, ``resp = await sf.post(path,
    json=...)``, ``sf.request(method, url)``. A path starting with ``/`` goes to the current
    token's ``instance_url``; any other relative path goes under
    ``/services/data/v<api_version>/``; absolute URLs are used as given.

    The bearer token is attached only to requests (and redirect hops) to the origin of the
    token's ``instance_url``, never to other hosts and never to token requests. Tokens are
    refreshed in the background before they expire; a 401 ``INVALID_SESSION_ID`` refreshes
    once for every task that saw it and replays the request once. A request body that cannot
    be sent twice (an async generator, a consumed stream) is not replayed: that call gets the
    401 and the next one a fresh token. A second 401 is returned as it is.

    Sessions on the same flow object share one `Refresher` (one token, one refresh).

    Args:
        flow: The grant to log in with, or a `Refresher` to share explicitly.
        token: A token to start with (e.g. from `AuthorizationCodeFlow.exchange`). With a
            ``store``, it is saved there first unless the store holds a newer one.
        store: A `TokenStore` to share the token and its refreshes across processes.
        store_key: The store key; default `Flow.store_key`.
        session_timeout: The org's session timeout (Setup > Session Settings, or the
            connected app's policy): tokens are refreshed before it runs out. ``None`` if
            unknown: then only a 401 triggers a refresh.
        refresh_ahead: How long before expiry to refresh in the background; default a
            quarter of the lifetime, at most 5 minutes.
        api_version: The REST API version of relative paths, e.g. ``"67.0"``.
        on_new_token: Awaited with each new token before it is used, e.g. to persist it.
        retry: The `RetryPolicy` of token requests.
        introspect_expiry: Learn each new token's real expiry from
            ``/services/oauth2/introspect`` (needs the client secret; see `Refresher`).
        raise_for_status: ``True`` raises `APIError` (typed by Salesforce's ``errorCode``)
            for every answer with status >= 400, after any 401 healing and API retries.
            Token requests never raise it (they raise their own typed errors).
        api_usage_limit: A fraction of the org's daily API allocation (e.g. ``0.9``): once
            the latest ``Sforce-Limit-Info`` reaches it, calls to the org fail with
            `APIUsageLimitError` before anything is sent. ``None``: no limit.
        api_retry: A `RetryPolicy` for API calls Salesforce did not carry out (its
            ``attempts``, ``total_timeout_s``, ``wait_initial_s`` and ``wait_max_s``);
            ``None``: no API retries. See ``docs/etl.md`` for what is retried.
        **kwargs: Passed to `aiohttp.ClientSession` (``timeout``, ``connector``,
            ``trust_env``, ``middlewares`` to run before ours, ...).

    Example:
        ```python
        async with AsyncSession(flow, session_timeout=timedelta(hours=2)) as sf:
            async with sf.get("query/", params={"q": "SELECT Id FROM Account"}) as resp:
                rows = (await resp.json())["records"]
            resp = await sf.post("sobjects/Account/", json={"Name": "Acme"})
        ```
    """

    def __init__(
        self,
        flow: Flow | Refresher,
        *,
        token: Token | None = None,
        store: TokenStore | None = None,
        store_key: str | None = None,
        session_timeout: timedelta | None = DEFAULT_SESSION_TIMEOUT,
        refresh_ahead: timedelta | None = None,
        api_version: str = "67.0",
        on_new_token: OnNewToken | None = None,
        retry: RetryPolicy | None = None,
        introspect_expiry: bool = False,
        raise_for_status: bool = False,
        api_usage_limit: float | None = None,
        api_retry: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        **kwargs: Any,  # noqa: ANN401 - aiohttp.ClientSession's options, passed through
    ) -> None:
        if not _VERSION.fullmatch(str(api_version)):
            raise ConfigurationError(f"api_version must look like '67.0', got {api_version!r}.")
        if "base_url" in kwargs:
            raise ConfigurationError(
                "AsyncSession resolves paths against the token's instance_url, which can "
                "change on refresh; do not pass base_url."
            )
        if isinstance(flow, Refresher):
            options: list[object] = [store, store_key, refresh_ahead, on_new_token, retry]
            customised = session_timeout != DEFAULT_SESSION_TIMEOUT or introspect_expiry
            if customised or any(o is not None for o in options):
                raise ConfigurationError(
                    "Given a Refresher, configure the store, timeouts, hook and retry policy "
                    "on the Refresher itself."
                )
            self._refresher = flow
            if token is not None:
                flow.offer(token)
        else:
            self._refresher = Refresher.shared(
                flow,
                token=token,
                store=store,
                store_key=store_key,
                session_timeout=session_timeout,
                refresh_ahead=refresh_ahead,
                on_new_token=on_new_token,
                retry=retry,
                introspect_expiry=introspect_expiry,
                http=HttpSettings.from_session_options(kwargs),
            )
        self._api_version = api_version
        # raise_for_status is ours, not aiohttp's: aiohttp's would also see token requests.
        bearer = BearerMiddleware(self._refresher)
        self._api = APIMiddleware(
            self._refresher,
            raise_for_status=raise_for_status,
            api_usage_limit=api_usage_limit,
            api_retry=api_retry,
            inner=bearer,
        )
        middlewares = tuple(kwargs.pop("middlewares", ()))
        # Only one of ours goes into aiohttp's chain (each step costs on every request):
        # the API middleware wrapping the bearer when it acts before sending; else the
        # bearer alone, and each answer goes to the API middleware from _request.
        self._api_after = None if self._api.acts_before_sending else self._api
        ours = bearer if self._api_after is not None else self._api
        self._middlewares = (*middlewares, ours)
        self._kwargs = kwargs
        if max_concurrency is None:
            # The connections the pool may open to the one host every call goes to.
            connector = kwargs.get("connector")
            limits = [connector.limit, connector.limit_per_host] if connector else [_AIOHTTP_LIMIT]
            max_concurrency = min((n for n in limits if n), default=None)
        elif max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}.")
        self._max_concurrency = max_concurrency
        self._slots = Slots(max_concurrency) if max_concurrency else None
        self._base = ("", "", "")  # instance_url, and the two bases of relative paths
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        # A token given with a store is shared with the fleet before its first use (the
        # first request or get_token).
        self._to_share = token if store is not None else None
        self._refresher.attach()

    # -- tokens -------------------------------------------------------------------------

    @property
    def refresher(self) -> Refresher:
        """The `Refresher` behind this session (shared by sessions on the same flow).

        Example:
            ```python
            print(sf.refresher.stats)
            ```
        """
        return self._refresher

    @property
    def token(self) -> Token | None:
        """The current token, or ``None`` before the first one.

        Example:
            ```python
            print(sf.token.instance_url if sf.token else "not logged in yet")
            ```
        """
        return self._refresher.token

    async def get_token(self) -> Token:
        """A valid token, refreshing first if needed (see `Refresher.get_token`).

        Example:
            ```python
            token = await sf.get_token()
            ```
        """
        if self._to_share is not None:
            await self._share_given_token()
        return await self._refresher.get_token()

    async def _share_given_token(self) -> None:
        token, self._to_share = self._to_share, None
        assert token is not None
        await self._refresher.put_token(token)

    @property
    def stats(self) -> RefresherStats:
        """Counters of token requests, refreshes, waits and 401s (shared with the refresher).

        Example:
            ```python
            print(sf.stats.token_requests, sf.stats.unauthorized)
            ```
        """
        return self._refresher.stats

    @property
    def api_version(self) -> str:
        """The REST API version relative paths use, e.g. ``"67.0"``.

        Example:
            ```python
            print(f"/services/data/v{sf.api_version}/")
            ```
        """
        return self._api_version

    @property
    def api_usage(self) -> APIUsage | None:
        """The org's API usage from the latest ``Sforce-Limit-Info``; ``None`` before any.

        Example:
            ```python
            if sf.api_usage is not None and sf.api_usage.fraction > 0.5:
                print("half of the org's daily API calls are gone:", sf.api_usage)
            ```
        """
        return self._api.usage

    # -- HTTP ---------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """The underlying `aiohttp.ClientSession` (with the bearer middleware installed).

        Raises:
            RuntimeError: The session is closed.

        Example:
            ```python
            async with sf.http.ws_connect(url) as ws:
                ...
            ```
        """
        if self._closed:
            raise RuntimeError("This AsyncSession is closed.")
        if self._http is None:
            self._http = aiohttp.ClientSession(middlewares=self._middlewares, **self._kwargs)
        return self._http

    @property
    def closed(self) -> bool:
        """Whether `close` was called.

        Example:
            ```python
            assert not sf.closed
            ```
        """
        return self._closed

    def _resolved(self, token: Token, path: str) -> str:
        base = self._base
        if base[0] is not token.instance_url:
            root = token.instance_url
            base = self._base = (root, root, f"{root}/services/data/v{self._api_version}/")
        return base[1] + path if path[:1] == "/" else base[2] + path

    async def _to_instance(self, path: str) -> str:
        refresher = self._refresher
        token = refresher.fresh_token() or await refresher.get_token()
        return self._resolved(token, path)

    async def _request(  # noqa: PLR0912 - the per-request path, inlined on purpose
        self,
        method: str,
        url: str | URL,
        options: dict[str, Any],
        context: _RequestContext | None = None,
    ) -> aiohttp.ClientResponse:
        http = self._http or self.http
        if self._to_share is not None:
            await self._share_given_token()
        # The common case inline: a path without "://" is relative.
        path = url if type(url) is str and "://" not in url else _relative_path(url)
        slots = self._slots
        # Taken before a bearer is attached: requests beyond the pool's connections wait
        # here, tokenless, instead of in aiohttp's queue with a token that may expire.
        if slots is not None and not slots.take_now():
            await slots.take()
        try:
            target: str | URL = url
            if path is not None:
                token = self._refresher.fresh_token()
                base = self._base
                if token is not None and token.instance_url is base[0]:
                    target = (base[1] if path[:1] == "/" else base[2]) + path
                else:
                    target = await self._to_instance(path)
            try:
                resp = await http.request(method, target, **options)
            except InstanceChangedError:
                if path is None:
                    raise
                # The org moved while this request was on its way to the old instance: the
                # path goes to the new one, once (that is its one replay).
                replay = REPLAYED.set(True)
                try:
                    resp = await http.request(method, await self._to_instance(path), **options)
                finally:
                    REPLAYED.reset(replay)
        finally:
            if slots is not None:
                slots.give()
        if context is not None:
            context._resp = resp
        api = self._api_after
        # The API middleware sees the answer only when it has something to see in it.
        if api is not None and (resp.status >= 400 or resp.headers.get(LIMIT_INFO) is not None):
            raising = api.answered(resp)
            if raising is not None:
                await raising
        return resp

    def request(
        self,
        method: str,
        url: str | URL,
        **kwargs: Any,  # noqa: ANN401 - aiohttp's request options
    ) -> _RequestContext:
        """Send a request, like `aiohttp.ClientSession.request`.

        Args:
            method: The HTTP method.
            url: ``/services/...`` (on the instance), ``sobjects/Account/`` (under the REST
                API version), or an absolute URL.
            **kwargs: aiohttp's request options (``params``, ``json``, ``data``,
                ``headers``, ``timeout``, ...).

        Returns:
            Await it for the response, or use it with ``async with``.

        Example:
            ```python
            async with sf.request("GET", "limits/") as resp:
                print(resp.headers["Sforce-Limit-Info"])
            ```
        """
        return _RequestContext(self, method, url, kwargs)

    def get(self, url: str | URL, **kwargs: Any) -> _RequestContext:  # noqa: ANN401
        """Send a GET; see `request`.

        Example:
            ```python
            async with sf.get("sobjects/Account/001xx000003DGb2AAG") as resp:
                account = await resp.json()
            ```
        """
        return _RequestContext(self, "GET", url, kwargs)

    def post(self, url: str | URL, **kwargs: Any) -> _RequestContext:  # noqa: ANN401
        """Send a POST; see `request`.

        Example:
            ```python
            resp = await sf.post("sobjects/Account/", json={"Name": "Acme"})
            ```
        """
        return _RequestContext(self, "POST", url, kwargs)

    def put(self, url: str | URL, **kwargs: Any) -> _RequestContext:  # noqa: ANN401
        """Send a PUT; see `request`.

        Example:
            ```python
            resp = await sf.put(upload_url, data=csv_bytes)
            ```
        """
        return _RequestContext(self, "PUT", url, kwargs)

    def patch(self, url: str | URL, **kwargs: Any) -> _RequestContext:  # noqa: ANN401
        """Send a PATCH; see `request`.

        Example:
            ```python
            resp = await sf.patch("sobjects/Account/001xx000003DGb2AAG", json={"Name": "A"})
            ```
        """
        return _RequestContext(self, "PATCH", url, kwargs)

    def delete(self, url: str | URL, **kwargs: Any) -> _RequestContext:  # noqa: ANN401
        """Send a DELETE; see `request`.

        Example:
            ```python
            resp = await sf.delete("sobjects/Account/001xx000003DGb2AAG")
            ```
        """
        return _RequestContext(self, "DELETE", url, kwargs)

    def head(self, url: str | URL, **kwargs: Any) -> _RequestContext:  # noqa: ANN401
        """Send a HEAD; see `request`.

        Example:
            ```python
            resp = await sf.head("limits/")
            ```
        """
        return _RequestContext(self, "HEAD", url, kwargs)

    # -- queries and sObject Collections ------------------------------------------------

    def query(
        self, soql: str, *, include_deleted: bool = False, batch_size: int | None = None
    ) -> Query:
        """The records of a SOQL query, as an async iterator that follows every page.

        One page (``batch_size`` records, 2,000 by default) is held at a time, and
        ``total_size`` is known once the first page arrived. See `Query`.

        Args:
            soql: The query.
            include_deleted: Run it as ``queryAll``: deleted and archived records too.
            batch_size: Records per page, 200 to 2,000 (``Sforce-Query-Options``); Salesforce
                may answer with fewer.

        Raises:
            ConfigurationError: ``batch_size`` is out of range (raised at once).

        Example:
            ```python
            async for account in sf.query("SELECT Id, Name FROM Account", batch_size=500):
                print(account["Name"])
            ```
        """
        return Query(self, soql, include_deleted=include_deleted, batch_size=batch_size)

    async def query_all(
        self, soql: str, *, include_deleted: bool = False, batch_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Every record of a SOQL query, as a list; see `query`.

        Raises:
            APIError: Salesforce refused a page.

        Example:
            ```python
            contacts = await sf.query_all("SELECT Id, Email FROM Contact")
            ```
        """
        query = self.query(soql, include_deleted=include_deleted, batch_size=batch_size)
        return [record async for record in query]

    async def create_records(
        self, sobject: str, records: Iterable[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Create records with sObject Collections, 200 per call, calls run concurrently.

        Args:
            sobject: The sObject type, e.g. ``"Account"``.
            records: Field values per record (an ``attributes`` key is replaced).
            all_or_none: Salesforce's ``allOrNone``, per call of 200 records.

        Returns:
            One `RecordResult` per input record, in input order.

        Raises:
            ConfigurationError: A record is not a mapping (nothing is sent).
            APIError: A whole call failed; ``exc.results`` holds what finished.

        Example:
            ```python
            results = await sf.create_records("Account", [{"Name": "Acme"}, {"Name": "Beta"}])
            new_ids = [r.id for r in results if r.success]
            ```
        """
        return await create_records(
            self, sobject, records, all_or_none=all_or_none, max_concurrency=self._concurrency()
        )

    async def update_records(
        self, sobject: str, records: Iterable[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Update records (each with its ``Id``) with sObject Collections; see `create_records`.

        Example:
            ```python
            results = await sf.update_records("Account", [{"Id": account_id, "Rating": "Hot"}])
            ```
        """
        return await update_records(
            self, sobject, records, all_or_none=all_or_none, max_concurrency=self._concurrency()
        )

    async def upsert_records(
        self,
        sobject: str,
        external_id_field: str,
        records: Iterable[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[RecordResult]:
        """Create or update records by an external id field; see `create_records`.

        Each `RecordResult` says in ``created`` whether its record was new.

        Example:
            ```python
            rows = [{"External_Id__c": "A-1", "Name": "Acme"}]
            results = await sf.upsert_records("Account", "External_Id__c", rows)
            ```
        """
        return await upsert_records(
            self,
            sobject,
            external_id_field,
            records,
            all_or_none=all_or_none,
            max_concurrency=self._concurrency(),
        )

    async def delete_records(
        self, ids: Iterable[str], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Delete records by id with sObject Collections, 200 ids per call; see `create_records`.

        Example:
            ```python
            results = await sf.delete_records([r.id for r in created if r.id])
            ```
        """
        return await delete_records(
            self, ids, all_or_none=all_or_none, max_concurrency=self._concurrency()
        )

    def _concurrency(self) -> int:
        # The collections' calls in flight: no more than the session lets through at once.
        return self._max_concurrency or connection_limit(self.http)

    # -- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """Close the session; the last session of a refresher also cancels its refresh.

        Example:
            ```python
            sf = AsyncSession(flow)
            try:
                ...
            finally:
                await sf.close()
            ```
        """
        if self._closed:
            return
        self._closed = True
        http, self._http = self._http, None
        await self._refresher.detach()
        if http is not None:
            await http.close()

    async def __aenter__(self) -> Self:
        _ = self.http
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AsyncSession {state} {self._refresher!r}>"
