"""The `TokenStore` contract, run against every store: memory, file and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from sfoauth_async import (
    FileTokenStore,
    Flow,
    MemoryTokenStore,
    RedisTokenStore,
    StaleTokenWriteError,
    StoredToken,
    Token,
    TokenLock,
    TokenStore,
)
from sfoauth_async._refresher import Refresher
from sfoauth_async._retry import RetryPolicy

KEY = "sfoauth:jwt_bearer:login.salesforce.com:3MVG9example:etl@acme.com"
OTHER = "sfoauth:client_credentials:acme.my.salesforce.com:3MVG9example:run-as"


# One instant for every token of a run: two calls a second apart must still compare equal.
RECEIVED = datetime.now(UTC).replace(microsecond=0)


def make_token(n: int = 1, *, refresh_token: str | None = "5Aep861-refresh") -> Token:
    """A token with every field set, secrets included."""
    received = RECEIVED
    return Token(
        access_token=f"00Dxx0000001gPL!access-{n}",
        instance_url="https://acme.my.salesforce.com",
        id="https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001X8UzAAK",
        issued_at=received,
        scope=frozenset({"api", "refresh_token"}),
        refresh_token=refresh_token,
        signature="c2lnbmF0dXJl",
        id_token="eyJhbGciOi.id-token",
        raw={"access_token": f"00Dxx0000001gPL!access-{n}", "refresh_token": refresh_token},
        received_at=received,
        expires_at=received + timedelta(hours=2),
    )


@pytest.fixture(params=["memory", "file", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TokenStore]:
    """Each store in turn, empty."""
    if request.param == "memory":
        yield MemoryTokenStore()
    elif request.param == "file":
        yield FileTokenStore(tmp_path / "tokens.json")
    else:
        async with RedisTokenStore.from_url(request.getfixturevalue("redis_url")) as redis_store:
            yield redis_store


async def test_store_and_its_locks_satisfy_the_protocols(store: TokenStore) -> None:
    """Every store is a TokenStore, and its locks are TokenLocks."""
    assert isinstance(store, TokenStore)
    assert isinstance(store.lock(KEY, lease_s=5.0), TokenLock)


async def test_missing_key_loads_as_none(store: TokenStore) -> None:
    """Loading a key never saved gives None."""
    assert await store.load(KEY) is None


async def test_saved_token_loads_back_equal(store: TokenStore) -> None:
    """A saved token comes back equal, with its generation and raw response."""
    token = make_token()
    await store.save(KEY, token, generation=1)
    stored = await store.load(KEY)
    assert stored == StoredToken(token, 1)
    assert stored is not None
    assert dict(stored.token.raw) == dict(token.raw)


async def test_newer_generation_replaces_the_token(store: TokenStore) -> None:
    """Saving a higher generation replaces the stored token."""
    await store.save(KEY, make_token(1), generation=1)
    await store.save(KEY, make_token(2), generation=5)
    assert await store.load(KEY) == StoredToken(make_token(2), 5)


@pytest.mark.parametrize("generation", [1, 2], ids=["older", "equal"])
async def test_compare_and_set_rejects_an_equal_or_older_generation(
    store: TokenStore, generation: int
) -> None:
    """Saving a generation not above the stored one raises and changes nothing."""
    await store.save(KEY, make_token(2), generation=2)
    with pytest.raises(StaleTokenWriteError, match="generation 2 is already stored"):
        await store.save(KEY, make_token(3), generation=generation)
    assert await store.load(KEY) == StoredToken(make_token(2), 2)


async def test_concurrent_saves_of_one_generation_let_exactly_one_win(store: TokenStore) -> None:
    """Of 20 concurrent saves of generation 1, one is stored and 19 are stale."""
    results = await asyncio.gather(
        *(store.save(KEY, make_token(n), generation=1) for n in range(20)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, StaleTokenWriteError) for r in results if r is not None)
    stored = await store.load(KEY)
    assert stored is not None
    assert stored.generation == 1


async def test_keys_are_independent(store: TokenStore) -> None:
    """Two keys keep their own tokens and generations."""
    await store.save(KEY, make_token(1), generation=3)
    await store.save(OTHER, make_token(2, refresh_token=None), generation=1)
    assert await store.load(KEY) == StoredToken(make_token(1), 3)
    assert await store.load(OTHER) == StoredToken(make_token(2, refresh_token=None), 1)


async def test_delete_forgets_the_token_and_is_quiet_when_missing(store: TokenStore) -> None:
    """Delete removes one key's token; deleting a missing key is no error."""
    await store.save(KEY, make_token(1), generation=1)
    await store.save(OTHER, make_token(2), generation=1)
    await store.delete(KEY)
    await store.delete(KEY)
    assert await store.load(KEY) is None
    assert await store.load(OTHER) is not None


