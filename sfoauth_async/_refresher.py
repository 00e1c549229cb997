"""`Refresher`: one token per credential, kept fresh by at most one token request at a time.

How a call to `Refresher.get_token` is served, by the state of the current token:

| state | condition | what happens |
|---|---|---|
| fresh | before ``expires_at - refresh_ahead`` | returned at once, nothing awaited |
| stale | before ``expires_at - margin`` | returned; one background refresh starts |
| expired, invalidated, missing | otherwise | the caller joins the one refresh in flight |
| cooling down | a refresh just failed | stale tokens still served; others fail fast |
| dead | ``invalid_grant`` and other permanent errors | served until expiry, then the error |

A dead credential stays dead until `Refresher.reset`.

A refresh is one `asyncio.Task` (the flight). Every caller that must wait awaits it through
`asyncio.shield`, so a caller's cancellation never cancels it, and all get its outcome,
success or failure. Transient failures are retried inside the flight (tenacity, jittered
exponential backoff, an attempt cap and a time budget); permanent ones never are.

With a `TokenStore`, the flight first looks in the store for a newer token, and refreshes only
while holding the store's lock for the credential, so a fleet of processes makes one token
request per refresh. A new token is saved and passed to ``on_new_token`` before any waiter
sees it, so a rotated refresh token is persisted before it is used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import aiohttp
import tenacity

from ._errors import (
    ConfigurationError,
    LoginRateExceededError,
    RefreshCooldownError,
    SFOAuthError,
    StaleTokenWriteError,
    StoreError,
    StoreLockTimeoutError,
    StoreUnavailableError,
    TokenEndpointConnectionError,
)
from ._flow import Flow
from ._retry import RetryPolicy
from ._store import StoredToken, TokenLock, TokenStore
from ._token import DEFAULT_SESSION_TIMEOUT, Token

__all__ = ["HttpSource", "OnNewToken", "Refresher", "RefresherStats"]

log = logging.getLogger("sfoauth_async")

OnNewToken = Callable[[Token], Awaitable[None]]
"""An async callback given each new token before anyone uses it (e.g. to persist it)."""

HttpSource = Callable[[], aiohttp.ClientSession | None]
"""What a user of a refresher lends it: a way to get its current aiohttp session."""

_DEFAULT_AHEAD_S = 300.0  # refresh at most 5 minutes ahead, like azure-identity
_AHEAD_FRACTION = 0.25  # ... and at most a quarter of the lifetime ahead, for short sessions
_MAX_AHEAD_FRACTION = 0.75  # a refresh_ahead of the whole lifetime would refresh non-stop
_MARGIN_S = 60.0  # stop trusting a token this long before its computed expiry
_AHEAD_JITTER = 0.2  # spread a fleet's refreshes over the first 20 % of the window
_POLL_S = (0.05, 0.15)  # how often a process waiting for another's refresh looks again
_SAVE_ATTEMPTS = 5  # a new token is worth more tries than a token request

# Refreshers by flow, then by credential (one per user for AuthorizationCodeFlow). They
# outlive their sessions so that tokens do too, up to a bound: a web app with one flow and
# many users keeps the most recently used ones.
_registry: weakref.WeakKeyDictionary[Flow, OrderedDict[str, Refresher]] = (
    weakref.WeakKeyDictionary()
)
_KEEP_IDLE_PER_FLOW = 1000


def _forget_idle(by_key: OrderedDict[str, Refresher]) -> None:
    """Drop the least recently used refreshers that nobody uses, beyond the bound."""
    excess = len(by_key) - _KEEP_IDLE_PER_FLOW + 1
    for key in [k for k, r in by_key.items() if not r._users and r._flight is None]:
        if excess <= 0:
            break
        del by_key[key]
        excess -= 1


async def _finish_even_if_cancelled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end even if the caller is cancelled meanwhile, then re-cancel."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


def _store_error_worth_retrying(exc: BaseException) -> bool:
    return (
        isinstance(exc, StoreError) and exc.transient and not isinstance(exc, StaleTokenWriteError)
    )


@dataclass(slots=True)
class RefresherStats:
    """Counters of one `Refresher`, for tests, demos and metrics.

    Attributes:
        token_requests: Requests sent to the token endpoint (each retry counts).
        refreshes: New tokens taken into use (fetched or adopted from the store).
        adopted: Tokens adopted from the store with no token request.
        failures: Refreshes that ended in an error.
        background_refreshes: Refreshes started ahead of expiry while callers went on.
        waits: `Refresher.get_token` calls that had to wait for a refresh.
        unauthorized: API answers that said the session is invalid (401 / Bulk 400).
        invalidations: Of those, the ones that invalidated the current token.

    Example:
        ```python
        print(sf.refresher.stats.token_requests)
        ```
    """

    token_requests: int = 0
    refreshes: int = 0
    adopted: int = 0
    failures: int = 0
    background_refreshes: int = 0
    waits: int = 0
    unauthorized: int = 0
    invalidations: int = 0


class Refresher:
    """Keeps one credential's token fresh for any number of concurrent callers.

    Usually made for you by `AsyncSession`, which shares one refresher between all sessions
    on the same flow object (and the same user, for `AuthorizationCodeFlow`). Make one
    yourself to use tokens without `AsyncSession`, or to share one explicitly.

    Not thread-safe: use it from one event loop at a time.

    Args:
        flow: The grant that fetches tokens.
        token: A token to start with (e.g. from `AuthorizationCodeFlow.exchange`).
        store: A `TokenStore` to share tokens and refreshes with other processes.
        store_key: The store key; default `Flow.store_key`.
        session_timeout: The org's session timeout: tokens expire this long after they are
            received. ``None`` if unknown: then only a 401 triggers a refresh.
        refresh_ahead: How long before expiry to refresh in the background; default a
            quarter of the lifetime, at most 5 minutes.
        on_new_token: Awaited with each new token before anyone uses it; its errors are
            logged, never raised.
        retry: The `RetryPolicy` of token requests.
        introspect_expiry: Ask ``/services/oauth2/introspect`` for each new token's real
            ``exp`` (one more call per refresh; needs the client secret) and expire the
            token then if that is sooner than ``session_timeout`` says.

    Example:
        ```python
        refresher = Refresher(JWTBearerFlow(...), session_timeout=timedelta(minutes=30))
        async with refresher:
            token = await refresher.get_token()
        ```
    """

    def __init__(
        self,
        flow: Flow,
        *,
        token: Token | None = None,
        store: TokenStore | None = None,
        store_key: str | None = None,
        session_timeout: timedelta | None = DEFAULT_SESSION_TIMEOUT,
        refresh_ahead: timedelta | None = None,
        on_new_token: OnNewToken | None = None,
        retry: RetryPolicy | None = None,
        introspect_expiry: bool = False,
    ) -> None:
        if not isinstance(flow, Flow):
            raise ConfigurationError(
                f"flow must be one of the sfoauth_async flows, got {type(flow).__name__}."
            )
        if refresh_ahead is not None and refresh_ahead < timedelta(0):
            raise ConfigurationError(f"refresh_ahead must not be negative, got {refresh_ahead}.")
        self._flow = flow
        self._name = type(flow).__name__
        self._store = store
        self._store_key = store_key or (flow.store_key(token) if store is not None else None)
        self._session_timeout = session_timeout
        self._refresh_ahead = refresh_ahead
        self._on_new_token = on_new_token
        self._retry = retry or RetryPolicy()
        if introspect_expiry and (not flow.has_client_secret or flow.grant_type == "password"):
            raise ConfigurationError(
                f"introspect_expiry needs a flow with a client_secret, and the "
                f"username-password flow's tokens cannot be introspected; {self._name} cannot."
            )
        self._introspect_expiry = introspect_expiry
        self.stats = RefresherStats()
        self._token: Token | None = None
        self._generation = 0
        self._refresh_at = math.inf
        self._usable_until = math.inf
        self._invalid: str | None = None
        self._flight: asyncio.Task[Token] | None = None
        self._failure: BaseException | None = None
        self._retry_at = 0.0
        self._dead: SFOAuthError | None = None
        self._users: list[HttpSource | None] = []
        if token is not None:
            self._set(token.with_session_timeout(session_timeout), 0)

    @classmethod
    def shared(
        cls,
        flow: Flow,
        *,
        token: Token | None = None,
        store: TokenStore | None = None,
        store_key: str | None = None,
        session_timeout: timedelta | None = DEFAULT_SESSION_TIMEOUT,
        refresh_ahead: timedelta | None = None,
        on_new_token: OnNewToken | None = None,
        retry: RetryPolicy | None = None,
        introspect_expiry: bool = False,
    ) -> Refresher:
        """The refresher of this flow's credential, made on first use and shared after.

        Two calls with the same flow object (and, for `AuthorizationCodeFlow`, a token of
        the same user) return the same refresher, so their tokens and refreshes are shared.
        A ``token`` newer than the shared one replaces it.

        Raises:
            ConfigurationError: The credential already has a refresher with other settings.

        Example:
            ```python
            assert Refresher.shared(flow) is Refresher.shared(flow)
            ```
        """
        try:
            key = store_key or flow.store_key(token)
        except ConfigurationError:
            if store is not None:
                raise
            key = ""  # an AuthorizationCodeFlow with no token yet: one refresher per flow
        by_key = _registry.setdefault(flow, OrderedDict())
        refresher = by_key.get(key)
        if refresher is None:
            _forget_idle(by_key)
            refresher = by_key[key] = cls(
                flow,
                token=token,
                store=store,
                store_key=store_key,
                session_timeout=session_timeout,
                refresh_ahead=refresh_ahead,
                on_new_token=on_new_token,
                retry=retry,
                introspect_expiry=introspect_expiry,
            )
            return refresher
        wanted = (
            store,
            session_timeout,
            refresh_ahead,
            on_new_token,
            retry or RetryPolicy(),
            introspect_expiry,
        )
        have = (
            refresher._store,
            refresher._session_timeout,
            refresher._refresh_ahead,
            refresher._on_new_token,
            refresher._retry,
            refresher._introspect_expiry,
        )
        if any(a is not b and a != b for a, b in zip(wanted, have, strict=True)):
            raise ConfigurationError(
                f"This {refresher._name} is already used by a session with other settings "
                f"(store, session_timeout, refresh_ahead, on_new_token, retry or "
                f"introspect_expiry). Sessions on "
                f"one flow object share its token: give them the same settings, or give each "
                f"its own flow object."
            )
        by_key.move_to_end(key)
        if token is not None:
            refresher.offer(token)
        return refresher

    # -- reading the token --------------------------------------------------------------

    @property
    def flow(self) -> Flow:
        """The grant this refresher uses.

        Example:
            ```python
            print(refresher.flow)
            ```
        """
        return self._flow

    @property
    def token(self) -> Token | None:
        """The current token, valid or not, without refreshing.

        Example:
            ```python
            if refresher.token is not None:
                print(refresher.token.instance_url)
            ```
        """
        return self._token

    async def get_token(self) -> Token:
        """A token that is valid as far as we know, refreshing first if it must.

        Fast when the token is fresh (nothing is awaited). In the refresh-ahead window it
        starts one background refresh and returns the current token. When the token is
        missing, expired or invalidated it waits for the one refresh in flight. Cancelling
        this call never cancels that refresh.

        Raises:
            OAuthError: The refresh was refused (permanent errors are raised again, without
                a new request, until `reset`).
            TokenEndpointUnavailableError: Salesforce stayed unavailable for the whole retry
                budget.
            TokenEndpointConnectionError: Salesforce stayed unreachable for the whole budget.
            RefreshCooldownError: A refresh failed moments ago; ``__cause__`` says why.
            StoreError: The fleet-wide store failed where refreshing without it is unsafe.

        Example:
            ```python
            token = await refresher.get_token()
            ```
        """
        token = self._token
        if token is not None and token.access_token != self._invalid:
            now = time.time()
            if now < self._refresh_at:
                return token
            if now < self._usable_until:
                if self._flight is None and self._dead is None and not self._cooling_down():
                    self.stats.background_refreshes += 1
                    self._start_flight("refresh ahead of expiry")
                return token
        return await self._wait_for_flight()

    def invalidate(self, token: Token) -> bool:
        """Mark ``token`` as rejected by Salesforce, if it is still the current token.

        Compares by the access token string, so a late 401 for a token that has already
        been replaced changes nothing and causes no refresh.

        Returns:
            Whether the current token was invalidated.

        Example:
            ```python
            if resp.status == 401:
                refresher.invalidate(token_used)
                token = await refresher.get_token()  # refreshed once for everybody
            ```
        """
        current = self._token
        if current is None or current.access_token != token.access_token:
            return False
        self._invalid = token.access_token
        return True

    def offer(self, token: Token) -> bool:
        """Use ``token`` if it is newer than the current one (by receive time).

        A token taken this way is a new start: a permanent failure and a cooldown are
        forgotten, as with `reset`.

        Returns:
            Whether it was taken.

        Example:
            ```python
            refresher.offer(await flow.exchange(code, code_verifier=verifier))
            ```
        """
        current = self._token
        if current is not None and token.received_at <= current.received_at:
            return False
        self.reset(token)
        return True

    async def put_token(self, token: Token) -> None:
        """Use a token you obtained yourself and, with a store, share it with the fleet.

        For a token from `AuthorizationCodeFlow.exchange` (a new refresh token): it is saved
        as the store's next generation unless the store already holds a newer token. Like
        `offer`, it forgets a permanent failure.

        Raises:
            StoreError: The store could not save it.

        Example:
            ```python
            token = await flow.exchange(code, code_verifier=request.code_verifier)
            await Refresher.shared(flow, token=token, store=store).put_token(token)
            ```
        """
        if self._store is None or self._store_key is None:
            self.reset(token)
            return
        token = token.with_session_timeout(self._session_timeout)
        for _ in range(_SAVE_ATTEMPTS):
            stored = await self._store.load(self._store_key)
            if stored is not None and stored.token.received_at >= token.received_at:
                self.reset()
                await self._adopt(stored)
                return
            generation = (stored.generation if stored else 0) + 1
            try:
                await self._store.save(self._store_key, token, generation=generation)
            except StaleTokenWriteError:
                continue  # another process saved meanwhile: look again
            self.reset()
            self._set(token, generation)
            return
        raise StaleTokenWriteError(
            f"Could not save the token under {self._store_key}: other processes kept "
            f"saving newer generations."
        )

    def reset(self, token: Token | None = None) -> None:
        """Forget a permanent failure and the cooldown, optionally starting over from a token.

        After ``invalid_grant`` and the like, calls fail fast until this is called (with new
        credentials in the flow, or a new token).

        Example:
            ```python
            refresher.reset(await flow.exchange(code, code_verifier=verifier))
            ```
        """
        self._dead = None
        self._failure = None
        self._retry_at = 0.0
        if token is not None:
            self._set(token.with_session_timeout(self._session_timeout), 0)

    # -- lifecycle ----------------------------------------------------------------------

    def attach(self, http: HttpSource | None = None) -> None:
        """Count a user of this refresher, which may lend an aiohttp session for token requests.

        Token requests go through the first open aiohttp session the users lend (so its
        proxy and TLS settings apply; its middlewares are bypassed), else a private one.

        Args:
            http: A callable giving the user's aiohttp session, or ``None`` while it has
                none; ``None`` for a user with no session to lend.

        Example:
            ```python
            def lend() -> aiohttp.ClientSession | None:
                return http


            refresher.attach(lend)
            try:
                ...
            finally:
                await refresher.detach(lend)
            ```
        """
        self._users.append(http)

    async def detach(self, http: HttpSource | None = None) -> None:
        """Undo one `attach`; when the last user leaves, a refresh in flight is cancelled.

        Example:
            ```python
            await refresher.detach(source)
            ```
        """
        self._users.remove(http)
        if not self._users:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel a refresh in flight and wait for it to end; the token is kept.

        Leaves no task behind and no stuck state: the next `get_token` starts afresh.

        Example:
            ```python
            await refresher.aclose()
            ```
        """
        flight, self._flight = self._flight, None
        if flight is not None and not flight.done():
            flight.cancel()
            await asyncio.wait([flight])

    async def __aenter__(self) -> Self:
        self.attach(None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.detach(None)

    def __repr__(self) -> str:
        return f"Refresher({self._flow!r}, token={self._token!r})"

    # -- state --------------------------------------------------------------------------

    def _windows(self, token: Token) -> tuple[float, float, float]:
        """(refresh_at, usable_until, ahead) in epoch seconds, without jitter."""
        if token.expires_at is None:
            return math.inf, math.inf, 0.0
        expires = token.expires_at.timestamp()
        lifetime = max(expires - token.received_at.timestamp(), 0.0)
        if self._refresh_ahead is not None:
            # Never so far ahead that a new token is already due when it arrives.
            ahead = min(self._refresh_ahead.total_seconds(), lifetime * _MAX_AHEAD_FRACTION)
        else:
            ahead = min(_DEFAULT_AHEAD_S, lifetime * _AHEAD_FRACTION)
        margin = min(_MARGIN_S, lifetime / 20, ahead / 2)
        return expires - ahead, expires - margin, ahead

    def _set(self, token: Token, generation: int) -> None:
        refresh_at, usable_until, ahead = self._windows(token)
        self._token = token
        self._generation = generation
        self._invalid = None
        # Each process picks its own point in the window, so a fleet does not stampede.
        self._refresh_at = refresh_at - random.uniform(0, _AHEAD_JITTER) * ahead  # noqa: S311
        self._usable_until = usable_until

    def _cooling_down(self) -> bool:
        return time.monotonic() < self._retry_at

    def _http(self) -> aiohttp.ClientSession | None:
        for source in self._users:
            http = source() if source is not None else None
            if http is not None and not http.closed:
                return http
        return None

    # -- the flight ---------------------------------------------------------------------

    async def _wait_for_flight(self) -> Token:
        flight = self._flight
        if flight is not None and flight.get_loop() is not asyncio.get_running_loop():
            raise RuntimeError(
                "This Refresher is refreshing on another event loop; use one Refresher (one "
                "flow object) per event loop."
            )
        if flight is None:
            if self._dead is not None:
                raise self._dead.with_traceback(None)
            if self._cooling_down():
                raise RefreshCooldownError(
                    f"Refreshing the {self._name} token failed "
                    f"{self._retry.cooldown_s:g} s ago or less ({self._failure}); the next "
                    f"attempt starts when the cooldown ends.",
                    retry_at_monotonic=self._retry_at,
                ) from self._failure
            reason = "no token" if self._token is None else "token expired or rejected"
            flight = self._start_flight(reason)
        self.stats.waits += 1
        return await asyncio.shield(flight)

    def _start_flight(self, reason: str) -> asyncio.Task[Token]:
        flight = asyncio.get_running_loop().create_task(
            self._fly(reason), name=f"sfoauth-refresh-{self._name}"
        )
        self._flight = flight
        flight.add_done_callback(self._landed)
        return flight

    def _landed(self, flight: asyncio.Task[Token]) -> None:
        if self._flight is flight:
            self._flight = None
        if flight.cancelled():
            return
        exc = flight.exception()  # also marks it retrieved when nobody waited
        if exc is None:
            self._failure = None
            self._retry_at = 0.0
            return
        self.stats.failures += 1
        if isinstance(exc, SFOAuthError) and not exc.transient:
            self._dead = exc
            return
        if isinstance(exc, LoginRateExceededError):
            cooldown = self._retry.login_rate_cooldown_s
        else:
            cooldown = self._retry.cooldown_s * random.uniform(0.8, 1.2)  # noqa: S311
        self._failure = exc
        self._retry_at = time.monotonic() + cooldown

    async def _fly(self, reason: str) -> Token:
        started = time.monotonic()
        log.info("Refreshing the %s token: %s", self._name, reason)
        try:
            if self._store is None:
                token = await self._fetch(self._token, generation=self._generation, save=False)
            else:
                token = await self._fly_with_store()
        except asyncio.CancelledError:
            log.info("Refreshing the %s token was cancelled", self._name)
            raise
        except Exception as exc:
            level = logging.WARNING if getattr(exc, "transient", True) else logging.ERROR
            log.log(
                level,
                "Refreshing the %s token failed after %.3f s: %s",
                self._name,
                time.monotonic() - started,
                exc,
            )
            raise
        log.info(
            "Refreshed the %s token in %.3f s; it expires at %s",
            self._name,
            time.monotonic() - started,
            token.expires_at.isoformat(timespec="seconds") if token.expires_at else "unknown",
        )
        return token

    async def _fetch(self, previous: Token | None, *, generation: int, save: bool) -> Token:
        """Get a new token with retries, then save and publish it as ``generation``."""
        policy = self._retry
        deadline = time.monotonic() + policy.total_timeout_s
        async for attempt in policy.retrying():
            with attempt:
                # The time limit goes into the request itself rather than cancelling it
                # from outside: a refresh-token request must never be abandoned half-way.
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TokenEndpointConnectionError(
                        f"Gave up refreshing the {self._name} token after "
                        f"{policy.total_timeout_s:g} s of retries against "
                        f"{self._flow.token_url}.",
                        url=self._flow.token_url,
                    )
                self.stats.token_requests += 1
                token = await self._request(
                    previous,
                    timeout_s=min(policy.attempt_timeout_s, remaining),
                    generation=generation,
                    save=save,
                )
        if self._introspect_expiry:
            token = await self._learn_expiry(token)
        await self._publish(token, generation, save=save)
        return token

    async def _learn_expiry(self, token: Token) -> Token:
        """The token with the ``exp`` introspection reports, when that is sooner."""
        try:
            info = await self._flow.introspect(token, session=self._http())
        except SFOAuthError as exc:
            log.warning("Could not introspect the new %s token (%s)", self._name, exc)
            return token
        if not info.active or info.exp is None:
            return token
        if token.expires_at is not None and token.expires_at <= info.exp:
            return token
        return dataclasses.replace(token, expires_at=info.exp)

    async def _request(
        self, previous: Token | None, *, timeout_s: float, generation: int, save: bool
    ) -> Token:
        """One token request; for refresh tokens, finished and kept even if cancelled."""
        request = self._flow.fetch_token(
            self._http(),
            previous=previous,
            session_timeout=self._session_timeout,
            timeout_s=timeout_s,
        )
        if not self._flow.uses_refresh_token:
            return await request
        # Salesforce may rotate the refresh token as soon as it reads the request, and then
        # the old one is dead: once sent, the answer must be read and kept, even on close.
        sent = asyncio.ensure_future(request)
        try:
            return await asyncio.shield(sent)
        except asyncio.CancelledError:
            await asyncio.wait([sent])
            if not sent.cancelled() and sent.exception() is None:
                await self._publish(sent.result(), generation, save=save)
            raise

    async def _publish(self, token: Token, generation: int, *, save: bool) -> None:
        # Once a token is fetched it must be saved and published even if we are cancelled
        # now: with rotation, losing it loses the only valid refresh token.
        await _finish_even_if_cancelled(self._save_and_set(token, generation, save=save))

    async def _save_and_set(self, token: Token, generation: int, *, save: bool) -> None:
        if save:
            assert self._store is not None
            assert self._store_key is not None
            try:
                await self._save(token, generation)
            except StaleTokenWriteError:
                log.exception(
                    "Another process stored a newer %s token while this one refreshed (the "
                    "lock lease ran out: raise RetryPolicy.lock_lease_s); keeping ours in "
                    "memory only",
                    self._name,
                )
            except StoreError:
                log.exception(
                    "Could not save the new %s token; it is kept in memory only and other "
                    "processes will not see it",
                    self._name,
                )
        if self._on_new_token is not None:
            try:
                await self._on_new_token(token)
            except Exception:
                log.exception(
                    "on_new_token failed for the %s token; the token is kept in memory",
                    self._name,
                )
        self._set(token, generation)
        self.stats.refreshes += 1

    async def _save(self, token: Token, generation: int) -> None:
        # Retried while we hold the lock: if the rotated refresh token does not reach the
        # store, the next process refreshes with the dead one and the grant is revoked.
        assert self._store is not None
        assert self._store_key is not None
        policy = self._retry
        async for attempt in tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(_store_error_worth_retrying),
            stop=(
                tenacity.stop_after_attempt(_SAVE_ATTEMPTS)
                | tenacity.stop_after_delay(policy.total_timeout_s)
            ),
            wait=tenacity.wait_random_exponential(
                multiplier=policy.wait_initial_s, max=policy.wait_max_s
            ),
            reraise=True,
        ):
            with attempt:
                await self._store.save(self._store_key, token, generation=generation)

    # -- the fleet: refreshing through a store ------------------------------------------

    def _adoptable(self, stored: StoredToken | None) -> bool:
        if stored is None or stored.generation <= self._generation:
            return False
        if stored.token.access_token == self._invalid:
            return False
        refresh_at, usable_until, _ = self._windows(stored.token)
        now = time.time()
        if now >= usable_until:
            return False
        current = self._token
        refreshing_ahead = (
            current is not None and current.access_token != self._invalid
        ) and now < self._usable_until
        # Ahead of expiry, only a token fresher than ours is worth taking.
        return now < refresh_at if refreshing_ahead else True

    async def _adopt(self, stored: StoredToken) -> Token:
        self.stats.adopted += 1
        log.info("Adopted the %s token another process stored", self._name)
        await self._publish(stored.token, stored.generation, save=False)
        return stored.token

    async def _fly_with_store(self) -> Token:
        assert self._store is not None
        assert self._store_key is not None
        store, key = self._store, self._store_key
        give_up_at = time.monotonic() + self._retry.lease_s + self._retry.total_timeout_s
        try:
            while True:
                stored = await store.load(key)
                if self._adoptable(stored):
                    assert stored is not None
                    return await self._adopt(stored)
                lock = store.lock(key, lease_s=self._retry.lease_s)
                if await lock.acquire():
                    try:
                        return await self._refresh_locked(store, key)
                    finally:
                        await self._release(lock)
                if time.monotonic() >= give_up_at:
                    raise StoreLockTimeoutError(
                        f"Another process held the refresh lock of {key} for more than "
                        f"{self._retry.lease_s + self._retry.total_timeout_s:g} s without "
                        f"storing a token."
                    )
                await asyncio.sleep(random.uniform(*_POLL_S))  # noqa: S311
        except StoreError as exc:
            if not self._flow.uses_refresh_token:
                # Independent logins (JWT, client credentials): safe without the lock.
                log.warning(
                    "The token store failed (%s); refreshing the %s token in this process "
                    "only, without the fleet-wide lock",
                    exc,
                    self._name,
                )
                return await self._fetch(self._token, generation=self._generation, save=False)
            if isinstance(exc, StoreUnavailableError):
                raise StoreUnavailableError(
                    f"The token store is unavailable ({exc}), and a refresh token is never "
                    f"refreshed without the fleet-wide lock: two processes using it at once "
                    f"get it revoked. Requests resume when the store is back."
                ) from exc
            raise

    async def _refresh_locked(self, store: TokenStore, key: str) -> Token:
        stored = await store.load(key)
        if self._adoptable(stored):
            assert stored is not None
            return await self._adopt(stored)
        candidates = [t for t in (stored.token if stored else None, self._token) if t]
        previous = max(candidates, key=lambda t: t.received_at) if candidates else None
        generation = max(stored.generation if stored else 0, self._generation) + 1
        return await self._fetch(previous, generation=generation, save=True)

    async def _release(self, lock: TokenLock) -> None:
        # A cancelled release would leave the lock held until its lease ends (redis-py#3847).
        try:
            await _finish_even_if_cancelled(lock.release())
        except StoreError as exc:
            log.warning("Could not release the refresh lock (%s); its lease will end it", exc)
