"""The web login over real HTTP, for both example apps (FastAPI and aiohttp.web).

The fake org approves at once (``auto_approve``), so a login is three redirects; the browser
tests (test_web_browser.py) drive the same apps through the login pages in Chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from yarl import URL

from sfoauth_async import MemoryTokenStore, StoreUnavailableError, UserSessions
from sfoauth_async._web_login import WebLogin, safe_next, wants_html
from sfoauth_async.testing import FakeSalesforceOrg
from tests.web_apps import (
    FRAMEWORKS,
    SECRET_KEY,
    ExampleProcess,
    RunningApp,
    callback_url,
    client,
    free_port,
    org_env,
    serve_example,
)

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"Accept": "application/json"}


@pytest.fixture(params=FRAMEWORKS)
async def app(
    request: pytest.FixtureRequest, fake_org: FakeSalesforceOrg
) -> AsyncIterator[RunningApp]:
    """An example app (each framework in turn) against a fake org that approves at once."""
    fake_org.auto_approve = True
    fake_org.private_sharing = True
    fake_org.add_record("Account", {"Name": "Mine", "OwnerId": fake_org.user.user_id})
    async with serve_example(request.param, fake_org, MemoryTokenStore()) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A cookie-keeping client that does not follow redirects."""
    async with client() as session:
        yield session


async def start_login(http: aiohttp.ClientSession, app: RunningApp, query: str = "") -> str:
    """GET the login path; the URL of Salesforce's authorize page it redirects to."""
    async with http.get(f"{app.url}/login/salesforce{query}", allow_redirects=False) as r:
        assert r.status == 303
        assert r.headers["Cache-Control"] == "no-store"
        return r.headers["Location"]


async def authorize(http: aiohttp.ClientSession, authorize_url: str) -> str:
    """The fake org approves: the callback URL it redirects to."""
    async with http.get(authorize_url, allow_redirects=False) as r:
        assert r.status == 302
        return r.headers["Location"]


