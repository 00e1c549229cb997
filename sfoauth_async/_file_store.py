"""`FileTokenStore`: tokens in one JSON file, shared by the processes of one machine.

The file holds every key's record and pending-refresh marker (formats in ``_record.py``)::

    {"version": 2, "records": {"<key>": {...}}, "pending": {"<key>": {...}}}

Writes replace the whole file atomically (a temporary file in the same directory, fsync,
``os.replace``, fsync of the directory), so a reader sees the old file or the new one and
never half of one, even after a crash. Each write is a read-modify-write under an exclusive
``flock`` on the sidecar ``<file>.lock``, and the generation compare-and-set happens inside
it, so concurrent writers on one machine cannot lose each other's tokens.

The file holds bearer tokens, so it is trusted only as its owner left it: every file is
opened without following symbolic links, and must belong to this user with no permission
for group or others; an empty or truncated file is corruption, never an empty store. A lock
counts only while its file is still the one at the lock path, so a cleaner that deletes a
held lock file cannot let a second process in.

``flock`` needs a POSIX system: on Windows, making a `FileTokenStore` raises
`ConfigurationError` (importing the package works everywhere).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import anyio.to_thread

from ._errors import (
    ConfigurationError,
    StaleTokenWriteError,
    StoreError,
    StoreUnavailableError,
)
from ._limits import loads_limited
from ._record import VERSION, RecordCodec
from ._store import PendingRefresh, StoredToken, TokenLock, new_owner
from ._token import Token

__all__ = ["FileTokenStore"]

_T = TypeVar("_T")

_MODE = 0o600  # the file holds bearer tokens: readable by its owner only
_DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _fcntl() -> ModuleType:
    """The ``fcntl`` module, or a `ConfigurationError` on a system without ``flock``."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only: imported when a store is made
    except ImportError:
        raise ConfigurationError(
            f"FileTokenStore needs POSIX file locks (flock), which {sys.platform} does not "
            f"have. Use RedisTokenStore to share tokens between processes, or "
            f"MemoryTokenStore within one process."
        ) from None
    return fcntl


def _lock_file_name(path: Path, key: str) -> Path:
    # Keys hold ':' and '/' and may be long: a hash makes a safe, fixed-length file name.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return path.with_name(f"{path.name}.{digest}.lock")


