"""`AuthorizationCodeFlow`: the web-server flow with PKCE, for apps that act for a user."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, urlencode

import aiohttp
from yarl import URL

from ._errors import (
    AuthorizationDeniedError,
    AuthorizationError,
    ConfigurationError,
    StateMismatchError,
)
from ._flow import ClientAuth, _required
from ._pkce import code_challenge, make_code_verifier
from ._refresh_token import RefreshingFlow
from ._token import DEFAULT_SESSION_TIMEOUT, Token
from ._urls import DEFAULT_LOGIN_URL, endpoint_url, is_loopback_host

__all__ = ["AuthorizationCodeFlow", "AuthorizationRequest"]

AUTHORIZE_PATH = "/services/oauth2/authorize"

Prompt = Literal["login", "consent", "select_account", "login consent"]


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One authorization attempt: where to send the browser, and what to keep until callback.

    Keep ``state`` and ``code_verifier`` server-side (e.g. in the user's session) until the
    callback arrives; both are single use.

    Attributes:
        url: The Salesforce authorize URL to redirect the browser to.
        state: The anti-CSRF value the callback must echo.
        code_verifier: The PKCE verifier to send with the code exchange (a secret).

    Example:
        ```python
        request = flow.authorization_url()
        session["sf_state"], session["sf_verifier"] = request.state, request.code_verifier
        raise web.HTTPFound(request.url)
        ```
    """

    url: str
    state: str
    code_verifier: str = field(repr=False)


def _check_redirect_uri(redirect_uri: str) -> str:
    uri = URL(_required("redirect_uri", redirect_uri))
    if not uri.absolute or not uri.scheme:
        raise ConfigurationError(
            f"redirect_uri must be an absolute URL equal to the app's Callback URL, got "
            f"{redirect_uri!r}."
        )
    if uri.scheme == "http" and not is_loopback_host(uri.host):
        raise ConfigurationError(
            f"redirect_uri {redirect_uri!r} uses plain http://, which would expose the "
            f"authorization code. Use https:// (http is allowed only for localhost)."
        )
    return redirect_uri


