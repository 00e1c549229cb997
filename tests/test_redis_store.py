"""`RedisTokenStore` against a real redis-server: leases, the Lua CAS, outages, the extra.

The protocol contract (round trip, compare-and-set, locks) is in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio
from cryptography.fernet import Fernet

from sfoauth_async import (
    ConfigurationError,
    RedisTokenStore,
    StaleTokenWriteError,
    StoredToken,
    StoreError,
    StoreUnavailableError,
    Token,
)

pytestmark = pytest.mark.redis

KEY = "sfoauth:jwt_bearer:login.salesforce.com:3MVG9example:etl@acme.com"
ACCESS = "00Dxx0000001gPL!AQ-secret-access-token"
REFRESH = "5Aep861-secret-refresh-token"


# One instant for every token of a run: two calls a second apart must still compare equal.
RECEIVED = datetime.now(UTC).replace(microsecond=0)


def make_token(n: int = 1, *, refresh_token: str | None = None) -> Token:
    """A token expiring in two hours, optionally with a refresh token."""
    received = RECEIVED
    return Token(
        access_token=f"{ACCESS}-{n}",
        instance_url="https://acme.my.salesforce.com",
        refresh_token=refresh_token,
        raw={"access_token": f"{ACCESS}-{n}", "refresh_token": refresh_token},
        received_at=received,
        expires_at=received + timedelta(hours=2),
    )


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A raw client on the (emptied) shared server, to look behind the store's back."""
    raw = redis.asyncio.from_url(redis_url)
    yield raw
    await raw.aclose()


@pytest.fixture
def store(client: redis.asyncio.Redis) -> RedisTokenStore:
    """A store on the raw client."""
    return RedisTokenStore(client)


async def test_record_is_json_with_its_generation_under_the_prefix(
    store: RedisTokenStore, client: redis.asyncio.Redis
) -> None:
    """The token is one JSON value at <prefix>token:<key> holding version and generation."""
    token = make_token()
    await store.save(KEY, token, generation=7)
    raw = await client.get(f"sfoauth:token:{KEY}")
    assert raw is not None
    assert json.loads(raw) == {"version": 2, "generation": 7, "token": token.to_dict()}


async def test_prefix_namespaces_tokens_and_locks(client: redis.asyncio.Redis) -> None:
    """Stores with different prefixes on one Redis never see each other's keys."""
    prod, staging = RedisTokenStore(client, prefix="prod:"), RedisTokenStore(client, prefix="stg:")
    await prod.save(KEY, make_token(), generation=1)
    assert await staging.load(KEY) is None
    assert await prod.lock(KEY, lease_s=5.0).acquire()
    assert await staging.lock(KEY, lease_s=5.0).acquire()
    assert sorted(await client.keys("*")) == [
        f"prod:lock:{KEY}".encode(),
        f"prod:token:{KEY}".encode(),
        f"stg:lock:{KEY}".encode(),
    ]


async def test_lua_cas_is_atomic_under_many_connections(redis_url: str) -> None:
    """50 stores on 50 connections race generations 1..5: each generation is won once."""
    clients = [redis.asyncio.from_url(redis_url, single_connection_client=True) for _ in range(50)]
    try:
        stores = [RedisTokenStore(c) for c in clients]
        outcomes: list[BaseException | None] = []
        for generation in range(1, 6):
            outcomes += await asyncio.gather(
                *(s.save(KEY, make_token(generation), generation=generation) for s in stores),
                return_exceptions=True,
            )
        assert outcomes.count(None) == 5
        assert all(isinstance(o, StaleTokenWriteError) for o in outcomes if o is not None)
        assert await stores[0].load(KEY) == StoredToken(make_token(5), 5)
    finally:
        for c in clients:
            await c.aclose()


async def test_value_that_is_not_ours_is_an_error_and_left_alone(
    store: RedisTokenStore, client: redis.asyncio.Redis
) -> None:
    """A foreign value at the token key: load and save raise StoreError, the value stays."""
    name = f"sfoauth:token:{KEY}"
    for foreign in (b"hello", b'{"generation": "x"}', b"[1]"):
        await client.set(name, foreign)
        with pytest.raises(StoreError, match="sfoauth:token:") as caught:
            await store.load(KEY)
        assert type(caught.value) is StoreError
        with pytest.raises(StoreError, match="left untouched"):
            await store.save(KEY, make_token(), generation=1)
        assert await client.get(name) == foreign


