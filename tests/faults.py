"""Helpers shared by the fault tests: stores that misbehave on cue, and what must never happen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sfoauth_async import MemoryTokenStore, TokenLock
from sfoauth_async.testing import FakeSalesforceOrg


def assert_no_refresh_token_reused(org: FakeSalesforceOrg) -> None:
    """No refresh token was sent twice, and so no grant was revoked."""
    assert org.stats.refresh_token_reuses == 0
    assert org.stats.grants_revoked == 0


class BusyStore(MemoryTokenStore):
    """A memory store that signals when a refresh finds its lock taken."""

    def __init__(self) -> None:
        super().__init__()
        self.found_taken = asyncio.Event()

    def lock(self, key: str, *, lease_s: float) -> TokenLock:
        """A lock whose failed attempts are signalled."""
        lock = super().lock(key, lease_s=lease_s)
        acquire = lock.acquire

        async def watched() -> bool:
            taken = await acquire()
            if not taken:
                self.found_taken.set()
            return taken

        lock.acquire = watched  # type: ignore[method-assign]
        return lock


async def eventually(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Wait until ``condition()`` holds: for what a background task does on its own timer."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - a timer-driven task: nothing to await
            await asyncio.sleep(0.01)
