"""Shared fixtures for the fake-org tests: a started org, an HTTP client, request helpers."""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sfoauth_async.testing import FakeSalesforceOrg

TokenCall = Callable[..., Awaitable[tuple[int, Any]]]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture
async def org() -> AsyncIterator[FakeSalesforceOrg]:
    """A started default fake org."""
    async with FakeSalesforceOrg() as fake:
        yield fake


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A real aiohttp client session (the root conftest's ``http`` is a mock)."""
    async with aiohttp.ClientSession() as session:
        yield session


async def post_form(
    client: aiohttp.ClientSession,
    url: str,
    form: dict[str, str],
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """POST a form and return (status, parsed JSON or text)."""
    async with client.post(url, data=form, headers=headers or {}) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


@pytest.fixture
def token(org: FakeSalesforceOrg, client: aiohttp.ClientSession) -> TokenCall:
    """POST to the My Domain token endpoint (``site="login"`` for the login host)."""

    async def call(
        site: str = "my_domain", headers: dict[str, str] | None = None, **form: str
    ) -> tuple[int, Any]:
        base = org.login_url if site == "login" else org.my_domain_url
        return await post_form(client, base + "/services/oauth2/token", form, headers)

    return call


@pytest.fixture
def basic_auth() -> Callable[[str, str], dict[str, str]]:
    """Build an HTTP Basic ``Authorization`` header."""

    def build(client_id: str, secret: str) -> dict[str, str]:
        raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    return build


@pytest.fixture
def make_assertion(org: FakeSalesforceOrg) -> Callable[..., str]:
    """Build a valid JWT-bearer assertion for the default app and user, with overrides.

    An override of None removes the claim; ``key=`` and ``algorithm=`` change the signing.
    """
    return lambda **overrides: _assertion(org, **overrides)


@pytest.fixture
def assertion_for() -> Callable[..., str]:
    """Like ``make_assertion`` but for any org: ``assertion_for(org, aud=...)``."""
    return _assertion


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key that no app trusts (PyJWT warns about shorter ones)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _load_key(pem: bytes) -> Any:
    # Parsing a PEM RSA key costs ~50 ms (cryptography validates it); do it once.
    return serialization.load_pem_private_key(pem, password=None)


def _assertion(org: FakeSalesforceOrg, **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "iss": org.app.client_id,
        "sub": org.user.username,
        "aud": org.login_url,
        "exp": int(time.time()) + 120,
    }
    key = overrides.pop("key", None) or _load_key(org.private_key_pem)
    algorithm = overrides.pop("algorithm", "RS256")
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.fixture
def cc_form(org: FakeSalesforceOrg) -> dict[str, str]:
    """A valid client-credentials form for the default app."""
    return {
        "grant_type": "client_credentials",
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
    }


@pytest.fixture
def cc_token(token: TokenCall, cc_form: dict[str, str]) -> Callable[[], Awaitable[str]]:
    """Get a fresh client-credentials access token for the default app."""

    async def call() -> str:
        status, body = await token(**cc_form)
        assert status == 200, body
        return str(body["access_token"])

    return call
