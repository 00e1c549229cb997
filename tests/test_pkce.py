"""PKCE S256 (RFC 7636), as the authorization-code flow sends it (spec §2.1)."""

from __future__ import annotations

import base64
import hashlib
import re

from sfoauth_async._pkce import code_challenge, make_code_verifier

# RFC 7636 §4.1: unreserved characters; the base64url alphabet is a subset of them.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def test_code_challenge_matches_rfc7636_appendix_b():
    """The RFC 7636 appendix B verifier gives the appendix B challenge."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_challenge_is_unpadded_base64url_of_sha256():
    """The challenge is BASE64URL(SHA256(verifier)) without '=' padding."""
    verifier = make_code_verifier()
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    challenge = code_challenge(verifier)
    assert challenge == expected
    assert "=" not in challenge
    assert len(challenge) == 43


def test_code_verifier_has_rfc_length_and_alphabet():
    """A verifier is 43..128 unreserved characters (RFC 7636 §4.1, spec §2.1)."""
    for _ in range(50):
        assert _VERIFIER.fullmatch(make_code_verifier())


def test_code_verifier_is_high_entropy():
    """A verifier carries at least 256 bits: 43+ base64url characters from a CSPRNG."""
    verifier = make_code_verifier()
    # Each base64url character carries 6 bits.
    assert len(verifier) * 6 >= 256


def test_code_verifiers_are_unique():
    """Every call gives a new verifier, so challenges never repeat."""
    verifiers = {make_code_verifier() for _ in range(1000)}
    assert len(verifiers) == 1000
    assert len({code_challenge(v) for v in verifiers}) == 1000
