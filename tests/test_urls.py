"""Host rules of `sfoauth_async._urls`, checked against spec §1 and §2.5."""

from __future__ import annotations

import pytest
from yarl import URL

from sfoauth_async import ConfigurationError
from sfoauth_async._urls import (
    default_audience,
    endpoint_url,
    is_generic_login_host,
    is_loopback_host,
    normalize_instance_url,
    normalize_login_url,
    origin_of,
    secure_url,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://login.salesforce.com/", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com/", "https://acme.my.salesforce.com"),
        ("https://acme.my.site.com/partners", "https://acme.my.site.com/partners"),
        ("https://acme.my.site.com/partners/", "https://acme.my.site.com/partners"),
        ("https://acme.my.site.com/a/b/", "https://acme.my.site.com/a/b"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://127.0.0.1:9999/site", "http://127.0.0.1:9999/site"),
    ],
)
def test_normalize_login_url_keeps_path_and_strips_trailing_slash(given: str, expected: str):
    """An Experience Cloud path is kept and one trailing slash is dropped."""
    assert normalize_login_url(given) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://login.salesforce.com",
        "http://acme.my.salesforce.com",
        "http://10.0.0.1:8080",
        "http://localhost.example.com",
    ],
)
def test_normalize_login_url_refuses_plain_http_off_loopback(url: str):
    """Plain http:// would send credentials in clear text, so only loopback may use it."""
    with pytest.raises(ConfigurationError, match="https://"):
        normalize_login_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.my.salesforce.com?x=1",
        "https://acme.my.salesforce.com/?startURL=/home",
        "https://acme.my.salesforce.com#frag",
        "https://acme.my.site.com/partners#login",
    ],
)
def test_normalize_login_url_refuses_query_and_fragment(url: str):
    """A login URL with a query string or fragment cannot be the base of endpoint URLs."""
    with pytest.raises(ConfigurationError, match="query string or fragment"):
        normalize_login_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.lightning.force.com",
        "https://acme.sandbox.lightning.force.com/",
        "https://acme.my.salesforce-setup.com",
        "https://ACME.Lightning.Force.com",
    ],
)
def test_normalize_login_url_refuses_lightning_and_setup_domains(url: str):
    """Lightning and Setup domains cannot log in (spec §1); the message points at My Domain."""
    with pytest.raises(ConfigurationError, match="My Domain"):
        normalize_login_url(url)


@pytest.mark.parametrize(
    "url", ["", "login.salesforce.com", "/services/oauth2/token", "ftp://login.salesforce.com"]
)
def test_normalize_login_url_refuses_non_absolute_or_non_http(url: str):
    """Only absolute https:// (or loopback http://) URLs are login URLs."""
    with pytest.raises(ConfigurationError, match="absolute https://"):
        normalize_login_url(url)


def test_configuration_error_from_urls_is_a_value_error():
    """A bad URL raises a ConfigurationError, which callers may also catch as ValueError."""
    with pytest.raises(ValueError, match="https"):
        normalize_login_url("http://example.com")


def test_secure_url_returns_the_parsed_url_and_names_what_was_checked():
    """secure_url parses https URLs and its message names the setting that is wrong."""
    assert secure_url("https://acme.my.salesforce.com/x", what="thing") == URL(
        "https://acme.my.salesforce.com/x"
    )
    with pytest.raises(ConfigurationError, match=r"^instance_url "):
        secure_url("http://acme.my.salesforce.com", what="instance_url")


