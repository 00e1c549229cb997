"""`AuthorizationCodeFlow`: the web-server flow with PKCE of spec §2.1."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aioresponses import aioresponses
from multidict import MultiDict, MultiDictProxy
from sent import authorization, form, posts_to
from yarl import URL

from sfoauth_async import (
    AsyncSession,
    AuthorizationCodeFlow,
    AuthorizationDeniedError,
    AuthorizationError,
    AuthorizationRequest,
    ConfigurationError,
    InvalidCallbackError,
    InvalidGrantError,
    RefreshOutcomeUnknownError,
    RetryPolicy,
    StateMismatchError,
    Token,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

CLIENT_ID = "3MVG9fake.consumer.key"
CLIENT_SECRET = "fake-consumer-secret-for-tests"
REDIRECT_URI = "https://app.example.com/sf/callback"
LOGIN_URL = "https://login.salesforce.com"
TOKEN_URL = f"{LOGIN_URL}/services/oauth2/token"
REFRESH_TOKEN = "5Aep861FAKE.REFRESH.ONE"
ORG_ID = "00Dxx0000001gPLEAY"
USER_ID = "005xx000001SwiUAAS"
RESPONSE = {
    "access_token": "00Dxx!FAKE.ACCESS",
    "refresh_token": REFRESH_TOKEN,
    "signature": "FAKEsig=",
    "scope": "api refresh_token",
    "instance_url": "https://acme.my.salesforce.com",
    "id": f"https://login.salesforce.com/id/{ORG_ID}/{USER_ID}",
    "token_type": "Bearer",
    "issued_at": "1700000000000",
}


def _flow(**kwargs: Any) -> AuthorizationCodeFlow:
    options = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT_URI}
    return AuthorizationCodeFlow(**{**options, **kwargs})


def _query(url: str) -> dict[str, str]:
    """The query of an authorize URL; each parameter must appear once."""
    multi = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in multi.values())
    return {key: values[0] for key, values in multi.items()}


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


# --- authorization_url -----------------------------------------------------------------


def test_authorization_url_has_the_required_parameters():
    """The authorize URL carries response_type=code, client_id, redirect_uri, PKCE S256, state."""
    request = _flow().authorization_url()
    assert isinstance(request, AuthorizationRequest)
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "login.salesforce.com",
        "/services/oauth2/authorize",
    )
    assert _query(request.url) == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": _s256(request.code_verifier),
        "code_challenge_method": "S256",
        "state": request.state,
    }


def test_authorization_url_never_carries_secret_or_verifier():
    """The browser-visible URL has neither the client secret nor the PKCE verifier."""
    request = _flow().authorization_url()
    assert CLIENT_SECRET not in request.url
    assert request.code_verifier not in request.url
    assert request.code_verifier not in repr(request)


def test_random_state_and_verifier_per_request():
    """Without state=, each request gets a fresh high-entropy state and verifier."""
    flow = _flow()
    first, second = flow.authorization_url(), flow.authorization_url()
    assert first.state != second.state
    assert len(first.state) >= 32
    assert first.code_verifier != second.code_verifier
    assert 43 <= len(first.code_verifier) <= 128


def test_given_state_is_used():
    """A caller's state is sent as is."""
    request = _flow().authorization_url(state="my opaque/state+1")
    assert request.state == "my opaque/state+1"
    assert _query(request.url)["state"] == "my opaque/state+1"


def test_empty_state_is_refused():
    """An empty state would disable the CSRF check."""
    with pytest.raises(ConfigurationError, match="state"):
        _flow().authorization_url(state="")


def test_optional_parameters_when_given():
    """scope, prompt, login_hint and nonce are sent when given."""
    flow = _flow(scope="api refresh_token openid")
    request = flow.authorization_url(
        prompt="login consent", login_hint="ada@acme.example", nonce="n-0S6_WzA2Mj"
    )
    query = _query(request.url)
    assert query["scope"] == "api refresh_token openid"
    assert query["prompt"] == "login consent"
    assert query["login_hint"] == "ada@acme.example"
    assert query["nonce"] == "n-0S6_WzA2Mj"


def test_scope_from_an_iterable_is_space_joined_without_duplicates():
    """Scopes given as a list become one space-separated value, duplicates dropped."""
    request = _flow(scope=["api", "refresh_token", "api"]).authorization_url()
    assert _query(request.url)["scope"] == "api refresh_token"


