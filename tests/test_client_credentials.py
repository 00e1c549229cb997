"""`ClientCredentialsFlow`: the exact request of spec §2.3 and its host rules (§1)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from sent import authorization, form, only_request
from yarl import URL

from sfoauth_async import (
    AsyncSession,
    ClientCredentialsFlow,
    ConfigurationError,
    InvalidClientError,
    RetryPolicy,
    Token,
    WrongDomainError,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

CLIENT_ID = "3MVG9fake.consumer.key"
CLIENT_SECRET = "fake-consumer-secret-for-tests"
MY_DOMAIN = "https://acme.my.salesforce.com"
TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
RESPONSE = {
    "access_token": "00Dxx!FAKE.ACCESS",
    "signature": "FAKEsig=",
    "scope": "api",
    "instance_url": MY_DOMAIN,
    "id": "https://acme.my.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
    "token_type": "Bearer",
    "issued_at": "1700000000000",
    "api_instance_url": "https://api.salesforce.com",
}


def _flow(**kwargs: Any) -> ClientCredentialsFlow:
    options = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "login_url": MY_DOMAIN}
    return ClientCredentialsFlow(**{**options, **kwargs})


async def test_request_is_exactly_grant_type_and_client_credentials(http: aioresponses):
    """Body auth: POST /services/oauth2/token with grant_type, client_id, client_secret only."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow().fetch_token()
    method, url, kwargs = only_request(http)
    assert method == "POST"
    assert url == URL(TOKEN_URL)
    assert form(kwargs) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert authorization(kwargs) is None
    assert kwargs["allow_redirects"] is False


async def test_basic_auth_moves_credentials_to_the_header(http: aioresponses):
    """Basic auth: 'Authorization: Basic base64(id:secret)' and a body of grant_type only."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow(client_auth="basic").fetch_token()
    _, _, kwargs = only_request(http)
    assert form(kwargs) == {"grant_type": "client_credentials"}
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert authorization(kwargs) == f"Basic {expected}"


@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_no_secret_in_url_and_no_bearer(http: aioresponses, client_auth: str):
    """The secret never goes in the URL and no Bearer header is sent to the token endpoint."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow(client_auth=client_auth).fetch_token()
    _, url, kwargs = only_request(http)
    assert url.query_string == ""
    assert CLIENT_SECRET not in str(url)
    assert kwargs.get("params") is None
    assert not (authorization(kwargs) or "").startswith("Bearer")


async def test_login_url_path_is_kept(http: aioresponses):
    """An Experience Cloud login URL keeps its path before /services/oauth2/token."""
    token_url = "https://acme.my.site.com/partners/services/oauth2/token"
    http.post(token_url, payload=RESPONSE)
    flow = _flow(login_url="https://acme.my.site.com/partners/")
    assert flow.token_url == token_url
    await flow.fetch_token()
    _, url, _ = only_request(http)
    assert url == URL(token_url)


async def test_response_becomes_a_token(http: aioresponses):
    """The JSON answer becomes a Token whose expiry follows the session timeout."""
    http.post(TOKEN_URL, payload=RESPONSE)
    token = await _flow().fetch_token(session_timeout=timedelta(minutes=30))
    assert isinstance(token, Token)
    assert token.access_token == RESPONSE["access_token"]
    assert token.instance_url == MY_DOMAIN
    assert token.refresh_token is None
    assert token.expires_at == token.received_at + timedelta(minutes=30)


async def test_uses_the_given_session(http: aioresponses):
    """fetch_token sends with the caller's aiohttp session and leaves it open."""
    http.post(TOKEN_URL, payload=RESPONSE)
    async with aiohttp.ClientSession() as session:
        await _flow().fetch_token(session)
        assert not session.closed
    only_request(http)


async def test_wrong_domain_answer_is_wrong_domain_error(http: aioresponses):
    """'request not supported on this domain' raises WrongDomainError, without the secret."""
    http.post(
        TOKEN_URL,
        status=400,
        payload={
            "error": "invalid_grant",
            "error_description": "request not supported on this domain",
        },
    )
    with pytest.raises(WrongDomainError, match="My Domain") as info:
        await _flow().fetch_token()
    assert CLIENT_SECRET not in str(info.value)


