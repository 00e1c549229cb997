"""Scenarios 5 and 6, ETL: a query of `Settings.etl_records` records, and an upsert of as many.

5. **Query.** The org holds `Settings.etl_records` generated Accounts (``seed_records``).
   ``sf.query(SOQL)`` iterates them all (pages of 2,000 following ``nextRecordsUrl``),
   against a hand-written aiohttp loop that GETs the same pages with a hand-set bearer
   header, parses each page the same way (``json.loads`` of the body) and walks its
   records. Rounds interleave the two, in alternating order; the ratio is the median over
   rounds of (sf.query's records/s ÷ the loop's in the same round).

   Memory: with ``tracemalloc`` on, the peak growth of the client process's Python
   allocations while iterating (records are counted, not kept), for a fifth of the records
   and for all of them, against the size of one parsed page. ``query_all``, which keeps
   every record, is measured too, to show what the measurement sees when memory does grow.

6. **Upsert.** `Settings.etl_records` rows upserted by external id: through
   ``sf.upsert_records`` (calls of 200, at most `Settings.etl_concurrency` in flight: the
   session's connection limit), against a hand-written aiohttp loop that sends the same
   calls of 200 with as many workers. The org's stored records are cleared before each run,
   so every run creates every record. The org counts the API calls.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp

from sfoauth_async import AsyncSession

from . import Settings
from ._org import OrgInfo, OrgProcess
from ._report import Section, rate, ratio

SOQL = (
    "SELECT Id, Name, AccountNumber, Industry, AnnualRevenue, NumberOfEmployees, BillingCity "
    "FROM Account"
)
QUERY_PATH = "/services/data/v67.0/query/"
UPSERT_PATH = "/services/data/v67.0/composite/sobjects/Account/External_Id__c"
CHUNK = 200


async def _hand_session(info: OrgInfo, **kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session with a token fetched by hand as a session-wide header."""
    token = await info.client_credentials_flow().fetch_token()
    headers = {"Authorization": f"Bearer {token.access_token}"}
    return aiohttp.ClientSession(headers=headers, **kwargs)


async def query_by_hand(http: aiohttp.ClientSession, base: str, soql: str) -> int:
    """The baseline: follow nextRecordsUrl by hand, one page at a time."""
    url: str | None = base + QUERY_PATH
    params: dict[str, str] | None = {"q": soql}
    count = 0
    while url is not None:
        async with http.get(url, params=params) as resp:
            resp.raise_for_status()
            page = json.loads(await resp.read())
        for _ in page["records"]:
            count += 1
        url = None if page["done"] else base + page["nextRecordsUrl"]
        params = None
    return count


async def query_with_sfoauth(sf: AsyncSession, soql: str) -> int:
    """``async for`` over ``sf.query``."""
    count = 0
    async for _ in sf.query(soql):
        count += 1
    return count


async def query_all_with_sfoauth(sf: AsyncSession, soql: str) -> int:
    """``sf.query_all``: every record kept in a list (the contrast for memory)."""
    return len(await sf.query_all(soql))


def _timed(cpu: float, wall: float, records: int) -> dict[str, float]:
    wall_s = time.perf_counter() - wall
    return {
        "records": records,
        "per_s": records / wall_s,
        "cpu_us": (time.process_time() - cpu) / max(records, 1) * 1e6,
    }


