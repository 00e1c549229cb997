"""The fake org's public surface: exports, lifecycle, addresses, apps, users, helpers."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import sfoauth_async.testing as testing
from sfoauth_async.testing import FakeApp, FakeSalesforceOrg, FakeUser
from sfoauth_async.testing._model import new_id

ID18 = re.compile(r"^[A-Za-z0-9]{18}$")


def test_exports_are_sorted_and_public():
    """__all__ is sorted and every export presents itself as sfoauth_async.testing.X."""
    assert testing.__all__ == sorted(testing.__all__)
    assert {
        "FakeApp",
        "FakeOrgStats",
        "FakeSalesforceOrg",
        "FakeUser",
        "Fault",
    } <= set(testing.__all__)
    for name in testing.__all__:
        assert getattr(testing, name).__module__ == "sfoauth_async.testing"


def test_urls_need_a_started_org():
    """The addresses exist only while the org is serving."""
    org = FakeSalesforceOrg()
    with pytest.raises(RuntimeError, match="not serving"):
        _ = org.login_url
    with pytest.raises(RuntimeError, match="not serving"):
        _ = org.my_domain_url


async def test_two_sites_on_loopback(org):
    """login_url and my_domain_url are two loopback ports; instance_url is My Domain."""
    pattern = re.compile(r"^http://127\.0\.0\.1:\d+$")
    assert pattern.match(org.login_url)
    assert pattern.match(org.my_domain_url)
    assert org.login_url != org.my_domain_url
    assert org.instance_url == org.my_domain_url
    assert org.identity_url() == f"{org.login_url}/id/{org.org_id}/{org.user.user_id}"
    assert org.accepted_audiences == (
        "https://login.salesforce.com",
        org.login_url,
        org.my_domain_url,
    )
    assert org.my_domain_url in repr(org)


async def test_lifecycle():
    """start/close by hand; a second start and a restart are refused; close is idempotent."""
    org = FakeSalesforceOrg()
    await org.start()
    url = org.my_domain_url
    with pytest.raises(RuntimeError, match="already started"):
        await org.start()
    await org.close()
    await org.close()
    with pytest.raises(RuntimeError, match="already closed"):
        await org.start()
    assert org.my_domain_url == url  # still there for assertions after the test


async def test_two_orgs_side_by_side():
    """Orgs are independent: different ids, ports and credentials."""
    async with FakeSalesforceOrg() as first, FakeSalesforceOrg() as second:
        assert first.org_id != second.org_id
        assert first.my_domain_url != second.my_domain_url
        assert first.app.client_id != second.app.client_id


def test_ids_look_like_salesforce_ids():
    """Org, user and record ids are 18 characters with the right key prefix and checksum."""
    org = FakeSalesforceOrg()
    assert org.org_id.startswith("00D")
    assert org.user.user_id.startswith("005")
    assert ID18.match(org.org_id)
    assert ID18.match(org.user.user_id)
    # Salesforce's case-safe suffix: a known real id.
    known = "001A0000006Vm9r"
    for _ in range(50):
        record_id = new_id("001")
        assert len(record_id) == 18
    assert _suffix(known) == "IAC"


def _suffix(id15: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    out = ""
    for start in range(0, 15, 5):
        bits = sum(1 << i for i, c in enumerate(id15[start : start + 5]) if c.isupper())
        out += alphabet[bits]
    return out


def test_private_key_matches_default_certificate():
    """private_key_pem is the key of the default app's certificate, shared by every org."""
    first, second = FakeSalesforceOrg(), FakeSalesforceOrg()
    assert first.private_key_pem == second.private_key_pem
    key = serialization.load_pem_private_key(first.private_key_pem, password=None)
    assert first.app.certificate_pem is not None
    certificate = x509.load_pem_x509_certificate(first.app.certificate_pem)
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def test_default_app_and_user():
    """The default app is confidential, JWT-ready and runs client credentials as the user."""
    org = FakeSalesforceOrg()
    assert isinstance(org.app, FakeApp)
    assert isinstance(org.user, FakeUser)
    assert org.app.client_id.startswith("3MVG9")
    assert org.app.confidential
    assert org.app.client_credentials_user is org.user
    assert org.user.pre_authorized
    assert org.user.active
    assert org.user.email == org.user.username
    assert org.apps == (org.app,)
    assert org.users == (org.user,)


def test_add_app_and_user():
    """add_app and add_user register new entries and refuse duplicates."""
    org = FakeSalesforceOrg()
    bob = org.add_user(username="bob@example.com", password="hunter2")
    assert (bob.username, bob.password, bob.email) == (
        "bob@example.com",
        "hunter2",
        "bob@example.com",
    )
    assert bob.user_id != org.user.user_id
    app = org.add_app(client_id="3MVG9custom", scopes=["api"], client_credentials_user=bob)
    assert (app.client_id, app.scopes, app.client_credentials_user) == ("3MVG9custom", ["api"], bob)
    assert app.certificate_pem == org.app.certificate_pem
    assert org.apps == (org.app, app)
    assert org.users == (org.user, bob)
    with pytest.raises(ValueError, match="already exists"):
        org.add_user(username="BOB@example.com")
    with pytest.raises(ValueError, match="already exists"):
        org.add_app(client_id="3MVG9custom")


def test_reprs_hide_secrets():
    """Reprs never show the password, security token or client secret."""
    org = FakeSalesforceOrg()
    text = repr(org.user) + repr(org.app)
    for secret in (org.user.password, org.user.security_token, org.app.client_secret):
        assert secret not in text


def test_records():
    """add_record stores a record with an id of the type's key prefix; get_record reads it."""
    org = FakeSalesforceOrg()
    record_id = org.add_record("Contact", {"LastName": "Doe"})
    assert record_id.startswith("003")
    assert org.get_record(record_id) == {"LastName": "Doe", "Id": record_id}
    assert org.get_record("003000000000000AAA") is None


async def test_issue_refresh_token_defaults(org):
    """issue_refresh_token grants every app scope to the default user by default."""
    refresh_token = org.issue_refresh_token()
    assert refresh_token.startswith("5Aep861")
    family = org._refresh_family(refresh_token)
    assert family is not None
    assert (family.user, family.app, list(family.scopes)) == (org.user, org.app, org.app.scopes)
