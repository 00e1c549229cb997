"""The fake org's token endpoint: every grant's success shape and every error it emits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from sfoauth_async.testing import FakeSalesforceOrg

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SIGNED_KEYS = {
    "access_token",
    "signature",
    "scope",
    "instance_url",
    "id",
    "token_type",
    "issued_at",
}


def expected_signature(secret: str, body: dict[str, Any]) -> str:
    """base64(HMAC-SHA256(secret, id + issued_at))."""
    mac = hmac.new(secret.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def error(description: str, code: str = "invalid_grant") -> tuple[int, dict[str, str]]:
    """The (status, body) of a token-endpoint error."""
    return 400, {"error": code, "error_description": description}


def password_form(org: FakeSalesforceOrg, password: str | None = None) -> dict[str, str]:
    """A password-grant form for the default app and user."""
    return {
        "grant_type": "password",
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "username": org.user.username,
        "password": password
        if password is not None
        else org.user.password + org.user.security_token,
    }


def refresh_form(org: FakeSalesforceOrg, refresh_token: str) -> dict[str, str]:
    """A refresh-grant form for the default app."""
    return {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
    }


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:  # noqa: D102 - the clock reading
        return self.now


# -- grant type and client authentication -----------------------------------------------------


async def test_missing_grant_type(token, org):
    """No grant_type answers invalid_request "grant type is missing" and counts as "missing"."""
    assert await token(client_id=org.app.client_id) == error(
        "grant type is missing", "invalid_request"
    )
    assert org.stats.token_requests["missing"] == 1


async def test_unknown_grant_type(token):
    """An unknown grant_type answers unsupported_grant_type."""
    assert await token(grant_type="device") == error(
        "grant type not supported", "unsupported_grant_type"
    )


async def test_json_body_is_not_read(org, client):
    """The endpoint reads form bodies only: a JSON body has no grant type."""
    async with client.post(
        org.my_domain_url + "/services/oauth2/token", json={"grant_type": "client_credentials"}
    ) as response:
        assert (response.status, await response.json()) == error(
            "grant type is missing", "invalid_request"
        )


async def test_get_is_refused(org, client):
    """A GET to the token endpoint answers 400 invalid_request."""
    url = org.my_domain_url + "/services/oauth2/token?grant_type=client_credentials"
    async with client.get(url) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"
    assert org.stats.token_requests["client_credentials"] == 1


async def test_error_headers(org, client):
    """Errors are JSON with Salesforce's exact content type and Cache-Control: no-store."""
    async with client.post(org.my_domain_url + "/services/oauth2/token", data={}) as response:
        assert response.status == 400
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        assert response.headers["Cache-Control"] == "no-store"


async def test_unknown_client_id(token, cc_form):
    """An unknown consumer key answers invalid_client_id "client identifier invalid"."""
    assert await token(**{**cc_form, "client_id": "3MVG9nope"}) == error(
        "client identifier invalid", "invalid_client_id"
    )


async def test_wrong_secret(token, cc_form):
    """A wrong consumer secret answers invalid_client "invalid client credentials"."""
    assert await token(**{**cc_form, "client_secret": "wrong"}) == error(
        "invalid client credentials", "invalid_client"
    )


async def test_missing_secret(token, cc_form):
    """A grant that needs the secret refuses a request without it."""
    del cc_form["client_secret"]
    assert await token(**cc_form) == error("invalid client credentials", "invalid_client")


async def test_basic_auth(token, org, basic_auth):
    """Client credentials may come in an HTTP Basic header instead of the body."""
    status, body = await token(
        headers=basic_auth(org.app.client_id, org.app.client_secret),
        grant_type="client_credentials",
    )
    assert status == 200, body


async def test_basic_auth_wrong_secret(token, org, basic_auth):
    """A wrong secret in the Basic header answers invalid_client."""
    assert await token(
        headers=basic_auth(org.app.client_id, "nope"), grant_type="client_credentials"
    ) == error("invalid client credentials", "invalid_client")


async def test_basic_and_body_secret(token, org, cc_form, basic_auth):
    """Basic auth plus a body client_secret answers invalid_request."""
    status, body = await token(
        headers=basic_auth(org.app.client_id, org.app.client_secret), **cc_form
    )
    assert (status, body["error"]) == (400, "invalid_request")


async def test_garbage_basic_header(token):
    """A Basic header that is not base64 answers invalid_client."""
    assert await token(
        headers={"Authorization": "Basic !!!"}, grant_type="client_credentials"
    ) == error("invalid client credentials", "invalid_client")


