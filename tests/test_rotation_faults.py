"""Rotation-safe refreshes under faults, in one process (issue 7: items 1, 2, 6, 8-13, 15).

Every test runs against a fake org that rotates refresh tokens and, like Salesforce,
revokes the whole grant when a rotated-out refresh token comes back. Each asserts exact
token-request counts and that no refresh token was sent twice. The fleet items (3, 4, 5,
7, 14) are in test_fleet_faults.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from faults import BusyStore, assert_no_refresh_token_reused, eventually

from sfoauth_async import (
    AsyncSession,
    ClientCredentialsFlow,
    ConfigurationError,
    CredentialForgottenError,
    FileTokenStore,
    InvalidClientError,
    Refresher,
    RefreshOutcomeUnknownError,
    RetryPolicy,
    SessionClosedError,
    StaleTokenWriteError,
    Token,
    TokenEndpointConnectionError,
)
from sfoauth_async._endpoint import post_form
from sfoauth_async.testing import FakeSalesforceOrg, Fault

FAST = RetryPolicy(
    attempts=3, total_timeout_s=10.0, wait_initial_s=0.001, wait_max_s=0.002, cooldown_s=0.0
)


@pytest.fixture
async def org() -> AsyncIterator[FakeSalesforceOrg]:
    """A fake org that rotates refresh tokens and revokes a grant on reuse."""
    async with FakeSalesforceOrg(rotate_refresh_tokens=True) as fake:
        yield fake


def stale(token: Token) -> Token:
    """``token`` as if received 118 minutes ago: due for a refresh, usable two more minutes.

    Salesforce's own session (2 h from issue) lives on, so API calls with it still work.
    """
    return dataclasses.replace(token, received_at=datetime.now(UTC) - timedelta(minutes=118))


# -- item 1: a sent refresh token is never sent again -------------------------------------------


async def test_an_answer_slower_than_attempt_timeout_is_read_not_resent(
    org: FakeSalesforceOrg,
) -> None:
    """An answer after attempt_timeout_s is waited for (within the budget): one request."""
    org.faults.token.push(Fault.delay_answer(0.5))
    retry = dataclasses.replace(FAST, attempt_timeout_s=0.1)
    async with AsyncSession(org.refresh_token_flow(), retry=retry) as sf:
        assert (await sf.get("limits/")).status == 200
    assert org.stats.token_requests["refresh_token"] == 1
    assert_no_refresh_token_reused(org)


async def test_a_connection_dropped_after_salesforce_rotated_is_never_resent(
    org: FakeSalesforceOrg,
) -> None:
    """The answer is lost after rotation: a typed error, and nothing is sent again."""
    org.faults.token.push(Fault.drop_answer())
    async with AsyncSession(org.refresh_token_flow(), retry=FAST) as sf:
        with pytest.raises(RefreshOutcomeUnknownError, match="trust_refresh_token"):
            await sf.get("limits/")
        with pytest.raises(RefreshOutcomeUnknownError):
            await sf.get("limits/")
    assert org.stats.token_requests["refresh_token"] == 1
    assert_no_refresh_token_reused(org)


async def test_an_answer_later_than_the_whole_budget_is_an_unknown_outcome(
    org: FakeSalesforceOrg,
) -> None:
    """A refresh still unanswered when the budget ends: typed error, no resend, ever."""
    release = asyncio.Event()
    org.faults.token.push(Fault.hold_answer(release))
    retry = dataclasses.replace(FAST, total_timeout_s=0.3)
    async with AsyncSession(org.refresh_token_flow(), retry=retry) as sf:
        with pytest.raises(RefreshOutcomeUnknownError) as caught:
            await sf.get("limits/")
        assert isinstance(caught.value.__cause__, TokenEndpointConnectionError)
        assert caught.value.__cause__.request_sent
        release.set()
        with pytest.raises(RefreshOutcomeUnknownError):
            await sf.get("limits/")
    assert org.stats.token_requests["refresh_token"] == 1
    assert_no_refresh_token_reused(org)


async def test_the_valid_access_token_is_served_after_an_unknown_outcome(
    org: FakeSalesforceOrg,
) -> None:
    """A refresh ahead of expiry that loses its answer: calls go on with the current token."""
    flow = org.refresh_token_flow()
    token = await flow.fetch_token()
    org.faults.token.push(Fault.drop_answer())
    async with AsyncSession(flow, token=stale(token), retry=FAST) as sf:
        assert (await sf.get("limits/")).status == 200  # starts the refresh ahead
        flight = sf.refresher._flight
        assert flight is not None
        await asyncio.wait([flight])
        for _ in range(3):
            assert (await sf.get("limits/")).status == 200
        assert sf.token is not None
        assert sf.token.access_token == token.access_token
    assert org.stats.token_requests["refresh_token"] == 2
    assert_no_refresh_token_reused(org)


async def test_trust_refresh_token_resumes_when_the_token_was_not_spent(
    org: FakeSalesforceOrg,
) -> None:
    """Dropped before Salesforce read it: introspection says active; trusting it resumes."""
    flow = org.refresh_token_flow()
    org.faults.token.push(Fault.drop())  # the request is cut before the org handles it
    async with AsyncSession(flow, retry=FAST) as sf:
        with pytest.raises(RefreshOutcomeUnknownError):
            await sf.get("limits/")
        info = await flow.introspect(flow.refresh_token or "", token_type_hint="refresh_token")
        assert info.active
        await sf.refresher.trust_refresh_token()
        assert (await sf.get("limits/")).status == 200
    assert org.stats.token_requests["refresh_token"] == 2
    assert_no_refresh_token_reused(org)


async def test_a_grant_known_not_to_rotate_keeps_its_retries(org: FakeSalesforceOrg) -> None:
    """Once a refresh showed no rotation, a dropped answer is simply retried."""
    org.app.rotate_refresh_tokens = False
    async with AsyncSession(org.refresh_token_flow(), retry=FAST) as sf:
        assert (await sf.get("limits/")).status == 200
        assert sf.token is not None
        assert sf.token.refresh_token_rotation is False
        org.faults.token.push(Fault.drop_answer())
        sf.refresher.invalidate(sf.token)
        assert (await sf.get("limits/")).status == 200
    assert org.stats.token_requests["refresh_token"] == 3


async def test_logins_keep_their_retries_after_a_dropped_answer(org: FakeSalesforceOrg) -> None:
    """Client-credentials logins mint independent tokens: a dropped answer is retried."""
    org.faults.token.push(Fault.drop_answer())
    async with AsyncSession(org.client_credentials_flow(), retry=FAST) as sf:
        assert (await sf.get("limits/")).status == 200
    assert org.stats.token_requests["client_credentials"] == 2


async def test_the_endpoint_client_tells_sent_from_not_sent(org: FakeSalesforceOrg) -> None:
    """A refused connection is 'not sent'; a connection cut after the request is 'sent'."""
    with socket_closed_port() as port, pytest.raises(TokenEndpointConnectionError) as refused:
        await post_form(None, f"http://127.0.0.1:{port}/services/oauth2/token", {"a": "b"})
    assert refused.value.request_sent is False
    assert "before it was sent" in str(refused.value)
    org.faults.token.push(Fault.drop())
    with pytest.raises(TokenEndpointConnectionError) as cut:
        await post_form(None, org.login_url + "/services/oauth2/token", {"a": "b"})
    assert cut.value.request_sent is True
    assert "may have received it" in str(cut.value)


class socket_closed_port:  # noqa: N801 - used as a context manager, reads as a phrase
    """A loopback port with nothing listening (bound, then closed), while in the block."""

    def __enter__(self) -> int:
        import socket  # noqa: PLC0415 - only this helper needs it

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        return port

    def __exit__(self, *_: object) -> None:
        return None


# -- item 2: a session closed mid-refresh cannot cut the token request ---------------------------


async def test_closing_one_session_mid_refresh_cannot_cut_the_token_request(
    org: FakeSalesforceOrg,
) -> None:
    """Token requests have a pool of their own: closing a session during one cuts nothing."""
    flow = org.refresh_token_flow()
    release = asyncio.Event()
    org.faults.token.push(Fault.hold_answer(release))
    a, b = AsyncSession(flow, retry=FAST), AsyncSession(flow, retry=FAST)
    async with b:
        first = asyncio.create_task(a.get("limits/"))
        await org.faults.token.wait_held(1)
        second = asyncio.create_task(b.get("limits/"))
        await a.close()
        release.set()
        assert (await second).status == 200
        await asyncio.gather(first, return_exceptions=True)
    assert org.stats.token_requests["refresh_token"] == 1
    assert_no_refresh_token_reused(org)


# -- item 6: introspection failing in any way never loses the new token --------------------------


async def test_an_introspection_bug_never_loses_the_rotated_token(
    org: FakeSalesforceOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """introspect() raising a non-library error: the token is used and the next refresh works."""
    flow = org.refresh_token_flow()

    async def broken(*_: object, **__: object) -> None:
        raise ValueError("a bug in the introspection parser")

    monkeypatch.setattr(flow, "introspect", broken)
    async with AsyncSession(flow, retry=FAST, introspect_expiry=True) as sf:
        assert (await sf.get("limits/")).status == 200
        assert sf.token is not None
        sf.refresher.invalidate(sf.token)
        assert (await sf.get("limits/")).status == 200
    assert org.stats.token_requests["refresh_token"] == 2
    assert_no_refresh_token_reused(org)


# -- item 8: a refresh already sent survives the close of the last session -----------------------


async def test_short_jobs_in_the_refresh_window_log_in_once(org: FakeSalesforceOrg) -> None:
    """Five short jobs, one session each, inside the refresh-ahead window: one new login."""
    flow = org.jwt_bearer_flow()
    token = await flow.fetch_token()
    for job in range(5):
        release = asyncio.Event()
        org.faults.token.push(Fault.hold(release))
        sf = AsyncSession(flow, token=stale(token) if job == 0 else None, retry=FAST)
        assert (await sf.get("limits/")).status == 200
        if sf.refresher._flight is not None:
            await org.faults.token.wait_held(1)
        closing = asyncio.create_task(sf.close())
        release.set()
        await closing
        org.faults.token.clear()
    assert org.stats.token_requests_total == 2  # the first login, and one refresh ahead


# -- item 9: flows and refreshers are collected when nothing uses them ---------------------------


async def test_flows_and_refreshers_are_garbage_collected(org: FakeSalesforceOrg) -> None:
    """200 flows made, used and closed leave no flow, refresher or token in memory."""
    flows: list[weakref.ref[ClientCredentialsFlow]] = []
    refreshers: list[weakref.ref[Refresher]] = []
    for _ in range(200):
        flow = org.client_credentials_flow()
        async with AsyncSession(flow, retry=FAST) as sf:
            await sf.get_token()
        flows.append(weakref.ref(flow))
        refreshers.append(weakref.ref(sf.refresher))
        del flow, sf
    gc.collect()
    assert [r for r in flows if r() is not None] == []
    assert [r for r in refreshers if r() is not None] == []


# -- item 10: an ended event loop never breaks a refresher ----------------------------------------


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_session_left_open_on_an_ended_loop_never_breaks_the_refresher(
    org: FakeSalesforceOrg,
) -> None:
    """A session left open on a finished loop; the next loop's refreshes still work."""
    flow = org.client_credentials_flow()

    def job_on_its_own_loop() -> None:
        async def job() -> None:
            sf = AsyncSession(flow, retry=FAST)  # never closed, as a forgetful test does
            (await sf.get("limits/")).release()

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(job())
        finally:
            loop.close()

    await asyncio.to_thread(job_on_its_own_loop)
    async with AsyncSession(flow, retry=FAST) as sf:
        assert sf.token is not None
        sf.refresher.invalidate(sf.token)
        assert (await sf.get("limits/")).status == 200
    assert org.stats.token_requests_total == 2