async def test_lease_expires_and_a_lapsed_release_frees_nothing(
    store: RedisTokenStore, client: redis.asyncio.Redis
) -> None:
    """After the lease ends another process takes the lock; the old release is a no-op."""
    lapsed = store.lock(KEY, lease_s=0.1)
    assert await lapsed.acquire()
    assert 0 < await client.pttl(f"sfoauth:lock:{KEY}") <= 100
    deadline = time.monotonic() + 5.0
    while await client.exists(f"sfoauth:lock:{KEY}"):  # until Redis ends the lease
        assert time.monotonic() < deadline, "the lease never ended"
        await asyncio.sleep(0.01)
    taker = store.lock(KEY, lease_s=30.0)
    assert await taker.acquire()
    await lapsed.release()  # quiet, and must not free the taker's lock
    assert not await store.lock(KEY, lease_s=30.0).acquire()
    await taker.release()
    assert await client.exists(f"sfoauth:lock:{KEY}") == 0


async def test_lock_value_is_a_random_owner_token(
    store: RedisTokenStore, client: redis.asyncio.Redis
) -> None:
    """Each acquisition stores its own random owner value, with the lease in PX."""
    first = store.lock(KEY, lease_s=30.0)
    assert await first.acquire()
    owner = await client.get(f"sfoauth:lock:{KEY}")
    await first.release()
    second = store.lock(KEY, lease_s=30.0)
    assert await second.acquire()
    assert await client.get(f"sfoauth:lock:{KEY}") not in (None, owner)
    assert 29_000 < await client.pttl(f"sfoauth:lock:{KEY}") <= 30_000
    await second.release()


async def test_record_without_refresh_token_expires_after_the_token(
    client: redis.asyncio.Redis,
) -> None:
    """A JWT/client-credentials record expires expire_after_token_s after the token."""
    store = RedisTokenStore(client, expire_after_token_s=600.0)
    token = make_token()
    await store.save(KEY, token, generation=1)
    assert token.expires_at is not None
    expected_ms = (token.expires_at.timestamp() + 600.0 - time.time()) * 1000
    assert abs(await client.pttl(f"sfoauth:token:{KEY}") - expected_ms) < 5_000


async def test_record_with_refresh_token_never_expires(
    store: RedisTokenStore, client: redis.asyncio.Redis
) -> None:
    """A record holding a refresh token has no TTL: it may be the only rotated copy."""
    await store.save(KEY, make_token(refresh_token=REFRESH), generation=1)
    assert await client.pttl(f"sfoauth:token:{KEY}") == -1


async def test_expiry_can_be_turned_off(client: redis.asyncio.Redis) -> None:
    """expire_after_token_s=None keeps every record forever."""
    await RedisTokenStore(client, expire_after_token_s=None).save(KEY, make_token(), generation=1)
    assert await client.pttl(f"sfoauth:token:{KEY}") == -1


def test_negative_expiry_is_a_configuration_error(client: redis.asyncio.Redis) -> None:
    """A negative or infinite expire_after_token_s is refused."""
    for bad in (-1.0, float("inf")):
        with pytest.raises(ConfigurationError, match="expire_after_token_s"):
            RedisTokenStore(client, expire_after_token_s=bad)


async def test_decode_responses_client_works_too(redis_url: str) -> None:
    """A client made with decode_responses=True loads and locks the same."""
    async with RedisTokenStore.from_url(redis_url, decode_responses=True) as store:
        await store.save(KEY, make_token(), generation=1)
        assert await store.load(KEY) == StoredToken(make_token(), 1)
        lock = store.lock(KEY, lease_s=5.0)
        assert await lock.acquire()
        await lock.release()
        assert await store.lock(KEY, lease_s=5.0).acquire()