# -- client credentials -------------------------------------------------------------------------


async def test_client_credentials_shape(org, cc_form, client):
    """Client credentials answers the signed shape, never expires_in or a refresh token."""
    async with client.post(org.my_domain_url + "/services/oauth2/token", data=cc_form) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
    assert set(body) == SIGNED_KEYS | {"api_instance_url"}
    assert body["access_token"].startswith(org.org_id + "!")
    assert body["instance_url"] == org.my_domain_url == org.instance_url
    assert body["id"] == f"{org.login_url}/id/{org.org_id}/{org.user.user_id}"
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit()
    assert abs(int(body["issued_at"]) / 1000 - time.time()) < 60
    assert body["signature"] == expected_signature(org.app.client_secret, body)
    assert set(body["scope"].split()) == {"api", "id", "openid"}


async def test_client_credentials_on_login_host(token, cc_form):
    """Client credentials sent to the login host fail like Salesforce: wrong domain."""
    assert await token(site="login", **cc_form) == error("request not supported on this domain")


async def test_client_credentials_without_run_as_user(token, org, cc_form):
    """An app without a client-credentials user answers invalid_grant."""
    org.app.client_credentials_user = None
    assert await token(**cc_form) == error("no client credentials user enabled")


async def test_client_credentials_runs_as_app_user(token, org):
    """The token belongs to the app's run-as user."""
    robot = org.add_user(username="robot@fake.org")
    app = org.add_app(client_credentials_user=robot)
    status, body = await token(
        grant_type="client_credentials", client_id=app.client_id, client_secret=app.client_secret
    )
    assert status == 200
    assert body["id"].endswith("/" + robot.user_id)
    assert body["signature"] == expected_signature(app.client_secret, body)


async def test_client_credentials_inactive_user(token, org, cc_form):
    """An inactive run-as user answers inactive_user."""
    org.user.active = False
    assert await token(**cc_form) == error("user is inactive", "inactive_user")


# -- password -----------------------------------------------------------------------------------


async def test_password_shape(token, org):
    """Password answers signed, without scope or refresh token, on either host."""
    for site in ("login", "my_domain"):
        status, body = await token(site=site, **password_form(org))
        assert status == 200
        assert set(body) == SIGNED_KEYS - {"scope"}
        assert body["signature"] == expected_signature(org.app.client_secret, body)


async def test_password_without_security_token(token, org):
    """The password alone (no security token appended) is an authentication failure."""
    assert await token(**password_form(org, org.user.password)) == error("authentication failure")


async def test_password_unknown_user(token, org):
    """An unknown username is an authentication failure."""
    form = {**password_form(org), "username": "nobody@fake.org"}
    assert await token(**form) == error("authentication failure")


async def test_password_disabled(client):
    """With the password flow disabled even good credentials fail with authentication failure."""
    async with (
        FakeSalesforceOrg(password_flow_enabled=False) as blocked,
        client.post(
            blocked.login_url + "/services/oauth2/token", data=password_form(blocked)
        ) as response,
    ):
        assert (response.status, await response.json()) == error("authentication failure")


async def test_password_inactive_user(token, org):
    """An inactive user with the right password answers inactive_user."""
    org.user.active = False
    assert await token(**password_form(org)) == error("user is inactive", "inactive_user")


# -- refresh token ------------------------------------------------------------------------------


async def test_refresh_without_rotation(token, org):
    """Without rotation the answer has no refresh_token and the same token keeps working."""
    refresh_token = org.issue_refresh_token()
    for _ in range(2):
        status, body = await token(site="login", **refresh_form(org, refresh_token))
        assert status == 200
        assert set(body) == SIGNED_KEYS | {"id_token"}
        assert body["signature"] == expected_signature(org.app.client_secret, body)


async def test_refresh_id_token_only_with_openid(token, org):
    """A refresh token granted without openid gets no id_token."""
    status, body = await token(**refresh_form(org, org.issue_refresh_token(scopes=["api"])))
    assert status == 200
    assert set(body) == SIGNED_KEYS
    assert body["scope"] == "api"


async def test_refresh_unknown(token, org):
    """An unknown refresh token answers invalid_grant "expired access/refresh token"."""
    assert await token(**refresh_form(org, "5Aep861nope")) == error("expired access/refresh token")


async def test_refresh_revoked(token, org):
    """A refresh token revoked by the admin answers invalid_grant."""
    refresh_token = org.issue_refresh_token()
    org.revoke_refresh_token(refresh_token)
    assert await token(**refresh_form(org, refresh_token)) == error("expired access/refresh token")


