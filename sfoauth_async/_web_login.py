"""`WebLogin`: logging users in with Salesforce, for any web framework.

The framework integrations (``sfoauth_async.starlette``, ``sfoauth_async.aiohttp_web``) turn
requests into the few values this needs (the query string, the cookies, a few headers) and
its `Reply` into their own responses. What it does:

1. **Start** (``GET login_path``): a fresh ``state`` and PKCE verifier go into the sealed
   pending-login cookie (`LoginCookies`), and the browser to Salesforce's authorize page.
2. **Finish** (``GET callback_path``): the pending login is opened (10 minutes, this app's
   key), the callback checked against its ``state`` (`AuthorizationCodeFlow.parse_callback`),
   the login recorded as used (`replay_record_for`), the code exchanged, the token saved for
   every process (`UserSessions.connect`), and the user cookie set. Any failure is a page
   that says what happened, with nothing saved.
3. **The current user** (`WebLogin.user_session`): the user cookie names the user; their
   session is held for the request. Nobody logged in: a redirect to the login page for
   browsers, a 401 JSON answer for API clients (by the ``Accept`` header).
4. **Logout** (``POST logout_path``): `UserSessions.logout` (revoke, forget everywhere,
   close) and the user cookie removed. ``GET`` shows a button that posts it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn
from urllib.parse import quote, urlencode

from yarl import URL

from ._errors import (
    AuthorizationDeniedError,
    AuthorizationError,
    ConfigurationError,
    CredentialForgottenError,
    InactiveUserError,
    InvalidCallbackError,
    InvalidGrantError,
    PendingLoginError,
    RefreshCooldownError,
    RefreshOutcomeUnknownError,
    SFOAuthError,
    StateMismatchError,
    StoreError,
    TokenRequestError,
)
from ._login_cookies import PENDING_LOGIN_LIFETIME, LoginCookies, PendingLogin, SecretKey
from ._login_pages import logged_out_page, login_problem_page, logout_form_page
from ._login_replay import login_digest, replay_record_for
from ._session import AsyncSession
from ._untrusted import printable
from ._user_sessions import UserSessions

_LOG_IN_AGAIN = (
    CredentialForgottenError,
    InvalidGrantError,
    InactiveUserError,
    RefreshOutcomeUnknownError,
    AuthorizationError,
)

_TRY_LATER = (TokenRequestError, StoreError, RefreshCooldownError)

__all__ = [
    "PENDING_COOKIE",
    "USER_COOKIE",
    "Reply",
    "WebLogin",
    "safe_next",
    "wants_html",
]

log = logging.getLogger("sfoauth_async")

PENDING_COOKIE = "sfoauth_login"
USER_COOKIE = "sfoauth_user"
DEFAULT_COOKIE_MAX_AGE = timedelta(days=30)
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"
_NO_STORE = ("Cache-Control", "no-store")
_MAX_NEXT = 2000
# The replay record outlives the pending login it guards by a little clock skew.
_REPLAY_TTL_S = PENDING_LOGIN_LIFETIME.total_seconds() + 120.0
# Sec-Fetch-Site values of a request made by this site itself, or typed by the user.
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: status, body, its content type, and headers (``Set-Cookie`` too).

    Example:
        ```python
        reply = login.start(None)
        assert reply.status == 303
        ```
    """

    status: int
    body: str = ""
    content_type: str = _HTML
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or ``None``.

        Example:
            ```python
            print(reply.header("Location"))
            ```
        """
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


def wants_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers a page (a browser) to JSON (an API client).

    Example:
        ```python
        assert wants_html("text/html,application/xhtml+xml,*/*;q=0.8")
        assert not wants_html("application/json")
        ```
    """
    if not accept:
        return False
    html_q = json_q = 0.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
        elif media == _JSON:
            json_q = max(json_q, q)
    return html_q > 0 and html_q >= json_q


