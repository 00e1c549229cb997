"""`PasswordFlow`: the deprecated username-password grant of spec §2.4."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aioresponses import aioresponses
from sent import authorization, form, only_request
from yarl import URL

from sfoauth_async import (
    AsyncSession,
    ConfigurationError,
    InvalidGrantError,
    PasswordFlow,
    RetryPolicy,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault

CLIENT_ID = "3MVG9fake.consumer.key"
CLIENT_SECRET = "fake-consumer-secret-for-tests"
USERNAME = "integration@acme.example"
PASSWORD = "fake-password-123"
SECURITY_TOKEN = "FAKESECURITYTOKEN"
TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"
RESPONSE = {
    "access_token": "00Dxx!FAKE.ACCESS",
    "instance_url": "https://acme.my.salesforce.com",
    "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
    "token_type": "Bearer",
    "issued_at": "1700000000000",
    "signature": "FAKEsig=",
}


def _flow(**kwargs: Any) -> PasswordFlow:
    options = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": PASSWORD,
        "security_token": SECURITY_TOKEN,
    }
    with pytest.deprecated_call():
        return PasswordFlow(**{**options, **kwargs})


def _secrets_absent(text: str) -> None:
    for secret in (CLIENT_SECRET, PASSWORD, SECURITY_TOKEN, PASSWORD + SECURITY_TOKEN):
        assert secret not in text


def test_construction_warns_deprecation_at_the_caller():
    """Building a PasswordFlow warns (retired 2027-02-20), pointing at the caller's line."""
    with pytest.warns(DeprecationWarning, match="2027-02-20") as record:
        PasswordFlow(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USERNAME, password=PASSWORD
        )
    assert record[0].filename == __file__
    assert "ClientCredentialsFlow or JWTBearerFlow" in str(record[0].message)


async def test_request_sends_password_plus_security_token(http: aioresponses):
    """POST grant_type=password, username, password+security token, client_id and secret."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow().fetch_token()
    method, url, kwargs = only_request(http)
    assert method == "POST"
    assert url == URL(TOKEN_URL)
    assert url.query_string == ""
    assert form(kwargs) == {
        "grant_type": "password",
        "username": USERNAME,
        "password": PASSWORD + SECURITY_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert authorization(kwargs) is None


async def test_no_security_token_sends_the_password_alone(http: aioresponses):
    """From a trusted IP range the security token is empty and the password goes alone."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow(security_token="").fetch_token()
    _, _, kwargs = only_request(http)
    assert form(kwargs)["password"] == PASSWORD


async def test_basic_auth(http: aioresponses):
    """Basic auth puts id:secret in the header, and the body keeps only the user's fields."""
    http.post(TOKEN_URL, payload=RESPONSE)
    await _flow(client_auth="basic").fetch_token()
    _, url, kwargs = only_request(http)
    assert form(kwargs) == {
        "grant_type": "password",
        "username": USERNAME,
        "password": PASSWORD + SECURITY_TOKEN,
    }
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert authorization(kwargs) == f"Basic {expected}"
    _secrets_absent(str(url))


async def test_login_url_is_kept(http: aioresponses):
    """A sandbox or My Domain login_url is where the password is sent."""
    http.post("https://test.salesforce.com/services/oauth2/token", payload=RESPONSE)
    await _flow(login_url="https://test.salesforce.com").fetch_token()
    _, url, _ = only_request(http)
    assert url == URL("https://test.salesforce.com/services/oauth2/token")


async def test_authentication_failure_hides_credentials(http: aioresponses):
    """A refused login (flow blocked, wrong password) never shows the password or secret."""
    http.post(
        TOKEN_URL,
        status=400,
        payload={"error": "invalid_grant", "error_description": "authentication failure"},
    )
    with pytest.raises(InvalidGrantError, match="username-password") as info:
        await _flow().fetch_token()
    _secrets_absent(str(info.value))
    _secrets_absent(repr(info.value))


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", ""), ("password", ""), ("client_id", ""), ("client_secret", "")],
)
def test_empty_required_field_is_refused(field: str, value: str):
    """Empty username, password, client_id or client_secret are configuration errors."""
    with pytest.raises(ConfigurationError, match=field):
        _flow(**{field: value})


def test_plain_http_is_refused():
    """http:// to a real host would send the password in clear text."""
    with pytest.raises(ConfigurationError, match="https://"):
        _flow(login_url="http://login.salesforce.com")


def test_store_key_is_the_username_and_has_no_secret():
    """The store key names host, consumer key and username, never the password or secret."""
    key = _flow().store_key()
    assert key == f"sfoauth:password:login.salesforce.com:{CLIENT_ID}:{USERNAME}"
    assert _flow(password="another-fake-password").store_key() == key
    _secrets_absent(key)


def test_repr_has_no_secret():
    """The repr shows consumer key and login URL, never password, token or secret."""
    flow = _flow()
    _secrets_absent(repr(flow))
    assert flow.username == USERNAME


async def test_a_login_whose_answer_was_lost_is_sent_again(fake_org: FakeSalesforceOrg):
    """A username-password login mints an independent token: a lost answer is simply retried."""
    fake_org.faults.token.push(Fault.drop_answer())
    with pytest.deprecated_call():
        flow = fake_org.password_flow()
    async with AsyncSession(flow, retry=RetryPolicy(wait_initial_s=0.001, wait_max_s=0.002)) as sf:
        assert (await sf.get("limits/")).status == 200
    assert fake_org.stats.token_requests_total == 2
