"""Fault injection and the request counters of the fake org."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest

from sfoauth_async.testing import FakeSalesforceOrg, Fault


async def post_token(client: aiohttp.ClientSession, org: FakeSalesforceOrg, form: dict[str, str]):
    """POST a token form; return (status, Content-Type, text)."""
    async with client.post(org.my_domain_url + "/services/oauth2/token", data=form) as response:
        return response.status, response.headers.get("Content-Type"), await response.text()


async def test_status_fault(org, client, cc_form):
    """Fault.status answers any status, body and content type, then normal service resumes."""
    org.faults.token.push(Fault.status(502, "Bad Gateway", "text/plain"))
    assert await post_token(client, org, cc_form) == (502, "text/plain", "Bad Gateway")
    status, _, _ = await post_token(client, org, cc_form)
    assert status == 200


async def test_json_fault(org, client):
    """Fault.json answers a JSON payload with Salesforce's content type."""
    payload = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    org.faults.api.push(Fault.json(403, payload))
    async with client.get(org.my_domain_url + "/services/data/") as response:
        assert response.status == 403
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        assert await response.json() == payload


async def test_html_fault(org, client, cc_form):
    """Fault.html answers Salesforce's maintenance page with a 503."""
    org.faults.token.push(Fault.html())
    status, content_type, text = await post_token(client, org, cc_form)
    assert (status, content_type) == (503, "text/html;charset=UTF-8")
    assert "down for maintenance" in text


async def test_oauth_error_faults(org, client, cc_form):
    """Fault.oauth_error and Fault.login_rate_exceeded answer the token endpoint's JSON shape."""
    org.faults.token.push(
        Fault.oauth_error("invalid_grant", "authentication failure"),
        Fault.login_rate_exceeded(),
        Fault.oauth_error("server_error", "try later", status=500),
    )
    bodies = []
    for _ in range(3):
        async with client.post(org.my_domain_url + "/services/oauth2/token", data=cc_form) as r:
            bodies.append((r.status, r.headers["Cache-Control"], await r.json()))
    assert bodies == [
        (
            400,
            "no-store",
            {"error": "invalid_grant", "error_description": "authentication failure"},
        ),
        (400, "no-store", {"error": "invalid_grant", "error_description": "login rate exceeded"}),
        (500, "no-store", {"error": "server_error", "error_description": "try later"}),
    ]


async def test_drop_fault(org, client, cc_form):
    """Fault.drop closes the connection without a response."""
    org.faults.token.push(Fault.drop())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_token(client, org, cc_form)
    assert (await post_token(client, org, cc_form))[0] == 200
    assert org.stats.token_requests["client_credentials"] == 2


async def test_delay_fault(org, client, cc_token):
    """Fault.delay waits, then answers normally."""
    org.faults.api.push(Fault.delay(0.05))
    loop = asyncio.get_running_loop()
    started = loop.time()
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    async with client.get(org.my_domain_url + "/services/data/v67.0/", headers=headers) as response:
        assert response.status == 200
    assert loop.time() - started >= 0.05


def test_delay_must_not_be_negative():
    """A negative delay is refused."""
    with pytest.raises(ValueError, match="seconds"):
        Fault.delay(-1)


async def test_hold_fault(org, client, cc_form):
    """Fault.hold parks a request until the event is set; other requests are not held."""
    release = asyncio.Event()
    org.faults.token.push(Fault.hold(release))
    held = asyncio.create_task(post_token(client, org, cc_form))
    await org.faults.token.wait_held(1)
    assert org.faults.token.held == 1
    assert (await post_token(client, org, cc_form))[0] == 200
    assert not held.done()
    release.set()
    assert (await held)[0] == 200
    assert org.faults.token.held == 0


async def test_faults_are_fifo_and_one_per_request(org, client, cc_form):
    """Each request consumes exactly one fault, in push order."""
    org.faults.token.push(Fault.status(500), Fault.status(502))
    org.faults.token.push(Fault.status(503))
    assert len(org.faults.token) == 3
    statuses = [(await post_token(client, org, cc_form))[0] for _ in range(4)]
    assert statuses == [500, 502, 503, 200]
    assert len(org.faults.token) == 0


async def test_clear(org, client, cc_form):
    """clear() forgets pending faults."""
    org.faults.token.push(Fault.status(500))
    org.faults.api.push(Fault.status(500))
    org.faults.clear()
    assert (len(org.faults.token), len(org.faults.api), len(org.faults.oauth)) == (0, 0, 0)
    assert (await post_token(client, org, cc_form))[0] == 200


async def test_api_faults_count_as_api_requests(org, client):
    """API faults apply to REST, count in api_requests, and are not 401s."""
    org.faults.api.push(Fault.status(503))
    async with client.get(org.my_domain_url + "/services/data/v67.0/limits/") as response:
        assert response.status == 503
    assert (org.stats.api_requests, org.stats.unauthorized) == (1, 0)
    assert org.api_usage == 0


