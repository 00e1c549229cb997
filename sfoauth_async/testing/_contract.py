"""`TokenStoreContract`: the tests every `TokenStore` must pass, for your own store too.

Subclass it in a test module (the class name must start with ``Test``) and give it a
``store`` fixture yielding an empty store; pytest runs every contract test against it::

    import pytest
    from sfoauth_async.testing import TokenStoreContract


    class TestMyStore(TokenStoreContract):
        @pytest.fixture
        async def store(self):
            store = MyStore(...)
            yield store
            await store.aclose()

The tests are async and need pytest-asyncio (``asyncio_mode = "auto"``, or mark the class
with ``@pytest.mark.asyncio``). They check the protocol, compare-and-set under concurrency,
tombstones, lock exclusivity and the pending-refresh marker, and that refreshers sharing the
store make one token request between them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from sfoauth_async import (
    Flow,
    Refresher,
    RetryPolicy,
    StaleTokenWriteError,
    StoredToken,
    Token,
    TokenLock,
    TokenStore,
)

__all__ = ["TokenStoreContract"]

KEY = "sfoauth:jwt_bearer:login.salesforce.com:3MVG9example:etl@acme.com"
OTHER = "sfoauth:client_credentials:acme.my.salesforce.com:3MVG9example:run-as"

# One instant for every token of a run: two calls a second apart must still compare equal.
_RECEIVED = datetime.now(UTC).replace(microsecond=0)


def contract_token(
    n: int = 1,
    *,
    refresh_token: str | None = "5Aep861-refresh",  # noqa: S107 - a fake, for tests
) -> Token:
    """A token with every field set, secrets included, numbered ``n``.

    Example:
        ```python
        await store.save(KEY, contract_token(1), generation=1)
        ```
    """
    return Token(
        access_token=f"00Dxx0000001gPL!access-{n}",
        instance_url="https://acme.my.salesforce.com",
        id="https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001X8UzAAK",
        issued_at=_RECEIVED,
        scope=frozenset({"api", "refresh_token"}),
        refresh_token=refresh_token,
        signature="c2lnbmF0dXJl",
        id_token="eyJhbGciOi.id-token",
        raw={"access_token": f"00Dxx0000001gPL!access-{n}", "refresh_token": refresh_token},
        received_at=_RECEIVED,
        expires_at=_RECEIVED + timedelta(hours=2),
        refresh_token_rotation=True if refresh_token else None,
    )


class _CountingFlow(Flow):
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

    async def fetch_token(
        self,
        session: aiohttp.ClientSession | None = None,  # noqa: ARG002
        *,
        previous: Token | None = None,  # noqa: ARG002
        session_timeout: timedelta | None = timedelta(hours=2),
        **_: Any,  # noqa: ANN401 - the timeouts, unused without HTTP
    ) -> Token:
        """A numbered token, once the gate opens."""
        self.counter.append(1)
        self.started.set()
        await self.gate.wait()
        token = contract_token(len(self.counter), refresh_token=None)
        return token.with_session_timeout(session_timeout)


class TokenStoreContract:
    """The `TokenStore` contract as pytest tests: subclass it and provide a ``store`` fixture.

    Example:
        ```python
        class TestRedisStore(TokenStoreContract):
            @pytest.fixture
            async def store(self, redis_url):
                async with RedisTokenStore.from_url(redis_url) as store:
                    yield store
        ```
    """

    async def test_store_and_its_locks_satisfy_the_protocols(self, store: TokenStore) -> None:
        """The store and its lock objects are runtime instances of the protocols."""
        assert isinstance(store, TokenStore)
        assert isinstance(store.lock(KEY, lease_s=30.0), TokenLock)
        assert store.check_interval_s is None or store.check_interval_s >= 0

    async def test_missing_key_loads_as_none(self, store: TokenStore) -> None:
        """An empty store has nothing under any key."""
        assert await store.load(KEY) is None

    async def test_saved_token_loads_back_equal(self, store: TokenStore) -> None:
        """A saved token comes back equal, every field included, with its generation."""
        await store.save(KEY, contract_token(1), generation=1)
        assert await store.load(KEY) == StoredToken(contract_token(1), 1)

    async def test_newer_generation_replaces_the_token(self, store: TokenStore) -> None:
        """Saving generation n + 1 replaces generation n."""
        await store.save(KEY, contract_token(1), generation=1)
        await store.save(KEY, contract_token(2), generation=2)
        assert await store.load(KEY) == StoredToken(contract_token(2), 2)

    async def test_compare_and_set_rejects_an_equal_or_older_generation(
        self, store: TokenStore
    ) -> None:
        """A write of a generation not newer than the stored one fails and changes nothing."""
        await store.save(KEY, contract_token(2), generation=2)
        for generation in (1, 2):
            with pytest.raises(StaleTokenWriteError):
                await store.save(KEY, contract_token(9), generation=generation)
        assert await store.load(KEY) == StoredToken(contract_token(2), 2)

    async def test_concurrent_saves_of_one_generation_let_exactly_one_win(
        self, store: TokenStore
    ) -> None:
        """Twenty writers of generation 1 at once: one wins, nineteen are told they lost."""
        results = await asyncio.gather(
            *(store.save(KEY, contract_token(n), generation=1) for n in range(20)),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, StaleTokenWriteError) for r in results if r is not None)
        stored = await store.load(KEY)
        assert stored is not None
        assert stored.generation == 1

    async def test_keys_are_independent(self, store: TokenStore) -> None:
        """Each key has its own record and generation."""
        await store.save(KEY, contract_token(1), generation=3)
        await store.save(OTHER, contract_token(2, refresh_token=None), generation=1)
        assert await store.load(KEY) == StoredToken(contract_token(1), 3)
        assert await store.load(OTHER) == StoredToken(contract_token(2, refresh_token=None), 1)

    async def test_forget_leaves_a_tombstone_no_older_token_overwrites(
        self, store: TokenStore
    ) -> None:
        """forget() replaces the token with a newer tombstone; older saves fail, newer pass."""
        await store.save(KEY, contract_token(1), generation=3)
        await store.save(OTHER, contract_token(2), generation=1)
        assert await store.forget(KEY) == 4
        stored = await store.load(KEY)
        assert stored == StoredToken(None, 4)
        assert stored.forgotten
        with pytest.raises(StaleTokenWriteError):
            await store.save(KEY, contract_token(3), generation=4)
        await store.save(KEY, contract_token(5), generation=5)
        assert await store.load(KEY) == StoredToken(contract_token(5), 5)
        assert await store.load(OTHER) == StoredToken(contract_token(2), 1)

    async def test_forgetting_a_missing_key_leaves_generation_one(self, store: TokenStore) -> None:
        """A key never saved is forgotten too, so a late save of generation 1 cannot land."""
        assert await store.forget(KEY) == 1
        with pytest.raises(StaleTokenWriteError):
            await store.save(KEY, contract_token(1), generation=1)

    async def test_lock_is_exclusive_per_key(self, store: TokenStore) -> None:
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

    async def test_lock_gives_a_fresh_object_per_call(self, store: TokenStore) -> None:
        """Each lock() call returns a new object, which holds at most one acquisition."""
        first = store.lock(KEY, lease_s=30.0)
        assert first is not store.lock(KEY, lease_s=30.0)
        assert first.owner != store.lock(KEY, lease_s=30.0).owner
        assert await first.acquire()
        assert not await first.acquire()
        await first.release()
        second = store.lock(KEY, lease_s=30.0)
        assert await second.acquire()
        await second.release()

    async def test_release_without_holding_is_quiet(self, store: TokenStore) -> None:
        """Releasing a lock never taken, or twice, neither raises nor frees another's lock."""
        holder, idle = store.lock(KEY, lease_s=30.0), store.lock(KEY, lease_s=30.0)
        assert await holder.acquire()
        await idle.release()
        assert not await store.lock(KEY, lease_s=30.0).acquire()
        await holder.release()
        await holder.release()
        assert await idle.acquire()
        await idle.release()

    async def test_renew_tells_whether_the_lock_is_still_held(self, store: TokenStore) -> None:
        """renew() is True for the holder, False before acquiring and after releasing."""
        lock = store.lock(KEY, lease_s=30.0)
        assert not await lock.renew()
        assert await lock.acquire()
        assert await lock.renew()
        await lock.release()
        assert not await lock.renew()

    async def test_mark_needs_the_lock_and_the_expected_generation(self, store: TokenStore) -> None:
        """The marker is left only by the holder, on the generation actually stored."""
        await store.save(KEY, contract_token(1), generation=2)
        lock = store.lock(KEY, lease_s=30.0)
        assert not await lock.mark(2)  # not held
        assert await lock.acquire()
        assert not await lock.mark(1)  # the store moved on
        assert (await store.load(KEY)) == StoredToken(contract_token(1), 2)
        assert await lock.mark(2)
        stored = await store.load(KEY)
        assert stored is not None
        assert stored.pending is not None
        assert (stored.pending.owner, stored.pending.generation) == (lock.owner, 2)
        await lock.release()

    async def test_saving_the_next_generation_clears_the_marker(self, store: TokenStore) -> None:
        """The save of the refreshed token removes the marker of the refresh token it spent."""
        await store.save(KEY, contract_token(1), generation=1)
        lock = store.lock(KEY, lease_s=30.0)
        assert await lock.acquire()
        assert await lock.mark(1)
        await store.save(KEY, contract_token(2), generation=2)
        assert await store.load(KEY) == StoredToken(contract_token(2), 2)
        await lock.release()

    async def test_unmark_removes_only_its_own_marker(self, store: TokenStore) -> None:
        """A lock clears the marker it left, never another holder's."""
        await store.save(KEY, contract_token(1), generation=1)
        first = store.lock(KEY, lease_s=30.0)
        assert await first.acquire()
        assert await first.mark(1)
        await first.release()
        second = store.lock(KEY, lease_s=30.0)
        await second.unmark()
        stored = await store.load(KEY)
        assert stored is not None
        assert stored.pending is not None
        assert stored.pending.owner == first.owner
        await first.unmark()
        assert await store.load(KEY) == StoredToken(contract_token(1), 1)

    async def test_marker_on_an_empty_key_loads_alone(self, store: TokenStore) -> None:
        """A refresh from a configured refresh token marks generation 0: no token, a marker."""
        lock = store.lock(KEY, lease_s=30.0)
        assert await lock.acquire()
        assert await lock.mark(0)
        stored = await store.load(KEY)
        assert stored is not None
        assert stored.token is None
        assert stored.generation == 0
        assert not stored.forgotten
        assert stored.pending is not None
        assert stored.pending.owner == lock.owner
        await store.save(KEY, contract_token(1), generation=1)
        assert await store.load(KEY) == StoredToken(contract_token(1), 1)
        await lock.release()

    async def test_forget_clears_the_marker(self, store: TokenStore) -> None:
        """A logout ends any pending refresh's claim on the store."""
        await store.save(KEY, contract_token(1), generation=1)
        lock = store.lock(KEY, lease_s=30.0)
        assert await lock.acquire()
        assert await lock.mark(1)
        await store.forget(KEY)
        assert await store.load(KEY) == StoredToken(None, 2)
        await lock.release()

    async def test_refreshers_sharing_the_store_make_one_token_request(
        self, store: TokenStore
    ) -> None:
        """Five refreshers (one per simulated process) on one store log in once and share it."""
        counter: list[int] = []
        started, gate = asyncio.Event(), asyncio.Event()
        retry = RetryPolicy(total_timeout_s=5.0)
        refreshers = [
            Refresher(_CountingFlow(counter, started, gate), store=store, retry=retry)
            for _ in "abcde"
        ]
        calls = [asyncio.create_task(r.get_token()) for r in refreshers for _ in range(50)]
        await started.wait()
        gate.set()
        tokens = await asyncio.gather(*calls)
        assert len(counter) == 1
        assert {t.access_token for t in tokens} == {contract_token(1).access_token}
        assert sum(r.stats.adopted for r in refreshers) == 4
        stored = await store.load(refreshers[0].flow.store_key())
        assert stored is not None
        assert stored.generation == 1
        for refresher in refreshers:
            await refresher.aclose()
