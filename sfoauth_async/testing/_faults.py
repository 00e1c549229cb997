"""`Fault`: one scripted misbehaviour of the fake org, and the FIFO queues that hold them.

A test pushes faults on a queue (``org.faults.token``, ``org.faults.api`` or
``org.faults.oauth``); the next request to that endpoint family pops one and suffers it before
(or instead of) normal handling. A queue with no fault left changes nothing.
"""

from __future__ import annotations

import asyncio
import json as _json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from ._http import JSON_CONTENT_TYPE

__all__ = ["Fault", "FaultQueue", "FaultQueues"]

FaultKind = Literal[
    "respond", "drop", "delay", "hold", "delay_answer", "hold_answer", "drop_answer"
]
_AFTER_PROCESSING = frozenset({"delay_answer", "hold_answer", "drop_answer"})

_MAINTENANCE_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Salesforce - Maintenance</title></head>
<body>
<div id="content">
<h1>Salesforce is down for maintenance</h1>
<p>This Salesforce instance is currently undergoing maintenance.
We apologize for the inconvenience. Please check back shortly.</p>
<p>For more information, visit <a href="https://status.salesforce.com">Salesforce Trust</a>.</p>
</div>
</body>
</html>
"""


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour; build it with a constructor, not the raw fields.

    Kinds: ``"respond"`` answers with ``http_status``, ``headers`` and ``body`` instead of the
    real handler; ``"drop"`` closes the TCP connection without answering; ``"delay"`` waits
    ``delay_s`` then answers normally; ``"hold"`` waits for ``event`` then answers normally.
    The ``*_answer`` kinds act after the org has done the work (issued the token, rotated
    the refresh token): ``"delay_answer"`` and ``"hold_answer"`` hold the finished answer
    back, ``"drop_answer"`` closes the connection instead of sending it. They stand for a
    timeout or a dropped connection after Salesforce processed the request; only the token
    endpoint applies them (elsewhere they act like their "before" twins).

    Attributes:
        kind: What the fault does.
        http_status: The status of a ``"respond"`` fault.
        body: The body of a ``"respond"`` fault.
        headers: The headers of a ``"respond"`` fault, as ``(name, value)`` pairs.
        delay_s: Seconds a ``"delay"`` fault waits.
        event: What a ``"hold"`` fault waits for.

    Example:
        ```python
        org.faults.token.push(Fault.html(503), Fault.drop())
        token = await flow.fetch_token()  # the third attempt gets a token
        ```
    """

    kind: FaultKind
    http_status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    event: asyncio.Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def status(cls, code: int, body: str = "", content_type: str = "text/html") -> Fault:
        """Answer with any status, body and content type.

        Example:
            ```python
            org.faults.api.push(Fault.status(502, "Bad Gateway", "text/plain"))
            ```
        """
        return cls(
            kind="respond",
            http_status=code,
            body=body.encode(),
            headers=(("Content-Type", content_type),),
        )

    @classmethod
    def json(cls, status: int, payload: Any) -> Fault:  # noqa: ANN401 - any JSON value
        """Answer with a JSON body (``application/json;charset=UTF-8``).

        Example:
            ```python
            org.faults.api.push(
                Fault.json(
                    403,
                    [
                        {
                            "message": "TotalRequests Limit exceeded.",
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                        }
                    ],
                )
            )
            ```
        """
        return cls(
            kind="respond",
            http_status=status,
            body=_json.dumps(payload).encode(),
            headers=(("Content-Type", JSON_CONTENT_TYPE), ("Cache-Control", "no-store")),
        )

    @classmethod
    def html(cls, status: int = 503) -> Fault:
        """Answer with Salesforce's "down for maintenance" HTML page.

        Example:
            ```python
            org.faults.token.push(Fault.html())  # 503 text/html
            ```
        """
        return cls(
            kind="respond",
            http_status=status,
            body=_MAINTENANCE_PAGE.encode(),
            headers=(("Content-Type", "text/html;charset=UTF-8"),),
        )

    @classmethod
    def drop(cls) -> Fault:
        """Close the TCP connection without sending any response.

        The client sees a server disconnect (``aiohttp.ServerDisconnectedError``).

        Example:
            ```python
            org.faults.token.push(Fault.drop())
            ```
        """
        return cls(kind="drop")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds``, then answer normally.

        Example:
            ```python
            org.faults.api.push(Fault.delay(0.2))  # trips a 0.1 s client timeout
            ```
        """
        if seconds < 0:
            raise ValueError(f"Fault.delay() needs seconds >= 0, got {seconds!r}.")
        return cls(kind="delay", delay_s=seconds)

    @classmethod
    def hold(cls, event: asyncio.Event) -> Fault:
        """Wait until ``event`` is set, then answer normally.

        Lets a test order races without sleeping: park requests, check what the client did
        meanwhile, then release them. ``FaultQueue.wait_held()`` tells when they are parked.
        Closing the org drops held connections.

        Example:
            ```python
            release = asyncio.Event()
            org.faults.token.push(Fault.hold(release))
            task = asyncio.create_task(flow.fetch_token())
            await org.faults.token.wait_held(1)
            release.set()
            await task
            ```
        """
        return cls(kind="hold", event=event)

    @classmethod
    def delay_answer(cls, seconds: float) -> Fault:
        """Do the work, then hold the answer back ``seconds`` (a client timeout meets it).

        Example:
            ```python
            org.faults.token.push(Fault.delay_answer(5.0))  # rotated, answer late
            ```
        """
        if seconds < 0:
            raise ValueError(f"Fault.delay_answer() needs seconds >= 0, got {seconds!r}.")
        return cls(kind="delay_answer", delay_s=seconds)

    @classmethod
    def hold_answer(cls, event: asyncio.Event) -> Fault:
        """Do the work, then hold the answer until ``event`` is set (or the org closes).

        Example:
            ```python
            org.faults.token.push(Fault.hold_answer(release))
            ```
        """
        return cls(kind="hold_answer", event=event)

    @classmethod
    def drop_answer(cls) -> Fault:
        """Do the work, then close the connection instead of answering.

        The refresh token is rotated (and the old one dead) but the client never learns the
        new one: what a connection cut after Salesforce processed the request looks like.

        Example:
            ```python
            org.faults.token.push(Fault.drop_answer())
            ```
        """
        return cls(kind="drop_answer")

    @property
    def after_processing(self) -> bool:
        """Whether the org does the work before this fault acts (the ``*_answer`` kinds).

        Example:
            ```python
            assert Fault.drop_answer().after_processing
            ```
        """
        return self.kind in _AFTER_PROCESSING

    @classmethod
    def oauth_error(cls, error: str, description: str, status: int = 400) -> Fault:
        """Answer like the token endpoint does: ``{"error": ..., "error_description": ...}``.

        Example:
            ```python
            org.faults.token.push(Fault.oauth_error("invalid_grant", "authentication failure"))
            ```
        """
        return cls.json(status, {"error": error, "error_description": description})

    @classmethod
    def login_rate_exceeded(cls) -> Fault:
        """Answer 400 ``invalid_grant`` / ``login rate exceeded``, as after 3,600 logins an hour.

        Example:
            ```python
            org.faults.token.push(Fault.login_rate_exceeded())
            ```
        """
        return cls.oauth_error("invalid_grant", "login rate exceeded")

    @classmethod
    def unable_to_lock_row(cls, status: int = 400) -> Fault:
        """Answer a REST call with ``UNABLE_TO_LOCK_ROW``: another transaction held the record.

        Example:
            ```python
            org.faults.api.push(Fault.unable_to_lock_row())  # the next call is rolled back
            ```
        """
        return cls.json(
            status,
            [
                {
                    "message": "unable to obtain exclusive access to this record or 1 records",
                    "errorCode": "UNABLE_TO_LOCK_ROW",
                    "fields": [],
                }
            ],
        )

    @classmethod
    def server_unavailable(cls, retry_after: str | None = None, status: int = 503) -> Fault:
        """Answer a REST call with HTTP 503 ``SERVER_UNAVAILABLE``, with ``Retry-After`` if given.

        ``retry_after`` is sent as written: seconds (``"2"``) or an HTTP date.

        Example:
            ```python
            org.faults.api.push(Fault.server_unavailable(retry_after="1"))
            ```
        """
        fault = cls.json(
            status,
            [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}],
        )
        if retry_after is None:
            return fault
        return cls(
            kind="respond",
            http_status=status,
            body=fault.body,
            headers=(*fault.headers, ("Retry-After", retry_after)),
        )

    @classmethod
    def request_limit_exceeded(cls, *, concurrent: bool = False) -> Fault:
        """Answer 403 ``REQUEST_LIMIT_EXCEEDED``, for the daily or the concurrency limit.

        ``concurrent=True`` sends the message of the limit on concurrent long-running
        requests (``ConcurrentRequests ...``), else the daily one (``TotalRequests ...``).

        Example:
            ```python
            org.faults.api.push(Fault.request_limit_exceeded(concurrent=True))
            ```
        """
        message = (
            "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
            if concurrent
            else "TotalRequests Limit exceeded."
        )
        return cls.json(403, [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}])


class FaultQueue:
    """A FIFO of faults for one endpoint family; each request pops at most one.

    Example:
        ```python
        org.faults.token.push(Fault.html(), Fault.html())
        assert len(org.faults.token) == 2
        ```
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._faults: deque[Fault] = deque()
        self._held = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._on_change = on_change

    def push(self, *faults: Fault) -> None:
        """Append faults; the next requests meet them in this order.

        Example:
            ```python
            org.faults.api.push(Fault.json(503, []), Fault.drop())
            ```
        """
        self._faults.extend(faults)

    def clear(self) -> None:
        """Forget every fault not yet consumed.

        Example:
            ```python
            org.faults.token.clear()
            ```
        """
        self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)

    @property
    def held(self) -> int:
        """How many requests of this family are parked in a ``Fault.hold()`` right now.

        Example:
            ```python
            assert org.faults.token.held == 0
            ```
        """
        return self._held

    async def wait_held(self, count: int) -> None:
        """Return once at least ``count`` requests are parked in ``Fault.hold()`` faults.

        Wrap it in ``asyncio.timeout()`` if the requests may never arrive.

        Example:
            ```python
            await org.faults.token.wait_held(3)
            assert org.stats.max_concurrent_token_requests == 3
            ```
        """
        if self._held >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        try:
            await future
        finally:
            self._waiters = [(n, f) for n, f in self._waiters if f is not future]

    def _pop(self) -> Fault | None:
        return self._faults.popleft() if self._faults else None

    async def _hold(self, event: asyncio.Event, closing: asyncio.Event) -> bool:
        """Park until ``event`` (``True``) or the org closes (``False``), counted as held."""
        self._set_held(self._held + 1)
        try:
            return await _first_set(event, closing)
        finally:
            self._set_held(self._held - 1)

    async def _deliver(
        self,
        fault: Fault,
        request: web.Request,
        response: web.StreamResponse,
        closing: asyncio.Event,
    ) -> web.StreamResponse:
        """Enact an after-processing fault on a finished ``response``."""
        if fault.kind == "delay_answer":
            await asyncio.sleep(fault.delay_s)
            return response
        if fault.kind == "hold_answer":
            assert fault.event is not None
            if await self._hold(fault.event, closing):
                return response
        return _drop(request)

    def _set_held(self, held: int) -> None:
        self._held = held
        if self._on_change is not None:
            self._on_change()
        for count, future in self._waiters:
            if held >= count and not future.done():
                future.set_result(None)

    async def _apply(self, request: web.Request, closing: asyncio.Event) -> web.Response | None:
        """Pop and enact one fault; a response means "send this instead of the real one"."""
        fault = self._pop()
        if fault is None:
            return None
        if fault.kind == "respond":
            return web.Response(
                status=fault.http_status, body=fault.body, headers=dict(fault.headers)
            )
        if fault.kind in ("delay", "delay_answer"):
            await asyncio.sleep(fault.delay_s)
            return None
        if fault.kind in ("hold", "hold_answer"):
            assert fault.event is not None
            if await self._hold(fault.event, closing):
                return None
        # A drop, or a hold cut short by org.close(): the client must see the connection die
        # with nothing sent, which only closing the socket under aiohttp achieves.
        return _drop(request)


class FaultQueues:
    """The fault queues of one fake org, one per endpoint family.

    Attributes:
        token: ``POST /services/oauth2/token`` on both sites.
        api: REST (``/services/data/...``) and Bulk (``/services/async/...``) on My Domain.
        oauth: revoke, introspect, userinfo and the identity URL, on both sites.

    Example:
        ```python
        org.faults.oauth.push(Fault.html())  # the next revoke/introspect/userinfo gets a 503
        ```
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.token = FaultQueue(on_change)
        self.api = FaultQueue(on_change)
        self.oauth = FaultQueue(on_change)

    def clear(self) -> None:
        """Forget every pending fault in every queue.

        Example:
            ```python
            org.faults.clear()
            ```
        """
        self.token.clear()
        self.api.clear()
        self.oauth.clear()


async def _first_set(event: asyncio.Event, closing: asyncio.Event) -> bool:
    """Wait for either event; ``True`` when ``event`` won."""
    waiters = {
        asyncio.ensure_future(event.wait()),
        asyncio.ensure_future(closing.wait()),
    }
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return event.is_set()


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.close()
    # aiohttp needs a return value; nothing reaches the client through a closed transport.
    return web.Response(status=500)
