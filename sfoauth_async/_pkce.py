"""PKCE (RFC 7636) with the S256 method, the only one Salesforce's partner rules accept."""

from __future__ import annotations

import base64
import hashlib
import secrets

__all__ = ["code_challenge", "make_code_verifier"]

_VERIFIER_BYTES = 64  # 86 base64url characters, inside RFC 7636's 43..128


def make_code_verifier() -> str:
    """A fresh high-entropy code verifier (86 characters of ``[A-Za-z0-9_-]``).

    Example:
        ```python
        verifier = make_code_verifier()
        assert 43 <= len(verifier) <= 128
        ```
    """
    return secrets.token_urlsafe(_VERIFIER_BYTES)


def code_challenge(code_verifier: str) -> str:
    """BASE64URL(SHA256(code_verifier)) without padding: the S256 challenge.

    Example:
        ```python
        assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        )
        ```
    """
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
