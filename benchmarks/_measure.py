"""How calls are driven and timed: closed-loop workers, all-at-once storms, CPU and wall clocks."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

AsyncCall = Callable[[], Awaitable[bool]]
SyncCall = Callable[[], bool]


@dataclass(frozen=True)
class Run:
    """One timed batch of calls in this (the client) process."""

    calls: int
    failed: int
    wall_s: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        """Calls per wall-clock second."""
        return self.calls / self.wall_s

    @property
    def cpu_us(self) -> float:
        """Client-process CPU microseconds per call (all threads)."""
        return self.cpu_s / self.calls * 1e6


def median_run(runs: list[Run]) -> Run:
    """The run with the median rate (its own CPU and failures kept together)."""
    ordered = sorted(runs, key=lambda r: r.per_s)
    return ordered[(len(ordered) - 1) // 2]


def spread(runs: list[Run]) -> float:
    """(max - min) / median of the rates: how much the rounds disagreed."""
    rates = [r.per_s for r in runs]
    return (max(rates) - min(rates)) / statistics.median(rates) if len(rates) > 1 else 0.0


def _ok(outcome: bool | BaseException) -> bool:
    return outcome is True


async def closed_loop(call: AsyncCall, total: int, concurrency: int, max_s: float) -> Run:
    """Up to ``total`` calls by ``concurrency`` coroutines, each starting its next at once.

    No call starts after ``max_s`` seconds, so a slow client is measured on fewer calls
    instead of stretching the run; calls in flight then finish and are counted.
    """
    left = total
    done = failed = 0
    stop_at = time.perf_counter() + max_s

    async def worker() -> None:
        nonlocal left, done, failed
        while left > 0 and time.perf_counter() < stop_at:
            left -= 1
            try:
                ok = await call()
            except Exception:
                ok = False
            done += 1
            failed += not ok

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(done, failed, time.perf_counter() - wall, time.process_time() - cpu)


def threaded_closed_loop(call: SyncCall, total: int, concurrency: int, max_s: float) -> Run:
    """The same with ``concurrency`` threads (for synchronous clients)."""
    tickets = itertools.count()
    done = itertools.count()
    failures = itertools.count()

    def worker() -> None:
        while time.perf_counter() < stop_at and next(tickets) < total:
            try:
                ok = call()
            except Exception:
                ok = False
            next(done)
            if not ok:
                next(failures)

    cpu, wall = time.process_time(), time.perf_counter()
    stop_at = wall + max_s
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    elapsed, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return Run(next(done), next(failures), elapsed, cpu_s)


async def storm(call: AsyncCall, count: int) -> Run:
    """``count`` calls started at the same moment; a call that raises counts as failed."""
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = await asyncio.gather(*(call() for _ in range(count)), return_exceptions=True)
    elapsed, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return Run(count, sum(not _ok(o) for o in outcomes), elapsed, cpu_s)


def threaded_storm(call: SyncCall, count: int, threads: int) -> Run:
    """``count`` calls queued at once on a pool of ``threads`` threads."""

    def guarded() -> bool:
        try:
            return call()
        except Exception:
            return False

    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(lambda _: guarded(), range(count)))
    elapsed, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return Run(count, sum(not o for o in outcomes), elapsed, cpu_s)
