"""Scenario 4, the cost of the fast path: a fresh token, no refresh anywhere.

Three views, from the narrowest to the widest:

- ``Refresher.get_token()`` on a fresh token, against awaiting a coroutine that returns a
  cached token (the floor of any ``await``).
- ``BearerMiddleware.__call__`` with a stub request and handler, against a two-line
  middleware that sets the header: the middleware's own logic, no aiohttp, no network.
- Whole requests at concurrency 50 to the org server's "echo" port, which answers every
  request with the same 200 and costs next to nothing, so the client's own cost is what is
  measured: raw aiohttp, aiohttp with the two-line middleware, aiohttp with
  `BearerMiddleware`, and `AsyncSession`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from sfoauth_async import AsyncSession, BearerMiddleware, Refresher, Token

from . import Settings
from ._measure import Run, closed_loop, median_run, spread
from ._org import OrgInfo, OrgProcess
from ._report import Section, rate, ratio

_PATH = "/services/data/v67.0/limits/"


async def _best_ns(op: Callable[[], Awaitable[Any]], iterations: int, repeats: int) -> float:
    """Nanoseconds per awaited ``op()``: the best of ``repeats`` loops (as timeit does)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(iterations):
            await op()
        best = min(best, (time.perf_counter_ns() - started) / iterations)
    return best


class _StubRequest:
    """What `BearerMiddleware` reads of a `ClientRequest`: url, headers, body."""

    __slots__ = ("body", "headers", "url")

    def __init__(self, url: str) -> None:
        self.url = URL(url)
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.body = b""


class _StubResponse:
    status = 200


_RESPONSE = _StubResponse()


async def _stub_handler(_: object) -> _StubResponse:
    return _RESPONSE


def _fresh_token(instance_url: str) -> Token:
    # received now, so with the default 2 h session it is fresh for 1.5 h or more
    return Token(access_token="00DBENCH!" + "x" * 100, instance_url=instance_url)


def _minimal_middleware(header: str) -> Any:
    async def middleware(req: Any, handler: Any) -> Any:
        req.headers["Authorization"] = header
        return await handler(req)

    return middleware


async def micro(info: OrgInfo, settings: Settings, section: Section) -> None:
    """The two in-process micro-benchmarks."""
    token = _fresh_token(info.echo_url)
    refresher = Refresher(info.client_credentials_flow(), token=token)

    async def cached() -> Token:
        return token

    n, k = settings.micro_iterations, settings.micro_repeats
    floor = await _best_ns(cached, n, k)
    got = await _best_ns(refresher.get_token, n, k)
    section.add(
        [
            "`await refresher.get_token()`, fresh token",
            f"{got:,.0f}",
            f"{1e9 / got:,.0f}",
            "`await` of a coroutine returning a cached token",
            f"{floor:,.0f}",
            f"{got / floor:.2f}x",
        ],
        case="get_token",
        ns=got,
        baseline_ns=floor,
    )

    request = _StubRequest(info.echo_url + _PATH)
    bearer = BearerMiddleware(refresher)
    minimal = _minimal_middleware(f"Bearer {token.access_token}")
    base = await _best_ns(lambda: minimal(request, _stub_handler), n, k)
    mine = await _best_ns(lambda: bearer(request, _stub_handler), n, k)
    section.add(
        [
            "`BearerMiddleware` call, stub request and handler",
            f"{mine:,.0f}",
            f"{1e9 / mine:,.0f}",
            "two-line middleware that sets the header",
            f"{base:,.0f}",
            f"{mine / base:.2f}x",
        ],
        case="middleware",
        ns=mine,
        baseline_ns=base,
    )

    session = AsyncSession(refresher)
    resolve = getattr(session, "_to_instance", None)  # private: skip the row if renamed
    if resolve is None:
        await session.close()
        return
    instance = token.instance_url

    async def concat() -> str:
        return instance + _PATH

    try:
        base = await _best_ns(concat, n, k)
        mine = await _best_ns(lambda: resolve(_PATH), n, k)
    finally:
        await session.close()
    section.add(
        [
            "`AsyncSession` path resolution (`_to_instance`), fresh token",
            f"{mine:,.0f}",
            f"{1e9 / mine:,.0f}",
            "`await` of a coroutine joining instance URL and path",
            f"{base:,.0f}",
            f"{mine / base:.2f}x",
        ],
        case="session_url",
        ns=mine,
        baseline_ns=base,
    )


