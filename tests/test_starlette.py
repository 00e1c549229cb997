"""sfoauth_async.starlette: a plain Starlette app, FastAPI's 401, the import guard."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sfoauth_async import ConfigurationError, MemoryTokenStore, UserSessions
from sfoauth_async.starlette import SalesforceLogin
from sfoauth_async.testing import FakeSalesforceOrg
from tests.web_apps import SECRET_KEY, bound_socket, callback_url, client


def test_the_core_never_imports_a_web_framework():
    """'import sfoauth_async' (and its testing module) loads neither Starlette nor FastAPI."""
    code = (
        "import sys, sfoauth_async, sfoauth_async.testing, sfoauth_async.aiohttp_web; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'fastapi')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_without_starlette_the_message_names_the_extra():
    """Importing sfoauth_async.starlette without Starlette says which extra to install."""
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "try:\n    import sfoauth_async.starlette\n"
        "except ModuleNotFoundError as exc:\n    print(exc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'sfoauth-async[starlette]'" in done.stdout


def test_the_callback_path_must_be_the_flows(fake_org: FakeSalesforceOrg):
    """A redirect_uri elsewhere than callback_path: ConfigurationError naming both."""
    users = UserSessions(
        fake_org.authorization_code_flow("http://127.0.0.1:9/oauth/cb"), store=MemoryTokenStore()
    )
    with pytest.raises(ConfigurationError, match="/oauth/cb"):
        SalesforceLogin(users, secret_key=SECRET_KEY)
    assert SalesforceLogin(users, secret_key=SECRET_KEY, callback_path="/oauth/cb").routes


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"login_path": "login"}, "login_path"),
        ({"logout_path": "//evil"}, "logout_path"),
        ({"after_login": "https://evil.example/"}, "after_login"),
        ({"logout_path": "/login/salesforce"}, "different"),
        ({"secret_key": "short"}, "32 bytes"),
    ],
)
def test_bad_settings_are_refused(fake_org: FakeSalesforceOrg, options, message):
    """Paths that are not this site's, colliding paths, a short key: ConfigurationError."""
    users = UserSessions(
        fake_org.authorization_code_flow(callback_url(9)), store=MemoryTokenStore()
    )
    with pytest.raises(ConfigurationError, match=message):
        SalesforceLogin(users, **{"secret_key": SECRET_KEY, **options})


@asynccontextmanager
async def starlette_app(org: FakeSalesforceOrg, *, handlers: bool = True) -> AsyncIterator[str]:
    """A plain Starlette app (no FastAPI) with one endpoint using user_session()."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    users = UserSessions(org.authorization_code_flow(callback_url(port)), store=MemoryTokenStore())
    login = SalesforceLogin(users, secret_key=SECRET_KEY)

    async def limits(request: Request) -> JSONResponse:
        async with login.user_session(request) as sf, sf.get("limits/") as resp:
            data = await resp.json()
        return JSONResponse(
            {"user": login.user_key(request), "max": data["DailyApiRequests"]["Max"]}
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with users:
            yield

    app = Starlette(
        routes=[*login.routes, Route("/limits", limits)],
        exception_handlers=dict(login.exception_handlers) if handlers else None,
        lifespan=lifespan,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    import asyncio  # noqa: PLC0415

    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)  # polling uvicorn's started flag
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_plain_starlette_app(fake_org: FakeSalesforceOrg):
    """Without FastAPI: 401 JSON before the login, the user's API data after it."""
    fake_org.auto_approve = True
    async with starlette_app(fake_org) as url, client() as http:
        async with http.get(f"{url}/limits", headers={"Accept": "application/json"}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Cookie ")
            assert (await r.json())["error"] == "login_required"
        async with http.get(f"{url}/login/salesforce?next=/limits") as r:  # follows redirects
            assert r.status == 200
            body = await r.json()
    assert body == {"user": f"{fake_org.org_id}/{fake_org.user.user_id}", "max": 100_000}


async def test_without_the_handlers_a_refusal_is_still_a_401(fake_org: FakeSalesforceOrg):
    """An app that did not take exception_handlers still refuses, as Starlette's text 401."""
    async with (
        starlette_app(fake_org, handlers=False) as url,
        client() as http,
        http.get(f"{url}/limits", headers={"Accept": "application/json"}) as r,
    ):
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Cookie ")
        assert await r.text() == "Log in with Salesforce first."
