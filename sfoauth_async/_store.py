"""`TokenStore`: where tokens are kept and shared, and the lock that makes one refresh.

A store keeps one record per key (see `Flow.store_key`): a `StoredToken`, which is the
token and a generation number that grows with each refresh. Writes are compare-and-set on
the generation, so a process whose lock lease ran out cannot overwrite a newer token.

Three things besides the token make refreshes safe for a fleet when Salesforce rotates
refresh tokens (each may be used once; a reuse revokes the whole grant):

- **The lock** of a key, a lease held by the one process that refreshes; its holder renews
  it while it works (`TokenLock.renew`).
- **The pending-refresh marker** (`PendingRefresh`), which the holder leaves just before it
  sends a refresh token to Salesforce (`TokenLock.mark`), and which the save of the next
  generation removes. A process that takes over a lapsed lock and finds it knows that the
  stored refresh token may already be spent, and waits for the save instead of using it.
- **The tombstone** that `TokenStore.forget` leaves: a record with a generation and no
  token, which no older token can overwrite, so that a logout holds for every process.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from ._errors import StaleTokenWriteError
from ._token import Token

__all__ = [
    "MemoryTokenStore",
    "PendingRefresh",
    "StoredToken",
    "TokenLock",
    "TokenStore",
    "new_owner",
]


def new_owner() -> str:
    """A unique lock owner that says which process holds it: ``host:pid:random``.

    Example:
        ```python
        owner = new_owner()  # e.g. "etl-7:4242:9f86d081884c7d65"
        ```
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class PendingRefresh:
    """The marker of a refresh in progress: a refresh token of ``generation`` was sent.

    Attributes:
        owner: The lock owner that sent it (``host:pid:random``).
        generation: The stored generation whose refresh token is being spent (0 when the
            store held none, and the process used the refresh token it was configured with).
        since: When the marker was left (UTC).

    Example:
        ```python
        stored = await store.load(key)
        if stored is not None and stored.pending is not None:
            print("refresh in progress by", stored.pending.owner)
        ```
    """

    owner: str
    generation: int
    since: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A store's record of one key: the token, its generation, and a pending refresh.

    Attributes:
        token: The token; ``None`` when the record is a tombstone (see `forgotten`) or holds
            only a pending-refresh marker (generation 0).
        generation: 1 for the first token saved under the key, more for each later one.
        pending: The marker of a refresh of this generation that was sent and whose
            result is not stored yet, if any.

    Example:
        ```python
        stored = await store.load(key)
        if stored is not None and stored.token is not None:
            print(stored.generation, stored.token.expires_at)
        ```
    """

    token: Token | None
    generation: int
    pending: PendingRefresh | None = None

    @property
    def forgotten(self) -> bool:
        """Whether this is a tombstone left by `TokenStore.forget`.

        Example:
            ```python
            if stored.forgotten:
                print("logged out")
            ```
        """
        return self.token is None and self.generation > 0


@runtime_checkable
class TokenLock(Protocol):
    """A lease on one key: held by at most one process, and ending by itself after a while.

    One object is one acquisition (`TokenStore.lock` makes a new one each time).

    Example:
        ```python
        lock = store.lock(key, lease_s=40.0)
        if await lock.acquire():
            try:
                if await lock.mark(stored.generation):
                    ...  # send the refresh token, then save the new token
            finally:
                await lock.release()
        ```
    """

    owner: str
    """The value that identifies this holder, in the lock and in its markers."""

    async def acquire(self) -> bool:
        """Try once, without waiting: ``True`` if this object now holds the lock.

        Raises:
            StoreUnavailableError: The backend cannot be reached.
        """
        ...

    async def renew(self) -> bool:
        """Extend the lease to a full ``lease_s`` again if this object still holds the lock.

        Returns:
            Whether it still holds the lock (``False``: the lease lapsed, and another
            process may hold it now).

        Raises:
            StoreUnavailableError: The backend cannot be reached.
        """
        ...

    async def mark(self, generation: int) -> bool:
        """Leave the `PendingRefresh` marker: a refresh token of ``generation`` is about to go.

        Done atomically, and only if this object still holds the lock and the stored
        generation is still ``generation`` (0: nothing, or only a marker, is stored).

        Returns:
            Whether the marker was left; if not, nothing may be sent.

        Raises:
            StoreUnavailableError: The backend cannot be reached.
        """
        ...

    async def unmark(self) -> None:
        """Remove this holder's marker: the request was not sent, or changed nothing.

        Raises:
            StoreUnavailableError: The backend cannot be reached.
        """
        ...

    async def release(self) -> None:
        """Give the lock back if this object still holds it; a lapsed lease is not an error."""
        ...


@runtime_checkable
class TokenStore(Protocol):
    """Keeps tokens by key and locks keys; implement it to keep tokens anywhere.

    Every method may raise `StoreUnavailableError` when the backend cannot be used now,
    and `StoreError` for anything else. `save` and `forget` are compare-and-set on the
    generation and remove a pending marker of an older generation; `lock` gives a fresh
    `TokenLock` per call. `sfoauth_async.testing` has contract tests for your own store.

    Example:
        ```python
        class MyStore:
            check_interval_s = 5.0

            async def load(self, key): ...
            async def save(self, key, token, *, generation): ...
            async def forget(self, key): ...
            def lock(self, key, *, lease_s): ...


        async with AsyncSession(flow, store=MyStore()) as sf:
            ...
        ```
    """

    check_interval_s: float | None
    """How often a process holding a refresh token compares it with the store, writing it
    back if the store lost it (a restart without persistence, an eviction, a failover), and
    dropping it if the credential was forgotten. ``None`` for a store only this process
    uses, which cannot lose data on its own."""

    async def load(self, key: str) -> StoredToken | None:
        """The record stored under ``key``, or ``None``."""
        ...

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Store ``token`` as ``generation``, only if the stored generation is lower.

        A pending marker of an older generation goes with the old record.

        Raises:
            StaleTokenWriteError: The store already holds ``generation`` or a later one.
        """
        ...

    async def forget(self, key: str) -> int:
        """Replace the record with a tombstone one generation newer; return its generation.

        Every process that later sees it drops its copy of the token, and no token of an
        older generation can be saved over it.
        """
        ...

    def lock(self, key: str, *, lease_s: float) -> TokenLock:
        """A new lock object for ``key`` whose lease lasts ``lease_s`` seconds once taken."""
        ...


