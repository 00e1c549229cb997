"""APIError: Salesforce's REST error answers, typed, readable, and without the bearer token."""

from __future__ import annotations

import aiohttp
import pytest
from test_session import StaticFlow

from sfoauth_async import (
    APIError,
    AsyncSession,
    ConcurrentRequestLimitError,
    ConfigurationError,
    DuplicateValueError,
    EntityIsDeletedError,
    InvalidClientError,
    InvalidFieldError,
    InvalidSessionIdError,
    MalformedQueryError,
    NotFoundError,
    RequestLimitExceededError,
    ServerUnavailableError,
    SFOAuthError,
    UnableToLockRowError,
)
from sfoauth_async._api_errors import error_class, error_list
from sfoauth_async.testing import FakeSalesforceOrg, Fault

SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def errors(code: str, message: str = "something", fields: list[str] | None = None) -> list:
    """A REST error body with one error."""
    error: dict = {"message": message, "errorCode": code}
    if fields is not None:
        error["fields"] = fields
    return [error]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'[{"message": "m", "errorCode": "X"}]', [{"message": "m", "errorCode": "X"}]),
        (b'{"message": "m", "errorCode": "X"}', [{"message": "m", "errorCode": "X"}]),
        (
            b'{"error": "invalid_grant", "error_description": "d"}',
            [{"errorCode": "invalid_grant", "message": "d"}],
        ),
        (b"<html><body>Down for maintenance</body></html>", []),
        (b"", []),
        (b'["text", {"errorCode": "X"}]', [{"errorCode": "X"}]),
        (b'{"records": []}', []),
    ],
)
def test_error_list_reads_every_shape(body: bytes, expected: list) -> None:
    """JSON arrays, single objects and OAuth bodies give errors; HTML and others give none."""
    assert error_list(body) == expected


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (403, errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
         RequestLimitExceededError),
        (403, errors("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded"),
         ConcurrentRequestLimitError),
        (400, errors("UNABLE_TO_LOCK_ROW"), UnableToLockRowError),
        (503, errors("SERVER_UNAVAILABLE"), ServerUnavailableError),
        (401, SESSION_EXPIRED, InvalidSessionIdError),
        (400, errors("MALFORMED_QUERY"), MalformedQueryError),
        (400, errors("INVALID_FIELD"), InvalidFieldError),
        (404, errors("NOT_FOUND"), NotFoundError),
        (404, [], NotFoundError),
        (400, errors("ENTITY_IS_DELETED"), EntityIsDeletedError),
        (400, errors("DUPLICATE_VALUE"), DuplicateValueError),
        (502, [], ServerUnavailableError),
        (504, [], ServerUnavailableError),
        (500, errors("UNKNOWN_EXCEPTION"), APIError),
        (400, errors("SOMETHING_NEW"), APIError),
    ],
)  # fmt: skip
def test_the_class_follows_the_first_error_code(status: int, body: list, cls: type) -> None:
    """The first error's code picks the class; a code-less 404 or 5xx falls back on status."""
    assert error_class(status, body) is cls


def test_the_tree() -> None:
    """APIError is both aiohttp's ClientResponseError and the library's base error."""
    assert issubclass(APIError, aiohttp.ClientResponseError)
    assert issubclass(APIError, SFOAuthError)
    assert issubclass(ConcurrentRequestLimitError, RequestLimitExceededError)
    transient = {c for c in APIError.__subclasses__() if c.transient}
    assert transient == {UnableToLockRowError, ServerUnavailableError}
    assert ConcurrentRequestLimitError.transient
    assert not RequestLimitExceededError.transient


@pytest.mark.parametrize(
    ("fault", "cls", "code"),
    [
        (Fault.request_limit_exceeded(), RequestLimitExceededError, "REQUEST_LIMIT_EXCEEDED"),
        (
            Fault.request_limit_exceeded(concurrent=True),
            ConcurrentRequestLimitError,
            "REQUEST_LIMIT_EXCEEDED",
        ),
        (Fault.unable_to_lock_row(), UnableToLockRowError, "UNABLE_TO_LOCK_ROW"),
        (Fault.server_unavailable(), ServerUnavailableError, "SERVER_UNAVAILABLE"),
        (Fault.json(400, errors("MALFORMED_QUERY")), MalformedQueryError, "MALFORMED_QUERY"),
        (Fault.json(400, errors("INVALID_FIELD")), InvalidFieldError, "INVALID_FIELD"),
        (Fault.json(400, errors("ENTITY_IS_DELETED")), EntityIsDeletedError, "ENTITY_IS_DELETED"),
        (Fault.json(400, errors("DUPLICATE_VALUE")), DuplicateValueError, "DUPLICATE_VALUE"),
        (Fault.html(503), ServerUnavailableError, None),
    ],
)
async def test_raise_for_status_raises_each_type(
    fake_org: FakeSalesforceOrg, fault: Fault, cls: type, code: str | None
) -> None:
    """raise_for_status=True turns each Salesforce error answer into its own class."""
    async with AsyncSession(fake_org.client_credentials_flow(), raise_for_status=True) as sf:
        await sf.get_token()
        fake_org.faults.api.push(fault)
        with pytest.raises(cls) as caught:
            await sf.get("limits/")
    exc = caught.value
    assert type(exc) is cls
    assert exc.error_code == code
    assert exc.status == fault.http_status
    assert exc.errors == error_list(fault.body)


