"""`setup_salesforce_login` and `salesforce_session`: Salesforce login in an aiohttp.web app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import NoReturn

from aiohttp import web
from multidict import CIMultiDict

from ._login_cookies import SecretKey
from ._session import AsyncSession
from ._user_sessions import UserSessions
from ._web_login import DEFAULT_COOKIE_MAX_AGE, Reply, WebLogin

__all__ = ["salesforce_session", "salesforce_user_key", "setup_salesforce_login"]

_LOGIN = web.AppKey("sfoauth_async.login", WebLogin)
_HELD = web.RequestKey("sfoauth_async.held", AsyncExitStack)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _parts(reply: Reply) -> tuple[CIMultiDict[str], str, str]:
    content_type, _, _ = reply.content_type.partition(";")  # aiohttp adds the charset
    return CIMultiDict(reply.headers), reply.body, content_type


def _response(reply: Reply) -> web.Response:
    headers, text, content_type = _parts(reply)
    return web.Response(status=reply.status, text=text, content_type=content_type, headers=headers)


class _Refused(web.HTTPException):
    """A `Reply` raised from a handler: "log in first", or "Salesforce is unreachable"."""

    def __init__(self, reply: Reply) -> None:
        self.status_code = reply.status
        headers, text, content_type = _parts(reply)
        super().__init__(headers=headers, text=text, content_type=content_type)


def _refuse(reply: Reply) -> NoReturn:
    raise _Refused(reply)


@web.middleware
async def _hold_sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The sessions salesforce_session() hands out are held until the handler returns.
    async with AsyncExitStack() as held:
        request[_HELD] = held
        return await handler(request)


def setup_salesforce_login(
    app: web.Application,
    users: UserSessions,
    *,
    secret_key: SecretKey,
    login_path: str = "/login/salesforce",
    callback_path: str = "/login/salesforce/callback",
    logout_path: str = "/logout/salesforce",
    after_login: str = "/",
    cookie_max_age: timedelta = DEFAULT_COOKIE_MAX_AGE,
) -> None:
    """Add Salesforce login to an aiohttp.web app: its routes, and `salesforce_session`.

    Routes: ``GET login_path`` (``?next=/path`` comes back there), ``GET callback_path``
    (the flow's ``redirect_uri``), ``POST logout_path`` (and ``GET``, a page with a logout
    button). Also adds a middleware that holds the sessions `salesforce_session` gives out
    until their request ends. Open the `UserSessions` for the app's life (``cleanup_ctx``).

    The options, the cookies and the answers are those of
    `sfoauth_async.starlette.SalesforceLogin`; ``docs/web.md`` describes them.

    Args:
        app: The application (before it starts).
        users: The app's `UserSessions`.
        secret_key: The cookies' key (32 random bytes or more; a list to rotate).
        login_path: The login route.
        callback_path: The callback route: the path of the flow's ``redirect_uri``.
        logout_path: The logout route.
        after_login: The page after a login that named no ``next``.
        cookie_max_age: The user cookie's lifetime.

    Raises:
        ConfigurationError: A path is not a path of this site, the callback path is not the
            flow's, or the secret key is too short.

    Example:
        ```python
        app = web.Application()
        users = UserSessions(flow, store=store)
        setup_salesforce_login(app, users, secret_key=os.environ["APP_SECRET_KEY"])


        async def open_users(app):
            async with users:
                yield


        app.cleanup_ctx.append(open_users)
        ```
    """
    login = WebLogin(
        users,
        secret_key=secret_key,
        login_path=login_path,
        callback_path=callback_path,
        logout_path=logout_path,
        after_login=after_login,
        cookie_max_age=cookie_max_age,
    )
    app[_LOGIN] = login

    async def start(request: web.Request) -> web.Response:
        return _response(login.start(request.query.get("next")))

    async def finish(request: web.Request) -> web.Response:
        return _response(await login.finish(request.query_string, request.cookies))

    async def logout_form(_: web.Request) -> web.Response:
        return _response(login.logout_form())

    async def logout(request: web.Request) -> web.Response:
        reply = await login.logout(
            request.cookies,
            fetch_site=request.headers.get("Sec-Fetch-Site"),
            accept=request.headers.get("Accept"),
        )
        return _response(reply)

    app.router.add_get(login_path, start, name="salesforce_login", allow_head=False)
    app.router.add_get(callback_path, finish, name="salesforce_callback", allow_head=False)
    app.router.add_get(logout_path, logout_form, allow_head=False)
    app.router.add_post(logout_path, logout, name="salesforce_logout")
    app.middlewares.append(_hold_sessions)


def _login_of(request: web.Request) -> WebLogin:
    login = request.config_dict.get(_LOGIN)
    if login is None:
        raise RuntimeError(
            "This app has no Salesforce login: call setup_salesforce_login(app, users, ...) "
            "when building it."
        )
    return login


def salesforce_user_key(request: web.Request) -> str | None:
    """Who this browser is logged in as (from the signed cookie), or ``None``.

    Example:
        ```python
        if salesforce_user_key(request) is None:
            raise web.HTTPSeeOther("/login/salesforce")
        ```
    """
    return _login_of(request).user_key(request.cookies)


async def salesforce_session(request: web.Request) -> AsyncSession:
    """The logged-in user's `AsyncSession`, held until the request's handler returns.

    Raises:
        aiohttp.web.HTTPException: 303 to the login page (browsers), 401 JSON (API
            clients), or 503 when Salesforce or the store cannot be reached: let it
            propagate, aiohttp sends it.
        RuntimeError: The app has no `setup_salesforce_login`.

    Example:
        ```python
        async def limits(request: web.Request) -> web.Response:
            sf = await salesforce_session(request)
            async with sf.get("limits/") as resp:
                return web.json_response(await resp.json())
        ```
    """
    login = _login_of(request)
    try:
        held = request[_HELD]
    except KeyError:
        raise RuntimeError(
            "salesforce_session() works in the app given to setup_salesforce_login() (and "
            "its sub-apps), whose middleware holds the session for the request."
        ) from None
    path_qs = request.rel_url.path_qs
    return await held.enter_async_context(
        login.user_session(
            request.cookies,
            accept=request.headers.get("Accept"),
            method=request.method,
            path_qs=path_qs,
            refuse=_refuse,
        )
    )
