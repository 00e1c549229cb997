"""`AuthorizationCodeFlow`: the web-server flow with PKCE, for apps that act for a user."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
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
    InstanceUrlError,
    InvalidCallbackError,
    StateMismatchError,
)
from ._flow import ClientAuth, _required
from ._hosts import DEFAULT_INSTANCE_HOSTS
from ._pkce import code_challenge, make_code_verifier
from ._refresh_token import RefreshingFlow
from ._token import DEFAULT_SESSION_TIMEOUT, Token
from ._untrusted import printable
from ._urls import DEFAULT_LOGIN_URL, endpoint_url, is_generic_login_host, is_loopback_host

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


Callback = str | URL | Mapping[str, str | Sequence[str]]
"""What `AuthorizationCodeFlow.parse_callback` takes: a URL, a query, or a parsed query."""

# Parameters that must appear at most once in a callback.
_SINGLE_PARAMS = frozenset({"code", "state", "error", "error_description", "iss"})


def _callback_parts(callback: Callback) -> tuple[list[tuple[str, str]], URL | None]:
    """Every (name, value) pair of the callback, repeats kept, and its URL when absolute."""
    if isinstance(callback, URL):
        callback = str(callback)
    if isinstance(callback, str):
        head, _, query = callback.partition("?")
        url = None
        if "://" in head:
            try:
                url = URL(head)
                url.port  # noqa: B018 - yarl checks the port only when it is read
            except ValueError:
                raise InvalidCallbackError(
                    f"The callback URL '{printable(head)}' cannot be parsed."
                ) from None
        elif "?" not in callback:
            query = head  # a bare query string
        return parse_qsl(query.partition("#")[0], keep_blank_values=True), url
    if not isinstance(callback, Mapping):
        raise InvalidCallbackError(
            f"parse_callback takes the callback URL, its query string or its parsed query, "
            f"got {type(callback).__name__}."
        )
    pairs: list[tuple[str, str]] = []
    # A MultiDict's items() yields every pair, repeats included; parse_qs gives lists.
    for name, value in callback.items():
        if isinstance(value, str):
            pairs.append((name, value))
        elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            pairs.extend((name, item) for item in value)
        else:
            raise InvalidCallbackError(
                f"The callback parameter '{printable(str(name))}' is neither a string nor a "
                f"list of strings."
            )
    return pairs, None


def _single_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The callback's OAuth parameters; `InvalidCallbackError` if one is repeated."""
    params: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        if name not in _SINGLE_PARAMS:
            continue
        if name in params:
            repeated.add(name)
        params[name] = value
    if repeated:
        raise InvalidCallbackError(
            f"The callback repeats {', '.join(sorted(repeated))}: which copy counts would "
            f"depend on the parser, so the callback may have been tampered with. Start the "
            f"login again."
        )
    return params


