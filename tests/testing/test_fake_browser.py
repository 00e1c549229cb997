"""The authorize pages in a real headless Chromium: plain forms, no JavaScript needed."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from sfoauth_async.testing import FakeSalesforceOrg

pytestmark = pytest.mark.browser

CALLBACK = "http://127.0.0.1:9/callback"


async def new_page(browser: Any, org: FakeSalesforceOrg) -> Any:
    """A fresh page with JavaScript off, whose callback URL is answered in the browser."""
    if CALLBACK not in org.app.callback_urls:
        org.app.callback_urls.append(CALLBACK)
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    # Nothing listens on the callback port; answer it inside the browser instead.
    await page.route(CALLBACK + "*", lambda route: route.fulfill(body="done"))
    return page


def authorize_url(org: FakeSalesforceOrg) -> str:
    """The authorize URL of the default app, with a state."""
    query = {
        "response_type": "code",
        "client_id": org.app.client_id,
        "redirect_uri": CALLBACK,
        "state": "browser-state",
    }
    return f"{org.login_url}/services/oauth2/authorize?{urlencode(query)}"


def callback_query(url: str) -> dict[str, str]:
    """The query of the callback URL the browser landed on."""
    assert url.startswith(CALLBACK)
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def log_in(page: Any, org: FakeSalesforceOrg, password: str) -> None:
    """Open the authorize URL and submit the login form."""
    await page.goto(authorize_url(org))
    await page.fill("#username", org.user.username)
    await page.fill("#password", password)
    await page.click("#Login")


async def test_pages_work_in_chromium_without_javascript(browser, org, client):
    """Login+Allow gives a usable code, Deny gives access_denied, a bad password retries."""
    page = await new_page(browser, org)
    await log_in(page, org, org.user.password)
    await page.click("#oaapprove")
    await page.wait_for_url(CALLBACK + "*")
    query = callback_query(page.url)
    assert query["state"] == "browser-state"
    form = {
        "grant_type": "authorization_code",
        "code": query["code"],
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "redirect_uri": CALLBACK,
    }
    async with client.post(org.login_url + "/services/oauth2/token", data=form) as response:
        assert response.status == 200

    page = await new_page(browser, org)
    await log_in(page, org, org.user.password)
    await page.click("#oadeny")
    await page.wait_for_url(CALLBACK + "*")
    assert callback_query(page.url)["error"] == "access_denied"

    page = await new_page(browser, org)
    await log_in(page, org, "wrong")
    await page.wait_for_selector("#error")
    assert await page.input_value("#username") == org.user.username
    await page.fill("#password", org.user.password)
    await page.click("#Login")
    await page.wait_for_selector("#oaapprove")
