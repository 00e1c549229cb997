"""`Token`: the token response of spec §3, and the expiry rules of §3 and §9.1."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sfoauth_async import (
    DEFAULT_SESSION_TIMEOUT,
    ConfigurationError,
    InstanceUrlError,
    InvalidStoredTokenError,
    InvalidTokenResponseError,
    StoreError,
    Token,
)
from sfoauth_async._limits import MAX_TOKEN_CHARS

ACCESS_TOKEN = "00Dxx0000001gPL!AQ0AQFAKE.ACCESS.TOKEN.VALUE"
REFRESH_TOKEN = "5Aep861FAKE.REFRESH.TOKEN.VALUE"
ID_TOKEN = "eyFAKE.ID.TOKEN"
SIGNATURE = "FAKEsignatureBase64Value="
ORG_ID = "00Dxx0000001gPLEAY"
USER_ID = "005xx000001SwiUAAS"
IDENTITY_URL = f"https://login.salesforce.com/id/{ORG_ID}/{USER_ID}"
INSTANCE_URL = "https://acme.my.salesforce.com"
RECEIVED_AT = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A full response, every documented field of spec §3 (client-credentials/auth-code shape).
FULL_RESPONSE: dict[str, Any] = {
    "access_token": ACCESS_TOKEN,
    "refresh_token": REFRESH_TOKEN,
    "signature": SIGNATURE,
    "scope": "api refresh_token openid",
    "id_token": ID_TOKEN,
    "instance_url": INSTANCE_URL,
    "id": IDENTITY_URL,
    "token_type": "Bearer",
    "issued_at": "1278448832702",
    "sfdc_community_url": "https://acme.my.site.com/partners",
    "sfdc_community_id": "0DBxx0000000001",
    "api_instance_url": "https://api.salesforce.com",
}

SECRETS = (ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, SIGNATURE)


def _jwt(claims: dict[str, Any]) -> str:
    """An unsigned-looking JWT built by hand, independent of any JWT library."""

    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def _build(**fields: Any) -> Token:
    data = {"access_token": ACCESS_TOKEN, "instance_url": INSTANCE_URL, **fields}
    return Token.from_response(data, received_at=RECEIVED_AT)


def test_from_response_reads_every_field():
    """Every documented field of the token response lands on the Token."""
    token = Token.from_response(FULL_RESPONSE, received_at=RECEIVED_AT)
    assert token.access_token == ACCESS_TOKEN
    assert token.instance_url == INSTANCE_URL
    assert token.id == IDENTITY_URL
    assert token.token_type == "Bearer"
    assert token.issued_at == EPOCH + timedelta(milliseconds=1278448832702)
    assert token.scope == frozenset({"api", "refresh_token", "openid"})
    assert token.refresh_token == REFRESH_TOKEN
    assert token.signature == SIGNATURE
    assert token.id_token == ID_TOKEN
    assert token.raw == FULL_RESPONSE
    assert token.raw["api_instance_url"] == "https://api.salesforce.com"
    assert token.received_at == RECEIVED_AT
    assert token.expires_at == RECEIVED_AT + timedelta(hours=2)
    assert token.org_id == ORG_ID
    assert token.user_id == USER_ID
    assert token.token_format is None


def test_from_response_reads_the_minimal_jwt_bearer_response():
    """The JWT bearer response has no issued_at, signature or refresh token (spec §2.5)."""
    token = Token.from_response(
        {
            "access_token": ACCESS_TOKEN,
            "scope": "api",
            "instance_url": INSTANCE_URL,
            "id": IDENTITY_URL,
            "token_type": "Bearer",
        },
        received_at=RECEIVED_AT,
    )
    assert token.issued_at is None
    assert token.signature is None
    assert token.refresh_token is None
    assert token.id_token is None
    assert token.expires_at == RECEIVED_AT + DEFAULT_SESSION_TIMEOUT


def test_issued_at_as_millisecond_string():
    """issued_at is a string of milliseconds since the epoch (spec §3), not seconds."""
    token = _build(issued_at="1278448832702")
    assert token.issued_at == datetime(2010, 7, 6, 20, 40, 32, 702000, tzinfo=UTC)


def test_issued_at_as_number():
    """Named-user JWT responses send issued_at as a number (spec §3): both are accepted."""
    assert _build(issued_at=1278448832702).issued_at == _build(issued_at="1278448832702").issued_at
    assert _build(issued_at=1278448832702.0).issued_at == datetime(
        2010, 7, 6, 20, 40, 32, 702000, tzinfo=UTC
    )


def test_issued_at_is_aware_utc():
    """issued_at is a timezone-aware UTC datetime."""
    assert _build(issued_at="1278448832702").issued_at.tzinfo is UTC


@pytest.mark.parametrize("missing", ["access_token", "instance_url"])
def test_missing_required_field_is_invalid_token_response(missing: str):
    """A response without access_token or instance_url is not a token response."""
    data = dict(FULL_RESPONSE)
    del data[missing]
    with pytest.raises(InvalidTokenResponseError, match=missing) as info:
        Token.from_response(data, url="https://acme.my.salesforce.com/services/oauth2/token")
    assert info.value.url == "https://acme.my.salesforce.com/services/oauth2/token"


@pytest.mark.parametrize(
    "bad",
    [
        {"access_token": ""},
        {"access_token": None},
        {"access_token": 12345},
        {"access_token": ["x"]},
        {"instance_url": ""},
        {"instance_url": 42},
        {"instance_url": "acme.my.salesforce.com"},
        {"instance_url": "ftp://acme.my.salesforce.com"},
        {"issued_at": "yesterday"},
        {"issued_at": "nan"},
        {"issued_at": "inf"},
        {"issued_at": True},
        {"issued_at": [1278448832702]},
        {"issued_at": {"ms": 1}},
        {"id": 5},
        {"token_type": 1},
        {"refresh_token": ["x"]},
        {"signature": {"a": 1}},
        {"id_token": 3.5},
        {"scope": ["api", "web"]},
    ],
)
def test_malformed_field_is_invalid_token_response(bad: dict[str, Any]):
    """Malformed fields raise InvalidTokenResponseError, never KeyError/TypeError/ValueError."""
    with pytest.raises(InvalidTokenResponseError):
        Token.from_response({**FULL_RESPONSE, **bad})


@pytest.mark.parametrize(
    "bad",
    [
        {"issued_at": 10**30},
        {"issued_at": "1e300"},
        {"issued_at": -(10**20)},
        {"instance_url": "https://["},
        {"instance_url": "https://acme.my.salesforce.com:99999"},
    ],
)
def test_out_of_range_field_is_invalid_token_response(bad: dict[str, Any]):
    """Out-of-range numbers and unparsable URLs are malformed fields too."""
    with pytest.raises(InvalidTokenResponseError):
        Token.from_response({**FULL_RESPONSE, **bad})


@pytest.mark.parametrize(
    "url",
    ["http://acme.my.salesforce.com", "http://na1.salesforce.com/", "http://10.1.2.3"],
)
def test_plain_http_instance_url_is_refused(url: str):
    """An instance_url on plain http:// off loopback would leak the bearer token."""
    with pytest.raises(InvalidTokenResponseError, match="instance_url"):
        _build(instance_url=url)


