"""AsyncSession under real traffic (issue 8: items 1-8, 20, 22), against the fake org.

Instance moves, requests queued for a connection, URLs whose query holds "://", HEAD, the
token endpoint's Retry-After, wall-clock steps, proxy pages at the token endpoint, capped
401 bodies, the very first request going elsewhere, and proxy settings reaching token
requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sfoauth_async import (
    AsyncSession,
    InstanceChangedError,
    InvalidTokenResponseError,
    RetryPolicy,
    TokenEndpointConnectionError,
    TokenEndpointUnavailableError,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

FAST = RetryPolicy(
    attempts=3, total_timeout_s=10.0, wait_initial_s=0.001, wait_max_s=0.002, cooldown_s=0.0
)


# -- item 1: the org moves to another instance -------------------------------------------------


async def test_a_relative_request_follows_the_org_to_its_new_instance(
    fake_org: FakeSalesforceOrg,
) -> None:
    """A 401 whose refresh names a new instance: the path is replayed there, once."""
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        assert (await sf.get("limits/")).status == 200
        new = await fake_org.move_instance()
        resp = await sf.get("limits/")
        assert resp.status == 200
        assert str(resp.url).startswith(new + "/services/data/v67.0/limits")
        assert sf.token is not None
        assert sf.token.instance_url == new
    assert fake_org.stats.token_requests_total == 2
    assert fake_org.stats.unauthorized == 1


async def test_an_absolute_url_of_the_old_instance_is_refused_not_sent(
    fake_org: FakeSalesforceOrg,
) -> None:
    """After a move, an absolute URL of the old instance raises; nothing goes out unsigned."""
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        old = fake_org.instance_url
        assert (await sf.get("limits/")).status == 200
        new = await fake_org.move_instance()
        assert (await sf.get("limits/")).status == 200  # learns the new instance
        sent = fake_org.stats.api_requests
        with pytest.raises(InstanceChangedError) as caught:
            await sf.get(old + "/services/data/v67.0/limits/")
        assert (caught.value.old_instance_url, caught.value.new_instance_url) == (old, new)
        assert fake_org.stats.api_requests == sent


async def test_the_replay_after_a_move_is_the_only_one(fake_org: FakeSalesforceOrg) -> None:
    """A second 401 on the new instance goes back to the caller: one replay in all."""
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        assert (await sf.get("limits/")).status == 200
        await fake_org.move_instance()
        fake_org.faults.api.push(
            Fault.delay(0),  # the first request, to the old instance: the org's own 401
            Fault.json(401, [{"message": "Session expired", "errorCode": "INVALID_SESSION_ID"}]),
        )
        # The replay, to the new instance, meets the pushed 401: it goes back to the caller.
        assert (await sf.get("limits/")).status == 401
    assert fake_org.stats.token_requests_total == 2


# -- item 2: requests waiting for a connection carry no token ------------------------------------


@pytest.mark.stress
@pytest.mark.parametrize("limit", [100, 10])
async def test_requests_queued_for_a_connection_do_not_hold_a_dying_token(
    fake_org: FakeSalesforceOrg, limit: int
) -> None:
    """5,000 tasks, sessions ended mid-run: 401s and extra calls stay within the pool size."""
    requests = 5000
    connector = aiohttp.TCPConnector(limit=limit)
    async with AsyncSession(fake_org.client_credentials_flow(), connector=connector) as sf:
        await sf.get_token()

        async def expire_midway() -> None:
            while fake_org.stats.api_requests < requests // 2:
                await fake_org.stats.wait_changed()
            fake_org.expire_all_sessions()

        expiring = asyncio.create_task(expire_midway())

        async def one() -> int:
            async with sf.get("limits/") as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(one() for _ in range(requests)))
        await expiring
    assert statuses == [200] * requests
    assert fake_org.stats.token_requests_total == 2
    assert fake_org.stats.unauthorized <= limit
    assert fake_org.stats.api_requests <= requests + limit


async def test_max_concurrency_bounds_the_requests_in_flight(fake_org: FakeSalesforceOrg) -> None:
    """max_concurrency=3: a fourth request waits (before its token) until one answers."""
    release = asyncio.Event()
    fake_org.faults.api.push(*[Fault.hold(release)] * 3)
    async with AsyncSession(
        fake_org.client_credentials_flow(), retry=FAST, max_concurrency=3
    ) as sf:
        await sf.get_token()
        calls = [asyncio.create_task(sf.get("limits/")) for _ in range(4)]
        await fake_org.faults.api.wait_held(3)
        assert fake_org.stats.api_requests == 3
        release.set()
        assert [r.status for r in await asyncio.gather(*calls)] == [200] * 4


# -- item 3: only a leading scheme makes a URL absolute ----------------------------------------


async def test_a_relative_path_with_a_url_in_its_query_stays_relative(
    fake_org: FakeSalesforceOrg,
) -> None:
    """'query/?q=... https://acme.com' goes to the instance, signed, as a path."""
    soql = "SELECT Id FROM Account WHERE Website = 'https://acme.com'"
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        resp = await sf.get(f"query/?q={soql}")
        assert resp.status == 200
        assert resp.url.path == "/services/data/v67.0/query/"
        assert resp.url.query["q"] == soql


# -- item 4: a 401 to HEAD has no body and still heals -------------------------------------------


async def test_a_bodiless_401_to_head_heals(fake_org: FakeSalesforceOrg) -> None:
    """HEAD after the session ended: one refresh, one replay, 200."""
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        assert (await sf.head("limits/")).status == 200
        fake_org.expire_all_sessions()
        assert (await sf.head("limits/")).status == 200
    assert fake_org.stats.token_requests_total == 2
    assert fake_org.stats.unauthorized == 1


# -- item 5: Retry-After from the token endpoint -----------------------------------------------


async def test_the_token_endpoint_retry_after_is_honoured(fake_org: FakeSalesforceOrg) -> None:
    """A 503 with Retry-After: 1 is retried after a second, not sooner."""
    fake_org.faults.token.push(Fault.server_unavailable(retry_after="1"))
    started = time.monotonic()
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        await sf.get_token()
    assert time.monotonic() - started >= 1.0
    assert fake_org.stats.token_requests_total == 2


async def test_a_retry_after_past_the_budget_ends_the_refresh_at_once(
    fake_org: FakeSalesforceOrg,
) -> None:
    """Retry-After longer than the refresh budget: the error now, no sleep in vain."""
    fake_org.faults.token.push(Fault.server_unavailable(retry_after="3600"))
    started = time.monotonic()
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        with pytest.raises(TokenEndpointUnavailableError) as caught:
            await sf.get_token()
    assert caught.value.retry_after_s == 3600.0
    assert time.monotonic() - started < 5.0
    assert fake_org.stats.token_requests_total == 1


# -- item 6: a step of the wall clock moves no refresh -------------------------------------------


async def test_a_wall_clock_step_moves_no_refresh(
    fake_org: FakeSalesforceOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """time.time() jumping three hours ahead: the token is still fresh; no token request."""
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        await sf.get_token()
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3 * 3600)
        assert (await sf.get("limits/")).status == 200
    assert fake_org.stats.token_requests_total == 1


# -- item 7: a proxy's page at the token endpoint is not a dead credential -----------------------


@pytest.mark.parametrize(
    "page",
    [
        Fault.html(403),
        Fault.status(407, "Proxy Authentication Required", "text/plain"),
        Fault.status(302, "", "text/html"),
    ],
    ids=["html-403", "407", "302"],
)
async def test_a_page_that_is_no_oauth_error_only_cools_down(
    fake_org: FakeSalesforceOrg, page: Fault
) -> None:
    """A firewall page or a redirect: a typed error, then (after the cooldown) it works."""
    fake_org.faults.token.push(page)
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        with pytest.raises(InvalidTokenResponseError):
            await sf.get_token()
        assert (await sf.get("limits/")).status == 200  # not dead: no reset() needed
    assert fake_org.stats.token_requests_total == 2


# -- item 8: a 401 body is read within a bound ---------------------------------------------------


async def test_an_enormous_401_body_is_refused_not_buffered(fake_org: FakeSalesforceOrg) -> None:
    """A 401 with 2 MiB of body: a typed error, never 2 MiB in memory."""
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        await sf.get_token()
        fake_org.faults.api.push(Fault.status(401, "INVALID_SESSION_ID" * 120_000, "text/plain"))
        with pytest.raises(InvalidTokenResponseError, match="larger than"):
            await sf.get("limits/")


# -- item 20: the very first request, to another origin ------------------------------------------


@contextlib.asynccontextmanager
async def serve(handler: Any) -> AsyncIterator[str]:
    """A loopback web server answering every path with ``handler``; its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[str | None]]]:
    """Another origin that records the Authorization header of what it receives."""
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(text="ok")

    async with serve(record) as url:
        yield url, seen


