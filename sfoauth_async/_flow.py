"""`Flow`: what every Salesforce OAuth grant shares.

A flow knows a connected app (consumer key, maybe a secret), a login URL and how to ask the
token endpoint for a `Token`. It also owns the other client calls of that app, in one place:
`Flow.revoke`, `Flow.introspect`, `Flow.userinfo` and `Flow.verify_signature`.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
from datetime import timedelta
from typing import Any, ClassVar, Literal

import aiohttp

from ._endpoint import get_json, post_form
from ._errors import ConfigurationError, InvalidTokenError, SignatureMismatchError
from ._introspection import Introspection
from ._token import DEFAULT_SESSION_TIMEOUT, Token
from ._urls import endpoint_url, normalize_login_url

__all__ = ["ClientAuth", "Flow"]

ClientAuth = Literal["body", "basic"]
"""How a confidential client proves itself: form fields (default) or HTTP Basic."""

TOKEN_PATH = "/services/oauth2/token"
REVOKE_PATH = "/services/oauth2/revoke"
INTROSPECT_PATH = "/services/oauth2/introspect"
USERINFO_PATH = "/services/oauth2/userinfo"


def _required(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string.")
    return value


class Flow(abc.ABC):
    """Base class of the grants; every flow fetches, revokes and introspects tokens alike.

    The grants are `AuthorizationCodeFlow`, `ClientCredentialsFlow`, `JWTBearerFlow`,
    `PasswordFlow` and `RefreshTokenFlow`. Subclasses say which form fields their grant
    sends; the base class authenticates the client, calls the token endpoint and builds the
    `Token`.

    Example:
        ```python
        flow = ClientCredentialsFlow(
            client_id=key, client_secret=secret, login_url="https://acme.my.salesforce.com"
        )
        token = await flow.fetch_token()
        info = await flow.introspect(token)
        await flow.revoke(token)
        ```
    """

    grant_type: ClassVar[str]
    """The ``grant_type`` form value."""

    uses_refresh_token: ClassVar[bool] = False
    """Whether the grant spends a refresh token, which must never be refreshed concurrently
    (with rotation, a second use revokes it)."""

    holds_refresh_token: ClassVar[bool] = False
    """Whether the flow was configured with a refresh token of its own (`RefreshTokenFlow`),
    used when no token carries a newer one."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | None,
        login_url: str,
        client_auth: ClientAuth = "body",
    ) -> None:
        self._client_id = _required("client_id", client_id)
        if client_secret is not None:
            _required("client_secret", client_secret)
        self._client_secret = client_secret
        self._login_url = normalize_login_url(login_url)
        if client_auth not in ("body", "basic"):
            raise ConfigurationError(f"client_auth must be 'body' or 'basic', got {client_auth!r}.")
        if client_auth == "basic" and client_secret is None:
            raise ConfigurationError(
                "client_auth='basic' needs a client_secret: HTTP Basic authenticates with "
                "the consumer key and secret."
            )
        self._client_auth: ClientAuth = client_auth

    @property
    def client_id(self) -> str:
        """The connected app's consumer key.

        Example:
            ```python
            print(flow.client_id)
            ```
        """
        return self._client_id

    @property
    def login_url(self) -> str:
        """The login URL, without a trailing slash, its path kept.

        Example:
            ```python
            assert flow.login_url == "https://acme.my.salesforce.com"
            ```
        """
        return self._login_url

    @property
    def has_client_secret(self) -> bool:
        """Whether the flow knows the consumer secret (needed to introspect and verify).

        Example:
            ```python
            if flow.has_client_secret:
                info = await flow.introspect(token)
            ```
        """
        return self._client_secret is not None

    @property
    def token_url(self) -> str:
        """``login_url + "/services/oauth2/token"``.

        Example:
            ```python
            assert flow.token_url.endswith("/services/oauth2/token")
            ```
        """
        return endpoint_url(self._login_url, TOKEN_PATH)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(client_id={self._client_id!r}, login_url={self._login_url!r})"

    @abc.abstractmethod
    def _grant_form(self, previous: Token | None) -> dict[str, str]:
        """The grant's own form fields, without client authentication."""

    @abc.abstractmethod
    def _subject(self, token: Token | None) -> str:
        """Who the credential logs in as, for `store_key` (never a secret)."""

    def _authenticate(self, form: dict[str, str]) -> str | None:
        """Add client authentication: to the form, or as the returned Authorization value."""
        # One mechanism per request: RFC 6749 forbids sending the secret both ways.
        if self._client_auth == "basic":
            assert self._client_secret is not None
            # Built by hand: aiohttp 3.14 deprecates BasicAuth and the auth= argument.
            pair = f"{self._client_id}:{self._client_secret}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        form["client_id"] = self._client_id
        if self._client_secret is not None:
            form["client_secret"] = self._client_secret
        return None

    async def _post_token_form(
        self,
        form: dict[str, str],
        session: aiohttp.ClientSession | None,
        session_timeout: timedelta | None,
        timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
    ) -> Token:
        authorization = self._authenticate(form)
        response = await post_form(
            session,
            self.token_url,
            form,
            authorization=authorization,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        return Token.from_response(
            response.data,
            received_at=response.received_at,
            session_timeout=session_timeout,
            url=self.token_url,
        )

    async def fetch_token(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        previous: Token | None = None,
        session_timeout: timedelta | None = DEFAULT_SESSION_TIMEOUT,
        timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
    ) -> Token:
        """Ask the token endpoint for a new token with this grant.

        Args:
            session: The aiohttp session to send with (its middlewares are bypassed), or
                ``None`` for a private one.
            previous: The token being replaced, if any: refresh grants take the newest
                refresh token from it.
            session_timeout: The org's session timeout, which sets `Token.expires_at`.
            timeout_s: Time limit of the request (default 30 s).
            connect_timeout_s: Time limit of connecting, within ``timeout_s``.

        Returns:
            The new token.

        Raises:
            OAuthError: Salesforce refused the grant; the subclass and message say why.
            TokenEndpointUnavailableError: 5xx, 429 or a maintenance page (transient).
            TokenEndpointConnectionError: No answer (transient); ``request_sent`` says
                whether Salesforce may have received the request.
            InvalidTokenResponseError: The answer is not a token response.

        Example:
            ```python
            async with aiohttp.ClientSession() as http:
                token = await flow.fetch_token(http)
            ```
        """
        form = self._grant_form(previous)
        return await self._post_token_form(
            form, session, session_timeout, timeout_s, connect_timeout_s
        )

    def store_key(self, token: Token | None = None) -> str:
        """The key under which token stores keep this credential's token.

        ``sfoauth:<grant>:<login host and path>:<consumer key>:<subject>``, where the subject
        is the username (JWT bearer, password), ``run-as`` (client credentials),
        ``rt-<fingerprint>`` (refresh token: the first 16 hex digits of the SHA-256 of the
        refresh token the flow was built with) or ``<org id>/<user id>`` of the token
        (authorization code). Stable across processes and restarts; never contains a secret.

        Args:
            token: A token of this credential, for grants whose subject comes from it.

        Example:
            ```python
            assert flow.store_key() == (
                "sfoauth:jwt_bearer:login.salesforce.com:3MVG9...:etl@acme.com"
            )
            ```
        """
        where = self._login_url.split("://", 1)[1]
        return f"sfoauth:{self._key_grant}:{where}:{self._client_id}:{self._subject(token)}"

    _key_grant: ClassVar[str]

    async def revoke(
        self, token: Token | str, *, session: aiohttp.ClientSession | None = None
    ) -> bool:
        """Revoke a token at ``/services/oauth2/revoke``.

        Revoking a refresh token also ends every access token issued from it. Given a
        `Token`, its refresh token is revoked when it has one, else its access token.

        Args:
            token: The `Token`, or an access or refresh token string.
            session: The aiohttp session to send with, or ``None`` for a private one.

        Returns:
            ``True`` if revoked now, ``False`` if Salesforce no longer knew the token
            (already revoked or expired).

        Raises:
            TokenRequestError: The revoke endpoint failed otherwise.

        Example:
            ```python
            await flow.revoke(token)  # log out: the refresh token and its sessions end
            ```
        """
        if isinstance(token, Token):
            value = token.refresh_token or token.access_token
        else:
            value = _required("token", token)
        try:
            await post_form(
                session,
                endpoint_url(self._login_url, REVOKE_PATH),
                {"token": value},
                allow_empty=True,
            )
        except InvalidTokenError as exc:
            if exc.error == "invalid_token":  # unknown to Salesforce: already revoked
                return False
            raise
        return True

    async def introspect(
        self,
        token: Token | str,
        *,
        token_type_hint: Literal["access_token", "refresh_token"] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> Introspection:
        """Ask ``/services/oauth2/introspect`` whether a token is active, and until when.

        Needs the consumer secret. Tokens of the username-password flow cannot be
        introspected: Salesforce reports them inactive.

        Args:
            token: The `Token` (its access token is checked) or a token string.
            token_type_hint: ``"access_token"`` or ``"refresh_token"``.
            session: The aiohttp session to send with, or ``None`` for a private one.

        Raises:
            ConfigurationError: The flow has no client secret.
            TokenRequestError: The introspection call failed.

        Example:
            ```python
            info = await flow.introspect(token)
            print(info.active, info.exp)
            ```
        """
        if self._client_secret is None:
            raise ConfigurationError(
                f"{type(self).__name__} has no client_secret, and introspection needs the "
                f"consumer key and secret of the connected app."
            )
        value = token.access_token if isinstance(token, Token) else _required("token", token)
        form = {"token": value}
        if token_type_hint is not None:
            form["token_type_hint"] = token_type_hint
        elif isinstance(token, Token):
            form["token_type_hint"] = "access_token"
        authorization = self._authenticate(form)
        response = await post_form(
            session,
            endpoint_url(self._login_url, INTROSPECT_PATH),
            form,
            authorization=authorization,
        )
        return Introspection.from_response(response.data)

    async def userinfo(
        self, token: Token, *, session: aiohttp.ClientSession | None = None
    ) -> dict[str, Any]:
        """Get the OpenID Connect user info of the token's user.

        Args:
            token: A token with the ``openid``, ``id`` or ``profile`` scope.
            session: The aiohttp session to send with, or ``None`` for a private one.

        Raises:
            InvalidTokenError: Salesforce refused the access token.
            TokenRequestError: The call failed otherwise.

        Example:
            ```python
            info = await flow.userinfo(token)
            print(info["preferred_username"])
            ```
        """
        response = await get_json(
            session, endpoint_url(self._login_url, USERINFO_PATH), bearer=token.access_token
        )
        return dict(response.data)

    def verify_signature(self, token: Token) -> None:
        """Check the response ``signature``: base64(HMAC-SHA256(secret, id + issued_at)).

        It proves that the identity URL came from Salesforce for this app. JWT bearer
        responses carry no signature, so they cannot be verified.

        Raises:
            ConfigurationError: The flow has no client secret.
            SignatureMismatchError: The signature is missing or does not match.

        Example:
            ```python
            token = await flow.fetch_token()
            flow.verify_signature(token)
            ```
        """
        if self._client_secret is None:
            raise ConfigurationError(
                f"{type(self).__name__} has no client_secret: the signature is keyed by it."
            )
        issued_at = token.raw.get("issued_at")
        if not token.signature or not token.id or issued_at is None:
            raise SignatureMismatchError(
                "The token response has no signature, id or issued_at to verify (JWT bearer "
                "responses never carry a signature)."
            )
        message = f"{token.id}{issued_at}".encode()
        expected = base64.b64encode(
            hmac.new(self._client_secret.encode(), message, hashlib.sha256).digest()
        )
        if not hmac.compare_digest(expected, token.signature.encode()):
            raise SignatureMismatchError(
                "The token response's signature does not match its id and issued_at: the "
                "response may have been altered, or client_secret is not the secret of the "
                "app that issued the token."
            )