def safe_next(path: str | None) -> str | None:
    r"""``path`` if it is a path of this site to return to after login, else ``None``.

    Only ``/...`` paths: never ``//host``, ``/\\host``, a scheme or a control character,
    so that a login link cannot send the user to another site.

    Example:
        ```python
        assert safe_next("/reports?year=2026") == "/reports?year=2026"
        assert safe_next("//evil.example") is None
        ```
    """
    if (
        not path
        or len(path) > _MAX_NEXT
        or not path.startswith("/")
        or path.startswith(("//", "/\\"))
        or not path.isprintable()
        or "\\" in path
    ):
        return None
    return path


def _check_path(name: str, path: str) -> str:
    if safe_next(path) is None or "?" in path or "#" in path or " " in path:
        raise ConfigurationError(
            f"{name} must be a path of this site such as '/login/salesforce', got "
            f"'{printable(str(path))}'."
        )
    return path


class WebLogin:
    """Log users in with Salesforce, keep track of who is who, log them out.

    Args:
        users: The app's `UserSessions`; its flow's ``redirect_uri`` must end in
            ``callback_path``.
        secret_key: At least 32 random bytes (or a list, to rotate keys); every worker of
            the app needs the same one.
        login_path: Where a login starts (``?next=/path`` returns there afterwards).
        callback_path: The path of the flow's ``redirect_uri``.
        logout_path: ``POST`` logs out; ``GET`` shows a button that does.
        after_login: Where the browser goes after a login without ``next``.
        cookie_max_age: How long a browser stays logged in to the app.

    Raises:
        ConfigurationError: A path is not a path of this site, the paths collide, the
            callback path is not the flow's, or the secret key is too short.

    Example:
        ```python
        login = WebLogin(users, secret_key=os.environ["APP_SECRET_KEY"])
        reply = login.start(next_path="/accounts")
        ```
    """

    def __init__(
        self,
        users: UserSessions,
        *,
        secret_key: SecretKey,
        login_path: str = "/login/salesforce",
        callback_path: str = "/login/salesforce/callback",
        logout_path: str = "/logout/salesforce",
        after_login: str = "/",
        cookie_max_age: timedelta = DEFAULT_COOKIE_MAX_AGE,
    ) -> None:
        self.users = users
        self.login_path = _check_path("login_path", login_path)
        self.callback_path = _check_path("callback_path", callback_path)
        self.logout_path = _check_path("logout_path", logout_path)
        self.after_login = _check_path("after_login", after_login)
        if len({login_path, callback_path, logout_path}) != 3:
            raise ConfigurationError(
                "login_path, callback_path and logout_path must be three different paths."
            )
        redirect = URL(users.flow.redirect_uri)
        if redirect.path != callback_path:
            raise ConfigurationError(
                f"The flow's redirect_uri ({users.flow.redirect_uri}) must point at "
                f"callback_path ({callback_path}): Salesforce sends the browser back there."
            )
        age: object = cookie_max_age  # checked as given: callers may not type-check
        if not isinstance(age, timedelta) or age <= timedelta(0):
            raise ConfigurationError(
                f"cookie_max_age must be a positive timedelta, got {cookie_max_age!r}."
            )
        self.cookie_max_age = cookie_max_age
        self._cookies = LoginCookies(secret_key)
        self._replay = replay_record_for(users.store)
        # Served over https (the callback is): cookies go over https only.
        self._secure = redirect.scheme == "https"

    # -- cookies --------------------------------------------------------------------------

    def _cookie(self, name: str, value: str, *, path: str, max_age_s: int) -> tuple[str, str]:
        # Our values are Fernet tokens (URL-safe base64): nothing to quote.
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age_s}"]
        if max_age_s == 0:
            parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
        parts += ["HttpOnly", "SameSite=Lax"]
        if self._secure:
            parts.append("Secure")
        return ("Set-Cookie", "; ".join(parts))

    def _clear(self, name: str, path: str) -> tuple[str, str]:
        return self._cookie(name, "", path=path, max_age_s=0)

    def user_key(self, cookies: Mapping[str, str]) -> str | None:
        """The user this browser is logged in as, from its user cookie, or ``None``.

        Example:
            ```python
            user_key = login.user_key(request.cookies)
            ```
        """
        return self._cookies.open_user(cookies.get(USER_COOKIE), max_age=self.cookie_max_age)

    # -- replies --------------------------------------------------------------------------

    def _page(self, status: int, html: str, *extra: tuple[str, str]) -> Reply:
        return Reply(status, html, _HTML, (_NO_STORE, *extra))

    def login_required(
        self, *, accept: str | None, method: str, path_qs: str, clear_cookie: bool
    ) -> Reply:
        """Nobody is logged in: browsers go to the login page, API clients get a 401.

        Example:
            ```python
            reply = login.login_required(
                accept="application/json", method="GET", path_qs="/api", clear_cookie=False
            )
            assert reply.status == 401
            ```
        """
        extra = [("Vary", "Accept"), _NO_STORE]
        if clear_cookie:
            extra.append(self._clear(USER_COOKIE, "/"))
        if wants_html(accept):
            target = self.login_path
            back = safe_next(path_qs) if method in ("GET", "HEAD") else None
            if back is not None:
                target += "?" + urlencode({"next": back}, quote_via=quote)
            return Reply(303, "", _HTML, (("Location", target), *extra))
        body = json.dumps(
            {
                "error": "login_required",
                "message": "Log in with Salesforce first.",
                "login_url": self.login_path,
            }
        )
        challenge = (
            f'Cookie realm="Salesforce", form-action="{self.login_path}", '
            f'cookie-name="{USER_COOKIE}"'
        )
        return Reply(401, body, _JSON, (("WWW-Authenticate", challenge), *extra))

    def unavailable(self, *, accept: str | None, detail: str) -> Reply:
        """Salesforce or the token store cannot be reached now: a 503, page or JSON.

        Example:
            ```python
            reply = login.unavailable(accept=None, detail="Redis is down")
            ```
        """
        extra = (("Retry-After", "30"), ("Vary", "Accept"), _NO_STORE)
        if wants_html(accept):
            html = login_problem_page(
                "unavailable",
                title="Salesforce is not reachable",
                message="Your Salesforce session could not be checked right now. Try again "
                "in a minute.",
                detail=detail,
                login_path=self.login_path,
            )
            return Reply(503, html, _HTML, extra)
        body = json.dumps({"error": "salesforce_unavailable", "message": detail})
        return Reply(503, body, _JSON, extra)

    # -- the login --------------------------------------------------------------------------

    def start(self, next_path: str | None) -> Reply:
        """Send the browser to Salesforce, keeping state and verifier in the pending cookie.

        Args:
            next_path: Where to go after the login (``?next=``); ignored unless it is a
                path of this site.

        Example:
            ```python
            reply = login.start(request.query.get("next"))
            ```
        """
        request = self.users.flow.authorization_url()
        pending = PendingLogin(
            state=request.state,
            code_verifier=request.code_verifier,
            next_path=safe_next(next_path),
        )
        cookie = self._cookie(
            PENDING_COOKIE,
            self._cookies.seal_pending(pending),
            path=self.callback_path,
            max_age_s=int(PENDING_LOGIN_LIFETIME.total_seconds()),
        )
        return Reply(303, "", _HTML, (("Location", request.url), _NO_STORE, cookie))

    async def finish(self, query: str, cookies: Mapping[str, str]) -> Reply:
        """Check the callback, exchange the code, save the token, set the user cookie.

        Every failure is a page (never a traceback) and saves nothing; the pending login is
        used up either way.

        Args:
            query: The callback's raw query string.
            cookies: The request's cookies.

        Example:
            ```python
            reply = await login.finish(request.query_string, request.cookies)
            ```
        """
        try:
            return await self._finish(query, cookies)
        except Exception as exc:  # noqa: BLE001 - every failure is a page; the log has it
            return self._failed(exc)

    def _failed(self, exc: Exception) -> Reply:
        """The page of a login that failed at the callback."""
        detail: str | None = str(exc)
        if isinstance(exc, AuthorizationDeniedError):
            log.info("Login declined at Salesforce: %s", exc)
            status, name, title = 403, "denied", "Access not allowed"
            message = (
                "You declined to give this app access to your Salesforce account, so nothing "
                "was connected."
            )
            detail = None
        elif isinstance(exc, PendingLoginError | StateMismatchError | InvalidCallbackError):
            reason = exc.reason if isinstance(exc, PendingLoginError) else "state"
            log.warning("Login refused at the callback (%s): %s", reason, exc)
            status, name, title = 400, reason, "This login cannot be finished"
            message = (
                "The answer from Salesforce does not belong to a login started in this "
                "browser in the last 10 minutes, or it was used already. Nothing was "
                "connected; start the login again."
            )
        elif isinstance(exc, AuthorizationError):
            log.warning("Salesforce refused the login: %s", exc)
            status, name, title = 400, "salesforce-error", "Salesforce refused the login"
            message = "Salesforce answered with an error, so nothing was connected."
        elif isinstance(exc, SFOAuthError) and exc.transient:
            log.warning("Login failed for now: %s", exc)
            status, name, title = 503, "unavailable", "Salesforce is not reachable"
            message = (
                "The login could not be finished right now; nothing was connected. Try "
                "again in a minute."
            )
        elif isinstance(exc, SFOAuthError):
            log.error("Login failed: %s", exc)
            status, name, title = 502, "salesforce-error", "Salesforce refused the login"
            message = (
                "The authorization could not be turned into a session, so nothing was connected."
            )
        else:
            log.error("Login failed at the callback", exc_info=exc)
            status, name, title = 500, "error", "Something went wrong"
            message = (
                "The login could not be finished because of an error in this app; nothing "
                "was connected."
            )
            detail = None
        html = login_problem_page(
            name, title=title, message=message, detail=detail, login_path=self.login_path
        )
        return self._page(status, html, self._clear(PENDING_COOKIE, self.callback_path))

    async def _finish(self, query: str, cookies: Mapping[str, str]) -> Reply:
        pending = self._cookies.open_pending(cookies.get(PENDING_COOKIE))
        flow = self.users.flow
        code = flow.parse_callback(query, state=pending.state)
        if not await self._replay.first_use(login_digest(pending.state), ttl_s=_REPLAY_TTL_S):
            raise PendingLoginError(
                "This login was finished already: a login is accepted once.",
                reason="replayed",
            )
        token = await flow.exchange(code, code_verifier=pending.code_verifier)
        user_key = await self.users.connect(token)
        log.info("User %s logged in with Salesforce", user_key)
        user = self._cookie(
            USER_COOKIE,
            self._cookies.seal_user(user_key),
            path="/",
            max_age_s=int(self.cookie_max_age.total_seconds()),
        )
        return Reply(
            303,
            "",
            _HTML,
            (
                ("Location", pending.next_path or self.after_login),
                _NO_STORE,
                self._clear(PENDING_COOKIE, self.callback_path),
                user,
            ),
        )

    # -- the current user -------------------------------------------------------------------

    @asynccontextmanager
    async def user_session(
        self,
        cookies: Mapping[str, str],
        *,
        accept: str | None,
        method: str,
        path_qs: str,
        refuse: Callable[[Reply], NoReturn],
    ) -> AsyncIterator[AsyncSession]:
        """Hold the logged-in user's session for a request, or ``refuse`` with the reply.

        The user's token is checked first (`AsyncSession.get_token`: at once when fresh):
        a logout elsewhere, a revoked refresh token, a user deactivated or a refresh whose
        outcome is unknown mean "log in again"; Salesforce or the store being unreachable
        is a 503.

        Args:
            cookies: The request's cookies.
            accept: Its ``Accept`` header: pages for browsers, JSON for API clients.
            method: Its method (only a ``GET`` returns to its page after logging in).
            path_qs: Its path and query, to return to.
            refuse: Raises the framework's exception carrying the reply.

        Example:
            ```python
            async with login.user_session(
                request.cookies, accept=accept, method="GET", path_qs="/", refuse=refuse
            ) as sf:
                ...
            ```
        """
        user_key = self.user_key(cookies)
        if user_key is None:
            refuse(
                self.login_required(
                    accept=accept,
                    method=method,
                    path_qs=path_qs,
                    clear_cookie=USER_COOKIE in cookies,
                )
            )
        async with self.users.use(user_key) as sf:
            where = (user_key, accept, method, path_qs)
            try:
                await sf.get_token()
            except SFOAuthError as exc:
                self._refuse_for(exc, where, refuse)
            try:
                yield sf
            except SFOAuthError as exc:
                # The same, met by the handler: a logout elsewhere, a revoked grant.
                self._refuse_for(exc, where, refuse)

    def _refuse_for(
        self,
        exc: SFOAuthError,
        where: tuple[str, str | None, str, str],
        refuse: Callable[[Reply], NoReturn],
    ) -> NoReturn:
        """Refuse a request whose user's token failed: log in again, or try later."""
        user_key, accept, method, path_qs = where
        if isinstance(exc, _LOG_IN_AGAIN):
            # Logged out elsewhere, grant revoked or expired, user deactivated, a refresh
            # token that may be spent, or no refresh token under the user's key.
            log.info("User %s must log in again: %s", user_key, exc)
            refuse(
                self.login_required(
                    accept=accept, method=method, path_qs=path_qs, clear_cookie=True
                )
            )
        if exc.transient and isinstance(exc, _TRY_LATER):
            log.warning("Could not get the token of user %s: %s", user_key, exc)
            refuse(self.unavailable(accept=accept, detail=str(exc)))
        raise exc

    # -- logout ---------------------------------------------------------------------------

    def logout_form(self) -> Reply:
        """``GET logout_path``: a page whose button posts the logout.

        Example:
            ```python
            reply = login.logout_form()
            ```
        """
        return self._page(200, logout_form_page(self.logout_path))

    async def logout(
        self, cookies: Mapping[str, str], *, fetch_site: str | None, accept: str | None
    ) -> Reply:
        """``POST logout_path``: log the user out everywhere and remove the user cookie.

        A post from another site (``Sec-Fetch-Site: cross-site``) is refused: a page
        elsewhere must not revoke the user's Salesforce access. (Browsers without that
        header do not send the ``SameSite=Lax`` user cookie with it either.)

        Example:
            ```python
            reply = await login.logout(
                request.cookies, fetch_site=request.headers.get("Sec-Fetch-Site"), accept=None
            )
            ```
        """
        if fetch_site is not None and fetch_site.lower() not in _SAME_SITE_FETCH:
            return self._page(
                403,
                login_problem_page(
                    "forbidden",
                    title="Logout refused",
                    message="Another site asked to log you out; you are still logged in.",
                    detail=None,
                    login_path=self.login_path,
                ),
            )
        user_key = self.user_key(cookies)
        detail = None
        if user_key is not None:
            try:
                await self.users.logout(user_key)
                log.info("User %s logged out", user_key)
            except SFOAuthError as exc:
                log.warning("Logout of user %s was incomplete: %s", user_key, exc)
                detail = f"The logout may be incomplete: {exc}"
        clear = self._clear(USER_COOKIE, "/")
        if wants_html(accept):
            html = logged_out_page(login_path=self.login_path, detail=detail)
            return self._page(200, html, clear)
        body = json.dumps({"logged_out": True, "message": detail})
        return Reply(200, body, _JSON, (_NO_STORE, clear))
