"""Which hosts a token's ``instance_url`` may name: Salesforce's own domains unless told otherwise.

Every API call, with its bearer token, goes to the ``instance_url`` of the latest token
response. A token endpoint that is not Salesforce (a wrong ``login_url``, a proxy, an
attacker on a misconfigured network) could name any host there; the flow refuses tokens whose
instance is not on an allowed host (`DEFAULT_INSTANCE_HOSTS` unless ``instance_hosts=`` says
otherwise).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from ._errors import ConfigurationError
from ._untrusted import printable

__all__ = ["DEFAULT_INSTANCE_HOSTS", "InstanceHosts"]

DEFAULT_INSTANCE_HOSTS: tuple[str, ...] = (
    # Commercial and Government Cloud: My Domain (*.my.salesforce.com) and its sandbox,
    # scratch, developer and demo forms (*.sandbox.my.salesforce.com, ...), and the legacy
    # instance hosts (na1.salesforce.com, cs42.salesforce.com).
    "*.salesforce.com",
    # Salesforce Sites and Experience Cloud: *.my.site.com, *.sandbox.my.site.com,
    # *.my.salesforce-sites.com, and the legacy *.force.com / *.secure.force.com.
    "*.force.com",
    "*.site.com",
    "*.salesforce-sites.com",
    "*.cloudforce.com",
    "*.database.com",
    # Government Cloud Plus - Defense.
    "*.salesforce.mil",
    "*.force.mil",
    "*.cloudforce.mil",
    "*.crmforce.mil",
    # Salesforce on Alibaba Cloud (China).
    "*.sfcrmproducts.cn",
    "*.sfcrmapps.cn",
    # This machine (tests, local proxies); plain http:// is allowed only here.
    "localhost",
    "127.0.0.0/8",
    "::1",
)
"""The hosts a flow accepts in a token's ``instance_url`` unless given ``instance_hosts=``.

Salesforce's domains (production, sandbox, scratch, Experience Cloud and Sites, Government
Cloud and Government Cloud Plus - Defense, Salesforce on Alibaba Cloud) and loopback.
"""

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _bad_pattern(pattern: str) -> ConfigurationError:
    return ConfigurationError(
        f"instance_hosts entry '{printable(pattern)}' is not a host pattern. Use host names "
        f"('acme.my.salesforce.com'), '*.' and a domain for its subdomains "
        f"('*.my.salesforce.com'), IP addresses or networks ('10.0.0.0/8'), or '*' for any "
        f"host; international names in their xn-- form."
    )


def _is_host_name(text: str) -> bool:
    return text.isascii() and all(_LABEL.fullmatch(label) for label in text.split("."))


class InstanceHosts:
    """A compiled list of host patterns, and the test of a host against it.

    Patterns: an exact host name (``acme.my.salesforce.com``); ``*.`` plus a domain, for any
    host below it at any depth (``*.salesforce.com`` matches ``acme.my.salesforce.com`` but
    not ``salesforce.com``); an IP address (``::1``) or network (``127.0.0.0/8``); or ``*``
    alone for any host. Case does not matter.

    Example:
        ```python
        hosts = InstanceHosts(["*.my.salesforce.com", "127.0.0.0/8"])
        assert hosts.allows("acme.my.salesforce.com") and not hosts.allows("evil.example")
        ```
    """

    __slots__ = ("_any", "_exact", "_networks", "_suffixes", "patterns")

    def __init__(self, patterns: Iterable[str] | str) -> None:
        if isinstance(patterns, str):
            patterns = (patterns,)
        self.patterns: tuple[str, ...] = tuple(patterns)
        self._any = False
        self._exact: set[str] = set()
        self._suffixes: list[str] = []
        self._networks: list[_IpNetwork] = []
        for pattern in self.patterns:
            self._add(pattern)
        if not self.patterns:
            raise ConfigurationError(
                "instance_hosts is empty, so no token could ever be used. Leave it out for "
                "Salesforce's own domains (DEFAULT_INSTANCE_HOSTS)."
            )

    def _add(self, pattern: object) -> None:
        if not isinstance(pattern, str) or not pattern.strip():
            raise _bad_pattern(str(pattern))
        text = pattern.strip().lower().removesuffix(".")
        if text == "*":
            self._any = True
        elif "/" in text:
            try:
                # strict=False: "127.0.0.1/8" means the network 127.0.0.0/8.
                self._networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise _bad_pattern(pattern) from None
        elif text.startswith("*.") and _is_host_name(text[2:]):
            self._suffixes.append(text[1:])
        elif _is_host_name(text):
            self._exact.add(text)
        else:
            try:
                self._exact.add(str(ipaddress.ip_address(text.strip("[]"))))
            except ValueError:
                raise _bad_pattern(pattern) from None

    def allows(self, host: str) -> bool:
        """Tell whether ``host`` (a name or an IP address, without brackets) is allowed.

        Example:
            ```python
            assert InstanceHosts(["*.salesforce.com"]).allows("ACME.my.salesforce.com")
            ```
        """
        if self._any:
            return True
        host = host.strip("[]").lower().removesuffix(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self._exact or host.endswith(tuple(self._suffixes))
        return str(address) in self._exact or any(address in net for net in self._networks)
