"""Property-based tests of the refresher: random interleavings, checked invariants (issue 7).

A hypothesis state machine drives two refreshers (two "processes", each with its own flow
object) that share a store, against a simulated Salesforce that rotates refresh tokens and
records any reuse. Rules interleave calls, 401s (invalidations), cancellations, closes,
slow, failing, dropped and timed-out token requests, and store outages. Invariants:

- no refresh token is ever sent twice (a reuse would revoke the grant);
- at most one token request is in flight at Salesforce for the credential;
- every waiter resolves: with a token, a typed error, or its own cancellation;
- nothing is left pending once both processes are closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from sfoauth_async import (
    InvalidGrantError,
    MemoryTokenStore,
    Refresher,
    RefreshTokenFlow,
    RetryPolicy,
    SFOAuthError,
    StoreUnavailableError,
    Token,
    TokenEndpointConnectionError,
    TokenEndpointUnavailableError,
)

OUTCOMES = ("ok", "before", "unavailable", "slow", "drop", "timeout")
RETRY = RetryPolicy(
    attempts=3,
    total_timeout_s=0.5,
    attempt_timeout_s=0.2,
    wait_initial_s=0.001,
    wait_max_s=0.002,
    cooldown_s=0.0,
    lock_lease_s=0.2,
)


class RotatingSalesforce:
    """A token endpoint that rotates refresh tokens and counts what must never happen."""

    def __init__(self) -> None:
        self.current = "rt-0"
        self.retired: set[str] = set()
        self.issued = 0
        self.reuses = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.script: deque[str] = deque()
        self.gates: list[asyncio.Event] = []
        self.handlers: set[asyncio.Task[Token]] = set()

    async def handle(self, refresh_token: str, outcome: str) -> Token:
        """What Salesforce does with one request: it goes on even if the client gives up."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if outcome in ("slow", "timeout"):
                gate = asyncio.Event()
                self.gates.append(gate)
                await gate.wait()
            if refresh_token in self.retired:
                self.reuses += 1
                raise InvalidGrantError("reused", error="invalid_grant")
            if refresh_token != self.current:
                raise InvalidGrantError("unknown", error="invalid_grant")
            self.retired.add(refresh_token)
            self.issued += 1
            self.current = f"rt-{self.issued}"
            now = datetime.now(UTC)
            return Token(
                access_token=f"00D!at-{self.issued}",
                instance_url="https://acme.my.salesforce.com",
                refresh_token=self.current,
                refresh_token_rotation=True,
                received_at=now,
                expires_at=now + timedelta(hours=2),
            )
        finally:
            self.in_flight -= 1

    async def request(self, refresh_token: str, timeout_s: float) -> Token:
        """One request as the client sees it: refused, unavailable, answered, lost or late."""
        outcome = self.script.popleft() if self.script else "ok"
        if outcome == "before":
            raise TokenEndpointConnectionError("refused", request_sent=False)
        if outcome == "unavailable":
            raise TokenEndpointUnavailableError("maintenance", status=503)
        handler = asyncio.get_running_loop().create_task(self.handle(refresh_token, outcome))
        self.handlers.add(handler)
        handler.add_done_callback(self.handlers.discard)
        done, _ = await asyncio.wait([handler], timeout=timeout_s)
        if not done:
            raise TokenEndpointConnectionError("timed out after sending", request_sent=True)
        token = handler.result()
        if outcome == "drop":
            raise TokenEndpointConnectionError("dropped after sending", request_sent=True)
        return token


class SimulatedFlow(RefreshTokenFlow):
    """A refresh-token flow talking to the simulated Salesforce instead of HTTP."""

    def __init__(self, server: RotatingSalesforce) -> None:
        super().__init__(client_id="3MVG9sim", refresh_token="rt-0", client_secret="secret")
        self.server = server

    async def fetch_token(
        self,
        session: aiohttp.ClientSession | None = None,  # noqa: ARG002 - no HTTP here
        *,
        previous: Token | None = None,
        session_timeout: timedelta | None = timedelta(hours=2),
        timeout_s: float | None = None,
        **_: Any,
    ) -> Token:
        """Refresh with the newest refresh token known, through the simulated endpoint."""
        used = (previous.refresh_token if previous else None) or self.refresh_token
        assert used is not None
        token = await self.server.request(used, timeout_s or 30.0)
        assert token.refresh_token is not None
        self._remember(token.refresh_token)
        return token.with_session_timeout(session_timeout)


class FlakyStore(MemoryTokenStore):
    """A memory store whose saves can be made to fail, as Redis does when full."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Fail while down."""
        if self.down:
            raise StoreUnavailableError("OOM command not allowed")
        await super().save(key, token, generation=generation)


