"""Which API calls are worth sending again, and how long to wait first.

A call is retried only when Salesforce did not carry it out (idempotent methods: GET, HEAD,
OPTIONS, TRACE, PUT and DELETE):

| Failure | Methods retried |
|---|---|
| no connection made (refused, DNS, connect timeout): nothing was sent | any |
| connection lost or read timeout after sending | idempotent |
| HTTP 502, 503, 504, or ``SERVER_UNAVAILABLE`` | idempotent |
| ``UNABLE_TO_LOCK_ROW`` | any: the call was rolled back |
| ``REQUEST_LIMIT_EXCEEDED`` for concurrent requests | any: the call was refused |
| ``REQUEST_LIMIT_EXCEEDED`` for the daily allocation | never |
| TLS and certificate errors, anything else | never |

A call whose body cannot be sent twice (an async generator, a stream) is never retried.
``Retry-After`` (seconds or an HTTP date) replaces the backoff wait; when it would end
after the policy's time budget, retrying stops and the last answer stands.
"""

from __future__ import annotations

import asyncio
import functools
import logging

import aiohttp
import tenacity
from aiohttp import ClientRequest, ClientResponse, hdrs
from aiohttp.payload import Payload

from ._api_errors import error_list, is_concurrency_limit
from ._retry import RetryPolicy, retry_after_s

__all__ = ["IDEMPOTENT_METHODS", "Retryable", "api_retrying", "retryable_answer"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
# Error statuses whose body may name a retryable code; others are not read here.
_READ_STATUSES = frozenset({400, 403, 409, 500, 502, 503, 504})

log = logging.getLogger("sfoauth_async")


class Retryable(Exception):  # noqa: N818 - a signal to tenacity, never seen by callers
    """An answer worth retrying, carried through tenacity as an exception.

    Attributes:
        response: The answer; released before the next attempt, returned after the last.
        reason: What made it retryable, for the log (``"HTTP 503"``, ``"UNABLE_TO_LOCK_ROW"``).
    """

    def __init__(self, response: ClientResponse, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


def replayable(req: ClientRequest) -> bool:
    """Whether ``req``'s body can be sent again (no body, bytes, JSON, forms, seekable files).

    Example:
        ```python
        assert replayable(req) or isinstance(req.body, aiohttp.payload.AsyncIterablePayload)
        ```
    """
    body = req.body
    return not (isinstance(body, Payload) and body.consumed)


async def retryable_answer(  # noqa: PLR0911 - one return per row of the table above
    req: ClientRequest, resp: ClientResponse
) -> str | None:
    """Why ``resp`` is worth retrying (a short reason), or ``None`` when it is not.

    Reads the body of error answers whose status may carry a retryable error code.

    Example:
        ```python
        reason = await retryable_answer(req, resp)  # "UNABLE_TO_LOCK_ROW", "HTTP 503", None
        ```
    """
    status = resp.status
    if status not in _READ_STATUSES:
        return None
    errors = error_list(await resp.read())
    code = errors[0].get("errorCode") if errors else None
    idempotent = req.method in IDEMPOTENT_METHODS
    if code == "UNABLE_TO_LOCK_ROW":
        return "UNABLE_TO_LOCK_ROW"
    if code == "REQUEST_LIMIT_EXCEEDED":
        # The daily allocation is never retried: only the concurrency limit is.
        message = str(errors[0].get("message", ""))
        return "concurrent request limit" if is_concurrency_limit(message) else None
    if not idempotent:
        return None
    if code == "SERVER_UNAVAILABLE":
        return "SERVER_UNAVAILABLE"
    if status in _UNAVAILABLE_STATUSES:
        return f"HTTP {status}"
    return None


def retryable_exception(method: str, exc: BaseException) -> bool:
    """Whether a call that raised ``exc`` may be sent again.

    Example:
        ```python
        assert retryable_exception("POST", aiohttp.ClientConnectorError(key, OSError()))
        ```
    """
    if isinstance(exc, aiohttp.ClientSSLError):
        return False  # a certificate or TLS failure will fail again
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return True  # no connection, so nothing was sent: safe for any method
    return method in IDEMPOTENT_METHODS and isinstance(exc, aiohttp.ClientConnectionError)


class _Wait(tenacity.wait.wait_base):
    """The server's ``Retry-After`` when there is one, else full-jitter exponential backoff."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = tenacity.wait_random_exponential(
            multiplier=policy.wait_initial_s, max=policy.wait_max_s
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, Retryable):
            told = retry_after_s(exc.response.headers.get(hdrs.RETRY_AFTER))
            if told is not None:
                return told
        return float(self._backoff(retry_state))


def api_retrying(policy: RetryPolicy, req: ClientRequest) -> tenacity.AsyncRetrying:
    """A tenacity controller for one API call under ``policy``.

    ``policy.attempts`` caps the sends, and no wait may end after ``policy.total_timeout_s``
    from the first send; the other fields of `RetryPolicy` are about token refreshes. Before
    each new attempt the previous answer is released.

    Example:
        ```python
        async for attempt in api_retrying(RetryPolicy(attempts=3), req):
            with attempt:
                ...
        ```
    """

    def worth_it(exc: BaseException) -> bool:
        if not replayable(req):
            return False
        return isinstance(exc, Retryable) or retryable_exception(req.method, exc)

    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(worth_it),
        stop=(
            tenacity.stop_after_attempt(policy.attempts)
            | tenacity.stop_before_delay(policy.total_timeout_s)
        ),
        wait=_Wait(policy),
        before_sleep=functools.partial(_before_retry, req, policy.attempts),
        sleep=asyncio.sleep,
        reraise=True,
    )


def _before_retry(req: ClientRequest, attempts: int, retry_state: tenacity.RetryCallState) -> None:
    """Release the answer being retried, and log the retry (no query string: SOQL is data)."""
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    if isinstance(exc, Retryable):
        exc.response.release()
        reason = exc.reason
    else:
        reason = type(exc).__name__
    log.info(
        "Retrying %s %s after %s (attempt %d of %d) in %.2f s",
        req.method,
        req.url.with_query(None),
        reason,
        retry_state.attempt_number + 1,
        attempts,
        retry_state.upcoming_sleep,
    )
