"""`FileTokenStore`: tokens in one JSON file, shared by the processes of one machine.

The file holds every key's record::

    {"version": 1, "tokens": {"<key>": {"generation": 3, "token": {...}}}}

Writes replace the whole file atomically (a temporary file in the same directory, fsync,
``os.replace``, fsync of the directory), so a reader sees the old file or the new one and
never half of one, even after a crash. Each write is a read-modify-write under an exclusive
``flock`` on the sidecar ``<file>.lock``, and the generation compare-and-set happens inside
it, so concurrent writers on one machine cannot lose each other's tokens.

With ``encryption_key_env`` the secrets of each token (access token, refresh token, ID token
and the raw response, which repeats them) are sealed with Fernet; the rest (instance URL,
identity URL, expiry) stays readable so that the file can be inspected.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from ._errors import (
    StaleTokenWriteError,
    StoreError,
    StoreUnavailableError,
)
from ._record import Sealer, stored_from_record
from ._store import StoredToken, TokenLock
from ._token import Token

__all__ = ["FileTokenStore"]

_T = TypeVar("_T")

_VERSION = 1
_MODE = 0o600  # the file holds bearer tokens: readable by its owner only
_DIR_MODE = 0o700


def _lock_file_name(path: Path, key: str) -> Path:
    # Keys hold ':' and '/' and may be long: a hash makes a safe, fixed-length file name.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return path.with_name(f"{path.name}.{digest}.lock")


def _open_private(path: Path) -> int:
    """Open (creating with mode 0600) a lock file, read-write, not inherited by children."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)