async def test_lock_is_exclusive_per_key(store: TokenStore) -> None:
    """One lock object holds a key; others fail until it is released; other keys are free."""
    first, second = store.lock(KEY, lease_s=30.0), store.lock(KEY, lease_s=30.0)
    other = store.lock(OTHER, lease_s=30.0)
    assert await first.acquire()
    assert not await second.acquire()
    assert await other.acquire()
    await first.release()
    assert await second.acquire()
    await second.release()
    await other.release()


async def test_lock_gives_a_fresh_object_per_call(store: TokenStore) -> None:
    """Each lock() call returns a new object, which holds at most one acquisition."""
    first = store.lock(KEY, lease_s=30.0)
    assert first is not store.lock(KEY, lease_s=30.0)
    assert await first.acquire()
    assert not await first.acquire()
    await first.release()
    assert await store.lock(KEY, lease_s=30.0).acquire() is True


async def test_release_without_holding_is_quiet(store: TokenStore) -> None:
    """Releasing a lock never taken, or twice, neither raises nor frees another's lock."""
    holder, idle = store.lock(KEY, lease_s=30.0), store.lock(KEY, lease_s=30.0)
    assert await holder.acquire()
    await idle.release()
    assert not await store.lock(KEY, lease_s=30.0).acquire()
    await holder.release()
    await holder.release()
    assert await idle.acquire()
    await idle.release()


class CountingFlow(Flow):
    """A flow that mints numbered tokens without HTTP, once its gate opens."""

    grant_type = "counting"
    _key_grant = "counting"

    def __init__(self, counter: list[int], started: asyncio.Event, gate: asyncio.Event) -> None:
        super().__init__(client_id="counting", client_secret=None, login_url="https://x.test")
        self.counter = counter
        self.started = started
        self.gate = gate

    def _grant_form(self, previous: Token | None) -> dict[str, str]:
        raise NotImplementedError

    def _subject(self, token: Token | None) -> str:  # noqa: ARG002 - one user only
        return "one-user"

    async def fetch_token(  # noqa: D102 - Flow.fetch_token, without HTTP
        self,
        session: aiohttp.ClientSession | None = None,  # noqa: ARG002
        *,
        previous: Token | None = None,  # noqa: ARG002
        session_timeout: timedelta | None = timedelta(hours=2),
        timeout_s: float | None = None,  # noqa: ARG002
    ) -> Token:
        self.counter.append(1)
        self.started.set()
        await self.gate.wait()
        return make_token(len(self.counter), refresh_token=None).with_session_timeout(
            session_timeout
        )


async def test_refreshers_sharing_the_store_make_one_token_request(store: TokenStore) -> None:
    """Five refreshers (one per simulated process) on one store log in once and share it."""
    counter: list[int] = []
    started, gate = asyncio.Event(), asyncio.Event()
    retry = RetryPolicy(total_timeout_s=5.0)
    refreshers = [
        Refresher(CountingFlow(counter, started, gate), store=store, retry=retry) for _ in "abcde"
    ]
    calls = [asyncio.create_task(r.get_token()) for r in refreshers for _ in range(50)]
    await started.wait()
    gate.set()
    tokens = await asyncio.gather(*calls)
    assert len(counter) == 1
    assert {t.access_token for t in tokens} == {make_token(1).access_token}
    assert sum(r.stats.adopted for r in refreshers) == 4
    stored = await store.load(refreshers[0].flow.store_key())
    assert stored is not None
    assert stored.generation == 1
    for refresher in refreshers:
        await refresher.aclose()