async def test_invalid_client_answer(http: aioresponses):
    """A wrong secret raises InvalidClientError whose message hides the secret."""
    http.post(
        TOKEN_URL,
        status=400,
        payload={"error": "invalid_client", "error_description": "invalid client credentials"},
    )
    with pytest.raises(InvalidClientError) as info:
        await _flow().fetch_token()
    assert CLIENT_SECRET not in str(info.value)
    assert not info.value.transient


@pytest.mark.parametrize(
    "login_url",
    [
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        "https://login.salesforce.com/",
        "https://LOGIN.salesforce.com",
    ],
)
def test_generic_login_hosts_are_refused(login_url: str):
    """Client credentials need My Domain: login/test.salesforce.com are refused up front."""
    with pytest.raises(ConfigurationError, match="My Domain") as info:
        _flow(login_url=login_url)
    assert "request not supported on this domain" in str(info.value)
    assert CLIENT_SECRET not in str(info.value)


@pytest.mark.parametrize(
    "login_url", ["https://acme.lightning.force.com", "https://acme.my.salesforce-setup.com"]
)
def test_lightning_and_setup_hosts_are_refused(login_url: str):
    """Lightning and Setup domains cannot log in (spec §1)."""
    with pytest.raises(ConfigurationError, match="My Domain"):
        _flow(login_url=login_url)


@pytest.mark.parametrize(
    "login_url",
    [
        "https://acme.my.salesforce.com",
        "https://acme--uat.sandbox.my.salesforce.com",
        "http://localhost:8080",
    ],
)
def test_my_domain_hosts_are_accepted(login_url: str):
    """My Domain and sandbox My Domain hosts (and loopback, for fakes) are accepted."""
    assert _flow(login_url=login_url).login_url == login_url


def test_plain_http_is_refused():
    """http:// to a real host would send the secret in clear text."""
    with pytest.raises(ConfigurationError, match="https://"):
        _flow(login_url="http://acme.my.salesforce.com")


@pytest.mark.parametrize("client_id", ["", "   "])
def test_empty_client_id_is_refused(client_id: str):
    """An empty consumer key is a configuration error naming client_id."""
    with pytest.raises(ConfigurationError, match="client_id"):
        _flow(client_id=client_id)


@pytest.mark.parametrize("client_secret", ["", None])
def test_missing_client_secret_is_refused(client_secret: str | None):
    """Client credentials cannot work without the consumer secret."""
    with pytest.raises(ConfigurationError, match="client_secret"):
        _flow(client_secret=client_secret)


def test_unknown_client_auth_is_refused():
    """client_auth is 'body' or 'basic' only."""
    with pytest.raises(ConfigurationError, match="client_auth"):
        _flow(client_auth="header")


def test_store_key_is_stable_and_has_no_secret():
    """The store key names grant, host, consumer key and run-as user, never the secret."""
    key = _flow().store_key()
    assert key == f"sfoauth:client_credentials:acme.my.salesforce.com:{CLIENT_ID}:run-as"
    assert _flow().store_key() == key
    assert _flow(client_auth="basic").store_key() == key
    assert CLIENT_SECRET not in key
    other_org = _flow(login_url="https://other.my.salesforce.com").store_key()
    assert other_org != key


def test_repr_has_no_secret():
    """The repr shows the consumer key and login URL, not the secret."""
    text = repr(_flow())
    assert CLIENT_SECRET not in text
    assert CLIENT_ID in text
    assert MY_DOMAIN in text
    assert ClientCredentialsFlow.grant_type == "client_credentials"


async def test_a_login_whose_answer_was_lost_is_sent_again(fake_org: FakeSalesforceOrg):
    """A client-credentials login mints an independent token: a lost answer is simply retried."""
    fake_org.faults.token.push(Fault.drop_answer())
    flow = fake_org.client_credentials_flow()
    async with AsyncSession(flow, retry=RetryPolicy(wait_initial_s=0.001, wait_max_s=0.002)) as sf:
        assert (await sf.get("limits/")).status == 200
    assert fake_org.stats.token_requests_total == 2
