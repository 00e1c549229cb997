"""api_retry: what is sent again (only what Salesforce did not carry out), and when."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from test_session import StaticFlow

from sfoauth_async import (
    AsyncSession,
    ConfigurationError,
    Refresher,
    RetryPolicy,
    ServerUnavailableError,
    Token,
    UnableToLockRowError,
)
from sfoauth_async._api_retry import retryable_exception
from sfoauth_async._retry import retry_after_s
from sfoauth_async.testing import FakeSalesforceOrg, Fault

FAST = RetryPolicy(wait_initial_s=0.0, wait_max_s=0.0)
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def sf(fake_org: FakeSalesforceOrg) -> AsyncIterator[AsyncSession]:
    """A logged-in session that retries API calls without waiting."""
    async with AsyncSession(fake_org.client_credentials_flow(), api_retry=FAST) as session:
        await session.get_token()
        yield session


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("soon", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_takes_seconds_or_a_date(value: str | None, expected: float | None) -> None:
    """Retry-After: delay-seconds or an HTTP date; past dates and negatives mean now."""
    assert retry_after_s(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("method", "exc", "expected"),
    [
        ("POST", aiohttp.ClientConnectorError(None, OSError(111, "refused")), True),  # type: ignore[arg-type]
        ("POST", aiohttp.ConnectionTimeoutError(), True),
        ("GET", aiohttp.ServerDisconnectedError(), True),
        ("DELETE", aiohttp.ClientOSError(104, "reset"), True),
        ("POST", aiohttp.ServerDisconnectedError(), False),
        ("PATCH", aiohttp.SocketTimeoutError(), False),
        ("GET", aiohttp.ClientSSLError(None, OSError("bad cert")), False),  # type: ignore[arg-type]
        ("GET", ValueError("not a connection error"), False),
    ],
)
def test_which_exceptions_are_retried(method: str, exc: BaseException, expected: bool) -> None:
    """Unsent calls retry for any method; lost answers only for idempotent ones; TLS never."""
    assert retryable_exception(method, exc) is expected


async def test_get_is_retried_on_503(fake_org: FakeSalesforceOrg, sf: AsyncSession) -> None:
    """A GET that met 503 SERVER_UNAVAILABLE is sent again and succeeds: two calls."""
    fake_org.faults.api.push(Fault.server_unavailable())
    async with sf.get("limits/") as resp:
        assert resp.status == 200
    assert fake_org.stats.api_requests == 2


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_statuses_are_retried_for_delete(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, status: int
) -> None:
    """502/503/504 without a Salesforce body (an HTML page) are retried for idempotent calls."""
    record_id = fake_org.add_record("Account", {"Name": "Acme"})
    fake_org.faults.api.push(Fault.html(status))
    async with sf.delete(f"sobjects/Account/{record_id}") as resp:
        assert resp.status == 204
    assert fake_org.stats.api_requests == 2


async def test_post_is_not_retried_on_503(fake_org: FakeSalesforceOrg, sf: AsyncSession) -> None:
    """A POST may have been carried out before the 503: it is returned, not sent again."""
    fake_org.faults.api.push(Fault.server_unavailable())
    async with sf.post("sobjects/Account/", json={"Name": "Acme"}) as resp:
        assert resp.status == 503
    assert fake_org.stats.api_requests == 1
    assert fake_org.api_usage == 0


async def test_lock_errors_are_retried_for_any_method(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """UNABLE_TO_LOCK_ROW was rolled back: a POST is sent again, and creates one record."""
    fake_org.faults.api.push(Fault.unable_to_lock_row(), Fault.unable_to_lock_row())
    async with sf.post("sobjects/Account/", json={"Name": "Acme"}) as resp:
        assert resp.status == 201
    assert fake_org.stats.api_requests == 3
    assert len(fake_org._records) == 1


async def test_the_concurrency_limit_is_retried_the_daily_limit_never(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """Concurrent-request REQUEST_LIMIT_EXCEEDED is retried; the daily one is returned at once."""
    fake_org.faults.api.push(Fault.request_limit_exceeded(concurrent=True))
    async with sf.patch("composite/sobjects", json={"records": []}) as resp:
        assert resp.status == 200
    assert fake_org.stats.api_requests == 2
    fake_org.faults.api.push(Fault.request_limit_exceeded(), Fault.request_limit_exceeded())
    async with sf.get("limits/") as resp:
        assert resp.status == 403
    assert fake_org.stats.api_requests == 3
    assert len(fake_org.faults.api) == 1


async def test_other_errors_are_not_retried(fake_org: FakeSalesforceOrg, sf: AsyncSession) -> None:
    """A 400, a 404 and a 500 are answers, not outages: each is sent once."""
    fake_org.faults.api.push(
        Fault.json(400, [{"errorCode": "MALFORMED_QUERY", "message": "x"}]),
        Fault.json(500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "x"}]),
    )
    for expected in (400, 500, 404):
        async with sf.get("sobjects/Account/001000000000000AAA") as resp:
            assert resp.status == expected
    assert fake_org.stats.api_requests == 3


async def test_attempts_cap_the_sends(fake_org: FakeSalesforceOrg) -> None:
    """With attempts=3, three sends, then the last answer stands (or raises its class)."""
    policy = RetryPolicy(attempts=3, wait_initial_s=0.0, wait_max_s=0.0)
    fake_org.faults.api.push(*[Fault.server_unavailable()] * 10)
    async with AsyncSession(fake_org.client_credentials_flow(), api_retry=policy) as sf:
        async with sf.get("limits/") as resp:
            assert resp.status == 503
        assert fake_org.stats.api_requests == 3
    async with AsyncSession(
        fake_org.client_credentials_flow(), api_retry=policy, raise_for_status=True
    ) as sf:
        with pytest.raises(ServerUnavailableError):
            await sf.get("limits/")
    assert fake_org.stats.api_requests == 6


async def test_a_dropped_connection_is_retried_for_get_not_for_post(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """A GET whose connection dropped is sent again; a POST's error is raised after one send."""
    fake_org.faults.api.push(Fault.drop())
    async with sf.get("limits/") as resp:
        assert resp.status == 200
    assert fake_org.stats.api_requests == 2
    fake_org.faults.api.push(Fault.drop())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await sf.post("sobjects/Account/", json={"Name": "Acme"})
    assert fake_org.stats.api_requests == 3


