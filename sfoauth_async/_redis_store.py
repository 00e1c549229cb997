"""`RedisTokenStore`: tokens and refresh locks in Redis, shared by a fleet of machines.

Each key's record is one JSON string at ``<prefix>token:<key>``::

    {"version": 1, "generation": 3, "token": {...}}

`RedisTokenStore.save` is a Lua compare-and-set on the generation (atomic in Redis), so a
process whose lock lease ran out cannot overwrite a newer token (fencing). The refresh lock
of a key is ``<prefix>lock:<key>``, taken with ``SET NX PX`` and a random owner value and
released with a Lua compare-and-delete, so a lapsed holder never frees another's lock.

redis is an optional dependency (``pip install 'sfoauth-async[redis]'``): this module imports
it only when a store is made, so ``import sfoauth_async`` never needs it.
"""

from __future__ import annotations

import json
import math
import re
import secrets
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
from ._record import Sealer, stored_from_record
from ._store import StoredToken, TokenLock
from ._token import Token
from ._untrusted import printable

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisTokenStore"]

_T = TypeVar("_T")

_VERSION = 1
_EXTRA = "pip install 'sfoauth-async[redis]'"

# KEYS[1] the record; ARGV[1] the new generation, ARGV[2] the record, ARGV[3] expiry in epoch
# ms or 0. Returns {1} when written, {0, stored generation} when stale, {-1} when the value
# there is not ours (left untouched, like a corrupt token file).
_CAS = """
local current = redis.call('GET', KEYS[1])
if current then
    local ok, record = pcall(cjson.decode, current)
    if not ok or type(record) ~= 'table' or type(record['generation']) ~= 'number' then
        return {-1}
    end
    if record['generation'] >= tonumber(ARGV[1]) then
        return {0, record['generation']}
    end
end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then
    redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return {1}
"""

# KEYS[1] the lock; ARGV[1] the owner value. Deletes only our own lock.
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

    def __init__(self, store: RedisTokenStore, name: str, lease_s: float) -> None:
        self._store = store
        self._name = name
        self._lease_ms = max(1, math.ceil(lease_s * 1000))
        self._owner: str | None = None

    async def acquire(self) -> bool:
        if self._owner is not None:
            return False
        owner = secrets.token_hex(16)
        taken = await self._store._call(
            lambda r: r.set(self._name, owner, nx=True, px=self._lease_ms), "lock"
        )
        if taken:
            self._owner = owner
        return bool(taken)

    async def release(self) -> None:
        owner = self._owner
        if owner is None:
            return
        await self._store._call(
            lambda r: r.eval(_RELEASE, 1, self._name, owner), "release the lock of"
        )
        # Forgotten only once Redis has answered (unlike redis-py#3847): a release cut short
        # can be tried again, and a lapsed lease (0 deleted) is not an error.
        self._owner = None


