"""`RedisTokenStore`: tokens and refresh locks in Redis, shared by a fleet of machines.

Keys, under a prefix (default ``sfoauth:``):

- ``<prefix>token:<key>``: the record, a JSON string (see ``_record.py``): the token (sealed
  whole when a key is set) and its generation, or a tombstone.
- ``<prefix>pending:<key>``: the pending-refresh marker, while a refresh token is at
  Salesforce and its successor is not stored yet.
- ``<prefix>lock:<key>``: the refresh lock, ``SET NX PX`` with a random owner value.

Every write is one Lua script, atomic in Redis: `RedisTokenStore.save` and
`RedisTokenStore.forget` compare-and-set the generation and drop an older marker; a lock's
``mark``, ``renew`` and ``release`` act only while the lock's value is still their owner's.

redis is an optional dependency (``pip install 'sfoauth-async[redis]'``): this module imports
it only when a store is made, so ``import sfoauth_async`` never needs it.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

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
from ._untrusted import printable

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisTokenStore"]

_T = TypeVar("_T")

_EXTRA = "pip install 'sfoauth-async[redis]'"

# Redis answers that mean "not now" rather than "never": a full or read-only server, a
# script or a load in progress, a cluster or a replica set being reconfigured. redis-py
# turns some into classes of their own (and drops the code from the text), the others
# keep the code at the start of their text.
_UNAVAILABLE_CLASSES = (
    "OutOfMemoryError",
    "ReadOnlyError",
    "BusyLoadingError",
    "TryAgainError",
    "ClusterDownError",
    "MasterDownError",
)
_UNAVAILABLE_REPLIES = (
    "OOM",
    "READONLY",
    "BUSY",
    "LOADING",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "NOREPLICAS",
)

# The generation of the record in KEYS[1], 0 when there is none; -1 when the value there
# is not a record of ours (it is then left untouched, like a corrupt token file).
_GENERATION = """
local function generation(name)
    local current = redis.call('GET', name)
    if not current then
        return 0
    end
    local ok, record = pcall(cjson.decode, current)
    if not ok or type(record) ~= 'table' or type(record['generation']) ~= 'number' then
        return -1
    end
    return record['generation']
end
local function drop_older_marker(name, newer)
    local marker = redis.call('GET', name)
    if marker then
        local ok, decoded = pcall(cjson.decode, marker)
        if not ok or type(decoded) ~= 'table' or type(decoded['generation']) ~= 'number'
                or decoded['generation'] < newer then
            redis.call('DEL', name)
        end
    end
end
"""

# KEYS: record, marker. ARGV: new generation, record, expiry in epoch ms (0: none).
# Returns {1} written, {0, stored generation} stale, {-1} not ours.
_SAVE = (
    _GENERATION
    + """
local stored = generation(KEYS[1])
if stored < 0 then
    return {-1}
end
if stored >= tonumber(ARGV[1]) then
    return {0, stored}
end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then
    redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
drop_older_marker(KEYS[2], tonumber(ARGV[1]))
return {1}
"""
)

# KEYS: record, marker. Returns the tombstone's generation, or -1 when the value is not ours.
_FORGET = (
    _GENERATION
    + """
local stored = generation(KEYS[1])
if stored < 0 then
    return -1
end
local tombstone = stored + 1
redis.call('SET', KEYS[1], '{"version":"""
    + str(VERSION)
    + ""","generation":' .. string.format('%d', tombstone) .. ',"forgotten":true}')
redis.call('DEL', KEYS[2])
return tombstone
"""
)

# KEYS: lock, record, marker. ARGV: owner, generation, marker, lease ms.
# Leaves the marker (and renews the lease) only for the holder, on the expected generation.
_MARK = (
    _GENERATION
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if generation(KEYS[2]) ~= tonumber(ARGV[2]) then
    return 0
end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
)

# KEYS: marker. ARGV: owner. Removes the marker only if it is this owner's.
_UNMARK = """
local marker = redis.call('GET', KEYS[1])
if marker then
    local ok, decoded = pcall(cjson.decode, marker)
    if ok and type(decoded) == 'table' and decoded['owner'] == ARGV[1] then
        redis.call('DEL', KEYS[1])
    end
end
return 1
"""

