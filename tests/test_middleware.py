"""Which API answers mean "refresh and replay", and what counts as the same origin."""

from __future__ import annotations

import json

import pytest
from yarl import URL

from sfoauth_async._middleware import origin_tuple, says_session_invalid

REST = "/services/data/v67.0/limits/"


def errors(*pairs: tuple[str, str]) -> bytes:
    """A REST error body: a JSON array of {message, errorCode}."""
    return json.dumps([{"message": m, "errorCode": c} for m, c in pairs]).encode()


@pytest.mark.parametrize(
    ("status", "path", "body"),
    [
        (401, REST, errors(("Session expired or invalid", "INVALID_SESSION_ID"))),
        (401, "/services/data/v67.0/jobs/ingest/", b'[{"errorCode":"INVALID_SESSION_ID"}]'),
        (401, REST, b"INVALID_SESSION_ID: Session expired or invalid"),
        (400, "/services/async/67.0/job", b"<exceptionCode>InvalidSessionId</exceptionCode>"),
    ],
)
def test_expired_sessions_are_recognised(status: int, path: str, body: bytes) -> None:
    """401 INVALID_SESSION_ID (JSON or text) and Bulk 1.0's 400 InvalidSessionId refresh."""
    assert says_session_invalid(status, path, body)


@pytest.mark.parametrize(
    ("status", "path", "body"),
    [
        (
            401,
            REST,
            errors(("This session is not valid for use with the REST API", "INVALID_SESSION_ID")),
        ),
        (401, REST, errors(("Connected app is not attached to Agent", "INVALID_SESSION_ID"))),
        (401, REST, errors(("BlackTab users cannot perform API operations", "INVALID_SESSION_ID"))),
        (401, REST, errors(("Bad header", "INVALID_AUTH_HEADER"))),
        (401, REST, b""),
        (403, REST, errors(("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED"))),
        (400, REST, b"<exceptionCode>InvalidSessionId</exceptionCode>"),
        (400, "/services/async/67.0/job", b"<exceptionCode>InvalidJob</exceptionCode>"),
    ],
)
def test_answers_a_refresh_cannot_fix_are_left_alone(status: int, path: str, body: bytes) -> None:
    """Non-recoverable 401s, other auth errors, quota 403s and other 400s cause no refresh."""
    assert not says_session_invalid(status, path, body)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://acme.my.salesforce.com/x", "https://acme.my.salesforce.com:443/y", True),
        ("https://acme.my.salesforce.com", "http://acme.my.salesforce.com", False),
        ("https://acme.my.salesforce.com", "https://evil.example.com", False),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a", False),
    ],
)
def test_origin_is_scheme_host_and_port(a: str, b: str, same: bool) -> None:
    """Same origin means same scheme, host and (default-filled) port; paths do not matter."""
    assert (origin_tuple(URL(a)) == origin_tuple(URL(b))) is same
