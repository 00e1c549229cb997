"""The fake org's revoke, introspect, userinfo, identity, JWKS and discovery endpoints."""

from __future__ import annotations

import time
from typing import Any

import pytest


def refresh_form(org: Any, refresh_token: str) -> dict[str, str]:
    """A refresh-grant form for the default app."""
    return {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
    }


@pytest.fixture
def revoke(org, client):
    """Send a token to the revoke endpoint by POST (or GET); returns (status, body)."""

    async def call(token: str, site: str = "my_domain", method: str = "POST") -> tuple[int, Any]:
        url = (org.login_url if site == "login" else org.my_domain_url) + "/services/oauth2/revoke"
        if method == "GET":
            request = client.get(url, params={"token": token})
        else:
            request = client.post(url, data={"token": token})
        async with request as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    return call


@pytest.fixture
def introspect(org, client):
    """Introspect a token as the default app (or ``app=``)."""

    async def call(token: str, app: Any = None, **extra: str) -> tuple[int, Any]:
        app = app or org.app
        form = {
            "token": token,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            **extra,
        }
        async with client.post(org.my_domain_url + "/services/oauth2/introspect", data=form) as r:
            return r.status, await r.json()

    return call


async def rest_status(client, org, access_token: str) -> int:
    """The status of a REST call made with ``access_token``."""
    async with client.get(
        org.my_domain_url + "/services/data/v67.0/",
        headers={"Authorization": f"Bearer {access_token}"},
    ) as response:
        return response.status


# -- revoke -------------------------------------------------------------------------------------


async def test_revoke_access_token(org, client, revoke, cc_token):
    """Revoking an access token answers 200 with an empty body and ends the session."""
    access_token = await cc_token()
    assert await revoke(access_token) == (200, "")
    assert await rest_status(client, org, access_token) == 401
    assert org.stats.revocations == 1


async def test_revoke_twice(revoke, cc_token):
    """A token already revoked answers 400 invalid_token."""
    access_token = await cc_token()
    assert (await revoke(access_token))[0] == 200
    assert await revoke(access_token) == (
        400,
        {"error": "invalid_token", "error_description": "invalid token"},
    )


async def test_revoke_unknown(revoke):
    """An unknown token answers 400 invalid_token, on either site."""
    for site in ("login", "my_domain"):
        status, body = await revoke("nope", site=site)
        assert (status, body["error"]) == (400, "invalid_token")


async def test_revoke_missing_token(org, client):
    """A revoke request without a token answers 400 invalid_request."""
    async with client.post(org.my_domain_url + "/services/oauth2/revoke", data={}) as response:
        assert (response.status, (await response.json())["error"]) == (400, "invalid_request")


async def test_revoke_by_get(revoke, cc_token):
    """GET /services/oauth2/revoke?token= works too."""
    assert (await revoke(await cc_token(), site="login", method="GET"))[0] == 200


async def test_revoke_refresh_token_kills_its_sessions(org, client, token, revoke, cc_token):
    """Revoking a refresh token also ends every access token issued from it."""
    refresh_token = org.issue_refresh_token()
    _, body = await token(**refresh_form(org, refresh_token))
    unrelated = await cc_token()
    assert (await revoke(refresh_token))[0] == 200
    assert await rest_status(client, org, body["access_token"]) == 401
    assert await rest_status(client, org, unrelated) == 200
    status, answer = await token(**refresh_form(org, refresh_token))
    assert (status, answer["error"]) == (400, "invalid_grant")


async def test_org_revoke_helpers(org, client, cc_token):
    """revoke_access_token ends a session; unknown tokens raise KeyError."""
    access_token = await cc_token()
    org.revoke_access_token(access_token)
    assert await rest_status(client, org, access_token) == 401
    with pytest.raises(KeyError):
        org.revoke_access_token("nope")
    with pytest.raises(KeyError):
        org.revoke_refresh_token("nope")


async def test_expire_all_sessions(org, client, token, cc_token):
    """expire_all_sessions ends every access token but leaves refresh tokens working."""
    refresh_token = org.issue_refresh_token()
    access_token = await cc_token()
    org.expire_all_sessions()
    assert await rest_status(client, org, access_token) == 401
    status, body = await token(**refresh_form(org, refresh_token))
    assert status == 200
    assert await rest_status(client, org, body["access_token"]) == 200


# -- introspect ---------------------------------------------------------------------------------


async def test_introspect_access_token(org, introspect, cc_token):
    """An active access token introspects with scope, client, user, sub and times."""
    access_token = await cc_token()
    status, body = await introspect(access_token)
    assert status == 200
    assert set(body) == {
        "active",
        "scope",
        "client_id",
        "username",
        "sub",
        "token_type",
        "exp",
        "iat",
        "nbf",
    }
    assert body["active"] is True
    assert body["client_id"] == org.app.client_id
    assert body["username"] == org.user.username
    assert body["sub"] == org.identity_url()
    assert body["token_type"] == "access_token"
    assert body["exp"] - body["iat"] == 2 * 3600
    assert abs(body["iat"] - time.time()) < 60
    assert body["nbf"] == body["iat"]
    assert org.stats.introspections == 1