# KEYS: lock. ARGV: owner, lease ms. Renews only the owner's lease (needs no memory: it
# works even when Redis is out of memory and refuses writes).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lock. ARGV: owner. Deletes only the owner's lock.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _import_redis() -> tuple[ModuleType, ModuleType]:
    """``redis.asyncio`` and ``redis.exceptions``, or a `ConfigurationError` naming the extra."""
    try:
        import redis.asyncio as redis_asyncio  # noqa: PLC0415 - optional, imported on use
        import redis.exceptions as redis_exceptions  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigurationError(
            f"RedisTokenStore needs the redis package, which is not installed: {_EXTRA}"
        ) from exc
    return redis_asyncio, redis_exceptions


class _RedisLock:
    """One acquisition of ``SET NX PX``; a new object for each, as `TokenStore.lock` asks."""

    def __init__(self, store: RedisTokenStore, key: str, lease_s: float) -> None:
        self._store = store
        self._key = key
        self._name = store._name("lock", key)
        self._lease_ms = max(1, math.ceil(lease_s * 1000))
        self.owner = new_owner()
        self._held = False

    async def acquire(self) -> bool:
        if self._held:
            return False
        taken = await self._store._call(
            lambda r: r.set(self._name, self.owner, nx=True, px=self._lease_ms), "lock"
        )
        self._held = bool(taken)
        return self._held

    async def renew(self) -> bool:
        if not self._held:
            return False
        renewed = await self._store._call(
            lambda r: r.eval(_RENEW, 1, self._name, self.owner, self._lease_ms),
            "renew the lock of",
            idempotent=True,
        )
        return bool(renewed)

    async def mark(self, generation: int) -> bool:
        if not self._held:
            return False
        marker = json.dumps(RecordCodec.pending_record(PendingRefresh(self.owner, generation)))
        names = (self._name, self._store._name("token", self._key), self._store._marker(self._key))
        marked = await self._store._write(
            lambda r: r.eval(_MARK, 3, *names, self.owner, generation, marker, self._lease_ms),
            "mark a refresh of",
        )
        return bool(marked)

    async def unmark(self) -> None:
        await self._store._write(
            lambda r: r.eval(_UNMARK, 1, self._store._marker(self._key), self.owner),
            "clear the refresh marker of",
        )

    async def release(self) -> None:
        if not self._held:
            return
        await self._store._call(
            lambda r: r.eval(_RELEASE, 1, self._name, self.owner),
            "release the lock of",
            idempotent=True,
        )
        # Forgotten only once Redis has answered (unlike redis-py#3847): a release cut short
        # can be tried again, and a lapsed lease (0 deleted) is not an error.
        self._held = False