# -- item 11: waiters left behind by a close get a typed error -----------------------------------


async def test_waiters_in_a_task_group_get_a_typed_error_when_the_session_closes(
    org: FakeSalesforceOrg,
) -> None:
    """Closing while tasks wait for a refresh not yet sent: they fail loudly, not silently."""
    store = BusyStore()
    flow = org.client_credentials_flow()
    blocker = store.lock(flow.store_key(), lease_s=60.0)
    assert await blocker.acquire()
    sf = AsyncSession(flow, store=store, retry=FAST)

    async def three_calls_then_close() -> None:
        async with asyncio.TaskGroup() as tasks:
            for _ in range(3):
                tasks.create_task(sf.get("limits/"))
            await store.found_taken.wait()
            await sf.close()

    with pytest.raises(ExceptionGroup) as group:
        await three_calls_then_close()
    assert [type(e) for e in group.value.exceptions] == [SessionClosedError] * 3
    assert org.stats.token_requests_total == 0
    await blocker.release()


# -- item 12: token requests never go through the user's aiohttp session -------------------------


async def test_token_requests_use_a_pool_of_their_own(org: FakeSalesforceOrg) -> None:
    """With the user's only connection busy and their trace on, a refresh still goes through."""
    flow = org.client_credentials_flow()
    seen: list[str] = []

    async def on_start(_: object, __: object, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    connector = aiohttp.TCPConnector(limit=1)
    async with AsyncSession(flow, retry=FAST, connector=connector, trace_configs=[trace]) as sf:
        assert (await sf.get("limits/")).status == 200
        release = asyncio.Event()
        org.faults.api.push(Fault.hold(release))
        busy = asyncio.create_task(sf.get("limits/"))  # holds the only connection
        await org.faults.api.wait_held(1)
        assert sf.token is not None
        sf.refresher.invalidate(sf.token)
        async with asyncio.timeout(10):
            await sf.get_token()  # not queued behind the busy connection
        release.set()
        assert (await busy).status == 200
    assert "/services/oauth2/token" not in seen
    assert org.stats.token_requests_total == 2


async def test_a_wrong_secret_is_refused_once_whatever_the_user_session_does(
    org: FakeSalesforceOrg,
) -> None:
    """invalid_client stays a permanent error (one request), with the user's options set."""
    flow = ClientCredentialsFlow(
        client_id=org.app.client_id, client_secret="wrong", login_url=org.my_domain_url
    )
    async with AsyncSession(flow, retry=FAST, raise_for_status=True) as sf:
        for _ in range(3):
            with pytest.raises(InvalidClientError):
                await sf.get("limits/")
    assert org.stats.token_requests_total == 1


# -- item 13: authorization-code tokens without an identity URL ----------------------------------


async def test_authorization_code_tokens_without_an_identity_url_need_a_store_key(
    org: FakeSalesforceOrg,
) -> None:
    """Tokens rebuilt without 'id' cannot name their user: refused unless store_key says."""
    flow = org.authorization_code_flow("http://localhost:8765/callback")
    alice = Token(access_token="00D!alice", instance_url=org.instance_url, refresh_token="rt-a")
    bob = Token(access_token="00D!bob", instance_url=org.instance_url, refresh_token="rt-b")
    with pytest.raises(ConfigurationError, match="store_key"):
        AsyncSession(flow, token=alice)
    async with (
        AsyncSession(flow, token=alice, store_key="alice") as a,
        AsyncSession(flow, token=bob, store_key="bob") as b,
    ):
        assert a.refresher is not b.refresher
        assert (await a.get_token()).access_token == "00D!alice"
        assert (await b.get_token()).access_token == "00D!bob"


# -- item 15: forgetting a credential holds for every process ------------------------------------


async def test_forget_reaches_every_process_and_no_older_token_comes_back(
    org: FakeSalesforceOrg, tmp_path: Path
) -> None:
    """A logout in one process: the others drop the token, and nothing older is saved over it."""
    store = FileTokenStore(tmp_path / "tokens.json", check_interval_s=0.05)
    first = org.issue_refresh_token()
    one = Refresher(org.refresh_token_flow(first), store=store, retry=FAST)
    two = Refresher(org.refresh_token_flow(first), store=store, retry=FAST)
    async with one, two:
        token = await one.get_token()
        assert (await two.get_token()).access_token == token.access_token  # adopted
        await one.forget()
        await eventually(lambda: two.token is None)  # its watch saw the tombstone
        for refresher in (one, two):
            with pytest.raises(CredentialForgottenError):
                await refresher.get_token()
        with pytest.raises(StaleTokenWriteError):
            await store.save(one.flow.store_key(), token, generation=1)
        # A new login is a new start, for every process.
        fresh = await org.refresh_token_flow(org.issue_refresh_token()).fetch_token()
        await one.put_token(fresh)
        await two.trust_refresh_token()
        two.reset()
        assert (await two.get_token()).access_token == fresh.access_token
    assert org.stats.token_requests["refresh_token"] == 2
    assert_no_refresh_token_reused(org)