async def test_refresh_other_apps_token(token, org):
    """A refresh token presented by another app answers invalid_grant."""
    other = org.add_app()
    refresh_token = org.issue_refresh_token(app=other)
    assert await token(**refresh_form(org, refresh_token)) == error("expired access/refresh token")


async def test_refresh_needs_secret(token, org):
    """A confidential app's refresh needs the secret, unless the app relaxes that."""
    form = refresh_form(org, org.issue_refresh_token())
    del form["client_secret"]
    assert await token(**form) == error("invalid client credentials", "invalid_client")
    org.app.require_secret_for_refresh = False
    assert (await token(**form))[0] == 200


async def test_refresh_public_client(token, org):
    """A public client refreshes without a secret and is refused when it sends one."""
    public = org.add_app(confidential=False)
    refresh_token = org.issue_refresh_token(app=public)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": public.client_id,
    }
    assert (await token(**form))[0] == 200
    assert await token(**form, client_secret=public.client_secret) == error(
        "invalid client credentials", "invalid_client"
    )


async def test_refresh_inactive_user(token, org):
    """Refreshing for a deactivated user answers inactive_user."""
    refresh_token = org.issue_refresh_token()
    org.user.active = False
    assert await token(**refresh_form(org, refresh_token)) == error(
        "user is inactive", "inactive_user"
    )


async def test_rotation_issues_new_token_each_time(token, org):
    """Under RTR every refresh answers a new refresh token and the old one stops working."""
    org.app.rotate_refresh_tokens = True
    first = org.issue_refresh_token()
    status, body = await token(**refresh_form(org, first))
    assert status == 200
    second = body["refresh_token"]
    assert second != first
    status, body = await token(**refresh_form(org, second))
    assert status == 200
    assert body["refresh_token"] not in (first, second)


async def test_rotation_reuse_revokes_family(token, org, client):
    """Reusing a rotated-out refresh token kills the current one and its access tokens."""
    org.app.rotate_refresh_tokens = True
    first = org.issue_refresh_token()
    _, body = await token(**refresh_form(org, first))
    current, access_token = body["refresh_token"], body["access_token"]
    assert await token(**refresh_form(org, first)) == error("expired access/refresh token")
    assert await token(**refresh_form(org, current)) == error("expired access/refresh token")
    async with client.get(
        org.my_domain_url + "/services/data/v67.0/",
        headers={"Authorization": f"Bearer {access_token}"},
    ) as response:
        assert response.status == 401


async def test_rotation_from_constructor():
    """FakeSalesforceOrg(rotate_refresh_tokens=True) turns RTR on for the default app."""
    assert FakeSalesforceOrg(rotate_refresh_tokens=True).app.rotate_refresh_tokens
    assert not FakeSalesforceOrg().app.rotate_refresh_tokens


# -- JWT bearer ---------------------------------------------------------------------------------


async def test_jwt_shape(token, make_assertion):
    """JWT bearer answers no issued_at, no signature and no refresh token."""
    status, body = await token(site="login", grant_type=JWT_BEARER, assertion=make_assertion())
    assert status == 200
    assert set(body) == {"access_token", "scope", "instance_url", "id", "token_type"}
    assert "refresh_token" not in body["scope"].split()


@pytest.mark.parametrize("audience", ["https://login.salesforce.com", "login_url", "my_domain_url"])
async def test_jwt_accepted_audiences(token, org, make_assertion, audience):
    """The generic login host, the login URL and the My Domain URL are valid audiences."""
    aud = getattr(org, audience, audience)
    status, _ = await token(grant_type=JWT_BEARER, assertion=make_assertion(aud=aud))
    assert status == 200


async def test_jwt_audience_list(token, make_assertion):
    """An aud array is accepted when one of its entries is valid."""
    aud = ["https://example.com", "https://login.salesforce.com"]
    assert (await token(grant_type=JWT_BEARER, assertion=make_assertion(aud=aud)))[0] == 200


@pytest.mark.parametrize("aud", ["https://test.salesforce.com", "https://example.com", None])
async def test_jwt_bad_audience(token, make_assertion, aud):
    """A production org refuses the sandbox audience, a foreign one, and none."""
    assert await token(grant_type=JWT_BEARER, assertion=make_assertion(aud=aud)) == error(
        "audience is invalid"
    )