async def test_api_faults_apply_to_bulk(org, client):
    """The API queue also covers Bulk API requests."""
    org.faults.api.push(Fault.drop())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with client.post(org.my_domain_url + "/services/async/67.0/job", data="x"):
            pass


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/services/oauth2/revoke"),
        ("POST", "/services/oauth2/introspect"),
        ("GET", "/services/oauth2/userinfo"),
    ],
)
async def test_oauth_faults(org, client, method, path):
    """The oauth queue covers revoke, introspect and userinfo."""
    org.faults.oauth.push(Fault.html())
    async with client.request(method, org.login_url + path) as response:
        assert response.status == 503
    assert len(org.faults.oauth) == 0


async def test_token_faults_do_not_touch_other_queues(org, client):
    """A token fault is not consumed by API requests, and vice versa."""
    org.faults.token.push(Fault.status(500))
    async with client.get(org.my_domain_url + "/services/data/") as response:
        assert response.status == 200
    assert len(org.faults.token) == 1


async def test_faulted_token_requests_are_counted(org, client, cc_form):
    """Token requests answered by a fault still count under their grant type."""
    org.faults.token.push(Fault.html(), Fault.drop())
    await post_token(client, org, cc_form)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_token(client, org, cc_form)
    assert org.stats.token_requests["client_credentials"] == 2
    assert org.stats.token_requests_total == 2


async def test_max_concurrency(org, client, cc_form):
    """max_concurrent_token_requests records the most token requests in flight at once."""
    release = asyncio.Event()
    org.faults.token.push(*[Fault.hold(release) for _ in range(3)])
    tasks = [asyncio.create_task(post_token(client, org, cc_form)) for _ in range(3)]
    await org.faults.token.wait_held(3)
    assert org.stats.max_concurrent_token_requests == 3
    release.set()
    assert [status for status, _, _ in await asyncio.gather(*tasks)] == [200, 200, 200]
    await post_token(client, org, cc_form)
    assert org.stats.max_concurrent_token_requests == 3
    assert org.stats.token_requests_total == 4


async def test_close_drops_held_requests(client, cc_form):
    """Closing the org drops requests still parked in a hold."""
    org = FakeSalesforceOrg()
    await org.start()
    org.faults.token.push(Fault.hold(asyncio.Event()))
    form = {**cc_form, "client_id": org.app.client_id, "client_secret": org.app.client_secret}
    held = asyncio.create_task(post_token(client, org, form))
    await org.faults.token.wait_held(1)
    await asyncio.wait_for(org.close(), timeout=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await held


async def test_stats_reset(org, client, cc_form):
    """reset() zeroes every counter."""
    await post_token(client, org, cc_form)
    async with client.get(org.my_domain_url + "/services/data/v67.0/") as response:
        assert response.status == 401
    org.stats.reset()
    assert org.stats.token_requests_total == 0
    assert (
        org.stats.max_concurrent_token_requests,
        org.stats.api_requests,
        org.stats.unauthorized,
        org.stats.revocations,
        org.stats.introspections,
    ) == (0, 0, 0, 0, 0)


def test_fault_is_frozen_value():
    """Faults are immutable values that compare by content."""
    fault = Fault.status(500, "x")
    assert fault == Fault.status(500, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fault.http_status = 200  # type: ignore[misc]


async def test_stats_held_and_wait_changed(org, client, cc_form):
    """stats.held counts parked requests of every family; wait_changed() wakes on changes."""
    release = asyncio.Event()
    org.faults.token.push(Fault.hold(release))
    org.faults.api.push(Fault.hold(release))
    tasks = [
        asyncio.create_task(post_token(client, org, cc_form)),
        asyncio.create_task(client.get(org.my_domain_url + "/services/data/")),
    ]
    async with asyncio.timeout(5):
        while org.stats.held < 2:
            await org.stats.wait_changed()
    release.set()
    async with asyncio.timeout(5):
        while org.stats.held:
            await org.stats.wait_changed()
    token_answer, versions = await asyncio.gather(*tasks)
    versions.release()
    assert (token_answer[0], versions.status) == (200, 200)


async def test_bearer_token_requests(org, client, cc_form, cc_token):
    """Token requests carrying an access token as Bearer are counted."""
    await post_token(client, org, cc_form)
    assert org.stats.bearer_token_requests == 0
    async with client.post(
        org.my_domain_url + "/services/oauth2/token",
        data=cc_form,
        headers={"Authorization": f"Bearer {await cc_token()}"},
    ) as response:
        assert response.status == 200
    assert org.stats.bearer_token_requests == 1


async def test_client_giving_up_on_a_hold(org, client, cc_form):
    """A client that disconnects while held frees the hold; the org keeps serving."""
    org.faults.token.push(Fault.hold(asyncio.Event()))
    timeout = aiohttp.ClientTimeout(total=0.05)
    with pytest.raises(TimeoutError):
        async with client.post(
            org.my_domain_url + "/services/oauth2/token", data=cc_form, timeout=timeout
        ):
            pass
    async with asyncio.timeout(5):
        while org.stats.held:
            await org.stats.wait_changed()
    assert (await post_token(client, org, cc_form))[0] == 200
