"""`post_form`, `get_json` and `interpret`: the OAuth HTTP client (spec §2, §4.1, §6)."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from yarl import URL

from sfoauth_async import (
    ClientCredentialsFlow,
    InvalidClientError,
    InvalidGrantError,
    InvalidTokenError,
    InvalidTokenResponseError,
    LoginRateExceededError,
    OAuthError,
    TokenEndpointConnectionError,
    TokenEndpointUnavailableError,
    TokenRequestError,
)
from sfoauth_async._endpoint import OAuthResponse, get_json, interpret, post_form

TOKEN_URL = "https://acme.my.salesforce.com/services/oauth2/token"
REVOKE_URL = "https://acme.my.salesforce.com/services/oauth2/revoke"
USERINFO_URL = "https://acme.my.salesforce.com/services/oauth2/userinfo"
CLIENT_SECRET = "fake-consumer-secret-for-tests"
FORM = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": CLIENT_SECRET}
TOKEN_BODY = {"access_token": "00Dxx!FAKE", "instance_url": "https://acme.my.salesforce.com"}
# aiohttp 3.14 deprecates BasicAuth and the auth= request argument, which Flow uses for
# client_auth="basic" (the bug is tested in test_flow.py); this file checks the header sent.
MAINTENANCE_PAGE = "<!DOCTYPE html><html><body>Salesforce is down for maintenance</body></html>"


def _calls(mock: aioresponses, method: str, url: str) -> list[dict[str, Any]]:
    return [call.kwargs for call in mock.requests.get((method, URL(url)), [])]


# --- interpret: the pure decision table ---------------------------------------------------


def test_interpret_returns_a_json_object():
    """A 200 JSON object is returned as data."""
    assert interpret(200, "application/json", '{"a": 1}', url=TOKEN_URL) == {"a": 1}


def test_interpret_accepts_json_with_surrounding_whitespace_and_any_content_type():
    """A JSON object is data even if labelled text/plain, with whitespace around it."""
    assert interpret(200, "text/plain", '\n {"a": "b"} \n', url=TOKEN_URL) == {"a": "b"}


@pytest.mark.parametrize(
    ("body", "cls", "error"),
    [
        ('{"error":"invalid_grant","error_description":"authentication failure"}', None, None),
        (
            '{"error":"invalid_client_id","error_description":"client identifier invalid"}',
            InvalidClientError,
            "invalid_client_id",
        ),
        (
            '{"error":"invalid_grant","error_description":"login rate exceeded"}',
            LoginRateExceededError,
            "invalid_grant",
        ),
    ],
)
def test_interpret_400_oauth_error_is_typed(body: str, cls: type | None, error: str | None):
    """A 400 OAuth JSON error body becomes the typed OAuthError (spec §4.1)."""
    with pytest.raises(OAuthError) as info:
        interpret(400, "application/json;charset=utf-8", body, url=TOKEN_URL)
    exc = info.value
    if cls is None:
        assert type(exc) is InvalidGrantError
        assert exc.error == "invalid_grant"
        assert exc.description == "authentication failure"
    else:
        assert type(exc) is cls
        assert exc.error == error
    assert exc.status == 400
    assert exc.url == TOKEN_URL


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"error":"server_error","error_description":"oops"}'),
        ("application/json", '[{"message":"down","errorCode":"SERVER_UNAVAILABLE"}]'),
        ("text/html", MAINTENANCE_PAGE),
        ("text/plain", ""),
    ],
)
def test_interpret_5xx_is_transient_unavailable(status: int, content_type: str, body: str):
    """Every 5xx, JSON or HTML or empty, is a transient TokenEndpointUnavailableError (§9.5)."""
    with pytest.raises(TokenEndpointUnavailableError) as info:
        interpret(status, content_type, body, url=TOKEN_URL)
    assert info.value.transient
    assert info.value.status == status
    assert str(status) in str(info.value)


@pytest.mark.parametrize("status", [408, 429])
def test_interpret_408_and_429_are_transient(status: int):
    """Timeouts and throttling from the endpoint are retried with backoff."""
    with pytest.raises(TokenEndpointUnavailableError) as info:
        interpret(status, "text/plain", "Too Many Requests", url=TOKEN_URL)
    assert info.value.transient
    assert info.value.status == status


@pytest.mark.parametrize("code", ["server_error", "temporarily_unavailable"])
def test_interpret_transient_oauth_codes_in_a_400(code: str):
    """OAuth server_error / temporarily_unavailable are transient whatever the status."""
    with pytest.raises(TokenEndpointUnavailableError) as info:
        interpret(400, "application/json", f'{{"error":"{code}"}}', url=TOKEN_URL)
    assert info.value.transient


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html;charset=UTF-8", MAINTENANCE_PAGE),
        ("application/octet-stream", "  <html><body>maintenance</body></html>"),
    ],
)
def test_interpret_200_html_maintenance_page_is_transient(content_type: str, body: str):
    """Salesforce's HTML maintenance page with a 200 is transient, not a token."""
    with pytest.raises(TokenEndpointUnavailableError) as info:
        interpret(200, content_type, body, url=TOKEN_URL)
    assert info.value.transient
    assert info.value.status == 200