async def test_jwt_sandbox_audience(client, assertion_for):
    """A sandbox org takes https://test.salesforce.com and refuses the production audience."""
    async with FakeSalesforceOrg(sandbox=True) as sandbox:
        url = sandbox.login_url + "/services/oauth2/token"
        for aud, status in (
            ("https://test.salesforce.com", 200),
            ("https://login.salesforce.com", 400),
        ):
            form = {"grant_type": JWT_BEARER, "assertion": assertion_for(sandbox, aud=aud)}
            async with client.post(url, data=form) as response:
                assert response.status == status


@pytest.mark.parametrize(
    ("exp_offset", "status"),
    [(-60, 400), (-30, 400), (5, 200), (180, 200), (185, 200), (300, 400), (3600, 400)],
)
async def test_jwt_exp_bounds(token, make_assertion, exp_offset, status):
    """Exp must be in the future and at most 3 minutes ahead (with a few seconds of skew)."""
    answer = await token(
        grant_type=JWT_BEARER, assertion=make_assertion(exp=int(time.time()) + exp_offset)
    )
    assert answer[0] == status
    if status == 400:
        assert answer == error("invalid assertion")


async def test_jwt_missing_exp(token, make_assertion):
    """An assertion without exp is invalid."""
    assert await token(grant_type=JWT_BEARER, assertion=make_assertion(exp=None)) == error(
        "invalid assertion"
    )


async def test_jwt_bad_signature(token, make_assertion, other_key):
    """An assertion signed with a key other than the app's certificate is invalid."""
    assert await token(grant_type=JWT_BEARER, assertion=make_assertion(key=other_key)) == error(
        "invalid assertion"
    )


async def test_jwt_hs256_refused(token, make_assertion):
    """Only RS256 is accepted."""
    forged = make_assertion(key="a-long-enough-shared-secret-for-hs256!", algorithm="HS256")
    assert await token(grant_type=JWT_BEARER, assertion=forged) == error("invalid assertion")


@pytest.mark.parametrize("assertion", ["", "not.a.jwt", "garbage"])
async def test_jwt_garbage(token, assertion):
    """A missing or malformed assertion is invalid."""
    assert await token(grant_type=JWT_BEARER, assertion=assertion) == error("invalid assertion")


async def test_jwt_unknown_issuer(token, make_assertion):
    """An iss that is no app's consumer key answers invalid_client_id."""
    assert await token(grant_type=JWT_BEARER, assertion=make_assertion(iss="3MVG9x")) == error(
        "client identifier invalid", "invalid_client_id"
    )


async def test_jwt_unknown_user(token, make_assertion):
    """A sub naming no user is an invalid assertion."""
    assert await token(
        grant_type=JWT_BEARER, assertion=make_assertion(sub="ghost@fake.org")
    ) == error("invalid assertion")


async def test_jwt_unapproved_user(token, org, make_assertion):
    """A user who is not pre-authorized answers "user hasn't approved this consumer"."""
    org.user.pre_authorized = False
    assert await token(grant_type=JWT_BEARER, assertion=make_assertion()) == error(
        "user hasn't approved this consumer"
    )


async def test_jwt_inactive_user(token, org, make_assertion):
    """An inactive user answers inactive_user."""
    org.user.active = False
    assert await token(grant_type=JWT_BEARER, assertion=make_assertion()) == error(
        "user is inactive", "inactive_user"
    )


async def test_jwt_prn_wins_over_sub(token, org, make_assertion):
    """The legacy prn claim names the user when both prn and sub are present."""
    bob = org.add_user(username="bob@fake.org")
    status, body = await token(
        grant_type=JWT_BEARER, assertion=make_assertion(sub=org.user.username, prn=bob.username)
    )
    assert status == 200
    assert body["id"].endswith("/" + bob.user_id)
    assert await token(
        grant_type=JWT_BEARER, assertion=make_assertion(prn="ghost@fake.org")
    ) == error("invalid assertion")


async def test_jwt_username_case_insensitive(token, org, make_assertion):
    """Usernames match case-insensitively, as in Salesforce."""
    status, _ = await token(
        grant_type=JWT_BEARER, assertion=make_assertion(sub=org.user.username.upper())
    )
    assert status == 200


async def test_jwt_app_without_certificate(token, org, make_assertion):
    """An app with no certificate refuses every assertion."""
    org.app.certificate_pem = None
    assert await token(grant_type=JWT_BEARER, assertion=make_assertion()) == error(
        "invalid assertion"
    )


