"""`SalesforceLogin`: log users in with Salesforce in a Starlette or FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import NoReturn

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._login_cookies import SecretKey
from ._session import AsyncSession
from ._user_sessions import UserSessions
from ._web_login import DEFAULT_COOKIE_MAX_AGE, Reply, WebLogin

__all__ = ["SalesforceLogin"]


def _response(reply: Reply) -> Response:
    response = Response(reply.body, status_code=reply.status, media_type=reply.content_type)
    for name, value in reply.headers:
        response.headers.append(name, value)
    return response


class _Refusal(HTTPException):
    # An HTTPException, so that Starlette and FastAPI answer it even without our handler
    # (text, or FastAPI's {"detail": ...}, and one value per header); with the handler of
    # `SalesforceLogin.exception_handlers` the reply goes out whole: JSON, every cookie.
    def __init__(self, reply: Reply) -> None:
        detail = (
            "Log in with Salesforce first."
            if reply.status != 503
            else "Salesforce or the token store cannot be reached now; try again later."
        )
        super().__init__(reply.status, detail=detail, headers=dict(reply.headers))
        self.reply = reply


def _refuse(reply: Reply) -> NoReturn:
    raise _Refusal(reply)


async def _answer_refusal(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refusal)
    return _response(exc.reply)


def _path_qs(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


class SalesforceLogin:
    """Salesforce login for Starlette and FastAPI: routes to mount and the current user's session.

    Mount `routes` in the app and open the `UserSessions` in its lifespan. Routes:
    ``GET login_path`` (``?next=/path`` comes back there), ``GET callback_path`` (the
    flow's ``redirect_uri``), ``POST logout_path`` (and ``GET``, a page with a logout
    button). `session` is a FastAPI dependency giving the logged-in user's `AsyncSession`,
    held for the request; for plain Starlette endpoints, ``async with
    login.user_session(request) as sf``. When nobody is logged in, browsers are
    redirected to the login page (``303``) and API clients get a ``401`` JSON answer, by the
    ``Accept`` header; give the app `exception_handlers` so that the answer goes out whole.

    The user is identified by the ``sfoauth_user`` cookie, set at the callback: encrypted
    and signed with a key derived from ``secret_key``, ``HttpOnly``, ``SameSite=Lax``,
    ``Secure`` when the ``redirect_uri`` is https. The login's ``state`` and PKCE verifier
    wait for the callback in the ``sfoauth_login`` cookie (encrypted, 10 minutes, accepted
    once). See ``docs/web.md``.

    Args:
        users: The app's `UserSessions`.
        secret_key: At least 32 random bytes, the same in every worker (a list rotates
            keys: the first seals, all open).
        login_path: Where a login starts.
        callback_path: The path of the flow's ``redirect_uri``.
        logout_path: Where a logout is posted.
        after_login: Where the browser goes after a login without ``next``.
        cookie_max_age: How long a browser stays logged in to the app.

    Raises:
        ConfigurationError: A path is not a path of this site, the callback path is not the
            flow's, or the secret key is too short.

    Example:
        ```python
        users = UserSessions(flow, store=store)
        login = SalesforceLogin(users, secret_key=os.environ["APP_SECRET_KEY"])


        @asynccontextmanager
        async def lifespan(app):
            async with users:
                yield


        app = FastAPI(
            lifespan=lifespan, routes=login.routes, exception_handlers=login.exception_handlers
        )


        @app.get("/limits")
        async def limits(sf: AsyncSession = Depends(login.session)):
            async with sf.get("limits/") as resp:
                return await resp.json()
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
        self._login = WebLogin(
            users,
            secret_key=secret_key,
            login_path=login_path,
            callback_path=callback_path,
            logout_path=logout_path,
            after_login=after_login,
            cookie_max_age=cookie_max_age,
        )
        self.routes: list[BaseRoute] = [
            Route(login_path, self._start, methods=["GET"], name="salesforce_login"),
            Route(callback_path, self._finish, methods=["GET"], name="salesforce_callback"),
            Route(logout_path, self._logout, methods=["GET", "POST"], name="salesforce_logout"),
        ]
        """The login, callback and logout routes, to mount in the app."""

    @property
    def users(self) -> UserSessions:
        """The app's `UserSessions`.

        Example:
            ```python
            print(len(login.users), "users' sessions open")
            ```
        """
        return self._login.users

    @property
    def exception_handlers(
        self,
    ) -> Mapping[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]:
        """The handler that sends the "log in first" answers whole; give it to the app.

        Without it, Starlette answers a refusal with a text body and FastAPI with
        ``{"detail": ...}``, each with one value per header; with it, API clients get the
        JSON ``{"error": "login_required", ...}`` (or ``"salesforce_unavailable"``) and every
        cookie.

        Example:
            ```python
            app = Starlette(
                routes=[*login.routes, Route("/limits", limits)],
                exception_handlers=login.exception_handlers,  # FastAPI(...) takes it too
                lifespan=lifespan,
            )
            ```
        """
        return {_Refusal: _answer_refusal}

    def user_key(self, request: Request) -> str | None:
        """Who this browser is logged in as (from the signed cookie), or ``None``.

        Example:
            ```python
            if login.user_key(request) is None:
                return RedirectResponse("/login/salesforce")
            ```
        """
        return self._login.user_key(request.cookies)

    @asynccontextmanager
    async def user_session(self, request: Request) -> AsyncIterator[AsyncSession]:
        """Hold the logged-in user's session, or raise the `HTTPException` of "log in first".

        Raises:
            starlette.exceptions.HTTPException: 303 to the login page (browsers), 401 (API
                clients), or 503 when Salesforce or the store cannot be reached.

        Example:
            ```python
            async def limits(request):
                async with login.user_session(request) as sf, sf.get("limits/") as resp:
                    return JSONResponse(await resp.json())
            ```
        """
        async with self._login.user_session(
            request.cookies,
            accept=request.headers.get("accept"),
            method=request.method,
            path_qs=_path_qs(request),
            refuse=_refuse,
        ) as sf:
            yield sf

    async def session(self, request: Request) -> AsyncIterator[AsyncSession]:
        """The FastAPI dependency of the logged-in user's `AsyncSession`, held for the request.

        Raises:
            fastapi.HTTPException: 303 to the login page (browsers), 401 (API clients), or
                503 when Salesforce or the store cannot be reached.

        Example:
            ```python
            @app.get("/me")
            async def me(sf: AsyncSession = Depends(login.session)):
                async with sf.get("/services/oauth2/userinfo") as resp:
                    return await resp.json()
            ```
        """
        async with self.user_session(request) as sf:
            yield sf

    async def _start(self, request: Request) -> Response:
        return _response(self._login.start(request.query_params.get("next")))

    async def _finish(self, request: Request) -> Response:
        return _response(await self._login.finish(request.url.query, request.cookies))

    async def _logout(self, request: Request) -> Response:
        if request.method == "GET":
            return _response(self._login.logout_form())
        reply = await self._login.logout(
            request.cookies,
            fetch_site=request.headers.get("sec-fetch-site"),
            accept=request.headers.get("accept"),
        )
        return _response(reply)
