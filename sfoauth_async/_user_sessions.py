"""`UserSessions`: one `AsyncSession` per user of a web app, bounded, on one connection pool.

A web app connects many users' Salesforce accounts with one `AuthorizationCodeFlow`. Each
user's token lives in a `TokenStore` under the user's store key, so any worker process (and
the app after a restart) can serve that user; this class keeps an `AsyncSession` per user
in memory for the users seen recently, and closes the others:

- A session is **in use** while a caller holds it (`UserSessions.use`, which the web
  integrations hold for each request). A session in use is never closed.
- Idle sessions beyond ``max_sessions`` are closed least recently used first, and any idle
  for ``idle_timeout``; their tokens stay in the store, and the next request of that user
  opens a new session from it.
- The sessions share one aiohttp connection pool. Token requests never use it (each refresh
  has its own), so closing a user's session never disturbs a refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import aiohttp

from ._authorization_code import AuthorizationCodeFlow
from ._errors import ConfigurationError
from ._session import AsyncSession
from ._store import TokenStore
from ._token import Token
from ._untrusted import printable

__all__ = ["UserSessions"]

log = logging.getLogger("sfoauth_async")

_MAX_USER_KEY = 255
# Options UserSessions sets itself for each user's session.
_RESERVED_OPTIONS = ("token", "store", "store_key", "connector_owner")
_SWEEP_MIN_S = 1.0
_SWEEP_MAX_S = 60.0


def _check_user_key(user_key: object) -> str:
    if (
        not isinstance(user_key, str)
        or not user_key
        or len(user_key) > _MAX_USER_KEY
        or not user_key.isprintable()
        or any(c.isspace() for c in user_key)
    ):
        shown = printable(user_key) if isinstance(user_key, str) else type(user_key).__name__
        raise ConfigurationError(
            f"A user key is 1 to {_MAX_USER_KEY} printable characters without spaces, such "
            f"as the '<org id>/<user id>' that UserSessions.connect() returns; got '{shown}'."
        )
    return user_key


def user_key_of(token: Token) -> str:
    """The default user key of a token: ``<org id>/<user id>`` from its identity URL.

    Raises:
        ConfigurationError: The token has no identity URL (``id``) to name its user.

    Example:
        ```python
        assert user_key_of(token) == f"{token.org_id}/{token.user_id}"
        ```
    """
    if token.org_id is None or token.user_id is None:
        raise ConfigurationError(
            "This token has no identity URL (its 'id'), so it does not say whose it is: "
            "pass user_key= to UserSessions.connect()."
        )
    return f"{token.org_id}/{token.user_id}"


@dataclass(eq=False, slots=True)
class _Entry:
    session: AsyncSession
    last_used: float
    uses: int = 0


class UserSessions:
    """One `AsyncSession` per user, made on demand from a shared `TokenStore`, bounded.

    Use it as an async context manager for the life of the web app (a lifespan or
    ``cleanup_ctx``): entering it opens the shared connection pool, leaving it closes every
    session and stops its sweeper; no task is left behind. The user's token lives in the
    store under ``flow.store_key`` naming the user (``...:<org id>/<user id>``), so every
    process sharing the store serves every user, and a restart keeps users connected.

    A session is in use while held with `use` (the web integrations hold it for each
    request): it is never closed then. Idle sessions beyond ``max_sessions`` are closed
    least recently used first, and any session idle for ``idle_timeout``; their tokens stay
    in the store, and the user's next request opens a new session from it.

    Args:
        flow: The app's `AuthorizationCodeFlow`. Several `UserSessions` on one flow object
            share their users' refreshers, and must then share the store and options too.
        store: Where users' tokens live: `RedisTokenStore` for several machines,
            `FileTokenStore` for the processes of one machine, `MemoryTokenStore` for one
            process (users then log in again after a restart).
        max_sessions: How many users' sessions to keep open; more are opened when all are
            in use, and closed as soon as they are idle.
        idle_timeout: Close a session unused for this long.
        **session_options: Passed to each `AsyncSession` (``session_timeout``,
            ``api_version``, ``raise_for_status``, ``timeout``, a ``connector`` of your own
            to share, ...); not ``token``, ``store``, ``store_key`` or ``connector_owner``.

    Raises:
        ConfigurationError: ``flow`` is not an `AuthorizationCodeFlow`, or an option is out
            of range or reserved.

    Example:
        ```python
        users = UserSessions(flow, store=RedisTokenStore.from_url("redis://localhost"))
        async with users:
            user_key = await users.connect(await flow.exchange(code, code_verifier=verifier))
            async with users.use(user_key) as sf, sf.get("limits/") as resp:
                print(await resp.json())
        ```
    """

    def __init__(
        self,
        flow: AuthorizationCodeFlow,
        *,
        store: TokenStore,
        max_sessions: int = 1000,
        idle_timeout: timedelta = timedelta(minutes=15),
        **session_options: Any,  # noqa: ANN401 - AsyncSession's options, passed through
    ) -> None:
        if not isinstance(flow, AuthorizationCodeFlow):
            raise ConfigurationError(
                f"UserSessions keeps one session per user, whose tokens come from the "
                f"authorization code flow: pass an AuthorizationCodeFlow, got "
                f"{type(flow).__name__}."
            )
        if store is None:
            raise ConfigurationError(
                "UserSessions needs a store (users' tokens live there, per user key): "
                "MemoryTokenStore(), FileTokenStore(path) or RedisTokenStore.from_url(url)."
            )
        size: object = max_sessions  # checked as given: callers may not type-check
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigurationError(f"max_sessions must be at least 1, got {max_sessions!r}.")
        idle: object = idle_timeout
        if not isinstance(idle, timedelta) or idle <= timedelta(0):
            raise ConfigurationError(
                f"idle_timeout must be a positive timedelta, got {idle_timeout!r}."
            )
        reserved = sorted(name for name in _RESERVED_OPTIONS if name in session_options)
        if reserved:
            raise ConfigurationError(
                f"UserSessions sets {', '.join(reserved)} of each user's session itself; "
                f"remove them from the options."
            )
        self._flow = flow
        self._store = store
        self._max_sessions = max_sessions
        self._idle_s = idle_timeout.total_seconds()
        self._options = session_options
        self._own_connector = "connector" not in session_options
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._connector: aiohttp.BaseConnector | None = None
        self._open = False
        self._clock: Callable[[], float] = time.monotonic

    # -- what it holds ------------------------------------------------------------------

    @property
    def flow(self) -> AuthorizationCodeFlow:
        """The app's flow.

        Example:
            ```python
            request = users.flow.authorization_url()
            ```
        """
        return self._flow

    @property
    def store(self) -> TokenStore:
        """Where users' tokens live.

        Example:
            ```python
            stored = await users.store.load(users.store_key(user_key))
            ```
        """
        return self._store

    def store_key(self, user_key: str) -> str:
        """The store key of a user's token: `Flow.store_key` with the user key as subject.

        Raises:
            ConfigurationError: ``user_key`` is not a user key.

        Example:
            ```python
            assert users.store_key(user_key) == flow.store_key(token)
            ```
        """
        return self._flow._store_key_of(_check_user_key(user_key))

    def __len__(self) -> int:
        """How many users' sessions are open now."""
        return len(self._entries)

    def __contains__(self, user_key: object) -> bool:
        """Whether the user's session is open now."""
        return user_key in self._entries

    def in_use(self, user_key: str) -> int:
        """How many callers hold the user's session now (0 if it is not open).

        Example:
            ```python
            assert users.in_use(user_key) == 0
            ```
        """
        entry = self._entries.get(user_key)
        return entry.uses if entry is not None else 0

    # -- sessions -------------------------------------------------------------------------

    def session(self, user_key: str) -> AsyncSession:
        """The user's session: the open one, or a new one whose token comes from the store.

        Counts as a use of the user's session for ``max_sessions`` and ``idle_timeout``,
        but does not hold it: hold it with `use` across awaits, or it may be closed when
        it has been idle the longest and ``max_sessions`` others are wanted. Never close it
        yourself (``async with users.session(key)`` would): if you do, the next call
        opens a new one.

        Raises:
            ConfigurationError: ``user_key`` is not a user key.
            RuntimeError: Outside ``async with users``.

        Example:
            ```python
            sf = users.session(user_key)
            resp = await sf.get("limits/")
            ```
        """
        return self._entry(user_key).session

    @asynccontextmanager
    async def use(self, user_key: str) -> AsyncIterator[AsyncSession]:
        """Hold the user's session: it is not closed while held (uses are counted).

        Raises:
            ConfigurationError: ``user_key`` is not a user key.
            RuntimeError: Outside ``async with users``.

        Example:
            ```python
            async with users.use(user_key) as sf:
                accounts = await sf.query_all("SELECT Id, Name FROM Account LIMIT 10")
            ```
        """
        entry = self._entry(user_key)
        entry.uses += 1
        try:
            yield entry.session
        finally:
            entry.uses -= 1
            entry.last_used = self._clock()
            if self._entries.get(user_key) is entry:
                self._entries.move_to_end(user_key)  # released: the most recently used
                self._close_beyond_max()
            elif entry.uses == 0:
                # Dropped while held (a logout): closed now that nobody holds it.
                self._close_later(entry)

    async def connect(self, token: Token, *, user_key: str | None = None) -> str:
        """Save a freshly exchanged token as the user's token, for every process; the user key.

        The token (from `AuthorizationCodeFlow.exchange`) becomes the store's next
        generation for the user, over a logout too, and the user's session uses it.

        Args:
            token: The user's new token.
            user_key: Who the user is; by default ``<org id>/<user id>`` from the token's
                identity URL.

        Returns:
            The user key: keep it (in a signed cookie, say) to find the user's session.

        Raises:
            ConfigurationError: The token has no identity URL and no ``user_key`` is given.
            StoreError: The store could not save the token.
            RuntimeError: Outside ``async with users``.

        Example:
            ```python
            token = await flow.exchange(code, code_verifier=request.code_verifier)
            user_key = await users.connect(token)
            ```
        """
        key = _check_user_key(user_key) if user_key is not None else user_key_of(token)
        async with self.use(key) as sf:
            await sf.refresher.put_token(token)
        return key

    async def logout(self, user_key: str) -> bool:
        """Log the user out: revoke at Salesforce, forget in the store for every process, close.

        The user's refresh token (the store's, else this process's) is revoked, which also
        ends the access tokens issued from it; the store then keeps a tombstone, so every
        process drops the user's token and none refreshes it again; the session is closed
        (once nobody holds it). The forgetting and closing happen even when revoking fails.

        Returns:
            ``True`` if Salesforce revoked a token now, ``False`` if there was none to
            revoke or Salesforce no longer knew it.

        Raises:
            TokenRequestError: Revoking failed (the user is logged out here all the same).
            StoreError: The store could not be read or updated.
            RuntimeError: Outside ``async with users``.

        Example:
            ```python
            await users.logout(user_key)
            ```
        """
        entry = self._entry(user_key)
        session = entry.session
        stored = await self._store.load(self.store_key(user_key))
        token = stored.token if stored is not None and stored.token is not None else session.token
        try:
            revoked = await self._flow.revoke(token) if token is not None else False
        finally:
            try:
                await session.refresher.forget()
            finally:
                if self._entries.get(user_key) is entry:
                    del self._entries[user_key]
                if entry.uses == 0:
                    await session.close()
        return revoked

    # -- bounds ---------------------------------------------------------------------------

    async def close_idle(self) -> int:
        """Close the sessions idle for ``idle_timeout`` now (a task does it periodically).

        Returns:
            How many sessions were closed.

        Example:
            ```python
            closed = await users.close_idle()
            ```
        """
        deadline = self._clock() - self._idle_s
        idle = [
            self._entries.pop(key)
            for key, entry in list(self._entries.items())
            if entry.uses == 0 and entry.last_used <= deadline
        ]
        await asyncio.gather(*(entry.session.close() for entry in idle))
        return len(idle)

    def _entry(self, user_key: str) -> _Entry:
        if not self._open:
            raise RuntimeError(
                "UserSessions is not open: use it as 'async with users:' (in the web app's "
                "lifespan or cleanup_ctx) around the code that uses sessions."
            )
        entry = self._entries.get(user_key)
        if entry is not None and entry.session.closed:
            # Closed by someone else: a new one takes its place.
            del self._entries[user_key]
            entry = None
        if entry is None:
            session = AsyncSession(
                self._flow,
                store=self._store,
                store_key=self.store_key(user_key),
                connector=self._options.get("connector", self._connector),
                connector_owner=False,
                **{k: v for k, v in self._options.items() if k != "connector"},
            )
            entry = self._entries[user_key] = _Entry(session, self._clock())
            self._close_beyond_max()
        else:
            self._entries.move_to_end(user_key)
            entry.last_used = self._clock()
        return entry

    def _close_beyond_max(self) -> None:
        excess = len(self._entries) - self._max_sessions
        if excess <= 0:
            return
        # Oldest first; a session in use is never closed, however old, nor the one just
        # asked for (the last).
        idle = [k for k, e in list(self._entries.items())[:-1] if e.uses == 0]
        for key in idle[:excess]:
            self._close_later(self._entries.pop(key))

    def _close_later(self, entry: _Entry) -> None:
        task = asyncio.get_running_loop().create_task(
            entry.session.close(), name="sfoauth-close-user-session"
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _sweep_forever(self) -> None:
        interval = min(max(self._idle_s / 4, _SWEEP_MIN_S), _SWEEP_MAX_S)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.close_idle()
            except Exception:  # a broken close must not stop the sweeping
                log.exception("Closing idle user sessions failed")

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError("This UserSessions is already open.")
        self._connector = aiohttp.TCPConnector() if self._own_connector else None
        self._open = True
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep_forever(), name="sfoauth-user-sessions-sweeper"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every session, stop the sweeper, close the pool (if this object made it).

        Example:
            ```python
            await users.aclose()
            ```
        """
        if not self._open:
            return
        self._open = False
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        entries = list(self._entries.values())
        self._entries.clear()
        await asyncio.gather(*(entry.session.close() for entry in entries))
        while self._closing:
            await asyncio.wait(list(self._closing))
        connector, self._connector = self._connector, None
        if connector is not None:
            await connector.close()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<UserSessions {state}: {len(self._entries)} of {self._max_sessions} sessions, "
            f"{self._flow!r}, {self._store!r}>"
        )
