"""The fake org's authorize endpoint and pages, and the authorization-code grant."""

from __future__ import annotations

import base64
import hashlib
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest

from sfoauth_async.testing import FakeSalesforceOrg

CALLBACK = "http://localhost:1717/OauthRedirect"
VERIFIER = "v" * 43 + "-verifier-with-plenty-of-entropy"


def challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Forms(HTMLParser):
    """Collect every form's action and inputs (and buttons) from an HTML page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: D102
        attributes = {name: value or "" for name, value in attrs}
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "form":
            self.forms.append({"action": attributes.get("action"), "fields": {}})
        elif tag in ("input", "button") and self.forms and attributes.get("type") == "hidden":
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value", "")


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect Location."""
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def open_authorize(
    client: aiohttp.ClientSession, org: FakeSalesforceOrg, **params: str
) -> aiohttp.ClientResponse:
    """GET the authorize URL of the default app (no redirect following); empty values drop."""
    query = {
        "response_type": "code",
        "client_id": org.app.client_id,
        "redirect_uri": CALLBACK,
        "state": "s-123",
        **params,
    }
    query = {name: value for name, value in query.items() if value}
    return await client.get(
        org.login_url + "/services/oauth2/authorize", params=query, allow_redirects=False
    )


async def log_in(
    client: aiohttp.ClientSession,
    org: FakeSalesforceOrg,
    password: str | None = None,
    **params: str,
) -> tuple[int, str]:
    """Open the authorize URL and submit the login form; return the answer's status and page."""
    async with await open_authorize(client, org, **params) as response:
        assert response.status == 200
        page = Forms(await response.text())
    form = page.forms[0]
    data = {
        **form["fields"],
        "username": org.user.username,
        "password": org.user.password if password is None else password,
    }
    async with client.post(
        org.login_url + form["action"], data=data, allow_redirects=False
    ) as response:
        return response.status, await response.text()


async def approve(
    client: aiohttp.ClientSession, org: FakeSalesforceOrg, decision: str = "allow", **params: str
) -> str:
    """Log in, press Allow or Deny, and return the redirect Location."""
    status, text = await log_in(client, org, **params)
    assert status == 200
    page = Forms(text)
    assert {"oaapprove", "oadeny"} <= page.ids
    data = {**page.forms[0]["fields"], "decision": decision}
    async with client.post(
        org.login_url + page.forms[0]["action"], data=data, allow_redirects=False
    ) as answer:
        assert answer.status == 302
        return answer.headers["Location"]


async def code_for(client: aiohttp.ClientSession, org: FakeSalesforceOrg, **params: str) -> str:
    """An authorization code through auto-approval."""
    org.auto_approve = True
    async with await open_authorize(client, org, **params) as response:
        assert response.status == 302
        return query_of(response.headers["Location"])["code"]


def exchange_form(org: FakeSalesforceOrg, code: str, **extra: str) -> dict[str, str]:
    """The token form that exchanges ``code`` for the default app."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "redirect_uri": CALLBACK,
        **extra,
    }


def error(description: str, code: str = "invalid_grant") -> tuple[int, dict[str, str]]:
    """The (status, body) of a token-endpoint error."""
    return 400, {"error": code, "error_description": description}


# -- the pages ----------------------------------------------------------------------------------


async def test_unknown_client_shows_error_page(client, org):
    """An unknown client_id gets a 400 HTML error page, never a redirect."""
    async with await open_authorize(client, org, client_id="3MVG9nope") as response:
        assert response.status == 400
        assert response.content_type == "text/html"
        assert "Location" not in response.headers
        assert "invalid_client_id" in await response.text()


async def test_unregistered_redirect_uri_shows_error_page(client, org):
    """A redirect_uri that is not a callback URL of the app gets an error page."""
    async with await open_authorize(client, org, redirect_uri="http://evil.example/cb") as response:
        assert response.status == 400
        assert "Location" not in response.headers
        assert "redirect_uri_mismatch" in await response.text()


async def test_login_page_carries_parameters(client, org):
    """The login page has username, password and #Login, and carries the parameters."""
    async with await open_authorize(client, org, scope="api refresh_token", nonce="n1") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = Forms(await response.text())
    assert {"username", "password", "Login"} <= page.ids
    assert page.forms[0]["fields"] == {
        "response_type": "code",
        "client_id": org.app.client_id,
        "redirect_uri": CALLBACK,
        "scope": "api refresh_token",
        "state": "s-123",
        "nonce": "n1",
    }


