"""`Fleet`: one refresh for every process sharing a `TokenStore`, safe under rotation.

A `Refresher` with a store hands each refresh to its `Fleet`, which decides, against the
store, whether to adopt a token another process stored or to fetch one itself:

1. **Read the store.** A tombstone newer than our token means the credential was forgotten
   (a logout). A newer token that is still good is adopted, with no token request. A
   pending-refresh marker on the stored generation means another process has sent that
   refresh token to Salesforce: it may be spent, so we wait for its save (bounded) and
   never use it.
2. **Take the key's lock**, or poll until the holder's token appears. Under the lock, read
   again, then **leave the marker** (owner-checked, atomically with the generation check)
   and only then **call Salesforce**. A lease-renewing task keeps the lock while we work,
   however slow the token endpoint is.
3. **Save the new token before anything else** (introspection, hooks, waiters). If the
   store will not take it and it carries a refresh token, the lock is kept (still renewed)
   and the token saved again in the background until it lands; meanwhile this process
   serves the new access token and the others keep theirs.

Besides refreshes, a process holding a refresh token checks the store every
``store.check_interval_s``: if the store lost it (restart without persistence, eviction,
FLUSHDB, failover), it writes it back; if the credential was forgotten, it drops it. A
process that finds no record and would start from the refresh token it was configured with
first waits two check intervals, so that a process holding a newer one can write it back:
the configured one may have been rotated out long ago.

What this cannot guarantee: a process killed between Salesforce's answer and the save
loses the rotated refresh token (its marker then stops the others from using the old one,
see `RefreshOutcomeUnknownError`), and a store that loses acknowledged writes while no
process holds the token (no persistence, and every process restarted) loses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import tenacity

from ._errors import (
    CredentialForgottenError,
    RefreshOutcomeUnknownError,
    StaleTokenWriteError,
    StoreError,
    StoreLockTimeoutError,
    StoreUnavailableError,
)
from ._retry import RetryPolicy
from ._store import StoredToken, TokenLock, TokenStore
from ._token import Token

__all__ = ["Fleet", "FleetMember", "Refreshed", "finish_even_if_cancelled"]

log = logging.getLogger("sfoauth_async")

_T = TypeVar("_T")

_POLL_S = (0.05, 0.15)  # how often a process waiting for another's refresh looks again
_SAVE_ATTEMPTS = 5  # a new token is worth more tries than a token request
_RENEWALS_PER_LEASE = 3  # renew a lease this many times per lease period


async def finish_even_if_cancelled(work: Coroutine[Any, Any, _T]) -> _T:
    """Run ``work`` to its end even if the caller is cancelled meanwhile, then re-cancel.

    Example:
        ```python
        await finish_even_if_cancelled(lock.release())
        ```
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


async def _poll_pause() -> None:
    await asyncio.sleep(random.uniform(*_POLL_S))  # noqa: S311 - jitter, not security


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The outcome of a fleet refresh: the token to use, its generation, and where it came from.

    Example:
        ```python
        outcome = await fleet.refresh(member)
        print(outcome.generation, "adopted" if outcome.adopted else "fetched")
        ```
    """

    token: Token
    generation: int
    adopted: bool


class FleetMember(Protocol):
    """What a `Fleet` needs from the refresher it serves."""

    @property
    def held(self) -> tuple[Token | None, int]:
        """This process's token and its generation (0: not from the store)."""
        ...

    def wanted(self, stored: StoredToken) -> bool:
        """Whether a stored token is worth adopting instead of refreshing."""
        ...

    async def fetch(self, previous: Token | None) -> Token:
        """Ask Salesforce for a new token from ``previous`` (never resending a spent one)."""
        ...

    def forgotten(self, generation: int) -> None:
        """The store holds a tombstone of ``generation``, newer than our token."""
        ...


