"""Scenario 1, steady throughput: GETs of limits at concurrency 50 with a valid token.

Each client runs `Settings.rounds` rounds of up to `Settings.requests` calls (a round stops
starting calls after `Settings.max_s`). Rounds interleave the clients, in a rotating order,
so drift on a shared machine hits all of them alike. The ratio of a client is the median over
rounds of its rate divided by raw aiohttp's rate in the same round.
"""

from __future__ import annotations

import statistics

from . import Settings
from ._clients import STEADY, Client, RawAiohttp
from ._measure import Run, closed_loop, median_run, spread, threaded_closed_loop
from ._org import OrgProcess
from ._report import Section, rate, ratio


async def measure(client: Client, total: int, concurrency: int, max_s: float) -> Run:
    """One closed-loop batch of calls, with threads for a threaded client."""
    if client.threaded:
        return threaded_closed_loop(client.call_sync, total, concurrency, max_s)
    return await closed_loop(client.call, total, concurrency, max_s)


async def _close_quietly(client: Client) -> None:
    try:
        await client.close()
    except Exception:  # it may not have got far enough to have anything to close
        return


async def run(org: OrgProcess, settings: Settings) -> Section:
    """Measure every installed client of `STEADY`."""
    assert org.info is not None
    section = Section(
        name="steady",
        title=(
            f"1. Steady throughput: GET limits, concurrency {settings.concurrency}, "
            f"valid token ({settings.rounds} rounds)"
        ),
        columns=[
            "client",
            "calls/s (median)",
            "÷ raw aiohttp",
            "client CPU µs/call",
            "CPU vs raw",
            "round spread",
            "calls measured",
            "failed",
        ],
    )
    clients: list[Client] = []
    try:
        for cls in STEADY:
            missing = cls.missing()
            if missing is not None:
                section.add([cls.name, "skipped", f"({missing} not installed)", *[""] * 5])
                continue
            client = cls(org.info)
            try:
                await client.open()
                await client.warm()
            except Exception as exc:  # a broken peer is reported, not fatal
                await _close_quietly(client)
                section.add([cls.name, f"error: {exc!r}"[:120], *[""] * 6])
                continue
            clients.append(client)
        for client in clients:
            await measure(client, settings.warmup, settings.concurrency, settings.max_s)
        runs: dict[Client, list[Run]] = {client: [] for client in clients}
        for n in range(settings.rounds):
            for client in clients[n % len(clients) :] + clients[: n % len(clients)]:
                runs[client].append(
                    await measure(client, settings.requests, settings.concurrency, settings.max_s)
                )
    finally:
        for client in clients:
            await client.close()
    base = next(c for c in clients if isinstance(c, RawAiohttp))
    for client in clients:
        mine = runs[client]
        rates = [m.per_s / b.per_s for m, b in zip(mine, runs[base], strict=True)]
        cpus = [m.cpu_us / b.cpu_us for m, b in zip(mine, runs[base], strict=True)]
        mid = median_run(mine)
        section.add(
            [
                client.label(),
                rate(mid.per_s),
                ratio(statistics.median(rates)),
                f"{mid.cpu_us:,.0f}",
                f"{statistics.median(cpus):.2f}x",
                f"{spread(mine):.0%}",
                f"{sum(r.calls for r in mine):,}",
                str(sum(r.failed for r in mine)),
            ],
            client=client.name,
            version=client.label(),
            calls_per_s=[r.per_s for r in mine],
            cpu_us_per_call=[r.cpu_us for r in mine],
            ratio_to_raw=statistics.median(rates),
            cpu_ratio_to_raw=statistics.median(cpus),
            calls=sum(r.calls for r in mine),
            failed=sum(r.failed for r in mine),
        )
    section.notes.append(
        "÷ raw aiohttp: median over rounds of (calls/s ÷ raw aiohttp's calls/s in the same "
        "round); 1.00 = as fast as the baseline. CPU vs raw: client-process CPU per call "
        "relative to raw aiohttp (1.00x = same cost, 2.00x = twice the CPU)."
    )
    section.notes.append(
        "round spread: (fastest - slowest) ÷ median calls/s of the client's rounds; ratios "
        "closer to 1 than this spread are noise."
    )
    return section
