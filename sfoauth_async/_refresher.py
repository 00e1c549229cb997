"""`Refresher`: one token per credential, kept fresh by at most one token request at a time.

How a call to `Refresher.get_token` is served, by the state of the current token:

| state | condition | what happens |
|---|---|---|
| fresh | before ``expires_at - refresh_ahead`` | returned at once, nothing awaited |
| stale | before ``expires_at - margin`` | returned; one background refresh starts |
| expired, invalidated, missing | otherwise | the caller joins the one refresh in flight |
| cooling down | a refresh just failed | stale tokens still served; others fail fast |
| outcome unknown | a sent refresh token was never answered | served until expiry, then the error |
| dead | ``invalid_grant`` and other permanent errors | served until expiry, then the error |

A refresh is one `asyncio.Task` (the flight), with an aiohttp session of its own. Every
caller that must wait awaits it through `asyncio.shield`, so a caller's cancellation never
cancels it, and all get its outcome. Transient failures are retried inside the flight
(tenacity, jittered exponential backoff, an attempt cap and a time budget); permanent ones
never are; and a refresh token that may have reached Salesforce is never sent again while
the app may rotate refresh tokens (`RefreshOutcomeUnknownError`).

With a `TokenStore`, the flight goes through the credential's `Fleet` (``_fleet.py``), which
makes one refresh for all the processes sharing the store. Windows are kept on the
monotonic clock: a step of the wall clock moves no refresh.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import aiohttp

from ._endpoint import HttpSettings
from ._errors import (
    AuthorizationError,
    ConfigurationError,
    CredentialForgottenError,
    InstanceUrlError,
    LoginRateExceededError,
    OAuthError,
    RefreshCooldownError,
    RefreshOutcomeUnknownError,
    SessionClosedError,
    SFOAuthError,
    StoreError,
    StoreUnavailableError,
    TokenEndpointConnectionError,
)
from ._fleet import Fleet, Refreshed, finish_even_if_cancelled
from ._flow import Flow
from ._retry import RetryPolicy
from ._store import StoredToken, TokenStore
from ._token import DEFAULT_SESSION_TIMEOUT, Token

__all__ = ["OnNewToken", "Refresher", "RefresherStats"]

log = logging.getLogger("sfoauth_async")

OnNewToken = Callable[[Token], Awaitable[None]]
"""An async callback given each new token before anyone uses it (e.g. to persist it)."""

_DEFAULT_AHEAD_S = 300.0  # refresh at most 5 minutes ahead, like azure-identity
_AHEAD_FRACTION = 0.25  # ... and at most a quarter of the lifetime ahead, for short sessions
_MAX_AHEAD_FRACTION = 0.75  # a refresh_ahead of the whole lifetime would refresh non-stop
_MARGIN_S = 60.0  # stop trusting a token this long before its computed expiry
_AHEAD_JITTER = 0.2  # spread a fleet's refreshes over the first 20 % of the window

# Refreshers of a flow, by credential (one per user for AuthorizationCodeFlow), kept on the
# flow object itself so that both are collected together once nothing uses them. They
# outlive their sessions so that tokens do too, up to a bound: a web app with one flow and
# many users keeps the most recently used ones.
_REGISTRY_ATTRIBUTE = "_sfoauth_refreshers"
_KEEP_IDLE_PER_FLOW = 1000


def _registry(flow: Flow) -> OrderedDict[str, Refresher]:
    registry: OrderedDict[str, Refresher] | None = flow.__dict__.get(_REGISTRY_ATTRIBUTE)
    if registry is None:
        registry = OrderedDict()
        setattr(flow, _REGISTRY_ATTRIBUTE, registry)
    return registry


def _forget_idle(by_key: OrderedDict[str, Refresher]) -> None:
    """Drop the least recently used refreshers that nobody uses, beyond the bound."""
    excess = len(by_key) - _KEEP_IDLE_PER_FLOW + 1
    for key in [k for k, r in by_key.items() if not r._users and r._flight is None]:
        if excess <= 0:
            break
        del by_key[key]
        excess -= 1


def _permanent(exc: BaseException) -> bool:
    """Whether a failed refresh means the credential itself is refused until fixed."""
    return isinstance(
        exc, OAuthError | AuthorizationError | ConfigurationError | CredentialForgottenError
    ) and not getattr(exc, "transient", False)


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

    Not thread-safe: use it from one event loop at a time. It survives its loop: a later
    loop (a new ``asyncio.run``, pytest's loop per test) may use it.

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
        http: Network settings of token requests (proxy, TLS, ``trust_env``); each refresh
            opens its own aiohttp session with them.

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
        http: HttpSettings | None = None,
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
        self._http = http or HttpSettings()
        self.stats = RefresherStats()
        self._token: Token | None = None
        self._generation = 0
        self._refresh_at = math.inf  # monotonic
        self._usable_until = math.inf  # monotonic
        self._invalid: str | None = None
        self._flight: asyncio.Task[Token] | None = None
        self._committed = False  # the flight has begun asking Salesforce: a close waits
        self._failure: BaseException | None = None
        self._retry_at = 0.0  # monotonic
        self._dead: SFOAuthError | None = None
        self._unknown: RefreshOutcomeUnknownError | None = None
        self._users = 0
        self.former_instance_urls: tuple[str, ...] = ()
        """The instance URLs of earlier tokens that the org has since moved away from."""
        self._fleet: Fleet | None = None
        if store is not None:
            assert self._store_key is not None
            self._fleet = Fleet(
                store,
                self._store_key,
                name=self._name,
                spends_refresh_tokens=flow.uses_refresh_token,
                configured_refresh_token=flow.holds_refresh_token,
                retry=self._retry,
            )
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
        http: HttpSettings | None = None,
    ) -> Refresher:
        """The refresher of this flow's credential, made on first use and shared after.

        Two calls with the same flow object (and, for `AuthorizationCodeFlow`, a token of
        the same user) return the same refresher, so their tokens and refreshes are shared.
        A ``token`` newer than the shared one replaces it. The refreshers live as long as
        the flow object.

        Raises:
            ConfigurationError: The credential already has a refresher with other settings,
                or an `AuthorizationCodeFlow` gets neither a token naming its user nor a
                ``store_key``.

        Example:
            ```python
            assert Refresher.shared(flow) is Refresher.shared(flow)
            ```
        """
        # A token without an identity URL cannot name its user: sessions of different
        # users would share one key, and one user's session would send another's bearer.
        key = store_key or flow.store_key(token)
        by_key = _registry(flow)
        refresher = by_key.get(key)
        settings = (
            store,
            session_timeout,
            refresh_ahead,
            on_new_token,
            retry or RetryPolicy(),
            introspect_expiry,
            http or HttpSettings(),
        )
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
                http=http,
            )
            return refresher
        if any(a is not b and a != b for a, b in zip(settings, refresher._settings, strict=True)):
            raise ConfigurationError(
                f"This {refresher._name} is already used by a session with other settings "
                f"(store, session_timeout, refresh_ahead, on_new_token, retry, "
                f"introspect_expiry or network settings). Sessions on one flow object share "
                f"its token: give them the same settings, or give each its own flow object."
            )
        by_key.move_to_end(key)
        if token is not None:
            refresher.offer(token)
        return refresher

    @property
    def _settings(self) -> tuple[object, ...]:
        return (
            self._store,
            self._session_timeout,
            self._refresh_ahead,
            self._on_new_token,
            self._retry,
            self._introspect_expiry,
            self._http,
        )

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
            RefreshOutcomeUnknownError: A refresh token was sent and never answered; it is
                not sent again (see the error for recovery).
            RefreshCooldownError: A refresh failed moments ago; ``__cause__`` says why.
            SessionClosedError: The last session closed while this call waited.
            CredentialForgottenError: The credential was forgotten (logged out).
            StoreError: The fleet-wide store failed where refreshing without it is unsafe.

        Example:
            ```python
            token = await refresher.get_token()
            ```
        """
        token = self._token
        if token is not None and token.access_token != self._invalid:
            now = time.monotonic()
            if now < self._refresh_at:
                return token
            if now < self._usable_until:
                if self._flight is None and self._may_refresh_now():
                    self.stats.background_refreshes += 1
                    self._start_flight("refresh ahead of expiry")
                return token
        return await self._wait_for_flight()

    def fresh_token(self) -> Token | None:
        """The current token if it needs no refresh yet, else ``None``: never waits.

        The synchronous fast path of `get_token`, for code that runs on every request:
        when it answers ``None``, await `get_token`.

        Example:
            ```python
            token = refresher.fresh_token() or await refresher.get_token()
            ```
        """
        token = self._token
        if (
            token is not None
            and token.access_token != self._invalid
            and time.monotonic() < self._refresh_at
        ):
            return token
        return None

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

    # -- giving it tokens -----------------------------------------------------------------

    def offer(self, token: Token) -> bool:
        """Use ``token`` if it is newer than the current one (by receive time).

        A token taken this way is a new start: a permanent failure, an unknown refresh
        outcome and a cooldown are forgotten, as with ``reset(token)``.

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
        as the store's next generation, over a tombstone too, unless the store already
        holds a newer token. Like `offer`, it is a new start.

        Raises:
            StoreError: The store could not save it.

        Example:
            ```python
            token = await flow.exchange(code, code_verifier=request.code_verifier)
            await Refresher.shared(flow, token=token, store=store).put_token(token)
            ```
        """
        token = token.with_session_timeout(self._session_timeout)
        if self._fleet is None:
            self.reset(token)
            return
        outcome = await self._fleet.put(token)
        if outcome.adopted:
            self._trusted(StoredToken(outcome.token, outcome.generation))
        self.reset()
        self._unknown = None
        self._set(outcome.token, outcome.generation)
        if outcome.adopted:
            self.stats.adopted += 1
        self._fleet.watch(self._member)

    def reset(self, token: Token | None = None) -> None:
        """Forget a permanent failure and the cooldown, optionally starting over from a token.

        After ``invalid_grant`` and the like, calls fail fast until this is called (with new
        credentials in the flow, or a new token). A refresh whose outcome is unknown is
        forgotten only with a new token, or by `trust_refresh_token`.

        Example:
            ```python
            refresher.reset(await flow.exchange(code, code_verifier=verifier))
            ```
        """
        self._dead = None
        self._failure = None
        self._retry_at = 0.0
        if token is not None:
            self._unknown = None
            self._set(token.with_session_timeout(self._session_timeout), 0)

    async def trust_refresh_token(self) -> None:
        """Declare that the refresh token of an unanswered refresh was not spent after all.

        Call it when `RefreshOutcomeUnknownError` was raised and you have established that
        the refresh token still works: ``flow.introspect(refresh_token,
        token_type_hint="refresh_token")`` answers ``active=True``, or refresh-token
        rotation is off for the app. The next refresh uses it; with a store, the
        pending-refresh marker that stops every process is removed.

        Raises:
            StoreError: The store could not be updated.

        Example:
            ```python
            info = await flow.introspect(token.refresh_token, token_type_hint="refresh_token")
            if info.active:
                await refresher.trust_refresh_token()
            ```
        """
        if self._fleet is not None:
            await self._fleet.clear_pending()
        self._unknown = None
        self._failure = None
        self._retry_at = 0.0

    async def forget(self) -> None:
        """Forget the credential's token here and, with a store, in every process.

        The store gets a tombstone that no older token can overwrite: every process that
        sees it drops its token. A refresh-token credential then raises
        `CredentialForgottenError` until a new token is given (`put_token`, `offer`);
        other grants simply log in again when next used. Revoke the token at Salesforce
        first (`Flow.revoke`) to end its sessions too.

        Raises:
            StoreError: The store could not be updated.

        Example:
            ```python
            await flow.revoke(refresher.token)
            await refresher.forget()
            ```
        """
        generation = self._generation
        if self._fleet is not None:
            generation = await self._fleet.store.forget(self._fleet.key)
        self._forgotten(generation)

    # -- lifecycle ----------------------------------------------------------------------

    def attach(self) -> None:
        """Count one more user of this refresher (`AsyncSession` does it for you).

        Example:
            ```python
            refresher.attach()
            try:
                ...
            finally:
                await refresher.detach()
            ```
        """
        self._users += 1
        if self._fleet is not None and self._token is not None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # made outside a loop: the watch starts with the first refresh
            # A refresh token held from an earlier session is watched from now on too.
            self._fleet.watch(self._member)

    async def detach(self) -> None:
        """Undo one `attach`; when the last user leaves, the refresher closes (see `aclose`).

        Example:
            ```python
            await refresher.detach()
            ```
        """
        self._users -= 1
        if self._users <= 0:
            self._users = 0
            await self.aclose()

    async def aclose(self) -> None:
        """End background work; a refresh that already asked Salesforce is finished first.

        A refresh that has sent its token request is awaited (it ends within its retry
        budget) and its token kept, so that the next session uses it instead of logging in
        again. A refresh that has not yet asked is cancelled; callers waiting for it get
        `SessionClosedError`. A new token the store would not take is given the retry
        budget to be saved. Leaves no task behind; the next `get_token` starts afresh.

        Example:
            ```python
            await refresher.aclose()
            ```
        """
        flight = self._flight
        if flight is not None and not flight.get_loop().is_closed() and not flight.done():
            if not self._committed:
                flight.cancel()
            await asyncio.wait([flight])
        if self._fleet is not None:
            await self._fleet.aclose(save_wait_s=self._retry.total_timeout_s)

    async def __aenter__(self) -> Self:
        self.attach()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.detach()

    def __repr__(self) -> str:
        return f"Refresher({self._flow!r}, token={self._token!r})"

    # -- state --------------------------------------------------------------------------

    def _windows(self, token: Token) -> tuple[float, float, float]:
        """(refresh_at, usable_until, ahead), monotonic, without jitter."""
        if token.expires_at is None:
            return math.inf, math.inf, 0.0
        lifetime = max((token.expires_at - token.received_at).total_seconds(), 0.0)
        # Wall-clock expiry turned into monotonic time once, now: later steps of the wall
        # clock move nothing.
        expires = time.monotonic() + (token.expires_at - datetime.now(UTC)).total_seconds()
        if self._refresh_ahead is not None:
            # Never so far ahead that a new token is already due when it arrives.
            ahead = min(self._refresh_ahead.total_seconds(), lifetime * _MAX_AHEAD_FRACTION)
        else:
            ahead = min(_DEFAULT_AHEAD_S, lifetime * _AHEAD_FRACTION)
        margin = min(_MARGIN_S, lifetime / 20, ahead / 2)
        return expires - ahead, expires - margin, ahead

    def _set(self, token: Token, generation: int) -> None:
        refresh_at, usable_until, ahead = self._windows(token)
        current = self._token
        if current is not None and current.instance_url != token.instance_url:
            # The org moved: remember where it was, so that requests still on their way
            # there are recognised (and sent again, or refused), never sent unsigned.
            self.former_instance_urls = (
                *self.former_instance_urls[-7:],
                current.instance_url,
            )
        self._token = token
        self._generation = generation
        self._invalid = None
        # Each process picks its own point in the window, so a fleet does not stampede.
        self._refresh_at = refresh_at - random.uniform(0, _AHEAD_JITTER) * ahead  # noqa: S311
        self._usable_until = usable_until

    def _forgotten(self, generation: int) -> None:
        self._token = None
        self._generation = generation
        self._invalid = None
        self._refresh_at = self._usable_until = math.inf
        self._unknown = None
        if self._flow.uses_refresh_token:
            self._dead = CredentialForgottenError(
                f"The {self._name} credential was forgotten (logged out); its refresh token "
                f"is not used again. Authorize again and give the new token to put_token()."
            )

    def _cooling_down(self) -> bool:
        return time.monotonic() < self._retry_at

    def _may_refresh_now(self) -> bool:
        if self._dead is not None or self._cooling_down():
            return False
        # Without a store, nothing can end an unknown outcome but the caller.
        return self._unknown is None or self._fleet is not None

    # -- the flight ---------------------------------------------------------------------

    async def _wait_for_flight(self) -> Token:
        flight = self._flight
        if flight is not None and flight.get_loop() is not asyncio.get_running_loop():
            if not flight.get_loop().is_closed():
                raise RuntimeError(
                    "This Refresher is refreshing on another event loop that is still "
                    "running; use one Refresher (one flow object) per event loop."
                )
            self._abandon(flight)
            flight = None
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
            if self._unknown is not None and self._fleet is None:
                raise self._unknown.with_traceback(None)
            reason = "no token" if self._token is None else "token expired or rejected"
            flight = self._start_flight(reason)
        self.stats.waits += 1
        try:
            return await asyncio.shield(flight)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if flight.cancelled() and task is not None and not task.cancelling():
                raise SessionClosedError(
                    f"The last session of this {self._name} credential closed while this "
                    f"call waited for a token; nothing was sent for it."
                ) from None
            raise

    def _abandon(self, flight: asyncio.Task[Token]) -> None:
        """Drop a flight whose event loop has ended: it will never finish."""
        if self._flight is flight:
            self._flight = None
        if self._committed and self._flow.uses_refresh_token:
            # It may have been answered by Salesforce, and the answer died with the loop.
            self._unknown = RefreshOutcomeUnknownError(
                f"A {self._name} refresh was in flight when its event loop ended; its "
                f"refresh token may be spent. See RefreshOutcomeUnknownError.",
                url=self._flow.token_url,
            )
        self._committed = False

    def _start_flight(self, reason: str) -> asyncio.Task[Token]:
        self._committed = False
        flight = asyncio.get_running_loop().create_task(
            self._fly(reason), name=f"sfoauth-refresh-{self._name}"
        )
        self._flight = flight
        flight.add_done_callback(self._landed)
        return flight

    def _landed(self, flight: asyncio.Task[Token]) -> None:
        if self._flight is flight:
            self._flight = None
            self._committed = False
        if flight.cancelled():
            return
        exc = flight.exception()  # also marks it retrieved when nobody waited
        if exc is None:
            self._failure = None
            self._retry_at = 0.0
            return
        self.stats.failures += 1
        if _permanent(exc):
            assert isinstance(exc, SFOAuthError)
            self._dead = exc
            return
        if isinstance(exc, RefreshOutcomeUnknownError):
            self._unknown = exc
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
            async with self._http.session() as http:
                if self._fleet is None:
                    outcome = await self._alone(http)
                else:
                    outcome = await self._with_fleet(http, self._fleet)
                return await finish_even_if_cancelled(self._publish(http, outcome))
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

    async def _alone(self, http: aiohttp.ClientSession) -> Refreshed:
        token = await self._request(http, self._token)
        return Refreshed(token, self._generation, adopted=False)

    async def _with_fleet(self, http: aiohttp.ClientSession, fleet: Fleet) -> Refreshed:
        try:
            return await fleet.refresh(_Member(self, http))
        except StoreError as exc:
            if self._flow.uses_refresh_token:
                if isinstance(exc, StoreUnavailableError):
                    raise StoreUnavailableError(
                        f"The token store is unavailable ({exc}), and a refresh token is "
                        f"never refreshed without the fleet-wide lock: two processes using it "
                        f"at once get it revoked. Requests resume when the store is back."
                    ) from exc
                raise
            # Independent logins (JWT, client credentials, password): safe without the lock.
            log.warning(
                "The token store failed (%s); refreshing the %s token in this process only, "
                "without the fleet-wide lock",
                exc,
                self._name,
            )
            return await self._alone(http)

    async def _request(self, http: aiohttp.ClientSession, previous: Token | None) -> Token:
        """Ask Salesforce for a token, retrying only what is safe to send again."""
        policy = self._retry
        deadline = time.monotonic() + policy.total_timeout_s
        # A refresh token that reached Salesforce may be spent, unless the app is known not
        # to rotate: then it is neither cut short by attempt_timeout_s nor ever resent.
        spends = self._flow.uses_refresh_token and (
            previous is None or previous.refresh_token_rotation is not False
        )
        self._committed = True
        async for attempt in policy.retrying():
            with attempt:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TokenEndpointConnectionError(
                        f"Gave up refreshing the {self._name} token after "
                        f"{policy.total_timeout_s:g} s of retries against "
                        f"{self._flow.token_url}.",
                        url=self._flow.token_url,
                        request_sent=False,
                    )
                self.stats.token_requests += 1
                connect_s = min(policy.attempt_timeout_s, remaining)
                try:
                    token = await self._flow.fetch_token(
                        http,
                        previous=previous,
                        session_timeout=self._session_timeout,
                        timeout_s=remaining if spends else connect_s,
                        connect_timeout_s=connect_s,
                    )
                except TokenEndpointConnectionError as exc:
                    if spends and exc.request_sent:
                        raise self._unknown_outcome(exc) from exc
                    raise
        return token

    def _unknown_outcome(self, exc: TokenEndpointConnectionError) -> RefreshOutcomeUnknownError:
        return RefreshOutcomeUnknownError(
            f"The {self._name} refresh-token request reached, or may have reached, "
            f"Salesforce and no answer came back ({exc}). With refresh-token rotation it may "
            f"be spent, so it is not sent again: the current access token is served until it "
            f"expires. Check it with flow.introspect(token.refresh_token, "
            f"token_type_hint='refresh_token'): if it is active, call "
            f"refresher.trust_refresh_token(); if not, authorize again.",
            url=self._flow.token_url,
            since=datetime.now(UTC),
        )

    async def _publish(self, http: aiohttp.ClientSession, outcome: Refreshed) -> Token:
        """Take a new token into use: learn its expiry, run the hook, then let waiters see it."""
        token = outcome.token
        if outcome.adopted:
            self.stats.adopted += 1
        else:
            # Already saved (by the fleet) or there is no store: only then look further.
            token = await self._learn_expiry(http, token)
        if self._on_new_token is not None:
            try:
                await self._on_new_token(token)
            except Exception:
                log.exception(
                    "on_new_token failed for the %s token; the token is kept in memory",
                    self._name,
                )
        self._unknown = None
        self._set(token, outcome.generation)
        self.stats.refreshes += 1
        if self._fleet is not None:
            self._fleet.watch(self._member)
        log.info(
            "Now using a new %s token; it expires at %s",
            self._name,
            token.expires_at.isoformat(timespec="seconds") if token.expires_at else "unknown",
        )
        return token

    async def _learn_expiry(self, http: aiohttp.ClientSession, token: Token) -> Token:
        """The token with the ``exp`` introspection reports, when that is sooner."""
        if not self._introspect_expiry:
            return token
        try:
            info = await self._flow.introspect(token, session=http)
        except Exception as exc:  # noqa: BLE001 - a hint only: never lose the token for it
            log.warning("Could not introspect the new %s token (%s)", self._name, exc)
            return token
        if not info.active or info.exp is None:
            return token
        if token.expires_at is not None and token.expires_at <= info.exp:
            return token
        return dataclasses.replace(token, expires_at=info.exp)

    # -- the fleet's view of us ---------------------------------------------------------

    @property
    def _member(self) -> _Member:
        return _Member(self, None)

    def _trusted(self, stored: StoredToken) -> Token:
        """The stored token, if it sends the bearer where this flow allows; else an error."""
        token = stored.token
        assert token is not None
        try:
            self._flow.check_instance_url(token.instance_url)
        except InstanceUrlError as exc:
            raise StoreError(
                f"The stored {self._name} token (generation {stored.generation}) names an "
                f"instance_url this flow does not allow ({exc}); it is not used. Something "
                f"other than sfoauth_async wrote it: check who can write to the store, and "
                f"set encryption_key_env so that records are authenticated."
            ) from exc
        return token

    def _adoptable(self, stored: StoredToken) -> bool:
        token = stored.token
        if token is None or token.access_token == self._invalid:
            return False
        self._trusted(stored)
        refresh_at, usable_until, _ = self._windows(token)
        now = time.monotonic()
        if now >= usable_until:
            return False
        current = self._token
        refreshing_ahead = (
            current is not None and current.access_token != self._invalid
        ) and now < self._usable_until
        # Ahead of expiry, only a token fresher than ours is worth taking.
        return now < refresh_at if refreshing_ahead else True


class _Member:
    """What the fleet sees of a refresher during one flight (`FleetMember`)."""

    __slots__ = ("_http", "_refresher")

    def __init__(self, refresher: Refresher, http: aiohttp.ClientSession | None) -> None:
        self._refresher = refresher
        self._http = http

    @property
    def held(self) -> tuple[Token | None, int]:
        return self._refresher._token, self._refresher._generation

    def wanted(self, stored: StoredToken) -> bool:
        return self._refresher._adoptable(stored)

    async def fetch(self, previous: Token | None) -> Token:
        assert self._http is not None
        return await self._refresher._request(self._http, previous)

    def forgotten(self, generation: int) -> None:
        self._refresher._forgotten(generation)