def test_loopback_http_instance_url_is_accepted():
    """http://localhost stays usable for local fakes of Salesforce."""
    assert _build(instance_url="http://127.0.0.1:8080/").instance_url == "http://127.0.0.1:8080"


def test_instance_url_loses_its_trailing_slash():
    """instance_url is stored without a trailing slash, ready for path concatenation."""
    assert _build(instance_url=INSTANCE_URL + "/").instance_url == INSTANCE_URL


def test_default_expiry_is_two_hours_after_receipt():
    """No expires_in is sent: expiry is receive time + 2 h by default (spec §3, §9.1)."""
    token = _build(issued_at="1000")
    assert timedelta(hours=2) == DEFAULT_SESSION_TIMEOUT
    assert token.expires_at == RECEIVED_AT + timedelta(hours=2)


def test_expiry_uses_receive_time_not_issued_at():
    """The local receive time anchors expiry, not Salesforce's issued_at (spec §9.1)."""
    token = Token.from_response(
        {**FULL_RESPONSE, "issued_at": "1278448832702"},
        received_at=RECEIVED_AT,
        session_timeout=timedelta(minutes=30),
    )
    assert token.expires_at == RECEIVED_AT + timedelta(minutes=30)


def test_no_session_timeout_means_unknown_expiry():
    """session_timeout=None leaves expires_at None, and the token is never 'expired'."""
    token = Token.from_response(FULL_RESPONSE, received_at=RECEIVED_AT, session_timeout=None)
    assert token.expires_at is None
    assert not token.is_expired(now=RECEIVED_AT + timedelta(days=365))


