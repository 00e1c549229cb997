"""Users in a real Chromium, the example apps of both frameworks, the fake org's login pages.

In-process apps for what a browser does in one app; example processes (started as
docs/web.md says) for restarts, two workers sharing Redis, and the embedded fake org.
Set ``SFOAUTH_SCREENSHOTS=docs/images`` to (re)make the screenshots of docs/web.md.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sfoauth_async import MemoryTokenStore
from sfoauth_async.testing import FakeSalesforceOrg, FakeUser
from tests.web_apps import (
    FRAMEWORKS,
    ExampleProcess,
    RunningApp,
    callback_url,
    example,
    free_port,
    org_env,
    serve_example,
    sign_in,
)

pytestmark = pytest.mark.browser

SCREENSHOTS = os.environ.get("SFOAUTH_SCREENSHOTS")


@pytest.fixture
def org(fake_org: FakeSalesforceOrg) -> FakeSalesforceOrg:
    """The fake org of the examples: two users who own their own Accounts, private sharing."""
    fake_org.private_sharing = True
    example("fastapi")  # puts docs/examples on the path
    from web_common import _seed  # noqa: PLC0415 - found through that path

    _seed(fake_org)
    return fake_org


def ada(org: FakeSalesforceOrg) -> FakeUser:
    """The second user of the examples' fake org."""
    return next(user for user in org.users if user.username == "ada@fake.org")


@pytest.fixture(params=FRAMEWORKS)
async def app(request: pytest.FixtureRequest, org: FakeSalesforceOrg) -> AsyncIterator[RunningApp]:
    """An example app served in this process (each framework in turn)."""
    async with serve_example(request.param, org, MemoryTokenStore()) as running:
        yield running


async def logged_in_page(browser: Any, url: str, user: FakeUser) -> Any:
    """A new browser context logged in as ``user`` at ``url``: its page, on the home page."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{url}/")
    await sign_in(page, user)
    await page.wait_for_url(f"{url}/")
    return page


async def shown(page: Any) -> tuple[str, list[str]]:
    """The name and the account names the home page shows."""
    name = await page.inner_text("#name")
    accounts = await page.locator("#accounts li").all_inner_texts()
    return name, accounts


def admin_accounts(count: int = 10) -> list[str]:
    """The default user's newest accounts, as the examples' org holds them."""
    return [f"Fake Admin account {n}" for n in range(1, count + 1)]


async def test_login_end_to_end(browser: Any, app: RunningApp, org: FakeSalesforceOrg) -> None:
    """Home page -> the org's login page -> Allow -> the user's name and 10 newest Accounts."""
    context = await browser.new_context(viewport={"width": 900, "height": 640})
    page = await context.new_page()
    await page.goto(f"{app.url}/")
    await page.wait_for_selector("#username")
    assert page.url.startswith(org.login_url)
    if SCREENSHOTS and app.framework == "fastapi":
        await page.fill("#username", org.user.username)
        await page.screenshot(path=str(Path(SCREENSHOTS) / "web-login-page.png"))
    await sign_in(page, org.user)
    await page.wait_for_url(f"{app.url}/")
    assert await shown(page) == ("Fake Admin", admin_accounts())
    if SCREENSHOTS and app.framework == "fastapi":
        await page.screenshot(path=str(Path(SCREENSHOTS) / "web-logged-in.png"))
    assert org.stats.token_requests["authorization_code"] == 1
    await context.close()


async def test_two_users_at_once_see_only_their_own(
    browser: Any, app: RunningApp, org: FakeSalesforceOrg
) -> None:
    """Two browser contexts log in concurrently; each page shows its user's data only."""
    admin_page, ada_page = await asyncio.gather(
        logged_in_page(browser, app.url, org.user), logged_in_page(browser, app.url, ada(org))
    )
    for _ in range(2):
        admin_view, ada_view = await asyncio.gather(shown(admin_page), shown(ada_page))
        assert admin_view == ("Fake Admin", admin_accounts())
        assert ada_view == ("Ada", ["Ada account 1", "Ada account 2", "Ada account 3"])
        await asyncio.gather(admin_page.reload(), ada_page.reload())
    assert len(app.users) == 2
    await asyncio.gather(admin_page.context.close(), ada_page.context.close())


async def test_sessions_expire_while_browsing(
    browser: Any, app: RunningApp, org: FakeSalesforceOrg
) -> None:
    """Sessions end on the server, rotation on: pages keep working, one refresh per user."""
    org.app.rotate_refresh_tokens = True
    pages = await asyncio.gather(
        logged_in_page(browser, app.url, org.user), logged_in_page(browser, app.url, ada(org))
    )
    org.expire_all_sessions()
    for _ in range(3):
        await asyncio.gather(*(page.reload() for page in pages))
        views = await asyncio.gather(*(shown(page) for page in pages))
        assert [name for name, _ in views] == ["Fake Admin", "Ada"]
    assert org.stats.token_requests["refresh_token"] == 2
    assert org.stats.unauthorized == 2
    assert org.stats.refresh_token_reuses == 0
    await asyncio.gather(*(page.context.close() for page in pages))


