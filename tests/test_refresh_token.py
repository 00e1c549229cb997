"""`RefreshTokenFlow`: the refresh grant of spec §2.2, rotation (RTR) included."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from aioresponses import aioresponses
from sent import authorization, form, posts_to

from sfoauth_async import (
    AsyncSession,
    ConfigurationError,
    InvalidGrantError,
    RefreshOutcomeUnknownError,
    RefreshTokenFlow,
    RetryPolicy,
    Token,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

CLIENT_ID = "3MVG9fake.consumer.key"
CLIENT_SECRET = "fake-consumer-secret-for-tests"
REFRESH_TOKEN = "5Aep861FAKE.REFRESH.ONE"
ROTATED = "5Aep861FAKE.REFRESH.TWO"
ROTATED_AGAIN = "5Aep861FAKE.REFRESH.THREE"
TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"
INSTANCE_URL = "https://acme.my.salesforce.com"
# Spec §2.2: without rotation, the refresh response has no refresh_token.
RESPONSE = {
    "access_token": "00Dxx!FAKE.ACCESS",
    "signature": "FAKEsig=",
    "scope": "api refresh_token",
    "instance_url": INSTANCE_URL,
    "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
    "token_type": "Bearer",
    "issued_at": "1700000000000",
}


def _flow(**kwargs: Any) -> RefreshTokenFlow:
    options = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    }
    return RefreshTokenFlow(**{**options, **kwargs})


async def test_request_is_exactly_the_refresh_grant(http: aioresponses):
    """POST grant_type=refresh_token, refresh_token, client_id, client_secret, nothing else."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow().fetch_token()
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert authorization(kwargs) is None
    assert kwargs["allow_redirects"] is False