@pytest.mark.parametrize("timeout", [timedelta(0), timedelta(minutes=-5)])
def test_non_positive_session_timeout_is_a_configuration_error(timeout: timedelta):
    """A zero or negative session timeout is a configuration mistake."""
    with pytest.raises(ConfigurationError, match="session_timeout"):
        Token.from_response(FULL_RESPONSE, session_timeout=timeout)


def test_received_at_defaults_to_now():
    """Without received_at, the token is stamped with the current UTC time."""
    before = datetime.now(UTC)
    token = Token.from_response(FULL_RESPONSE)
    after = datetime.now(UTC)
    assert before <= token.received_at <= after
    assert token.expires_at == token.received_at + DEFAULT_SESSION_TIMEOUT


def test_jwt_token_with_earlier_exp_uses_exp():
    """A JWT-format token's own exp wins when it is earlier than the session timeout."""
    exp = RECEIVED_AT + timedelta(minutes=20)
    token = _build(access_token=_jwt({"exp": int(exp.timestamp())}), token_format="jwt")
    assert token.token_format == "jwt"
    assert token.expires_at == exp


def test_jwt_token_with_later_exp_keeps_session_timeout():
    """A JWT exp later than receive time + session timeout does not extend the expiry."""
    exp = RECEIVED_AT + timedelta(hours=12)
    token = _build(access_token=_jwt({"exp": int(exp.timestamp())}), token_format="jwt")
    assert token.expires_at == RECEIVED_AT + DEFAULT_SESSION_TIMEOUT


def test_jwt_token_exp_used_when_session_timeout_is_none():
    """With no configured timeout, a JWT-format token's exp is the expiry."""
    exp = RECEIVED_AT + timedelta(hours=12)
    token = Token.from_response(
        {
            "access_token": _jwt({"exp": int(exp.timestamp())}),
            "instance_url": INSTANCE_URL,
            "token_format": "jwt",
        },
        received_at=RECEIVED_AT,
        session_timeout=None,
    )
    assert token.expires_at == exp


def test_jwt_exp_ignored_without_token_format_jwt():
    """Only token_format 'jwt' makes the access token's exp count (spec §3)."""
    exp = RECEIVED_AT + timedelta(minutes=20)
    token = _build(access_token=_jwt({"exp": int(exp.timestamp())}))
    assert token.expires_at == RECEIVED_AT + DEFAULT_SESSION_TIMEOUT


@pytest.mark.parametrize(
    "access_token",
    ["not-a-jwt", _jwt({"sub": "x"}), _jwt({"exp": "soon"}), _jwt({"exp": True})],
)
def test_jwt_format_without_usable_exp_keeps_session_timeout(access_token: str):
    """A 'jwt' token that cannot be decoded or has no numeric exp falls back to the timeout."""
    token = _build(access_token=access_token, token_format="jwt")
    assert token.expires_at == RECEIVED_AT + DEFAULT_SESSION_TIMEOUT


