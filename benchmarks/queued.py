"""Scenario 5: sessions end in the middle of a big burst; what do queued calls cost?

`Settings.queued_calls` calls start at once against one client whose connection pool has
aiohttp's default 100 connections, so most of them wait for a connection. When half of
them have finished, the org ends every session (``expire_all_sessions``). The org counts
the 401s it served and the API calls it received; per call, they show how many calls went
out with a dead token. A client that attaches the bearer before it has a connection sends
every call still queued at the expiry with the dead token: a 401 each, and a second call
each. `AsyncSession` lets at most ``max_concurrency`` (the pool's size) calls past the
point where the bearer is chosen, so at most that many can meet the expiry.
"""

from __future__ import annotations

import asyncio

from . import Settings
from ._clients import AiohttpSingleFlight, Client, Sfoauth
from ._org import OrgProcess
from ._report import Section


async def _burst(org: OrgProcess, client: Client, calls: int) -> dict[str, float]:
    """One burst with the expiry halfway; the org's counts for it."""
    org.reset()
    await client.warm()
    before = org.stats()
    finished = 0
    halfway = asyncio.Event()

    async def one() -> bool:
        nonlocal finished
        try:
            return await client.call()
        finally:
            finished += 1
            if finished == calls // 2:
                halfway.set()

    async def expire_at_halfway() -> None:
        await halfway.wait()
        # The control call blocks this loop for a moment: that only lets more calls queue.
        org.expire_all_sessions()

    expiring = asyncio.create_task(expire_at_halfway())
    outcomes = await asyncio.gather(*(one() for _ in range(calls)), return_exceptions=True)
    await expiring
    after = org.stats()
    return {
        "calls": calls,
        "failed": sum(o is not True for o in outcomes),
        "token_requests": after["token_requests"] - before["token_requests"],
        "unauthorized": after["unauthorized"] - before["unauthorized"],
        "api_requests": after["api_requests"] - before["api_requests"],
    }


async def _measure(org: OrgProcess, cls: type[Client], calls: int) -> dict[str, float]:
    assert org.info is not None
    client = cls(org.info)
    await client.open()
    try:
        return await _burst(org, client, calls)
    finally:
        await client.close()


async def run(org: OrgProcess, settings: Settings) -> Section:
    """Scenario 5: 401s and API calls per call when sessions end mid-burst."""
    calls = settings.queued_calls
    section = Section(
        name="queued",
        title=(
            f"5. Sessions end halfway through {calls} concurrent calls on a 100-connection "
            f"pool: 401s and API calls per call"
        ),
        columns=[
            "client",
            "401s served",
            "API calls",
            "401s per call",
            "API calls per call",
            "token POSTs",
            "calls failed",
        ],
    )
    results = {}
    for cls in (AiohttpSingleFlight, Sfoauth):
        result = results[cls.name] = await _measure(org, cls, calls)
        section.add(
            [
                cls.name,
                f"{result['unauthorized']:.0f}",
                f"{result['api_requests']:.0f}",
                f"{result['unauthorized'] / calls:.3f}",
                f"{result['api_requests'] / calls:.3f}",
                f"{result['token_requests']:.0f}",
                f"{result['failed']:.0f}",
            ],
            client=cls.name,
            **result,
        )
    ours, base = results[Sfoauth.name], results[AiohttpSingleFlight.name]
    section.notes.append(
        f"Ratio, ours / hand-written single flight: 401s per call "
        f"{ours['unauthorized'] / max(base['unauthorized'], 1):.3f}, API calls per call "
        f"{ours['api_requests'] / base['api_requests']:.3f}."
    )
    return section