def test_experience_cloud_path_is_kept():
    """An Experience Cloud login URL keeps its path before /services/oauth2/authorize."""
    request = _flow(login_url="https://acme.my.site.com/partners/").authorization_url()
    assert urlsplit(request.url).path == "/partners/services/oauth2/authorize"


@pytest.mark.parametrize(
    "redirect_uri", ["http://app.example.com/cb", "/relative/callback", "app.example.com/cb"]
)
def test_insecure_or_relative_redirect_uri_is_refused(redirect_uri: str):
    """The redirect URI must be absolute, and https unless on loopback."""
    with pytest.raises(ConfigurationError, match="redirect_uri"):
        _flow(redirect_uri=redirect_uri)


def test_loopback_redirect_uri_is_accepted():
    """http://localhost callbacks are fine for desktop and CLI apps."""
    assert _flow(redirect_uri="http://localhost:1717/OauthRedirect").redirect_uri == (
        "http://localhost:1717/OauthRedirect"
    )


# --- parse_callback --------------------------------------------------------------------


@pytest.mark.parametrize(
    "callback",
    [
        f"{REDIRECT_URI}?code=aPrx%2Fcode%3D%3D&state=s-123",
        "code=aPrx%2Fcode%3D%3D&state=s-123",
        "?code=aPrx%2Fcode%3D%3D&state=s-123",
        f"{REDIRECT_URI}?state=s-123&code=aPrx%2Fcode%3D%3D#_=_",
        {"code": "aPrx/code==", "state": "s-123"},
        MultiDict([("code", "aPrx/code=="), ("state", "s-123")]),
        MultiDictProxy(MultiDict([("code", "aPrx/code=="), ("state", "s-123")])),
        parse_qs("code=aPrx%2Fcode%3D%3D&state=s-123"),
        URL(f"{REDIRECT_URI}?code=aPrx%2Fcode%3D%3D&state=s-123"),
        f"{REDIRECT_URI}?code=aPrx%2Fcode%3D%3D&state=s-123&foo=1&foo=2",
        "HTTPS://APP.example.com:443/sf/callback?code=aPrx%2Fcode%3D%3D&state=s-123",
    ],
)
def test_parse_callback_returns_the_code(callback: Any):
    """A full URL, a query string, a yarl URL or any parsed query give the decoded code."""
    assert _flow().parse_callback(callback, state="s-123") == "aPrx/code=="


@pytest.mark.parametrize(
    "callback",
    [
        "code=abc&state=other",
        "code=abc&state=s-12",
        "code=abc&state=s-1234",
        "code=abc",
        "code=abc&state=",
        {"code": "abc"},
    ],
)
def test_parse_callback_state_mismatch(callback: Any):
    """A missing or different state is a StateMismatchError (possible CSRF)."""
    with pytest.raises(StateMismatchError, match="state"):
        _flow().parse_callback(callback, state="s-123")


def test_parse_callback_access_denied():
    """error=access_denied is AuthorizationDeniedError with error and description kept."""
    query = urlencode(
        {"error": "access_denied", "error_description": "end-user denied authorization"}
    )
    with pytest.raises(AuthorizationDeniedError) as info:
        _flow().parse_callback(f"{REDIRECT_URI}?{query}&state=s-123", state="s-123")
    assert info.value.error == "access_denied"
    assert info.value.description == "end-user denied authorization"


def test_parse_callback_access_denied_hyphen_spelling():
    """The help page's literal 'access-denied' spelling is a denial too (spec §2.1)."""
    with pytest.raises(AuthorizationDeniedError):
        _flow().parse_callback("error=access-denied&state=s-123", state="s-123")


def test_parse_callback_other_error():
    """Another error is an AuthorizationError that is not a denial."""
    query = urlencode({"error": "invalid_request", "error_description": "missing code_challenge"})
    with pytest.raises(AuthorizationError, match="invalid_request") as info:
        _flow().parse_callback(f"{query}&state=s-123", state="s-123")
    assert not isinstance(info.value, AuthorizationDeniedError | StateMismatchError)
    assert info.value.error == "invalid_request"
    assert info.value.description == "missing code_challenge"


def test_parse_callback_without_code():
    """A callback with the right state but no code is an AuthorizationError."""
    with pytest.raises(AuthorizationError, match="code") as info:
        _flow().parse_callback("state=s-123", state="s-123")
    assert not isinstance(info.value, StateMismatchError)