@pytest.mark.parametrize("exp", [1e20, -1e20])
def test_jwt_format_with_out_of_range_exp_keeps_session_timeout(exp: float):
    """An absurd exp claim is ignored like any unusable one."""
    token = _build(access_token=_jwt({"exp": exp}), token_format="jwt")
    assert token.expires_at == RECEIVED_AT + DEFAULT_SESSION_TIMEOUT


@pytest.mark.parametrize(
    "identity",
    [
        f"https://login.salesforce.com/id/{ORG_ID}/{USER_ID}",
        f"https://test.salesforce.com/id/{ORG_ID}/{USER_ID}",
        f"https://acme.my.salesforce.com/id/{ORG_ID}/{USER_ID}",
        f"https://acme--uat.sandbox.my.salesforce.com/id/{ORG_ID}/{USER_ID}/",
        f"https://acme.my.site.com/partners/id/{ORG_ID}/{USER_ID}",
    ],
)
def test_org_and_user_ids_come_from_the_identity_url(identity: str):
    """org_id and user_id are read from the identity URL, whatever its host (spec §3)."""
    token = _build(id=identity)
    assert (token.org_id, token.user_id) == (ORG_ID, USER_ID)


@pytest.mark.parametrize(
    "identity", [None, "", "https://login.salesforce.com/", "https://x.com/id/only-one"]
)
def test_no_usable_identity_url_gives_no_ids(identity: str | None):
    """Without a well-formed identity URL, org_id and user_id are None."""
    token = _build(id=identity)
    assert token.org_id is None
    assert token.user_id is None


def test_malformed_identity_url_never_breaks_repr():
    """A malformed identity URL is refused or gives None ids; repr never raises."""
    try:
        token = _build(id="https://[broken/id/00D/005")
    except InvalidTokenResponseError:
        return
    assert token.org_id is None
    assert "Token(" in repr(token)


def test_repr_and_str_never_show_secrets():
    """repr/str show where and whose the token is, never a token or the signature."""
    token = Token.from_response(FULL_RESPONSE, received_at=RECEIVED_AT)
    for text in (repr(token), str(token), f"{token}", f"{token!r}", repr([token])):
        for secret in SECRETS:
            assert secret not in text
        assert INSTANCE_URL in text
        assert ORG_ID in text
        assert "refresh_token=<set>" in text


def test_repr_says_when_there_is_no_refresh_token():
    """The repr tells whether a refresh token is held without showing it."""
    assert "refresh_token=None" in repr(_build())


def test_to_dict_from_dict_round_trip_through_json():
    """to_dict() is JSON-ready and from_dict() rebuilds an equal token, raw included."""
    token = Token.from_response(FULL_RESPONSE, received_at=RECEIVED_AT)
    stored = json.loads(json.dumps(token.to_dict()))
    again = Token.from_dict(stored)
    assert again == token
    assert again.raw == token.raw
    assert again.expires_at == token.expires_at
    assert again.issued_at == token.issued_at
    assert again.received_at.tzinfo is not None
    assert hash(again) == hash(token)


def test_round_trip_keeps_none_fields():
    """A minimal token (no issued_at, no expiry) survives the round trip."""
    token = Token.from_response(
        {"access_token": ACCESS_TOKEN, "instance_url": INSTANCE_URL},
        received_at=RECEIVED_AT,
        session_timeout=None,
    )
    assert Token.from_dict(json.loads(json.dumps(token.to_dict()))) == token


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"access_token": "x", "instance_url": INSTANCE_URL},
        {"access_token": "x", "instance_url": INSTANCE_URL, "received_at": "not a date"},
        {"access_token": "x", "instance_url": INSTANCE_URL, "received_at": 5},
        {"access_token": "x", "instance_url": INSTANCE_URL, "received_at": "2026-05-01T12:00:00"},
        {"instance_url": INSTANCE_URL, "received_at": "2026-05-01T12:00:00+00:00"},
    ],
)
def test_from_dict_refuses_what_to_dict_never_writes(stored: dict[str, Any]):
    """Token.from_dict raises ValueError on anything that is not a stored token."""
    with pytest.raises(ValueError):
        Token.from_dict(stored)


