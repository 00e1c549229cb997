"""``python -m sfoauth_async demo``: the library at work against the embedded fake org.

The demo is an edge of the product, like the CLI it belongs to: it is the one place that
imports `sfoauth_async.testing`, and only when it runs.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

import aiohttp

from ._authorization_code import AuthorizationCodeFlow
from ._flow import Flow
from ._retry import RetryPolicy
from ._session import AsyncSession
from ._token import Token

if TYPE_CHECKING:
    from .testing import FakeSalesforceOrg

__all__ = ["DemoResult", "run_demo"]

_CALLBACK = "http://localhost:8765/callback"


@dataclass
class DemoResult:
    """What the demo measured.

    Attributes:
        requests: API requests completed.
        failed: API requests that did not end in 2xx.
        token_requests: Token requests the fake org received during the load.
        unauthorized: 401 answers the fake org sent during the load.
        waits: Requests that had to wait for a token.
        latencies_s: Latency of each request, in seconds.
        seconds: Wall time of the load.

    Example:
        ```python
        result = await run_demo(tasks=100, seconds=3.0, lifetime_s=1.0)
        assert result.failed == 0
        ```
    """

    requests: int = 0
    failed: int = 0
    token_requests: int = 0
    unauthorized: int = 0
    waits: int = 0
    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile latency in milliseconds (0 when nothing ran).

        Example:
            ```python
            print(result.percentile_ms(99))
            ```
        """
        if len(self.latencies_s) < 2:
            return 1000 * (self.latencies_s[0] if self.latencies_s else 0.0)
        return 1000 * statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(q) - 1]


async def _authorization_code_token(org: FakeSalesforceOrg) -> tuple[Flow, Token]:
    """Walk the web-server flow in auto-approve mode, as a browser would."""
    org.app.callback_urls.append(_CALLBACK)
    flow = org.authorization_code_flow(_CALLBACK)
    assert isinstance(flow, AuthorizationCodeFlow)
    request = flow.authorization_url()
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(request.url, allow_redirects=False) as resp,
    ):
        callback = resp.headers["Location"]
    code = flow.parse_callback(callback, state=request.state)
    return flow, await flow.exchange(code, code_verifier=request.code_verifier)