@pytest.mark.parametrize(
    "body",
    [
        '{"access_token": "00D',
        "{not json}",
        '[{"access_token": "00D"}]',
        "[]",
        '"just a string"',
        "42",
        "null",
        "access_token=00D&instance_url=https://x",
    ],
)
def test_interpret_200_non_object_is_invalid_token_response(body: str):
    """A 200 whose body is not a JSON object is InvalidTokenResponseError, never a JSON error."""
    with pytest.raises(InvalidTokenResponseError) as info:
        interpret(200, "application/json", body, url=TOKEN_URL)
    assert not isinstance(info.value, ValueError)
    assert not info.value.transient
    assert info.value.status == 200


def test_interpret_empty_200_needs_allow_empty():
    """An empty 200 is success only where an empty answer is expected (revoke)."""
    assert interpret(200, "", "", url=REVOKE_URL, allow_empty=True) == {}
    assert interpret(200, "text/html", "  \n", url=REVOKE_URL, allow_empty=True) == {}
    with pytest.raises(InvalidTokenResponseError):
        interpret(200, "application/json", "", url=TOKEN_URL)


def test_interpret_allow_empty_still_decodes_a_body():
    """allow_empty does not discard a JSON body that is present."""
    assert interpret(200, "application/json", '{"ok": true}', url=REVOKE_URL, allow_empty=True) == {
        "ok": True
    }


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/json"]
)
def test_interpret_form_encoded_error_body(content_type: str):
    """The revoke endpoint's form-encoded 400 error=invalid_token is InvalidTokenError (§6)."""
    body = "error=invalid_token&error_description=the+token+was+revoked"
    with pytest.raises(InvalidTokenError) as info:
        interpret(400, content_type, body, url=REVOKE_URL)
    assert info.value.error == "invalid_token"
    assert info.value.description == "the token was revoked"


@pytest.mark.parametrize("status", [401, 403])
def test_interpret_401_403_without_oauth_body_is_invalid_token(status: int):
    """A bare 401/403 to a bearer request (userinfo, identity URL): the token was refused."""
    body = '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
    with pytest.raises(InvalidTokenError) as info:
        interpret(status, "application/json", body, url=USERINFO_URL, bearer=True)
    assert info.value.status == status
    assert info.value.error == "invalid_token"


@pytest.mark.parametrize("status", [401, 403, 407, 418])
@pytest.mark.parametrize(
    "body", ["<html><body>Access denied by corporate proxy</body></html>", "", "denied"]
)
def test_a_4xx_page_at_the_token_endpoint_is_not_a_refused_credential(status: int, body: str):
    """A 4xx without an OAuth body (a proxy's page) is no OAuthError: never a dead credential."""
    with pytest.raises(InvalidTokenResponseError, match="proxy or firewall") as info:
        interpret(status, "text/html", body, url=TOKEN_URL)
    assert not isinstance(info.value, OAuthError)
    assert info.value.status == status


