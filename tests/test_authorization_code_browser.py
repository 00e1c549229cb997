"""The web-server flow as a user lives it: a real Chromium, a real web app, the fake org."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from sfoauth_async import (
    AsyncSession,
    AuthorizationCodeFlow,
    AuthorizationDeniedError,
    AuthorizationRequest,
    StateMismatchError,
)
from sfoauth_async.testing import FakeSalesforceOrg

pytestmark = pytest.mark.browser


@dataclass
class WebApp:
    """A tiny aiohttp web app that connects its user's Salesforce account."""

    org: FakeSalesforceOrg
    url: str = ""
    flow: AuthorizationCodeFlow | None = None
    pending: dict[str, AuthorizationRequest] = field(default_factory=dict)

    async def login(self, _: web.Request) -> web.Response:
        """Send the browser to Salesforce with a fresh state and PKCE verifier."""
        assert self.flow is not None
        auth = self.flow.authorization_url(prompt="login")
        # A real app keeps the request in the user's session: here, under a cookie. The
        # state it expects is the one kept for this browser, never the callback's own.
        session_id = secrets.token_urlsafe(16)
        self.pending[session_id] = auth
        response = web.HTTPFound(auth.url)
        response.set_cookie("app_session", session_id, httponly=True, samesite="Lax")
        raise response

    async def callback(self, request: web.Request) -> web.Response:
        """Check the callback, exchange the code, and call the API with the new token."""
        assert self.flow is not None
        auth = self.pending.pop(request.cookies.get("app_session", ""), None)
        if auth is None:
            return web.Response(status=400, text="no login in progress")
        try:
            code = self.flow.parse_callback(request.query, state=auth.state)
        except AuthorizationDeniedError:
            return web.Response(text="You declined.")
        except StateMismatchError:
            return web.Response(status=400, text="state mismatch")
        token = await self.flow.exchange(code, code_verifier=auth.code_verifier)
        async with AsyncSession(self.flow, token=token) as sf, sf.get("limits/") as resp:
            limits = await resp.json()
        has_refresh = "yes" if token.refresh_token else "no"
        return web.Response(
            text=f"Connected {token.user_id}; API limit {limits['DailyApiRequests']['Max']}; "
            f"refresh token {has_refresh}"
        )


@pytest.fixture
async def webapp(fake_org: FakeSalesforceOrg) -> AsyncIterator[WebApp]:
    """The web app on a loopback port, registered as the connected app's callback."""
    app = WebApp(fake_org)
    server = web.Application()
    server.router.add_get("/login", app.login)
    server.router.add_get("/callback", app.callback)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    flow = fake_org.authorization_code_flow(f"{app.url}/callback")
    assert isinstance(flow, AuthorizationCodeFlow)
    app.flow = flow
    yield app
    await runner.cleanup()


async def sign_in(browser: Any, webapp: WebApp, button: str) -> str:
    """Open the app, log in on the fake org's page, click ``button``; the final page text."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{webapp.url}/login")
        await page.fill("#username", webapp.org.user.username)
        await page.fill("#password", webapp.org.user.password)
        await page.click("#Login")
        await page.click(button)
        await page.wait_for_url(f"{webapp.url}/callback*")
        return str(await page.inner_text("body"))
    finally:
        await context.close()


async def test_user_connects_through_the_browser(browser: Any, webapp: WebApp) -> None:
    """Login and Allow in Chromium: the app gets a token with a refresh token and calls the API."""
    text = await sign_in(browser, webapp, "#oaapprove")
    assert text.startswith(f"Connected {webapp.org.user.user_id}; API limit ")
    assert text.endswith("refresh token yes")
    assert webapp.org.stats.token_requests["authorization_code"] == 1


async def test_user_declines_in_the_browser(browser: Any, webapp: WebApp) -> None:
    """Deny in Chromium: the callback raises AuthorizationDeniedError, no token is requested."""
    text = await sign_in(browser, webapp, "#oadeny")
    assert text == "You declined."
    assert webapp.org.stats.token_requests_total == 0


async def test_a_callback_with_another_state_is_refused(browser: Any, webapp: WebApp) -> None:
    """The browser's login in progress, a callback with a forged state: refused, no token."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{webapp.url}/login")  # the app keeps this browser's state
        await page.wait_for_selector("#username")
        await page.goto(f"{webapp.url}/callback?code=stolen-code&state=forged-state")
        assert await page.inner_text("body") == "state mismatch"
    finally:
        await context.close()
    assert webapp.org.stats.token_requests_total == 0