async def test_without_secret_only_client_id_is_sent(http: aioresponses):
    """When the app does not require the secret, only client_id authenticates the client."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow(client_secret=None).fetch_token()
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
    }


async def test_basic_auth(http: aioresponses):
    """Basic auth: credentials in the header, never also in the body."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow(client_auth="basic").fetch_token()
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs) == {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert authorization(kwargs) == f"Basic {expected}"


async def test_no_secret_or_refresh_token_in_the_url(http: aioresponses):
    """Secrets go in the body only: the URL has no query string."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow().fetch_token()
    ((_, url),) = http.requests
    assert url.query_string == ""
    assert REFRESH_TOKEN not in str(url)


async def test_keeps_the_refresh_token_when_none_is_returned(http: aioresponses):
    """Without rotation the response has no refresh_token: the one used is kept (§9.4)."""
    http.post(TOKEN_URL, payload=RESPONSE, repeat=2)
    flow = _flow()
    token = await flow.fetch_token()
    assert token.refresh_token == REFRESH_TOKEN
    assert flow.refresh_token == REFRESH_TOKEN
    await flow.fetch_token(previous=token)
    assert [form(k)["refresh_token"] for k in posts_to(http, TOKEN_URL)] == [REFRESH_TOKEN] * 2


async def test_adopts_a_rotated_refresh_token(http: aioresponses):
    """Under rotation the new refresh token is adopted and used by the next refresh (§2.2)."""
    http.post(TOKEN_URL, payload={**RESPONSE, "refresh_token": ROTATED})
    http.post(TOKEN_URL, payload={**RESPONSE, "refresh_token": ROTATED_AGAIN})
    flow = _flow()
    first = await flow.fetch_token()
    assert first.refresh_token == ROTATED
    assert flow.refresh_token == ROTATED
    second = await flow.fetch_token()
    assert second.refresh_token == ROTATED_AGAIN
    assert flow.refresh_token == ROTATED_AGAIN
    used = [form(k)["refresh_token"] for k in posts_to(http, TOKEN_URL)]
    assert used == [REFRESH_TOKEN, ROTATED]


async def test_previous_tokens_refresh_token_wins(http: aioresponses):
    """previous= carries the newest refresh token (e.g. from a store) and it is used."""
    http.post(TOKEN_URL, payload=RESPONSE)
    flow = _flow()
    previous = Token(
        access_token="00Dxx!OLD", instance_url=INSTANCE_URL, refresh_token="5Aep861FAKE.FROM.STORE"
    )
    token = await flow.fetch_token(previous=previous)
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs)["refresh_token"] == "5Aep861FAKE.FROM.STORE"
    assert token.refresh_token == "5Aep861FAKE.FROM.STORE"
    assert flow.refresh_token == "5Aep861FAKE.FROM.STORE"


async def test_previous_without_refresh_token_falls_back_to_the_flows(http: aioresponses):
    """A previous token without a refresh token does not stop the flow's own from being used."""
    http.post(TOKEN_URL, payload=RESPONSE)
    previous = Token(access_token="00Dxx!OLD", instance_url=INSTANCE_URL)
    await _flow().fetch_token(previous=previous)
    (kwargs,) = posts_to(http, TOKEN_URL)
    assert form(kwargs)["refresh_token"] == REFRESH_TOKEN


async def test_failed_refresh_keeps_the_refresh_token(http: aioresponses):
    """'expired access/refresh token' raises InvalidGrantError and changes nothing."""
    http.post(
        TOKEN_URL,
        status=400,
        payload={"error": "invalid_grant", "error_description": "expired access/refresh token"},
    )
    flow = _flow()
    with pytest.raises(InvalidGrantError, match="authorization flow again") as info:
        await flow.fetch_token()
    assert flow.refresh_token == REFRESH_TOKEN
    assert REFRESH_TOKEN not in str(info.value)
    assert CLIENT_SECRET not in str(info.value)


async def test_instance_url_is_reread_on_every_refresh(http: aioresponses):
    """Each refresh takes instance_url from its own response (spec §1, §9.7)."""
    http.post(TOKEN_URL, payload=RESPONSE)
    http.post(TOKEN_URL, payload={**RESPONSE, "instance_url": "https://moved.my.salesforce.com"})
    flow = _flow()
    first = await flow.fetch_token()
    second = await flow.fetch_token(previous=first)
    assert first.instance_url == INSTANCE_URL
    assert second.instance_url == "https://moved.my.salesforce.com"


def test_store_key_is_a_fingerprint_of_the_refresh_token():
    """The store key holds a SHA-256 fingerprint, never the refresh token or the secret."""
    fingerprint = hashlib.sha256(REFRESH_TOKEN.encode()).hexdigest()[:16]
    key = _flow().store_key()
    assert key == f"sfoauth:refresh_token:login.salesforce.com:{CLIENT_ID}:rt-{fingerprint}"
    assert REFRESH_TOKEN not in key
    assert CLIENT_SECRET not in key
    assert _flow().store_key() == key
    assert _flow(refresh_token=ROTATED).store_key() != key


async def test_store_key_survives_rotation(http: aioresponses):
    """Rotation does not move the credential to another store key."""
    http.post(TOKEN_URL, payload={**RESPONSE, "refresh_token": ROTATED})
    flow = _flow()
    key = flow.store_key()
    token = await flow.fetch_token()
    assert flow.store_key() == key
    assert flow.store_key(token) == key
    assert ROTATED not in key


@pytest.mark.parametrize("refresh_token", ["", "  "])
def test_empty_refresh_token_is_refused(refresh_token: str):
    """A refresh token is required."""
    with pytest.raises(ConfigurationError, match="refresh_token"):
        _flow(refresh_token=refresh_token)


def test_basic_without_secret_is_refused():
    """HTTP Basic needs the consumer secret."""
    with pytest.raises(ConfigurationError, match="client_secret"):
        _flow(client_secret=None, client_auth="basic")


def test_plain_http_is_refused():
    """http:// to a real host would send the refresh token in clear text."""
    with pytest.raises(ConfigurationError, match="https://"):
        _flow(login_url="http://login.salesforce.com")


def test_repr_has_no_secret():
    """The repr shows neither the refresh token nor the secret."""
    text = repr(_flow())
    assert REFRESH_TOKEN not in text
    assert CLIENT_SECRET not in text
    assert RefreshTokenFlow.grant_type == "refresh_token"


async def test_a_refresh_whose_answer_was_lost_is_never_sent_again(fake_org: FakeSalesforceOrg):
    """A refresh-token refresh: the refresh token may be spent, so it is not sent twice."""
    fake_org.app.rotate_refresh_tokens = True
    fake_org.faults.token.push(Fault.drop_answer())
    flow = fake_org.refresh_token_flow()
    async with AsyncSession(flow, retry=RetryPolicy(cooldown_s=0.0)) as sf:
        for _ in range(2):
            with pytest.raises(RefreshOutcomeUnknownError):
                await sf.get("limits/")
    assert fake_org.stats.token_requests["refresh_token"] == 1
    assert fake_org.stats.refresh_token_reuses == 0
