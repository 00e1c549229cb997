"""Salesforce login for Starlette and FastAPI apps (``pip install 'sfoauth-async[starlette]'``).

`SalesforceLogin` gives the routes of the login (start, callback, logout) and, as a FastAPI
dependency, the logged-in user's `sfoauth_async.AsyncSession` from a
`sfoauth_async.UserSessions`. See ``docs/web.md``.

Example:
    ```python
    from fastapi import Depends, FastAPI
    from sfoauth_async import AsyncSession, UserSessions
    from sfoauth_async.starlette import SalesforceLogin

    users = UserSessions(flow, store=store)
    login = SalesforceLogin(users, secret_key=secret_key)
    app = FastAPI(lifespan=lifespan, routes=login.routes)


    @app.get("/")
    async def home(sf: AsyncSession = Depends(login.session)) -> dict:
        async with sf.get("/services/oauth2/userinfo") as resp:
            return await resp.json()
    ```
"""

from __future__ import annotations

try:
    from ._starlette import SalesforceLogin
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    if (exc.name or "").partition(".")[0] != "starlette":
        raise
    raise ModuleNotFoundError(
        "sfoauth_async.starlette needs Starlette: pip install 'sfoauth-async[starlette]' "
        "(FastAPI brings it too).",
        name="starlette",
    ) from exc

__all__ = ["SalesforceLogin"]

SalesforceLogin.__module__ = __name__