@pytest.mark.parametrize(
    ("login_url", "audience"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://login.salesforce.com/", "https://login.salesforce.com"),
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
        ("https://ACME.My.Salesforce.com", "https://login.salesforce.com"),
        ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),
        ("https://power-dream-123.scratch.my.salesforce.com", "https://test.salesforce.com"),
        ("https://acme.my.site.com/partners", "https://acme.my.site.com/partners"),
        ("https://acme.my.site.com/partners/", "https://acme.my.site.com/partners"),
        ("https://site.force.com/customers", "https://site.force.com/customers"),
    ],
)
def test_default_audience_follows_the_host(login_url: str, audience: str):
    """Production -> login, sandbox/scratch -> test, Experience Cloud -> the site URL (§2.5)."""
    assert default_audience(login_url) == audience


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("app.localhost", False),
        ("localhost.", False),
        ("::ffff:127.0.0.1", False),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("", False),
        (None, False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("10.0.0.1", False),
        ("::2", False),
        ("login.salesforce.com", False),
    ],
)
def test_is_loopback_host(host: str | None, loopback: bool):
    """Only localhost, 127.0.0.0/8 and ::1 count as this machine."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("url", "generic"),
    [
        ("https://login.salesforce.com", True),
        ("https://test.salesforce.com/", True),
        ("https://LOGIN.salesforce.com", True),
        ("https://acme.my.salesforce.com", False),
        ("https://acme--uat.sandbox.my.salesforce.com", False),
        ("https://login.salesforce.com.evil.example", False),
    ],
)
def test_is_generic_login_host(url: str, generic: bool):
    """login.salesforce.com and test.salesforce.com are the generic hosts, nothing else."""
    assert is_generic_login_host(url) is generic


@pytest.mark.parametrize(
    ("login_url", "expected"),
    [
        ("https://acme.my.salesforce.com", "https://acme.my.salesforce.com/services/oauth2/token"),
        (
            "https://acme.my.site.com/partners",
            "https://acme.my.site.com/partners/services/oauth2/token",
        ),
        (
            "https://acme.my.site.com/partners/",
            "https://acme.my.site.com/partners/services/oauth2/token",
        ),
    ],
)
def test_endpoint_url_appends_to_the_login_path(login_url: str, expected: str):
    """Endpoint paths are appended to the login URL, keeping an Experience Cloud path."""
    assert endpoint_url(login_url, "/services/oauth2/token") == expected


def test_origin_of_drops_path_query_and_fragment():
    """The origin is scheme, host and port only."""
    assert origin_of("https://a.my.salesforce.com:8443/x?y=1#z") == URL(
        "https://a.my.salesforce.com:8443"
    )
    assert origin_of(URL("https://a.my.salesforce.com/x")) == URL("https://a.my.salesforce.com")


@pytest.mark.parametrize(
    "url", ["https://user:hunter2@acme.my.salesforce.com", "https://user@acme.my.salesforce.com"]
)
def test_normalize_login_url_refuses_credentials_in_the_url(url: str):
    """A user name or password in login_url is refused, and the password never echoed."""
    with pytest.raises(ConfigurationError) as caught:
        normalize_login_url(url)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["http://app.localhost:8080", "http://localhost.evil.example", "http://10.0.0.1"]
)
def test_plain_http_is_refused_for_localhost_subdomains(url: str):
    """A *.localhost name resolves wherever a resolver says: no plain http to it."""
    with pytest.raises(ConfigurationError, match="plain http"):
        normalize_login_url(url)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://acme.my.salesforce.com", "https://acme.my.salesforce.com"),
        ("HTTPS://Acme.My.Salesforce.COM:443/", "https://acme.my.salesforce.com"),
        ("https://acme.my.salesforce.com.", "https://acme.my.salesforce.com"),
        ("https://acme.my.salesforce.com:8443", "https://acme.my.salesforce.com:8443"),
        ("https://acme.my.site.com/partners/", "https://acme.my.site.com/partners"),
        ("http://127.0.0.1:5555/", "http://127.0.0.1:5555"),
        ("http://[::1]:80/", "http://[::1]"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://b\u00fccher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_normalize_instance_url(given: str, expected: str):
    """Scheme and host lower-case, default port, trailing slash and dot dropped, IDN encoded."""
    assert normalize_instance_url(given) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://acme.my.salesforce.com", "plain http"),
        ("http://app.localhost", "plain http"),
        ("https://user:hunter2@acme.my.salesforce.com", "user name or password"),
        ("https://acme.my.salesforce.com/?next=evil", "query or fragment"),
        ("https://acme.my.salesforce.com#frag", "query or fragment"),
        ("https://acme.my.salesforce.com/\r\nSet-Cookie:x", "control"),
        ("https://acme.my.sales\tforce.com", "control"),
        ("https://acme.my.salesforce.com/ x", "control"),
        ("https://acme.my.salesforce.com\\@evil.example", "backslash"),
        ("https://acme\u202e.my.salesforce.com", "control"),
        ("https://acme..salesforce.com", "invalid host"),
        ("https://-acme.my.salesforce.com", "invalid host"),
        ("https://acme.my.salesforce.com:0", "port 0"),
        ("ftp://acme.my.salesforce.com", "https://"),
        ("/services/data", "https://"),
        ("", "empty"),
        ("https://" + "a" * 3000 + ".com", "longer than"),
    ],
)
def test_normalize_instance_url_refuses(url: str, reason: str):
    """Unusable instance URLs raise ConfigurationError saying why, never echoing secrets."""
    with pytest.raises(ConfigurationError) as caught:
        normalize_instance_url(url)
    message = str(caught.value)
    assert reason in message
    assert "hunter2" not in message
    for control in ("\r", "\n", "\t"):
        assert control not in message
    assert len(message) < 600
