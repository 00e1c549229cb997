"""RSA keys of the fake org: the app's JWT-bearer key pair and the org's own signing key.

Generating a 2048-bit RSA key takes tens to hundreds of milliseconds, so each key is made once
per process and shared by every fake org; a test suite with hundreds of orgs stays fast.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

__all__ = [
    "ORG_SIGNING_KID",
    "app_certificate_pem",
    "app_private_key_pem",
    "jwks",
    "load_verifying_key",
    "loopback_tls_pem",
    "org_signing_key",
]

ORG_SIGNING_KID = "sfoauth-fake-org"


@functools.cache
def _app_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def org_signing_key() -> rsa.RSAPrivateKey:
    """The key the org signs id tokens and JWT access tokens with (published at /id/keys)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def app_private_key_pem() -> bytes:
    """PKCS#8 PEM of the private key whose certificate the default app holds."""
    return _app_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _self_signed(
    key: rsa.RSAPrivateKey,
    common_name: str,
    valid: dt.timedelta,
    *extensions: tuple[x509.ExtensionType, bool],
) -> bytes:
    """A self-signed certificate (PEM) for ``key``, valid from a day ago for ``valid``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + valid)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@functools.cache
def app_certificate_pem() -> bytes:
    """A self-signed X.509 certificate for `app_private_key_pem`, as uploaded to the app."""
    return _self_signed(_app_private_key(), "sfoauth_async fake org", dt.timedelta(days=3650))


def load_verifying_key(pem: bytes) -> rsa.RSAPublicKey:
    """The RSA public key in a PEM certificate or PEM public key.

    Raises:
        ValueError: The PEM is neither.
        TypeError: The key is not RSA.
    """
    key: PublicKeyTypes
    if b"BEGIN CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("the app's certificate must hold an RSA key (Salesforce uses RS256)")
    return key


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks() -> dict[str, Any]:
    """The JSON Web Key Set served at ``/id/keys``."""
    numbers = org_signing_key().public_key().public_numbers()
    return {
        "keys": [
            {
                "kty": "RSA",
                "n": _b64url_uint(numbers.n),
                "e": _b64url_uint(numbers.e),
                "alg": "RS256",
                "use": "sig",
                "kid": ORG_SIGNING_KID,
            }
        ]
    }


def at_hash(access_token: str) -> str:
    """OIDC ``at_hash``: base64url of the left half of SHA-256 of the access token."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@functools.cache
def loopback_tls_pem() -> tuple[bytes, bytes]:
    """A self-signed TLS certificate for ``127.0.0.1`` and ``localhost``, and its key (PEM).

    The fake org's sites serve HTTPS with it when asked to (``FakeSalesforceOrg(tls=True)``);
    clients trust it through `FakeSalesforceOrg.client_ssl_context`, and only then.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    hosts = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
    certificate = _self_signed(
        key,
        "sfoauth_async fake org TLS",
        dt.timedelta(days=30),
        (x509.SubjectAlternativeName(hosts), False),
        (x509.BasicConstraints(ca=True, path_length=None), True),
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate, private
