"""The clients under test, behind one small interface: open, one GET of limits, close.

Every client GETs ``/services/data/v67.0/limits/`` on the org's My Domain, reads the whole
body without parsing it, and reports whether the answer was a 200. Clients that manage
tokens log in with the client credentials grant on the My Domain URL, the one grant every
client here supports. Async clients run on the benchmark's event loop; the synchronous one
(simple-salesforce) runs in a pool of `THREADS` threads.

Connection pools: aiohttp's default (100) is enough. httpx keeps its defaults (100
connections, 20 kept alive): letting it keep all 50 alive made it 2-4 times slower here, as
httpcore's pool checks every idle connection on each request. requests gets a pool of 50
(its default 10 would open and drop connections under 50 threads; 50 measured ~25 % faster).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

import aiohttp

from sfoauth_async import AsyncSession, Token

from ._org import OrgInfo
from ._peer_patches import FAKE_DOMAIN, aiosalesforce_class, loopback_requests_session

THREADS = 50
LIMITS_PATH = "/services/data/v67.0/limits/"


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def expired(token: Token) -> Token:
    """The same token, as if it had been received three hours ago (2 h session)."""
    past = datetime.now(UTC) - timedelta(hours=3)
    return dataclasses.replace(token, received_at=past, expires_at=past + timedelta(hours=2))


class Client:
    """One client library, configured for 50 concurrent calls against the fake org."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    dist: ClassVar[str] = "aiohttp"
    refreshes: ClassVar[bool] = True
    """Whether it renews tokens at all (clients with a hand-set header do not)."""
    threaded: ClassVar[bool] = False

    def __init__(self, info: OrgInfo) -> None:
        self.info = info

    @classmethod
    def missing(cls) -> str | None:
        """The first module it needs that is not installed, else ``None``."""
        return next((m for m in cls.needs if importlib.util.find_spec(m) is None), None)

    @classmethod
    def label(cls) -> str:
        """Name and version, for tables."""
        return f"{cls.name} {_version(cls.dist)}"

    async def open(self) -> None:
        """Build the client (no request yet)."""

    async def close(self) -> None:
        """Release its connections."""

    async def warm(self) -> None:
        """Log in and make one call, so the client holds a working token."""
        if not await self.call():
            raise RuntimeError(f"{self.name}: the warm-up call failed")

    async def call(self) -> bool:
        """One GET of limits; ``True`` for a 200."""
        raise NotImplementedError

    def call_sync(self) -> bool:
        """The same, for threaded clients."""
        raise NotImplementedError


async def _aiohttp_token(http: aiohttp.ClientSession, info: OrgInfo) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": info.client_id,
        "client_secret": info.client_secret,
    }
    async with http.post(info.my_domain_url + "/services/oauth2/token", data=form) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"token request failed: {body}")
        token: str = body["access_token"]
        return token


class RawAiohttp(Client):
    """aiohttp with a token fetched once by hand, as a session-wide header. The baseline."""

    name = "raw aiohttp"
    refreshes = False

    async def open(self) -> None:
        async with aiohttp.ClientSession() as http:
            token = await _aiohttp_token(http, self.info)
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})
        self._url = self.info.limits_url

    async def close(self) -> None:
        await self._http.close()

    async def call(self) -> bool:
        async with self._http.get(self._url) as resp:
            await resp.read()
            return resp.status == 200


class AiohttpSingleFlight(Client):
    """aiohttp plus a hand-written single flight: the least a correct refresh takes.

    On a 401 for the token still current, the first caller starts one token request and
    every other caller awaits it; a 401 for an already replaced token just replays. A
    failed token request fails every waiter and is not retried.
    """

    name = "aiohttp + hand-written single flight"

    async def open(self) -> None:
        self._http = aiohttp.ClientSession()
        self._url = self.info.limits_url
        self._token = ""
        self._flight: asyncio.Future[str] | None = None

    async def close(self) -> None:
        await self._http.close()

    async def _fetch(self) -> str:
        try:
            self._token = await _aiohttp_token(self._http, self.info)
            return self._token
        finally:
            self._flight = None

    async def _renew(self, rejected: str) -> str:
        if self._token != rejected:
            return self._token
        if self._flight is None:
            self._flight = asyncio.ensure_future(self._fetch())
        return await asyncio.shield(self._flight)

    async def _get(self, token: str) -> int:
        async with self._http.get(self._url, headers={"Authorization": f"Bearer {token}"}) as r:
            await r.read()
            return r.status

    async def call(self) -> bool:
        token = self._token or await self._renew("")
        status = await self._get(token)
        if status == 401:
            status = await self._get(await self._renew(token))
        return status == 200