class AuthorizationCodeFlow(RefreshingFlow):
    """The web-server (authorization code) flow, always with PKCE S256.

    1. `authorization_url` gives the URL to send the user's browser to, with a fresh
       ``state`` and PKCE verifier.
    2. Salesforce redirects back to ``redirect_uri``; `parse_callback` checks the callback
       (no repeated parameter, the right URL, the ``state`` in constant time, ``iss``) and
       returns the code (or raises the typed error Salesforce sent).
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
        instance_hosts: Host patterns a token's ``instance_url`` must match
            (`DEFAULT_INSTANCE_HOSTS`: Salesforce's domains and loopback); see
            `Flow.check_instance_url`.

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
        # (callback_query: aiohttp's request.query, or the callback URL)
        code = flow.parse_callback(callback_query, state=request.state)
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
        instance_hosts: Iterable[str] = DEFAULT_INSTANCE_HOSTS,
    ) -> None:
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            login_url=login_url,
            client_auth=client_auth,
            instance_hosts=instance_hosts,
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

    def parse_callback(self, callback: Callback, *, state: str) -> str:
        """Check the redirect Salesforce sent back and return the authorization code.

        The checks, in order, each with its own error:

        1. No parameter among ``code``, ``state``, ``error``, ``error_description`` and
           ``iss`` appears twice (`InvalidCallbackError`): which copy would win depends on
           the parser, so a repeat is a sign of tampering. String, ``MultiDict`` and
           ``parse_qs`` inputs behave alike.
        2. A full callback URL goes to ``redirect_uri``: same scheme, host, port and path
           (`InvalidCallbackError`). Behind a proxy that rewrites them, pass the query
           (``request.query``) instead of the URL.
        3. ``state`` is the one sent, compared in constant time (`StateMismatchError`),
           before anything else in the callback is believed, errors included.
        4. ``iss``, when present (RFC 9207), is this flow's ``login_url`` (for
           ``login.salesforce.com`` and ``test.salesforce.com``, which hand users on to their
           org's My Domain, also an https Salesforce host) (`InvalidCallbackError`).
        5. ``error``: `AuthorizationDeniedError` for ``access_denied``, else
           `AuthorizationError`; their message shows Salesforce's text escaped and cut
           short, their ``error`` and ``description`` attributes keep it verbatim.

        Args:
            callback: The full callback URL (``str`` or ``yarl.URL``), its query string, or
                its parsed query: ``request.query`` in aiohttp, a ``dict``, or the dict of
                lists of ``urllib.parse.parse_qs``.
            state: The ``state`` of the `AuthorizationRequest` this callback answers.

        Returns:
            The authorization code, to pass to `exchange`.

        Raises:
            InvalidCallbackError: A repeated parameter, another redirect URI or issuer, or a
                parsed query whose values are not strings.
            StateMismatchError: ``state`` is missing or differs (compared in constant time).
            AuthorizationDeniedError: The user clicked Deny (``error=access_denied``).
            AuthorizationError: Salesforce sent another error, or no code.

        Example:
            ```python
            code = flow.parse_callback(request.query, state=saved_state)
            ```
        """
        if not state:
            raise StateMismatchError(
                "There is no state to check the callback against (the user's session may "
                "have been lost): start the login again."
            )
        pairs, url = _callback_parts(callback)
        params = _single_params(pairs)
        if url is not None:
            self._check_callback_url(url)
        received = params.get("state", "")
        # surrogatepass: a parsed query may hold lone surrogates, which must not crash this.
        if not hmac.compare_digest(
            received.encode("utf-8", "surrogatepass"), state.encode("utf-8", "surrogatepass")
        ):
            raise StateMismatchError(
                "The callback's state does not match the one sent with the authorization "
                "request: it may be forged (CSRF) or stale. Start the login again."
            )
        issuer = params.get("iss")
        if issuer is not None and not self._is_issuer(issuer):
            raise InvalidCallbackError(
                f"The callback's iss '{printable(issuer)}' is not the authorization server "
                f"this flow logs in with ({self.login_url}): it may come from another server "
                f"(a mix-up attack, RFC 9207). Start the login again."
            )
        error = params.get("error")
        if error:
            description = params.get("error_description")
            said = printable(error) + (f": {printable(description)}" if description else "")
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
        code = params.get("code")
        if not code:
            raise AuthorizationError("The callback has neither a code nor an error.")
        return code

    def _check_callback_url(self, url: URL) -> None:
        expected = URL(self._redirect_uri)
        got = (url.scheme.lower(), (url.host or "").lower(), url.port, url.path)
        if got != (
            expected.scheme.lower(),
            (expected.host or "").lower(),
            expected.port,
            expected.path,
        ):
            # Shown without the query: it holds the code.
            shown = printable(str(url.with_query(None).with_fragment(None)))
            raise InvalidCallbackError(
                f"The callback arrived at {shown}, not at redirect_uri {self._redirect_uri}: "
                f"compare scheme, host, port and path. Behind a proxy that rewrites them, "
                f"pass request.query instead of the URL."
            )

    def _is_issuer(self, issuer: str) -> bool:
        # RFC 9207 compares issuer strings as they are; only a trailing slash is forgiven.
        if issuer.rstrip("/") == self.login_url:
            return True
        if not is_generic_login_host(self.login_url):
            return False
        # UNCONFIRMED whether and how Salesforce sends iss. login.salesforce.com and
        # test.salesforce.com pass the user on to the org's My Domain, whose codes they still
        # redeem: an https Salesforce issuer without a path is then as good as theirs.
        try:
            normalized = self.check_instance_url(issuer)
        except InstanceUrlError:
            return False
        return normalized.startswith("https://") and URL(normalized).path in ("", "/")

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