class _Lease:
    """Keeps a lock's lease renewed while its holder works."""

    def __init__(self, lock: TokenLock, lease_s: float, name: str) -> None:
        self.lock = lock
        self._every_s = lease_s / _RENEWALS_PER_LEASE
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._renew(), name=f"sfoauth-lease-{self._name}"
        )

    async def _renew(self) -> None:
        while not _stopping():
            await asyncio.sleep(self._every_s)
            try:
                held = await self.lock.renew()
            except StoreError as exc:
                log.warning("Could not renew the %s refresh lock (%s)", self._name, exc)
                continue
            if not held:
                log.warning(
                    "The %s refresh lock lapsed while this process held it; the "
                    "pending-refresh marker keeps others from using the refresh token",
                    self._name,
                )
                return

    async def end(self) -> None:
        """Stop renewing and release the lock (shielded: never left held by a cancel)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        try:
            await finish_even_if_cancelled(self.lock.release())
        except StoreError as exc:
            log.warning(
                "Could not release the %s refresh lock (%s); its lease ends it", self._name, exc
            )


class Fleet:
    """Coordinates the refreshes of one credential across the processes sharing a store.

    Args:
        store: The shared store.
        key: The credential's key in it.
        name: The flow's class name, for logs.
        spends_refresh_tokens: Whether the grant spends a refresh token (which, with
            rotation, may be used once).
        configured_refresh_token: Whether the flow holds a refresh token of its own
            (`RefreshTokenFlow`), which it uses when neither store nor memory has one.
        retry: Lease, budget and waits.

    Example:
        ```python
        fleet = Fleet(
            store,
            key,
            name="RefreshTokenFlow",
            spends_refresh_tokens=True,
            configured_refresh_token=True,
            retry=RetryPolicy(),
        )
        outcome = await fleet.refresh(member)
        ```
    """

    def __init__(
        self,
        store: TokenStore,
        key: str,
        *,
        name: str,
        spends_refresh_tokens: bool,
        configured_refresh_token: bool,
        retry: RetryPolicy,
    ) -> None:
        self.store = store
        self.key = key
        self._name = name
        self._spends = spends_refresh_tokens
        self._configured = configured_refresh_token
        self._retry = retry
        self._resaver: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        # Markers known to name a refresh whose outcome is unknown: our own unanswered
        # requests, and others' that outlived a whole wait. Met again, they fail at once.
        self._unanswered: set[tuple[str, int]] = set()

    # -- one refresh --------------------------------------------------------------------

    async def refresh(self, member: FleetMember) -> Refreshed:
        """Adopt a newer stored token, or fetch one under the lock and save it first.

        Raises:
            CredentialForgottenError: The store says the credential was forgotten.
            RefreshOutcomeUnknownError: Another process sent the stored refresh token and
                its result never reached the store within the wait.
            StoreLockTimeoutError: Another process held the lock for too long.
            StoreError: The store failed.
            TokenRequestError: The token request failed.

        Example:
            ```python
            outcome = await fleet.refresh(member)
            ```
        """
        if self._resaver is not None and not self._resaver.done():
            raise StoreUnavailableError(
                f"The previous {self._name} token is still being saved to the store; a "
                f"new refresh waits until it lands (the current token is served meanwhile)."
            )
        policy = self._retry
        give_up_at = time.monotonic() + policy.lease_s + policy.total_timeout_s
        pending_seen_at: float | None = None
        while True:
            stored = await self.store.load(self.key)
            adopted = self._settle(stored, member)
            if adopted is not None:
                return adopted
            if self._spent_elsewhere(stored):
                assert stored is not None
                pending_seen_at = pending_seen_at or time.monotonic()
                self._give_up_on(stored, pending_seen_at)
                await _poll_pause()
                continue
            pending_seen_at = None
            lock = self.store.lock(self.key, lease_s=policy.lease_s)
            if not await lock.acquire():
                if time.monotonic() >= give_up_at:
                    raise StoreLockTimeoutError(
                        f"Another process held the refresh lock of {self.key} for more than "
                        f"{policy.lease_s + policy.total_timeout_s:g} s without storing a token."
                    )
                await _poll_pause()
                continue
            lease = _Lease(lock, policy.lease_s, self._name)
            lease.start()
            keep = False
            try:
                outcome = await self._refresh_locked(member, lease)
                if outcome is None:
                    continue  # the store changed under us: look again
                refreshed, keep = outcome
                return refreshed
            finally:
                if not keep:
                    await lease.end()

    def _settle(self, stored: StoredToken | None, member: FleetMember) -> Refreshed | None:
        """Adopt what the store holds if we should; raise if the credential is forgotten."""
        if stored is None:
            return None
        _, generation = member.held
        if stored.forgotten and stored.generation > generation:
            member.forgotten(stored.generation)
            if self._spends:
                raise CredentialForgottenError(
                    f"The {self._name} credential was forgotten in the store (logged out); "
                    f"its refresh token is not used again. Authorize again."
                )
            return None
        if stored.token is not None and stored.generation > generation and member.wanted(stored):
            log.info("Adopted the %s token another process stored", self._name)
            return Refreshed(stored.token, stored.generation, adopted=True)
        return None

    def _spent_elsewhere(self, stored: StoredToken | None) -> bool:
        """Whether the stored refresh token was sent by a refresh whose result is not stored."""
        if not self._spends or stored is None or stored.pending is None:
            return False
        # A grant known not to rotate can use its refresh token any number of times.
        return stored.token is None or stored.token.refresh_token_rotation is not False

    def _give_up_on(self, stored: StoredToken, seen_at: float) -> None:
        pending = stored.pending
        assert pending is not None
        waited = time.monotonic() - seen_at
        limit = self._retry.lease_s + self._retry.total_timeout_s
        marker = (pending.owner, pending.generation)
        if waited < limit and marker not in self._unanswered:
            return
        self._unanswered.add(marker)
        raise RefreshOutcomeUnknownError(
            f"The {self._name} refresh token of generation {stored.generation} was sent to "
            f"Salesforce by {pending.owner} at {pending.since.isoformat(timespec='seconds')}, "
            f"and its answer has not reached the store after {waited:.0f} s: with rotation "
            f"it may be spent, so it is not used again. If that process comes back it saves "
            f"the new token and this ends by itself. Otherwise check the refresh token "
            f"(flow.introspect(token.refresh_token, token_type_hint='refresh_token')): if "
            f"it is active, call refresher.trust_refresh_token(); if not, authorize again.",
            since=pending.since,
            owner=pending.owner,
        )

    async def _refresh_locked(
        self, member: FleetMember, lease: _Lease
    ) -> tuple[Refreshed, bool] | None:
        """Under the lock: look again, mark, fetch, save. ``None``: start over."""
        stored = await self.store.load(self.key)
        adopted = self._settle(stored, member)
        if adopted is not None:
            return adopted, False
        if self._spent_elsewhere(stored):
            return None
        own, own_generation = member.held
        if self._spends and own is None and (stored is None or stored.token is None):
            stored = await self._wait_for_write_back(stored)
            adopted = self._settle(stored, member)
            if adopted is not None:
                return adopted, False
            if self._spent_elsewhere(stored):
                return None
        stored_generation = stored.generation if stored is not None else 0
        previous = own
        if stored is not None and stored.token is not None and stored_generation >= own_generation:
            previous = stored.token
        generation = max(stored_generation, own_generation) + 1
        if self._spends and not await lease.lock.mark(stored_generation):
            return None  # the lease lapsed or the store moved on: nothing was sent
        try:
            token = await member.fetch(previous)
        except RefreshOutcomeUnknownError:
            # The marker stays: the refresh token may be spent. We know whose it is.
            self._unanswered.add((lease.lock.owner, stored_generation))
            raise
        except BaseException:
            if self._spends:
                # Nothing reached Salesforce, or it refused: the refresh token is intact.
                with contextlib.suppress(StoreError):
                    await finish_even_if_cancelled(lease.lock.unmark())
            raise
        keep = await self._save_first(token, generation, lease)
        return Refreshed(token, generation, adopted=False), keep

    async def _wait_for_write_back(self, stored: StoredToken | None) -> StoredToken | None:
        """Before using the configured refresh token, give a newer one time to be written back."""
        interval = self.store.check_interval_s
        if not self._configured or interval is None:
            return stored
        until = time.monotonic() + 2 * interval + _POLL_S[1]
        log.info(
            "No %s token in the store: waiting %.1f s for a process that holds a newer "
            "refresh token to write it back before using the configured one",
            self._name,
            2 * interval,
        )
        while time.monotonic() < until:
            await _poll_pause()
            stored = await self.store.load(self.key)
            if stored is not None and (stored.token is not None or stored.generation > 0):
                return stored
        return stored

    # -- saving ---------------------------------------------------------------------------

    async def save(self, token: Token, generation: int) -> None:
        """Save with a few quick retries of transient failures (compare-and-set).

        Raises:
            StaleTokenWriteError: The store holds this generation or a newer one.
            StoreError: The store failed for the whole of the attempts.

        Example:
            ```python
            await fleet.save(token, 4)
            ```
        """
        policy = self._retry
        async for attempt in tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(_worth_saving_again),
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
                await self.store.save(self.key, token, generation=generation)

    async def _save_first(self, token: Token, generation: int, lease: _Lease) -> bool:
        """Save a new token; ``True`` when a background save now owns the lease."""
        try:
            await finish_even_if_cancelled(self.save(token, generation))
        except StaleTokenWriteError:
            log.exception(
                "Another process stored a newer %s token while this one refreshed; keeping "
                "ours in memory only",
                self._name,
            )
        except StoreError:
            if not self._spends:
                log.exception(
                    "Could not save the new %s token; it is kept in memory only and other "
                    "processes log in on their own",
                    self._name,
                )
                return False
            log.exception(
                "Could not save the new %s token, whose refresh token may be the only valid "
                "one: keeping the refresh lock and saving it again in the background",
                self._name,
            )
            self._resaver = asyncio.get_running_loop().create_task(
                self._save_until_saved(token, generation, lease),
                name=f"sfoauth-save-{self._name}",
            )
            return True
        return False

    async def _save_until_saved(self, token: Token, generation: int, lease: _Lease) -> None:
        policy = self._retry
        try:
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception(_worth_saving_again),
                stop=lambda _: _stopping(),
                wait=tenacity.wait_random_exponential(
                    multiplier=policy.wait_initial_s, max=max(policy.wait_max_s, 1.0)
                ),
                reraise=True,
            ):
                with attempt:
                    await self.store.save(self.key, token, generation=generation)
            log.info("Saved the %s token to the store at last", self._name)
        except StaleTokenWriteError:
            log.warning("A newer %s token reached the store first; ours stays local", self._name)
        except StoreError:
            log.exception("Could not save the %s token; it is kept in memory only", self._name)
        finally:
            await lease.end()

    async def put(self, token: Token) -> Refreshed:
        """Save a token obtained outside the fleet as the next generation, unless one is newer.

        Returns the token to use: ours as saved, or a newer stored one.

        Example:
            ```python
            outcome = await fleet.put(token)
            ```
        """
        for _ in range(_SAVE_ATTEMPTS):
            stored = await self.store.load(self.key)
            if (
                stored is not None
                and stored.token is not None
                and stored.token.received_at >= token.received_at
            ):
                return Refreshed(stored.token, stored.generation, adopted=True)
            generation = (stored.generation if stored is not None else 0) + 1
            try:
                await self.store.save(self.key, token, generation=generation)
            except StaleTokenWriteError:
                continue  # another process saved meanwhile: look again
            return Refreshed(token, generation, adopted=False)
        raise StaleTokenWriteError(
            f"Could not save the token under {self.key}: other processes kept saving newer "
            f"generations."
        )

    async def clear_pending(self) -> None:
        """Remove a pending-refresh marker of the stored generation, whoever left it.

        Raises:
            StoreLockTimeoutError: Another process holds the lock.

        Example:
            ```python
            await fleet.clear_pending()
            ```
        """
        for _ in range(_SAVE_ATTEMPTS):
            stored = await self.store.load(self.key)
            if stored is None or stored.pending is None:
                return
            lock = self.store.lock(self.key, lease_s=self._retry.lease_s)
            if await lock.acquire():
                try:
                    # Our own marker replaces theirs, and then goes: owner-checked steps only.
                    if await lock.mark(stored.generation):
                        await lock.unmark()
                        self._unanswered.clear()
                        return
                finally:
                    await finish_even_if_cancelled(lock.release())
            await _poll_pause()
        raise StoreLockTimeoutError(
            f"Could not take the refresh lock of {self.key} to clear its pending refresh."
        )

    # -- watching the store ---------------------------------------------------------------

    def watch(self, member: FleetMember) -> None:
        """Start checking the store every ``check_interval_s`` (refresh-token grants only).

        Example:
            ```python
            fleet.watch(member)
            ```
        """
        interval = self.store.check_interval_s
        if not self._spends or interval is None:
            return
        task = self._watch
        if task is not None and not task.done() and not task.get_loop().is_closed():
            return
        self._watch = asyncio.get_running_loop().create_task(
            self._check_forever(member, interval), name=f"sfoauth-watch-{self._name}"
        )

    async def _check_forever(self, member: FleetMember, interval: float) -> None:
        while not _stopping():
            await asyncio.sleep(max(interval, 0.01))
            try:
                await self.check(member)
            except StoreError as exc:
                log.debug("Could not check the %s token in the store (%s)", self._name, exc)

    async def check(self, member: FleetMember) -> None:
        """Write our token back if the store lost it; drop it if the store forgot it.

        Example:
            ```python
            await fleet.check(member)
            ```
        """
        own, generation = member.held
        stored = await self.store.load(self.key)
        if stored is not None and stored.forgotten and stored.generation > generation:
            member.forgotten(stored.generation)
            return
        if own is None or own.refresh_token is None or generation < 1:
            return
        if stored is None or stored.generation < generation:
            try:
                await self.store.save(self.key, own, generation=generation)
            except StaleTokenWriteError:
                return
            log.warning(
                "The store had lost the %s token (generation %d); this process wrote it back",
                self._name,
                generation,
            )

    async def aclose(self, *, save_wait_s: float) -> None:
        """Stop watching; give a background save up to ``save_wait_s`` to land, then stop it.

        Example:
            ```python
            await fleet.aclose(save_wait_s=30.0)
            ```
        """
        watch, self._watch = self._watch, None
        for task in (watch,):
            if task is not None and not task.get_loop().is_closed():
                task.cancel()
                await asyncio.wait([task])
        resaver, self._resaver = self._resaver, None
        if resaver is None or resaver.get_loop().is_closed():
            return
        _, pending = await asyncio.wait([resaver], timeout=save_wait_s)
        if pending:
            log.error(
                "Closing with the new %s token still not saved to the store: its refresh "
                "token exists only in this process, and is lost if the process ends. Check "
                "the store; other processes will find the old refresh token marked as "
                "possibly spent.",
                self._name,
            )
            resaver.cancel()
            await asyncio.wait([resaver])


def _stopping() -> bool:
    """Whether this task is being cancelled, even if a library swallowed the CancelledError.

    redis-py, for one, can turn a cancellation during a command into a ConnectionError; a
    background loop that carries on after such an error must still stop.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _worth_saving_again(exc: BaseException) -> bool:
    return (
        isinstance(exc, StoreError) and exc.transient and not isinstance(exc, StaleTokenWriteError)
    )
