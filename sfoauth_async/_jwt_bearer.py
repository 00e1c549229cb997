"""`JWTBearerFlow`: server-to-server logins with a signed JWT assertion (RFC 7523)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._errors import ConfigurationError
from ._flow import Flow, _required
from ._hosts import DEFAULT_INSTANCE_HOSTS
from ._token import Token
from ._urls import DEFAULT_LOGIN_URL, default_audience, secure_url

__all__ = ["JWT_BEARER_GRANT_TYPE", "JWTBearerFlow"]

JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"

# Salesforce wants exp "within 3 minutes"; staying under it leaves room for clock skew.
_ASSERTION_LIFETIME_S = 150


def _load_private_key(
    private_key: str | bytes | os.PathLike[str], password: str | bytes | None
) -> rsa.RSAPrivateKey:
    if isinstance(private_key, bytes):
        pem = private_key
    elif isinstance(private_key, str) and "-----BEGIN" in private_key:
        pem = private_key.encode()
    elif isinstance(private_key, str | os.PathLike):
        path = Path(private_key)
        try:
            pem = path.read_bytes()
        except (OSError, ValueError) as exc:
            # A str may be a PEM body pasted without its BEGIN line: never echo it.
            shown = f" {str(path)!r}" if isinstance(private_key, os.PathLike) else ""
            reason = getattr(exc, "strerror", None) or "not a file"
            raise ConfigurationError(
                f"private_key is neither PEM text (-----BEGIN ... PRIVATE KEY-----) nor a "
                f"readable key file{shown} ({reason})."
            ) from None
    else:
        raise ConfigurationError("private_key must be PEM text, PEM bytes or a file path.")
    secret = password.encode() if isinstance(password, str) else password
    try:
        key = serialization.load_pem_private_key(pem, password=secret)
    except TypeError:
        raise ConfigurationError(
            "The private key is encrypted and needs private_key_password, or it is not "
            "encrypted and private_key_password must be None."
        ) from None
    except ValueError:
        raise ConfigurationError(
            "private_key could not be loaded: it must be a PEM private key (BEGIN PRIVATE KEY "
            "or BEGIN RSA PRIVATE KEY), and private_key_password must be its password."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(
            f"Salesforce signs JWT bearer assertions with RS256 only, which needs an RSA key; "
            f"this is a {type(key).__name__.lstrip('_')}."
        )
    return key


class JWTBearerFlow(Flow):
    """The JWT bearer grant: a fresh RS256-signed assertion per login, no secret sent.

    Upload the certificate of ``private_key`` to the connected app ("Use digital
    signatures") and pre-authorize the user ("Admin approved users are pre-authorized" plus a
    profile or permission set). No refresh token is issued: each token is a new login.

    The assertion's ``aud`` defaults to ``https://login.salesforce.com`` for production hosts
    (``login.salesforce.com``, ``*.my.salesforce.com``), ``https://test.salesforce.com`` for
    sandbox hosts (``test.salesforce.com``, ``*.sandbox.my.salesforce.com``), and to
    ``login_url`` itself for other hosts (Experience Cloud sites). The token is requested
    from ``login_url`` whatever the audience.

    Args:
        client_id: The consumer key (the assertion's ``iss``).
        username: The Salesforce username to log in as (``sub``).
        private_key: The RSA private key: PEM text, PEM bytes or a path to a PEM file.
        private_key_password: The key's password, if it is encrypted.
        login_url: Where to send the assertion (default ``https://login.salesforce.com``).
        audience: Override the ``aud`` claim.
        instance_hosts: Host patterns a token's ``instance_url`` must match
            (`DEFAULT_INSTANCE_HOSTS`: Salesforce's domains and loopback); see
            `Flow.check_instance_url`.

    Raises:
        ConfigurationError: The key cannot be loaded, is not RSA, or a URL is insecure.

    Example:
        ```python
        flow = JWTBearerFlow(
            client_id=key,
            username="etl@acme.com",
            private_key=Path("server.key"),
            login_url="https://acme.my.salesforce.com",
        )
        token = await flow.fetch_token()
        ```
    """

    grant_type: ClassVar[str] = JWT_BEARER_GRANT_TYPE
    _key_grant: ClassVar[str] = "jwt_bearer"

    def __init__(
        self,
        *,
        client_id: str,
        username: str,
        private_key: str | bytes | os.PathLike[str],
        private_key_password: str | bytes | None = None,
        login_url: str = DEFAULT_LOGIN_URL,
        audience: str | None = None,
        instance_hosts: Iterable[str] = DEFAULT_INSTANCE_HOSTS,
    ) -> None:
        super().__init__(
            client_id=client_id,
            client_secret=None,
            login_url=login_url,
            instance_hosts=instance_hosts,
        )
        self._username = _required("username", username)
        self._key = _load_private_key(private_key, private_key_password)
        if audience is None:
            self._audience = default_audience(self.login_url)
        else:
            self._audience = str(secure_url(audience, what="audience")).rstrip("/")

    @property
    def username(self) -> str:
        """The Salesforce username the assertion logs in as.

        Example:
            ```python
            print(flow.username)
            ```
        """
        return self._username

    @property
    def audience(self) -> str:
        """The assertion's ``aud`` claim.

        Example:
            ```python
            assert flow.audience == "https://login.salesforce.com"
            ```
        """
        return self._audience

    def make_assertion(self, *, now_s: float | None = None) -> str:
        """Sign a new assertion: claims ``iss``, ``sub``, ``aud`` and ``exp`` (now + 150 s).

        Args:
            now_s: The current time in seconds since the epoch (default: the clock).

        Example:
            ```python
            claims = jwt.decode(flow.make_assertion(), options={"verify_signature": False})
            assert claims["sub"] == flow.username
            ```
        """
        now = time.time() if now_s is None else now_s
        claims = {
            "iss": self.client_id,
            "sub": self._username,
            "aud": self._audience,
            "exp": int(now) + _ASSERTION_LIFETIME_S,
        }
        return jwt.encode(claims, self._key, algorithm="RS256")

    def _authenticate(self, form: dict[str, str]) -> str | None:
        # The signed assertion is the only proof: no client_id or secret goes with it.
        del form
        return None

    def _grant_form(self, previous: Token | None) -> dict[str, str]:  # noqa: ARG002
        return {"grant_type": self.grant_type, "assertion": self.make_assertion()}

    def _subject(self, token: Token | None) -> str:  # noqa: ARG002
        return self._username
