"""`Flow`: revoke, introspect, userinfo and signature checks shared by every grant (§3, §6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
import pytest
from aioresponses import aioresponses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sent import authorization, form, only_request
from yarl import URL

from sfoauth_async import (
    DEFAULT_INSTANCE_HOSTS,
    AuthorizationCodeFlow,
    ClientCredentialsFlow,
    ConfigurationError,
    InstanceUrlError,
    Introspection,
    InvalidClientError,
    InvalidTokenError,
    JWTBearerFlow,
    PasswordFlow,
    RefreshTokenFlow,
    SignatureMismatchError,
    Token,
    TokenEndpointUnavailableError,
)
from sfoauth_async.testing import FakeSalesforceOrg

CLIENT_ID = "3MVG9fake.consumer.key"
CLIENT_SECRET = "fake-consumer-secret-for-tests"
MY_DOMAIN = "https://acme.my.salesforce.com"
REVOKE_URL = f"{MY_DOMAIN}/services/oauth2/revoke"
INTROSPECT_URL = f"{MY_DOMAIN}/services/oauth2/introspect"
USERINFO_URL = f"{MY_DOMAIN}/services/oauth2/userinfo"
ACCESS_TOKEN = "00Dxx!FAKE.ACCESS"
REFRESH_TOKEN = "5Aep861FAKE.REFRESH.ONE"
IDENTITY_URL = "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS"
ISSUED_AT = "1278448832702"


@pytest.fixture(scope="session")
def rsa_pem() -> bytes:
    """One RSA key for the session, for JWT bearer flows."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cc_flow(**kwargs: Any) -> ClientCredentialsFlow:
    options = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "login_url": MY_DOMAIN}
    return ClientCredentialsFlow(**{**options, **kwargs})


def _token(**fields: Any) -> Token:
    data = {
        "access_token": ACCESS_TOKEN,
        "instance_url": MY_DOMAIN,
        "id": IDENTITY_URL,
        "issued_at": ISSUED_AT,
        **fields,
    }
    return Token.from_response({k: v for k, v in data.items() if v is not None})


def _signature(secret: str, identity: str, issued_at: str) -> str:
    """base64(HMAC-SHA256(client_secret, id + issued_at)), computed as spec §3 says."""
    mac = hmac.new(secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


# --- revoke ------------------------------------------------------------------------------


async def test_revoke_sends_the_refresh_token_of_a_token(http: aioresponses):
    """Revoking a Token with a refresh token revokes the refresh token (and its sessions)."""
    http.post(REVOKE_URL, status=200, body="")
    assert await _cc_flow().revoke(_token(refresh_token=REFRESH_TOKEN)) is True
    method, url, kwargs = only_request(http)
    assert (method, url) == ("POST", URL(REVOKE_URL))
    assert form(kwargs)["token"] == REFRESH_TOKEN


async def test_revoke_sends_the_access_token_without_refresh_token(http: aioresponses):
    """A Token without a refresh token has its access token revoked."""
    http.post(REVOKE_URL, status=200, body="")
    assert await _cc_flow().revoke(_token()) is True
    _, _, kwargs = only_request(http)
    assert form(kwargs)["token"] == ACCESS_TOKEN


async def test_revoke_authenticates_the_client_in_the_body(http: aioresponses):
    """RFC 7009 2.1: a flow with a secret sends client_id and client_secret with the token."""
    http.post(REVOKE_URL, status=200, body="")
    await _cc_flow().revoke("a-token-string")
    _, url, kwargs = only_request(http)
    assert form(kwargs) == {
        "token": "a-token-string",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert authorization(kwargs) is None
    assert url.query_string == ""


async def test_revoke_authenticates_the_client_with_basic(http: aioresponses):
    """With client_auth='basic' the credentials go in the header, the body holds the token."""
    http.post(REVOKE_URL, status=200, body="")
    await _cc_flow(client_auth="basic").revoke("a-token-string")
    _, _, kwargs = only_request(http)
    assert form(kwargs) == {"token": "a-token-string"}
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert authorization(kwargs) == f"Basic {expected}"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "error=invalid_token&error_description=bad+token"),
        ("application/json", '{"error":"invalid_token","error_description":"bad token"}'),
    ],
)
async def test_revoke_of_an_unknown_token_returns_false(
    http: aioresponses, content_type: str, body: str
):
    """A 400 invalid_token means already revoked: revoke returns False (spec §9.14)."""
    http.post(REVOKE_URL, status=400, body=body, content_type=content_type)
    assert await _cc_flow().revoke(_token()) is False