async def _show_each_grant(org: FakeSalesforceOrg, out: TextIO) -> None:
    out.write("Each grant, end to end:\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        password = org.password_flow()
    web_flow, web_token = await _authorization_code_token(org)
    flows: list[tuple[str, Flow, Token | None]] = [
        ("client credentials", org.client_credentials_flow(), None),
        ("JWT bearer", org.jwt_bearer_flow(), None),
        ("refresh token", org.refresh_token_flow(), None),
        ("authorization code + PKCE", web_flow, web_token),
        ("username-password (deprecated)", password, None),
    ]
    for label, flow, token in flows:
        async with AsyncSession(flow, token=token) as sf, sf.get("limits/") as resp:
            used = sf.token
            assert used is not None
            out.write(
                f"  {label:<32} HTTP {resp.status}  user {used.user_id}  "
                f"(refresh token: {'yes' if used.refresh_token else 'no'})\n"
            )


def _bar(done: float, total: float, width: int = 30) -> str:
    filled = min(width, int(width * done / total)) if total else width
    return "#" * filled + "." * (width - filled)


async def run_demo(
    *,
    tasks: int = 2000,
    seconds: float = 12.0,
    lifetime_s: float = 4.0,
    think_s: float = 2.0,
    out: TextIO | None = None,
    progress: TextIO | None = None,
) -> DemoResult:
    """Start the fake org and run ``tasks`` concurrent tasks for ``seconds``.

    Sessions on the fake org last ``lifetime_s``, so the load crosses several expiries. All
    tasks share one `AsyncSession` on a JWT bearer flow. Each task sends a request, then
    works on the answer for ``think_s`` on average (random, 0.5x to 1.5x), like an ETL job
    does; the fake org shares the process and its core, so a load with no pause would only
    measure how long requests queue.

    Args:
        tasks: Concurrent tasks.
        seconds: How long the load lasts.
        lifetime_s: Session lifetime of the fake org, and the session timeout we configure.
        think_s: Mean pause of a task between two requests.
        out: Where the report goes (default stdout).
        progress: Where the progress bar goes (default stderr); drawn only on a terminal.

    Example:
        ```python
        result = await run_demo(tasks=500, seconds=5.0, lifetime_s=2.0, think_s=0.5)
        ```
    """
    from .testing import FakeSalesforceOrg  # noqa: PLC0415 - only the demo needs the fake org

    out = out or sys.stdout
    progress = progress or sys.stderr
    lifetime = timedelta(seconds=lifetime_s)
    result = DemoResult()
    async with FakeSalesforceOrg(session_lifetime=lifetime, auto_approve=True) as org:
        out.write(f"Embedded fake Salesforce org at {org.my_domain_url} (org {org.org_id})\n")
        await _show_each_grant(org, out)
        out.write(
            f"\n{tasks} concurrent tasks for {seconds:g} s. Sessions last {lifetime_s:g} s "
            f"and each is replaced about {lifetime_s / 4:g} s before it expires, in the "
            f"background, with one token request:\n"
        )
        org.stats.reset()
        flow = org.jwt_bearer_flow()
        retry = RetryPolicy(total_timeout_s=min(10.0, lifetime_s), attempt_timeout_s=2.0)
        async with AsyncSession(flow, session_timeout=lifetime, retry=retry) as sf:
            await sf.get_token()
            org.stats.reset()
            waits_before = sf.stats.waits
            started = time.monotonic()
            deadline = started + seconds

            async def worker() -> None:
                # Start spread over one pause, as a running job would be.
                await asyncio.sleep(random.uniform(0, think_s))  # noqa: S311
                while time.monotonic() < deadline:
                    sent = time.perf_counter()
                    async with sf.get("limits/") as resp:
                        await resp.read()
                        ok = 200 <= resp.status < 300
                    result.latencies_s.append(time.perf_counter() - sent)
                    result.requests += 1
                    result.failed += not ok
                    pause = think_s * random.uniform(0.5, 1.5)  # noqa: S311
                    await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))

            workers = [asyncio.create_task(worker()) for _ in range(tasks)]
            # \r frames only redraw a terminal; in a file or a pipe they are noise.
            frames = progress.isatty()
            while not all(w.done() for w in workers):
                await asyncio.wait(workers, timeout=0.25)
                elapsed = min(time.monotonic() - started, seconds)
                if frames:
                    progress.write(
                        f"\r  [{_bar(elapsed, seconds)}] {elapsed:5.1f}/{seconds:g} s  "
                        f"requests {result.requests:>7}  token requests "
                        f"{org.stats.token_requests_total:>3}  401s {org.stats.unauthorized:>3}"
                    )
                    progress.flush()
            if frames:
                progress.write("\n")
            await asyncio.gather(*workers)
            result.seconds = time.monotonic() - started
            result.token_requests = org.stats.token_requests_total
            result.unauthorized = org.stats.unauthorized
            result.waits = sf.stats.waits - waits_before
    _report(result, out)
    return result


def _report(result: DemoResult, out: TextIO) -> None:
    rate = result.requests / result.seconds if result.seconds else 0.0
    out.write(
        f"\nSummary\n"
        f"  requests          {result.requests} ({rate:,.0f}/s), failed {result.failed}\n"
        f"  token requests    {result.token_requests}\n"
        f"  401s seen         {result.unauthorized}\n"
        f"  waited for token  {result.waits}\n"
        f"  latency p50       {result.percentile_ms(50):.1f} ms\n"
        f"  latency p99       {result.percentile_ms(99):.1f} ms\n"
    )
