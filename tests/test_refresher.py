"""Unit tests of the Refresher's state machine, with a scripted flow (no HTTP).

End-to-end behaviour against the fake org is in test_session.py and test_stress.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from faults import BusyStore

from sfoauth_async import (
    ConfigurationError,
    Flow,
    InvalidGrantError,
    LoginRateExceededError,
    RefreshCooldownError,
    SessionClosedError,
    Token,
    TokenEndpointUnavailableError,
)
from sfoauth_async._refresher import Refresher
from sfoauth_async._retry import RetryPolicy

FAST = RetryPolicy(attempts=3, total_timeout_s=5.0, wait_initial_s=0.001, wait_max_s=0.002)


def make_token(  # noqa: D103 - a token factory
    n: int = 1,
    *,
    age: timedelta = timedelta(0),
    lifetime: timedelta | None = timedelta(hours=2),
    refresh_token: str | None = None,
) -> Token:
    received = datetime.now(UTC) - age
    return Token(
        access_token=f"00D!access-{n}",
        instance_url="https://acme.my.salesforce.com",
        id="https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001X8UzAAK",
        refresh_token=refresh_token,
        received_at=received,
        expires_at=received + lifetime if lifetime is not None else None,
    )


class ScriptedFlow(Flow):
    """A flow whose token requests are answered by the test."""

    grant_type = "scripted"
    _key_grant = "scripted"

    def __init__(self) -> None:
        super().__init__(client_id="scripted", client_secret=None, login_url="https://x.test")
        self.calls = 0
        self.previous: list[Token | None] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.outcomes: list[Token | BaseException] = []

    def _grant_form(self, previous: Token | None) -> dict[str, str]:
        raise NotImplementedError

    def _subject(self, token: Token | None) -> str:  # noqa: ARG002
        return "scripted"

    async def fetch_token(  # noqa: D102 - answers from the script
        self,
        session: aiohttp.ClientSession | None = None,  # noqa: ARG002
        *,
        previous: Token | None = None,
        session_timeout: timedelta | None = timedelta(hours=2),
        timeout_s: float | None = None,  # noqa: ARG002
        connect_timeout_s: float | None = None,  # noqa: ARG002
    ) -> Token:
        self.calls += 1
        self.previous.append(previous)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.outcomes.pop(0) if self.outcomes else make_token(100 + self.calls)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome.with_session_timeout(session_timeout)


def invalid_grant() -> InvalidGrantError:  # noqa: D103
    return InvalidGrantError("refused", error="invalid_grant", description="authentication failure")


def unavailable() -> TokenEndpointUnavailableError:  # noqa: D103
    return TokenEndpointUnavailableError("down", status=503)


async def test_fresh_token_is_returned_without_a_token_request() -> None:
    """A fresh token given at start is served as is."""
    flow = ScriptedFlow()
    refresher = Refresher(flow, token=make_token(1), retry=FAST)
    assert (await refresher.get_token()).access_token == "00D!access-1"
    assert flow.calls == 0


async def test_concurrent_callers_without_a_token_share_one_request() -> None:
    """1,000 callers with no token cause exactly one token request and all get its token."""
    flow = ScriptedFlow()
    flow.gate = asyncio.Event()
    refresher = Refresher(flow, retry=FAST)
    callers = [asyncio.create_task(refresher.get_token()) for _ in range(1000)]
    await flow.started.wait()
    flow.gate.set()
    tokens = await asyncio.gather(*callers)
    assert flow.calls == 1
    assert {t.access_token for t in tokens} == {"00D!access-101"}
    assert refresher.stats.waits == 1000


async def test_cancelling_the_first_waiter_does_not_cancel_the_refresh() -> None:
    """The flight survives its first waiter's cancellation and serves the others."""
    flow = ScriptedFlow()
    flow.gate = asyncio.Event()
    refresher = Refresher(flow, retry=FAST)
    first = asyncio.create_task(refresher.get_token())
    await flow.started.wait()
    second = asyncio.create_task(refresher.get_token())
    first.cancel()
    flow.gate.set()
    token = await second
    assert first.cancelled()
    assert token.access_token == "00D!access-101"
    assert flow.calls == 1


async def test_cancelling_every_waiter_still_caches_the_token() -> None:
    """With all waiters cancelled the flight completes and the next call needs no request."""
    flow = ScriptedFlow()
    flow.gate = asyncio.Event()
    refresher = Refresher(flow, retry=FAST)
    async with refresher:
        waiters = [asyncio.create_task(refresher.get_token()) for _ in range(10)]
        await flow.started.wait()
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        flight = refresher._flight
        assert flight is not None
        flow.gate.set()
        await asyncio.wait([flight])
        assert (await refresher.get_token()).access_token == "00D!access-101"
        assert flow.calls == 1


