"""The replay record of web logins: each pending login is accepted once, by any worker.

The pending login travels in the browser's cookie, so any worker can finish it; to accept
it only once, workers share a record of the logins they finished, kept next to the users'
tokens and for as long as a pending login lives (10 minutes):

- `RedisTokenStore`: ``SET <prefix>login:<digest> NX PX <ttl>``, atomic in Redis and
  forgotten by Redis when it expires.
- `FileTokenStore`: a sidecar JSON file ``<path>.logins`` (mode 0600, never a symbolic
  link) under an ``flock``, pruned of expired entries on each write.
- `MemoryTokenStore`: a dictionary in this process (the only process using that store).
- Any other `TokenStore`: a tombstone (`TokenStore.forget`) under ``sfoauth:login:<digest>``;
  the first forget of a key returns generation 1. Tombstones are never removed, so such a
  store grows by one small record per login.

The record holds a SHA-256 digest of the login's ``state``, never the state itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import anyio.to_thread

from ._errors import StoreError, StoreUnavailableError
from ._file_store import FileTokenStore, _flock, _open_lock_file
from ._redis_store import RedisTokenStore
from ._store import MemoryTokenStore, TokenStore

__all__ = [
    "FileReplayRecord",
    "MemoryReplayRecord",
    "RedisReplayRecord",
    "ReplayRecord",
    "StoreReplayRecord",
    "login_digest",
    "replay_record_for",
]

_MAX_FILE_BYTES = 16 * 1024 * 1024  # a bigger file is not a replay record of ours


def login_digest(state: str) -> str:
    """The record's name for a login: the SHA-256 of its ``state``, in hex.

    Example:
        ```python
        assert len(login_digest("abc")) == 64
        ```
    """
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


class ReplayRecord(Protocol):
    """Says whether a login is seen for the first time, across every worker that shares it."""

    async def first_use(self, digest: str, *, ttl_s: float) -> bool:
        """Record ``digest``; ``True`` if no worker recorded it in the last ``ttl_s`` seconds.

        Raises:
            StoreUnavailableError: The record cannot be reached now.
        """
        ...


class MemoryReplayRecord:
    """Logins seen by this process, forgotten after their time to live.

    Example:
        ```python
        record = MemoryReplayRecord()
        assert await record.first_use(login_digest(state), ttl_s=600)
        ```
    """

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._clock = time.monotonic

    async def first_use(self, digest: str, *, ttl_s: float) -> bool:
        """See `ReplayRecord.first_use`."""
        now = self._clock()
        # Entries are in expiry order (one ttl for all in practice): drop the expired ones.
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        if digest in self._seen:
            return False
        self._seen[digest] = now + ttl_s
        return True


class RedisReplayRecord:
    """Logins seen by any worker, as keys that Redis expires.

    Example:
        ```python
        record = RedisReplayRecord(store)
        ```
    """

    def __init__(self, store: RedisTokenStore) -> None:
        self._store = store
        self._prefix: str = getattr(store, "_prefix", "sfoauth:")

    async def first_use(self, digest: str, *, ttl_s: float) -> bool:
        """See `ReplayRecord.first_use`."""
        import redis.exceptions  # noqa: PLC0415 - the optional extra, present with the store

        name = f"{self._prefix}login:{digest}"
        try:
            taken = await self._store.client.set(name, "1", nx=True, px=max(int(ttl_s * 1000), 1))
        except (redis.exceptions.RedisError, OSError) as exc:
            raise StoreUnavailableError(
                f"Could not record a finished login in Redis ({type(exc).__name__}); the "
                f"login is refused: try again when Redis is back."
            ) from exc
        return bool(taken)


class FileReplayRecord:
    """Logins seen by the processes of this machine, in a sidecar file of a `FileTokenStore`.

    Example:
        ```python
        record = FileReplayRecord(Path("tokens.json.logins"))
        ```
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    async def first_use(self, digest: str, *, ttl_s: float) -> bool:
        """See `ReplayRecord.first_use`."""
        try:
            return await anyio.to_thread.run_sync(self._first_use, digest, ttl_s)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreUnavailableError(
                f"Could not record a finished login in {self._path} ({exc.strerror}); the "
                f"login is refused: try again."
            ) from exc

    def _first_use(self, digest: str, ttl_s: float) -> bool:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = _open_lock_file(self._path)
        try:
            while not _flock(fd, self._path, wait=True):
                # The file was replaced between our open and our lock: lock the new one.
                os.close(fd)
                fd = _open_lock_file(self._path)
            now = time.time()
            seen = {d: t for d, t in self._read(fd).items() if t > now}
            if digest in seen:
                return False
            seen[digest] = now + ttl_s
            data = json.dumps(seen, separators=(",", ":")).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, data)
            os.fsync(fd)
            return True
        finally:
            os.close(fd)  # and with it the flock

    @staticmethod
    def _read(fd: int) -> dict[str, float]:
        size = os.fstat(fd).st_size
        if size == 0 or size > _MAX_FILE_BYTES:
            return {}
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, size):
            chunks.append(chunk)
        try:
            document = json.loads(b"".join(chunks))
        except ValueError:
            # A write cut short by a crash: logins older than that are expired or finished,
            # and their authorization codes are spent at Salesforce anyway.
            return {}
        if not isinstance(document, dict):
            return {}
        return {d: t for d, t in document.items() if isinstance(t, int | float)}


class StoreReplayRecord:
    """Logins seen by any process sharing a `TokenStore`, as tombstones of their own keys.

    For stores other than the three of sfoauth_async: the first `TokenStore.forget` of a key
    returns generation 1, atomically in any store that keeps the protocol. The tombstones
    are never removed.

    Example:
        ```python
        record = StoreReplayRecord(my_store)
        ```
    """

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    async def first_use(self, digest: str, *, ttl_s: float) -> bool:  # noqa: ARG002 - kept forever
        """See `ReplayRecord.first_use`."""
        return await self._store.forget(f"sfoauth:login:{digest}") == 1


def replay_record_for(store: TokenStore) -> ReplayRecord:
    """The replay record that lives next to ``store``, shared by the same processes.

    Example:
        ```python
        record = replay_record_for(users.store)
        ```
    """
    if isinstance(store, RedisTokenStore):
        return RedisReplayRecord(store)
    if isinstance(store, FileTokenStore):
        return FileReplayRecord(store.path.with_name(f"{store.path.name}.logins"))
    if type(store) is MemoryTokenStore:  # a subclass may be shared some other way
        return MemoryReplayRecord()
    return StoreReplayRecord(store)