async def log_in(http: aiohttp.ClientSession, app: RunningApp, query: str = "") -> str:
    """A whole login; where the callback sends the browser."""
    callback = await authorize(http, await start_login(http, app, query))
    async with http.get(callback, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        return r.headers["Location"]


def cookie(http: aiohttp.ClientSession, name: str) -> str | None:
    """The value of a cookie the client holds, if any."""
    return next((c.value for c in http.cookie_jar if c.key == name and c.value), None)


async def test_login_then_the_api_serves_the_user(app, http, fake_org):
    """Login returns to ?next; the API answers with the user's name and own Accounts."""
    assert await log_in(http, app, "?next=/api/me") == "/api/me"
    async with http.get(f"{app.url}/api/me", headers=JSON) as r:
        assert r.status == 200
        me = await r.json()
    assert me["name"] == fake_org.user.display_name
    assert [a["name"] for a in me["accounts"]] == ["Mine"]
    assert fake_org.stats.token_requests["authorization_code"] == 1
    assert cookie(http, "sfoauth_login") is None  # used up


async def test_not_logged_in_api_client_gets_401_json(app, http):
    """API clients: 401, JSON, a WWW-Authenticate challenge; Vary: Accept."""
    async with http.get(f"{app.url}/api/me", headers=JSON, allow_redirects=False) as r:
        assert r.status == 401
        assert r.content_type == "application/json"
        assert await r.json() == {
            "error": "login_required",
            "message": "Log in with Salesforce first.",
            "login_url": "/login/salesforce",
        }
        assert r.headers["WWW-Authenticate"].startswith("Cookie ")
        assert r.headers["Vary"] == "Accept"


async def test_not_logged_in_browser_goes_to_login_and_back(app, http):
    """Browsers: 303 to the login path with next=<path and query>, which login honours."""
    async with http.get(f"{app.url}/api/me?x=1", headers=HTML, allow_redirects=False) as r:
        assert r.status == 303
        target = r.headers["Location"]
    assert target == "/login/salesforce?next=%2Fapi%2Fme%3Fx%3D1"
    assert await log_in(http, app, target.removeprefix("/login/salesforce")) == "/api/me?x=1"


@pytest.mark.parametrize("next_path", ["//evil.example/x", "https://evil.example/", "/\\evil"])
async def test_next_never_leaves_the_site(app, http, next_path):
    """An absolute or protocol-relative next is ignored: the login lands on after_login."""
    query = "?" + str(URL.build(query={"next": next_path}).query_string)
    assert await log_in(http, app, query) == "/"


async def test_tampered_pending_cookie_shows_a_page_and_saves_nothing(app, http, fake_org):
    """A changed pending-login cookie: 400 page 'tampered', no token request, no user."""
    callback = await authorize(http, await start_login(http, app))
    value = cookie(http, "sfoauth_login")
    assert value is not None
    forged = SimpleCookie()
    forged["sfoauth_login"] = value[:20] + ("A" if value[20] != "A" else "B") + value[21:]
    forged["sfoauth_login"]["path"] = "/login/salesforce/callback"
    http.cookie_jar.clear(lambda morsel: morsel.key == "sfoauth_login")
    http.cookie_jar.update_cookies(forged, URL(app.url))
    async with http.get(callback, allow_redirects=False) as r:
        assert r.status == 400
        page = await r.text()
    assert 'data-page="tampered"' in page
    assert fake_org.stats.token_requests_total == 0
    assert cookie(http, "sfoauth_user") is None
    assert len(app.users) == 0


async def test_forged_state_is_refused(app, http, fake_org):
    """A callback whose state is not the pending login's: 400 page, no token request."""
    await start_login(http, app)
    async with http.get(
        f"{app.url}/login/salesforce/callback?code=stolen&state=forged", allow_redirects=False
    ) as r:
        assert r.status == 400
        assert 'data-page="state"' in await r.text()
    assert fake_org.stats.token_requests_total == 0


async def test_a_login_is_accepted_once(app, http, fake_org):
    """The same callback and pending cookie again: 400 'replayed', one code exchange only."""
    callback = await authorize(http, await start_login(http, app))
    pending = cookie(http, "sfoauth_login")
    async with http.get(callback, allow_redirects=False) as r:
        assert r.status == 303
    async with client() as attacker:
        attacker.cookie_jar.update_cookies({"sfoauth_login": pending or ""}, URL(app.url))
        async with attacker.get(callback, allow_redirects=False) as r:
            assert r.status == 400
            assert 'data-page="replayed"' in await r.text()
        assert cookie(attacker, "sfoauth_user") is None
    assert fake_org.stats.token_requests["authorization_code"] == 1


async def test_expired_pending_login(app, http, fake_org, monkeypatch):
    """A callback 11 minutes after the login started: 400 'expired', nothing exchanged."""
    from sfoauth_async import _login_cookies  # noqa: PLC0415

    callback = await authorize(http, await start_login(http, app))
    real = _login_cookies._now
    monkeypatch.setattr(_login_cookies, "_now", lambda: real() + 11 * 60)
    async with http.get(callback, allow_redirects=False) as r:
        assert r.status == 400
        assert 'data-page="expired"' in await r.text()
    assert fake_org.stats.token_requests_total == 0


def callback_with(app: RunningApp, authorize_url: str, **params: str) -> str:
    """A callback URL for the pending login's state, with other parameters."""
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    return str(URL(f"{app.url}/login/salesforce/callback").with_query(state=state, **params))


async def test_access_denied_page(app, http, fake_org):
    """error=access_denied with the right state: 403 page 'denied', nothing saved."""
    url = callback_with(app, await start_login(http, app), error="access_denied")
    async with http.get(url, allow_redirects=False) as r:
        assert r.status == 403
        assert 'data-page="denied"' in await r.text()
    assert fake_org.stats.token_requests_total == 0
    assert cookie(http, "sfoauth_user") is None


async def test_salesforce_error_in_the_callback_is_escaped(app, http):
    """An error Salesforce sends back: 400 page, its description shown escaped."""
    url = callback_with(
        app,
        await start_login(http, app),
        error="invalid_scope",
        error_description="<script>alert(1)</script>",
    )
    async with http.get(url, allow_redirects=False) as r:
        assert r.status == 400
        page = await r.text()
    assert 'data-page="salesforce-error"' in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_code_refused_by_salesforce(app, http, fake_org):
    """A code Salesforce does not know: 502 page 'salesforce-error', no user, nothing stored."""
    url = callback_with(app, await start_login(http, app), code="bogus")
    async with http.get(url, allow_redirects=False) as r:
        assert r.status == 502
        page = await r.text()
    assert 'data-page="salesforce-error"' in page
    assert "invalid authorization code" in page
    assert "Traceback" not in page
    assert fake_org.stats.token_requests["authorization_code"] == 1
    assert cookie(http, "sfoauth_user") is None
    assert len(app.users) == 0


async def test_forged_user_cookie_is_nobody(app, http):
    """A user cookie not sealed by the app: not logged in, and the cookie is cleared."""
    http.cookie_jar.update_cookies({"sfoauth_user": "gAAAAAforged"}, URL(app.url))
    async with http.get(f"{app.url}/api/me", headers=JSON, allow_redirects=False) as r:
        assert r.status == 401
        assert "sfoauth_user=;" in r.headers.get("Set-Cookie", "")


async def test_logout(app, http, fake_org):
    """POST logout: the refresh token is revoked, the cookie cleared, the next visit logs in."""
    await log_in(http, app)
    user_key = f"{fake_org.org_id}/{fake_org.user.user_id}"
    stored = await app.users.store.load(app.users.store_key(user_key))
    assert stored is not None
    assert stored.token is not None
    refresh_token = stored.token.refresh_token or ""
    async with http.get(f"{app.url}/logout/salesforce", headers=HTML) as r:
        assert 'id="sfoauth-logout"' in await r.text()  # the form behind a link
    async with http.post(f"{app.url}/logout/salesforce", headers=HTML) as r:
        assert r.status == 200
        assert 'data-page="logged-out"' in await r.text()
    assert not (await app.flow.introspect(refresh_token, token_type_hint="refresh_token")).active
    assert cookie(http, "sfoauth_user") is None
    async with http.get(f"{app.url}/", headers=HTML, allow_redirects=False) as r:
        assert r.status == 303
        assert r.headers["Location"].startswith("/login/salesforce")


async def test_cross_site_logout_is_refused(app, http, fake_org):
    """A logout posted from another site: 403, nothing revoked, still logged in."""
    await log_in(http, app)
    headers = {**HTML, "Sec-Fetch-Site": "cross-site"}
    async with http.post(f"{app.url}/logout/salesforce", headers=headers) as r:
        assert r.status == 403
    assert fake_org.stats.revocations == 0
    async with http.get(f"{app.url}/api/me", headers=JSON) as r:
        assert r.status == 200


async def test_logged_out_elsewhere_means_log_in_again(app, http, fake_org):
    """Another worker logged the user out (a tombstone): this one sends them to login."""
    await log_in(http, app)
    user_key = f"{fake_org.org_id}/{fake_org.user.user_id}"
    other_worker = fake_org.authorization_code_flow(app.flow.redirect_uri)
    async with UserSessions(other_worker, store=app.users.store) as other:
        await other.logout(user_key)
    # This worker still holds the token in memory until it sees the tombstone: a refresh
    # makes it look (here, after the session expired on the server).
    fake_org.expire_all_sessions()
    async with http.get(f"{app.url}/api/me", headers=JSON) as r:
        assert r.status == 401  # met by the handler's API call, not a 500
        assert "sfoauth_user=;" in r.headers.get("Set-Cookie", "")
    async with http.get(f"{app.url}/api/me", headers=JSON) as r:
        assert r.status == 401


async def test_store_down_is_503(fake_org):
    """The store cannot be reached for a user's token: 503 with Retry-After, not a 500."""

    class DownStore(MemoryTokenStore):
        async def load(self, _key: str):  # type: ignore[no-untyped-def]
            raise StoreUnavailableError("the store is down")

    fake_org.auto_approve = True
    async with serve_example("aiohttp", fake_org, DownStore()) as app, client() as http:
        sealed = WebLogin(app.users, secret_key=SECRET_KEY)._cookies.seal_user("00D/005")
        http.cookie_jar.update_cookies({"sfoauth_user": sealed}, URL(app.url))
        async with http.get(f"{app.url}/api/me", headers=JSON) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "30"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json", False),
        ("*/*", False),
        (None, False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
    ],
)
def test_who_wants_a_page(accept, html):
    """Browsers (text/html preferred) get pages; API clients and curl get JSON."""
    assert wants_html(accept) is html


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/reports?year=2026", True),
        ("/", True),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("relative", False),
        ("/a\nb", False),
        ("/" + "a" * 3000, False),
        (None, False),
    ],
)
def test_safe_next(path, kept):
    """Only paths of this site are returned to after a login."""
    assert safe_next(path) == (path if kept else None)