def test_retry_after_of_an_unavailable_token_endpoint_is_kept():
    """A 503 or 429 with Retry-After tells the refresher how long to wait."""
    for status in (503, 429):
        with pytest.raises(TokenEndpointUnavailableError) as info:
            interpret(status, "text/plain", "busy", url=TOKEN_URL, retry_after="7")
        assert info.value.retry_after_s == 7.0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_interpret_redirect_is_an_error(status: int):
    """A redirect answer is an error that tells to fix login_url."""
    with pytest.raises(InvalidTokenResponseError, match="redirect") as info:
        interpret(status, "text/html", "", url=TOKEN_URL)
    assert info.value.status == status
    assert not info.value.transient


@pytest.mark.parametrize(
    ("status", "body"), [(400, "Bad Request"), (404, "<html>Not Found</html>"), (400, "")]
)
def test_interpret_4xx_without_oauth_body_is_invalid_token_response(status: int, body: str):
    """A 4xx that is not an OAuth error is a permanent InvalidTokenResponseError."""
    with pytest.raises(InvalidTokenResponseError, match="login_url") as info:
        interpret(status, "text/html", body, url=TOKEN_URL)
    assert not info.value.transient


# --- post_form / get_json over (mocked) aiohttp --------------------------------------------


async def test_post_form_sends_a_form_post_and_decodes_json(http: aioresponses):
    """post_form POSTs the form fields with redirects off and no session middlewares."""
    http.post(TOKEN_URL, payload=TOKEN_BODY)
    response = await post_form(None, TOKEN_URL, FORM)
    assert isinstance(response, OAuthResponse)
    assert response.status == 200
    assert response.data == TOKEN_BODY
    assert response.received_at.tzinfo is not None
    (call,) = _calls(http, "POST", TOKEN_URL)
    assert call["data"] == FORM
    assert call["allow_redirects"] is False
    assert call["middlewares"] == ()
    assert call.get("auth") is None
    headers = {k.lower(): v for k, v in call["headers"].items()}
    assert "authorization" not in headers
    assert headers["accept"] == "application/json"
    payload = aiohttp.FormData(call["data"])()
    assert payload.content_type == "application/x-www-form-urlencoded"


async def test_post_form_uses_the_given_session(http: aioresponses):
    """A caller's session is used and left open."""
    http.post(TOKEN_URL, payload=TOKEN_BODY)
    async with aiohttp.ClientSession() as session:
        await post_form(session, TOKEN_URL, FORM)
        assert not session.closed


async def test_post_form_400_oauth_error(http: aioresponses):
    """A 400 OAuth error body raises the typed error, without the secret in its message."""
    http.post(
        TOKEN_URL,
        status=400,
        payload={"error": "invalid_client", "error_description": "invalid client credentials"},
    )
    with pytest.raises(InvalidClientError) as info:
        await post_form(None, TOKEN_URL, FORM)
    assert info.value.status == 400
    assert info.value.url == TOKEN_URL
    assert CLIENT_SECRET not in str(info.value)
    assert CLIENT_SECRET not in repr(info.value)


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (503, "text/html", MAINTENANCE_PAGE),
        (500, "application/json", '{"error":"server_error"}'),
        (200, "text/html", MAINTENANCE_PAGE),
        (429, "text/plain", "slow down"),
        (408, "text/plain", ""),
    ],
)
async def test_post_form_transient_answers(
    http: aioresponses, status: int, content_type: str, body: str
):
    """5xx, 429, 408 and a 200 maintenance page raise the transient unavailable error."""
    http.post(TOKEN_URL, status=status, body=body, content_type=content_type)
    with pytest.raises(TokenEndpointUnavailableError) as info:
        await post_form(None, TOKEN_URL, FORM)
    assert info.value.transient
    assert info.value.status == status


@pytest.mark.parametrize("body", ['{"access_token": ', '[{"access_token": "x"}]'])
async def test_post_form_200_bad_json(http: aioresponses, body: str):
    """Malformed JSON or a JSON array in a 200 is InvalidTokenResponseError."""
    http.post(TOKEN_URL, status=200, body=body, content_type="application/json")
    with pytest.raises(InvalidTokenResponseError):
        await post_form(None, TOKEN_URL, FORM)