class RedisTokenStore:
    """A `TokenStore` in Redis: one token and one refresh at a time for a whole fleet.

    Records are JSON strings at ``<prefix>token:<key>``; refresh locks are
    ``<prefix>lock:<key>`` (``SET NX PX`` with a random owner value, released by a Lua
    compare-and-delete). `save` is a Lua compare-and-set on the generation. A record whose
    token has no refresh token expires ``expire_after_token_s`` after the access token does,
    so Redis forgets credentials that are no longer used; a record holding a refresh token
    never expires, since it may be the only copy of a rotated refresh token.

    Connection errors and timeouts raise `StoreUnavailableError` naming the server (host and
    port or socket path; never a password).

    Args:
        client: A ``redis.asyncio.Redis`` client (``decode_responses`` either way). The store
            does not close it.
        prefix: Put before every Redis key, to share a Redis between apps or environments.
        encryption_key_env: The name of an environment variable holding a Fernet key (or
            several, comma-separated, to rotate keys): the secrets of each token are then
            encrypted before they reach Redis. See `FileTokenStore`.
        expire_after_token_s: How long after the access token's expiry Redis keeps a record
            without a refresh token; ``None`` to keep records forever.

    Raises:
        ConfigurationError: redis is not installed (the message names the extra), or the
            encryption key is missing or invalid.

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
        expire_after_token_s: float | None = 3600.0,
    ) -> None:
        _, self._exceptions = _import_redis()
        if expire_after_token_s is not None and not (
            math.isfinite(expire_after_token_s) and expire_after_token_s >= 0
        ):
            raise ConfigurationError(
                f"expire_after_token_s must be a finite number >= 0 or None, got "
                f"{expire_after_token_s}."
            )
        self._client = client
        self._prefix = prefix
        self._sealer = Sealer(encryption_key_env)
        self._expire_after_token_s = expire_after_token_s
        self._owns_client = False
        self._where = _describe(client)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sfoauth:",
        encryption_key_env: str | None = None,
        expire_after_token_s: float | None = 3600.0,
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
            expire_after_token_s: See the class.
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
            expire_after_token_s=expire_after_token_s,
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
        """The token stored under ``key``, or ``None``.

        Raises:
            StoreError: The value there is not a stored token, or is encrypted with another
                key.
            StoreUnavailableError: Redis cannot be reached.

        Example:
            ```python
            stored = await store.load(flow.store_key())
            ```
        """
        name = self._token_name(key)
        value = await self._call(lambda r: r.get(name), "read")
        if value is None:
            return None
        where = f"the Redis value {name} at {self._where}"
        try:
            record = json.loads(value)
        except ValueError:
            raise StoreError(
                f"{where} is not JSON: something else writes to this key. Delete it, or give "
                f"this store another prefix."
            ) from None
        if not isinstance(record, dict) or record.get("version") != _VERSION:
            raise StoreError(f"{where} is not a version {_VERSION} sfoauth_async record.")
        return stored_from_record(record, sealer=self._sealer, where=where)

    async def save(self, key: str, token: Token, *, generation: int) -> None:
        """Store ``token`` as ``generation`` if the stored one is older: an atomic Lua CAS.

        Raises:
            StaleTokenWriteError: ``generation`` or a later one is already stored.
            StoreError: The value there is not a stored token (it is left as it is).
            StoreUnavailableError: Redis cannot be reached.

        Example:
            ```python
            await store.save(key, token, generation=1)
            ```
        """
        name = self._token_name(key)
        record = json.dumps(
            {"version": _VERSION, "generation": generation, "token": self._sealer.seal(token)},
            separators=(",", ":"),
        )
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
        result = await self._call(
            lambda r: r.eval(_CAS, 1, name, generation, record, expire_at_ms), "write"
        )
        status = int(result[0])
        if status == 0:
            raise StaleTokenWriteError(
                f"Not saving generation {generation} of {key}: generation "
                f"{int(result[1])} is already stored in Redis at {self._where}."
            )
        if status != 1:
            raise StoreError(
                f"The Redis value {name} at {self._where} is not a sfoauth_async record; it "
                f"is left untouched. Delete it, or give this store another prefix."
            )

    async def delete(self, key: str) -> None:
        """Forget the token under ``key`` (no error if there is none).

        Raises:
            StoreUnavailableError: Redis cannot be reached.

        Example:
            ```python
            await store.delete(key)
            ```
        """
        name = self._token_name(key)
        await self._call(lambda r: r.delete(name), "delete")

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
        return _RedisLock(self, f"{self._prefix}lock:{key}", lease_s)

    # -- Redis ---------------------------------------------------------------------------

    def _token_name(self, key: str) -> str:
        return f"{self._prefix}token:{key}"

    async def _call(self, command: Callable[[Any], Awaitable[_T]], what: str) -> _T:
        exceptions = self._exceptions
        try:
            return await command(self._client)
        except (exceptions.ConnectionError, exceptions.TimeoutError, OSError, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"Redis at {self._where} is unavailable, could not {what} a token "
                f"({type(exc).__name__}: {exc})."
            ) from exc
        except exceptions.RedisError as exc:
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