_STORED = {
    "access_token": ACCESS_TOKEN,
    "instance_url": INSTANCE_URL,
    "received_at": "2026-05-01T12:00:00+00:00",
}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"access_token": None}, "access_token"),
        ({"access_token": 42}, "access_token"),
        ({"access_token": "x" * (MAX_TOKEN_CHARS + 1)}, "access_token"),
        ({"instance_url": 42}, "instance_url"),
        ({"instance_url": "http://evil.example"}, "instance_url"),
        ({"instance_url": "https://acme.my.salesforce.com/?q"}, "instance_url"),
        ({"id": 5}, "id"),
        ({"id": ["https://login.salesforce.com/id/a/b"]}, "id"),
        ({"token_type": "MAC"}, "token_type"),
        ({"scope": "api web"}, "scope"),
        ({"scope": [1, 2]}, "scope"),
        ({"raw": ["x"]}, "raw"),
        ({"refresh_token": {"x": 1}}, "refresh_token"),
        ({"issued_at": 5}, "issued_at"),
        ({"expires_at": "soon"}, "expires_at"),
    ],
)
def test_from_dict_names_the_bad_field_with_a_typed_error(bad: dict[str, Any], field: str):
    """Every malformed field is an InvalidStoredTokenError (a ValueError and a StoreError)."""
    with pytest.raises(InvalidStoredTokenError, match=field) as caught:
        Token.from_dict({**_STORED, **bad})
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, StoreError)
    assert ACCESS_TOKEN not in str(caught.value)


def test_from_dict_normalizes_the_instance_url():
    """A stored instance URL is normalized as a fresh one is."""
    token = Token.from_dict({**_STORED, "instance_url": "HTTPS://Acme.My.Salesforce.com/"})
    assert token.instance_url == INSTANCE_URL


def test_token_is_frozen():
    """A Token cannot be changed in place; its raw mapping is read-only too."""
    token = Token.from_response(FULL_RESPONSE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.access_token = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        token.raw["access_token"] = "other"  # type: ignore[index]


def test_token_is_hashable_and_compares_by_value():
    """Equal tokens hash alike and deduplicate in a set; a different token does not."""
    first = Token.from_response(FULL_RESPONSE, received_at=RECEIVED_AT)
    second = Token.from_response(dict(FULL_RESPONSE), received_at=RECEIVED_AT)
    other = Token.from_response(
        {**FULL_RESPONSE, "access_token": "00Dxx!OTHER"}, received_at=RECEIVED_AT
    )
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second, other}) == 2


def test_is_expired_honours_leeway():
    """is_expired is true from expires_at - leeway on."""
    token = _build()
    deadline = RECEIVED_AT + DEFAULT_SESSION_TIMEOUT
    assert not token.is_expired(now=deadline - timedelta(seconds=1))
    assert token.is_expired(now=deadline)
    assert token.is_expired(now=deadline - timedelta(seconds=30), leeway=timedelta(seconds=30))
    assert not token.is_expired(now=deadline - timedelta(seconds=31), leeway=timedelta(seconds=30))


def test_with_session_timeout_recomputes_expiry():
    """with_session_timeout returns a copy expiring at received_at + the new timeout."""
    token = _build()
    shorter = token.with_session_timeout(timedelta(minutes=15))
    assert shorter.expires_at == RECEIVED_AT + timedelta(minutes=15)
    assert token.expires_at == RECEIVED_AT + DEFAULT_SESSION_TIMEOUT
    assert token.with_session_timeout(None).expires_at is None
    with pytest.raises(ConfigurationError):
        token.with_session_timeout(timedelta(0))