async def test_permanent_error_reaches_every_waiter_once_and_then_fails_fast() -> None:
    """invalid_grant: one request, every waiter gets it, later calls raise with no request."""
    flow = ScriptedFlow()
    flow.gate = asyncio.Event()
    flow.outcomes = [invalid_grant()]
    refresher = Refresher(flow, retry=FAST)
    waiters = [asyncio.create_task(refresher.get_token()) for _ in range(100)]
    await flow.started.wait()
    flow.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, InvalidGrantError) for r in results)
    with pytest.raises(InvalidGrantError):
        await refresher.get_token()
    assert flow.calls == 1
    refresher.reset()
    assert (await refresher.get_token()).access_token == "00D!access-102"


async def test_transient_errors_are_retried_inside_the_one_refresh() -> None:
    """503, 503, then a token: one refresh, three requests, every waiter gets the token."""
    flow = ScriptedFlow()
    flow.outcomes = [unavailable(), unavailable(), make_token(7)]
    refresher = Refresher(flow, retry=FAST)
    tokens = await asyncio.gather(*(refresher.get_token() for _ in range(50)))
    assert {t.access_token for t in tokens} == {"00D!access-7"}
    assert flow.calls == 3
    assert refresher.stats.token_requests == 3


async def test_a_failed_refresh_starts_a_cooldown() -> None:
    """After the retry budget is spent, calls fail fast until the cooldown ends."""
    flow = ScriptedFlow()
    flow.outcomes = [unavailable()] * 3
    refresher = Refresher(flow, retry=FAST)
    with pytest.raises(TokenEndpointUnavailableError):
        await refresher.get_token()
    with pytest.raises(RefreshCooldownError) as caught:
        await refresher.get_token()
    assert isinstance(caught.value.__cause__, TokenEndpointUnavailableError)
    assert caught.value.transient
    assert flow.calls == 3


async def test_login_rate_exceeded_is_not_retried_and_cools_down_long() -> None:
    """Login rate exceeded: one request, then a cooldown of login_rate_cooldown_s."""
    flow = ScriptedFlow()
    flow.outcomes = [
        LoginRateExceededError(
            "slow down", error="invalid_grant", description="login rate exceeded"
        )
    ]
    refresher = Refresher(flow, retry=FAST)
    with pytest.raises(LoginRateExceededError):
        await refresher.get_token()
    with pytest.raises(RefreshCooldownError) as caught:
        await refresher.get_token()
    remaining = caught.value.retry_at_monotonic - asyncio.get_running_loop().time()
    assert remaining > FAST.login_rate_cooldown_s - 5
    assert flow.calls == 1


async def test_stale_token_is_served_while_one_background_refresh_runs() -> None:
    """In the refresh-ahead window callers get the old token at once; one refresh starts."""
    flow = ScriptedFlow()
    flow.gate = asyncio.Event()
    old = make_token(1, age=timedelta(minutes=118), lifetime=timedelta(hours=2))
    refresher = Refresher(flow, token=old, retry=FAST)
    tokens = await asyncio.gather(*(refresher.get_token() for _ in range(100)))
    assert {t.access_token for t in tokens} == {"00D!access-1"}
    assert refresher.stats.waits == 0
    assert refresher.stats.background_refreshes == 1
    await flow.started.wait()
    flight = refresher._flight
    assert flight is not None
    flow.gate.set()
    await asyncio.wait([flight])
    assert (await refresher.get_token()).access_token == "00D!access-101"
    assert flow.calls == 1


async def test_background_failure_keeps_serving_the_old_token() -> None:
    """A failed refresh ahead of expiry is logged, and the still-valid token is served."""
    flow = ScriptedFlow()
    flow.outcomes = [invalid_grant()]
    old = make_token(1, age=timedelta(minutes=118), lifetime=timedelta(hours=2))
    refresher = Refresher(flow, token=old, retry=FAST)
    assert (await refresher.get_token()).access_token == "00D!access-1"
    flight = refresher._flight
    assert flight is not None
    await asyncio.wait([flight])
    assert (await refresher.get_token()).access_token == "00D!access-1"
    assert flow.calls == 1


async def test_expired_token_makes_callers_wait() -> None:
    """A token past its expiry is not served: callers wait for the new one."""
    flow = ScriptedFlow()
    old = make_token(1, age=timedelta(hours=3), lifetime=timedelta(hours=2))
    refresher = Refresher(flow, token=old, retry=FAST)
    assert (await refresher.get_token()).access_token == "00D!access-101"
    assert refresher.stats.waits == 1


