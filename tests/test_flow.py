"""`Flow`: revoke, introspect, userinfo and signature checks shared by every grant (§3, §6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from aioresponses import aioresponses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sent import authorization, form, only_request
from yarl import URL

from sfoauth_async import (
    ClientCredentialsFlow,
    ConfigurationError,
    Introspection,
    InvalidTokenError,
    JWTBearerFlow,
    RefreshTokenFlow,
    SignatureMismatchError,
    Token,
    TokenEndpointUnavailableError,
)

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
    assert form(kwargs) == {"token": REFRESH_TOKEN}


async def test_revoke_sends_the_access_token_without_refresh_token(http: aioresponses):
    """A Token without a refresh token has its access token revoked."""
    http.post(REVOKE_URL, status=200, body="")
    assert await _cc_flow().revoke(_token()) is True
    _, _, kwargs = only_request(http)
    assert form(kwargs) == {"token": ACCESS_TOKEN}


@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_revoke_sends_no_client_credentials(http: aioresponses, client_auth: str):
    """The revoke body is token= only: no client id or secret, no Authorization header."""
    http.post(REVOKE_URL, status=200, body="")
    await _cc_flow(client_auth=client_auth).revoke("a-token-string")
    _, url, kwargs = only_request(http)
    assert form(kwargs) == {"token": "a-token-string"}
    assert authorization(kwargs) is None
    assert url.query_string == ""


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
    """Revoking needs no client secret, so a JWT bearer flow can revoke its tokens."""
    url = "https://login.salesforce.com/services/oauth2/revoke"
    http.post(url, status=200, body="")
    flow = JWTBearerFlow(client_id=CLIENT_ID, username="u@acme.example", private_key=rsa_pem)
    assert await flow.revoke(_token()) is True
    _, _, kwargs = only_request(http)
    assert form(kwargs) == {"token": ACCESS_TOKEN}


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