@pytest.mark.redis
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_one_worker_starts_a_login_another_finishes_it_once(
    fake_org: FakeSalesforceOrg, redis_url: str, tmp_path: Path, framework: str
):
    """Two worker processes on one Redis: B finishes A's login; the replay to A is refused."""
    fake_org.auto_approve = True
    ports = free_port(), free_port()
    redirect = callback_url(ports[0])  # behind one address in production
    fake_org.app.callback_urls.append(redirect)
    env = org_env(fake_org, REDIS_URL=redis_url, SF_REDIRECT_URI=redirect)
    workers = [
        await ExampleProcess.start(framework, port, env, tmp_path / f"{port}.log") for port in ports
    ]
    try:
        async with client() as http:
            first, second = workers
            async with http.get(f"{first.url}/login/salesforce", allow_redirects=False) as r:
                authorize_url = r.headers["Location"]
            query = urlsplit(await authorize(http, authorize_url)).query
            pending = cookie(http, "sfoauth_login")
            callback = f"/login/salesforce/callback?{query}"
            async with http.get(f"{second.url}{callback}", allow_redirects=False) as r:
                assert r.status == 303, await r.text()
            for worker in workers:
                async with http.get(f"{worker.url}/api/me", headers=JSON) as r:
                    assert r.status == 200
                    assert (await r.json())["name"] == fake_org.user.display_name
        async with client() as replaying:
            replaying.cookie_jar.update_cookies({"sfoauth_login": pending or ""}, URL(first.url))
            async with replaying.get(f"{first.url}{callback}", allow_redirects=False) as r:
                assert r.status == 400
                assert 'data-page="replayed"' in await r.text()
    finally:
        for worker in workers:
            await worker.stop()
    assert fake_org.stats.token_requests["authorization_code"] == 1
