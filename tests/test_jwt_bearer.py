"""`JWTBearerFlow`: the request and assertion of spec §2.5, checked independently."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aioresponses import aioresponses
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sent import form, only_request
from yarl import URL

from sfoauth_async import (
    AsyncSession,
    ConfigurationError,
    InvalidGrantError,
    JWTBearerFlow,
    RetryPolicy,
    _jwt_bearer,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

CLIENT_ID = "3MVG9fake.consumer.key"
USERNAME = "integration@acme.example"
PASSWORD = "fake-key-password"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
RESPONSE = {
    "access_token": "00Dxx!FAKE.ACCESS",
    "scope": "api",
    "instance_url": "https://acme.my.salesforce.com",
    "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
    "token_type": "Bearer",
}


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA key for the whole session: generation is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    """A second RSA key, to show a signature binds to the right key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def pem(rsa_key: rsa.RSAPrivateKey) -> bytes:
    """The RSA key as unencrypted PKCS#8 PEM."""
    return rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="session")
def encrypted_pem(rsa_key: rsa.RSAPrivateKey) -> bytes:
    """The RSA key as password-protected PKCS#8 PEM."""
    return rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    )


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verify_jwt(assertion: str, key: rsa.RSAPrivateKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check an RS256 JWT with the public key, without PyJWT; return header and claims."""
    header_b64, payload_b64, signature_b64 = assertion.split(".")
    key.public_key().verify(
        _b64url_decode(signature_b64),
        f"{header_b64}.{payload_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return json.loads(_b64url_decode(header_b64)), json.loads(_b64url_decode(payload_b64))


def _flow(private_key: Any, **kwargs: Any) -> JWTBearerFlow:
    options = {"client_id": CLIENT_ID, "username": USERNAME, "private_key": private_key}
    return JWTBearerFlow(**{**options, **kwargs})


def _key_lines(pem_bytes: bytes) -> list[str]:
    """The base64 body lines of a PEM: key material that must never be echoed."""
    return [line for line in pem_bytes.decode().splitlines() if line and "-----" not in line]


def _assert_no_key_material(message: str, *pems: bytes) -> None:
    for pem_bytes in pems:
        for line in _key_lines(pem_bytes):
            assert line[:16] not in message
    assert PASSWORD not in message


async def test_request_is_grant_type_and_assertion_only(http: aioresponses, pem: bytes):
    """POST /services/oauth2/token with grant_type and assertion only: no client_id/secret."""
    http.post("https://login.salesforce.com/services/oauth2/token", payload=RESPONSE)
    await _flow(pem).fetch_token()
    method, url, kwargs = only_request(http)
    assert method == "POST"
    assert url == URL("https://login.salesforce.com/services/oauth2/token")
    assert url.query_string == ""
    body = form(kwargs)
    assert set(body) == {"grant_type", "assertion"}
    assert body["grant_type"] == GRANT_TYPE
    assert kwargs.get("auth") is None
    headers = {k.lower() for k in (kwargs.get("headers") or {})}
    assert "authorization" not in headers


async def test_assertion_is_rs256_signed_with_exact_claims(
    http: aioresponses, pem: bytes, rsa_key: rsa.RSAPrivateKey
):
    """The assertion verifies with the public key: RS256, claims iss/sub/aud/exp only."""
    http.post("https://login.salesforce.com/services/oauth2/token", payload=RESPONSE)
    before = time.time()
    await _flow(pem).fetch_token()
    after = time.time()
    _, _, kwargs = only_request(http)
    header, claims = _verify_jwt(form(kwargs)["assertion"], rsa_key)
    assert header["alg"] == "RS256"
    assert set(header) <= {"alg", "typ"}
    assert set(claims) == {"iss", "sub", "aud", "exp"}
    assert claims["iss"] == CLIENT_ID
    assert claims["sub"] == USERNAME
    assert claims["aud"] == "https://login.salesforce.com"
    assert type(claims["exp"]) is int
    # Spec §2.5/§9.10: exp is NumericDate seconds, "within 3 minutes".
    assert claims["exp"] - after > 0
    assert claims["exp"] - int(before) <= 180


def test_assertion_does_not_verify_with_another_key(pem: bytes, other_rsa_key: rsa.RSAPrivateKey):
    """The signature binds the assertion to the configured key (the check is not vacuous)."""
    with pytest.raises(InvalidSignature):
        _verify_jwt(_flow(pem).make_assertion(), other_rsa_key)


def test_assertion_exp_follows_the_given_clock(pem: bytes, rsa_key: rsa.RSAPrivateKey):
    """make_assertion(now_s=...) gives an integer exp 1..180 s after that time."""
    now = 1_900_000_000.75
    _, claims = _verify_jwt(_flow(pem).make_assertion(now_s=now), rsa_key)
    assert type(claims["exp"]) is int
    assert 0 < claims["exp"] - now <= 180


def test_assertion_has_no_client_secret_or_password(pem: bytes):
    """The JWT carries no secret: its body has only the four claims, none of them secret."""
    _, payload_b64, _ = _flow(pem).make_assertion().split(".")
    body = _b64url_decode(payload_b64).decode()
    assert "secret" not in body
    assert "client_id" not in body


async def test_every_fetch_signs_a_fresh_assertion(
    http: aioresponses, pem: bytes, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
):
    """Each login signs a new assertion with the current time (no reuse of an old one)."""
    url = "https://login.salesforce.com/services/oauth2/token"
    http.post(url, payload=RESPONSE, repeat=2)
    flow = _flow(pem)
    clock = iter([1_900_000_000.0, 1_900_000_600.0])
    monkeypatch.setattr(_jwt_bearer, "time", SimpleNamespace(time=lambda: next(clock)))
    await flow.fetch_token()
    await flow.fetch_token()
    calls = http.requests[("POST", URL(url))]
    exps = [_verify_jwt(form(c.kwargs)["assertion"], rsa_key)[1]["exp"] for c in calls]
    assert exps[1] - exps[0] == 600


@pytest.mark.parametrize(
    ("login_url", "audience", "token_url"),
    [
        (None, "https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://test.salesforce.com", "https://test.salesforce.com", None),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com", None),
        (
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://test.salesforce.com",
            None,
        ),
        ("https://acme.my.site.com/partners", "https://acme.my.site.com/partners", None),
    ],
)
async def test_default_audience_and_token_url(
    http: aioresponses,
    pem: bytes,
    rsa_key: rsa.RSAPrivateKey,
    login_url: str | None,
    audience: str,
    token_url: str | None,
):
    """The aud is login for production, test for sandboxes, the site for Experience Cloud."""
    base = token_url or login_url
    assert base is not None
    http.post(f"{base}/services/oauth2/token", payload=RESPONSE)
    flow = _flow(pem) if login_url is None else _flow(pem, login_url=login_url)
    assert flow.audience == audience
    await flow.fetch_token()
    _, url, kwargs = only_request(http)
    assert url == URL(f"{base}/services/oauth2/token")
    assert _verify_jwt(form(kwargs)["assertion"], rsa_key)[1]["aud"] == audience


def test_explicit_audience_wins(pem: bytes, rsa_key: rsa.RSAPrivateKey):
    """audience= overrides the default, without a trailing slash; login_url is unchanged."""
    flow = _flow(
        pem, login_url="https://acme.my.salesforce.com", audience="https://test.salesforce.com/"
    )
    assert flow.audience == "https://test.salesforce.com"
    assert flow.login_url == "https://acme.my.salesforce.com"
    assert _verify_jwt(flow.make_assertion(), rsa_key)[1]["aud"] == "https://test.salesforce.com"


def test_insecure_audience_is_refused(pem: bytes):
    """An http:// audience is refused like any insecure URL."""
    with pytest.raises(ConfigurationError, match="audience"):
        _flow(pem, audience="http://login.salesforce.com")


def test_key_from_pem_str(pem: bytes, rsa_key: rsa.RSAPrivateKey):
    """The key can be given as PEM text."""
    _verify_jwt(_flow(pem.decode()).make_assertion(), rsa_key)


def test_key_from_pem_bytes(pem: bytes, rsa_key: rsa.RSAPrivateKey):
    """The key can be given as PEM bytes."""
    _verify_jwt(_flow(pem).make_assertion(), rsa_key)


def test_key_from_traditional_rsa_pem(rsa_key: rsa.RSAPrivateKey):
    """'BEGIN RSA PRIVATE KEY' (PKCS#1, openssl's classic output) is accepted."""
    pkcs1 = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    _verify_jwt(_flow(pkcs1).make_assertion(), rsa_key)


@pytest.mark.parametrize("as_str", [True, False])
def test_key_from_file_path(tmp_path: Path, pem: bytes, rsa_key: rsa.RSAPrivateKey, as_str: bool):
    """The key can be a path to a PEM file, as a Path or a str."""
    path = tmp_path / "server.key"
    path.write_bytes(pem)
    _verify_jwt(_flow(str(path) if as_str else path).make_assertion(), rsa_key)


@pytest.mark.parametrize("password", [PASSWORD, PASSWORD.encode()])
def test_encrypted_key_with_password(
    encrypted_pem: bytes, rsa_key: rsa.RSAPrivateKey, password: str | bytes
):
    """An encrypted key loads with its password, as str or bytes."""
    flow = _flow(encrypted_pem, private_key_password=password)
    _verify_jwt(flow.make_assertion(), rsa_key)
    assert PASSWORD not in repr(flow)


def test_encrypted_key_with_wrong_password(encrypted_pem: bytes):
    """A wrong password is a ConfigurationError that shows neither key nor password."""
    with pytest.raises(ConfigurationError, match="private_key_password") as info:
        _flow(encrypted_pem, private_key_password="not-the-password")
    _assert_no_key_material(str(info.value), encrypted_pem)
    assert "not-the-password" not in str(info.value)


def test_encrypted_key_without_password(encrypted_pem: bytes):
    """An encrypted key without a password says a password is needed."""
    with pytest.raises(ConfigurationError, match="private_key_password") as info:
        _flow(encrypted_pem)
    _assert_no_key_material(str(info.value), encrypted_pem)


def test_password_for_unencrypted_key(pem: bytes):
    """A password given for an unencrypted key is refused with a clear message."""
    with pytest.raises(ConfigurationError, match="private_key_password") as info:
        _flow(pem, private_key_password=PASSWORD)
    _assert_no_key_material(str(info.value), pem)


def test_ec_key_is_refused():
    """Salesforce signs RS256 only: an EC key is a ConfigurationError without key material."""
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigurationError, match="RSA") as info:
        _flow(ec_pem)
    _assert_no_key_material(str(info.value), ec_pem)


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkq\\n-----END PRIVATE KEY-----",
    ],
)
def test_garbage_key_is_refused(garbage: str | bytes):
    """Anything that is not a PEM private key is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="PEM"):
        _flow(garbage)


def test_certificate_instead_of_key_is_refused(rsa_key: rsa.RSAPrivateKey):
    """Passing the certificate (the public half) instead of the key is refused."""
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigurationError, match="PEM"):
        _flow(public_pem)


def test_missing_key_file_is_refused(tmp_path: Path):
    """A path that cannot be read is a ConfigurationError naming the file."""
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigurationError, match=r"nope\.key"):
        _flow(missing)


def test_key_without_pem_header_is_not_echoed(pem: bytes):
    """A key pasted without its BEGIN/END lines is refused without echoing it."""
    body = "".join(_key_lines(pem))
    with pytest.raises(ConfigurationError) as info:
        _flow(body)
    _assert_no_key_material(str(info.value), pem)


def test_configuration_errors_do_not_chain_key_errors(encrypted_pem: bytes):
    """Key-loading errors are raised 'from None' so tracebacks show no crypto internals."""
    with pytest.raises(ConfigurationError) as info:
        _flow(encrypted_pem, private_key_password="wrong")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_empty_username_is_refused(pem: bytes):
    """The username (sub) is required."""
    with pytest.raises(ConfigurationError, match="username"):
        _flow(pem, username="")


async def test_user_not_approved_error(http: aioresponses, pem: bytes):
    """'user hasn't approved this consumer' is an InvalidGrantError about pre-authorizing."""
    http.post(
        "https://login.salesforce.com/services/oauth2/token",
        status=400,
        payload={
            "error": "invalid_grant",
            "error_description": "user hasn't approved this consumer",
        },
    )
    with pytest.raises(InvalidGrantError, match="pre-authorized") as info:
        await _flow(pem).fetch_token()
    _assert_no_key_material(str(info.value), pem)