async def test_allow_redirects_with_code(client, org, token):
    """Login then Allow redirects to the callback with a code and the state."""
    location = await approve(client, org)
    assert location.startswith(CALLBACK + "?")
    query = query_of(location)
    assert query["state"] == "s-123"
    status, body = await token(site="login", **exchange_form(org, query["code"]))
    assert status == 200, body


async def test_deny_redirects_with_access_denied(client, org):
    """Deny redirects with error=access_denied and Salesforce's description."""
    location = await approve(client, org, decision="deny")
    assert location == (
        CALLBACK + "?error=access_denied&error_description=end-user+denied+authorization"
        "&state=s-123"
    )


async def test_wrong_password_shows_login_again(client, org):
    """A wrong password shows the login page again, with an error and the parameters."""
    status, text = await log_in(client, org, password="wrong")
    assert status == 200
    page = Forms(text)
    assert {"error", "username", "password", "Login"} <= page.ids
    assert page.forms[0]["fields"]["state"] == "s-123"


async def test_inactive_user_cannot_log_in(client, org):
    """An inactive user is refused on the login page."""
    org.user.active = False
    status, text = await log_in(client, org)
    assert status == 200
    assert "error" in Forms(text).ids


async def test_tampered_hidden_fields(client, org):
    """The login handler re-checks the carried client and redirect URI."""
    async with await open_authorize(client, org) as response:
        fields = Forms(await response.text()).forms[0]["fields"]
    fields.update(
        redirect_uri="http://evil.example/cb",
        username=org.user.username,
        password=org.user.password,
    )
    async with client.post(org.login_url + "/login", data=fields, allow_redirects=False) as answer:
        assert answer.status == 400
        assert "Location" not in answer.headers


async def test_unknown_approval(client, org):
    """An approval form that was never issued gets an error page."""
    async with client.post(
        org.login_url + "/approve", data={"pending": "nope", "decision": "allow"}
    ) as response:
        assert response.status == 400


async def test_approval_is_single_use(client, org):
    """The same approval form cannot be submitted twice."""
    _, text = await log_in(client, org)
    fields = {**Forms(text).forms[0]["fields"], "decision": "allow"}
    for status in (302, 400):
        async with client.post(
            org.login_url + "/approve", data=fields, allow_redirects=False
        ) as answer:
            assert answer.status == status


async def test_require_pkce_without_challenge(client, org):
    """An app requiring PKCE redirects with invalid_request when no challenge is sent."""
    org.app.require_pkce = True
    async with await open_authorize(client, org) as response:
        assert response.status == 302
        query = query_of(response.headers["Location"])
    assert (query["error"], query["state"]) == ("invalid_request", "s-123")


async def test_plain_challenge_method_refused(client, org):
    """Only S256 is accepted as code_challenge_method."""
    async with await open_authorize(
        client, org, code_challenge="abc", code_challenge_method="plain"
    ) as response:
        assert query_of(response.headers["Location"])["error"] == "invalid_request"


async def test_unsupported_response_type(client, org):
    """response_type=token redirects with unsupported_response_type."""
    async with await open_authorize(client, org, response_type="token") as response:
        assert query_of(response.headers["Location"])["error"] == "unsupported_response_type"


async def test_scope_not_allowed(client, org):
    """A scope the app does not have redirects with invalid_scope."""
    async with await open_authorize(client, org, scope="api chatter_api") as response:
        assert query_of(response.headers["Location"])["error"] == "invalid_scope"


async def test_auto_approve(client):
    """auto_approve redirects at once with a code, for the login_hint user if known."""
    async with FakeSalesforceOrg(auto_approve=True) as org:
        bob = org.add_user(username="bob@fake.org")
        async with await open_authorize(client, org, login_hint="bob@fake.org") as response:
            assert response.status == 302
            code = query_of(response.headers["Location"])["code"]
        async with client.post(
            org.login_url + "/services/oauth2/token", data=exchange_form(org, code)
        ) as response:
            assert (await response.json())["id"].endswith("/" + bob.user_id)


async def test_redirect_without_state_and_with_query(client, org):
    """No state means no state parameter; a callback with a query keeps it."""
    callback = "http://127.0.0.1:9/cb?tenant=1"
    org.app.callback_urls.append(callback)
    org.auto_approve = True
    async with await open_authorize(client, org, redirect_uri=callback, state="") as response:
        location = response.headers["Location"]
    assert location.startswith(callback + "&code=")
    assert "state" not in query_of(location)


# -- the code exchange --------------------------------------------------------------------------


