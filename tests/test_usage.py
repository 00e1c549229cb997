"""API usage: Sforce-Limit-Info parsing, sf.api_usage, the 80 % / 95 % warnings, the budget stop."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from sfoauth_async import APIUsage, APIUsageLimitError, AsyncSession, ConfigurationError, _usage
from sfoauth_async._usage import UsageTracker
from sfoauth_async.testing import FakeSalesforceOrg


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("api-usage=10018/100000", APIUsage(used=10018, limit=100000)),
        ("api-usage=1/750; api-bursts=1/750", APIUsage(used=1, limit=750)),
        ("api-usage=18/5000;per-app-api-usage=17/250(appName=sample)", APIUsage(18, 5000)),
        ("per-app-api-usage=17/250(appName=a;b); api-usage=3/40", APIUsage(used=3, limit=40)),
        ("API-Usage = 5 / 10", APIUsage(used=5, limit=10)),
        ("api-bursts=1/750", None),
        ("per-app-api-usage=17/250(appName=sample)", None),
        ("api-usage=lots/100000", None),
        ("", None),
    ],
)
def test_parse_reads_only_api_usage(header: str, expected: APIUsage | None) -> None:
    """api-usage=USED/MAX is read wherever it stands; other entries and junk are ignored."""
    assert APIUsage.parse(header) == expected


@given(
    used=st.integers(min_value=0, max_value=10**9),
    limit=st.integers(min_value=0, max_value=10**9),
    extras=st.lists(st.sampled_from(["api-bursts=1/750", "per-app-api-usage=2/250(appName=x)"])),
)
def test_parse_round_trips(used: int, limit: int, extras: list[str]) -> None:
    """Whatever the numbers and the other entries, parse gives back used and limit."""
    header = "; ".join([*extras, f"api-usage={used}/{limit}", *extras])
    usage = APIUsage.parse(header)
    assert usage == APIUsage(used=used, limit=limit)
    assert usage.remaining == max(limit - used, 0)
    assert math.isclose(usage.fraction, used / limit) if limit else usage.fraction == 1.0


async def test_api_usage_follows_every_answer(fake_org: FakeSalesforceOrg) -> None:
    """None before the first answer, then the org's count after each call."""
    fake_org.api_usage = 41
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        assert sf.api_usage is None
        await sf.get_token()
        assert sf.api_usage is None  # a token request is not an API call
        for expected in (42, 43):
            async with sf.get("limits/") as resp:
                assert resp.status == 200
            assert sf.api_usage == APIUsage(used=expected, limit=100_000)


async def test_one_warning_at_80_and_one_at_95_percent(
    fake_org: FakeSalesforceOrg, caplog: pytest.LogCaptureFixture
) -> None:
    """Crossing 80 % logs one warning, crossing 95 % one more; calls in between log nothing."""
    caplog.set_level(logging.WARNING, logger="sfoauth_async")
    fake_org.api_usage = 79_998
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        for _ in range(5):  # 79,999 then 80,000 ... 80,003
            async with sf.get("limits/"):
                pass
        at_80 = [r for r in caplog.records if "API allocation" in r.getMessage()]
        assert len(at_80) == 1
        assert "80,000/100,000" in at_80[0].getMessage()
        assert "at least 80%" in at_80[0].getMessage()
        fake_org.api_usage = 94_999
        for _ in range(3):
            async with sf.get("limits/"):
                pass
    warnings = [r for r in caplog.records if "API allocation" in r.getMessage()]
    assert len(warnings) == 2
    assert "95,000/100,000" in warnings[1].getMessage()
    assert all(r.levelno == logging.WARNING for r in warnings)


async def test_a_first_answer_past_95_percent_warns_once(
    fake_org: FakeSalesforceOrg, caplog: pytest.LogCaptureFixture
) -> None:
    """Starting above both thresholds gives a single warning, naming 95 %."""
    caplog.set_level(logging.WARNING, logger="sfoauth_async")
    fake_org.api_usage = 97_000
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        for _ in range(2):
            async with sf.get("limits/"):
                pass
    warnings = [r.getMessage() for r in caplog.records if "API allocation" in r.getMessage()]
    assert len(warnings) == 1
    assert "at least 95%" in warnings[0]


