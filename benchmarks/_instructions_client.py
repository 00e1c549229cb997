"""One client of the ``instructions`` scenario, run under callgrind by ``benchmarks.instructions``.

``python -m benchmarks._instructions_client VARIANT N ECHO_URL``: N GETs at concurrency 50
against the echo server with one client variant (``raw``: aiohttp with a session-wide
header; ``bearer``: aiohttp with `BearerMiddleware`; ``session``: `AsyncSession.get(path)`).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import aiohttp

from sfoauth_async import AsyncSession, BearerMiddleware, ClientCredentialsFlow, Refresher, Token

PATH = "/services/data/v67.0/limits/"
CONCURRENCY = 50


async def main(variant: str, calls: int, echo_url: str) -> None:
    """Warm up, then ``calls`` requests at concurrency 50."""
    token = Token(access_token="00DBENCH!" + "x" * 100, instance_url=echo_url)
    flow = ClientCredentialsFlow(client_id="bench", client_secret="bench", login_url=echo_url)
    close: Callable[[], Awaitable[None]]
    if variant == "session":
        sf = AsyncSession(flow, token=token)
        close = sf.close

        async def one() -> None:
            async with sf.get(PATH) as resp:
                await resp.read()

    else:
        if variant == "raw":
            http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token.access_token}"})
        else:
            http = aiohttp.ClientSession(
                middlewares=(BearerMiddleware(Refresher(flow, token=token)),)
            )
        close = http.close

        async def one() -> None:
            async with http.get(echo_url + PATH) as resp:
                await resp.read()

    for _ in range(20):
        await one()

    async def worker() -> None:
        for _ in range(calls // CONCURRENCY):
            await one()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    await close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