async def test_jwt_app_with_bare_public_key(token, org, make_assertion, other_key):
    """An app may hold a bare PEM public key instead of a certificate."""
    key = other_key
    app = org.add_app(
        certificate_pem=key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    status, _ = await token(
        grant_type=JWT_BEARER, assertion=make_assertion(iss=app.client_id, key=key)
    )
    assert status == 200


# -- login rate limit ---------------------------------------------------------------------------


async def test_login_rate_limit(client, assertion_for):
    """JWT, client-credentials and password logins share a per-user rolling hourly limit."""
    clock = FakeClock()
    async with FakeSalesforceOrg(login_rate_limit_per_hour=3, clock=clock) as org:
        url = org.my_domain_url + "/services/oauth2/token"
        cc = {
            "grant_type": "client_credentials",
            "client_id": org.app.client_id,
            "client_secret": org.app.client_secret,
        }
        forms: list[dict[str, str]] = [
            cc,
            password_form(org),
            {"grant_type": JWT_BEARER, "assertion": assertion_for(org)},
        ]
        for form in forms:
            async with client.post(url, data=form) as response:
                assert response.status == 200
        clock.now += 1800
        async with client.post(url, data=cc) as response:
            assert (response.status, await response.json()) == error("login rate exceeded")
        # Another user has a window of its own.
        robot = org.add_user()
        org.app.client_credentials_user = robot
        async with client.post(url, data=cc) as response:
            assert response.status == 200
        org.app.client_credentials_user = org.user
        clock.now += 1801  # the first three logins roll out of the hour
        async with client.post(url, data=cc) as response:
            assert response.status == 200


async def test_refresh_is_not_a_login(client):
    """Refreshing does not count against the login rate limit."""
    async with FakeSalesforceOrg(login_rate_limit_per_hour=0) as org:
        refresh_token = org.issue_refresh_token()
        async with client.post(
            org.login_url + "/services/oauth2/token", data=refresh_form(org, refresh_token)
        ) as response:
            assert response.status == 200


async def test_no_login_rate_limit(client):
    """login_rate_limit_per_hour=None never throttles."""
    async with FakeSalesforceOrg(login_rate_limit_per_hour=None) as org:
        form = password_form(org)
        for _ in range(5):
            async with client.post(org.login_url + "/services/oauth2/token", data=form) as response:
                assert response.status == 200


# -- token format and lifetime ------------------------------------------------------------------


async def test_jwt_access_tokens(client):
    """jwt_access_tokens=True issues RS256 JWTs with exp, marked token_format "jwt"."""
    lifetime = timedelta(minutes=30)
    async with FakeSalesforceOrg(jwt_access_tokens=True, session_lifetime=lifetime) as org:
        async with client.post(
            org.login_url + "/services/oauth2/token", data=password_form(org)
        ) as response:
            body = await response.json()
        assert body["token_format"] == "jwt"
        async with client.get(org.login_url + "/id/keys") as response:
            jwks = await response.json()
        key = jwt.PyJWK(jwks["keys"][0]).key
        claims = jwt.decode(
            body["access_token"], key, algorithms=["RS256"], audience="https://api.salesforce.com"
        )
        assert claims["exp"] - claims["iat"] == lifetime.total_seconds()
        async with client.get(
            org.my_domain_url + "/services/data/v67.0/",
            headers={"Authorization": f"Bearer {body['access_token']}"},
        ) as response:
            assert response.status == 200


async def test_token_delay(client):
    """token_delay_s makes every token request wait before answering."""
    async with FakeSalesforceOrg(token_delay_s=0.05) as org:
        loop_time = asyncio.get_running_loop().time
        started = loop_time()
        async with client.post(org.login_url + "/services/oauth2/token", data={}) as response:
            assert response.status == 400
        assert loop_time() - started >= 0.05


async def test_session_lifetime_with_clock(client):
    """Access tokens stop working session_lifetime after issue, however much they are used."""
    clock = FakeClock()
    async with FakeSalesforceOrg(session_lifetime=timedelta(minutes=15), clock=clock) as org:
        async with client.post(
            org.login_url + "/services/oauth2/token", data=password_form(org)
        ) as response:
            access_token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {access_token}"}
        url = org.my_domain_url + "/services/data/v67.0/"
        clock.now += 14 * 60
        async with client.get(url, headers=headers) as response:
            assert response.status == 200
        clock.now += 61
        async with client.get(url, headers=headers) as response:
            assert response.status == 401


def test_negative_settings_refused():
    """Negative lifetimes, delays and limits are configuration mistakes."""
    with pytest.raises(ValueError, match="session_lifetime"):
        FakeSalesforceOrg(session_lifetime=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="token_delay_s"):
        FakeSalesforceOrg(token_delay_s=-1)
    with pytest.raises(ValueError, match="login_rate_limit_per_hour"):
        FakeSalesforceOrg(login_rate_limit_per_hour=-1)