async def test_introspect_refresh_token(org, introspect):
    """A live refresh token introspects with token_type refresh_token."""
    status, body = await introspect(org.issue_refresh_token(), token_type_hint="refresh_token")
    assert status == 200
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"


async def test_introspect_inactive(org, introspect, cc_token):
    """Unknown, expired and revoked tokens introspect as {"active": false}."""
    assert await introspect("nope") == (200, {"active": False})
    access_token = await cc_token()
    org.expire_all_sessions()
    assert await introspect(access_token) == (200, {"active": False})
    refresh_token = org.issue_refresh_token()
    org.revoke_refresh_token(refresh_token)
    assert await introspect(refresh_token) == (200, {"active": False})


async def test_introspect_password_token(org, introspect, token):
    """Username-password sessions cannot be introspected."""
    status, body = await token(
        grant_type="password",
        client_id=org.app.client_id,
        client_secret=org.app.client_secret,
        username=org.user.username,
        password=org.user.password + org.user.security_token,
    )
    assert status == 200
    assert await introspect(body["access_token"]) == (200, {"active": False})


async def test_introspect_other_apps_token(org, introspect, cc_token):
    """An app sees only its own tokens unless allowed to introspect all."""
    access_token = await cc_token()
    other = org.add_app()
    assert await introspect(access_token, app=other) == (200, {"active": False})
    other.introspect_all_tokens = True
    assert (await introspect(access_token, app=other))[1]["active"] is True


async def test_introspect_needs_client_auth(org, client, cc_token, basic_auth):
    """Introspection needs the client's credentials, in the body or a Basic header."""
    access_token = await cc_token()
    url = org.my_domain_url + "/services/oauth2/introspect"
    async with client.post(url, data={"token": access_token}) as response:
        assert (response.status, (await response.json())["error"]) == (400, "invalid_client_id")
    form = {"token": access_token, "client_id": org.app.client_id, "client_secret": "x"}
    async with client.post(url, data=form) as response:
        assert (response.status, (await response.json())["error"]) == (400, "invalid_client")
    headers = basic_auth(org.app.client_id, org.app.client_secret)
    async with client.post(url, data={"token": access_token}, headers=headers) as response:
        assert (await response.json())["active"] is True


# -- userinfo and identity ----------------------------------------------------------------------


async def test_userinfo(org, client, cc_token):
    """Userinfo answers OIDC claims about the token's user."""
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    async with client.get(org.login_url + "/services/oauth2/userinfo", headers=headers) as r:
        assert r.status == 200
        body = await r.json()
    assert body["sub"] == org.identity_url()
    assert body["user_id"] == org.user.user_id
    assert body["organization_id"] == org.org_id
    assert body["preferred_username"] == org.user.username
    assert body["email"] == org.user.email
    assert body["urls"]["rest"] == org.my_domain_url + "/services/data/v{version}/"


async def test_identity_url(org, client, cc_token):
    """The identity URL answers the user's identity; version= fills the URLs."""
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    async with client.get(org.identity_url() + "?version=latest", headers=headers) as r:
        assert r.status == 200
        body = await r.json()
    assert body["id"] == org.identity_url()
    assert body["user_id"] == org.user.user_id
    assert body["organization_id"] == org.org_id
    assert body["username"] == org.user.username
    assert body["active"] is True
    assert body["urls"]["rest"] == org.my_domain_url + "/services/data/v67.0/"
    assert body["urls"]["query"] == org.my_domain_url + "/services/data/v67.0/query/"
    assert body["urls"]["sobjects"] == org.my_domain_url + "/services/data/v67.0/sobjects/"


async def test_identity_on_my_domain_and_query_token(org, client, cc_token):
    """The identity path works on My Domain too, and takes ?oauth_token=."""
    path = f"/id/{org.org_id}/{org.user.user_id}"
    url = org.my_domain_url + path + "?oauth_token=" + await cc_token()
    async with client.get(url) as response:
        assert response.status == 200


async def test_identity_unknown_user(org, client, cc_token):
    """An identity URL for a user that does not exist answers 404."""
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    async with client.get(
        f"{org.login_url}/id/{org.org_id}/005000000000000AAA", headers=headers
    ) as r:
        assert r.status == 404


@pytest.mark.parametrize("path", ["/services/oauth2/userinfo", "identity"])
async def test_identity_bad_token(org, client, path):
    """A missing or bad token answers 401 Missing_OAuth_Token / Bad_OAuth_Token."""
    url = org.identity_url() if path == "identity" else org.login_url + path
    async with client.get(url) as response:
        assert (response.status, await response.text()) == (401, "Missing_OAuth_Token")
    async with client.get(url, headers={"Authorization": "Bearer nope"}) as response:
        assert (response.status, await response.text()) == (401, "Bad_OAuth_Token")


async def test_keys_and_discovery(org, client):
    """/id/keys serves an RS256 JWKS and discovery points at this site's endpoints."""
    async with client.get(org.my_domain_url + "/id/keys") as response:
        key = (await response.json())["keys"][0]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    async with client.get(org.my_domain_url + "/.well-known/openid-configuration") as response:
        discovery = await response.json()
    assert discovery["issuer"] == org.my_domain_url
    assert discovery["token_endpoint"] == org.my_domain_url + "/services/oauth2/token"
    assert discovery["jwks_uri"] == org.my_domain_url + "/id/keys"