async def test_invalidate_only_affects_the_token_it_names() -> None:
    """A late 401 for a replaced token is ignored; one for the current token invalidates it."""
    flow = ScriptedFlow()
    refresher = Refresher(flow, token=make_token(1), retry=FAST)
    assert not refresher.invalidate(make_token(0))
    assert (await refresher.get_token()).access_token == "00D!access-1"
    assert refresher.invalidate(make_token(1))
    assert (await refresher.get_token()).access_token == "00D!access-101"
    assert not refresher.invalidate(make_token(1))
    assert flow.calls == 1


async def test_refresh_gets_the_current_token_as_previous() -> None:
    """The flow receives the token being replaced (it carries the newest refresh token)."""
    flow = ScriptedFlow()
    old = make_token(1, refresh_token="rt-1")
    refresher = Refresher(flow, token=old, retry=FAST)
    refresher.invalidate(old)
    await refresher.get_token()
    assert flow.previous == [old]


async def test_new_token_reaches_the_hook_before_any_waiter() -> None:
    """on_new_token is awaited with the new token before waiters are released."""
    flow = ScriptedFlow()
    seen: list[str] = []
    hook_entered = asyncio.Event()
    release_hook = asyncio.Event()

    async def on_new_token(token: Token) -> None:
        hook_entered.set()
        await release_hook.wait()
        seen.append(token.access_token)

    refresher = Refresher(flow, on_new_token=on_new_token, retry=FAST)
    waiter = asyncio.create_task(refresher.get_token())
    await hook_entered.wait()
    assert not waiter.done()
    release_hook.set()
    token = await waiter
    assert seen == [token.access_token]


