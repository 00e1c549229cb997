"""``sfoauth login --web``: a real Chromium stands in for the user, the fake org for Salesforce."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from run_cli import SFOAUTH, Ran, sfoauth

from sfoauth_async._cli import open_in_browser, run
from sfoauth_async.testing import FakeSalesforceOrg


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def web_env(fake_org: FakeSalesforceOrg, tmp_path: Path) -> dict[str, str]:
    """A confidential app whose callback URL is a free loopback port, as SF_* variables."""
    callback = f"http://127.0.0.1:{free_port()}/OauthRedirect"
    fake_org.app.callback_urls.append(callback)
    return {
        "SF_CLIENT_ID": fake_org.app.client_id,
        "SF_CLIENT_SECRET": fake_org.app.client_secret,
        "SF_LOGIN_URL": fake_org.login_url,
        "SF_REDIRECT_URI": callback,
        "SFOAUTH_CONFIG_DIR": str(tmp_path / "config"),
    }


async def user_in_browser(browser: Any, url: str, org: FakeSalesforceOrg, button: str) -> str:
    """Open ``url``, log in on the fake org's page, click ``button``; the last page's text."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.fill("#username", org.user.username)
        await page.fill("#password", org.user.password)
        await page.click("#Login")
        async with page.expect_navigation(url="http://127.0.0.1:*/OauthRedirect*"):
            await page.click(button)
        return str(await page.inner_text("body"))
    finally:
        await context.close()


class Opener:
    """Stands in for `webbrowser.open`: hands the URL to a task (a browser, or a test)."""

    def __init__(self, then: Callable[[str], Any]) -> None:
        self.then = then
        self.task: asyncio.Task[Any] | None = None
        self.urls: list[str] = []

    def __call__(self, url: str) -> bool:
        """Record the URL and start the task; say the browser opened."""
        self.urls.append(url)
        self.task = asyncio.get_running_loop().create_task(self.then(url))
        return True


