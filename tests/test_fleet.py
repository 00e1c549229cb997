"""A fleet of real OS processes sharing one token through a store, against the fake org.

The fake org runs here, on the test's event loop; each worker is a separate Python process
(``tests/fleet_worker.py``) with its own `AsyncSession`, sending bursts of concurrent API
requests through several token expiries. Token requests are counted by the org itself.
Sessions last 2 s (the org keeps them 1.5 s longer, see ORG_SLACK_S).

Sized for 2 cores, which the org and the workers share: about 1,300 requests a second, so
a burst of 8 x 500 requests takes some 3 s. Bursts start BURST_INTERVAL_S apart, and each
one starts after the previous token's refresh point, so a run of 3 bursts crosses 2
expiries and must make exactly 3 token requests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from sfoauth_async import FileTokenStore, RedisTokenStore, StoredToken, TokenStore
from sfoauth_async.testing import FakeSalesforceOrg, Fault

pytestmark = pytest.mark.stress
log = logging.getLogger(__name__)

# Short sessions, so that a run crosses several expiries in a few seconds.
LIFETIME_S = 2.0
# The org keeps sessions a little longer than the workers believe. On 2 saturated cores a
# request waits up to ~1.5 s between being signed and reaching the org, far more than the
# refresher's safety margin for a 2 s session (lifetime / 20 = 0.1 s), so with equal
# lifetimes some replays after a 401 meet an expired session too. Real sessions (15 min to
# 24 h) have a margin of 45-60 s; this slack stands for it.
ORG_SLACK_S = 1.5
# Bursts start a session apart, plus the up to ~1 s a token request can take on a loaded
# machine: each burst then starts past the previous token's refresh point, so every burst
# makes exactly one token request (a burst reads the token once per request, at its start).
BURST_INTERVAL_S = LIFETIME_S + 1.0
API_PATH = "/services/data/v67.0/limits/"
# Sized for a 2 s session on a loaded 2-core machine: a slow token request must never time
# out and be sent again (a second token request), and the lease outlives the refresh.
RETRY = {"attempts": 2, "total_timeout_s": 4.0, "attempt_timeout_s": 4.0, "lock_lease_s": 6.0}

Start = Callable[[str, dict[str, Any]], Any]


@pytest.fixture
async def org() -> AsyncIterator[FakeSalesforceOrg]:
    """A fake org whose sessions last LIFETIME_S, with no API or login limits in the way."""
    async with FakeSalesforceOrg(
        session_lifetime=timedelta(seconds=LIFETIME_S + ORG_SLACK_S),
        login_rate_limit_per_hour=None,
    ) as fake:
        fake.api_limit = 10**9
        yield fake


def client_credentials(org: FakeSalesforceOrg) -> dict[str, Any]:
    """Worker config of the org's client-credentials flow."""
    return {
        "kind": "client_credentials",
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "login_url": org.my_domain_url,
    }


def refresh_token(org: FakeSalesforceOrg, token: str) -> dict[str, Any]:
    """Worker config of a refresh-token flow starting from ``token``."""
    return {
        "kind": "refresh_token",
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "refresh_token": token,
        "login_url": org.login_url,
    }