# --- exchange and refresh ---------------------------------------------------------------


async def test_exchange_sends_the_code_grant(http: aioresponses):
    """The exchange sends grant_type, code, redirect_uri, code_verifier, client_id and secret."""
    http.post(TOKEN_URL, payload=RESPONSE)
    flow = _flow()
    request = flow.authorization_url()
    token = await flow.exchange("aPrx/code==", code_verifier=request.code_verifier)
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs) == {
        "grant_type": "authorization_code",
        "code": "aPrx/code==",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": request.code_verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert authorization(kwargs) is None
    ((_, url),) = http.requests
    assert url.query_string == ""
    assert token.refresh_token == REFRESH_TOKEN


async def test_public_client_sends_no_secret(http: aioresponses):
    """A public client (no secret) proves itself with the verifier only (spec §2.1)."""
    http.post(TOKEN_URL, payload=RESPONSE)
    flow = _flow(client_secret=None)
    await flow.exchange("code-1", code_verifier="v" * 43)
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs) == {
        "grant_type": "authorization_code",
        "code": "code-1",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": "v" * 43,
        "client_id": CLIENT_ID,
    }


async def test_exchange_with_basic_auth(http: aioresponses):
    """With Basic auth the credentials go in the header, never also in the body."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow(client_auth="basic").exchange("code-1", code_verifier="v" * 43)
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs) == {
        "grant_type": "authorization_code",
        "code": "code-1",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": "v" * 43,
    }
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert authorization(kwargs) == f"Basic {expected}"


def test_public_client_with_basic_auth_is_refused():
    """Basic auth needs a secret."""
    with pytest.raises(ConfigurationError, match="client_secret"):
        _flow(client_secret=None, client_auth="basic")


@pytest.mark.parametrize(("code", "verifier"), [("", "v" * 43), ("code-1", "")])
async def test_exchange_needs_code_and_verifier(http: aioresponses, code: str, verifier: str):
    """An empty code or verifier is refused before any request."""
    with pytest.raises(ConfigurationError):
        await _flow().exchange(code, code_verifier=verifier)
    assert http.requests == {}


async def test_expired_code_is_invalid_grant(http: aioresponses):
    """A reused or expired code raises InvalidGrantError advising to start again."""
    http.post(
        TOKEN_URL,
        status=400,
        payload={"error": "invalid_grant", "error_description": "expired authorization code"},
    )
    with pytest.raises(InvalidGrantError, match="authorization flow again") as info:
        await _flow().exchange("code-1", code_verifier="v" * 43)
    assert CLIENT_SECRET not in str(info.value)


async def test_fetch_token_after_exchange_refreshes(http: aioresponses):
    """After an exchange with a refresh token, fetch_token uses the refresh grant."""
    http.post(TOKEN_URL, payload=RESPONSE)
    http.post(TOKEN_URL, payload={k: v for k, v in RESPONSE.items() if k != "refresh_token"})
    flow = _flow()
    first = await flow.exchange("code-1", code_verifier="v" * 43)
    second = await flow.fetch_token(previous=first)
    exchange, refresh = posts_to(http, TOKEN_URL)
    assert form(exchange)["grant_type"] == "authorization_code"
    assert form(refresh) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert second.refresh_token == REFRESH_TOKEN


async def test_fetch_token_after_exchange_adopts_rotation(http: aioresponses):
    """A rotated refresh token rides on the new token and is what the next refresh uses."""
    http.post(TOKEN_URL, payload=RESPONSE)
    http.post(TOKEN_URL, payload={**RESPONSE, "refresh_token": "5Aep861FAKE.REFRESH.TWO"})
    http.post(TOKEN_URL, payload=RESPONSE | {"refresh_token": "5Aep861FAKE.REFRESH.THREE"})
    flow = _flow()
    first = await flow.exchange("code-1", code_verifier="v" * 43)
    second = await flow.fetch_token(previous=first)
    third = await flow.fetch_token(previous=second)
    used = [form(k).get("refresh_token") for k in posts_to(http, TOKEN_URL)]
    assert used == [None, REFRESH_TOKEN, "5Aep861FAKE.REFRESH.TWO"]
    assert third.refresh_token == "5Aep861FAKE.REFRESH.THREE"


async def test_one_flow_never_mixes_users(http: aioresponses):
    """The flow holds no user's refresh token: without a previous token it cannot refresh."""
    http.post(TOKEN_URL, payload=RESPONSE)
    flow = _flow()
    await flow.exchange("code-of-another-user", code_verifier="v" * 43)
    with pytest.raises(AuthorizationError):
        await flow.fetch_token()
    assert len(posts_to(http, TOKEN_URL)) == 1


