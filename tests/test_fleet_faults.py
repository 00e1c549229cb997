"""Rotation-safe refreshes across a fleet, under store and process faults (issue 7: 3, 4, 5, 7).

Against a fake org that rotates refresh tokens and revokes the grant on reuse, and a real
redis-server. Two `Refresher` objects with their own flow objects stand for two processes;
where a process must really stop or die, it is a ``tests/fleet_worker.py`` process, frozen
with SIGSTOP or killed with SIGKILL in the middle of its refresh. Every test asserts exact
token-request counts and that no refresh token was sent twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.exceptions
from faults import assert_no_refresh_token_reused

from sfoauth_async import (
    Refresher,
    RefreshOutcomeUnknownError,
    RetryPolicy,
    StoreError,
    StoreUnavailableError,
)
from sfoauth_async._redis_store import RedisTokenStore
from sfoauth_async.testing import FakeSalesforceOrg, Fault

pytestmark = pytest.mark.redis

RETRY = RetryPolicy(
    attempts=2,
    total_timeout_s=5.0,
    wait_initial_s=0.01,
    wait_max_s=0.05,
    cooldown_s=0.0,
    lock_lease_s=1.0,
)
CHECK_S = 0.05  # how often processes compare their refresh token with the store


@pytest.fixture
async def org() -> AsyncIterator[FakeSalesforceOrg]:
    """A fake org that rotates refresh tokens and revokes a grant on reuse."""
    async with FakeSalesforceOrg(rotate_refresh_tokens=True) as fake:
        yield fake


def process(org: FakeSalesforceOrg, store: RedisTokenStore, first: str) -> Refresher:
    """A 'process': its own flow object, built from the refresh token it was given first."""
    return Refresher(org.refresh_token_flow(first), store=store, retry=RETRY)


def break_redis(server: Any, fault: str) -> None:
    """Make a live redis-server refuse writes: out of memory, or a read-only replica."""
    if fault == "oom":
        server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        server.command("CONFIG", "SET", "maxmemory", "1")
    else:
        # A replica of a primary that is not there keeps its data and refuses writes.
        server.command("REPLICAOF", "127.0.0.1", "1")


def mend_redis(server: Any, fault: str) -> None:
    """Undo `break_redis`."""
    if fault == "oom":
        server.command("CONFIG", "SET", "maxmemory", "0")
    else:
        server.command("REPLICAOF", "NO", "ONE")


async def refresh(refresher: Refresher) -> str:
    """Force a refresh, as a 401 does; the new access token."""
    if refresher.token is not None:
        refresher.invalidate(refresher.token)
    return (await refresher.get_token()).access_token


# -- item 3: a lapsed lease never lets a second process spend the refresh token ----------------


async def test_a_refresh_slower_than_the_lease_keeps_its_lock(
    org: FakeSalesforceOrg, redis_url: str
) -> None:
    """A token endpoint slower than the lease: the holder renews, the other waits, one request."""
    first = org.issue_refresh_token()
    async with RedisTokenStore.from_url(redis_url, check_interval_s=CHECK_S) as store:
        a, b = process(org, store, first), process(org, store, first)
        release = asyncio.Event()
        org.faults.token.push(Fault.hold_answer(release))
        async with a, b:
            first_call = asyncio.create_task(a.get_token())
            await org.faults.token.wait_held(1)
            second_call = asyncio.create_task(b.get_token())
            await asyncio.sleep(3 * RETRY.lease_s)  # three leases go by: only time ends them
            assert org.stats.token_requests_total == 1
            release.set()
            assert (await first_call).access_token == (await second_call).access_token
    assert org.stats.token_requests_total == 1
    assert_no_refresh_token_reused(org)


def worker_config(org: FakeSalesforceOrg, redis_url: str, first: str) -> dict[str, Any]:
    """A refresh-once worker on the shared store, starting from ``first``."""
    return {
        "store": {"kind": "redis", "url": redis_url, "check_interval_s": CHECK_S},
        "flow": {
            "kind": "refresh_token",
            "client_id": org.app.client_id,
            "client_secret": org.app.client_secret,
            "refresh_token": first,
            "login_url": org.login_url,
        },
        "retry": {
            "attempts": 2,
            "total_timeout_s": 20.0,
            "cooldown_s": 0.0,
            "lock_lease_s": RETRY.lease_s,
        },
    }


@pytest.mark.stress
async def test_a_holder_frozen_past_its_lease_saves_and_the_others_adopt(
    org: FakeSalesforceOrg, redis_url: str, start_worker: Callable[..., Any]
) -> None:
    """SIGSTOP of the holder mid-refresh, past its lease: nobody reuses its refresh token."""
    first = org.issue_refresh_token()
    holder = await start_worker("refresh-once", worker_config(org, redis_url, first))
    key = (await holder.ready())["store_key"]
    release = asyncio.Event()
    org.faults.token.push(Fault.hold_answer(release))  # Salesforce rotates; the answer waits
    holder.go()
    await org.faults.token.wait_held(1)
    holder.freeze()
    async with RedisTokenStore.from_url(redis_url, check_interval_s=CHECK_S) as store:
        client = store.client
        async with asyncio.timeout(10):
            while await client.exists(f"sfoauth:lock:{key}"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the frozen holder's lease lapses on Redis' clock
        other = process(org, store, first)
        async with other:
            waiting = asyncio.create_task(other.get_token())
            await asyncio.sleep(2 * RETRY.lease_s)  # give it time to misbehave: it must not
            assert org.stats.token_requests_total == 1
            release.set()
            holder.thaw()
            result = await holder.result()
            assert (await waiting).access_token == result["access_token"]
    assert org.stats.token_requests_total == 1
    assert_no_refresh_token_reused(org)


@pytest.mark.stress
async def test_a_holder_killed_mid_refresh_leaves_a_typed_error_not_a_revoked_grant(
    org: FakeSalesforceOrg, redis_url: str, start_worker: Callable[..., Any]
) -> None:
    """SIGKILL of the holder after Salesforce rotated: others raise, never reuse the token."""
    first = org.issue_refresh_token()
    holder = await start_worker("refresh-once", worker_config(org, redis_url, first))
    await holder.ready()
    release = asyncio.Event()
    org.faults.token.push(Fault.hold_answer(release))
    holder.go()
    await org.faults.token.wait_held(1)
    holder.kill()
    await holder.process.wait()
    release.set()  # the rotated refresh token goes to a dead socket
    async with RedisTokenStore.from_url(redis_url, check_interval_s=CHECK_S) as store:
        other = process(org, store, first)
        async with other:
            with pytest.raises(RefreshOutcomeUnknownError) as caught:
                await other.get_token()
            # Met again, the same marker fails at once, sending nothing.
            with pytest.raises(RefreshOutcomeUnknownError):
                await other.get_token()
    assert caught.value.owner is not None
    assert f":{holder.pid}:" in caught.value.owner
    assert str(holder.pid) in str(caught.value)
    assert org.stats.token_requests_total == 1
    assert_no_refresh_token_reused(org)


# -- item 4: a rotated token the store will not take is kept, and saved later --------------------


@pytest.mark.parametrize("fault", ["oom", "readonly"])
async def test_a_rotated_token_the_store_refuses_keeps_its_lock_until_saved(
    org: FakeSalesforceOrg, redis_server_factory: Callable[[], Any], fault: str
) -> None:
    """The save fails (OOM, READONLY): the holder serves its token, keeps the lock, saves later."""
    server = redis_server_factory()
    first = org.issue_refresh_token()
    async with RedisTokenStore.from_url(server.url, check_interval_s=CHECK_S) as store:
        a, b = process(org, store, first), process(org, store, first)
        async with a, b:
            token = await a.get_token()
            assert (await b.get_token()).access_token == token.access_token
            release = asyncio.Event()
            org.faults.token.push(Fault.hold_answer(release))
            a.invalidate(token)
            refreshing = asyncio.create_task(a.get_token())
            await org.faults.token.wait_held(1)
            break_redis(server, fault)
            release.set()
            new = await refreshing  # served from memory, though the store refused it
            assert new.access_token != token.access_token
            # The other process needs a new token too: it must not touch the spent one.
            b.invalidate(token)
            waiting = asyncio.create_task(b.get_token())
            await asyncio.sleep(2 * RETRY.lease_s)  # long enough for a lapsed lease, if any
            assert org.stats.token_requests_total == 2
            mend_redis(server, fault)
            assert (await waiting).access_token == new.access_token
    assert org.stats.token_requests_total == 2
    assert_no_refresh_token_reused(org)


async def test_a_rotated_token_is_saved_once_a_stopped_redis_is_back(
    org: FakeSalesforceOrg, redis_server_factory: Callable[[], Any]
) -> None:
    """Redis down past every save retry: the token is served, then saved when Redis returns."""
    server = redis_server_factory()
    first = org.issue_refresh_token()
    async with RedisTokenStore.from_url(server.url, check_interval_s=CHECK_S) as store:
        a, b = process(org, store, first), process(org, store, first)
        async with a, b:
            token = await a.get_token()
            assert (await b.get_token()).access_token == token.access_token
            release = asyncio.Event()
            org.faults.token.push(Fault.hold_answer(release))
            a.invalidate(token)
            refreshing = asyncio.create_task(a.get_token())
            await org.faults.token.wait_held(1)
            server.stop()
            release.set()
            new = await refreshing  # served from memory, the only copy of the rotated token
            assert new.access_token != token.access_token
            b.invalidate(token)
            with pytest.raises(StoreUnavailableError):
                await b.get_token()  # no store, no lock: it sends nothing
            assert org.stats.token_requests_total == 2
            server.restart()  # empty: no persistence
            async with asyncio.timeout(10):
                while (stored := await store.load(a.flow.store_key())) is None:  # noqa: ASYNC110
                    await asyncio.sleep(CHECK_S)  # the save is retried on its own timer
            assert stored.token == new
            assert (await b.get_token()).access_token == new.access_token
    assert org.stats.token_requests_total == 2
    assert_no_refresh_token_reused(org)


# -- item 5: a store that lost its data gets the live refresh token back --------------------------


@pytest.mark.parametrize("loss", ["flushdb", "restart"])
async def test_a_process_with_a_stale_configured_token_adopts_the_written_back_one(
    org: FakeSalesforceOrg, redis_server_factory: Callable[[], Any], loss: str
) -> None:
    """The store loses everything; a process starting from a long-rotated token never uses it."""
    server = redis_server_factory()
    first = org.issue_refresh_token()
    async with RedisTokenStore.from_url(server.url, check_interval_s=CHECK_S) as store:
        a = process(org, store, first)
        async with a:
            await a.get_token()
            live = await refresh(a)  # the configured token is now two rotations old
            if loss == "flushdb":
                server.command("FLUSHDB")
            else:
                server.stop()
                server.restart()  # no persistence: empty
            late = process(org, store, first)
            async with late:
                assert (await late.get_token()).access_token == live
    assert org.stats.token_requests_total == 2
    assert_no_refresh_token_reused(org)


# -- item 7: Redis saying "not now" never kills a refresh-token session ---------------------------


@pytest.mark.parametrize("fault", ["oom", "readonly"])
async def test_a_refresh_token_session_recovers_by_itself_when_redis_does(
    org: FakeSalesforceOrg, redis_server_factory: Callable[[], Any], fault: str
) -> None:
    """OOM or READONLY during a refresh: a transient error, then it works, without reset()."""
    server = redis_server_factory()
    first = org.issue_refresh_token()
    async with RedisTokenStore.from_url(server.url, check_interval_s=CHECK_S) as store:
        a = process(org, store, first)
        async with a:
            await a.get_token()
            break_redis(server, fault)
            with pytest.raises(StoreUnavailableError) as caught:
                await refresh(a)
            assert caught.value.transient
            mend_redis(server, fault)
            await refresh(a)
    assert org.stats.token_requests_total == 2
    assert_no_refresh_token_reused(org)


class _Refusing:
    """A stand-in Redis client whose every command fails with one exception."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.connection_pool = None

    def __getattr__(self, name: str) -> Any:
        async def command(*_: object, **__: object) -> None:
            raise self.exc

        return command


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ResponseError("BUSY Redis is busy running a script."),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
        redis.exceptions.ClusterDownError("The cluster is down"),
        redis.exceptions.MasterDownError("Link with MASTER is down"),
        redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas to write."),
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
    ],
    ids=["busy", "loading", "tryagain", "clusterdown", "masterdown", "noreplicas", "oom", "ro"],
)
async def test_redis_not_now_answers_are_transient(exc: Exception) -> None:
    """Every 'not now' answer maps to the transient StoreUnavailableError."""
    store = RedisTokenStore(_Refusing(exc))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError) as caught:
        await store.load("key")
    assert caught.value.transient