class AuthorizationCodeFlow(RefreshingFlow):
    """The web-server (authorization code) flow, always with PKCE S256.

    1. `authorization_url` gives the URL to send the user's browser to, with a fresh
       ``state`` and PKCE verifier.
    2. Salesforce redirects back to ``redirect_uri``; `parse_callback` checks the ``state``
       in constant time and returns the code (or raises the typed error Salesforce sent).
    3. `exchange` trades the code for a `Token`; request the ``refresh_token`` scope to get
       a refresh token, with which ``fetch_token(previous=token)`` (and
       ``AsyncSession(flow, token=token)``) renew the session.

    One flow object serves every user of the app: it holds no user's tokens. Each user's
    token goes to `AsyncSession` (or `Refresher`), which keys the single flight by user.

    Args:
        client_id: The consumer key.
        redirect_uri: The app's Callback URL, exactly.
        client_secret: The consumer secret for confidential apps; ``None`` for public apps
            (then the PKCE verifier is the only proof, and no secret is sent).
        login_url: ``https://login.salesforce.com`` (default), ``https://test.salesforce.com``,
            a My Domain URL or an Experience Cloud site URL (its path is kept).
        scope: Scopes to request, e.g. ``"api refresh_token openid"``; ``None`` for the app's.
        client_auth: ``"body"`` (default) or ``"basic"``.

    Example:
        ```python
        flow = AuthorizationCodeFlow(
            client_id=key,
            client_secret=secret,
            redirect_uri="https://app.example.com/sf/callback",
            scope="api refresh_token",
        )
        request = flow.authorization_url()
        # ... the browser comes back to /sf/callback?code=...&state=...
        code = flow.parse_callback(callback_url, state=request.state)
        token = await flow.exchange(code, code_verifier=request.code_verifier)
        ```
    """

    _key_grant: ClassVar[str] = "authorization_code"

    def __init__(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        client_secret: str | None = None,
        login_url: str = DEFAULT_LOGIN_URL,
        scope: str | Iterable[str] | None = None,
        client_auth: ClientAuth = "body",
    ) -> None:
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            login_url=login_url,
            client_auth=client_auth,
        )
        self._redirect_uri = _check_redirect_uri(redirect_uri)
        if scope is None:
            self._scope: str | None = None
        else:
            words = scope.split() if isinstance(scope, str) else [str(s) for s in scope]
            self._scope = " ".join(dict.fromkeys(words)) or None

    @property
    def redirect_uri(self) -> str:
        """The app's Callback URL.

        Example:
            ```python
            print(flow.redirect_uri)
            ```
        """
        return self._redirect_uri

    def authorization_url(
        self,
        state: str | None = None,
        prompt: Prompt | None = None,
        login_hint: str | None = None,
        nonce: str | None = None,
    ) -> AuthorizationRequest:
        """Build the authorize URL, with PKCE S256 and a ``state`` (random unless given).

        Args:
            state: Your own opaque state; a random 32-byte value when ``None``.
            prompt: ``"login"``, ``"consent"``, ``"select_account"`` or ``"login consent"``.
            login_hint: A username to pre-fill on the login page.
            nonce: An OpenID Connect nonce, echoed in the ID token.

        Example:
            ```python
            request = flow.authorization_url(prompt="login", login_hint="ada@acme.com")
            ```
        """
        state = state if state is not None else secrets.token_urlsafe(32)
        _required("state", state)
        verifier = make_code_verifier()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self._redirect_uri,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
            "state": state,
        }
        optional = {"scope": self._scope, "prompt": prompt, "login_hint": login_hint}
        optional["nonce"] = nonce
        params.update({k: v for k, v in optional.items() if v is not None})
        url = f"{endpoint_url(self.login_url, AUTHORIZE_PATH)}?{urlencode(params)}"
        return AuthorizationRequest(url=url, state=state, code_verifier=verifier)

    def parse_callback(self, callback: str | Mapping[str, str], *, state: str) -> str:
        """Check the redirect Salesforce sent back and return the authorization code.

        Args:
            callback: The full callback URL, its query string, or its parsed query (e.g.
                ``request.query`` in aiohttp).
            state: The ``state`` of the `AuthorizationRequest` this callback answers.

        Returns:
            The authorization code, to pass to `exchange`.

        Raises:
            AuthorizationDeniedError: The user clicked Deny (``error=access_denied``).
            AuthorizationError: Salesforce sent another error, or no code.
            StateMismatchError: ``state`` is missing or differs (compared in constant time).

        Example:
            ```python
            code = flow.parse_callback(str(request.url), state=saved_state)
            ```
        """
        if not state:
            raise StateMismatchError(
                "There is no state to check the callback against (the user's session may "
                "have been lost): start the login again."
            )
        if isinstance(callback, str):
            query = callback.split("?", 1)[1] if "?" in callback else callback
            params: Mapping[str, str] = dict(parse_qsl(query.split("#", 1)[0]))
        else:
            params = callback
        error = params.get("error")
        if error:
            description = params.get("error_description")
            said = f"{error}: {description}" if description else error
            if error in ("access_denied", "access-denied"):
                raise AuthorizationDeniedError(
                    f"The user denied access to the app ({said}).",
                    error=error,
                    description=description,
                )
            raise AuthorizationError(
                f"Salesforce's authorize step failed with {said}. Check the app's callback "
                f"URL, scopes and PKCE settings.",
                error=error,
                description=description,
            )
        received = params.get("state") or ""
        if not hmac.compare_digest(received.encode(), state.encode()):
            raise StateMismatchError(
                "The callback's state does not match the one sent with the authorization "
                "request: it may be forged (CSRF) or stale. Start the login again."
            )
        code = params.get("code")
        if not code:
            raise AuthorizationError("The callback has neither a code nor an error.")
        return code

    async def exchange(
        self,
        code: str,
        *,
        code_verifier: str,
        session: aiohttp.ClientSession | None = None,
        session_timeout: timedelta | None = DEFAULT_SESSION_TIMEOUT,
    ) -> Token:
        """Trade an authorization code for a token (codes are single use and short-lived).

        Args:
            code: The code from `parse_callback`.
            code_verifier: The `AuthorizationRequest.code_verifier` of the same request.
            session: The aiohttp session to send with, or ``None`` for a private one.
            session_timeout: The org's session timeout, which sets `Token.expires_at`.

        Raises:
            InvalidGrantError: The code is expired, reused or from another request.
            InvalidRequestError: The verifier does not match the challenge.
            TokenRequestError: The token endpoint failed otherwise.

        Example:
            ```python
            token = await flow.exchange(code, code_verifier=request.code_verifier)
            ```
        """
        form = {
            "grant_type": "authorization_code",
            "code": _required("code", code),
            "redirect_uri": self._redirect_uri,
            "code_verifier": _required("code_verifier", code_verifier),
        }
        return await self._post_token_form(form, session, session_timeout)

    def _subject(self, token: Token | None) -> str:
        if token is None or token.org_id is None or token.user_id is None:
            raise ConfigurationError(
                "The store key of an AuthorizationCodeFlow names the user, which only a "
                "token tells: pass the token from exchange() (AsyncSession(flow, token=...)) "
                "or an explicit store_key."
            )
        return f"{token.org_id}/{token.user_id}"