def test_parse_callback_without_a_saved_state_is_a_state_mismatch():
    """An empty expected state (a lost user session) is refused as a state mismatch."""
    with pytest.raises(StateMismatchError, match="start the login again"):
        _flow().parse_callback("code=abc&state=", state="")


async def test_fetch_token_without_refresh_token_raises(http: aioresponses):
    """Without a refresh token there is nothing to renew with: AuthorizationError, no request."""
    flow = _flow()
    with pytest.raises(AuthorizationError, match="refresh_token"):
        await flow.fetch_token()
    http.post(TOKEN_URL, payload={k: v for k, v in RESPONSE.items() if k != "refresh_token"})
    token = await flow.exchange("code-1", code_verifier="v" * 43)
    with pytest.raises(AuthorizationError):
        await flow.fetch_token(previous=token)
    assert len(posts_to(http, TOKEN_URL)) == 1


def test_store_key_names_the_user_not_the_refresh_token():
    """The store key is <org id>/<user id> of the token, without any secret."""
    token = Token.from_response(RESPONSE)
    key = _flow().store_key(token)
    assert key == f"sfoauth:authorization_code:login.salesforce.com:{CLIENT_ID}:{ORG_ID}/{USER_ID}"
    assert REFRESH_TOKEN not in key
    assert CLIENT_SECRET not in key
    assert RESPONSE["access_token"] not in key
    assert _flow().store_key(Token.from_response({**RESPONSE, "refresh_token": "x"})) == key


@pytest.mark.parametrize("token", [None, Token(access_token="x", instance_url="https://a.com")])
def test_store_key_needs_a_token_with_an_identity(token: Token | None):
    """Without a token naming the user the store key cannot be built."""
    with pytest.raises(ConfigurationError, match="store key"):
        _flow().store_key(token)


def test_repr_has_no_secret():
    """The repr shows neither the secret nor a refresh token."""
    assert CLIENT_SECRET not in repr(_flow())


# --- parse_callback against forged or broken callbacks (issue 8, item 13) -------------------


@pytest.mark.parametrize("name", ["code", "state", "error", "error_description", "iss"])
def test_parse_callback_refuses_a_repeated_parameter_in_every_input_form(name: str):
    """A repeated OAuth parameter is InvalidCallbackError, from a string, MultiDict or parse_qs."""
    pairs = [("code", "abc"), ("state", "s-123"), (name, "forged")]
    if name not in ("code", "state"):
        pairs.append((name, "forged twice"))
    query = urlencode(pairs)
    for callback in (
        query,
        f"{REDIRECT_URI}?{query}",
        MultiDict(pairs),
        MultiDictProxy(MultiDict(pairs)),
        parse_qs(query),
    ):
        with pytest.raises(InvalidCallbackError, match=f"repeats {name}"):
            _flow().parse_callback(callback, state="s-123")


def test_parse_callback_ignores_repeats_of_other_parameters():
    """Parameters outside OAuth's (a framework's own) may repeat."""
    assert _flow().parse_callback("code=abc&state=s-123&x=1&x=2", state="s-123") == "abc"


@pytest.mark.parametrize(
    "callback",
    [
        "error=access_denied&error_description=denied&state=forged",
        "error=access_denied&error_description=denied",
        {"error": "invalid_request", "state": "forged"},
    ],
)
def test_parse_callback_checks_state_before_believing_an_error(callback: Any):
    """An error callback with a wrong or missing state is a StateMismatchError first."""
    with pytest.raises(StateMismatchError):
        _flow().parse_callback(callback, state="s-123")


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/sf/callback",
        "https://app.example.com/other/callback",
        "https://app.example.com/sf/callback/extra",
        "https://app.example.com:8443/sf/callback",
        "http://app.example.com/sf/callback",
        "https://app.example.com.evil.example/sf/callback",
    ],
)
def test_parse_callback_compares_a_full_url_with_redirect_uri(url: str):
    """Another scheme, host, port or path than redirect_uri is InvalidCallbackError."""
    with pytest.raises(InvalidCallbackError, match="not at redirect_uri") as caught:
        _flow().parse_callback(f"{url}?code=secret-code&state=s-123", state="s-123")
    assert "secret-code" not in str(caught.value)


