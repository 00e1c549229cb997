"""The fake org's REST and Bulk endpoints: session checks, limits header, CRUD, query."""

from __future__ import annotations

import json
from typing import Any

import pytest

SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
BULK_INVALID_SESSION = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<error xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
    "<exceptionCode>InvalidSessionId</exceptionCode>"
    "<exceptionMessage>Invalid session id</exceptionMessage>"
    "</error>"
)
JOB = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
    "<operation>upsert</operation><object>Contact</object><contentType>CSV</contentType>"
    "</jobInfo>"
)


@pytest.fixture
async def rest(org, client, cc_token):
    """Call REST with a fresh session; returns (status, JSON body, headers).

    Example: ``await rest("GET", "/limits/")``.
    """
    access_token = await cc_token()

    async def call(
        method: str, path: str, body: Any = None, token: str | None = None, raw: str | None = None
    ) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {token or access_token}"}
        if raw is not None:
            headers["Authorization"] = raw
        url = org.my_domain_url + "/services/data/v67.0" + path
        async with client.request(
            method, url, headers=headers, data=None if body is None else json.dumps(body)
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None, response.headers

    return call


async def test_versions_need_no_session(org, client):
    """GET /services/data/ lists v31.0 to v67.0 without a session and without a limit header."""
    async with client.get(org.my_domain_url + "/services/data/") as response:
        assert response.status == 200
        assert "Sforce-Limit-Info" not in response.headers
        versions = await response.json()
    assert versions[0] == {"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"}
    assert versions[-1] == {"label": "Summer '26", "url": "/services/data/v67.0", "version": "67.0"}
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert len(versions) == 37


async def test_resource_map_and_limit_header(org, rest):
    """Authenticated calls carry Sforce-Limit-Info with a growing usage count."""
    status, body, headers = await rest("GET", "/")
    assert status == 200
    assert body["sobjects"] == "/services/data/v67.0/sobjects"
    assert body["identity"] == org.identity_url()
    assert headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    _, _, headers = await rest("GET", "/limits/")
    assert headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert org.api_usage == 2


async def test_limits(rest):
    """The limits resource reports the daily API allocation."""
    status, body, _ = await rest("GET", "/limits/")
    assert status == 200
    assert body["DailyApiRequests"] == {"Max": 100000, "Remaining": 99999}


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer nope", "Basic abc", "00Dx!notatoken"]
)
async def test_invalid_session(org, client, authorization):
    """A missing or unknown bearer answers 401 INVALID_SESSION_ID without WWW-Authenticate."""
    headers = {"Authorization": authorization} if authorization else {}
    async with client.get(
        org.my_domain_url + "/services/data/v67.0/sobjects/", headers=headers
    ) as response:
        assert response.status == 401
        assert await response.json() == SESSION_EXPIRED
        assert "WWW-Authenticate" not in response.headers
        assert "Sforce-Limit-Info" not in response.headers
    assert org.stats.unauthorized == 1
    assert org.stats.api_requests == 1


async def test_expired_and_revoked_sessions(org, rest, cc_token):
    """Expired and revoked sessions answer the same 401 body."""
    revoked = await cc_token()
    org.revoke_access_token(revoked)
    assert (await rest("GET", "/", token=revoked))[:2] == (401, SESSION_EXPIRED)
    org.expire_all_sessions()
    assert (await rest("GET", "/"))[:2] == (401, SESSION_EXPIRED)


async def test_session_without_api_scope(org, rest, token):
    """A token without the api scope answers 401 "not valid for use with the REST API"."""
    refresh_token = org.issue_refresh_token(scopes=["id", "refresh_token"])
    _, body = await token(
        grant_type="refresh_token",
        refresh_token=refresh_token,
        client_id=org.app.client_id,
        client_secret=org.app.client_secret,
    )
    status, answer, _ = await rest("GET", "/", token=body["access_token"])
    assert (status, answer) == (
        401,
        [
            {
                "message": "This session is not valid for use with the REST API",
                "errorCode": "INVALID_SESSION_ID",
            }
        ],
    )


async def test_oauth_scheme_accepted(rest, cc_token):
    """The legacy "OAuth <token>" scheme works like Bearer."""
    assert (await rest("GET", "/", raw=f"OAuth {await cc_token()}"))[0] == 200


async def test_unknown_version_and_path(rest):
    """Unknown versions and resources answer 404 NOT_FOUND, with the limit header."""
    for path in ("/nope",):
        status, body, headers = await rest("GET", path)
        assert (status, body) == (404, NOT_FOUND)
        assert "Sforce-Limit-Info" in headers


async def test_unsupported_version(org, client, cc_token):
    """A version outside v31.0-v67.0 answers 404."""
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    async with client.get(org.my_domain_url + "/services/data/v99.0/", headers=headers) as response:
        assert (response.status, await response.json()) == (404, NOT_FOUND)


async def test_rest_not_served_on_login_host(org, client, cc_token):
    """The login host serves OAuth only."""
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    async with client.get(org.login_url + "/services/data/v67.0/", headers=headers) as response:
        assert response.status == 404