@dataclass
class _MemoryRecord:
    token: Token | None = None
    generation: int = 0
    pending: PendingRefresh | None = None


class _MemoryLock:
    def __init__(self, store: MemoryTokenStore, key: str) -> None:
        self._store = store
        self._key = key
        self.owner = new_owner()
        self._mine = False

    async def acquire(self) -> bool:
        if self._mine or self._key in self._store._held:
            return False
        self._store._held.add(self._key)
        self._mine = True
        return True

    async def renew(self) -> bool:
        return self._mine

    async def mark(self, generation: int) -> bool:
        record = self._store._records.setdefault(self._key, _MemoryRecord())
        if not self._mine or record.generation != generation:
            return False
        record.pending = PendingRefresh(self.owner, generation)
        return True

    async def unmark(self) -> None:
        record = self._store._records.get(self._key)
        if record is not None and record.pending is not None and record.pending.owner == self.owner:
            record.pending = None

    async def release(self) -> None:
        if self._mine:
            self._mine = False
            self._store._held.discard(self._key)


class MemoryTokenStore:
    """A `TokenStore` in this process's memory, shared by the refreshers of this process.

    Its locks are plain in-process locks with no lease: a process that dies takes them
    along, with everything else it held.

    Example:
        ```python
        store = MemoryTokenStore()
        async with AsyncSession(flow, store=store) as a, AsyncSession(flow2, store=store) as b:
            ...
        ```
    """

    check_interval_s: float | None = None
    """``None``: only this process uses the store, so there is nothing to write back."""

    def __init__(self) -> None:
        self._records: dict[str, _MemoryRecord] = {}
        self._held: set[str] = set()

    async def load(self, key: str) -> StoredToken | None:
        """The record stored under ``key``, or ``None``.

        Example:
            ```python
            stored = await store.load(flow.store_key())
            ```
        """
        record = self._records.get(key)
        if record is None or (
            record.token is None and record.generation == 0 and not record.pending
        ):
            return None
        return StoredToken(record.token, record.generation, record.pending)

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Store ``token`` as ``generation`` if the stored one is older.

        Raises:
            StaleTokenWriteError: A newer or equal generation is stored.

        Example:
            ```python
            await store.save(key, token, generation=1)
            ```
        """
        record = self._records.setdefault(key, _MemoryRecord())
        if record.generation >= generation:
            raise StaleTokenWriteError(
                f"Not saving generation {generation} of {key}: generation "
                f"{record.generation} is already stored."
            )
        record.token, record.generation, record.pending = token, generation, None

    async def forget(self, key: str) -> int:
        """Replace the token under ``key`` with a tombstone; return the tombstone's generation.

        Example:
            ```python
            await store.forget(key)
            ```
        """
        record = self._records.setdefault(key, _MemoryRecord())
        record.token, record.generation, record.pending = None, record.generation + 1, None
        return record.generation

    def lock(self, key: str, *, lease_s: float) -> TokenLock:  # noqa: ARG002 - no lease in-process
        """A new in-process lock object for ``key``.

        Example:
            ```python
            lock = store.lock(key, lease_s=40.0)
            ```
        """
        return _MemoryLock(self, key)
