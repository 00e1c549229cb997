"""`RetryPolicy`: how hard one refresh tries before it gives up, and how long it then rests."""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import tenacity

from ._errors import ConfigurationError, LoginRateExceededError, SFOAuthError

__all__ = ["RetryPolicy", "is_retryable", "retry_after_s"]


def is_retryable(exc: BaseException) -> bool:
    """Whether a token request that failed with ``exc`` is worth sending again now.

    Transient errors are (connection trouble, 5xx, 429, maintenance pages); permanent ones
    (``invalid_grant``, ``invalid_client``, ...) never are, and neither is
    ``login rate exceeded``, which needs a wait of minutes rather than seconds.

    Example:
        ```python
        assert not is_retryable(InvalidGrantError("...", error="invalid_grant"))
        ```
    """
    return (
        isinstance(exc, SFOAuthError)
        and exc.transient
        and not isinstance(exc, LoginRateExceededError)
    )


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` value in seconds (delay-seconds or an HTTP date), or ``None``.

    Example:
        ```python
        assert retry_after_s("3") == 3.0
        assert retry_after_s("soon") is None
        ```
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


class _WaitOrRetryAfter(tenacity.wait.wait_base):
    """The server's ``Retry-After`` when the error carries one, else full-jitter backoff."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial_s, max=max_s)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        told = getattr(exc, "retry_after_s", None)
        if isinstance(told, float | int) and math.isfinite(told):
            return max(float(told), 0.0)
        return float(self._backoff(retry_state))


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries of one refresh, and the rest after a refresh failed.

    A refresh sends up to ``attempts`` token requests, each limited to
    ``attempt_timeout_s``, all within ``total_timeout_s``, waiting a random, exponentially
    growing time (full jitter, from ``wait_initial_s`` up to ``wait_max_s``) between them,
    or the time a ``Retry-After`` of Salesforce's asks for (when that would end past
    ``total_timeout_s``, the refresh ends at once with that error). A refresh token that may
    have reached Salesforce is never sent again, and its request is not cut short by
    ``attempt_timeout_s``: only by ``total_timeout_s`` (see `RefreshOutcomeUnknownError`).
    Only transient failures are retried. When a refresh fails, no new one starts for
    ``cooldown_s`` (``login_rate_cooldown_s`` after ``login rate exceeded``), so a storm of
    callers cannot turn into a storm of logins.

    Passed as ``AsyncSession(..., api_retry=RetryPolicy(...))``, the same class sets the
    retries of API calls; there ``attempts``, ``total_timeout_s``, ``wait_initial_s`` and
    ``wait_max_s`` apply (per call), and the other fields, which are about refreshes, do not.

    Attributes:
        attempts: Most token requests in one refresh.
        total_timeout_s: Time budget of one refresh, retries and waits included.
        attempt_timeout_s: Time limit of one token request.
        wait_initial_s: Scale of the first backoff wait.
        wait_max_s: Longest backoff wait.
        cooldown_s: Rest after a failed refresh (with ±20 % jitter).
        login_rate_cooldown_s: Rest after ``login rate exceeded`` (the limit is per hour).
        lock_lease_s: The lease of a fleet-wide refresh lock: its holder renews it every
            third of it while it works, and it ends on its own this long after a holder
            dies or stalls; ``None`` for ``total_timeout_s + 10``. A process that finds the
            refresh token it would use marked as sent by another waits up to
            ``lock_lease_s + total_timeout_s`` for that refresh's result.

    Example:
        ```python
        policy = RetryPolicy(attempts=3, total_timeout_s=10.0)
        async with AsyncSession(flow, retry=policy) as sf:
            ...
        ```
    """

    attempts: int = 5
    total_timeout_s: float = 30.0
    attempt_timeout_s: float = 10.0
    wait_initial_s: float = 0.2
    wait_max_s: float = 5.0
    cooldown_s: float = 5.0
    login_rate_cooldown_s: float = LoginRateExceededError.retry_after_s
    lock_lease_s: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"attempts must be at least 1, got {self.attempts}.")
        for name in (
            "total_timeout_s",
            "attempt_timeout_s",
            "wait_initial_s",
            "wait_max_s",
            "cooldown_s",
            "login_rate_cooldown_s",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name} must be a finite number >= 0, got {value}.")
        if self.lock_lease_s is not None and not (
            math.isfinite(self.lock_lease_s) and self.lock_lease_s > 0
        ):
            raise ConfigurationError(
                f"lock_lease_s must be a finite number > 0 or None, got {self.lock_lease_s}."
            )

    @property
    def lease_s(self) -> float:
        """The fleet-wide lock lease: ``lock_lease_s``, or ``total_timeout_s + 10``.

        Example:
            ```python
            assert RetryPolicy().lease_s == 40.0
            ```
        """
        return self.lock_lease_s if self.lock_lease_s is not None else self.total_timeout_s + 10

    def retrying(self) -> tenacity.AsyncRetrying:
        """A tenacity controller for the token requests of one refresh.

        Example:
            ```python
            async for attempt in policy.retrying():
                with attempt:
                    token = await flow.fetch_token()
            ```
        """
        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(is_retryable),
            # stop_before_delay: a Retry-After that would end past the budget ends the
            # refresh now, with the error that said so, rather than a sleep in vain.
            stop=(
                tenacity.stop_after_attempt(self.attempts)
                | tenacity.stop_before_delay(self.total_timeout_s)
            ),
            wait=_WaitOrRetryAfter(self.wait_initial_s, self.wait_max_s),
            reraise=True,
        )
