"""AsyncSession against the fake org: requests, the bearer's origin rule and the 401 rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from sfoauth_async import (
    AsyncSession,
    ClientCredentialsFlow,
    ConfigurationError,
    InvalidClientError,
    InvalidGrantError,
    MemoryTokenStore,
    Refresher,
    Token,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
NOT_FOR_REST = [
    {
        "message": "This session is not valid for use with the REST API",
        "errorCode": "INVALID_SESSION_ID",
    }
]


class StaticFlow(ClientCredentialsFlow):
    """A flow that must never be asked for a token (the test gives one)."""

    def __init__(self) -> None:
        super().__init__(
            client_id="static", client_secret="unused", login_url="https://static.my.salesforce.com"
        )

    async def fetch_token(self, *_: object, **__: object) -> Token:
        """Fail the test: a token was given, none may be fetched."""
        raise AssertionError("no token request expected")


class Capture:
    """A loopback server that records the Authorization header of each request it gets."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.url = ""
        self.redirect_to = ""

    async def record(self, request: web.Request) -> web.Response:
        """Answer 200 and remember the Authorization header."""
        self.authorizations.append(request.headers.get("Authorization"))
        return web.json_response({"ok": True})

    async def redirect(self, request: web.Request) -> web.Response:
        """Redirect to ``redirect_to`` and remember the Authorization header."""
        self.authorizations.append(request.headers.get("Authorization"))
        raise web.HTTPFound(self.redirect_to)


