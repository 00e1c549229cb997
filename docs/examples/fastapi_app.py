"""A FastAPI app whose users log in with Salesforce and see their name and newest Accounts.

Against an embedded fake Salesforce org (no account needed), from the repository's root:

    pip install 'sfoauth-async[starlette]' fastapi uvicorn
    python docs/examples/fastapi_app.py

then open http://127.0.0.1:8000/ and log in as the user it prints. Against your org, set
``SF_CLIENT_ID``, ``SF_CLIENT_SECRET``, ``SF_LOGIN_URL``, ``APP_SECRET_KEY`` and
``REDIS_URL`` or ``SF_TOKEN_FILE`` first (see ``docs/web.md`` and ``web_common.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from web_common import home_page, profile, web_settings

from sfoauth_async import AsyncSession, UserSessions
from sfoauth_async.starlette import SalesforceLogin


def create_app(users: UserSessions, *, secret_key: str) -> FastAPI:
    """The app: ``/`` (a page) and ``/api/me`` (JSON), both for the logged-in user."""
    login = SalesforceLogin(users, secret_key=secret_key)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with users:  # the users' sessions live as long as the app
            yield

    app = FastAPI(
        lifespan=lifespan, routes=login.routes, exception_handlers=login.exception_handlers
    )

    @app.get("/", response_class=HTMLResponse)
    async def home(sf: AsyncSession = Depends(login.session)) -> str:  # noqa: B008 - FastAPI
        return home_page(await profile(sf))

    @app.get("/api/me")
    async def me(sf: AsyncSession = Depends(login.session)) -> dict[str, Any]:  # noqa: B008
        return await profile(sf)

    return app


async def main(host: str, port: int) -> None:
    """Serve the app until Ctrl+C."""
    async with web_settings(host=host, port=port) as settings:
        users = UserSessions(settings.flow, store=settings.store)
        app = create_app(users, secret_key=settings.secret_key)
        with socket.create_server((host, port)) as sock:
            print(settings.greeting, flush=True)
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
            await server.serve(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.host, arguments.port))