async def test_post_form_does_not_follow_a_redirect(http: aioresponses):
    """A redirect is an error and the form (with the secret) is not sent to its target."""
    elsewhere = "https://elsewhere.example.com/services/oauth2/token"
    http.post(TOKEN_URL, status=307, headers={"Location": elsewhere})
    http.post(elsewhere, payload=TOKEN_BODY)
    with pytest.raises(InvalidTokenResponseError, match="redirect") as info:
        await post_form(None, TOKEN_URL, FORM)
    assert info.value.status == 307
    assert _calls(http, "POST", elsewhere) == []
    assert _calls(http, "GET", elsewhere) == []


async def test_post_form_connection_error_is_chained(http: aioresponses):
    """No answer raises TokenEndpointConnectionError with the aiohttp error as __cause__."""
    cause = aiohttp.ClientConnectionError("connection reset by peer")
    http.post(TOKEN_URL, exception=cause)
    with pytest.raises(TokenEndpointConnectionError) as info:
        await post_form(None, TOKEN_URL, FORM)
    assert info.value.__cause__ is cause
    assert info.value.transient
    assert info.value.status is None
    assert info.value.url == TOKEN_URL
    assert CLIENT_SECRET not in str(info.value)


async def test_post_form_timeout_is_a_connection_error(http: aioresponses):
    """A timeout is a transient TokenEndpointConnectionError that says it timed out."""
    http.post(TOKEN_URL, timeout=True)
    with pytest.raises(TokenEndpointConnectionError, match="timed out") as info:
        await post_form(None, TOKEN_URL, FORM)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert info.value.transient


async def test_post_form_os_error_is_a_connection_error(http: aioresponses):
    """A socket-level OSError (DNS, TLS) is a TokenEndpointConnectionError too."""
    cause = OSError("Name or service not known")
    http.post(TOKEN_URL, exception=cause)
    with pytest.raises(TokenEndpointConnectionError) as info:
        await post_form(None, TOKEN_URL, FORM)
    assert info.value.__cause__ is cause


async def test_post_form_form_encoded_invalid_token(http: aioresponses):
    """A form-encoded 400 error=invalid_token from revoke raises InvalidTokenError."""
    http.post(
        REVOKE_URL,
        status=400,
        body="error=invalid_token&error_description=invalid+token",
        content_type="application/x-www-form-urlencoded",
    )
    with pytest.raises(InvalidTokenError):
        await post_form(None, REVOKE_URL, {"token": "x"}, allow_empty=True)


async def test_post_form_empty_200_only_with_allow_empty(http: aioresponses):
    """An empty 200 is accepted with allow_empty and refused without."""
    http.post(REVOKE_URL, status=200, body="", content_type="text/plain", repeat=2)
    assert (await post_form(None, REVOKE_URL, {"token": "x"}, allow_empty=True)).data == {}
    with pytest.raises(InvalidTokenResponseError):
        await post_form(None, REVOKE_URL, {"token": "x"})


async def test_get_json_sends_the_bearer_token(http: aioresponses):
    """get_json GETs with 'Authorization: Bearer <token>' and no body."""
    http.get(USERINFO_URL, payload={"sub": "x"})
    response = await get_json(None, USERINFO_URL, bearer="00Dxx!FAKE")
    assert response.data == {"sub": "x"}
    (call,) = _calls(http, "GET", USERINFO_URL)
    assert call["headers"]["Authorization"] == "Bearer 00Dxx!FAKE"
    assert call["allow_redirects"] is False
    assert call["middlewares"] == ()
    assert call.get("data") is None


async def test_get_json_401_is_invalid_token(http: aioresponses):
    """A 401 on get_json means the access token was refused: InvalidTokenError."""
    http.get(
        USERINFO_URL,
        status=401,
        payload=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
    )
    with pytest.raises(InvalidTokenError) as info:
        await get_json(None, USERINFO_URL, bearer="00Dxx!FAKE")
    assert info.value.status == 401
    assert "00Dxx!FAKE" not in str(info.value)


# --- on the wire: a real aiohttp server on loopback ----------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[dict[str, Any]]]]:
    """A loopback server recording every request; /redirect redirects to /token."""
    seen: list[dict[str, Any]] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body": await request.text(),
            }
        )
        return web.json_response(TOKEN_BODY)

    async def redirect(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "body": await request.text()})
        raise web.HTTPTemporaryRedirect("/token")

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_post("/services/oauth2/token", token)
    app.router.add_post("/redirect", redirect)
    async with TestServer(app, host="127.0.0.1") as srv:
        yield srv, seen


