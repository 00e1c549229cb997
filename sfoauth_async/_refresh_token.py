"""`RefreshTokenFlow`: new access tokens from a refresh token, rotation-aware."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import ClassVar

import aiohttp

from ._errors import AuthorizationError
from ._flow import ClientAuth, Flow, _required
from ._hosts import DEFAULT_INSTANCE_HOSTS
from ._token import DEFAULT_SESSION_TIMEOUT, Token
from ._urls import DEFAULT_LOGIN_URL

__all__ = ["RefreshTokenFlow", "RefreshingFlow"]


class RefreshingFlow(Flow):
    """Base of the grants that renew sessions with a refresh token.

    The refresh token comes from the token being replaced (``previous``), or else from the
    flow itself for `RefreshTokenFlow`, which holds one credential. When the org rotates
    refresh tokens, each refresh returns a new one and the old one dies
    (reusing it revokes the whole grant): the flow adopts the new one at once. When the
    response has none, the refresh token that was used stays valid and is kept on the token.
    """

    grant_type: ClassVar[str] = "refresh_token"
    uses_refresh_token: ClassVar[bool] = True

    def _own_refresh_token(self) -> str | None:
        """The refresh token the flow itself holds, used when no previous token has one."""
        return None

    def _remember(self, refresh_token: str) -> None:
        """Keep the refresh token to use next, if the flow holds one."""

    def _grant_form(self, previous: Token | None) -> dict[str, str]:
        refresh_token = (previous.refresh_token if previous else None) or self._own_refresh_token()
        if refresh_token is None:
            raise AuthorizationError(
                f"{type(self).__name__} has no refresh token to renew the session with. Send "
                f"the user through the authorization flow again, and request the "
                f"refresh_token scope to stay logged in."
            )
        return {"grant_type": "refresh_token", "refresh_token": refresh_token}

    async def fetch_token(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        previous: Token | None = None,
        session_timeout: timedelta | None = DEFAULT_SESSION_TIMEOUT,
        timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
    ) -> Token:
        """Refresh: the newest refresh token of ``previous`` or of the flow buys a new token.

        The returned token always carries the refresh token to use next: the rotated one if
        Salesforce sent one, else the one just used; its `Token.refresh_token_rotation`
        says which. See `Flow.fetch_token`.

        Example:
            ```python
            token = await flow.fetch_token(previous=token)
            ```
        """
        form = self._grant_form(previous)
        used = form["refresh_token"]
        token = await self._post_token_form(
            form, session, session_timeout, timeout_s, connect_timeout_s
        )
        rotated = token.refresh_token is not None and token.refresh_token != used
        kept = token.refresh_token or used
        token = replace(token, refresh_token=kept, refresh_token_rotation=rotated)
        self._remember(kept)
        return token


class RefreshTokenFlow(RefreshingFlow):
    """The refresh token grant: renew access with a refresh token you already hold.

    Args:
        client_id: The consumer key.
        refresh_token: The refresh token (from the authorization-code flow, or a store).
        client_secret: The consumer secret; required unless the app turned off "Require
            Secret for Refresh Token Flow".
        login_url: The login URL that issued the refresh token (default
            ``https://login.salesforce.com``).
        client_auth: ``"body"`` (default) or ``"basic"``.
        instance_hosts: Host patterns a token's ``instance_url`` must match
            (`DEFAULT_INSTANCE_HOSTS`: Salesforce's domains and loopback); see
            `Flow.check_instance_url`.

    Example:
        ```python
        flow = RefreshTokenFlow(
            client_id=key, client_secret=secret, refresh_token=os.environ["SF_REFRESH_TOKEN"]
        )
        async with AsyncSession(flow) as sf:
            ...
        ```
    """

    _key_grant: ClassVar[str] = "refresh_token"
    holds_refresh_token: ClassVar[bool] = True

    def __init__(
        self,
        *,
        client_id: str,
        refresh_token: str,
        client_secret: str | None = None,
        login_url: str = DEFAULT_LOGIN_URL,
        client_auth: ClientAuth = "body",
        instance_hosts: Iterable[str] = DEFAULT_INSTANCE_HOSTS,
    ) -> None:
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            login_url=login_url,
            client_auth=client_auth,
            instance_hosts=instance_hosts,
        )
        self._refresh_token = _required("refresh_token", refresh_token)
        # A fingerprint, not the secret: stable for every process given the same token.
        self._fingerprint = hashlib.sha256(refresh_token.encode()).hexdigest()[:16]

    def _own_refresh_token(self) -> str | None:
        return self._refresh_token

    def _remember(self, refresh_token: str) -> None:
        self._refresh_token = refresh_token

    @property
    def refresh_token(self) -> str | None:
        """The refresh token the next refresh will use (the rotated one after rotation).

        Example:
            ```python
            save_somewhere(flow.refresh_token)
            ```
        """
        return self._refresh_token

    def _subject(self, token: Token | None) -> str:  # noqa: ARG002
        return f"rt-{self._fingerprint}"