async def end_to_end(info: OrgInfo, settings: Settings, section: Section) -> None:
    """Whole requests against the echo server: the client's cost per request."""
    token = _fresh_token(info.echo_url)
    header = f"Bearer {token.access_token}"
    url = info.echo_url + _PATH
    refresher = Refresher(info.client_credentials_flow(), token=token)
    raw = aiohttp.ClientSession(headers={"Authorization": header})
    minimal = aiohttp.ClientSession(middlewares=(_minimal_middleware(header),))
    bearer = aiohttp.ClientSession(middlewares=(BearerMiddleware(refresher),))
    session = AsyncSession(info.client_credentials_flow(), token=token)

    def via(http: aiohttp.ClientSession) -> Callable[[], Awaitable[bool]]:
        async def call() -> bool:
            async with http.get(url) as resp:
                await resp.read()
                return resp.status == 200

        return call

    async def via_session() -> bool:
        async with session.get(_PATH) as resp:
            await resp.read()
            return resp.status == 200

    cases = {
        "raw aiohttp, session-wide header": via(raw),
        "aiohttp + two-line header middleware": via(minimal),
        "aiohttp + `BearerMiddleware`": via(bearer),
        "`AsyncSession.get(path)`": via_session,
    }
    runs: dict[str, list[Run]] = {name: [] for name in cases}
    c, total = settings.concurrency, settings.echo_requests
    try:
        for call in cases.values():
            await closed_loop(call, settings.warmup, c, settings.max_s)
        names = list(cases)
        for n in range(settings.echo_rounds):
            for name in names[n % len(names) :] + names[: n % len(names)]:
                runs[name].append(await closed_loop(cases[name], total, c, settings.max_s))
    finally:
        for http in (raw, minimal, bearer):
            await http.close()
        await session.close()
    base = runs["raw aiohttp, session-wide header"]
    for name, mine in runs.items():
        rates = statistics.median(m.per_s / b.per_s for m, b in zip(mine, base, strict=True))
        cpus = statistics.median(m.cpu_us / b.cpu_us for m, b in zip(mine, base, strict=True))
        extra = statistics.median(m.cpu_us - b.cpu_us for m, b in zip(mine, base, strict=True))
        mid = median_run(mine)
        section.add(
            [
                name,
                rate(mid.per_s),
                ratio(rates),
                f"{mid.cpu_us:,.0f}",
                f"{cpus:.2f}x",
                f"{extra:+.1f}",
                f"{spread(mine):.0%}",
            ],
            case=name,
            calls_per_s=[r.per_s for r in mine],
            cpu_us_per_call=[r.cpu_us for r in mine],
            ratio_to_raw=rates,
            cpu_ratio_to_raw=cpus,
            extra_cpu_us=extra,
            failed=sum(r.failed for r in mine),
        )


async def run(org: OrgProcess, settings: Settings) -> list[Section]:
    """Scenario 4: the micro-benchmarks, then whole requests against the echo server."""
    assert org.info is not None
    micro_section = Section(
        name="fastpath_micro",
        title="4a. Fast path in-process (fresh token, no I/O)",
        columns=["what", "ns/op", "ops/s", "baseline (same run)", "baseline ns/op", "vs baseline"],
    )
    await micro(org.info, settings, micro_section)
    micro_section.notes.append(
        "Best of the repeats of a tight loop on one task; vs baseline = our time ÷ the "
        "baseline's (lower is better)."
    )
    echo_section = Section(
        name="fastpath_echo",
        title=(
            f"4b. Fast path per request: concurrency {settings.concurrency} against a "
            f"canned-response server ({settings.echo_rounds} rounds)"
        ),
        columns=[
            "client",
            "calls/s (median)",
            "÷ raw aiohttp",
            "client CPU µs/call",
            "CPU vs raw",
            "extra CPU µs/call",
            "round spread",
        ],
    )
    await end_to_end(org.info, settings, echo_section)
    echo_section.notes.append(
        "The echo server answers each request head with the same 200 without parsing it, so "
        "the client process is the bottleneck and its CPU per call is the client's cost. "
        "extra CPU µs/call: median over rounds of (client CPU/call - raw aiohttp's)."
    )
    return [micro_section, echo_section]