async def test_encryption_keeps_secrets_out_of_redis(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With encryption_key_env no secret reaches Redis, and the token loads back equal."""
    monkeypatch.setenv("SFOAUTH_TEST_REDIS_KEY", Fernet.generate_key().decode())
    store = RedisTokenStore(client, encryption_key_env="SFOAUTH_TEST_REDIS_KEY")
    token = make_token(refresh_token=REFRESH)
    await store.save(KEY, token, generation=1)
    raw = await client.get(f"sfoauth:token:{KEY}")
    assert raw is not None
    assert ACCESS.encode() not in raw
    assert REFRESH.encode() not in raw
    assert await store.load(KEY) == StoredToken(token, 1)


async def test_from_url_store_closes_its_own_client_only(redis_url: str) -> None:
    """Closing the store closes a client from_url made, and leaves a client passed in open."""
    raw = redis.asyncio.from_url(redis_url)
    try:
        await RedisTokenStore(raw).aclose()
        assert await raw.ping()
    finally:
        await raw.aclose()
    async with RedisTokenStore.from_url(redis_url) as store:
        assert await store.load(KEY) is None


# -- Redis down -------------------------------------------------------------------------------


async def test_stopped_redis_makes_every_call_store_unavailable(
    redis_server_factory: Callable[[], Any],
) -> None:
    """Once redis-server stops, every store and lock call raises StoreUnavailableError."""
    server = redis_server_factory()
    async with RedisTokenStore.from_url(server.url, socket_connect_timeout=1.0) as store:
        await store.save(KEY, make_token(), generation=1)
        held = store.lock(KEY, lease_s=30.0)
        assert await held.acquire()
        server.stop()
        calls = [
            store.load(KEY),
            store.save(KEY, make_token(2), generation=2),
            store.forget(KEY),
            store.lock(KEY, lease_s=5.0).acquire(),
            held.renew(),
            held.mark(1),
            held.unmark(),
            held.release(),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError, match="is unavailable") as caught:
                await call
            assert f"127.0.0.1:{server.port}" in str(caught.value)


async def test_unreachable_redis_error_names_host_and_port_never_the_password() -> None:
    """Connection refused: the message says host:port and never shows the URL's password."""
    url = "redis://fleet:s3cret-pa55@127.0.0.1:1/0"
    async with RedisTokenStore.from_url(url, socket_connect_timeout=1.0) as store:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.load(KEY)
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "s3cret-pa55" not in message
    assert "s3cret-pa55" not in repr(store)


def test_bad_url_is_a_configuration_error_without_the_password() -> None:
    """A URL with an unknown scheme is refused, and the error hides its credentials."""
    with pytest.raises(ConfigurationError, match="Redis URL") as caught:
        RedisTokenStore.from_url("http://user:s3cret-pa55@cache:6379/0")
    assert "s3cret-pa55" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        # Unescaped "/", "?" and "#" end the authority early: redis-py calls the rest a port.
        "redis://fleet:pa/ss-s3cret@cache:6379/0",
        "redis://:pa?ss-s3cret@cache:6379/0",
        "redis://:pa#ss-s3cret@cache:6379/0",
        "rediss://fleet:pa/ss-s3cret@[::1/0",
        "redis://fleet:pass-s3cret@cache:notaport/0",
        "unix://fleet:pass-s3cret@/run/redis.sock?db=nope",
        "redis://cache:6379/0?password=pass-s3cret&db=nope",
        "redis://cache:6379/pass-s3cret?db=nope",
    ],
)
def test_unusable_url_never_echoes_any_part_of_the_password(url: str) -> None:
    """No fragment of the password appears in the message, the repr or a chained cause."""
    with pytest.raises(ConfigurationError, match="Redis URL") as caught:
        RedisTokenStore.from_url(url)
    exc = caught.value
    for text in (str(exc), repr(exc)):
        assert "s3cret" not in text
        assert "pa/ss" not in text
        assert "'pa'" not in text
    assert exc.__cause__ is None
    assert exc.__suppress_context__
    assert "percent-encode" in str(exc)


def test_unusable_url_message_keeps_host_port_and_database() -> None:
    """What is shown is enough to find the setting: scheme, host, port and database."""
    with pytest.raises(ConfigurationError) as caught:
        RedisTokenStore.from_url("redis://fleet:pa/ss@cache.internal:6379/3")
    assert "redis://***@cache.internal:6379/3" in str(caught.value)