async def login(env: dict[str, str], opener: Opener | None, *argv: str) -> Ran:
    """Run ``sfoauth login --web`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = await run(["login", "--web", *argv], env=env, out=out, err=err, open_url=opener)
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.mark.browser
async def test_login_in_chromium_then_commands_use_the_saved_login(
    browser, fake_org, web_env
) -> None:
    """Chromium logs in and allows: the token is saved, display and logout then use it."""
    opener = Opener(lambda url: user_in_browser(browser, url, fake_org, "#oaapprove"))
    ran = await login(web_env, opener)
    assert ran.code == 0, ran.err
    assert opener.task is not None
    assert await opener.task == "Logged in\n\nYou are logged in; you can close this window."
    assert ran.err.splitlines()[-1].startswith(
        f"Logged in as admin@fake.org (user {fake_org.user.user_id}, org {fake_org.org_id})"
    )
    assert "code_challenge_method=S256" in opener.urls[0]
    config = Path(web_env["SFOAUTH_CONFIG_DIR"])
    saved = json.loads((config / "login.json").read_text())
    assert saved["username"] == "admin@fake.org"
    assert fake_org.app.client_secret not in (config / "login.json").read_text()

    # Later commands need no SF_* variable but the confidential app's secret.
    later = {k: web_env[k] for k in ("SFOAUTH_CONFIG_DIR", "SF_CLIENT_SECRET")}
    shown = await sfoauth(later, "display")
    assert shown.code == 0, shown.err
    assert "Username      admin@fake.org" in shown.out
    assert "Flow          authorization code (saved login), from the saved login" in shown.out
    assert fake_org.stats.token_requests_total == 1

    fake_org.expire_all_sessions()  # the saved session dies: the refresh token renews it
    assert (await sfoauth(later, "check")).code == 0
    assert fake_org.stats.token_requests["refresh_token"] == 1

    out = await sfoauth(later, "logout")
    assert out.out == (
        f"Revoked the refresh token (and its sessions) of user {fake_org.user.user_id} and "
        f"removed it from {config / 'tokens.json'}. Forgot the saved login.\n"
    )
    assert not (config / "login.json").exists()
    assert (await sfoauth(later, "display")).code == 2


@pytest.mark.browser
async def test_user_denies_access_in_chromium(browser, fake_org, web_env) -> None:
    """Deny in Chromium: exit 1 with the denial, the page says so, nothing saved or requested."""
    opener = Opener(lambda url: user_in_browser(browser, url, fake_org, "#oadeny"))
    ran = await login(web_env, opener)
    assert ran.code == 1
    assert ran.err.splitlines()[-1] == (
        "sfoauth: error: The user denied access to the app (access_denied: end-user denied "
        "authorization)."
    )
    assert opener.task is not None
    assert (await opener.task).startswith("Login failed\n\nThe user denied access")
    assert fake_org.stats.token_requests_total == 0
    assert not (Path(web_env["SFOAUTH_CONFIG_DIR"]) / "login.json").exists()


@pytest.mark.browser
async def test_no_browser_in_a_real_process(browser, fake_org, web_env) -> None:
    """`sfoauth login --web --no-browser` prints the URL; Chromium completes it; exit 0."""
    process = await asyncio.create_subprocess_exec(
        str(SFOAUTH),
        "login",
        "--web",
        "--no-browser",
        env={"PATH": "/usr/bin:/bin", **web_env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        url = (await process.stdout.readline()).decode().strip()
        assert url.startswith(fake_org.login_url + "/services/oauth2/authorize?")
        page = await user_in_browser(browser, url, fake_org, "#oaapprove")
        _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert page.startswith("Logged in")
    assert "Open this URL in a browser" in err.decode()
    ran = await sfoauth({"SFOAUTH_CONFIG_DIR": web_env["SFOAUTH_CONFIG_DIR"]}, "token")
    assert ran.code == 0, ran.err


async def test_state_mismatch_is_refused(fake_org, web_env) -> None:
    """A callback with another state: exit 1, the page says it failed, no code is exchanged."""

    async def forged(_: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(web_env["SF_REDIRECT_URI"], params={"code": "x", "state": "forged"}) as r,
        ):
            return r.status, await r.text()

    opener = Opener(forged)
    ran = await login(web_env, opener)
    assert ran.code == 1
    assert "state does not match" in ran.err
    assert opener.task is not None
    status, page = await opener.task
    assert status == 200
    assert "Login failed" in page
    assert fake_org.stats.token_requests_total == 0


async def test_only_the_first_callback_counts(web_env) -> None:
    """Other paths answer 404 and do not end the login; the first callback ends it."""

    async def poke(_: str) -> list[int]:
        base = web_env["SF_REDIRECT_URI"].rsplit("/", 1)[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/favicon.ico") as other:
                statuses = [other.status]
            async with http.get(web_env["SF_REDIRECT_URI"], params={"error": "access_denied"}):
                pass
            return statuses

    opener = Opener(poke)
    ran = await login(web_env, opener)
    assert opener.task is not None
    assert await opener.task == [404]
    assert ran.code == 1
    assert "state" in ran.err  # an error without our state is a forgery too


async def test_port_in_use_exits_2(web_env) -> None:
    """The callback port is taken: exit 2 saying so, before any browser is opened."""
    port = int(web_env["SF_REDIRECT_URI"].split(":")[2].split("/")[0])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        opener = Opener(lambda _: asyncio.sleep(0))
        ran = await login(web_env, opener)
    assert ran.code == 2
    assert f"Cannot listen for the login callback on 127.0.0.1:{port} (it is in use)" in ran.err
    assert opener.urls == []


async def test_redirect_uri_elsewhere_exits_2(web_env) -> None:
    """A callback URL on another host cannot be received here: exit 2, what to register."""
    env = web_env | {"SF_REDIRECT_URI": "https://app.example.com/callback"}
    ran = await login(env, None)
    assert ran.code == 2
    assert "http://localhost:<port>/<path>" in ran.err


async def test_missing_client_id_exits_2(web_env) -> None:
    """Without SF_CLIENT_ID: the message names it for the authorization code flow."""
    env = {k: v for k, v in web_env.items() if k != "SF_CLIENT_ID"}
    ran = await login(env, None)
    assert ran.code == 2
    assert "The authorization code flow needs SF_CLIENT_ID." in ran.err


async def test_no_answer_in_time_exits_1(web_env) -> None:
    """Nobody comes back within --timeout: exit 1, saying so."""
    ran = await login(web_env, None, "--timeout", "0.2")
    assert ran.code == 1
    assert "No login came back" in ran.err
    assert ran.out.startswith("http://")  # no browser opener: the URL was printed


def test_sfoauth_is_on_the_path_of_this_venv() -> None:
    """The console script the subprocess tests run exists next to this Python."""
    assert SFOAUTH.exists(), sys.executable


def test_no_display_means_no_browser(monkeypatch) -> None:
    """On Linux without a display, no console browser takes over the terminal: False."""
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert open_in_browser("http://127.0.0.1:1/x") is False
    monkeypatch.setenv("DISPLAY", ":0")
    assert open_in_browser("http://127.0.0.1:1/x") is True
    assert opened == ["http://127.0.0.1:1/x"]
