"""`InstanceHosts` and `DEFAULT_INSTANCE_HOSTS`: which instance hosts a flow trusts (item 11)."""

from __future__ import annotations

import pytest

from sfoauth_async import DEFAULT_INSTANCE_HOSTS, ConfigurationError
from sfoauth_async._hosts import InstanceHosts


@pytest.mark.parametrize(
    "host",
    [
        "acme.my.salesforce.com",
        "acme--uat.sandbox.my.salesforce.com",
        "acme-dev-ed.develop.my.salesforce.com",
        "acme.scratch.my.salesforce.com",
        "na139.salesforce.com",
        "api.salesforce.com",
        "acme.my.site.com",
        "acme--uat.sandbox.my.site.com",
        "acme.my.salesforce-sites.com",
        "acme.secure.force.com",
        "acme.cloudforce.com",
        "acme.database.com",
        "acme.my.salesforce.mil",
        "acme.lightning.crmforce.mil",
        "acme.my.sfcrmproducts.cn",
        "acme.sfcrmapps.cn",
        "localhost",
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "[::1]",
        "ACME.My.Salesforce.com.",
    ],
)
def test_the_default_allows_salesforce_and_loopback(host: str):
    """Every Salesforce domain family and loopback is allowed by default."""
    assert InstanceHosts(DEFAULT_INSTANCE_HOSTS).allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "salesforce.com",
        "evilsalesforce.com",
        "salesforce.com.evil.example",
        "acme.my.salesforce.com.evil.example",
        "app.localhost",
        "10.0.0.1",
        "::2",
        "::ffff:127.0.0.1",
        "xn--salesforce-xyz.com",
    ],
)
def test_the_default_refuses_other_hosts(host: str):
    """Look-alikes, bare apex domains, other networks and *.localhost are refused."""
    assert not InstanceHosts(DEFAULT_INSTANCE_HOSTS).allows(host)


def test_a_single_string_is_one_pattern():
    """A str is one pattern, not a sequence of one-character patterns."""
    hosts = InstanceHosts("*.example.org")
    assert hosts.patterns == ("*.example.org",)
    assert hosts.allows("a.example.org")
    assert not hosts.allows("e")


def test_a_wildcard_needs_a_subdomain():
    """'*.example.org' matches below example.org at any depth, not example.org itself."""
    hosts = InstanceHosts(["*.example.org"])
    assert hosts.allows("a.b.c.example.org")
    assert not hosts.allows("example.org")
    assert not hosts.allows("badexample.org")


def test_networks_and_addresses():
    """IP networks match their addresses; IPv6 addresses match in any spelling."""
    hosts = InstanceHosts(["10.0.0.0/8", "2001:db8::1", "127.0.0.1/8"])
    assert hosts.allows("10.200.0.1")
    assert hosts.allows("2001:0db8:0000:0000:0000:0000:0000:0001")
    assert hosts.allows("127.3.2.1")
    assert not hosts.allows("11.0.0.1")


def test_star_allows_any_host():
    """'*' alone switches the check off."""
    assert InstanceHosts(["*"]).allows("anything.example")


@pytest.mark.parametrize(
    "pattern", ["", "  ", "https://a.com", "a.com/path", "a.com:443", "*.*.com", "b\u00fccher.de"]
)
def test_bad_patterns_are_configuration_errors(pattern: str):
    """What is not a host pattern is refused with a message naming the forms allowed."""
    with pytest.raises(ConfigurationError, match=r"\*\.my\.salesforce\.com"):
        InstanceHosts([pattern])