class RefresherMachine(RuleBasedStateMachine):
    """Two processes, one store, one rotating Salesforce, random events."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.server = RotatingSalesforce()
        self.store = FlakyStore()
        self.processes = [
            Refresher(SimulatedFlow(self.server), store=self.store, retry=RETRY) for _ in "ab"
        ]
        self.waiters: list[asyncio.Task[Token]] = []
        self.cancelled: set[asyncio.Task[Token]] = set()
        self.closes: list[asyncio.Task[None]] = []

    def settle(self) -> None:
        """Let the loop run what is ready, without waiting for time to pass."""

        async def steps() -> None:
            for _ in range(20):
                await asyncio.sleep(0)

        self.loop.run_until_complete(steps())

    @rule(who=st.integers(0, 1), count=st.integers(1, 5))
    def call(self, who: int, count: int) -> None:
        """Tasks of one process ask for a token."""
        refresher = self.processes[who]
        for _ in range(count):
            self.waiters.append(self.loop.create_task(refresher.get_token()))
        self.settle()

    @rule(who=st.integers(0, 1))
    def unauthorized(self, who: int) -> None:
        """An API call of one process got a 401 for its current token."""
        refresher = self.processes[who]
        if refresher.token is not None:
            refresher.invalidate(refresher.token)
        self.settle()

    @rule(outcome=st.sampled_from(OUTCOMES))
    def next_request(self, outcome: str) -> None:
        """Script what happens to the next token request."""
        self.server.script.append(outcome)

    @rule()
    def answer_slow_requests(self) -> None:
        """Salesforce finishes the requests it was sitting on."""
        for gate in self.server.gates:
            gate.set()
        self.settle()

    @rule(down=st.booleans())
    def store_health(self, down: bool) -> None:
        """The store starts or stops refusing writes."""
        self.store.down = down
        self.settle()

    @rule(index=st.integers(0, 50))
    def cancel_a_waiter(self, index: int) -> None:
        """A caller gives up (a timeout, a client that went away)."""
        # Drawn whatever is pending: which tasks are pending depends on timing, and data
        # generation must not.
        pending = [w for w in self.waiters if not w.done()]
        if pending:
            waiter = pending[index % len(pending)]
            waiter.cancel()
            self.cancelled.add(waiter)
        self.settle()

    @rule(who=st.integers(0, 1))
    def close(self, who: int) -> None:
        """One process closes (its last session goes); it may be used again later."""
        self.closes.append(self.loop.create_task(self.processes[who].aclose()))
        self.settle()

    @invariant()
    def no_refresh_token_was_sent_twice(self) -> None:
        """A rotated-out refresh token never reaches Salesforce."""
        assert self.server.reuses == 0

    @invariant()
    def at_most_one_request_in_flight(self) -> None:
        """The credential has at most one token request at Salesforce at a time."""
        assert self.server.max_in_flight <= 1

    def teardown(self) -> None:
        """Let everything finish; every waiter resolved, nothing left pending."""
        self.store.down = False

        async def finish() -> None:
            async with asyncio.timeout(30):
                while True:
                    for gate in self.server.gates:
                        gate.set()
                    waiting = [
                        t
                        for t in (*self.waiters, *self.closes, *self.server.handlers)
                        if not t.done()
                    ]
                    if not waiting:
                        break
                    await asyncio.wait(waiting, timeout=0.05)
            for refresher in self.processes:
                await refresher.aclose()
            current = asyncio.current_task()
            assert [t for t in asyncio.all_tasks() if t is not current] == []

        try:
            self.loop.run_until_complete(finish())
            for waiter in self.waiters:
                if waiter in self.cancelled and waiter.cancelled():
                    continue
                assert not waiter.cancelled(), "a waiter got CancelledError it did not ask for"
                exc = waiter.exception()
                assert exc is None or isinstance(exc, SFOAuthError), repr(exc)
            assert self.server.reuses == 0
        finally:
            self.loop.close()


def test_refresher_invariants_hold_under_random_interleavings() -> None:
    """Random calls, 401s, cancels, closes and faults never reuse a refresh token."""
    run_state_machine_as_test(
        RefresherMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.parametrize("outcome", ["drop", "timeout"])
def test_a_lost_answer_then_more_calls_never_resends(outcome: str) -> None:
    """The sequence that revoked grants before, run every time: an answer lost, then calls."""
    machine = RefresherMachine()
    try:
        machine.next_request(outcome)
        machine.call(0, 3)
        first = list(machine.waiters)
        machine.loop.run_until_complete(asyncio.wait(first))  # the client gave up on its answer
        machine.answer_slow_requests()  # Salesforce rotated all the same
        machine.call(0, 2)
        machine.call(1, 2)
        machine.unauthorized(1)
        machine.call(1, 1)
        machine.loop.run_until_complete(asyncio.wait(machine.waiters))
        machine.no_refresh_token_was_sent_twice()
        assert machine.server.issued == 1  # the one rotation, never a second request
    finally:
        machine.teardown()