async def test_a_real_refusal_stays_a_store_error() -> None:
    """Anything else Redis refuses (a wrong type, a bad script) is not 'unavailable'."""
    refusing = _Refusing(redis.exceptions.ResponseError("WRONGTYPE Operation"))
    store = RedisTokenStore(refusing)  # type: ignore[arg-type]
    with pytest.raises(StoreError) as caught:
        await store.load("key")
    assert type(caught.value) is StoreError


# -- item 14: a stored token is checked before its bearer is used --------------------------------


async def test_a_stored_token_naming_a_foreign_host_is_never_used(
    org: FakeSalesforceOrg, redis_url: str
) -> None:
    """An unsealed record rewritten to point elsewhere: refused, its bearer never sent there."""
    first = org.issue_refresh_token()
    async with RedisTokenStore.from_url(redis_url, check_interval_s=CHECK_S) as store:
        a, b = process(org, store, first), process(org, store, first)
        async with a, b:
            await a.get_token()
            key = a.flow.store_key()
            stored = await store.load(key)
            assert stored is not None
            assert stored.token is not None
            planted = dataclasses.replace(stored.token, instance_url="https://evil.example.com")
            await store.save(key, planted, generation=stored.generation + 1)
            with pytest.raises(StoreError, match="does not allow"):
                await b.get_token()
    assert_no_refresh_token_reused(org)


async def test_a_reopened_session_watches_the_store_without_a_refresh(
    org: FakeSalesforceOrg, redis_url: str, redis_server: Any
) -> None:
    """Closed and reopened on a fresh token, a process still writes its token back."""
    first = org.issue_refresh_token()
    async with RedisTokenStore.from_url(redis_url, check_interval_s=CHECK_S) as store:
        a = process(org, store, first)
        async with a:
            token = await a.get_token()
        assert redis_server.command("FLUSHDB").startswith(b"+OK")
        async with a:  # the token is fresh: no refresh, but the watch runs again
            async with asyncio.timeout(10):
                while (await store.load(a.flow.store_key())) is None:  # noqa: ASYNC110
                    await asyncio.sleep(CHECK_S)  # the watch runs on its own timer
            assert (await a.get_token()).access_token == token.access_token
    assert org.stats.token_requests_total == 1
