"""Salesforce host rules: which URLs we accept, which audience a JWT gets, what an origin is.

Pure functions on URLs: no HTTP. They live in one place so that the flows, the token model
and the session agree on what "secure", "loopback" and "same origin" mean.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from yarl import URL

from ._errors import ConfigurationError
from ._untrusted import printable

__all__ = [
    "DEFAULT_LOGIN_URL",
    "PRODUCTION_AUDIENCE",
    "SANDBOX_AUDIENCE",
    "default_audience",
    "endpoint_url",
    "is_generic_login_host",
    "is_loopback_host",
    "normalize_instance_url",
    "normalize_login_url",
    "origin_of",
    "secure_url",
]

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"

_GENERIC_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
_WRONG_HOST_SUFFIXES = (".lightning.force.com", ".salesforce-setup.com")
_IPV6_LOOPBACK = ipaddress.IPv6Address("::1")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS label: letters, digits, "-" inside (Salesforce's "--" sandbox separator included) and
# "_", which some internal hosts use.
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_URL_CHARS = 2048


def is_loopback_host(host: str | None) -> bool:
    """Tell whether ``host`` is this machine: ``localhost``, ``127.0.0.0/8`` or ``::1``.

    Subdomains of ``localhost`` are not loopback here: only these names and addresses may
    receive credentials over plain ``http://``.

    Example:
        ```python
        assert is_loopback_host("127.0.0.1") and not is_loopback_host("example.com")
        ```
    """
    if not host:
        return False
    host = host.strip("[]").lower()
    # Only the name itself: "*.localhost" resolves wherever a resolver or /etc/hosts says.
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 4:
        return address.is_loopback  # 127.0.0.0/8
    # Exactly ::1: not an IPv4-mapped address, whose meaning differs across Python versions.
    return address == _IPV6_LOOPBACK


def secure_url(url: str | URL, *, what: str) -> URL:
    """Parse ``url`` and refuse anything but ``https://``, or ``http://`` on loopback.

    Args:
        url: The URL to check.
        what: What the URL is, for the error message (e.g. ``"login_url"``).

    Returns:
        The parsed URL.

    Raises:
        ConfigurationError: The URL is not absolute, or is plain ``http://`` to another host.

    Example:
        ```python
        secure_url("https://acme.my.salesforce.com", what="login_url")
        ```
    """
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        host = parsed.host
    except ValueError:  # yarl cannot parse it at all
        raise ConfigurationError(f"{what} is not a valid URL.") from None
    if not parsed.absolute or parsed.scheme not in ("http", "https") or not host:
        raise ConfigurationError(
            f"{what} must be an absolute https:// URL such as "
            f"https://login.salesforce.com or https://<MyDomain>.my.salesforce.com, "
            f"got {str(parsed.with_password(None) if parsed.absolute else parsed)!r}."
        )
    if parsed.user is not None or parsed.password is not None:
        raise ConfigurationError(
            f"{what} must not carry a user name or password; pass credentials to the flow's "
            f"own arguments."
        )
    if parsed.scheme == "http" and not is_loopback_host(parsed.host):
        raise ConfigurationError(
            f"{what} {str(parsed)!r} uses plain http://, which would send credentials in "
            f"clear text. Use https:// (plain http is allowed only for localhost, for tests)."
        )
    return parsed


def normalize_login_url(url: str) -> str:
    """Check a login URL and return it without a trailing slash, its path kept.

    Experience Cloud sites live under a path (``https://acme.my.site.com/partners``), so the
    path is part of the login URL and endpoint URLs are built by appending to it.

    Raises:
        ConfigurationError: Not https (or loopback http), carries a query or fragment, or is a
            Lightning or Setup domain, which cannot log in.

    Example:
        ```python
        assert normalize_login_url("https://acme.my.site.com/partners/") == (
            "https://acme.my.site.com/partners"
        )
        ```
    """
    parsed = secure_url(url, what="login_url")
    if parsed.query_string or parsed.fragment:
        raise ConfigurationError(
            f"login_url must not have a query string or fragment, got {str(parsed)!r}."
        )
    host = (parsed.host or "").lower()
    if host.endswith(_WRONG_HOST_SUFFIXES):
        raise ConfigurationError(
            f"login_url {str(parsed)!r} is a Lightning or Setup domain, which cannot log in. "
            f"Use your My Domain URL, https://<MyDomain>.my.salesforce.com (Setup > My Domain)."
        )
    return str(parsed).rstrip("/")


def _unsafe_character(url: str) -> str | None:
    for char in url:
        if char == "\\" or char.isspace() or unicodedata.category(char)[0] == "C":
            return char
    return None


def _checked_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{host}]" if ":" in host else host
    host = host.removesuffix(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise ConfigurationError(f"instance_url has an invalid host name '{printable(host)}'.")
    return host


def normalize_instance_url(url: str) -> str:
    """Check a token's ``instance_url`` and return its normalized form.

    Refused: anything but ``https://`` (``http://`` only to ``localhost``, ``127.0.0.0/8`` or
    ``::1``), user info, a query, a fragment, spaces, control characters, backslashes, an
    invalid host name or port, and URLs longer than 2,048 characters. Normalized: scheme and
    host lower-cased (international names in their ``xn--`` form), a default port and a
    trailing slash or dot dropped, the path kept.

    Args:
        url: The ``instance_url`` of a token response or a stored token.

    Returns:
        The normalized URL, e.g. ``"https://acme.my.salesforce.com"``.

    Raises:
        ConfigurationError: The URL is unusable; the message says why, showing the URL only
            through `printable`.

    Example:
        ```python
        assert normalize_instance_url("HTTPS://Acme.My.Salesforce.com:443/") == (
            "https://acme.my.salesforce.com"
        )
        ```
    """
    if not url:
        raise ConfigurationError("instance_url is empty.")
    if len(url) > _MAX_URL_CHARS:
        raise ConfigurationError(
            f"instance_url is {len(url)} characters long, longer than {_MAX_URL_CHARS}: "
            f"'{printable(url, limit_chars=80)}'."
        )
    char = _unsafe_character(url)
    if char is not None:
        raise ConfigurationError(
            f"instance_url '{printable(url)}' contains '{printable(char)}': spaces, control "
            f"characters and backslashes are not allowed in it."
        )
    if "?" in url or "#" in url:
        raise ConfigurationError(
            f"instance_url '{printable(url)}' has a query or fragment; it must be a base URL "
            f"such as https://<MyDomain>.my.salesforce.com."
        )
    parsed = secure_url(url, what="instance_url")
    port = parsed.explicit_port
    if port == 0:
        raise ConfigurationError(f"instance_url '{printable(url)}' has port 0.")
    host = _checked_host(parsed.raw_host or "")
    scheme = parsed.scheme.lower()
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown_port}{parsed.raw_path.rstrip('/')}"


def endpoint_url(login_url: str, path: str) -> str:
    """Append an endpoint path to a login URL, keeping the login URL's own path.

    Example:
        ```python
        assert endpoint_url("https://x.my.site.com/partners", "/services/oauth2/token") == (
            "https://x.my.site.com/partners/services/oauth2/token"
        )
        ```
    """
    return login_url.rstrip("/") + path


def is_generic_login_host(url: str) -> bool:
    """Tell whether ``url`` is ``login.salesforce.com`` or ``test.salesforce.com``.

    Example:
        ```python
        assert is_generic_login_host("https://test.salesforce.com")
        ```
    """
    return (URL(url).host or "").lower() in _GENERIC_LOGIN_HOSTS


def default_audience(login_url: str) -> str:
    """The JWT ``aud`` Salesforce expects for a login URL.

    Production hosts (``login.salesforce.com``, ``*.my.salesforce.com``) take
    ``https://login.salesforce.com``; sandbox and scratch hosts (``test.salesforce.com``,
    ``*.sandbox.my.salesforce.com``, ``*.scratch.my.salesforce.com``) take
    ``https://test.salesforce.com``; any other host (an Experience Cloud site) takes the login
    URL itself.

    Example:
        ```python
        assert default_audience("https://acme--uat.sandbox.my.salesforce.com") == (
            "https://test.salesforce.com"
        )
        ```
    """
    host = (URL(login_url).host or "").lower()
    if host == "test.salesforce.com" or host.endswith(
        (".sandbox.my.salesforce.com", ".scratch.my.salesforce.com")
    ):
        return SANDBOX_AUDIENCE
    if host == "login.salesforce.com" or host.endswith(".my.salesforce.com"):
        return PRODUCTION_AUDIENCE
    return login_url.rstrip("/")


def origin_of(url: str | URL) -> URL:
    """The origin (scheme, host, port) of a URL, as a URL with no path.

    Example:
        ```python
        assert origin_of("https://a.my.salesforce.com/x") == URL("https://a.my.salesforce.com")
        ```
    """
    parsed = url if isinstance(url, URL) else URL(url)
    return parsed.origin()