async def test_failing_hook_is_logged_and_the_token_kept(caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises is logged at ERROR; the token is still used."""
    flow = ScriptedFlow()

    async def on_new_token(_: Token) -> None:
        raise RuntimeError("disk full")

    refresher = Refresher(flow, on_new_token=on_new_token, retry=FAST)
    with caplog.at_level(logging.ERROR, logger="sfoauth_async"):
        token = await refresher.get_token()
    assert token.access_token == "00D!access-101"
    assert refresher.token is token
    assert any("on_new_token failed" in r.getMessage() for r in caplog.records)


async def test_logs_never_contain_tokens(caplog: pytest.LogCaptureFixture) -> None:
    """Refresh logs name the flow and timing, never the access or refresh token."""
    flow = ScriptedFlow()
    flow.outcomes = [unavailable(), make_token(5, refresh_token="rt-secret-5")]
    refresher = Refresher(flow, retry=FAST)
    with caplog.at_level(logging.DEBUG, logger="sfoauth_async"):
        await refresher.get_token()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "ScriptedFlow" in text
    assert "access-5" not in text
    assert "rt-secret-5" not in text


async def test_close_finishes_a_refresh_already_sent_and_keeps_its_token() -> None:
    """A close during a sent token request waits for the answer; the token is kept."""
    flow = ScriptedFlow()
    flow.gate = asyncio.Event()
    refresher = Refresher(flow, retry=FAST)
    waiter = asyncio.create_task(refresher.get_token())
    await flow.started.wait()
    closing = asyncio.create_task(refresher.aclose())
    await asyncio.sleep(0)
    assert not closing.done()  # it waits for the answer instead of wasting the request
    flow.gate.set()
    await closing
    assert (await waiter).access_token == "00D!access-101"
    assert refresher.token is not None
    assert refresher.token.access_token == "00D!access-101"
    assert refresher._flight is None
    assert flow.calls == 1


async def test_close_cancels_a_refresh_not_yet_sent_and_waiters_get_a_typed_error() -> None:
    """Closing while the flight waits for the fleet lock cancels it; waiters get an error."""
    store = BusyStore()
    flow = ScriptedFlow()
    blocker = store.lock(flow.store_key(), lease_s=10.0)
    assert await blocker.acquire()
    refresher = Refresher(flow, store=store, retry=FAST)
    waiter = asyncio.create_task(refresher.get_token())
    await store.found_taken.wait()
    await refresher.aclose()
    with pytest.raises(SessionClosedError):
        await waiter
    assert flow.calls == 0
    assert refresher._flight is None
    await blocker.release()
    assert (await refresher.get_token()).access_token == "00D!access-101"


async def test_a_cancelled_waiter_still_gets_cancelled_error() -> None:
    """A waiter cancelled itself sees CancelledError, not the closed-session error."""
    store = BusyStore()
    flow = ScriptedFlow()
    blocker = store.lock(flow.store_key(), lease_s=10.0)
    assert await blocker.acquire()
    refresher = Refresher(flow, store=store, retry=FAST)
    waiter = asyncio.create_task(refresher.get_token())
    await store.found_taken.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await refresher.aclose()
    await blocker.release()


async def test_last_detach_closes_and_earlier_ones_do_not() -> None:
    """A refresh in flight survives while any user remains attached."""
    flow = ScriptedFlow()
    flow.gate = asyncio.Event()
    refresher = Refresher(flow, retry=FAST)
    refresher.attach()
    refresher.attach()
    waiter = asyncio.create_task(refresher.get_token())
    await flow.started.wait()
    await refresher.detach()
    assert not waiter.done()
    flow.gate.set()
    assert (await waiter).access_token == "00D!access-101"
    await refresher.detach()


def test_shared_refresher_is_per_flow_object() -> None:
    """Two lookups on one flow give one refresher; another flow gets its own."""
    flow, other = ScriptedFlow(), ScriptedFlow()
    assert Refresher.shared(flow) is Refresher.shared(flow)
    assert Refresher.shared(flow) is not Refresher.shared(other)


def test_shared_refresher_refuses_conflicting_settings() -> None:
    """Sharing a flow with different settings is a configuration error, not a surprise."""
    flow = ScriptedFlow()
    Refresher.shared(flow, session_timeout=timedelta(hours=2))
    with pytest.raises(ConfigurationError, match="other settings"):
        Refresher.shared(flow, session_timeout=timedelta(minutes=15))


@pytest.mark.parametrize(
    ("lifetime", "ahead_at_most"),
    [(timedelta(hours=2), 300.0), (timedelta(seconds=20), 5.0), (timedelta(minutes=15), 225.0)],
)
def test_default_refresh_ahead_scales_with_the_lifetime(
    lifetime: timedelta, ahead_at_most: float
) -> None:
    """Refresh ahead is a quarter of the lifetime, at most five minutes, margin inside it."""
    refresher = Refresher(ScriptedFlow())
    before = time.monotonic()
    refresh_at, usable_until, ahead = refresher._windows(make_token(1, lifetime=lifetime))
    assert ahead == pytest.approx(ahead_at_most)
    assert before < refresh_at < usable_until < time.monotonic() + lifetime.total_seconds()


def test_unknown_lifetime_means_reactive_only() -> None:
    """With session_timeout=None a token is never refreshed by the clock."""
    refresher = Refresher(ScriptedFlow(), token=make_token(1), session_timeout=None)
    assert refresher.token is not None
    assert refresher.token.expires_at is None
    assert refresher._refresh_at == float("inf")


@pytest.mark.parametrize("make", [object, lambda: "flow"])
def test_refresher_needs_a_flow(make: Callable[[], Any]) -> None:
    """Anything but a Flow is refused with a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        Refresher(make())


async def test_offering_a_newer_token_ends_a_permanent_failure() -> None:
    """After invalid_grant, a new login's token is used and refreshed with again."""
    flow = ScriptedFlow()
    flow.outcomes = [invalid_grant()]
    refresher = Refresher(flow, retry=FAST)
    with pytest.raises(InvalidGrantError):
        await refresher.get_token()
    assert refresher.offer(make_token(2))
    assert (await refresher.get_token()).access_token == "00D!access-2"
    refresher.invalidate(make_token(2))
    assert (await refresher.get_token()).access_token == "00D!access-102"


def test_refresh_ahead_longer_than_the_lifetime_is_clamped() -> None:
    """A refresh_ahead as long as the session would refresh non-stop: it is capped at 3/4."""
    refresher = Refresher(ScriptedFlow(), refresh_ahead=timedelta(hours=1))
    token = make_token(1, lifetime=timedelta(minutes=20))
    refresh_at, _, ahead = refresher._windows(token)
    assert ahead == pytest.approx(15 * 60)
    assert refresh_at - time.monotonic() == pytest.approx(5 * 60, abs=5)


def test_idle_shared_refreshers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """One flow with many users keeps only the most recently used idle refreshers."""
    monkeypatch.setattr("sfoauth_async._refresher._KEEP_IDLE_PER_FLOW", 3)
    flow = ScriptedFlow()
    made = [Refresher.shared(flow, store_key=f"user-{n}") for n in range(5)]
    assert Refresher.shared(flow, store_key="user-4") is made[4]
    assert Refresher.shared(flow, store_key="user-0") is not made[0]


def test_a_refresher_in_use_is_never_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refreshers with attached sessions stay shared whatever the bound."""
    monkeypatch.setattr("sfoauth_async._refresher._KEEP_IDLE_PER_FLOW", 1)
    flow = ScriptedFlow()
    busy = Refresher.shared(flow, store_key="busy")
    busy.attach()
    for n in range(3):
        Refresher.shared(flow, store_key=f"idle-{n}")
    assert Refresher.shared(flow, store_key="busy") is busy
