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
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote_plus

import aiohttp
from yarl import URL

from ._endpoint import get_json, post_form
from ._errors import (
    ConfigurationError,
    InstanceUrlError,
    InvalidTokenError,
    SignatureMismatchError,
)
from ._hosts import DEFAULT_INSTANCE_HOSTS, InstanceHosts
from ._introspection import Introspection
from ._token import DEFAULT_SESSION_TIMEOUT, Token
from ._untrusted import printable
from ._urls import endpoint_url, normalize_instance_url, normalize_login_url

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

    Every token a flow builds has an ``instance_url`` on one of its `instance_hosts`
    (`DEFAULT_INSTANCE_HOSTS`, Salesforce's own domains and loopback, unless the
    ``instance_hosts=`` option of the grant says otherwise); any other token is refused with
    `InstanceUrlError`, since every API call would carry its bearer token there.

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
        instance_hosts: Iterable[str] = DEFAULT_INSTANCE_HOSTS,
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
        self._instance_hosts = InstanceHosts(instance_hosts)

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
    def instance_hosts(self) -> tuple[str, ...]:
        """The host patterns a token's ``instance_url`` must match (see `check_instance_url`).

        Example:
            ```python
            assert flow.instance_hosts == DEFAULT_INSTANCE_HOSTS
            ```
        """
        return self._instance_hosts.patterns

    def check_instance_url(self, url: str) -> str:
        """Check an ``instance_url`` against this flow's rules; return it normalized.

        The same check every token the flow builds passes: https only (plain http only to
        ``localhost``, ``127.0.0.0/8`` or ``::1``), no user info, query, fragment or control
        characters, and a host that matches `instance_hosts`. Use it for tokens that come
        from elsewhere, e.g. a token store.

        Args:
            url: An ``instance_url``.

        Returns:
            The normalized URL (lower-case scheme and host, no default port or trailing
            slash), as `Token.instance_url` holds it.

        Raises:
            InstanceUrlError: The URL is unusable or its host is not allowed.

        Example:
            ```python
            assert flow.check_instance_url("https://ACME.my.salesforce.com/") == (
                "https://acme.my.salesforce.com"
            )
            ```
        """
        return self._checked_instance_url(url, endpoint=None, status=None)

    def _checked_instance_url(self, url: str, *, endpoint: str | None, status: int | None) -> str:
        try:
            normalized = normalize_instance_url(url)
        except ConfigurationError as exc:
            raise InstanceUrlError(
                f"{exc} Every API call and its bearer token would go there, so the token is "
                f"refused.",
                instance_url=url,
                status=status,
                url=endpoint,
            ) from None
        host = URL(normalized).raw_host or ""
        if not self._instance_hosts.allows(host):
            raise InstanceUrlError(
                f"The token's instance_url '{printable(normalized)}' is not on a host this "
                f"flow allows (instance_hosts), so its bearer token is not sent there. "
                f"Salesforce's own domains and loopback are allowed by default; if this host "
                f"serves your org, add it: instance_hosts=(*DEFAULT_INSTANCE_HOSTS, "
                f"'{printable(host)}').",
                instance_url=url,
                status=status,
                url=endpoint,
            )
        return normalized

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
            # Built by hand: aiohttp 3.14 deprecates BasicAuth and the auth= argument. RFC 6749
            # 2.3.1 form-encodes each half first, so a ":" or "+" in the secret survives.
            pair = f"{quote_plus(self._client_id)}:{quote_plus(self._client_secret)}"
            return "Basic " + base64.b64encode(pair.encode()).decode("ascii")
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
        token = Token.from_response(
            response.data,
            received_at=response.received_at,
            session_timeout=session_timeout,
            url=self.token_url,
        )
        self._checked_instance_url(
            token.instance_url, endpoint=self.token_url, status=response.status
        )
        return token

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
            InstanceUrlError: The token's ``instance_url`` is unusable or not on an allowed
                host (see `check_instance_url`).
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
        return self._store_key_of(self._subject(token))

    def _store_key_of(self, subject: str) -> str:
        # Also for UserSessions, whose user keys are the subjects of authorization-code keys.
        where = self._login_url.split("://", 1)[1]
        return f"sfoauth:{self._key_grant}:{where}:{self._client_id}:{subject}"

    _key_grant: ClassVar[str]

    async def revoke(
        self, token: Token | str, *, session: aiohttp.ClientSession | None = None
    ) -> bool:
        """Revoke a token at ``/services/oauth2/revoke``.

        Revoking a refresh token also ends every access token issued from it. Given a
        `Token`, its refresh token is revoked when it has one, else its access token.

        A flow with a consumer secret authenticates the client, as RFC 7009 2.1 asks of
        confidential clients: in the form or with HTTP Basic, as ``client_auth`` says. A
        flow without one (JWT bearer, a public app) sends the token alone.

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
        form = {"token": value}
        authorization = self._authenticate(form) if self._client_secret is not None else None
        try:
            await post_form(
                session,
                endpoint_url(self._login_url, REVOKE_PATH),
                form,
                authorization=authorization,
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