async def _timed_run(run: Callable[[], Awaitable[int]]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    records = await run()
    return _timed(cpu, wall, records)


async def _peak_growth(run: Callable[[], Awaitable[int]]) -> int:
    """Peak growth of traced Python allocations during ``run``, in bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        await run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


async def _page_bytes(http: aiohttp.ClientSession, base: str) -> tuple[int, int]:
    """One full page: its body size, and what parsing it allocates."""
    async with http.get(base + QUERY_PATH, params={"q": SOQL}) as resp:
        body = await resp.read()
    gc.collect()
    tracemalloc.start()
    try:
        page = json.loads(body)
        parsed = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del page
    return len(body), parsed


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f}"


COLUMNS = [
    "client",
    "records/s (median)",
    "÷ hand-written loop",
    "client CPU µs/record",
    "API calls per run",
    "records per run",
    "round spread",
]
Run = dict[str, float]


async def _rounds(
    org: OrgProcess,
    clients: dict[str, Callable[[], Awaitable[int]]],
    rounds: int,
    before_each: Callable[[], None] = lambda: None,
) -> dict[str, list[Run]]:
    """Each client once per round, interleaved, in alternating order; API calls counted."""
    runs: dict[str, list[Run]] = {name: [] for name in clients}
    for n in range(rounds):
        order = list(clients) if n % 2 == 0 else list(reversed(clients))
        for name in order:
            before_each()
            calls = org.stats()["api_requests"]
            run = await _timed_run(clients[name])
            run["api_calls"] = org.stats()["api_requests"] - calls
            runs[name].append(run)
    return runs


def _versus(section: Section, runs: dict[str, list[Run]], labels: dict[str, str]) -> None:
    """One row per client; the ratio is the median of per-round ratios to ``"hand"``."""
    ratios = [
        ours["per_s"] / hand["per_s"]
        for ours, hand in zip(runs["sfoauth"], runs["hand"], strict=True)
    ]
    for name, label in labels.items():
        rates = [r["per_s"] for r in runs[name]]
        mid = statistics.median(rates)
        to_hand = statistics.median(ratios) if name == "sfoauth" else 1.0
        section.add(
            [
                label,
                rate(mid),
                ratio(to_hand),
                f"{statistics.median(r['cpu_us'] for r in runs[name]):.1f}",
                "/".join(sorted({f"{int(r['api_calls'])}" for r in runs[name]})),
                "/".join(sorted({f"{int(r['records']):,}" for r in runs[name]})),
                f"{(max(rates) - min(rates)) / mid:.0%}",
            ],
            client=name,
            records_per_s=rates,
            cpu_us_per_record=[r["cpu_us"] for r in runs[name]],
            api_calls=[r["api_calls"] for r in runs[name]],
            ratio_to_hand=to_hand,
        )


async def run_query(org: OrgProcess, settings: Settings) -> list[Section]:
    """Scenario 5: query throughput against a hand-written loop, then memory."""
    assert org.info is not None
    info = org.info
    total = settings.etl_records
    org.seed_records("Account", total)
    base = info.my_domain_url
    throughput = Section(
        name="etl_query",
        title=(
            f"5. ETL query: {total:,} records through sf.query vs a hand-written "
            f"page-following aiohttp loop ({settings.etl_rounds} rounds)"
        ),
        columns=COLUMNS,
    )
    http = await _hand_session(info)
    try:
        async with AsyncSession(info.client_credentials_flow()) as sf:
            clients: dict[str, Callable[[], Awaitable[int]]] = {
                "hand": lambda: query_by_hand(http, base, SOQL),
                "sfoauth": lambda: query_with_sfoauth(sf, SOQL),
            }
            for name, run in clients.items():  # warm-up: connections, token, code paths
                assert await run() == total, f"{name} did not see every record"
            runs = await _rounds(org, clients, settings.etl_rounds)
            memory = await _query_memory(sf, http, base, total)
    finally:
        await http.close()
    _versus(
        throughput,
        runs,
        {"hand": "hand-written aiohttp loop", "sfoauth": "sfoauth_async sf.query"},
    )
    throughput.notes.append(
        "÷ hand-written loop: median over rounds of (records/s ÷ the loop's records/s in the "
        "same round). The org runs in its own process; both clients parse each page with "
        "json.loads and walk every record."
    )
    return [throughput, memory]


async def _query_memory(
    sf: AsyncSession, http: aiohttp.ClientSession, base: str, total: int
) -> Section:
    body_bytes, parsed_bytes = await _page_bytes(http, base)
    section = Section(
        name="etl_query_memory",
        title="5b. ETL query memory: peak growth of traced allocations while iterating",
        columns=["client", "records", "peak growth MB", "÷ one parsed page"],
    )
    small = max(total // 5, 2_000)
    kinds: list[tuple[str, Callable[[AsyncSession, str], Awaitable[int]]]] = [
        ("sf.query", query_with_sfoauth),
        ("sf.query_all (keeps all)", query_all_with_sfoauth),
    ]
    for label, query in kinds:
        for records in (small, total):
            soql = f"{SOQL} LIMIT {records}"
            peak = await _peak_growth(lambda query=query, soql=soql: query(sf, soql))
            section.add(
                [label, f"{records:,}", _mb(peak), f"{peak / parsed_bytes:.1f}"],
                client=label,
                records=records,
                peak_growth_bytes=peak,
                ratio_to_page=peak / parsed_bytes,
            )
    section.notes.append(
        f"One page of 2,000 records is {_mb(body_bytes)} MB of JSON and "
        f"{_mb(parsed_bytes)} MB once parsed (tracemalloc). sf.query holds one page at a "
        f"time, so its peak should not grow with the total; query_all's does."
    )
    return section


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {"External_Id__c": f"BENCH-{i:07d}", "Name": f"Bench {i}", "Industry": "Energy"}
        for i in range(count)
    ]


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


async def upsert_by_hand(
    http: aiohttp.ClientSession, base: str, rows: list[dict[str, Any]], workers: int
) -> int:
    """The baseline: the same calls of 200, sent by ``workers`` coroutines."""
    chunks = _chunks(rows)
    saved = 0

    async def worker() -> None:
        nonlocal saved
        for chunk in chunks:
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": "Account"}, **row} for row in chunk],
            }
            async with http.patch(base + UPSERT_PATH, json=body) as resp:
                resp.raise_for_status()
                results = json.loads(await resp.read())
            saved += sum(1 for result in results if result["success"])

    await asyncio.gather(*(worker() for _ in range(workers)))
    return saved


async def upsert_with_sfoauth(sf: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """``sf.upsert_records`` on all rows."""
    results = await sf.upsert_records("Account", "External_Id__c", rows)
    return sum(1 for result in results if result.success)


async def run_upsert(org: OrgProcess, settings: Settings) -> Section:
    """Scenario 6: upsert throughput and API calls against a hand-written loop."""
    assert org.info is not None
    info = org.info
    total, workers = settings.etl_records, settings.etl_concurrency
    rows = _rows(total)
    base = info.my_domain_url
    section = Section(
        name="etl_upsert",
        title=(
            f"6. ETL upsert: {total:,} records by external id, calls of {CHUNK}, "
            f"{workers} in flight, vs a hand-written aiohttp loop ({settings.etl_rounds} rounds)"
        ),
        columns=COLUMNS,
    )
    http = await _hand_session(info, connector=aiohttp.TCPConnector(limit=workers))
    try:
        async with AsyncSession(
            info.client_credentials_flow(), connector=aiohttp.TCPConnector(limit=workers)
        ) as sf:
            await sf.get_token()
            clients: dict[str, Callable[[], Awaitable[int]]] = {
                "hand": lambda: upsert_by_hand(http, base, rows, workers),
                "sfoauth": lambda: upsert_with_sfoauth(sf, rows),
            }
            runs = await _rounds(org, clients, settings.etl_rounds, org.clear_records)
    finally:
        await http.close()
        org.clear_records()
    _versus(
        section,
        runs,
        {"hand": "hand-written aiohttp loop", "sfoauth": "sfoauth_async upsert_records"},
    )
    section.notes.append(
        "Every run creates every record (the org's records are cleared before each run); "
        "records per run counts the records saved. The org, in its own process, does most of "
        "the work, so the ratio shows what the helpers add on top of the same calls."
    )
    return section