class RedisTokenStore:
    """A `TokenStore` in Redis: one token and one refresh at a time for a whole fleet.

    Records are JSON strings at ``<prefix>token:<key>``, pending-refresh markers at
    ``<prefix>pending:<key>`` and refresh locks at ``<prefix>lock:<key>`` (``SET NX PX``
    with a random owner value). Every write is a Lua script: saves and `forget` compare and
    set the generation, and lock operations act only for the lock's owner. A record whose
    token has no refresh token expires ``expire_after_token_s`` after the access token
    does, so Redis forgets credentials that are no longer used; a record holding a refresh
    token never expires, since it may be the only copy of a rotated refresh token.

    What the guarantees need from Redis (see the docs, "Stores and fleets"): persistence
    (AOF with ``appendfsync everysec`` or ``always``, or RDB snapshots that are frequent
    enough), ``maxmemory-policy noeviction`` (or a volatile-* policy: refresh-token records
    have no TTL), and, with replicas and failover, ``min_replicas`` so that a write counts
    only once a replica has it.

    Connection errors, timeouts and the "not now" answers (``OOM``, ``READONLY``, ``BUSY``,
    ``LOADING``, ``TRYAGAIN``, ``CLUSTERDOWN``, ``MASTERDOWN``, ``NOREPLICAS``) raise
    `StoreUnavailableError` naming the server (host and port or socket path; never a
    password).

    Args:
        client: A ``redis.asyncio.Redis`` client (``decode_responses`` either way). The store
            does not close it.
        prefix: Put before every Redis key, to share a Redis between apps or environments.
        encryption_key_env: The name of an environment variable holding a Fernet key (or
            several, comma-separated, to rotate keys): each record is then encrypted and
            authenticated as a whole, and bound to its key. See `FileTokenStore`.
        accept_unsealed: With a key, also read records written without one (to move a
            store to encryption).
        expire_after_token_s: How long after the access token's expiry Redis keeps a record
            without a refresh token; ``None`` to keep records forever.
        check_interval_s: How often a process holding a refresh token checks that Redis
            still has it, and writes it back if Redis lost it. See `TokenStore`.
        min_replicas: After each write, wait until this many replicas have it (``WAIT``),
            and treat the write as failed otherwise, so that a failover cannot lose a rotated
            refresh token. 0 (default) for a Redis without replicas.
        replica_timeout_s: How long to wait for the replicas.

    Raises:
        ConfigurationError: redis is not installed (the message names the extra), or the
            encryption key is missing or invalid, or an option is out of range.

    Example:
        ```python
        store = RedisTokenStore.from_url("redis://cache.internal:6379/0")
        async with store, AsyncSession(flow, store=store) as sf:
            ...
        ```
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "sfoauth:",
        encryption_key_env: str | None = None,
        accept_unsealed: bool = False,
        expire_after_token_s: float | None = 3600.0,
        check_interval_s: float | None = 5.0,
        min_replicas: int = 0,
        replica_timeout_s: float = 1.0,
    ) -> None:
        _, self._exceptions = _import_redis()
        self._unavailable: tuple[type[BaseException], ...] = tuple(
            getattr(self._exceptions, name)
            for name in _UNAVAILABLE_CLASSES
            if hasattr(self._exceptions, name)
        )
        for name, value in (
            ("expire_after_token_s", expire_after_token_s),
            ("check_interval_s", check_interval_s),
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigurationError(
                    f"{name} must be a finite number >= 0 or None, got {value}."
                )
        if min_replicas < 0 or not (math.isfinite(replica_timeout_s) and replica_timeout_s > 0):
            raise ConfigurationError(
                f"min_replicas must be >= 0 and replica_timeout_s > 0, got {min_replicas} and "
                f"{replica_timeout_s}."
            )
        self._client = client
        self._prefix = prefix
        self._codec = RecordCodec(encryption_key_env, accept_unsealed=accept_unsealed)
        self._expire_after_token_s = expire_after_token_s
        self.check_interval_s = check_interval_s
        self._min_replicas = min_replicas
        self._replica_timeout_ms = max(1, math.ceil(replica_timeout_s * 1000))
        self._owns_client = False
        self._where = _describe(client)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sfoauth:",
        encryption_key_env: str | None = None,
        accept_unsealed: bool = False,
        expire_after_token_s: float | None = 3600.0,
        check_interval_s: float | None = 5.0,
        min_replicas: int = 0,
        replica_timeout_s: float = 1.0,
        **redis_kwargs: Any,  # noqa: ANN401 - redis.asyncio.from_url's options
    ) -> Self:
        """A store with its own client for ``url``; close it with `aclose` or ``async with``.

        Unless given, ``socket_connect_timeout`` and ``socket_timeout`` are 5 seconds, so a
        Redis that hangs makes the store unavailable (and refreshes fall back or fail, see
        the docs) instead of blocking token refreshes forever.

        Args:
            url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or
                ``unix:///path/to/socket``.
            prefix: See the class.
            encryption_key_env: See the class.
            accept_unsealed: See the class.
            expire_after_token_s: See the class.
            check_interval_s: See the class.
            min_replicas: See the class.
            replica_timeout_s: See the class.
            **redis_kwargs: Passed to ``redis.asyncio.from_url``.

        Raises:
            ConfigurationError: redis is not installed, or the URL is not a Redis URL.

        Example:
            ```python
            async with RedisTokenStore.from_url(os.environ["REDIS_URL"]) as store:
                ...
            ```
        """
        redis_asyncio, _ = _import_redis()
        redis_kwargs.setdefault("socket_connect_timeout", 5.0)
        redis_kwargs.setdefault("socket_timeout", 5.0)
        try:
            client = redis_asyncio.from_url(url, **redis_kwargs)
        except (ValueError, TypeError, IndexError) as exc:
            # Neither the URL nor redis-py's text is shown: a password with an unescaped
            # "/", "?" or "#" ends up in both (redis-py reports it as the "port").
            raise ConfigurationError(
                f"Not a usable Redis URL ({_redacted(url)}; redis-py raised "
                f"{type(exc).__name__}). Use redis://[[user]:password@]host[:port][/db], "
                f"rediss://... or unix:///path/to/socket, and percent-encode the characters "
                f"/ ? # @ : % in the user name and password (urllib.parse.quote(password, "
                f"safe=''))."
            ) from None
        store = cls(
            client,
            prefix=prefix,
            encryption_key_env=encryption_key_env,
            accept_unsealed=accept_unsealed,
            expire_after_token_s=expire_after_token_s,
            check_interval_s=check_interval_s,
            min_replicas=min_replicas,
            replica_timeout_s=replica_timeout_s,
        )
        store._owns_client = True
        return store

    @property
    def client(self) -> redis.asyncio.Redis:
        """The Redis client.

        Example:
            ```python
            await store.client.ping()
            ```
        """
        return self._client

    async def aclose(self) -> None:
        """Close the client if `from_url` made it (a client passed in is left open).

        Example:
            ```python
            await store.aclose()
            ```
        """
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"RedisTokenStore({self._where}, prefix={self._prefix!r})"

    # -- the protocol --------------------------------------------------------------------

    async def load(self, key: str) -> StoredToken | None:
        """The record stored under ``key`` (token, tombstone or marker), or ``None``.

        Raises:
            StoreError: The value there is not a record of ours, is sealed with another key,
                or is in clear while the store has a key.
            StoreUnavailableError: Redis cannot be used now.

        Example:
            ```python
            stored = await store.load(flow.store_key())
            ```
        """
        name = self._name("token", key)
        values = await self._call(
            lambda r: r.mget(name, self._marker(key)), "read", idempotent=True
        )
        where = f"the Redis value {name} at {self._where}"
        record, marker = (None if v is None else self._json(v, where) for v in values)
        return self._codec.stored(key, record, marker, where=where)

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Store ``token`` as ``generation`` if the stored one is older: an atomic Lua CAS.

        With ``min_replicas``, the write counts only once that many replicas have it.

        Raises:
            StaleTokenWriteError: ``generation`` or a later one is already stored.
            StoreError: The value there is not a record of ours (it is left as it is).
            StoreUnavailableError: Redis cannot be used now, or too few replicas have the
                write.

        Example:
            ```python
            await store.save(key, token, generation=1)
            ```
        """
        name = self._name("token", key)
        record = json.dumps(self._codec.token_record(key, token, generation), separators=(",", ":"))
        expire_at_ms = 0
        if (
            self._expire_after_token_s is not None
            and token.refresh_token is None
            and token.expires_at is not None
        ):
            expire_at_ms = math.ceil(
                (token.expires_at.timestamp() + self._expire_after_token_s) * 1000
            )
            # A record must never be born expired: keep it at least a minute.
            expire_at_ms = max(expire_at_ms, math.ceil((time.time() + 60) * 1000))
        names = (name, self._marker(key))
        result = await self._write(
            lambda r: r.eval(_SAVE, 2, *names, generation, record, expire_at_ms), "write"
        )
        status = int(result[0])
        if status == 0:
            raise StaleTokenWriteError(
                f"Not saving generation {generation} of {key}: generation "
                f"{int(result[1])} is already stored in Redis at {self._where}."
            )
        if status != 1:
            raise self._not_ours(name)

    async def forget(self, key: str) -> int:
        """Replace the record of ``key`` with a tombstone; return the tombstone's generation.

        Raises:
            StoreError: The value there is not a record of ours (it is left as it is).
            StoreUnavailableError: Redis cannot be used now.

        Example:
            ```python
            await store.forget(key)
            ```
        """
        name = self._name("token", key)
        names = (name, self._marker(key))
        generation = int(await self._write(lambda r: r.eval(_FORGET, 2, *names), "forget"))
        if generation < 1:
            raise self._not_ours(name)
        return generation

    def lock(self, key: str, *, lease_s: float) -> TokenLock:
        """A new lock object for ``key``: ``SET NX PX`` with a lease of ``lease_s`` seconds.

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
        return _RedisLock(self, key, lease_s)

    # -- Redis ---------------------------------------------------------------------------

    def _name(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    def _marker(self, key: str) -> str:
        return self._name("pending", key)

    def _not_ours(self, name: str) -> StoreError:
        return StoreError(
            f"The Redis value {name} at {self._where} is not a sfoauth_async record; it is "
            f"left untouched. Delete it, or give this store another prefix."
        )

    @staticmethod
    def _json(value: bytes | str, where: str) -> object:
        try:
            return loads_limited(value.decode() if isinstance(value, bytes) else value)
        except ValueError:
            raise StoreError(
                f"{where} is not JSON: something else writes to this key. Delete it, or give "
                f"this store another prefix."
            ) from None

    async def _write(self, command: Callable[[Any], Awaitable[_T]], what: str) -> _T:
        """Run a write and, with ``min_replicas``, wait for the replicas on its connection."""
        if self._min_replicas == 0:
            return await self._call(command, what)

        async def write_and_wait(client: Any) -> _T:  # noqa: ANN401 - redis' client
            # WAIT counts the replicas of the writes of its own connection: one pipeline.
            async with client.pipeline(transaction=False) as pipe:
                command(pipe)
                pipe.wait(self._min_replicas, self._replica_timeout_ms)
                result, replicas = await pipe.execute()
            if int(replicas) < self._min_replicas:
                raise StoreUnavailableError(
                    f"Redis at {self._where} confirmed the write to {replicas} replica(s) of "
                    f"the {self._min_replicas} required within "
                    f"{self._replica_timeout_ms} ms: a failover now could lose it."
                )
            return result  # type: ignore[no-any-return]

        return await self._call(write_and_wait, what)

    async def _call(
        self, command: Callable[[Any], Awaitable[_T]], what: str, *, idempotent: bool = False
    ) -> _T:
        exceptions = self._exceptions
        try:
            try:
                return await command(self._client)
            except exceptions.ConnectionError:
                # A pooled connection that died with a restart of Redis fails its first use
                # (and redis-py drops it): a read or an owner-checked step is worth one more go
                # on a new connection. A write is not: it may have landed.
                if not idempotent:
                    raise
                return await command(self._client)
        except (exceptions.ConnectionError, exceptions.TimeoutError, OSError, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"Redis at {self._where} is unavailable, could not {what} a token "
                f"({type(exc).__name__}: {exc})."
            ) from exc
        except exceptions.RedisError as exc:
            if isinstance(exc, self._unavailable) or str(exc).startswith(_UNAVAILABLE_REPLIES):
                raise StoreUnavailableError(
                    f"Redis at {self._where} cannot {what} a token now "
                    f"({type(exc).__name__}: {exc}). Check its memory (maxmemory), whether it "
                    f"is a replica after a failover, and its replication."
                ) from exc
            raise StoreError(
                f"Redis at {self._where} refused to {what} a token ({type(exc).__name__}: {exc})."
            ) from exc


def _describe(client: object) -> str:
    """Where ``client`` connects: ``host:port/db`` or the socket path, never credentials."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return "Redis"
    db = printable(str(kwargs.get("db", 0)), limit_chars=20)
    if kwargs.get("path"):
        return f"unix:{printable(str(kwargs['path']))} db {db}"
    host = printable(str(kwargs.get("host", "localhost")), limit_chars=100)
    return f"{host}:{printable(str(kwargs.get('port', 6379)), limit_chars=10)} db {db}"


def _redacted(url: str) -> str:
    """``url`` as scheme, host, port and database only, for messages; never a credential.

    The user info ends at the *last* ``@``, since a password may hold ``/``, ``?``, ``#`` or
    ``@`` unescaped; the query (which may hold ``password=``) and fragment are dropped, and
    a ``redis://`` path is shown only when it is a database number.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.isascii() or not scheme.isalpha():
        return "<not a URL>"
    at = rest.rfind("@")
    userinfo = "***@" if at >= 0 else ""
    rest = rest[at + 1 :]
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(ends, default=len(rest))
    authority, path = rest[:end], rest[end:].partition("?")[0].partition("#")[0]
    if scheme.lower() != "unix" and not (path == "" or re.fullmatch(r"/\d*", path)):
        path = "/..."
    return printable(f"{scheme}://{userinfo}{authority}{path}")