@pytest.fixture
async def capture() -> AsyncIterator[Capture]:
    """Another origin: a server on another port of 127.0.0.1."""
    capture = Capture()
    app = web.Application()
    app.router.add_get("/record", capture.record)
    app.router.add_get("/redirect", capture.redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    capture.url = f"http://127.0.0.1:{port}"
    yield capture
    await runner.cleanup()


async def test_paths_resolve_against_the_instance_url(fake_org: FakeSalesforceOrg) -> None:
    """'/services/...' goes to instance_url, 'limits/' under /services/data/v67.0/."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        async with sf.get("/services/data/") as resp:
            assert resp.status == 200
            assert str(resp.url) == f"{fake_org.instance_url}/services/data/"
        async with sf.get("limits/") as resp:
            assert resp.status == 200
            assert str(resp.url) == f"{fake_org.instance_url}/services/data/v67.0/limits/"
            assert "api-usage=" in resp.headers["Sforce-Limit-Info"]


async def test_every_verb_works_awaited_and_as_context_manager(
    fake_org: FakeSalesforceOrg,
) -> None:
    """Create, read, update, delete an Account with await and async-with forms."""
    async with AsyncSession(fake_org.jwt_bearer_flow(), api_version="66.0") as sf:
        created = await sf.post("sobjects/Account/", json={"Name": "Acme"})
        assert created.status == 201
        account_id = (await created.json())["id"]
        async with sf.get(f"sobjects/Account/{account_id}") as resp:
            assert (await resp.json())["Name"] == "Acme"
        assert (await sf.patch(f"sobjects/Account/{account_id}", json={"Name": "B"})).status == 204
        async with sf.request("GET", f"sobjects/Account/{account_id}") as resp:
            assert (await resp.json())["Name"] == "B"
        assert (await sf.head("limits/")).status == 200
        assert (await sf.delete(f"sobjects/Account/{account_id}")).status == 204
        async with sf.get(f"sobjects/Account/{account_id}") as resp:
            assert resp.status == 404


async def test_token_and_get_token(fake_org: FakeSalesforceOrg) -> None:
    """sf.token is None before the first login and the current token after."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        assert sf.token is None
        token = await sf.get_token()
        assert sf.token is token
        assert token.instance_url == fake_org.instance_url


async def test_bearer_is_never_sent_to_another_origin(
    fake_org: FakeSalesforceOrg, capture: Capture
) -> None:
    """An absolute URL on another port gets no Authorization header."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        await sf.get_token()
        async with sf.get(f"{capture.url}/record") as resp:
            assert resp.status == 200
    assert capture.authorizations == [None]


async def test_bearer_is_dropped_on_a_cross_origin_redirect(capture: Capture) -> None:
    """Instance origin redirects to another port: the second hop carries no bearer."""
    other = Capture()
    app = web.Application()
    app.router.add_get("/record", other.record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    capture.redirect_to = f"http://127.0.0.1:{runner.addresses[0][1]}/record"
    token = Token(access_token="00D!redirect-test", instance_url=capture.url)
    try:
        refresher = Refresher(StaticFlow(), token=token)
        async with AsyncSession(refresher) as sf, sf.get("/redirect") as resp:
            assert resp.status == 200
    finally:
        await runner.cleanup()
    assert capture.authorizations == ["Bearer 00D!redirect-test"]
    assert other.authorizations == [None]


async def test_same_origin_redirect_keeps_the_bearer(capture: Capture) -> None:
    """A redirect within the instance origin is still signed."""
    capture.redirect_to = f"{capture.url}/record"
    token = Token(access_token="00D!same-origin", instance_url=capture.url)
    refresher = Refresher(StaticFlow(), token=token)
    async with AsyncSession(refresher) as sf, sf.get("/redirect") as resp:
        assert resp.status == 200
    assert capture.authorizations == ["Bearer 00D!same-origin", "Bearer 00D!same-origin"]


async def test_token_requests_never_carry_a_bearer(fake_org: FakeSalesforceOrg) -> None:
    """The token endpoint is called without the middleware, even on the instance origin."""
    flow = fake_org.client_credentials_flow()
    async with AsyncSession(flow) as sf:
        await sf.get_token()
        fake_org.expire_all_sessions()
        async with sf.get("limits/") as resp:
            assert resp.status == 200
    assert fake_org.stats.token_requests["client_credentials"] == 2
    assert fake_org.stats.bearer_token_requests == 0


async def test_expired_session_is_refreshed_and_the_request_replayed(
    fake_org: FakeSalesforceOrg,
) -> None:
    """A 401 INVALID_SESSION_ID: one token request, the request replayed once, 200."""
    async with AsyncSession(fake_org.jwt_bearer_flow()) as sf:
        first = await sf.get_token()
        fake_org.expire_all_sessions()
        async with sf.post("sobjects/Account/", json={"Name": "Replayed"}) as resp:
            assert resp.status == 201
        assert sf.token is not None
        assert sf.token.access_token != first.access_token
    assert fake_org.stats.token_requests_total == 2
    assert fake_org.stats.unauthorized == 1


async def test_a_second_401_is_returned_unchanged(fake_org: FakeSalesforceOrg) -> None:
    """Two 401s in a row: one refresh, then the second 401 goes back to the caller."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        await sf.get_token()
        fake_org.faults.api.push(Fault.json(401, SESSION_EXPIRED), Fault.json(401, SESSION_EXPIRED))
        async with sf.get("limits/") as resp:
            assert resp.status == 401
            assert (await resp.json())[0]["errorCode"] == "INVALID_SESSION_ID"
    assert fake_org.stats.token_requests_total == 2


async def test_a_401_a_refresh_cannot_fix_is_returned_without_refreshing(
    fake_org: FakeSalesforceOrg,
) -> None:
    """'This session is not valid for use with the REST API' causes no token request."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        await sf.get_token()
        fake_org.faults.api.push(Fault.json(401, NOT_FOR_REST))
        async with sf.get("limits/") as resp:
            assert resp.status == 401
            assert "not valid for use with the REST API" in (await resp.text())
        assert sf.stats.invalidations == 0
    assert fake_org.stats.token_requests_total == 1


async def test_a_streamed_body_is_not_replayed(fake_org: FakeSalesforceOrg) -> None:
    """An async-generator body gets the 401 back; the next call uses a fresh token."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"Name": '
        yield b'"Streamed"}'

    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        first = await sf.get_token()
        fake_org.expire_all_sessions()
        headers = {"Content-Type": "application/json"}
        async with sf.post("sobjects/Account/", data=body(), headers=headers) as resp:
            assert resp.status == 401
        assert sf.stats.invalidations == 1
        async with sf.get("limits/") as resp:
            assert resp.status == 200
        assert sf.token is not None
        assert sf.token.access_token != first.access_token
    assert fake_org.stats.token_requests_total == 2


async def test_bulk_v1_invalid_session_counts_as_expired(fake_org: FakeSalesforceOrg) -> None:
    """Bulk API 1.0's HTTP 400 InvalidSessionId refreshes and replays like a 401."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        await sf.get_token()
        fake_org.expire_all_sessions()
        job = "<jobInfo xmlns='http://www.force.com/2009/06/asyncapi/dataload'/>"
        headers = {"Content-Type": "application/xml"}
        async with sf.post("/services/async/67.0/job", data=job, headers=headers) as resp:
            assert resp.status == 201
    assert fake_org.stats.token_requests_total == 2


async def test_stale_401s_cause_no_extra_token_request(fake_org: FakeSalesforceOrg) -> None:
    """Requests sent with the old token whose 401s land after the refresh replay at once."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        await sf.get_token()
        release = asyncio.Event()
        fake_org.faults.api.push(*[Fault.hold(release)] * 50)
        held = [asyncio.create_task(sf.get("limits/")) for _ in range(50)]
        await fake_org.faults.api.wait_held(50)
        fake_org.expire_all_sessions()
        async with sf.get("limits/") as resp:
            assert resp.status == 200
        assert fake_org.stats.token_requests_total == 2
        release.set()
        responses = await asyncio.gather(*held)
        assert {r.status for r in responses} == {200}
        for r in responses:
            r.release()
    assert fake_org.stats.token_requests_total == 2
    assert sf.stats.invalidations == 1
    assert sf.stats.unauthorized == 51


async def test_refresh_failure_during_replay_raises_the_typed_error(
    fake_org: FakeSalesforceOrg,
) -> None:
    """If the refresh after a 401 is refused, the request raises that typed error."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        await sf.get_token()
        fake_org.expire_all_sessions()
        refusal = Fault.oauth_error("invalid_client", "invalid client credentials")
        fake_org.faults.token.push(refusal)
        with pytest.raises(InvalidClientError, match="invalid client credentials"):
            await sf.get("limits/")


async def test_sessions_on_one_flow_share_one_refresher(fake_org: FakeSalesforceOrg) -> None:
    """Two AsyncSessions on the same flow object make one login between them."""
    flow = fake_org.jwt_bearer_flow()
    async with AsyncSession(flow) as one, AsyncSession(flow) as two:
        assert one.refresher is two.refresher
        await asyncio.gather(one.get("limits/"), two.get("limits/"))
    assert fake_org.stats.token_requests_total == 1


async def test_closing_the_session_finishes_a_sent_refresh_for_the_next_session(
    fake_org: FakeSalesforceOrg,
) -> None:
    """close() during a sent token request waits for it; the next session reuses its token."""
    flow = fake_org.client_credentials_flow()
    release = asyncio.Event()
    fake_org.faults.token.push(Fault.hold(release))
    sf = AsyncSession(flow)
    waiter = asyncio.create_task(sf.get_token())
    await fake_org.faults.token.wait_held(1)
    closing = asyncio.create_task(sf.close())
    await asyncio.sleep(0)
    assert not closing.done()
    release.set()
    await closing
    token = await waiter
    async with AsyncSession(flow) as again:
        assert (await again.get("limits/")).status == 200
        assert again.token is token
    assert fake_org.stats.token_requests_total == 1


async def test_permanent_error_fails_fast_until_reset(fake_org: FakeSalesforceOrg) -> None:
    """invalid_grant once: later calls raise without a new token request."""
    flow = fake_org.refresh_token_flow(refresh_token="5Aep861-not-a-real-token")
    async with AsyncSession(flow) as sf:
        for _ in range(3):
            with pytest.raises(InvalidGrantError):
                await sf.get("limits/")
    assert fake_org.stats.token_requests_total == 1


def test_base_url_is_refused() -> None:
    """base_url would fight the instance_url resolution, so it is a configuration error."""
    with pytest.raises(ConfigurationError, match="base_url"):
        AsyncSession(StaticFlow(), base_url="https://x.my.salesforce.com")


def test_refresher_options_go_on_the_refresher() -> None:
    """Given a Refresher, session-level refresher options are refused."""
    refresher = Refresher(StaticFlow())
    with pytest.raises(ConfigurationError, match="Refresher itself"):
        AsyncSession(refresher, refresh_ahead=timedelta(minutes=1))


async def test_introspection_teaches_the_real_expiry() -> None:
    """With introspect_expiry, a 10-minute org session wins over a 2-hour configuration."""
    async with FakeSalesforceOrg(session_lifetime=timedelta(minutes=10)) as org:
        flow = org.client_credentials_flow()
        async with AsyncSession(flow, introspect_expiry=True) as sf:
            token = await sf.get_token()
        assert token.expires_at is not None
        lifetime = token.expires_at - token.received_at
        assert timedelta(minutes=9) < lifetime <= timedelta(minutes=10)
        assert org.stats.introspections == 1


def test_introspection_needs_a_secret(fake_org: FakeSalesforceOrg) -> None:
    """A JWT bearer flow has no secret to introspect with: refused up front."""
    with pytest.raises(ConfigurationError, match="client_secret"):
        AsyncSession(fake_org.jwt_bearer_flow(), introspect_expiry=True)


async def test_a_token_from_exchange_is_shared_through_the_store(
    fake_org: FakeSalesforceOrg,
) -> None:
    """A user's new token given with a store is saved; another process's session adopts it."""
    callback = "http://localhost:8765/callback"
    flow = fake_org.authorization_code_flow(callback)
    fake_org.auto_approve = True
    request = flow.authorization_url()
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(request.url, allow_redirects=False) as resp,
    ):
        code = flow.parse_callback(resp.headers["Location"], state=request.state)
    token = await flow.exchange(code, code_verifier=request.code_verifier)
    store = MemoryTokenStore()
    async with AsyncSession(flow, token=token, store=store) as sf:
        assert (await sf.get("limits/")).status == 200
    stored = await store.load(flow.store_key(token))
    assert stored is not None
    assert stored.token.refresh_token == token.refresh_token
    other = fake_org.authorization_code_flow(callback)
    async with AsyncSession(other, store=store, store_key=flow.store_key(token)) as sf:
        assert (await sf.get("limits/")).status == 200
    assert fake_org.stats.token_requests_total == 1