def fleet_config(
    store: dict[str, Any],
    flow: dict[str, Any],
    *,
    concurrency: int,
    bursts: int = 3,
    interval_s: float = BURST_INTERVAL_S,
    retry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One worker's config (see tests/fleet_worker.py)."""
    return {
        "store": store,
        "flow": flow,
        "session_timeout_s": LIFETIME_S,
        "retry": retry or RETRY,
        "concurrency": concurrency,
        "bursts": bursts,
        "interval_s": interval_s,
        "path": API_PATH,
    }


async def start_all(start: Start, configs: list[dict[str, Any]]) -> list[Any]:
    """Start one worker per config and wait until every one is ready."""
    workers = [await start("fleet", config) for config in configs]
    for worker in workers:
        await worker.ready()
    return workers


async def run_fleet(start: Start, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start one worker per config, let them all go at once, and gather their results."""
    workers = await start_all(start, configs)
    for worker in workers:
        worker.go()
    return [await worker.result() for worker in workers]


def assert_one_token_request_per_expiry(
    results: list[dict[str, Any]],
    org: FakeSalesforceOrg,
    stored: StoredToken | None,
) -> list[float]:
    """Each token request of the fleet made one generation, and no session saw two."""
    fetches = sorted(t for r in results for t in r["fetch_times"])
    log.info(
        "token requests %d, API requests %d (%d answered 401 and were replayed)",
        org.stats.token_requests_total,
        org.stats.api_requests,
        org.stats.unauthorized,
    )
    assert stored is not None
    assert org.stats.token_requests_total == len(fetches) == stored.generation
    gaps = [later - earlier for earlier, later in itertools.pairwise(fetches)]
    # Two logins for one expiry would be milliseconds apart; successive refreshes are about
    # three quarters of a session apart, give or take the load of two busy cores.
    assert all(gap > LIFETIME_S / 4 for gap in gaps), f"two token requests in one session: {gaps}"
    log.info("seconds between token requests: %s", [round(g, 2) for g in gaps])
    return gaps


def assert_every_request_succeeded(results: list[dict[str, Any]], concurrency: int) -> None:
    """No worker saw an error, and every request of every burst answered 200."""
    for result in results:
        assert result["errors"] == {}, result["samples"]
        assert result["ok"] == result["bursts"] * concurrency


async def stored_token(store: TokenStore, key: str) -> StoredToken | None:
    """What ``store`` holds under ``key``."""
    return await store.load(key)


@pytest.mark.redis
async def test_fleet_on_redis_makes_one_token_request_per_expiry(
    org: FakeSalesforceOrg,
    redis_url: str,
    start_worker: Start,
) -> None:
    """8 processes x 500 concurrent requests on Redis: 1 token request per expiry, no error."""
    config = fleet_config(
        {"kind": "redis", "url": redis_url},
        client_credentials(org),
        concurrency=500,
    )
    results = await run_fleet(start_worker, [config] * 8)
    async with RedisTokenStore.from_url(redis_url) as store:
        stored = await stored_token(store, org.client_credentials_flow().store_key())
    gaps = assert_one_token_request_per_expiry(results, org, stored)
    assert len(gaps) >= 2, "the run must cross several expiries"
    assert_every_request_succeeded(results, 500)
    assert sum(r["adopted"] for r in results) >= 7  # the first token, at least


@pytest.mark.redis
async def test_fleet_with_refresh_token_rotation_never_reuses_a_refresh_token(
    org: FakeSalesforceOrg,
    redis_url: str,
    start_worker: Start,
) -> None:
    """Rotation on, 8 x 500 on Redis: 0 invalid_grant, one refresh per expiry, all succeed."""
    org.app.rotate_refresh_tokens = True
    first_refresh_token = org.issue_refresh_token()
    config = fleet_config(
        {"kind": "redis", "url": redis_url},
        refresh_token(org, first_refresh_token),
        concurrency=500,
    )
    results = await run_fleet(start_worker, [config] * 8)
    flow = org.refresh_token_flow(first_refresh_token)
    async with RedisTokenStore.from_url(redis_url) as store:
        stored = await stored_token(store, flow.store_key())
    gaps = assert_one_token_request_per_expiry(results, org, stored)
    assert len(gaps) >= 2
    assert org.stats.token_requests == {"refresh_token": len(gaps) + 1}
    assert_every_request_succeeded(results, 500)
    # The store holds the live end of the rotation chain: it still refreshes.
    assert stored is not None
    assert stored.token.refresh_token not in (None, first_refresh_token)
    fresh = await org.refresh_token_flow(stored.token.refresh_token).fetch_token()
    assert fresh.refresh_token != stored.token.refresh_token


@pytest.mark.redis
async def test_lock_of_a_killed_process_frees_the_fleet_when_its_lease_ends(
    org: FakeSalesforceOrg,
    redis_url: str,
    start_worker: Start,
) -> None:
    """Kill -9 of the lock holder mid-refresh: the others log in once the lease ends."""
    lease_s = 3.0
    retry = {
        "attempts": 1,
        "total_timeout_s": 1.5,
        "attempt_timeout_s": 1.5,
        "lock_lease_s": lease_s,
    }
    store_config = {"kind": "redis", "url": redis_url}
    flow = client_credentials(org)
    victim_config = fleet_config(store_config, flow, concurrency=1, bursts=1, retry=retry)
    other_config = fleet_config(store_config, flow, concurrency=200, bursts=1, retry=retry)
    victim, *others = await start_all(start_worker, [victim_config] + [other_config] * 3)
    release = asyncio.Event()
    org.faults.token.push(Fault.hold(release))
    victim.go()
    await org.faults.token.wait_held(1)  # the victim holds the lock and waits for a token
    lock_name = f"sfoauth:lock:{org.client_credentials_flow().store_key()}"
    raw = redis.asyncio.from_url(redis_url)
    try:
        lease_left_ms = await raw.pttl(lock_name)
    finally:
        await raw.aclose()
    lease_ends_at = time.time() + lease_left_ms / 1000
    assert 0 < lease_left_ms <= lease_s * 1000
    for worker in others:
        worker.go()
    victim.kill()
    killed_at = time.time()
    await victim.process.wait()
    release.set()  # the org may answer now: nobody is listening any more

    results = [await worker.result() for worker in others]
    assert_every_request_succeeded(results, 200)
    fetches = sorted(t for r in results for t in r["fetch_times"])
    assert len(fetches) == 1, "one survivor logs in for everybody"
    assert fetches[0] >= lease_ends_at - 0.05, "nobody may refresh while the lease runs"
    recovered_at = min(r["first_ok_at"] for r in results)
    recovery_s = recovered_at - killed_at
    assert recovered_at - lease_ends_at < 2.0, f"recovery took {recovery_s:.2f} s after the kill"
    assert org.stats.token_requests_total == 2  # the victim's, and the survivor's
    log.info(
        "first success %.2f s after kill -9; the lease ended %.2f s after it",
        recovery_s,
        lease_ends_at - killed_at,
    )


@pytest.mark.redis
async def test_redis_outage_falls_back_for_client_credentials_and_fails_refresh_tokens(
    org: FakeSalesforceOrg,
    redis_server_factory: Callable[[], Any],
    start_worker: Start,
) -> None:
    """Redis stops: client credentials refresh in-process (logged); refresh tokens raise."""
    org.app.rotate_refresh_tokens = True
    server = redis_server_factory()
    store_config = {"kind": "redis", "url": server.url}
    retry = {**RETRY, "cooldown_s": 0.3}
    first_refresh_token = org.issue_refresh_token()
    common = {"concurrency": 100, "bursts": 9, "interval_s": 0.6, "retry": retry}
    cc = fleet_config(store_config, client_credentials(org), **common)
    rt = fleet_config(store_config, refresh_token(org, first_refresh_token), **common)
    pause = {"pause_after_first_burst": True}
    workers = await start_all(start_worker, [cc | pause] * 3 + [rt | pause] * 3)
    cc_workers, rt_workers = workers[:3], workers[3:]
    for worker in workers:
        worker.go()
    for worker in workers:
        assert (await worker.event("burst"))["errors"] == 0
    # Every worker made its first burst and paused: one login per grant, both in Redis.
    assert org.stats.token_requests == {"client_credentials": 1, "refresh_token": 1}
    async with RedisTokenStore.from_url(server.url) as store:
        for key in (
            org.client_credentials_flow().store_key(),
            org.refresh_token_flow(first_refresh_token).store_key(),
        ):
            assert (await stored_token(store, key)) is not None

    server.stop()
    for worker in workers:
        worker.go()
    # Once their session expires the refresh-token workers fail: wait until each has.
    for worker in rt_workers:
        while (await worker.event("burst"))["errors"] == 0:
            pass
    rt_requests_while_down = org.stats.token_requests["refresh_token"]
    server.restart()  # empty: the refresh-token workers start over from their own token
    cc_results = [await worker.result() for worker in cc_workers]
    rt_results = [await worker.result() for worker in rt_workers]

    assert_every_request_succeeded(cc_results, 100)
    assert all(r["fallbacks"] >= 1 for r in cc_results), "the fallback must be logged"
    assert rt_requests_while_down == 1, "no refresh token is used without the lock"
    for result in rt_results:
        assert set(result["errors"]) <= {
            "StoreUnavailableError from StoreUnavailableError",
            "RefreshCooldownError from StoreUnavailableError",
        }, result["samples"]
        message = result["samples"]["StoreUnavailableError from StoreUnavailableError"]
        assert "never refreshed without the fleet-wide lock" in message
        assert f"127.0.0.1:{server.port}" in message
        # Back with Redis, refresh tokens work again, and none was ever refused.
        assert result["burst_errors"][-1] == 0, result["burst_errors"]
        assert "invalid_grant" not in str(result["samples"])


async def test_fleet_on_a_file_store_makes_one_token_request_per_expiry(
    org: FakeSalesforceOrg,
    tmp_path: Path,
    start_worker: Start,
) -> None:
    """4 processes x 250 requests sharing a FileTokenStore: one token request per expiry."""
    path = tmp_path / "tokens.json"
    config = fleet_config(
        {"kind": "file", "path": str(path)},
        client_credentials(org),
        concurrency=250,
    )
    results = await run_fleet(start_worker, [config] * 4)
    stored = await stored_token(FileTokenStore(path), org.client_credentials_flow().store_key())
    gaps = assert_one_token_request_per_expiry(results, org, stored)
    assert len(gaps) >= 2
    assert_every_request_succeeded(results, 250)