class _FileLock:
    """One `flock` on a per-key lock file; the kernel drops it when the process dies."""

    def __init__(self, path: Path, where: str) -> None:
        self._path = path
        self._where = where
        self._fd: int | None = None

    # acquire and release run on the event loop, not in a thread, on purpose: with no await
    # between taking the flock and recording it, a cancelled caller can never leave a lock
    # held that nobody knows of. Both calls are non-blocking (LOCK_NB) on a local file.

    async def acquire(self) -> bool:
        if self._fd is not None:
            return False
        try:
            self._path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            fd = _open_private(self._path)
        except OSError as exc:
            raise StoreUnavailableError(
                f"Cannot open the lock file {self._path} of {self._where}: {exc.strerror}."
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise StoreUnavailableError(
                f"Cannot lock {self._path} of {self._where}: {exc.strerror}."
            ) from exc
        self._fd = fd
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the last descriptor of the open file drops the flock; no unlock needed.
            os.close(fd)


class FileTokenStore:
    """A `TokenStore` in one JSON file: for the processes of one machine, and for restarts.

    Writes are atomic and compare-and-set on the generation under an exclusive ``flock`` on
    ``<path>.lock``, so any number of processes can share the file. The refresh lock of a
    key is an ``flock`` on ``<path>.<hash of the key>.lock``. The kernel drops an ``flock``
    when its process dies, however it dies, so these locks need no lease and ``lease_s`` is
    ignored; a holder that hangs, though, holds the lock until it is killed. ``flock`` is
    reliable on local file systems only: for several machines, use `RedisTokenStore`.

    The file and the lock files are created with mode 0600 (owner only) and the directory,
    if missing, with 0700. Blocking file work runs in a worker thread.

    Args:
        path: The JSON file (``~`` is expanded). Created on first save.
        encryption_key_env: The name of an environment variable holding a Fernet key (or
            several, comma-separated: the first encrypts, all decrypt, to rotate keys). When
            set, the secrets of each token are encrypted at rest. ``None``: stored in clear,
            protected by the file mode only.

    Raises:
        ConfigurationError: ``encryption_key_env`` names a variable that is unset or holds
            no valid Fernet key (the message says how to make one, and never shows the key).

    Example:
        ```python
        store = FileTokenStore("~/.cache/etl/tokens.json", encryption_key_env="SF_TOKEN_KEY")
        async with AsyncSession(flow, store=store) as sf:
            ...
        ```
    """

    def __init__(
        self, path: str | os.PathLike[str], *, encryption_key_env: str | None = None
    ) -> None:
        self._path = Path(path).expanduser().absolute()
        self._lock_path = self._path.with_name(f"{self._path.name}.lock")
        self._sealer = Sealer(encryption_key_env)

    @property
    def path(self) -> Path:
        """The JSON file.

        Example:
            ```python
            print(store.path)
            ```
        """
        return self._path

    def __repr__(self) -> str:
        sealed = f", encryption_key_env={self._sealer.key_env!r}" if self._sealer.key_env else ""
        return f"FileTokenStore({str(self._path)!r}{sealed})"

    # -- the protocol --------------------------------------------------------------------

    async def load(self, key: str) -> StoredToken | None:
        """The token stored under ``key``, or ``None``.

        Reads without the file lock: writes replace the file atomically.

        Raises:
            StoreError: The file is corrupt, or encrypted with another key.
            StoreUnavailableError: The file cannot be read.

        Example:
            ```python
            stored = await store.load(flow.store_key())
            ```
        """
        records = await self._in_thread(self._read)
        record = records.get(key)
        if record is None:
            return None
        return stored_from_record(record, sealer=self._sealer, where=self._where(key))

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Store ``token`` as ``generation`` if the stored one is older (compare-and-set).

        Raises:
            StaleTokenWriteError: ``generation`` or a later one is already stored.
            StoreError: The file is corrupt (it is left as it is).
            StoreUnavailableError: The file cannot be read or written.

        Example:
            ```python
            await store.save(key, token, generation=1)
            ```
        """
        record = {"generation": generation, "token": self._sealer.seal(token)}

        def update(records: dict[str, Any]) -> bool:
            current = records.get(key)
            if current is not None:
                stored = current.get("generation") if isinstance(current, dict) else None
                if not isinstance(stored, int):
                    raise StoreError(f"{self._where(key)} has no valid generation.")
                if stored >= generation:
                    raise StaleTokenWriteError(
                        f"Not saving generation {generation} of {key}: generation {stored} "
                        f"is already stored in {self._path}."
                    )
            records[key] = record
            return True

        await self._in_thread(lambda: self._update(update))

    async def delete(self, key: str) -> None:
        """Forget the token under ``key`` (no error, and no write, if there is none).

        Raises:
            StoreError: The file is corrupt (it is left as it is).
            StoreUnavailableError: The file cannot be read or written.

        Example:
            ```python
            await store.delete(key)
            ```
        """

        def update(records: dict[str, Any]) -> bool:
            return records.pop(key, None) is not None

        await self._in_thread(lambda: self._update(update))

    def lock(self, key: str, *, lease_s: float) -> TokenLock:  # noqa: ARG002 - see the class
        """A new lock object for ``key``: an ``flock`` on the key's lock file.

        ``lease_s`` is ignored: the kernel drops the lock when its process exits or dies.

        Example:
            ```python
            lock = store.lock(key, lease_s=40.0)
            if await lock.acquire():
                try:
                    ...
                finally:
                    await lock.release()
            ```
        """
        return _FileLock(_lock_file_name(self._path, key), self._where(key))

    # -- the file ------------------------------------------------------------------------

    def _where(self, key: str) -> str:
        return f"the token of {key} in {self._path}"

    async def _in_thread(self, func: Callable[[], _T]) -> _T:
        # Not abandoned on cancellation: a write that started finishes, and then the
        # cancellation goes on, so no thread is left writing after its caller has gone.
        return await anyio.to_thread.run_sync(func)

    def _read(self) -> dict[str, Any]:
        try:
            with self._path.open("rb") as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreUnavailableError(f"Cannot read {self._path}: {exc.strerror}.") from exc
        return self._parse(text)

    def _parse(self, text: bytes) -> dict[str, Any]:
        if not text.strip():
            return {}  # e.g. created empty with `touch` to set its mode: nothing to lose
        broken = (
            f"The token file {self._path} is corrupt or not a sfoauth_async token file; it is "
            f"left untouched. Move it away (tokens are fetched again) or restore it."
        )
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise StoreError(broken) from None
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), dict):
            raise StoreError(broken)
        if data.get("version") != _VERSION:
            raise StoreError(
                f"The token file {self._path} has version {data.get('version')!r}; this "
                f"sfoauth_async reads version {_VERSION}. Upgrade sfoauth_async, or move the "
                f"file away."
            )
        tokens: dict[str, Any] = data["tokens"]
        return tokens

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self._path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        fd = _open_private(self._lock_path)
        try:
            # Blocks this worker thread only; held for one read-modify-write.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _update(self, change: Callable[[dict[str, Any]], bool]) -> None:
        try:
            with self._file_lock():
                records = self._read()
                if change(records):
                    self._write(records)
        except OSError as exc:
            raise StoreUnavailableError(
                f"Cannot write {self._path}: {exc.strerror or exc}."
            ) from exc

    def _write(self, records: dict[str, Any]) -> None:
        text = json.dumps({"version": _VERSION, "tokens": records}, indent=1, sort_keys=True)
        directory = self._path.parent
        # mkstemp creates the file with mode 0600 from the start: no moment when it is
        # readable by others, whatever the umask.
        fd, temporary = tempfile.mkstemp(
            dir=directory, prefix=f".{self._path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), _MODE)
                f.write(text.encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        # The rename is durable only once the directory entry is on disk too.
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
