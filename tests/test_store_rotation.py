"""Refresh-token rotation through a shared store, in one process, against the fake org.

Two `Refresher` objects with their own flow objects stand for two processes sharing a
store. The multi-process version is in test_fleet.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sfoauth_async import (
    MemoryTokenStore,
    RetryPolicy,
    StoredToken,
    StoreUnavailableError,
    Token,
    TokenLock,
    TokenStore,
)
from sfoauth_async._refresher import Refresher
from sfoauth_async.testing import FakeSalesforceOrg

RETRY = RetryPolicy(attempts=1, total_timeout_s=5.0, attempt_timeout_s=5.0, cooldown_s=0.0)


@pytest.fixture
async def org() -> AsyncIterator[FakeSalesforceOrg]:
    """A fake org that rotates refresh tokens."""
    async with FakeSalesforceOrg(rotate_refresh_tokens=True) as fake:
        yield fake


async def refresh(refresher: Refresher) -> Token:
    """Force a refresh, as a 401 does: invalidate the current token and get a new one."""
    current = refresher.token
    if current is not None:
        refresher.invalidate(current)
    return await refresher.get_token()


async def test_processes_take_turns_refreshing_without_reusing_a_refresh_token(
    org: FakeSalesforceOrg,
) -> None:
    """Two refreshers refresh in turn through one store: no invalid_grant, chain kept live."""
    first = org.issue_refresh_token()
    store = MemoryTokenStore()
    a = Refresher(org.refresh_token_flow(first), store=store, retry=RETRY)
    b = Refresher(org.refresh_token_flow(first), store=store, retry=RETRY)
    for turn in range(6):
        # A 401 in one process: it adopts a newer stored token, or refreshes from the
        # newest refresh token it knows, never a rotated-out one.
        await refresh(a if turn % 2 else b)
        await refresh(b if turn % 2 else a)
    stored = await store.load(a.flow.store_key())
    assert stored is not None
    assert org.stats.token_requests["refresh_token"] == stored.generation
    assert stored.generation >= 6
    assert (await org.refresh_token_flow(stored.token.refresh_token).fetch_token()).access_token


async def test_closing_mid_refresh_never_loses_a_rotated_refresh_token(
    org: FakeSalesforceOrg,
) -> None:
    """A refresher closed after Salesforce rotated, before the answer was read, keeps it."""
    first = org.issue_refresh_token()
    store = MemoryTokenStore()
    flow = org.refresh_token_flow(first)
    a = Refresher(flow, store=store, retry=RETRY)
    await a.get_token()
    rotated, answer_read = asyncio.Event(), asyncio.Event()
    fetch = flow.fetch_token

    async def answer_still_on_its_way(*args: object, **kwargs: object) -> Token:
        token = await fetch(*args, **kwargs)  # type: ignore[arg-type]
        rotated.set()  # Salesforce has rotated; the response is still travelling
        await answer_read.wait()
        return token

    flow.fetch_token = answer_still_on_its_way  # type: ignore[method-assign]
    waiter = asyncio.create_task(refresh(a))
    await rotated.wait()
    asyncio.get_running_loop().call_soon(answer_read.set)
    await a.aclose()  # the app shuts down
    await asyncio.gather(waiter, return_exceptions=True)

    b = Refresher(org.refresh_token_flow(first), store=store, retry=RETRY)
    await b.get_token()
    await refresh(b)  # must refresh with the live refresh token


class SaveFailsOnce:
    """A store whose first save fails, as when Redis blips between fetch and save."""

    def __init__(self, inner: TokenStore) -> None:
        self.inner = inner
        self.failed = False
        self.check_interval_s = inner.check_interval_s

    async def load(self, key: str) -> StoredToken | None:
        """The inner store's token."""
        return await self.inner.load(key)

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Fail the first time, then save."""
        if not self.failed:
            self.failed = True
            raise StoreUnavailableError("Redis at 127.0.0.1:6379 db 0 is unavailable")
        await self.inner.save(key, token, generation=generation)

    async def forget(self, key: str) -> int:
        """Forget in the inner store."""
        return await self.inner.forget(key)

    def lock(self, key: str, *, lease_s: float) -> TokenLock:
        """The inner store's lock."""
        return self.inner.lock(key, lease_s=lease_s)


async def test_rotated_refresh_token_is_stored_before_its_access_token_is_used(
    org: FakeSalesforceOrg,
) -> None:
    """A save that fails once is retried: the token handed out is the one in the store."""
    first = org.issue_refresh_token()
    store = SaveFailsOnce(MemoryTokenStore())
    a = Refresher(org.refresh_token_flow(first), store=store, retry=RETRY)
    token = await a.get_token()
    stored = await store.inner.load(a.flow.store_key())
    assert stored is not None
    assert stored.token is not None
    assert stored.token.refresh_token == token.refresh_token