async def test_logout_revokes_and_next_visit_logs_in(
    browser: Any, app: RunningApp, org: FakeSalesforceOrg
) -> None:
    """The logout button revokes the refresh token at the org; '/' then asks for a login."""
    page = await logged_in_page(browser, app.url, org.user)
    user_key = f"{org.org_id}/{org.user.user_id}"
    stored = await app.users.store.load(app.users.store_key(user_key))
    assert stored is not None
    assert stored.token is not None
    await page.click("#logout")
    await page.wait_for_selector('#sfoauth-page[data-page="logged-out"]')
    info = await app.flow.introspect(
        stored.token.refresh_token or "", token_type_hint="refresh_token"
    )
    assert not info.active
    assert org.stats.revocations == 1
    await page.goto(f"{app.url}/")
    await page.wait_for_selector("#username")
    assert page.url.startswith(org.login_url)
    await page.context.close()


async def test_tampered_state_and_access_denied_pages(
    browser: Any, app: RunningApp, org: FakeSalesforceOrg
) -> None:
    """A forged state and a Deny each show their page; no token is requested."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{app.url}/")
    await page.wait_for_selector("#username")  # a login is pending in this browser
    await page.goto(f"{app.url}/login/salesforce/callback?code=stolen&state=forged")
    assert await page.get_attribute("#sfoauth-page", "data-page") == "state"
    assert "cannot be finished" in await page.inner_text("h1")
    await page.goto(f"{app.url}/")
    await sign_in(page, org.user, allow=False)
    await page.wait_for_selector('#sfoauth-page[data-page="denied"]')
    assert "declined" in await page.inner_text("#sfoauth-message")
    assert org.stats.token_requests_total == 0
    await context.close()


# -- the examples as processes ---------------------------------------------------------------


@pytest.fixture
async def processes() -> AsyncIterator[list[ExampleProcess]]:
    """Example processes a test starts; all are stopped after it."""
    started: list[ExampleProcess] = []
    yield started
    for process in started:
        await process.stop()


async def start_example(
    processes: list[ExampleProcess],
    framework: str,
    org: FakeSalesforceOrg,
    tmp_path: Path,
    port: int | None = None,
    **env: str,
) -> ExampleProcess:
    """Start an example process against ``org`` (its callback registered with the app)."""
    port = port or free_port()
    if callback_url(port) not in org.app.callback_urls:
        org.app.callback_urls.append(callback_url(port))
    log = tmp_path / f"{framework}-{port}.log"
    process = await ExampleProcess.start(framework, port, org_env(org, **env), log)
    processes.append(process)
    return process


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_restart_keeps_users_logged_in(
    browser: Any, org: FakeSalesforceOrg, tmp_path: Path, processes, framework: str
) -> None:
    """With a file store, the app restarts and the browser is still logged in: no new login."""
    token_file = str(tmp_path / "tokens.json")
    app = await start_example(processes, framework, org, tmp_path, SF_TOKEN_FILE=token_file)
    page = await logged_in_page(browser, app.url, org.user)
    await app.stop()
    again = await start_example(
        processes, framework, org, tmp_path, port=app.port, SF_TOKEN_FILE=token_file
    )
    await page.goto(f"{again.url}/")
    assert await shown(page) == ("Fake Admin", admin_accounts())
    assert org.stats.token_requests["authorization_code"] == 1
    await page.context.close()


@pytest.mark.redis
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_two_processes_share_redis(
    browser: Any,
    org: FakeSalesforceOrg,
    tmp_path: Path,
    processes,
    redis_url: str,
    framework: str,
) -> None:
    """Logged in through one worker, served by the other; rotated tokens never reused."""
    org.app.rotate_refresh_tokens = True
    first = await start_example(processes, framework, org, tmp_path, REDIS_URL=redis_url)
    second = await start_example(processes, framework, org, tmp_path, REDIS_URL=redis_url)
    page = await logged_in_page(browser, first.url, org.user)
    other = await page.context.new_page()
    await other.goto(f"{second.url}/")
    assert await shown(other) == ("Fake Admin", admin_accounts())
    org.expire_all_sessions()
    for _ in range(3):
        await asyncio.gather(page.reload(), other.reload())
        views = await asyncio.gather(shown(page), shown(other))
        assert [name for name, _ in views] == ["Fake Admin", "Fake Admin"]
    assert org.stats.token_requests["authorization_code"] == 1
    assert org.stats.token_requests["refresh_token"] == 1
    assert org.stats.refresh_token_reuses == 0
    await page.context.close()


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_example_runs_with_its_embedded_fake_org(
    browser: Any, tmp_path: Path, processes, framework: str
) -> None:
    """The documented command, no Salesforce settings: a login as the printed user works."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "REDIS_URL"))}
    port = free_port()
    app = await ExampleProcess.start(framework, port, env, tmp_path / "example.log")
    processes.append(app)
    username, password = app.fake_user()
    user = FakeUser(username=username, password=password)
    page = await logged_in_page(browser, app.url, user)
    assert await shown(page) == ("Fake Admin", admin_accounts())
    await page.context.close()