# -- the optional dependency ------------------------------------------------------------------


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis installed, both constructors raise ConfigurationError naming the extra."""
    fake_client = object()
    for name in ("redis", "redis.asyncio", "redis.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigurationError, match=r"pip install 'sfoauth-async\[redis\]'"):
        RedisTokenStore.from_url("redis://localhost:6379/0")
    with pytest.raises(ConfigurationError, match=r"pip install 'sfoauth-async\[redis\]'"):
        RedisTokenStore(fake_client)  # type: ignore[arg-type]


def test_importing_the_package_never_imports_redis() -> None:
    """Importing sfoauth_async leaves redis out of sys.modules."""
    code = "import sys, sfoauth_async; sys.exit('redis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- Redis that answers "not now" (issue 7, item 7) ---------------------------------------------


async def test_out_of_memory_is_unavailable_and_the_lease_still_renews(
    redis_server_factory: Callable[[], Any],
) -> None:
    """OOM under noeviction: writes raise StoreUnavailableError (transient); renew still works."""
    server = redis_server_factory()
    async with RedisTokenStore.from_url(server.url) as store:
        await store.save(KEY, make_token(1), generation=1)
        lock = store.lock(KEY, lease_s=30.0)
        assert await lock.acquire()
        server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        server.command("CONFIG", "SET", "maxmemory", "1")
        with pytest.raises(StoreUnavailableError, match="maxmemory") as caught:
            await store.save(KEY, make_token(2), generation=2)
        assert caught.value.transient
        assert await lock.renew()  # the holder keeps its lock through the outage
        server.command("CONFIG", "SET", "maxmemory", "0")
        await store.save(KEY, make_token(2), generation=2)
        assert await store.load(KEY) == StoredToken(make_token(2), 2)
        await lock.release()


async def test_a_read_only_replica_is_unavailable_until_it_is_a_primary_again(
    redis_server_factory: Callable[[], Any],
) -> None:
    """READONLY (a failover left us on a replica): transient, and saves work once it ends."""
    server = redis_server_factory()
    async with RedisTokenStore.from_url(server.url) as store:
        await store.save(KEY, make_token(1), generation=1)
        # A replica of a primary that is not there keeps its data and refuses writes.
        server.command("REPLICAOF", "127.0.0.1", "1")
        with pytest.raises(StoreUnavailableError, match="read only replica") as caught:
            await store.save(KEY, make_token(2), generation=2)
        assert caught.value.transient
        assert await store.load(KEY) == StoredToken(make_token(1), 1)
        server.command("REPLICAOF", "NO", "ONE")
        await store.save(KEY, make_token(2), generation=2)


async def test_a_lapsed_lease_can_neither_renew_nor_mark(
    store: RedisTokenStore, client: redis.asyncio.Redis
) -> None:
    """Once another process took the lapsed lock, the old holder's renew and mark fail."""
    await store.save(KEY, make_token(1), generation=1)
    old = store.lock(KEY, lease_s=30.0)
    assert await old.acquire()
    await client.delete(f"sfoauth:lock:{KEY}")  # the lease lapsed
    new = store.lock(KEY, lease_s=30.0)
    assert await new.acquire()
    assert not await old.renew()
    assert not await old.mark(1)
    assert await new.mark(1)
    stored = await store.load(KEY)
    assert stored is not None
    assert stored.pending is not None
    assert stored.pending.owner == new.owner
    await new.release()


async def test_min_replicas_counts_a_write_only_once_a_replica_has_it(
    redis_server_factory: Callable[[], Any],
) -> None:
    """With min_replicas=1 a save fails (transient) without a replica, and lands with one."""
    primary = redis_server_factory()
    async with RedisTokenStore.from_url(
        primary.url, min_replicas=1, replica_timeout_s=0.2
    ) as store:
        with pytest.raises(StoreUnavailableError, match="0 replica"):
            await store.save(KEY, make_token(1), generation=1)
        replica = redis_server_factory()
        replica.command("REPLICAOF", "127.0.0.1", str(primary.port))
        async with asyncio.timeout(30):
            # WAIT counts a replica once the primary has it online, after its first sync.
            while b"state=online" not in primary.command("INFO", "replication"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # polling another process: nothing to await
        await store.save(KEY, make_token(2), generation=2)
        assert b"generation" in replica.command("GET", f"sfoauth:token:{KEY}")


async def test_a_sealed_record_copied_to_another_key_is_refused(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who can write to Redis cannot move user A's sealed token to user B's key."""
    monkeypatch.setenv("SFOAUTH_TEST_REDIS_KEY", Fernet.generate_key().decode())
    store = RedisTokenStore(client, encryption_key_env="SFOAUTH_TEST_REDIS_KEY")
    await store.save(KEY, make_token(), generation=1)
    other = KEY + "-another-user"
    await client.set(f"sfoauth:token:{other}", await client.get(f"sfoauth:token:{KEY}"))
    with pytest.raises(StoreError, match="another key or generation"):
        await store.load(other)
    raw = await client.get(f"sfoauth:token:{KEY}")
    assert b"acme.my.salesforce.com" not in raw  # the instance URL is sealed too