async def test_revoke_other_failures_raise(http: aioresponses):
    """A revoke endpoint outage is raised, not reported as 'already revoked'."""
    http.post(REVOKE_URL, status=503, body="<html>down</html>", content_type="text/html")
    with pytest.raises(TokenEndpointUnavailableError):
        await _cc_flow().revoke(_token())


async def test_revoke_of_an_unsupported_token_type_raises(http: aioresponses):
    """unsupported_token_type is not 'already revoked': the token may still be live."""
    body = '{"error":"unsupported_token_type","error_description":"unsupported token type"}'
    http.post(REVOKE_URL, status=400, body=body, content_type="application/json")
    with pytest.raises(InvalidTokenError) as caught:
        await _cc_flow().revoke(_token())
    assert caught.value.error == "unsupported_token_type"


async def test_revoke_keeps_the_login_url_path(http: aioresponses):
    """An Experience Cloud login URL keeps its path for revoke too."""
    url = "https://acme.my.site.com/partners/services/oauth2/revoke"
    http.post(url, status=200, body="")
    await _cc_flow(login_url="https://acme.my.site.com/partners").revoke("t")
    _, sent_to, _ = only_request(http)
    assert sent_to == URL(url)


async def test_revoke_needs_a_token(http: aioresponses):
    """An empty token string is a configuration error, and nothing is sent."""
    with pytest.raises(ConfigurationError, match="token"):
        await _cc_flow().revoke("")
    assert http.requests == {}


async def test_jwt_flow_can_revoke(http: aioresponses, rsa_pem: bytes):
    """A flow without a secret (JWT bearer) revokes with the token alone."""
    url = "https://login.salesforce.com/services/oauth2/revoke"
    http.post(url, status=200, body="")
    flow = JWTBearerFlow(client_id=CLIENT_ID, username="u@acme.example", private_key=rsa_pem)
    assert await flow.revoke(_token()) is True
    _, _, kwargs = only_request(http)
    assert form(kwargs) == {"token": ACCESS_TOKEN}
    assert authorization(kwargs) is None


# --- introspect ----------------------------------------------------------------------------