def test_with_session_timeout_keeps_an_earlier_jwt_exp():
    """A JWT-format token's earlier exp still wins after a new session timeout."""
    exp = RECEIVED_AT + timedelta(minutes=20)
    token = _build(access_token=_jwt({"exp": int(exp.timestamp())}), token_format="jwt")
    assert token.with_session_timeout(timedelta(hours=8)).expires_at == exp


# --- hostile responses (issue 8) -----------------------------------------------------------


@pytest.mark.parametrize("issued_at", [10**400, -(10**400), "1" + "0" * 400])
def test_huge_issued_at_is_invalid_token_response(issued_at: Any):
    """An issued_at too large for a float is InvalidTokenResponseError, not OverflowError."""
    with pytest.raises(InvalidTokenResponseError, match="issued_at"):
        _build(issued_at=issued_at)


def test_too_long_access_token_is_refused():
    """An access token longer than 16 KiB is refused; one at the limit is accepted."""
    assert _build(access_token="x" * MAX_TOKEN_CHARS).access_token == "x" * MAX_TOKEN_CHARS
    with pytest.raises(InvalidTokenResponseError, match="longer than 16384") as caught:
        _build(access_token="x" * (MAX_TOKEN_CHARS + 1))
    assert "xxxx" not in str(caught.value)


def test_too_long_refresh_token_is_refused():
    """A refresh token longer than 16 KiB is refused too."""
    with pytest.raises(InvalidTokenResponseError, match="refresh_token longer"):
        _build(refresh_token="r" * (MAX_TOKEN_CHARS + 1))


@pytest.mark.parametrize("token_type", ["MAC", "DPoP", "pop", "N_A", "Bearer2", "\x1b[31mX"])
def test_token_type_other_than_bearer_is_refused(token_type: str):
    """RFC 6749 7.1: a token whose type is not Bearer is refused with a typed error."""
    with pytest.raises(InvalidTokenResponseError, match="only Bearer") as caught:
        _build(token_type=token_type)
    assert "\x1b" not in str(caught.value)


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER"])
def test_token_type_bearer_is_case_insensitive(token_type: str):
    """Bearer in any case is accepted and kept as sent."""
    assert _build(token_type=token_type).token_type == token_type


def test_jwt_access_token_with_deeply_nested_payload_is_opaque():
    """A JWT-format token whose payload nests 2,000 deep keeps the session-timeout expiry."""
    payload = base64.urlsafe_b64encode(b'{"a":' * 2000 + b"1" + b"}" * 2000).rstrip(b"=")
    access_token = "eyJhbGciOiJSUzI1NiJ9." + payload.decode() + ".c2ln"
    token = _build(access_token=access_token, token_format="jwt")
    assert token.expires_at == RECEIVED_AT + DEFAULT_SESSION_TIMEOUT


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("HTTPS://ACME.My.Salesforce.com:443/", INSTANCE_URL),
        ("https://acme.my.salesforce.com.", INSTANCE_URL),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ],
)
def test_instance_url_is_normalized(given: str, expected: str):
    """The token holds the normalized instance URL."""
    assert _build(instance_url=given).instance_url == expected


@pytest.mark.parametrize(
    "instance_url",
    [
        "https://acme.my.salesforce.com/?x=1",
        "https://acme.my.salesforce.com/#x",
        "https://attacker:pw@acme.my.salesforce.com",
        "https://acme.my.salesforce.com\r\nX-Injected: 1",
        "http://app.localhost:8080",
        "https://acme.my.salesforce.com\\@evil.example",
    ],
)
def test_unusable_instance_url_is_an_instance_url_error(instance_url: str):
    """Query, fragment, user info, control characters: InstanceUrlError, raw value kept."""
    with pytest.raises(InstanceUrlError) as caught:
        Token.from_response(
            {"access_token": ACCESS_TOKEN, "instance_url": instance_url},
            url="https://acme.my.salesforce.com/services/oauth2/token",
        )
    assert caught.value.instance_url == instance_url
    assert isinstance(caught.value, InvalidTokenResponseError)
    assert caught.value.url == "https://acme.my.salesforce.com/services/oauth2/token"
    assert "\r" not in str(caught.value)
    assert "\n" not in str(caught.value)
    assert ACCESS_TOKEN not in str(caught.value)