async def test_a_real_not_found_and_its_message(fake_org: FakeSalesforceOrg) -> None:
    """A 404 from the org: status, code, message, and str() with the URL but no query."""
    async with AsyncSession(fake_org.client_credentials_flow(), raise_for_status=True) as sf:
        with pytest.raises(NotFoundError) as caught:
            await sf.get("sobjects/Account/001000000000000AAA", params={"fields": "Name"})
    exc = caught.value
    assert (exc.status, exc.error_code) == (404, "NOT_FOUND")
    assert exc.message == "The requested resource does not exist"
    text = str(exc)
    assert text.startswith("NOT_FOUND: The requested resource does not exist (HTTP 404 from GET ")
    assert "/services/data/v67.0/sobjects/Account/001000000000000AAA)" in text
    assert "fields=Name" not in text
    assert "Check the record id" in text


async def test_fields_collects_every_named_field(fake_org: FakeSalesforceOrg) -> None:
    """.fields lists the fields of all errors, in order, without repeats; .errors keeps all."""
    body = [
        {"message": "a", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name", "Type"]},
        {"message": "b", "errorCode": "INVALID_FIELD", "fields": ["Type", "Rating"]},
    ]
    async with AsyncSession(fake_org.client_credentials_flow(), raise_for_status=True) as sf:
        await sf.get_token()
        fake_org.faults.api.push(Fault.json(400, body))
        with pytest.raises(APIError) as caught:
            await sf.post("sobjects/Account/", json={})
    assert caught.value.error_code == "REQUIRED_FIELD_MISSING"
    assert caught.value.fields == ("Name", "Type", "Rating")
    assert caught.value.errors == body


async def test_no_token_in_str_repr_args_or_request_info(fake_org: FakeSalesforceOrg) -> None:
    """The bearer token appears nowhere in the error, not even in its request headers."""
    async with AsyncSession(fake_org.client_credentials_flow(), raise_for_status=True) as sf:
        token = (await sf.get_token()).access_token
        fake_org.faults.api.push(Fault.request_limit_exceeded())
        with pytest.raises(RequestLimitExceededError) as caught:
            await sf.get("limits/")
    exc = caught.value
    assert "Authorization" not in exc.request_info.headers
    for text in (str(exc), repr(exc), repr(exc.args), repr(exc.request_info)):
        assert token not in text
        assert "Bearer" not in text


async def test_aiohttp_handlers_still_catch_it(fake_org: FakeSalesforceOrg) -> None:
    """Code written for aiohttp's raise_for_status catches APIError as ClientResponseError."""
    async with AsyncSession(fake_org.client_credentials_flow(), raise_for_status=True) as sf:
        with pytest.raises(aiohttp.ClientResponseError) as caught:
            await sf.get("sobjects/Account/001000000000000AAA")
    assert caught.value.status == 404
    assert isinstance(caught.value, NotFoundError)


async def test_without_raise_for_status_errors_are_responses(fake_org: FakeSalesforceOrg) -> None:
    """By default an error answer is returned as a response, as in aiohttp."""
    async with (
        AsyncSession(fake_org.client_credentials_flow()) as sf,
        sf.get("sobjects/Account/001000000000000AAA") as resp,
    ):
        assert resp.status == 404
        assert (await resp.json())[0]["errorCode"] == "NOT_FOUND"


async def test_raise_for_status_comes_after_the_401_healing(fake_org: FakeSalesforceOrg) -> None:
    """A healed 401 raises nothing; a 401 that survives the one refresh raises its class."""
    async with AsyncSession(fake_org.client_credentials_flow(), raise_for_status=True) as sf:
        await sf.get_token()
        fake_org.expire_all_sessions()
        async with sf.get("limits/") as resp:
            assert resp.status == 200
        fake_org.faults.api.push(Fault.json(401, SESSION_EXPIRED), Fault.json(401, SESSION_EXPIRED))
        with pytest.raises(InvalidSessionIdError):
            await sf.get("limits/")
    assert fake_org.stats.token_requests_total == 3


@pytest.mark.parametrize("value", [None, 1, "yes", print])
def test_raise_for_status_takes_only_a_bool(value: object) -> None:
    """Anything but True or False is refused: aiohttp's hook would also see token requests."""
    with pytest.raises(ConfigurationError, match="raise_for_status must be True or False"):
        AsyncSession(StaticFlow(), raise_for_status=value)  # type: ignore[arg-type]


async def test_token_errors_stay_typed_with_raise_for_status(fake_org: FakeSalesforceOrg) -> None:
    """A refused login raises its OAuth error, not an APIError, with raise_for_status=True."""
    fake_org.faults.token.push(Fault.oauth_error("invalid_client", "invalid client credentials"))
    async with AsyncSession(fake_org.client_credentials_flow(), raise_for_status=True) as sf:
        with pytest.raises(InvalidClientError):
            await sf.get("limits/")
