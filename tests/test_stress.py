"""Thousands of tasks against the fake org: one token request per refresh, whatever happens."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from sfoauth_async import (
    AsyncSession,
    InvalidGrantError,
    RetryPolicy,
    Token,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

pytestmark = pytest.mark.stress

STORM = 10_000
FAST_RETRY = RetryPolicy(attempts=5, total_timeout_s=10.0, wait_initial_s=0.01, wait_max_s=0.05)


def expired(token: Token) -> Token:
    """The same token, as if it had been received three hours ago."""
    past = datetime.now(UTC) - timedelta(hours=3)
    return dataclasses.replace(token, received_at=past, expires_at=past + timedelta(hours=2))


async def storm(sf: AsyncSession, count: int = STORM) -> list[int]:
    """Send ``count`` concurrent GETs and return their statuses."""

    async def one() -> int:
        async with sf.get("limits/") as resp:
            await resp.read()
            return resp.status

    return await asyncio.gather(*(one() for _ in range(count)))


async def test_ten_thousand_requests_on_an_expired_token_make_one_token_request(
    fake_org: FakeSalesforceOrg,
) -> None:
    """10,000 concurrent requests on a token known to be expired: 1 token request, all 200."""
    flow = fake_org.client_credentials_flow()
    stale = expired(await flow.fetch_token())
    fake_org.stats.reset()
    async with AsyncSession(flow, token=stale, retry=FAST_RETRY) as sf:
        statuses = await storm(sf)
    assert statuses == [200] * STORM
    assert fake_org.stats.token_requests_total == 1
    assert fake_org.stats.unauthorized == 0


async def test_ten_thousand_requests_on_a_revoked_session_make_one_token_request(
    fake_org: FakeSalesforceOrg,
) -> None:
    """10,000 requests whose session the org ended meanwhile: 401s heal with 1 token request."""
    async with AsyncSession(fake_org.jwt_bearer_flow(), retry=FAST_RETRY) as sf:
        await sf.get_token()
        fake_org.expire_all_sessions()
        fake_org.stats.reset()
        statuses = await storm(sf)
    assert statuses == [200] * STORM
    assert fake_org.stats.token_requests_total == 1
    assert fake_org.stats.unauthorized > 0


async def test_slow_token_endpoint_still_makes_one_token_request(
    fake_org: FakeSalesforceOrg,
) -> None:
    """With the token endpoint slowed to widen the race, still exactly 1 token request."""
    flow = fake_org.client_credentials_flow()
    stale = expired(await flow.fetch_token())
    fake_org.stats.reset()
    fake_org.token_delay_s = 0.5
    async with AsyncSession(flow, token=stale, retry=FAST_RETRY) as sf:
        statuses = await storm(sf)
    assert statuses == [200] * STORM
    assert fake_org.stats.token_requests_total == 1
    assert fake_org.stats.max_concurrent_token_requests == 1


async def test_cancelled_waiters_do_not_cancel_the_refresh(fake_org: FakeSalesforceOrg) -> None:
    """Cancel the first waiter, then all: the refresh completes, its token is cached."""
    flow = fake_org.client_credentials_flow()
    release = asyncio.Event()
    fake_org.faults.token.push(Fault.hold(release))
    async with AsyncSession(flow, retry=FAST_RETRY) as sf:
        first = asyncio.create_task(sf.get_token())
        await fake_org.faults.token.wait_held(1)
        others = [asyncio.create_task(sf.get_token()) for _ in range(1000)]
        await asyncio.sleep(0)  # one turn of the loop: each new task runs to its first await
        assert sf.stats.waits == 1001  # ... so every waiter has joined the one flight
        first.cancel()
        for task in others:
            task.cancel()
        results = await asyncio.gather(first, *others, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        flight = sf.refresher._flight
        assert flight is not None
        release.set()
        await asyncio.wait([flight])
        token = await sf.get_token()
        assert (await sf.get("limits/")).status == 200
    assert token.access_token
    assert fake_org.stats.token_requests_total == 1


async def test_permanent_error_in_a_storm_is_one_request_and_fails_fast(
    fake_org: FakeSalesforceOrg,
) -> None:
    """invalid_grant during a storm: 1 token request, every waiter typed, next call fast."""
    flow = fake_org.refresh_token_flow()
    fake_org.faults.token.push(Fault.oauth_error("invalid_grant", "expired access/refresh token"))
    async with AsyncSession(flow, retry=FAST_RETRY) as sf:
        waiters = (sf.get_token() for _ in range(STORM))
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, InvalidGrantError) for r in results)
        with pytest.raises(InvalidGrantError, match="Run the authorization flow again"):
            await sf.get("limits/")
    assert fake_org.stats.token_requests_total == 1


async def test_transient_faults_are_retried_until_success(fake_org: FakeSalesforceOrg) -> None:
    """503, dropped connection, 503, then success: one refresh, every request succeeds."""
    fake_org.faults.token.push(Fault.html(503), Fault.drop(), Fault.status(503))
    async with AsyncSession(fake_org.jwt_bearer_flow(), retry=FAST_RETRY) as sf:
        statuses = await storm(sf, 2000)
    assert statuses == [200] * 2000
    assert fake_org.stats.token_requests_total == 4
    assert sf.stats.failures == 0


async def test_short_sessions_under_steady_load_never_see_a_401() -> None:
    """3-second sessions, 6 seconds of load: refreshed ahead, 0 401s, nobody waits."""
    lifetime = timedelta(seconds=3)
    # The org keeps sessions 1.5 s longer than the client believes: on two loaded cores a
    # request can wait that long between being signed and reaching the org, far more than
    # a 3 s session's margin (0.15 s). Real sessions (15 min to 24 h) have 45-60 s of it.
    async with FakeSalesforceOrg(session_lifetime=lifetime + timedelta(seconds=1.5)) as org:
        flow = org.client_credentials_flow()
        async with AsyncSession(flow, session_timeout=lifetime, retry=FAST_RETRY) as sf:
            await sf.get_token()
            waits_before = sf.stats.waits
            org.stats.reset()
            deadline = time.monotonic() + 2 * lifetime.total_seconds()

            async def steady() -> int:
                sent = 0
                while time.monotonic() < deadline:
                    async with sf.get("limits/") as resp:
                        assert resp.status == 200
                    sent += 1
                return sent

            sent = sum(await asyncio.gather(*(steady() for _ in range(50))))
        assert sent > 500
        assert org.stats.unauthorized == 0
        assert sf.stats.waits == waits_before
        assert 1 <= org.stats.token_requests_total <= 3
        assert sf.stats.background_refreshes == org.stats.token_requests_total