async def test_wire_form_is_urlencoded_with_content_type(
    server: tuple[TestServer, list[dict[str, Any]]],
):
    """On the wire: POST, form-urlencoded Content-Type and body, nothing in the query."""
    srv, seen = server
    await post_form(None, str(srv.make_url("/token")), FORM)
    (request,) = seen
    assert request["method"] == "POST"
    assert request["query"] == ""
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request["body"])) == FORM
    assert "Authorization" not in request["headers"]


async def test_wire_basic_auth_header(server: tuple[TestServer, list[dict[str, Any]]]):
    """On the wire: Basic auth is 'Basic base64(id:secret)' and the form has no secret."""
    srv, seen = server
    flow = ClientCredentialsFlow(
        client_id="cid",
        client_secret=CLIENT_SECRET,
        login_url=str(srv.make_url("")),
        client_auth="basic",
    )
    await flow.fetch_token()
    (request,) = seen
    expected = base64.b64encode(f"cid:{CLIENT_SECRET}".encode()).decode()
    assert request["path"] == "/services/oauth2/token"
    assert request["headers"]["Authorization"] == f"Basic {expected}"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request["body"])) == {"grant_type": "client_credentials"}


async def test_wire_redirect_is_not_followed(server: tuple[TestServer, list[dict[str, Any]]]):
    """On the wire: a 307 is not followed, so the form is never re-sent to the target."""
    srv, seen = server
    with pytest.raises(InvalidTokenResponseError, match="redirect"):
        await post_form(None, str(srv.make_url("/redirect")), FORM)
    assert [r["path"] for r in seen] == ["/redirect"]


async def test_wire_session_middlewares_are_bypassed(
    server: tuple[TestServer, list[dict[str, Any]]],
):
    """A session's bearer middleware never sees a token request (no Bearer, no retry)."""
    srv, seen = server
    ran: list[str] = []

    async def bearer(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        ran.append(str(request.url))
        request.headers["Authorization"] = "Bearer 00Dxx!FAKE"
        return await handler(request)

    async with aiohttp.ClientSession(middlewares=(bearer,)) as session:
        await post_form(session, str(srv.make_url("/token")), FORM)
    assert ran == []
    assert "Authorization" not in seen[0]["headers"]


async def test_wire_session_default_authorization_is_not_sent(
    server: tuple[TestServer, list[dict[str, Any]]],
):
    """A session's default Authorization header never reaches a token request."""
    srv, seen = server
    headers = {"Authorization": "Bearer 00Dxx!FAKE"}
    async with aiohttp.ClientSession(headers=headers) as session:
        await post_form(session, str(srv.make_url("/token")), FORM)
    assert "Authorization" not in seen[0]["headers"]


async def test_wire_connection_refused_is_a_connection_error():
    """A closed port gives TokenEndpointConnectionError chained to aiohttp's error."""
    app = web.Application()
    async with TestServer(app, host="127.0.0.1") as srv:
        url = str(srv.make_url("/token"))
    with pytest.raises(TokenEndpointConnectionError) as info:
        await post_form(None, url, FORM)
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError | OSError)


# --- hostile answers (issue 8, 9, 10) ------------------------------------------------------


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """A loopback token endpoint answering whatever body and headers the test gives it."""
    answers: list[tuple[int, bytes, dict[str, str]]] = []
    seen: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        status, body, headers = answers.pop(0)
        return web.Response(status=status, body=body, headers=headers)

    app = web.Application()
    app.router.add_post("/services/oauth2/token", token)
    async with TestServer(app, host="127.0.0.1") as srv:

        async def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> str:
            answers.append((status, body, {"Content-Type": "application/json", **(headers or {})}))
            return str(srv.make_url("/services/oauth2/token"))

        answer.seen = seen  # type: ignore[attr-defined]
        yield answer