async def test_introspect_body_auth_and_parsing(http: aioresponses):
    """Introspect POSTs token, hint and client credentials; exp/iat/nbf are aware datetimes."""
    http.post(
        INTROSPECT_URL,
        payload={
            "active": True,
            "scope": "api refresh_token",
            "client_id": CLIENT_ID,
            "username": "u@acme.example",
            "sub": IDENTITY_URL,
            "token_type": "access_token",
            "exp": 1900000000,
            "iat": 1899990000,
            "nbf": 1899990000,
        },
    )
    info = await _cc_flow().introspect(_token())
    method, url, kwargs = only_request(http)
    assert (method, url) == ("POST", URL(INTROSPECT_URL))
    assert form(kwargs) == {
        "token": ACCESS_TOKEN,
        "token_type_hint": "access_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert authorization(kwargs) is None
    assert isinstance(info, Introspection)
    assert info.active is True
    assert info.scope == frozenset({"api", "refresh_token"})
    assert info.client_id == CLIENT_ID
    assert info.username == "u@acme.example"
    assert info.sub == IDENTITY_URL
    assert info.token_type == "access_token"
    assert info.exp == datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
    assert info.iat == datetime.fromtimestamp(1899990000, UTC)
    assert info.nbf == datetime.fromtimestamp(1899990000, UTC)
    for moment in (info.exp, info.iat, info.nbf):
        assert moment is not None
        assert moment.utcoffset().total_seconds() == 0


async def test_introspect_basic_auth(http: aioresponses):
    """With client_auth='basic' the credentials go in the header only."""
    http.post(INTROSPECT_URL, payload={"active": True})
    await _cc_flow(client_auth="basic").introspect(_token())
    _, _, kwargs = only_request(http)
    assert form(kwargs) == {"token": ACCESS_TOKEN, "token_type_hint": "access_token"}
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert authorization(kwargs) == f"Basic {expected}"


async def test_introspect_refresh_token_hint(http: aioresponses):
    """A token string with token_type_hint='refresh_token' sends that hint."""
    http.post(INTROSPECT_URL, payload={"active": True, "token_type": "refresh_token"})
    await _cc_flow().introspect(REFRESH_TOKEN, token_type_hint="refresh_token")
    _, _, kwargs = only_request(http)
    assert form(kwargs)["token"] == REFRESH_TOKEN
    assert form(kwargs)["token_type_hint"] == "refresh_token"


async def test_introspect_string_without_hint_sends_none(http: aioresponses):
    """A bare token string is sent without a guessed hint."""
    http.post(INTROSPECT_URL, payload={"active": True})
    await _cc_flow().introspect("some-token")
    _, _, kwargs = only_request(http)
    assert "token_type_hint" not in form(kwargs)


async def test_introspect_inactive(http: aioresponses):
    """{'active': false} gives an inactive Introspection with no other field."""
    http.post(INTROSPECT_URL, payload={"active": False})
    info = await _cc_flow().introspect(_token())
    assert info.active is False
    assert (info.exp, info.iat, info.nbf, info.sub, info.username) == (None,) * 5
    assert info.scope == frozenset()


@pytest.mark.parametrize(
    "payload", [{}, {"active": "true"}, {"active": 1}, {"active": True, "exp": "soon"}]
)
def test_introspection_is_strict_about_active_and_lenient_elsewhere(payload: dict[str, Any]):
    """Only a JSON true is active; malformed optional fields become None."""
    info = Introspection.from_response(payload)
    assert info.active is (payload.get("active") is True)
    assert info.exp is None


async def test_introspect_needs_a_secret_for_jwt_flow(http: aioresponses, rsa_pem: bytes):
    """A JWT bearer flow has no secret and introspection needs one: ConfigurationError."""
    flow = JWTBearerFlow(client_id=CLIENT_ID, username="u@acme.example", private_key=rsa_pem)
    with pytest.raises(ConfigurationError, match="client_secret"):
        await flow.introspect(_token())
    assert http.requests == {}


async def test_introspect_needs_a_secret_for_refresh_flow_without_one(http: aioresponses):
    """A refresh-token flow built without a secret cannot introspect."""
    flow = RefreshTokenFlow(client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN)
    with pytest.raises(ConfigurationError, match="client_secret"):
        await flow.introspect(_token())
    assert http.requests == {}


# --- userinfo ----------------------------------------------------------------------------


async def test_userinfo_gets_with_bearer(http: aioresponses):
    """User info is a GET of login_url + /services/oauth2/userinfo with a Bearer header."""
    info = {"sub": IDENTITY_URL, "preferred_username": "u@acme.example"}
    http.get(USERINFO_URL, payload=info)
    assert await _cc_flow().userinfo(_token()) == info
    method, url, kwargs = only_request(http)
    assert (method, url) == ("GET", URL(USERINFO_URL))
    assert authorization(kwargs) == f"Bearer {ACCESS_TOKEN}"
    assert kwargs.get("data") is None
    assert url.query_string == ""


async def test_userinfo_keeps_the_login_url_path(http: aioresponses):
    """Experience Cloud users get user info from the site URL (spec §1)."""
    url = "https://acme.my.site.com/partners/services/oauth2/userinfo"
    http.get(url, payload={"sub": "x"})
    await _cc_flow(login_url="https://acme.my.site.com/partners").userinfo(_token())
    _, sent_to, _ = only_request(http)
    assert sent_to == URL(url)


async def test_userinfo_refused_token(http: aioresponses):
    """A 401 from userinfo is InvalidTokenError, without the token in the message."""
    http.get(USERINFO_URL, status=401, body="Bad_OAuth_Token", content_type="text/plain")
    with pytest.raises(InvalidTokenError) as info:
        await _cc_flow().userinfo(_token())
    assert ACCESS_TOKEN not in str(info.value)


# --- verify_signature ----------------------------------------------------------------------


def test_verify_signature_accepts_the_right_hmac():
    """A signature equal to base64(HMAC-SHA256(secret, id + issued_at)) verifies."""
    token = _token(signature=_signature(CLIENT_SECRET, IDENTITY_URL, ISSUED_AT))
    assert _cc_flow().verify_signature(token) is None


@pytest.mark.parametrize(
    "tampered",
    [
        {"id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000009EvilAAA"},
        {"issued_at": "1278448832703"},
    ],
)
def test_verify_signature_detects_tampering(tampered: dict[str, str]):
    """Changing id or issued_at after signing is a SignatureMismatchError without the secret."""
    signature = _signature(CLIENT_SECRET, IDENTITY_URL, ISSUED_AT)
    token = _token(signature=signature, **tampered)
    with pytest.raises(SignatureMismatchError) as info:
        _cc_flow().verify_signature(token)
    assert CLIENT_SECRET not in str(info.value)
    assert CLIENT_SECRET not in repr(info.value)


def test_verify_signature_with_another_secret_fails():
    """A signature made with another app's secret does not verify."""
    token = _token(signature=_signature("another-fake-secret", IDENTITY_URL, ISSUED_AT))
    with pytest.raises(SignatureMismatchError) as info:
        _cc_flow().verify_signature(token)
    assert CLIENT_SECRET not in str(info.value)


@pytest.mark.parametrize(
    "missing",
    [
        {"signature": None},
        {"signature": "", "id": IDENTITY_URL},
        {"id": None, "signature": "FAKEsig="},
        {"issued_at": None, "signature": "FAKEsig="},
    ],
)
def test_verify_signature_without_signature_fails(missing: dict[str, Any]):
    """A response with nothing to verify (JWT bearer) is a SignatureMismatchError."""
    with pytest.raises(SignatureMismatchError) as info:
        _cc_flow().verify_signature(_token(**missing))
    assert CLIENT_SECRET not in str(info.value)


def test_verify_signature_needs_a_secret(rsa_pem: bytes):
    """A flow without a secret cannot verify: ConfigurationError."""
    flow = JWTBearerFlow(client_id=CLIENT_ID, username="u@acme.example", private_key=rsa_pem)
    token = _token(signature=_signature(CLIENT_SECRET, IDENTITY_URL, ISSUED_AT))
    with pytest.raises(ConfigurationError, match="client_secret"):
        flow.verify_signature(token)


# --- client authentication ---------------------------------------------------------------


async def test_basic_client_auth_emits_no_deprecation(http: aioresponses):
    """client_auth='basic' works without deprecated aiohttp APIs (no DeprecationWarning)."""
    http.post(
        f"{MY_DOMAIN}/services/oauth2/token",
        payload={"access_token": "x", "instance_url": MY_DOMAIN},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        await _cc_flow(client_auth="basic").fetch_token()


def test_basic_client_auth_form_encodes_id_and_secret():
    """RFC 6749 2.3.1: id and secret are form-encoded before base64 (+ % / = : survive)."""
    secret = "a+b%c/d=e:f g"
    flow = _cc_flow(client_auth="basic", client_secret=secret)
    header = flow._authenticate({})
    assert header is not None
    decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
    assert decoded == f"{CLIENT_ID}:a%2Bb%25c%2Fd%3De%3Af+g"
    client_id, _, sent = decoded.partition(":")
    assert (unquote_plus(client_id), unquote_plus(sent)) == (CLIENT_ID, secret)


@pytest.mark.parametrize("exp", [1e20, -1e20, 10**400, float("nan")])
def test_introspection_exp_out_of_range_is_unknown(exp: float):
    """An exp past datetime's range (1e20) is an unknown expiry, not an OverflowError."""
    info = Introspection.from_response({"active": True, "exp": exp, "iat": exp, "nbf": exp})
    assert info.active is True
    assert (info.exp, info.iat, info.nbf) == (None, None, None)


# --- instance hosts ------------------------------------------------------------------------


def test_default_instance_hosts_cover_salesforce_domains_and_loopback():
    """The default allows every Salesforce domain family and loopback, nothing else."""
    flow = _cc_flow()
    assert flow.instance_hosts == DEFAULT_INSTANCE_HOSTS
    for url in (
        "https://acme.my.salesforce.com",
        "https://acme--uat.sandbox.my.salesforce.com",
        "https://acme-dev-ed.develop.my.salesforce.com",
        "https://na1.salesforce.com",
        "https://acme.my.site.com",
        "https://acme--uat.sandbox.my.site.com",
        "https://acme.my.salesforce-sites.com",
        "https://acme.force.com",
        "https://acme.cloudforce.com",
        "https://acme.database.com",
        "https://acme.my.salesforce.mil",
        "https://acme.my.sfcrmproducts.cn",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://localhost:8080",
    ):
        assert flow.check_instance_url(url) == url
    for url in (
        "https://evil.example",
        "https://salesforce.com.evil.example",
        "https://evilsalesforce.com",
        "https://salesforce.com",
        "https://10.0.0.1",
    ):
        with pytest.raises(InstanceUrlError, match="instance_hosts"):
            flow.check_instance_url(url)


def test_check_instance_url_returns_the_normalized_url():
    """check_instance_url normalizes what it accepts, as Token.from_response does."""
    assert _cc_flow().check_instance_url("HTTPS://ACME.my.salesforce.com:443/") == MY_DOMAIN


@pytest.mark.parametrize(
    "url",
    ["http://acme.my.salesforce.com", "https://acme.my.salesforce.com/?x", "https://u:p@a.com"],
)
def test_check_instance_url_refuses_unusable_urls(url: str):
    """Plain http off loopback, a query, user info: InstanceUrlError with the raw value."""
    with pytest.raises(InstanceUrlError) as caught:
        _cc_flow().check_instance_url(url)
    assert caught.value.instance_url == url
    assert "u:p@" not in str(caught.value)


def test_instance_hosts_patterns():
    """Exact names, *. suffixes at any depth, IP networks, case and trailing dots."""
    flow = _cc_flow(instance_hosts=["acme.my.salesforce.com", "*.example.org", "10.0.0.0/8"])
    assert flow.check_instance_url("https://ACME.my.salesforce.com.") == MY_DOMAIN
    assert flow.check_instance_url("https://a.b.example.org") == "https://a.b.example.org"
    assert flow.check_instance_url("https://10.1.2.3") == "https://10.1.2.3"
    for url in ("https://other.my.salesforce.com", "https://example.org", "http://127.0.0.1"):
        with pytest.raises(InstanceUrlError):
            flow.check_instance_url(url)
    anything = _cc_flow(instance_hosts="*")
    assert anything.check_instance_url("https://evil.example") == "https://evil.example"


@pytest.mark.parametrize(
    "patterns",
    [[], [""], ["https://acme.my.salesforce.com"], ["acme.com:443"], ["*.*.com"], ["a*.com"], [5]],
)
def test_bad_instance_hosts_are_configuration_errors(patterns: list[Any]):
    """An empty list or something that is not a host pattern is refused up front."""
    with pytest.raises(ConfigurationError, match="instance_hosts"):
        _cc_flow(instance_hosts=patterns)


def test_every_flow_takes_instance_hosts(rsa_pem: bytes):
    """Every grant's constructor takes instance_hosts and applies it."""
    only = ("acme.my.salesforce.com",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        flows = [
            _cc_flow(instance_hosts=only),
            JWTBearerFlow(
                client_id=CLIENT_ID, username="u@x", private_key=rsa_pem, instance_hosts=only
            ),
            RefreshTokenFlow(client_id=CLIENT_ID, refresh_token="r", instance_hosts=only),
            PasswordFlow(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                username="u@x",
                password="p",
                instance_hosts=only,
            ),
            AuthorizationCodeFlow(
                client_id=CLIENT_ID, redirect_uri="https://app.example/cb", instance_hosts=only
            ),
        ]
    for flow in flows:
        assert flow.instance_hosts == only
        with pytest.raises(InstanceUrlError):
            flow.check_instance_url("https://other.my.salesforce.com")


async def test_token_from_a_host_outside_instance_hosts_is_refused(http: aioresponses):
    """A token response naming another host is refused: its bearer would go there."""
    http.post(
        f"{MY_DOMAIN}/services/oauth2/token",
        payload={"access_token": ACCESS_TOKEN, "instance_url": "https://evil.example"},
    )
    with pytest.raises(InstanceUrlError) as caught:
        await _cc_flow().fetch_token()
    assert caught.value.instance_url == "https://evil.example"
    assert caught.value.url == f"{MY_DOMAIN}/services/oauth2/token"
    assert caught.value.status == 200
    assert ACCESS_TOKEN not in str(caught.value)


# --- against the fake org (real HTTP on loopback) ------------------------------------------


@pytest.fixture
async def org() -> AsyncIterator[FakeSalesforceOrg]:
    """A started fake org."""
    async with FakeSalesforceOrg() as fake:
        yield fake


def _org_cc_flow(org: FakeSalesforceOrg, **kwargs: Any) -> ClientCredentialsFlow:
    options = {
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "login_url": org.my_domain_url,
    }
    return ClientCredentialsFlow(**{**options, **kwargs})


async def _rest_status(org: FakeSalesforceOrg, access_token: str) -> int:
    async with (
        aiohttp.ClientSession() as client,
        client.get(
            org.my_domain_url + "/services/data/v67.0/",
            headers={"Authorization": f"Bearer {access_token}"},
        ) as response,
    ):
        return response.status


@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_revoke_against_the_fake_org(org: FakeSalesforceOrg, client_auth: str):
    """revoke() ends the session at a real endpoint; a second revoke says it was gone."""
    flow = _org_cc_flow(org, client_auth=client_auth)
    token = await flow.fetch_token()
    assert await _rest_status(org, token.access_token) == 200
    assert await flow.revoke(token) is True
    assert await _rest_status(org, token.access_token) == 401
    assert await flow.revoke(token) is False
    assert org.stats.revocations == 2


@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_revoke_when_the_server_requires_client_authentication(
    org: FakeSalesforceOrg, client_auth: str
):
    """A conforming server (RFC 7009 2.1) that requires client auth accepts our revoke."""
    org.app.revoke_requires_client_auth = True
    flow = _org_cc_flow(org, client_auth=client_auth)
    token = await flow.fetch_token()
    assert await flow.revoke(token) is True
    assert await _rest_status(org, token.access_token) == 401


async def test_revoke_with_a_wrong_secret_is_refused(org: FakeSalesforceOrg):
    """The server checks the credentials sent with a revoke: a wrong secret is refused."""
    org.app.revoke_requires_client_auth = True
    token = await _org_cc_flow(org).fetch_token()
    for client_auth in ("body", "basic"):
        wrong = _org_cc_flow(org, client_secret="not-the-secret", client_auth=client_auth)
        with pytest.raises(InvalidClientError) as caught:
            await wrong.revoke(token)
        assert caught.value.status == (401 if client_auth == "basic" else 400)
    assert await _rest_status(org, token.access_token) == 200


async def test_revoke_without_client_authentication_is_refused_when_required(
    org: FakeSalesforceOrg,
):
    """A flow without the secret cannot revoke a confidential app's token there."""
    org.app.revoke_requires_client_auth = True
    token = await _org_cc_flow(org).fetch_token()
    with pytest.raises(InvalidClientError):
        await org.jwt_bearer_flow().revoke(token)
    assert await _rest_status(org, token.access_token) == 200


async def test_userinfo_against_the_fake_org(org: FakeSalesforceOrg):
    """userinfo() returns the token's user from a real endpoint, and refuses a dead token."""
    flow = _org_cc_flow(org)
    token = await flow.fetch_token()
    info = await flow.userinfo(token)
    user = org.app.client_credentials_user
    assert user is not None
    assert info["preferred_username"] == user.username
    assert info["user_id"] == user.user_id
    await flow.revoke(token)
    with pytest.raises(InvalidTokenError) as caught:
        await flow.userinfo(token)
    assert caught.value.status == 401
    assert token.access_token not in str(caught.value)


async def test_basic_client_auth_against_the_fake_org(org: FakeSalesforceOrg):
    """Basic client auth works at real endpoints: token, refresh, introspect and revoke."""
    org.app.client_secret = "s3cr+t/with%special=chars:and space"
    flow = _org_cc_flow(org, client_auth="basic")
    token = await flow.fetch_token()
    assert (await flow.introspect(token)).active is True
    refreshing = RefreshTokenFlow(
        client_id=org.app.client_id,
        client_secret=org.app.client_secret,
        refresh_token=org.issue_refresh_token(),
        login_url=org.login_url,
        client_auth="basic",
    )
    refreshed = await refreshing.fetch_token()
    assert (await flow.introspect(refreshed)).active is True
    assert await flow.revoke(token) is True
    assert (await flow.introspect(token)).active is False
    assert org.stats.token_requests == {"client_credentials": 1, "refresh_token": 1}


async def test_instance_hosts_are_enforced_on_the_fake_orgs_tokens(org: FakeSalesforceOrg):
    """A flow allowing only Salesforce hosts refuses the fake org's loopback instance."""
    assert (await _org_cc_flow(org).fetch_token()).instance_url == org.instance_url
    strict = _org_cc_flow(org, instance_hosts=["*.my.salesforce.com"])
    with pytest.raises(InstanceUrlError) as caught:
        await strict.fetch_token()
    assert caught.value.instance_url == org.instance_url
    assert org.stats.token_requests["client_credentials"] == 2