def test_parse_callback_with_an_iss_of_the_login_url():
    """RFC 9207: an iss equal to the flow's login URL (a trailing slash aside) is accepted."""
    my_domain = _flow(login_url="https://acme.my.salesforce.com")
    for iss in ("https://acme.my.salesforce.com", "https://acme.my.salesforce.com/"):
        query = urlencode({"code": "abc", "state": "s-123", "iss": iss})
        assert my_domain.parse_callback(query, state="s-123") == "abc"


@pytest.mark.parametrize(
    ("login_url", "iss"),
    [
        ("https://acme.my.salesforce.com", "https://other.my.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://evil.example"),
        ("https://login.salesforce.com", "https://evil.example"),
        ("https://login.salesforce.com", "http://acme.my.salesforce.com"),
        ("https://login.salesforce.com", "https://acme.my.salesforce.com/path"),
        ("https://login.salesforce.com", ""),
    ],
)
def test_parse_callback_refuses_another_issuer(login_url: str, iss: str):
    """An iss naming another authorization server is a mix-up: InvalidCallbackError."""
    query = urlencode({"code": "abc", "state": "s-123", "iss": iss})
    with pytest.raises(InvalidCallbackError, match="iss"):
        _flow(login_url=login_url).parse_callback(query, state="s-123")


def test_parse_callback_from_login_salesforce_com_accepts_a_my_domain_issuer():
    """login.salesforce.com hands users on to their My Domain, which may name itself."""
    query = urlencode({"code": "abc", "state": "s-123", "iss": "https://acme.my.salesforce.com"})
    assert _flow().parse_callback(query, state="s-123") == "abc"


def test_parse_callback_escapes_salesforce_text_in_its_message():
    """A hostile error_description is escaped and cut in str(), kept raw in the attribute."""
    description = "denied\r\nINFO forged \x1b[31m" + "x" * 5000
    query = urlencode({"error": "access_denied", "error_description": description, "state": "s"})
    with pytest.raises(AuthorizationDeniedError) as caught:
        _flow().parse_callback(query, state="s")
    message = str(caught.value)
    assert "\r" not in message
    assert "\x1b" not in message
    assert "more characters" in message
    assert caught.value.description == description


@pytest.mark.parametrize(
    "callback",
    [
        {"code": 5, "state": "s-123"},
        {"code": ["abc", 7]},
        {"state": None},
        42,
        None,
        "https://app.example.com:99999/sf/callback?code=abc&state=s-123",
        "https://[::1/sf/callback?code=abc&state=s-123",
    ],
)
def test_parse_callback_refuses_what_is_not_a_callback(callback: Any):
    """Non-string values, unparsable URLs, or no callback at all: InvalidCallbackError."""
    with pytest.raises(InvalidCallbackError):
        _flow().parse_callback(callback, state="s-123")


def test_parse_callback_survives_lone_surrogates():
    """A parsed query holding a lone surrogate is a state mismatch, not a UnicodeError."""
    with pytest.raises(StateMismatchError):
        _flow().parse_callback({"code": "abc", "state": "s-\ud800"}, state="s-123")


async def test_a_refresh_whose_answer_was_lost_is_never_sent_again(fake_org: FakeSalesforceOrg):
    """A user's refresh: the refresh token may be spent, so it is not sent twice."""
    fake_org.app.rotate_refresh_tokens = True
    flow = fake_org.authorization_code_flow("http://localhost:8765/callback")
    token = await fake_org.refresh_token_flow().fetch_token()  # a user's token, as exchanged
    token = dataclasses.replace(token, received_at=token.received_at - timedelta(hours=3))
    fake_org.stats.reset()
    fake_org.faults.token.push(Fault.drop_answer())
    async with AsyncSession(flow, token=token, retry=RetryPolicy(cooldown_s=0.0)) as sf:
        for _ in range(2):
            with pytest.raises(RefreshOutcomeUnknownError):
                await sf.get("limits/")
    assert fake_org.stats.token_requests["refresh_token"] == 1
    assert fake_org.stats.refresh_token_reuses == 0