async def test_crud_round_trip(org, rest):
    """Create, read, update, query and delete an Account."""
    status, created, _ = await rest("POST", "/sobjects/Account/", {"Name": "Acme"})
    assert status == 201
    assert created == {"id": created["id"], "success": True, "errors": []}
    record_id = created["id"]
    assert record_id.startswith("001")
    assert len(record_id) == 18

    status, record, _ = await rest("GET", f"/sobjects/Account/{record_id}")
    assert status == 200
    assert record == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v67.0/sobjects/Account/{record_id}",
        },
        "Name": "Acme",
        "Id": record_id,
    }
    assert (await rest("GET", f"/sobjects/Account/{record_id[:15]}"))[0] == 200

    assert (await rest("PATCH", f"/sobjects/Account/{record_id}", {"Name": "Acme 2"}))[:2] == (
        204,
        None,
    )
    assert org.get_record(record_id) == {"Name": "Acme 2", "Id": record_id}

    status, result, _ = await rest("GET", "/query/?q=SELECT+Id,+name+FROM+account")
    assert status == 200
    assert result == {
        "totalSize": 1,
        "done": True,
        "records": [
            {
                "attributes": record["attributes"],
                "Id": record_id,
                "Name": "Acme 2",
            }
        ],
    }

    assert (await rest("DELETE", f"/sobjects/Account/{record_id}"))[:2] == (204, None)
    assert (await rest("GET", f"/sobjects/Account/{record_id}"))[:2] == (404, NOT_FOUND)
    assert (await rest("PATCH", f"/sobjects/Account/{record_id}", {"Name": "x"}))[0] == 404
    assert (await rest("DELETE", f"/sobjects/Account/{record_id}"))[0] == 404


async def test_record_type_must_match(org, rest):
    """An id read through the wrong sObject type is not found."""
    record_id = org.add_record("Account", {"Name": "Acme"})
    assert (await rest("GET", f"/sobjects/Contact/{record_id}"))[:2] == (404, NOT_FOUND)


async def test_query_projection_and_limit(org, rest):
    """Query returns the selected fields (missing ones as null) and honours LIMIT."""
    for name in ("A", "B", "C"):
        org.add_record("Contact", {"LastName": name, "Email": f"{name}@x.org"})
    status, result, _ = await rest("GET", "/query/?q=SELECT LastName, Phone FROM Contact LIMIT 2")
    assert status == 200
    assert result["totalSize"] == 2
    assert [(r["LastName"], r["Phone"]) for r in result["records"]] == [("A", None), ("B", None)]
    assert all("Email" not in r for r in result["records"])
    _, result, _ = await rest("GET", "/query/?q=SELECT FIELDS(ALL) FROM Contact")
    assert result["records"][0]["Email"] == "A@x.org"
    _, result, _ = await rest("GET", "/query/?q=SELECT Id FROM Lead")
    assert result == {"totalSize": 0, "done": True, "records": []}


async def test_malformed_query(rest):
    """A query without SELECT ... FROM answers 400 MALFORMED_QUERY."""
    status, body, _ = await rest("GET", "/query/?q=DELETE everything")
    assert (status, body[0]["errorCode"]) == (400, "MALFORMED_QUERY")


async def test_describe_global(org, rest):
    """The global describe lists standard objects and any stored custom type."""
    org.add_record("Invoice__c", {"Name": "INV-1"})
    status, body, _ = await rest("GET", "/sobjects/")
    assert status == 200
    names = {sobject["name"] for sobject in body["sobjects"]}
    assert {"Account", "Contact", "Invoice__c"} <= names
    status, body, _ = await rest("GET", "/sobjects/Account/")
    assert (status, body["objectDescribe"]["keyPrefix"]) == (200, "001")


async def test_bad_json_and_methods(rest):
    """A body that is not a JSON object answers 400; a wrong method answers 405."""
    status, body, _ = await rest("POST", "/sobjects/Account/", ["not", "an", "object"])
    assert (status, body[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    status, body, _ = await rest("PUT", "/sobjects/Account/001000000000000AAA", {})
    assert (status, body[0]["errorCode"]) == (405, "METHOD_NOT_ALLOWED")
    assert (await rest("POST", "/limits/", {}))[0] == 405


async def test_api_limit_exhausted(org, rest):
    """At the daily allocation REST answers 403 REQUEST_LIMIT_EXCEEDED."""
    org.api_usage = org.api_limit
    status, body, headers = await rest("GET", "/")
    assert (status, body[0]["errorCode"]) == (403, "REQUEST_LIMIT_EXCEEDED")
    assert headers["Sforce-Limit-Info"] == "api-usage=100000/100000"


# -- Bulk API 1.0 -------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-SFDC-Session", "Authorization"])
async def test_bulk_job(org, client, cc_token, header):
    """A job is created (201 jobInfo XML) with the session in X-SFDC-Session or as Bearer."""
    access_token = await cc_token()
    value = access_token if header == "X-SFDC-Session" else f"Bearer {access_token}"
    async with client.post(
        org.my_domain_url + "/services/async/67.0/job",
        data=JOB,
        headers={header: value, "Content-Type": "application/xml; charset=UTF-8"},
    ) as response:
        assert response.status == 201
        assert response.content_type == "application/xml"
        text = await response.text()
    assert "<operation>upsert</operation>" in text
    assert "<object>Contact</object>" in text
    assert "<state>Open</state>" in text
    assert f"<createdById>{org.user.user_id}</createdById>" in text


async def test_bulk_invalid_session(org, client, cc_token):
    """A dead session answers Bulk 1.0's 400 XML InvalidSessionId, not a 401."""
    access_token = await cc_token()
    org.expire_all_sessions()
    async with client.post(
        org.my_domain_url + "/services/async/67.0/job",
        data=JOB,
        headers={"X-SFDC-Session": access_token},
    ) as response:
        assert response.status == 400
        assert response.content_type == "application/xml"
        assert await response.text() == BULK_INVALID_SESSION
    assert org.stats.unauthorized == 1


async def test_deactivated_user_loses_sessions(org, rest):
    """Deactivating a user ends their sessions."""
    assert (await rest("GET", "/"))[0] == 200
    org.user.active = False
    assert (await rest("GET", "/"))[:2] == (401, SESSION_EXPIRED)
