"""`TokenStore`: where tokens are kept and shared, and the lock that makes one refresh.

A store keeps one `StoredToken` per key (see `Flow.store_key`): the token and a generation
number that grows by one with each refresh. Writes are compare-and-set on the generation,
so a process whose lock lease ran out cannot overwrite a newer token. The lock of a key is
held by the one process that refreshes that credential; the others wait and adopt its token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._errors import StaleTokenWriteError
from ._token import Token

__all__ = ["MemoryTokenStore", "StoredToken", "TokenLock", "TokenStore"]


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token as a store holds it, with its generation.

    Attributes:
        token: The token.
        generation: 1 for the first token saved under the key, one more for each later one.

    Example:
        ```python
        stored = await store.load(key)
        if stored is not None:
            print(stored.generation, stored.token.expires_at)
        ```
    """

    token: Token
    generation: int


@runtime_checkable
class TokenLock(Protocol):
    """A lease on one key: held by at most one process, and ending by itself after a while.

    Example:
        ```python
        lock = store.lock(key, lease_s=40.0)
        if await lock.acquire():
            try:
                ...  # refresh
            finally:
                await lock.release()
        ```
    """

    async def acquire(self) -> bool:
        """Try once, without waiting: ``True`` if this object now holds the lock.

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

    Every method may raise `StoreUnavailableError` when the backend is down. Implementations
    must make `save` a compare-and-set and give a fresh `TokenLock` per `lock` call.

    Example:
        ```python
        class MyStore:
            async def load(self, key): ...
            async def save(self, key, token, *, generation): ...
            async def delete(self, key): ...
            def lock(self, key, *, lease_s): ...


        async with AsyncSession(flow, store=MyStore()) as sf:
            ...
        ```
    """

    async def load(self, key: str) -> StoredToken | None:
        """The token stored under ``key``, or ``None``."""
        ...

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Store ``token`` as ``generation``, only if the stored generation is lower.

        Raises:
            StaleTokenWriteError: The store already holds ``generation`` or a later one.
        """
        ...

    async def delete(self, key: str) -> None:
        """Forget the token stored under ``key`` (no error if there is none)."""
        ...

    def lock(self, key: str, *, lease_s: float) -> TokenLock:
        """A new lock object for ``key`` whose lease lasts ``lease_s`` seconds once taken."""
        ...


class _MemoryLock:
    def __init__(self, held: set[str], key: str) -> None:
        self._held = held
        self._key = key
        self._mine = False

    async def acquire(self) -> bool:
        if self._mine or self._key in self._held:
            return False
        self._held.add(self._key)
        self._mine = True
        return True

    async def release(self) -> None:
        if self._mine:
            self._mine = False
            self._held.discard(self._key)


class MemoryTokenStore:
    """A `TokenStore` in this process's memory: the default, shared by refreshers in-process.

    Its locks are plain in-process locks with no lease: a process that dies takes them along.

    Example:
        ```python
        store = MemoryTokenStore()
        async with AsyncSession(flow, store=store) as a, AsyncSession(flow2, store=store) as b:
            ...
        ```
    """

    def __init__(self) -> None:
        self._tokens: dict[str, StoredToken] = {}
        self._held: set[str] = set()

    async def load(self, key: str) -> StoredToken | None:
        """The token stored under ``key``, or ``None``.

        Example:
            ```python
            stored = await store.load(flow.store_key())
            ```
        """
        return self._tokens.get(key)

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Store ``token`` as ``generation`` if the stored one is older.

        Raises:
            StaleTokenWriteError: A newer generation is stored.

        Example:
            ```python
            await store.save(key, token, generation=1)
            ```
        """
        current = self._tokens.get(key)
        if current is not None and current.generation >= generation:
            raise StaleTokenWriteError(
                f"Not saving generation {generation} of {key}: generation "
                f"{current.generation} is already stored."
            )
        self._tokens[key] = StoredToken(token, generation)

    async def delete(self, key: str) -> None:
        """Forget the token under ``key``.

        Example:
            ```python
            await store.delete(key)
            ```
        """
        self._tokens.pop(key, None)

    def lock(self, key: str, *, lease_s: float) -> TokenLock:  # noqa: ARG002 - no lease in-process
        """A new in-process lock object for ``key``.

        Example:
            ```python
            lock = store.lock(key, lease_s=40.0)
            ```
        """
        return _MemoryLock(self._held, key)
