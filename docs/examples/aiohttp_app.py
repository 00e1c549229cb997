"""An aiohttp.web app whose users log in with Salesforce and see their name and newest Accounts.

Against an embedded fake Salesforce org (no account needed), from the repository's root:

    pip install sfoauth-async
    python docs/examples/aiohttp_app.py

then open http://127.0.0.1:8080/ and log in as the user it prints. Against your org, set
``SF_CLIENT_ID``, ``SF_CLIENT_SECRET``, ``SF_LOGIN_URL``, ``APP_SECRET_KEY`` and
``REDIS_URL`` or ``SF_TOKEN_FILE`` first (see ``docs/web.md`` and ``web_common.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from web_common import home_page, profile, web_settings

from sfoauth_async import UserSessions
from sfoauth_async.aiohttp_web import salesforce_session, setup_salesforce_login


def create_app(users: UserSessions, *, secret_key: str) -> web.Application:
    """The app: ``/`` (a page) and ``/api/me`` (JSON), both for the logged-in user."""

    async def home(request: web.Request) -> web.Response:
        sf = await salesforce_session(request)
        return web.Response(text=home_page(await profile(sf)), content_type="text/html")

    async def me(request: web.Request) -> web.Response:
        sf = await salesforce_session(request)
        return web.json_response(await profile(sf))

    async def open_users(_: web.Application) -> AsyncIterator[None]:
        async with users:  # the users' sessions live as long as the app
            yield

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/api/me", me)
    app.cleanup_ctx.append(open_users)
    setup_salesforce_login(app, users, secret_key=secret_key)
    return app


async def main(host: str, port: int) -> None:
    """Serve the app until Ctrl+C."""
    async with web_settings(host=host, port=port) as settings:
        users = UserSessions(settings.flow, store=settings.store)
        runner = web.AppRunner(create_app(users, secret_key=settings.secret_key))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            print(settings.greeting, flush=True)
            await asyncio.Event().wait()  # until Ctrl+C cancels it
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is how it stops
        asyncio.run(main(arguments.host, arguments.port))