# --- properties -------------------------------------------------------------------------

_FIELDS = (
    "access_token",
    "instance_url",
    "id",
    "token_type",
    "issued_at",
    "scope",
    "refresh_token",
    "signature",
    "id_token",
    "token_format",
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
_response_values = st.one_of(
    _json_values,
    st.sampled_from(
        [
            "https://acme.my.salesforce.com",
            "http://acme.my.salesforce.com",
            IDENTITY_URL,
            "jwt",
            "1278448832702",
            ACCESS_TOKEN,
        ]
    ),
)
_responses = st.dictionaries(
    st.sampled_from(_FIELDS) | st.text(max_size=10), _response_values, max_size=12
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {
            "access_token": st.text(min_size=1, max_size=20),
            "instance_url": st.just(INSTANCE_URL),
        }
    ).flatmap(lambda base: _responses.map(lambda extra: {**base, **extra}))
)
@example({"access_token": "x", "instance_url": INSTANCE_URL, "issued_at": 10**30})
@example({"access_token": "x", "instance_url": INSTANCE_URL, "issued_at": 10**400})
def test_any_response_gives_a_token_or_invalid_token_response_error(data: dict[str, Any]):
    """Whatever the endpoint sends, from_response raises nothing but InvalidTokenResponseError."""
    try:
        token = Token.from_response(data, received_at=RECEIVED_AT)
    except InvalidTokenResponseError:
        return
    repr(token)
    assert token.access_token == data["access_token"]


_safe_text = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=20
)


@settings(deadline=None)
@given(
    access_token=_safe_text,
    refresh_token=st.none() | _safe_text,
    scope=st.lists(_safe_text, max_size=4),
    issued_ms=st.none() | st.integers(min_value=0, max_value=4_102_444_800_000),
    timeout_min=st.none() | st.integers(min_value=15, max_value=1440),
)
def test_well_formed_responses_round_trip(
    access_token: str,
    refresh_token: str | None,
    scope: list[str],
    issued_ms: int | None,
    timeout_min: int | None,
):
    """Any well-formed response gives a Token that mirrors it and survives to/from_dict."""
    access_token = f"00Dxx!{access_token}"
    data: dict[str, Any] = {
        "access_token": access_token,
        "instance_url": INSTANCE_URL,
        "scope": " ".join(scope),
    }
    if refresh_token is not None:
        data["refresh_token"] = refresh_token
    if issued_ms is not None:
        data["issued_at"] = str(issued_ms)
    timeout = None if timeout_min is None else timedelta(minutes=timeout_min)
    token = Token.from_response(data, received_at=RECEIVED_AT, session_timeout=timeout)
    assert token.access_token == access_token
    assert token.refresh_token == refresh_token
    assert token.scope == frozenset(scope)
    assert token.expires_at == (None if timeout is None else RECEIVED_AT + timeout)
    if issued_ms is not None:
        assert token.issued_at == EPOCH + timedelta(milliseconds=issued_ms)
    assert access_token not in repr(token)
    assert Token.from_dict(json.loads(json.dumps(token.to_dict()))) == token


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from([*_STORED, "id", "token_type", "scope", "raw", "issued_at", "expires_at"]),
        _json_values,
        max_size=9,
    ).map(lambda extra: {**_STORED, **extra})
)
def test_any_stored_dict_gives_a_token_or_invalid_stored_token_error(data: dict[str, Any]):
    """Whatever a store holds, from_dict raises nothing but InvalidStoredTokenError."""
    try:
        token = Token.from_dict(data)
    except InvalidStoredTokenError:
        return
    repr(token)
    assert token.to_dict()["access_token"] == data["access_token"]
