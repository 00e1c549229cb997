"""Salesforce login for aiohttp.web apps.

`setup_salesforce_login` adds the routes of the login (start, callback, logout) to an app;
`salesforce_session` gives a handler the logged-in user's `sfoauth_async.AsyncSession` from
a `sfoauth_async.UserSessions`. See ``docs/web.md``.

Example:
    ```python
    from aiohttp import web
    from sfoauth_async import UserSessions
    from sfoauth_async.aiohttp_web import salesforce_session, setup_salesforce_login


    async def home(request: web.Request) -> web.Response:
        sf = await salesforce_session(request)
        async with sf.get("/services/oauth2/userinfo") as resp:
            return web.json_response(await resp.json())


    app = web.Application()
    app.router.add_get("/", home)
    setup_salesforce_login(app, UserSessions(flow, store=store), secret_key=secret_key)
    ```
"""

from __future__ import annotations

from ._aiohttp_web import salesforce_session, salesforce_user_key, setup_salesforce_login

__all__ = ["salesforce_session", "salesforce_user_key", "setup_salesforce_login"]
