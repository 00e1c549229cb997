"""`flow_from_env`: every grant from SF_* variables, the order, every missing-variable message."""

from __future__ import annotations

import pytest

from sfoauth_async import (
    AuthorizationCodeFlow,
    ClientCredentialsFlow,
    ConfigurationError,
    JWTBearerFlow,
    PasswordFlow,
    RefreshTokenFlow,
    flow_from_env,
)
from sfoauth_async.testing import FakeSalesforceOrg

pytestmark = pytest.mark.filterwarnings("ignore:The username-password flow:DeprecationWarning")


def everything(org: FakeSalesforceOrg, key_file: str) -> dict[str, str]:
    """Every variable set, for the fake org's default app and user."""
    return {
        "SF_CLIENT_ID": org.app.client_id,
        "SF_CLIENT_SECRET": org.app.client_secret,
        "SF_USERNAME": org.user.username,
        "SF_PASSWORD": org.user.password,
        "SF_SECURITY_TOKEN": org.user.security_token,
        "SF_PRIVATE_KEY_FILE": key_file,
        "SF_LOGIN_URL": org.my_domain_url,
        "SF_REFRESH_TOKEN": org.issue_refresh_token(),
    }


@pytest.fixture
def key_file(fake_org: FakeSalesforceOrg, tmp_path) -> str:
    """The fake app's private key in a PEM file."""
    path = tmp_path / "server.key"
    path.write_bytes(fake_org.private_key_pem)
    return str(path)


def without(values: dict[str, str], *names: str) -> dict[str, str]:
    """``values`` less ``names``."""
    return {name: value for name, value in values.items() if name not in names}


async def test_refresh_token_comes_first_and_works(fake_org, key_file) -> None:
    """With every variable set, the refresh token grant is built, and it gets a token."""
    flow = flow_from_env(everything(fake_org, key_file))
    assert isinstance(flow, RefreshTokenFlow)
    await flow.fetch_token()
    assert fake_org.stats.token_requests["refresh_token"] == 1


