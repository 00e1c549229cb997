"""The org's flow factories build the product's flows, wired to the fake org."""

from __future__ import annotations

import pytest

from sfoauth_async import (
    AuthorizationCodeFlow,
    ClientCredentialsFlow,
    JWTBearerFlow,
    PasswordFlow,
    RefreshTokenFlow,
)


async def test_client_credentials_flow(org):
    """client_credentials_flow() logs in on the My Domain site."""
    flow = org.client_credentials_flow()
    assert isinstance(flow, ClientCredentialsFlow)
    token = await flow.fetch_token()
    assert token.instance_url == org.my_domain_url
    assert org.stats.token_requests["client_credentials"] == 1


async def test_jwt_bearer_flow(org):
    """jwt_bearer_flow() signs with private_key_pem for the default or a named user."""
    bob = org.add_user(username="bob@fake.org")
    assert isinstance(org.jwt_bearer_flow(), JWTBearerFlow)
    token = await org.jwt_bearer_flow("bob@fake.org").fetch_token()
    assert token.user_id == bob.user_id


async def test_password_flow(org):
    """password_flow() is deprecated but logs in."""
    with pytest.deprecated_call():
        flow = org.password_flow()
    assert isinstance(flow, PasswordFlow)
    token = await flow.fetch_token()
    assert token.user_id == org.user.user_id


async def test_refresh_token_flow(org):
    """refresh_token_flow() mints a refresh token when none is given."""
    flow = org.refresh_token_flow()
    assert isinstance(flow, RefreshTokenFlow)
    await flow.fetch_token()
    assert org.stats.token_requests["refresh_token"] == 1


async def test_authorization_code_flow(org, client):
    """authorization_code_flow() registers the callback and completes with auto-approval."""
    callback = "http://127.0.0.1:8765/callback"
    flow = org.authorization_code_flow(callback)
    assert isinstance(flow, AuthorizationCodeFlow)
    assert callback in org.app.callback_urls
    org.auto_approve = True
    request = flow.authorization_url()
    async with client.get(request.url, allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    code = flow.parse_callback(location, state=request.state)
    token = await flow.exchange(code, code_verifier=request.code_verifier)
    assert token.refresh_token is not None
