"""The fake org's sObject Collections on the wire: shapes, per-record errors, allOrNone."""

from __future__ import annotations

import json
from typing import Any

import pytest

BASE = "/services/data/v67.0/composite/sobjects"


@pytest.fixture
async def call(org, client, cc_token):
    """Send a collections request; returns (status, JSON body)."""
    headers = {"Authorization": f"Bearer {await cc_token()}"}

    async def send(method: str, path: str = BASE, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        async with client.request(
            method, org.my_domain_url + path, data=data, headers=headers
        ) as response:
            return response.status, await response.json()

    return send


def records(*rows: dict[str, Any], sobject: str = "Account") -> list[dict[str, Any]]:
    """Rows with their attributes."""
    return [{"attributes": {"type": sobject}, **row} for row in rows]


async def test_create_answers_one_result_per_record(org, call):
    """POST creates each valid record; errors are per record, in order."""
    status, results = await call(
        "POST",
        body={
            "allOrNone": False,
            "records": [
                *records({"Name": "A"}),
                {"Name": "no type"},
                *records({"Id": "001000000000000AAA", "Name": "B"}),
                *records({"LastName": "Smith"}, sobject="Contact"),
                *records({"FirstName": "No last name"}, sobject="Contact"),
            ],
        },
    )
    assert status == 200
    assert [r["success"] for r in results] == [True, False, False, True, False]
    assert results[0] == {"id": results[0]["id"], "success": True, "errors": []}
    assert results[0]["id"].startswith("001")
    assert results[3]["id"].startswith("003")
    assert [r["errors"][0]["statusCode"] for r in results if not r["success"]] == [
        "INVALID_TYPE",
        "INVALID_FIELD",
        "REQUIRED_FIELD_MISSING",
    ]
    assert results[4]["errors"][0]["fields"] == ["LastName"]
    assert "id" not in results[1]
    assert len(org._records) == 2


async def test_all_or_none_rolls_back_the_call(org, call):
    """allOrNone: one bad record, nothing saved, the good ones ALL_OR_NONE_OPERATION_ROLLED_BACK."""
    status, results = await call(
        "POST", body={"allOrNone": True, "records": records({"Name": "A"}, {"Name": ""})}
    )
    assert status == 200
    assert results[0] == {
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert org._records == {}


async def test_update_errors(org, call):
    """PATCH: missing Id, unknown id, a repeated id and an emptied required field fail alone."""
    kept = org.add_record("Account", {"Name": "Kept"})
    status, results = await call(
        "PATCH",
        body={
            "records": records(
                {"Id": kept, "Rating": "Hot"},
                {"Rating": "Cold"},
                {"Id": "001000000000000AAA", "Rating": "Warm"},
                {"Id": kept, "Rating": "Again"},
                {"Id": kept[:15], "Rating": "Short form"},
            )
        },
    )
    assert status == 200
    codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
    assert codes == [
        None,
        "MISSING_ARGUMENT",
        "INVALID_CROSS_REFERENCE_KEY",
        "INVALID_ID_FIELD",
        "INVALID_ID_FIELD",
    ]
    assert org.get_record(kept)["Rating"] == "Hot"
    _, results = await call("PATCH", body={"records": records({"Id": kept, "Name": ""})})
    assert results[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert org.get_record(kept)["Name"] == "Kept"


async def test_upsert_by_external_id(org, call):
    """PATCH .../Account/Ext__c creates then updates; duplicates in one call fail."""
    path = f"{BASE}/Account/Ext__c"
    _, first = await call(
        "PATCH", path, {"records": records({"Ext__c": "A", "Name": "A"}, {"Ext__c": "B"})}
    )
    assert (first[0]["created"], first[1]["success"]) == (True, False)
    org.add_record("Account", {"Ext__c": "C", "Name": "Stored out of band"})
    _, second = await call(
        "PATCH",
        path,
        {
            "records": records(
                {"Ext__c": "A", "Name": "A2"},
                {"Ext__c": "A", "Name": "A3"},
                {"Ext__c": "C", "Name": "C2"},
                {"Name": "no key"},
            )
        },
    )
    assert [(r["success"], r["created"]) for r in second] == [
        (True, False),
        (False, False),
        (True, False),
        (False, False),
    ]
    assert second[0]["id"] == first[0]["id"]
    assert second[1]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    assert second[3]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert org.get_record(first[0]["id"])["Name"] == "A2"
    assert sorted(f["Name"] for _, f in org._records.values()) == ["A2", "C2"]


async def test_delete_by_ids(org, call):
    """DELETE ?ids=: deleted records go to the recycle bin; failures keep their id."""
    a = org.add_record("Account", {"Name": "A"})
    b = org.add_record("Account", {"Name": "B"})
    status, results = await call("DELETE", f"{BASE}?ids={a},{b},{a}&allOrNone=true")
    assert status == 200
    assert results[2] == {
        "id": a,
        "success": False,
        "errors": [{"statusCode": "INVALID_ID_FIELD", "message": "duplicate id in list",
                    "fields": ["Id"]}],
    }  # fmt: skip
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert len(org._records) == 2
    _, results = await call("DELETE", f"{BASE}?ids={a},{b}")
    assert all(r["success"] for r in results)
    _, results = await call("DELETE", f"{BASE}?ids={a}")
    assert results == [
        {"id": a, "success": False, "errors": [
            {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]}
    ]  # fmt: skip


async def test_more_than_200_records_are_refused(org, call):
    """201 records or ids answer 400 EXCEEDED_ID_LIMIT, and nothing is saved."""
    status, body = await call("POST", body={"records": records(*[{"Name": "x"}] * 201)})
    assert (status, body[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")
    ids = ",".join(["001000000000000AAA"] * 201)
    status, body = await call("DELETE", f"{BASE}?ids={ids}")
    assert (status, body[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")
    assert org._records == {}


async def test_bad_bodies_and_methods(call):
    """Bodies without a record list answer 400; a GET or a POST upsert answers 405."""
    status, body = await call("POST", body={"allOrNone": False})
    assert (status, body[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    status, body = await call("PATCH", body=["not", "an", "object"])
    assert (status, body[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    status, body = await call("GET")
    assert (status, body[0]["errorCode"]) == (405, "METHOD_NOT_ALLOWED")
    status, body = await call("POST", f"{BASE}/Account/Ext__c", {"records": []})
    assert (status, body[0]["errorCode"]) == (405, "METHOD_NOT_ALLOWED")


async def test_each_call_counts_once(org, call):
    """A collections call of many records is one API call."""
    await call("POST", body={"records": records(*[{"Name": "x"}] * 200)})
    assert org.api_usage == 1