async def test_jwt_bearer_comes_second_and_works(fake_org, key_file) -> None:
    """Without a refresh token, the JWT bearer grant is built from the key file and logs in."""
    values = without(everything(fake_org, key_file), "SF_REFRESH_TOKEN")
    values["SF_LOGIN_URL"] = fake_org.login_url
    flow = flow_from_env(values)
    assert isinstance(flow, JWTBearerFlow)
    assert flow.username == fake_org.user.username
    await flow.fetch_token()
    assert fake_org.stats.token_requests["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 1


async def test_jwt_bearer_from_pem_text_with_escaped_newlines(fake_org) -> None:
    """SF_PRIVATE_KEY holds PEM text, also on one line with escaped newlines, as in CI stores."""
    one_line = fake_org.private_key_pem.decode().replace("\n", "\\n")
    values = {
        "SF_CLIENT_ID": fake_org.app.client_id,
        "SF_USERNAME": fake_org.user.username,
        "SF_PRIVATE_KEY": one_line,
        "SF_LOGIN_URL": fake_org.login_url,
        "SF_AUDIENCE": fake_org.login_url,
    }
    flow = flow_from_env(values)
    assert isinstance(flow, JWTBearerFlow)
    assert flow.audience == fake_org.login_url
    await flow.fetch_token()


async def test_client_credentials_comes_third_and_works(fake_org, key_file) -> None:
    """Without refresh token or key, the client credentials grant is built for My Domain."""
    values = without(everything(fake_org, key_file), "SF_REFRESH_TOKEN", "SF_PRIVATE_KEY_FILE")
    flow = flow_from_env(values)
    assert isinstance(flow, ClientCredentialsFlow)
    await flow.fetch_token()
    assert fake_org.stats.token_requests["client_credentials"] == 1


async def test_password_comes_last_and_works(fake_org, key_file) -> None:
    """On a generic login host client credentials is skipped: the password grant logs in."""
    values = without(everything(fake_org, key_file), "SF_REFRESH_TOKEN", "SF_PRIVATE_KEY_FILE")
    values["SF_LOGIN_URL"] = "https://login.salesforce.com"
    with pytest.deprecated_call():
        assert isinstance(flow_from_env(values), PasswordFlow)
    values["SF_LOGIN_URL"] = fake_org.login_url  # the fake's stand-in for login.salesforce.com
    with pytest.deprecated_call():
        flow = flow_from_env(values, flow="password")
    await flow.fetch_token()
    assert fake_org.stats.token_requests["password"] == 1


def test_named_flow_wins_over_the_order(fake_org, key_file) -> None:
    """flow= builds that grant even when an earlier one is complete."""
    flow = flow_from_env(everything(fake_org, key_file), flow="client_credentials")
    assert isinstance(flow, ClientCredentialsFlow)


def test_authorization_code_only_when_named(fake_org) -> None:
    """The browser grant is never picked automatically; named, it takes SF_SCOPE too."""
    values = {
        "SF_CLIENT_ID": fake_org.app.client_id,
        "SF_REDIRECT_URI": "http://localhost:1717/OauthRedirect",
        "SF_SCOPE": "api refresh_token",
    }
    with pytest.raises(ConfigurationError):
        flow_from_env(values)
    flow = flow_from_env(values, flow="authorization_code")
    assert isinstance(flow, AuthorizationCodeFlow)
    assert "scope=api+refresh_token" in flow.authorization_url().url


def test_reads_os_environ_by_default(monkeypatch, fake_org) -> None:
    """Without env=, the process environment is read; empty variables count as unset."""
    monkeypatch.setenv("SF_CLIENT_ID", fake_org.app.client_id)
    monkeypatch.setenv("SF_REFRESH_TOKEN", "5Aep861abc")
    monkeypatch.setenv("SF_PRIVATE_KEY_FILE", "")
    assert isinstance(flow_from_env(), RefreshTokenFlow)


def test_nothing_set_names_every_flow_and_its_variables() -> None:
    """With no variable, the message lists each automatic flow with what it needs."""
    with pytest.raises(ConfigurationError) as caught:
        flow_from_env({"SF_PASSWORD": "  "})
    message = str(caught.value)
    assert message.startswith("No Salesforce credentials are set.")
    for expected in (
        "refresh token flow, SF_CLIENT_ID and SF_REFRESH_TOKEN",
        "JWT bearer flow, SF_CLIENT_ID, SF_USERNAME and SF_PRIVATE_KEY_FILE (or SF_PRIVATE_KEY)",
        "client credentials flow, SF_CLIENT_ID, SF_CLIENT_SECRET and SF_LOGIN_URL",
        "username-password flow (deprecated), SF_CLIENT_ID, SF_CLIENT_SECRET, SF_USERNAME and "
        "SF_PASSWORD",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("flow", "needed"),
    [
        ("refresh_token", ["SF_CLIENT_ID", "SF_REFRESH_TOKEN"]),
        ("jwt_bearer", ["SF_CLIENT_ID", "SF_USERNAME", "SF_PRIVATE_KEY_FILE"]),
        ("client_credentials", ["SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_LOGIN_URL"]),
        ("password", ["SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_USERNAME", "SF_PASSWORD"]),
        ("authorization_code", ["SF_CLIENT_ID", "SF_REDIRECT_URI"]),
    ],
)
def test_each_missing_variable_is_named_for_its_flow(flow, needed, fake_org, key_file) -> None:
    """Dropping any one needed variable of a named flow gives a message naming it and the flow."""
    values = everything(fake_org, key_file) | {"SF_REDIRECT_URI": "http://localhost:1717/cb"}
    label = flow.replace("_", " ").replace("password", "username-password")
    for name in needed:
        with pytest.raises(ConfigurationError) as caught:
            flow_from_env(without(values, name), flow=flow)
        message = str(caught.value)
        assert label in message.lower()
        assert f"needs {name}" in message


def test_hinted_flows_say_what_they_miss() -> None:
    """A username alone hints at JWT and password: the message says what each still needs."""
    with pytest.raises(ConfigurationError) as caught:
        flow_from_env({"SF_CLIENT_ID": "3MVG9x", "SF_USERNAME": "etl@acme.com"})
    assert str(caught.value) == (
        "No flow has all its variables: the JWT bearer flow is missing SF_PRIVATE_KEY_FILE "
        "(or SF_PRIVATE_KEY); the username-password flow (deprecated) is missing "
        "SF_CLIENT_SECRET and SF_PASSWORD."
    )


def test_client_credentials_on_a_generic_host_says_my_domain() -> None:
    """Named client credentials with login.salesforce.com asks for the My Domain URL."""
    values = {
        "SF_CLIENT_ID": "3MVG9x",
        "SF_CLIENT_SECRET": "s3cr3t",
        "SF_LOGIN_URL": "https://login.salesforce.com",
    }
    with pytest.raises(ConfigurationError, match="SF_LOGIN_URL set to your My Domain URL"):
        flow_from_env(values, flow="client_credentials")


def test_both_key_variables_are_refused(fake_org, key_file) -> None:
    """SF_PRIVATE_KEY and SF_PRIVATE_KEY_FILE together are ambiguous: refused."""
    values = {
        "SF_CLIENT_ID": "3MVG9x",
        "SF_USERNAME": "etl@acme.com",
        "SF_PRIVATE_KEY_FILE": key_file,
        "SF_PRIVATE_KEY": fake_org.private_key_pem.decode(),
    }
    with pytest.raises(ConfigurationError, match="set only one"):
        flow_from_env(values)


def test_unusable_value_names_the_variables_never_the_secrets() -> None:
    """A bad login URL names the variables used, and no secret value appears in the message."""
    values = {
        "SF_CLIENT_ID": "3MVG9x",
        "SF_REFRESH_TOKEN": "5Aep861-the-refresh-token",
        "SF_CLIENT_SECRET": "the-client-secret",
        "SF_LOGIN_URL": "http://acme.my.salesforce.com",
    }
    with pytest.raises(ConfigurationError) as caught:
        flow_from_env(values)
    message = str(caught.value)
    assert "SF_LOGIN_URL" in message
    assert "plain http://" in message
    assert "5Aep861-the-refresh-token" not in message
    assert "the-client-secret" not in message


def test_a_key_that_is_not_pem_is_never_echoed() -> None:
    """SF_PRIVATE_KEY that is not a key gives a typed error without the value in it."""
    values = {
        "SF_CLIENT_ID": "3MVG9x",
        "SF_USERNAME": "etl@acme.com",
        "SF_PRIVATE_KEY": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-secret-body",
    }
    with pytest.raises(ConfigurationError) as caught:
        flow_from_env(values)
    assert "MIIEvQ" not in str(caught.value)
    assert "SF_PRIVATE_KEY" in str(caught.value)


def test_unknown_flow_name_lists_the_known_ones() -> None:
    """flow= with an unknown name is a ConfigurationError naming the valid ones."""
    with pytest.raises(ConfigurationError, match="jwt_bearer"):
        flow_from_env({}, flow="device")  # type: ignore[arg-type]