async def test_the_budget_stops_calls_before_they_are_sent(fake_org: FakeSalesforceOrg) -> None:
    """At api_usage_limit, calls raise APIUsageLimitError and never reach the org."""
    fake_org.api_usage = 89_998
    async with AsyncSession(fake_org.client_credentials_flow(), api_usage_limit=0.9) as sf:
        async with sf.get("limits/"):  # usage 89,999: below the limit
            pass
        async with sf.get("limits/"):  # usage 90,000: the limit, reached by this call
            pass
        sent = fake_org.stats.api_requests
        for _ in range(3):
            with pytest.raises(APIUsageLimitError) as caught:
                await sf.get("query/", params={"q": "SELECT Id FROM Account"})
        assert fake_org.stats.api_requests == sent == 2
    exc = caught.value
    assert exc.usage == APIUsage(used=90_000, limit=100_000)
    assert exc.limit == 0.9
    assert not exc.transient
    assert "90,000/100,000" in str(exc)
    assert "SELECT" not in str(exc)  # the URL is given without its query string


async def test_a_stopped_session_probes_and_reopens(
    fake_org: FakeSalesforceOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusing session lets one call out per probe interval, and reopens if usage fell."""
    fake_org.api_usage = 95_000
    async with AsyncSession(fake_org.client_credentials_flow(), api_usage_limit=0.5) as sf:
        async with sf.get("limits/"):
            pass
        with pytest.raises(APIUsageLimitError):
            await sf.get("limits/")
        assert fake_org.stats.api_requests == 1
        monkeypatch.setattr(_usage, "PROBE_INTERVAL_S", 0.0)
        async with sf.get("limits/"):  # the probe: still 95 %, so the stop holds
            pass
        assert fake_org.stats.api_requests == 2
        fake_org.api_usage = 10  # older calls aged out of the rolling 24 hours
        async with sf.get("limits/"):  # the next probe hears it
            pass
        monkeypatch.setattr(_usage, "PROBE_INTERVAL_S", 3600.0)
        for _ in range(3):  # open again: no probing involved
            async with sf.get("limits/") as resp:
                assert resp.status == 200
    assert fake_org.stats.api_requests == 6
    assert sf.api_usage == APIUsage(used=14, limit=100_000)


@pytest.fixture
async def elsewhere() -> AsyncIterator[str]:
    """Another origin on loopback that answers 200 with a limit header of its own."""

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({}, headers={"Sforce-Limit-Info": "api-usage=1/1"})

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()


async def test_other_origins_are_neither_counted_nor_stopped(
    fake_org: FakeSalesforceOrg, elsewhere: str
) -> None:
    """Requests to another host pass the budget, and their headers do not count as usage."""
    fake_org.api_usage = 99_000
    async with AsyncSession(fake_org.client_credentials_flow(), api_usage_limit=0.9) as sf:
        async with sf.get("limits/"):
            pass
        async with sf.get(elsewhere) as resp:
            assert resp.status == 200
        assert sf.api_usage == APIUsage(used=99_001, limit=100_000)


@pytest.mark.parametrize("limit", [0, -0.5, 1.01, float("nan"), True, "0.9"])
def test_bad_limits_are_refused(limit: object) -> None:
    """api_usage_limit must be a fraction in (0, 1]."""
    with pytest.raises(ConfigurationError, match="api_usage_limit"):
        UsageTracker(limit=limit)  # type: ignore[arg-type]


def test_usage_without_allocation() -> None:
    """An org reporting a limit of 0 is fully used."""
    assert APIUsage(used=0, limit=0).fraction == 1.0
    assert str(APIUsage(used=1234, limit=5000)) == "1,234/5,000 (24.7%)"