async def test_code_exchange_shape(client, org, token):
    """The exchange answers the signed shape with refresh_token and id_token when scoped."""
    code = await code_for(client, org, scope="api refresh_token openid", nonce="n-42")
    status, body = await token(site="login", **exchange_form(org, code))
    assert status == 200
    assert set(body) == {
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "id_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert body["scope"] == "api refresh_token openid"
    async with client.get(org.login_url + "/id/keys") as response:
        key = jwt.PyJWK((await response.json())["keys"][0]).key
    claims = jwt.decode(body["id_token"], key, algorithms=["RS256"], audience=org.app.client_id)
    assert claims["nonce"] == "n-42"
    assert claims["sub"] == body["id"]
    assert claims["iss"] == org.login_url


@pytest.mark.parametrize(
    ("scope", "has_refresh_token"),
    [("api", False), ("api refresh_token", True), ("api offline_access", True)],
)
async def test_refresh_token_needs_scope(client, org, token, scope, has_refresh_token):
    """A refresh token comes only with the refresh_token or offline_access scope."""
    code = await code_for(client, org, scope=scope)
    status, body = await token(**exchange_form(org, code))
    assert status == 200
    assert ("refresh_token" in body) is has_refresh_token
    assert "id_token" not in body


async def test_no_scope_grants_all_app_scopes(client, org, token):
    """Without a scope parameter the token gets every scope of the app."""
    code = await code_for(client, org)
    _, body = await token(**exchange_form(org, code))
    assert body["scope"].split() == org.app.scopes
    assert "refresh_token" in body


async def test_code_is_single_use(client, org, token):
    """Reusing a code answers invalid_grant "expired authorization code"."""
    code = await code_for(client, org)
    assert (await token(**exchange_form(org, code)))[0] == 200
    assert await token(**exchange_form(org, code)) == error("expired authorization code")


async def test_unknown_code(org, token):
    """A code the org never issued answers invalid_grant "invalid authorization code"."""
    assert await token(**exchange_form(org, "aPrxnope")) == error("invalid authorization code")


async def test_code_expires(client):
    """Codes are short-lived."""
    now = [time.time()]
    async with FakeSalesforceOrg(clock=lambda: now[0]) as org:
        code = await code_for(client, org)
        now[0] += 16 * 60
        async with client.post(
            org.login_url + "/services/oauth2/token", data=exchange_form(org, code)
        ) as response:
            assert (response.status, await response.json()) == error("expired authorization code")


async def test_code_redirect_uri_must_match(client, org, token):
    """The exchange's redirect_uri must equal the authorize one."""
    code = await code_for(client, org)
    form = exchange_form(org, code, redirect_uri="http://localhost:1717/other")
    assert await token(**form) == error(
        "redirect_uri must match configuration", "redirect_uri_mismatch"
    )


async def test_code_of_another_app(client, org, token):
    """A code is bound to the app it was issued to."""
    code = await code_for(client, org)
    other = org.add_app()
    form = exchange_form(org, code, client_id=other.client_id, client_secret=other.client_secret)
    assert await token(**form) == error("invalid authorization code")


async def test_confidential_exchange_needs_secret(client, org, token):
    """A confidential app must send its secret with the code."""
    code = await code_for(client, org)
    form = exchange_form(org, code)
    del form["client_secret"]
    assert await token(**form) == error("invalid client credentials", "invalid_client")


async def test_pkce_verifier_missing(client, org, token):
    """A challenge sent but no verifier answers invalid_grant."""
    code = await code_for(client, org, code_challenge=challenge(VERIFIER))
    status, body = await token(**exchange_form(org, code))
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_pkce_verifier_mismatch(client, org, token):
    """A verifier that does not hash to the challenge answers invalid_request."""
    code = await code_for(client, org, code_challenge=challenge(VERIFIER))
    status, body = await token(**exchange_form(org, code, code_verifier=VERIFIER + "x"))
    assert (status, body["error"]) == (400, "invalid_request")


async def test_pkce_verifier_matches(client, org, token):
    """The right verifier completes the exchange."""
    code = await code_for(
        client, org, code_challenge=challenge(VERIFIER), code_challenge_method="S256"
    )
    assert (await token(**exchange_form(org, code, code_verifier=VERIFIER)))[0] == 200


async def test_public_client(client, org, token):
    """A public app exchanges with PKCE and no secret, and is refused if it sends one."""
    public = org.add_app(confidential=False, require_pkce=True, callback_urls=[CALLBACK])
    form = {"client_id": public.client_id, "code_challenge": challenge(VERIFIER)}
    code = await code_for(client, org, **form)
    exchange = exchange_form(org, code, client_id=public.client_id, code_verifier=VERIFIER)
    assert await token(**exchange) == error("invalid client credentials", "invalid_client")
    del exchange["client_secret"]
    assert (await token(**exchange))[0] == 200