async def test_wire_asks_only_for_encodings_it_can_bound(hostile: Callable[..., Any]):
    """Token requests accept gzip and deflate only, which read_capped inflates with a cap."""
    url = await hostile(200, json.dumps(TOKEN_BODY).encode())
    await post_form(None, url, FORM)
    assert hostile.seen[0]["Accept-Encoding"] == "gzip, deflate"


async def test_wire_gzipped_token_response_is_read(hostile: Callable[..., Any]):
    """A gzip-compressed token response (as Salesforce may send) is decoded."""
    body = gzip.compress(json.dumps(TOKEN_BODY).encode())
    url = await hostile(200, body, {"Content-Encoding": "gzip"})
    assert (await post_form(None, url, FORM)).data == TOKEN_BODY


async def test_wire_gzip_bomb_is_refused_without_inflating_it(hostile: Callable[..., Any]):
    """A 64 KB gzip of 64 MiB is InvalidTokenResponseError, holding ~1 MiB at most."""
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    url = await hostile(200, bomb, {"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(InvalidTokenResponseError, match="larger than 1048576 bytes"):
            await post_form(None, url, FORM)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes"


async def test_wire_body_over_one_mib_is_refused(hostile: Callable[..., Any]):
    """A 2 MiB answer is InvalidTokenResponseError, whatever its status."""
    body = json.dumps({**TOKEN_BODY, "padding": "x" * (2 * 1024 * 1024)}).encode()
    url = await hostile(200, body)
    with pytest.raises(InvalidTokenResponseError, match="larger than"):
        await post_form(None, url, FORM)


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize("depth", [200, 5_000])
async def test_wire_deeply_nested_json_is_a_typed_error(
    hostile: Callable[..., Any], status: int, depth: int
):
    """Nested JSON, as a token or as an error body: InvalidTokenResponseError, no recursion."""
    body = '{"error":' * depth + '"x"' + "}" * depth
    url = await hostile(status, body.encode())
    with pytest.raises(InvalidTokenResponseError):
        await post_form(None, url, FORM)


@pytest.mark.parametrize("depth", [200, 1_000, 50_000])
def test_interpret_nested_json_never_raises_recursion_error(depth: int):
    """Deep nesting is read as "not an OAuth body": the usual typed error for its status."""
    body = "[" * depth + "]" * depth
    for text in (body, '{"access_token": ' + body + "}", '{"error": ' + body + "}"):
        for status, expected in (
            (200, InvalidTokenResponseError),
            (400, InvalidTokenResponseError),
            (401, InvalidTokenResponseError),
        ):
            with pytest.raises(expected):
                interpret(status, "application/json", text, url=TOKEN_URL)
        with pytest.raises(InvalidTokenError):
            interpret(401, "application/json", text, url=USERINFO_URL, bearer=True)


HOSTILE = "x\r\nINFO forged line \x1b[2J\x1b[31mred\u202e" + "y" * 5000


@pytest.mark.parametrize("status", [400, 503])
def test_interpret_hostile_error_text_is_escaped_and_cut(status: int):
    """error/error_description reach messages escaped and short, attributes keep them raw."""
    body = json.dumps({"error": HOSTILE, "error_description": HOSTILE})
    with pytest.raises(TokenRequestError) as caught:
        interpret(status, "application/json", body, url=TOKEN_URL)
    message = str(caught.value)
    for raw in ("\r", "\n", "\x1b", "\u202e"):
        assert raw not in message
    assert "\\r\\nINFO forged line \\x1b[2J" in message
    assert "more characters" in message
    assert len(message) < 1500
    if status == 400:
        assert isinstance(caught.value, OAuthError)
        assert caught.value.error == HOSTILE
        assert caught.value.description == HOSTILE


def test_interpret_hostile_transient_code_is_escaped():
    """A transient OAuth code with control characters is escaped in the message too."""
    code = "server_error"
    with pytest.raises(TokenEndpointUnavailableError) as caught:
        interpret(400, "application/json", json.dumps({"error": code}), url=TOKEN_URL)
    assert code in str(caught.value)
    body = json.dumps({"error": "\x1b]0;owned\x07"})
    with pytest.raises(TokenEndpointUnavailableError) as caught:
        interpret(502, "application/json", body, url=TOKEN_URL)
    assert "\x1b" not in str(caught.value)
    assert "\x07" not in str(caught.value)