def _check_private(fd: int, path: Path) -> None:
    """Refuse a file that is not a regular file of this user, private to them."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path} is not a regular file; refusing to use it as a token store.")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise StoreError(
            f"{path} belongs to user id {info.st_uid}, not to this user ({os.geteuid()}): "
            f"refusing to trust tokens another user can write. Remove it or fix its owner."
        )
    if info.st_mode & 0o077:
        raise StoreError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: group or others may read or "
            f"write it. Run chmod 600 on it (its tokens may have been exposed: consider "
            f"revoking them)."
        )


def _open_lock_file(path: Path) -> int:
    """Open (creating with mode 0600) a lock file, read-write, not following links."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, _MODE)
    try:
        _check_private(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _still_at(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not deleted or replaced meanwhile)."""
    try:
        there = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


def _flock(fd: int, path: Path, *, wait: bool) -> bool:
    """Take an exclusive ``flock`` on ``fd``; ``False`` if busy or the file left ``path``."""
    fcntl = _fcntl()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    # Someone may have deleted (or replaced) the lock file between our open and our flock:
    # a lock on a file that is no longer at the path excludes nobody.
    return _still_at(fd, path)


class _FileLock:
    """One `flock` on a per-key lock file; the kernel drops it when the process dies."""

    def __init__(self, store: FileTokenStore, key: str) -> None:
        self._store = store
        self._key = key
        self._path = _lock_file_name(store.path, key)
        self.owner = new_owner()
        self._fd: int | None = None

    # acquire and release run on the event loop, not in a thread, on purpose: with no await
    # between taking the flock and recording it, a cancelled caller can never leave a lock
    # held that nobody knows of. Both calls are non-blocking (LOCK_NB) on a local file.

    async def acquire(self) -> bool:
        if self._fd is not None:
            return False
        where = self._store._where(self._key)
        try:
            self._path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            fd = _open_lock_file(self._path)
        except OSError as exc:
            raise StoreUnavailableError(
                f"Cannot open the lock file {self._path} of {where}: {exc.strerror}."
            ) from exc
        try:
            taken = _flock(fd, self._path, wait=False)
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailableError(
                f"Cannot lock {self._path} of {where}: {exc.strerror}."
            ) from exc
        if not taken:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def renew(self) -> bool:
        # flock has no lease; the lock holds while the descriptor is open and the file is
        # still the one at the lock path.
        return self._fd is not None and _still_at(self._fd, self._path)

    async def mark(self, generation: int) -> bool:
        if not await self.renew():
            return False
        marker = RecordCodec.pending_record(PendingRefresh(self.owner, generation))

        def update(document: dict[str, Any]) -> bool:
            record = document["records"].get(self._key)
            stored = record.get("generation", 0) if isinstance(record, dict) else 0
            if stored != generation:
                return False
            document["pending"][self._key] = marker
            return True

        return await self._store._in_thread(lambda: self._store._update(update))

    async def unmark(self) -> None:
        def update(document: dict[str, Any]) -> bool:
            marker = document["pending"].get(self._key)
            if isinstance(marker, dict) and marker.get("owner") == self.owner:
                del document["pending"][self._key]
                return True
            return False

        await self._store._in_thread(lambda: self._store._update(update))

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
    if missing, with 0700; a file of another user, or one that group or others may read, is
    refused, and so is a symbolic link. Blocking file work runs in a worker thread.

    Args:
        path: The JSON file (``~`` is expanded). Created on first save.
        encryption_key_env: The name of an environment variable holding a Fernet key (or
            several, comma-separated: the first encrypts, all decrypt, to rotate keys). When
            set, each record is encrypted and authenticated as a whole, bound to its key,
            and records in clear are refused. ``None``: stored in clear, protected by the
            file mode only.
        accept_unsealed: With a key, also read records written in clear, to move an
            existing file to encryption (each record is sealed when next written).
        check_interval_s: How often a process holding a refresh token checks that the file
            still has it, writing it back if not (see `TokenStore`); ``None`` for a file
            only one process uses.

    Raises:
        ConfigurationError: ``encryption_key_env`` names a variable that is unset or holds
            no valid Fernet key (the message says how to make one, and never shows the
            key), or the system has no ``flock`` (Windows).

    Example:
        ```python
        store = FileTokenStore("~/.cache/etl/tokens.json", encryption_key_env="SF_TOKEN_KEY")
        async with AsyncSession(flow, store=store) as sf:
            ...
        ```
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encryption_key_env: str | None = None,
        accept_unsealed: bool = False,
        check_interval_s: float | None = 5.0,
    ) -> None:
        _fcntl()
        if check_interval_s is not None and not check_interval_s >= 0:
            raise ConfigurationError(
                f"check_interval_s must be a number >= 0 or None, got {check_interval_s}."
            )
        self._path = Path(path).expanduser().absolute()
        self._lock_path = self._path.with_name(f"{self._path.name}.lock")
        self._codec = RecordCodec(encryption_key_env, accept_unsealed=accept_unsealed)
        self.check_interval_s = check_interval_s

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
        sealed = f", encryption_key_env={self._codec.key_env!r}" if self._codec.key_env else ""
        return f"FileTokenStore({str(self._path)!r}{sealed})"

    # -- the protocol --------------------------------------------------------------------

    async def load(self, key: str) -> StoredToken | None:
        """The record stored under ``key`` (token, tombstone or marker), or ``None``.

        Reads without the file lock: writes replace the file atomically.

        Raises:
            StoreError: The file is corrupt, empty, not private to this user, a symbolic
                link, or encrypted with another key.
            StoreUnavailableError: The file cannot be read.

        Example:
            ```python
            stored = await store.load(flow.store_key())
            ```
        """
        document = await self._in_thread(self._read)
        return self._codec.stored(
            key,
            document["records"].get(key),
            document["pending"].get(key),
            where=self._where(key),
        )

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
        record = self._codec.token_record(key, token, generation)
        await self._in_thread(lambda: self._update(self._replace(key, record, generation)))

    async def forget(self, key: str) -> int:
        """Replace the record of ``key`` with a tombstone; return the tombstone's generation.

        Raises:
            StoreError: The file is corrupt (it is left as it is).
            StoreUnavailableError: The file cannot be read or written.

        Example:
            ```python
            await store.forget(key)
            ```
        """
        tombstone: list[int] = []

        def update(document: dict[str, Any]) -> bool:
            generation = self._generation(document, key) + 1
            document["records"][key] = RecordCodec.tombstone(generation)
            document["pending"].pop(key, None)
            tombstone.append(generation)
            return True

        await self._in_thread(lambda: self._update(update))
        return tombstone[0]

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
        return _FileLock(self, key)

    # -- the file ------------------------------------------------------------------------

    def _where(self, key: str) -> str:
        return f"the token of {key} in {self._path}"

    def _generation(self, document: dict[str, Any], key: str) -> int:
        record = document["records"].get(key)
        if record is None:
            return 0
        generation = record.get("generation") if isinstance(record, dict) else None
        if isinstance(generation, bool) or not isinstance(generation, int):
            raise StoreError(f"{self._where(key)} has no valid generation.")
        return generation

    def _replace(
        self, key: str, record: dict[str, Any], generation: int
    ) -> Callable[[dict[str, Any]], bool]:
        def update(document: dict[str, Any]) -> bool:
            stored = self._generation(document, key)
            if stored >= generation:
                raise StaleTokenWriteError(
                    f"Not saving generation {generation} of {key}: generation {stored} is "
                    f"already stored in {self._path}."
                )
            document["records"][key] = record
            marker = document["pending"].get(key)
            if not isinstance(marker, dict) or marker.get("generation", 0) < generation:
                document["pending"].pop(key, None)
            return True

        return update

    async def _in_thread(self, func: Callable[[], _T]) -> _T:
        # Not abandoned on cancellation: a write that started finishes, and then the
        # cancellation goes on, so no thread is left writing after its caller has gone.
        return await anyio.to_thread.run_sync(func)

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self._path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        except FileNotFoundError:
            return {"records": {}, "pending": {}}
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"{self._path} is a symbolic link; refusing to follow it. Point the store "
                    f"at the real file."
                ) from None
            raise StoreUnavailableError(f"Cannot read {self._path}: {exc.strerror}.") from exc
        try:
            _check_private(fd, self._path)
            with os.fdopen(fd, "rb", closefd=False) as f:
                text = f.read()
        except OSError as exc:
            raise StoreUnavailableError(f"Cannot read {self._path}: {exc.strerror}.") from exc
        finally:
            os.close(fd)
        return self._parse(text)

    def _parse(self, text: bytes) -> dict[str, Any]:
        broken = (
            f"The token file {self._path} is empty, truncated or not a sfoauth_async token "
            f"file; it is left untouched. Restore it from a backup, or move it away (the "
            f"credentials log in again; refresh tokens it held are lost)."
        )
        try:
            document = loads_limited(text.decode())
        except (ValueError, UnicodeDecodeError):
            raise StoreError(broken) from None
        if not isinstance(document, dict):
            raise StoreError(broken)
        if document.get("version") != VERSION:
            raise StoreError(
                f"The token file {self._path} has version {document.get('version')!r}; this "
                f"sfoauth_async reads version {VERSION}. Use the sfoauth_async that wrote it, "
                f"or move the file away."
            )
        if not isinstance(document.get("records"), dict) or not isinstance(
            document.get("pending"), dict
        ):
            raise StoreError(broken)
        return document

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self._path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        while True:
            fd = _open_lock_file(self._lock_path)
            # Blocks this worker thread only; held for one read-modify-write.
            if _flock(fd, self._lock_path, wait=True):
                break
            os.close(fd)  # the lock file was deleted under us: lock the new one
        try:
            yield
        finally:
            os.close(fd)

    def _update(self, change: Callable[[dict[str, Any]], bool]) -> bool:
        try:
            with self._file_lock():
                document = self._read()
                changed = change(document)
                if changed:
                    self._write(document)
                return changed
        except OSError as exc:
            raise StoreUnavailableError(
                f"Cannot write {self._path}: {exc.strerror or exc}."
            ) from exc

    def _write(self, document: dict[str, Any]) -> None:
        text = json.dumps(
            {"version": VERSION, "records": document["records"], "pending": document["pending"]},
            indent=1,
            sort_keys=True,
        )
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