async def test_the_first_request_of_all_to_another_origin_carries_no_bearer(
    fake_org: FakeSalesforceOrg, elsewhere: tuple[str, list[str | None]]
) -> None:
    """No token yet, first request elsewhere: a token is fetched to learn the org, not sent."""
    url, seen = elsewhere
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST) as sf:
        assert sf.token is None
        assert (await sf.get(url + "/hello")).status == 200
        assert sf.token is not None
    assert seen == [None]
    assert fake_org.stats.token_requests_total == 1


# -- item 22: proxy settings reach token requests ------------------------------------------------


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """A forward HTTP proxy on loopback that records the URLs it forwards."""
    forwarded: list[str] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        target = str(request.url)
        forwarded.append(target)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as out,
            out.request(
                request.method,
                target,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as upstream,
        ):
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                headers={
                    k: v for k, v in upstream.headers.items() if k.lower() != "transfer-encoding"
                },
            )

    async with serve(forward) as url:
        yield url, forwarded


async def test_token_requests_go_through_the_sessions_proxy(
    fake_org: FakeSalesforceOrg, proxy: tuple[str, list[str]]
) -> None:
    """AsyncSession(proxy=...): the token request, like the API call, goes via the proxy."""
    url, forwarded = proxy
    async with AsyncSession(fake_org.client_credentials_flow(), retry=FAST, proxy=url) as sf:
        assert (await sf.get("limits/")).status == 200
    assert [u.split("/services/")[1].split("?")[0] for u in forwarded] == [
        "oauth2/token",
        "data/v67.0/limits/",
    ]


async def test_token_requests_use_the_sessions_tls_settings() -> None:
    """An org behind a private CA: token requests trust it only through the user's connector."""
    async with FakeSalesforceOrg(tls=True) as org:
        flow = org.client_credentials_flow()
        assert flow.token_url.startswith("https://")
        async with AsyncSession(flow, retry=FAST) as plain:
            with pytest.raises(TokenEndpointConnectionError) as caught:
                await plain.get_token()
            assert caught.value.request_sent is False  # the handshake failed: nothing sent
        connector = aiohttp.TCPConnector(ssl=org.client_ssl_context())
        async with AsyncSession(
            org.client_credentials_flow(), retry=FAST, connector=connector
        ) as trusted:
            assert (await trusted.get("limits/")).status == 200
        assert org.stats.token_requests_total == 1
