"""sfoauth_async.aiohttp_web: sessions held for the request, misuse, the user key."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from sfoauth_async import MemoryTokenStore, UserSessions
from sfoauth_async.aiohttp_web import (
    salesforce_session,
    salesforce_user_key,
    setup_salesforce_login,
)
from sfoauth_async.testing import FakeSalesforceOrg
from tests.web_apps import SECRET_KEY, bound_socket, callback_url, client


async def test_the_session_is_held_until_the_handler_returns(fake_org: FakeSalesforceOrg):
    """While a handler runs its user's session is in use (never closed); after, it is not."""
    fake_org.auto_approve = True
    sock = bound_socket()
    port = sock.getsockname()[1]
    users = UserSessions(
        fake_org.authorization_code_flow(callback_url(port)), store=MemoryTokenStore()
    )
    seen: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        await salesforce_session(request)
        await salesforce_session(request)  # twice in one request: held twice
        user_key = salesforce_user_key(request)
        assert user_key is not None
        seen.append(users.in_use(user_key))
        return web.Response(text=user_key)

    app = web.Application()
    app.router.add_get("/", handler)
    setup_salesforce_login(app, users, secret_key=SECRET_KEY)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        async with users, client() as http:
            async with http.get(f"http://127.0.0.1:{port}/login/salesforce") as r:
                assert r.status == 200
                user_key = await r.text()
            assert seen == [2]
            assert users.in_use(user_key) == 0
            results = await asyncio.gather(
                *(http.get(f"http://127.0.0.1:{port}/") for _ in range(5))
            )
            for response in results:
                response.release()
            assert users.in_use(user_key) == 0
    finally:
        await runner.cleanup()
        sock.close()


async def test_without_setup_a_handler_gets_a_clear_error():
    """salesforce_session() in an app without setup_salesforce_login: RuntimeError."""
    failures: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        with pytest.raises(RuntimeError, match="setup_salesforce_login") as caught:
            await salesforce_session(request)
        failures.append(str(caught.value))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = bound_socket()
    await web.SockSite(runner, sock).start()
    try:
        async with client() as http, http.get(f"http://127.0.0.1:{sock.getsockname()[1]}/") as r:
            assert r.status == 200
    finally:
        await runner.cleanup()
        sock.close()
    assert len(failures) == 1