class Sfoauth(Client):
    """sfoauth_async's `AsyncSession`, default settings, with a path relative to the instance."""

    name = "sfoauth_async AsyncSession"
    dist = "sfoauth-async"

    def __init__(self, info: OrgInfo, token: Token | None = None) -> None:
        super().__init__(info)
        self._start_token = token

    async def open(self) -> None:
        self.session = AsyncSession(self.info.client_credentials_flow(), token=self._start_token)
        await self.session.__aenter__()

    async def close(self) -> None:
        await self.session.close()

    async def call(self) -> bool:
        async with self.session.get(LIMITS_PATH) as resp:
            await resp.read()
            return resp.status == 200


class SfoauthKnownExpiry(Sfoauth):
    """`AsyncSession` started with a token whose ``expires_at`` is past: no 401 needed."""

    name = "sfoauth_async, expiry known client-side"

    async def open(self) -> None:
        async with AsyncSession(self.info.client_credentials_flow()) as first:
            token = await first.get_token()
        self._start_token = expired(token)
        await super().open()

    async def warm(self) -> None:
        """Nothing: a call now would refresh the expired token before the storm."""


class Aiosalesforce(Client):
    """aiosalesforce with its `ClientCredentialsFlow` (no expiry configured: 401-driven)."""

    name = "aiosalesforce"
    needs = ("aiosalesforce", "httpx")
    dist = "aiosalesforce"

    async def open(self) -> None:
        import httpx  # noqa: PLC0415 - optional peer
        from aiosalesforce import ClientCredentialsFlow  # noqa: PLC0415

        self._http = httpx.AsyncClient()
        self.sf = aiosalesforce_class()(
            httpx_client=self._http,
            base_url=self.info.my_domain_url,
            auth=ClientCredentialsFlow(
                client_id=self.info.client_id, client_secret=self.info.client_secret
            ),
            version="67.0",
        )
        self._url = self.info.limits_url

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self) -> bool:
        # Salesforce.request raises on any non-2xx answer (after its own 401 handling).
        resp = await self.sf.request("GET", self._url)
        return bool(resp.status_code == 200)


class PlainHttpx(Client):
    """httpx with a token fetched once by hand, as a client-wide header."""

    name = "plain httpx"
    needs = ("httpx",)
    dist = "httpx"
    refreshes = False

    async def open(self) -> None:
        import httpx  # noqa: PLC0415 - optional peer

        async with aiohttp.ClientSession() as http:
            token = await _aiohttp_token(http, self.info)
        self._http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        self._url = self.info.limits_url

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self) -> bool:
        resp = await self._http.get(self._url)
        return bool(resp.status_code == 200)


class SimpleSalesforce(Client):
    """simple-salesforce (sync, `requests`), one shared `Salesforce` object, 50 threads."""

    name = "simple-salesforce, 50 threads"
    needs = ("simple_salesforce", "requests")
    dist = "simple-salesforce"
    threaded = True

    async def open(self) -> None:
        from simple_salesforce import Salesforce  # noqa: PLC0415 - optional peer

        def login() -> Any:
            session = loopback_requests_session(self.info.my_domain_url, THREADS)
            return Salesforce(
                consumer_key=self.info.client_id,
                consumer_secret=self.info.client_secret,
                domain=FAKE_DOMAIN,
                session=session,
                version="67.0",
            )

        # Its constructor logs in (a blocking request): keep it off the event loop.
        self.sf = await asyncio.to_thread(login)

    async def close(self) -> None:
        self.sf.session.close()

    def call_sync(self) -> bool:
        # _call_salesforce is what every REST method of simple-salesforce goes through, 401
        # handling included; calling it directly skips only the JSON decoding of limits().
        resp = self.sf._call_salesforce("GET", self.sf.base_url + "limits/")
        return bool(resp.status_code == 200)

    async def call(self) -> bool:
        return await asyncio.to_thread(self.call_sync)


STEADY: tuple[type[Client], ...] = (
    RawAiohttp,
    Sfoauth,
    AiohttpSingleFlight,
    Aiosalesforce,
    PlainHttpx,
    SimpleSalesforce,
)
"""Scenario 1's clients, baseline first."""

STORM: tuple[type[Client], ...] = (
    Sfoauth,
    SfoauthKnownExpiry,
    AiohttpSingleFlight,
    Aiosalesforce,
    SimpleSalesforce,
    RawAiohttp,
    PlainHttpx,
)
"""Scenarios 2 and 3's clients (those that never refresh are listed as not applicable)."""

ClientFactory = Callable[[OrgInfo], Client]