async def test_an_unsent_call_is_retried_for_any_method() -> None:
    """Connection refused: nothing was sent, so even a POST is tried `attempts` times."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is closed again: connecting to it is refused.
    connects: list[int] = []
    trace = aiohttp.TraceConfig()

    async def connecting(*_: object) -> None:
        connects.append(1)

    trace.on_connection_create_start.append(connecting)
    token = Token(access_token="00D!unsent", instance_url=f"http://127.0.0.1:{port}")
    policy = RetryPolicy(attempts=3, wait_initial_s=0.0, wait_max_s=0.0)
    refresher = Refresher(StaticFlow(), token=token)
    async with AsyncSession(refresher, api_retry=policy, trace_configs=[trace]) as sf:
        with pytest.raises(aiohttp.ClientConnectorError):
            await sf.post("sobjects/Account/", json={"Name": "Acme"})
    assert len(connects) == 3


async def test_a_body_that_cannot_be_replayed_is_not_retried(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """An async-generator body is sent once; its lock error comes back as the answer."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"Name": '
        yield b'"Streamed"}'

    fake_org.faults.api.push(Fault.unable_to_lock_row())
    headers = {"Content-Type": "application/json"}
    async with sf.post("sobjects/Account/", data=body(), headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert fake_org.stats.api_requests == 1


async def test_retry_after_is_honoured(fake_org: FakeSalesforceOrg, sf: AsyncSession) -> None:
    """Retry-After: 1 makes the retry wait a second, though the backoff would not wait at all."""
    fake_org.faults.api.push(Fault.server_unavailable(retry_after="1"))
    started = time.monotonic()
    async with sf.get("limits/") as resp:
        assert resp.status == 200
    assert time.monotonic() - started >= 1.0
    assert fake_org.stats.api_requests == 2


async def test_a_retry_after_beyond_the_budget_ends_retrying(fake_org: FakeSalesforceOrg) -> None:
    """Retry-After longer than total_timeout_s: no wait, no retry, the 503 stands."""
    policy = RetryPolicy(total_timeout_s=5.0, wait_initial_s=0.0, wait_max_s=0.0)
    fake_org.faults.api.push(Fault.server_unavailable(retry_after="3600"))
    async with (
        AsyncSession(fake_org.client_credentials_flow(), api_retry=policy) as sf,
        sf.get("limits/") as resp,
    ):
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "3600"
    assert fake_org.stats.api_requests == 1


async def test_each_retry_is_signed_with_the_current_token(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """A 401 is healed with a new token, then a 503 retried: the retry carries the new token."""
    old = sf.token
    assert old is not None
    fake_org.revoke_access_token(old.access_token)
    fake_org.faults.api.push(Fault.json(401, SESSION_EXPIRED), Fault.server_unavailable())
    async with sf.get("limits/") as resp:
        assert resp.status == 200
    assert sf.token is not None
    assert sf.token.access_token != old.access_token
    # One login, one refresh: a retry sent with the revoked token would have cost another.
    assert fake_org.stats.token_requests_total == 2
    assert fake_org.stats.api_requests == 3


async def test_without_a_policy_nothing_is_retried(fake_org: FakeSalesforceOrg) -> None:
    """The default is no API retries: a lock error comes back after one send."""
    fake_org.faults.api.push(Fault.unable_to_lock_row())
    async with (
        AsyncSession(fake_org.client_credentials_flow()) as sf,
        sf.get("limits/") as resp,
    ):
        assert resp.status == 400
    assert fake_org.stats.api_requests == 1


async def test_retries_are_logged_without_the_query(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry is one INFO line with the method, path and reason, but no SOQL."""
    caplog.set_level(logging.INFO, logger="sfoauth_async")
    fake_org.faults.api.push(Fault.unable_to_lock_row())
    rows = await sf.query_all("SELECT Id FROM Account WHERE Name = 'secret'")
    assert rows == []
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retries) == 1
    assert "GET" in retries[0]
    assert "/services/data/v67.0/query/ after UNABLE_TO_LOCK_ROW (attempt 2 of 5)" in retries[0]
    assert "secret" not in retries[0]


async def test_a_lock_that_outlasts_the_policy_raises_from_helpers(
    fake_org: FakeSalesforceOrg,
) -> None:
    """The collection helpers raise the last answer's class once attempts run out."""
    policy = RetryPolicy(attempts=2, wait_initial_s=0.0, wait_max_s=0.0)
    fake_org.faults.api.push(*[Fault.unable_to_lock_row()] * 2)
    async with AsyncSession(fake_org.client_credentials_flow(), api_retry=policy) as sf:
        with pytest.raises(UnableToLockRowError):
            await sf.create_records("Account", [{"Name": "Acme"}])
    assert fake_org.stats.api_requests == 2


def test_api_retry_must_be_a_policy() -> None:
    """api_retry takes a RetryPolicy (or None)."""
    with pytest.raises(ConfigurationError, match="api_retry must be a RetryPolicy"):
        AsyncSession(StaticFlow(), api_retry=3)  # type: ignore[arg-type]