async def test_response_has_no_refresh_token(http: aioresponses, pem: bytes):
    """The JWT bearer response (no issued_at/signature/refresh token) gives a usable Token."""
    http.post("https://login.salesforce.com/services/oauth2/token", payload=RESPONSE)
    token = await _flow(pem).fetch_token()
    assert token.refresh_token is None
    assert token.issued_at is None
    assert token.signature is None
    assert token.expires_at is not None


def test_store_key_is_the_username_and_has_no_key(pem: bytes):
    """The store key names host, consumer key and username, never key material."""
    key = _flow(pem).store_key()
    assert key == f"sfoauth:jwt_bearer:login.salesforce.com:{CLIENT_ID}:{USERNAME}"
    assert _flow(pem.decode()).store_key() == key
    _assert_no_key_material(key, pem)
    other = _flow(pem, login_url="https://acme.my.salesforce.com").store_key()
    assert other == f"sfoauth:jwt_bearer:acme.my.salesforce.com:{CLIENT_ID}:{USERNAME}"


def test_repr_has_no_key(pem: bytes):
    """The repr shows consumer key and login URL only."""
    text = repr(_flow(pem))
    _assert_no_key_material(text, pem)
    assert CLIENT_ID in text
    assert _flow(pem).grant_type == GRANT_TYPE
    assert _flow(pem).username == USERNAME


async def test_a_login_whose_answer_was_lost_is_sent_again(fake_org: FakeSalesforceOrg):
    """A JWT bearer login mints an independent token: a lost answer is simply retried."""
    fake_org.faults.token.push(Fault.drop_answer())
    flow = fake_org.jwt_bearer_flow()
    async with AsyncSession(flow, retry=RetryPolicy(wait_initial_s=0.001, wait_max_s=0.002)) as sf:
        assert (await sf.get("limits/")).status == 200
    assert fake_org.stats.token_requests_total == 2
