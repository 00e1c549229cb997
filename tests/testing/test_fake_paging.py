"""The fake org's query paging, queryAll, seeded tables, and API-usage reporting on the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sfoauth_async.testing import FakeSalesforceOrg, Fault


@pytest.fixture
async def get(org, client, cc_token):
    """GET a path under the org (``/services/data/...``); returns (status, JSON, headers)."""
    access_token = await cc_token()

    async def call(path: str, **headers: str) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {access_token}", **headers}
        async with client.get(org.my_domain_url + path, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None, response.headers

    return call


QUERY = "/services/data/v67.0/query/?q=SELECT+Id,+Name+FROM+Account"


async def test_pages_of_2000_with_next_records_urls(org, get):
    """4,100 records: pages of 2,000, 2,000 and 100, linked by nextRecordsUrl, done at the end."""
    ids = org.seed_records("Account", 4_100)
    status, page, _ = await get(QUERY)
    assert status == 200
    assert list(page) == ["totalSize", "done", "nextRecordsUrl", "records"]
    assert (page["totalSize"], page["done"], len(page["records"])) == (4_100, False, 2_000)
    locator = page["nextRecordsUrl"]
    assert locator.startswith("/services/data/v67.0/query/01g")
    assert locator.endswith("-2000")
    seen = [r["Id"] for r in page["records"]]
    while not page["done"]:
        _, page, _ = await get(page["nextRecordsUrl"])
        seen += [r["Id"] for r in page["records"]]
    assert seen == list(ids)
    assert list(page) == ["totalSize", "done", "records"]
    assert len(page["records"]) == 100


async def test_a_page_can_be_read_again(org, get):
    """The same nextRecordsUrl twice gives the same page (a lost answer can be re-asked)."""
    org.seed_records("Account", 2_500)
    _, first, _ = await get(QUERY)
    _, once, _ = await get(first["nextRecordsUrl"])
    _, twice, _ = await get(first["nextRecordsUrl"])
    assert once == twice
    assert len(once["records"]) == 500


@pytest.mark.parametrize(
    ("options", "size"),
    [("batchSize=500", 500), ("batchSize=10", 200), ("batchSize=9000", 2000), ("junk", 2000)],
)
async def test_batch_size_is_honoured_within_200_and_2000(org, get, options, size):
    """Sforce-Query-Options: batchSize=N sets the page size, clamped to 200-2,000."""
    org.seed_records("Account", 3_000)
    _, page, _ = await get(QUERY, **{"Sforce-Query-Options": options})
    assert len(page["records"]) == size
    assert page["nextRecordsUrl"].endswith(f"-{size}")


async def test_limit_caps_the_total(org, get):
    """LIMIT n caps totalSize and paging stops there."""
    org.seed_records("Account", 5_000)
    _, page, _ = await get(QUERY + "+LIMIT+2100")
    assert page["totalSize"] == 2_100
    _, page, _ = await get(page["nextRecordsUrl"])
    assert (page["done"], len(page["records"])) == (True, 100)


async def test_unknown_locators_are_refused(get):
    """A locator the org does not know answers 400 INVALID_QUERY_LOCATOR."""
    status, body, _ = await get("/services/data/v67.0/query/01gAAAAAAAAAAAAAAA-2000")
    assert (status, body[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")


async def test_query_all_returns_deleted_records(org, get, client, cc_token):
    """A queryAll also returns recycle-bin records, with IsDeleted true; a query does not."""
    ids = org.seed_records("Account", 3)
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    url = f"{org.my_domain_url}/services/data/v67.0/sobjects/Account/{ids[1]}"
    async with client.delete(url, headers=headers) as response:
        assert response.status == 204
    fields = "SELECT+Id,+IsDeleted+FROM+Account"
    _, live, _ = await get(f"/services/data/v67.0/query/?q={fields}")
    _, everything, _ = await get(f"/services/data/v67.0/queryAll/?q={fields}")
    assert [r["Id"] for r in live["records"]] == [ids[0], ids[2]]
    deleted = {r["Id"]: r["IsDeleted"] for r in everything["records"]}
    assert deleted == {ids[0]: False, ids[1]: True, ids[2]: False}
    status, _, _ = await get(f"/services/data/v67.0/sobjects/Account/{ids[1]}")
    assert status == 404


async def test_seeded_records_are_deterministic_and_lazy():
    """The same seed gives the same records; seeding 1,000,000 stores no records."""
    async with FakeSalesforceOrg() as a, FakeSalesforceOrg() as b:
        ids_a = a.seed_records("Account", 1_000_000, seed=7)
        ids_b = b.seed_records("Account", 1_000_000, seed=7)
        assert ids_a[123_456] == ids_b[123_456]
        assert ids_a[-1] == ids_a[999_999]
        assert len(ids_a[10:20]) == 10
        assert a._records == {}
        assert a._data.find(ids_a[5]) == b._data.find(ids_b[5])
        other = FakeSalesforceOrg().seed_records("Account", 10, seed=8)
        assert other[5] == ids_a[5]  # ids follow the index; field values follow the seed
        with pytest.raises(IndexError):
            ids_a[1_000_000]


async def test_seeded_records_read_and_update_like_stored_ones(org, get, client, cc_token):
    """A seeded record is served by id; a PATCH stores it, and the query shows the change."""
    ids = org.seed_records("Contact", 10)
    status, record, _ = await get(f"/services/data/v67.0/sobjects/Contact/{ids[4]}")
    assert status == 200
    assert record["Name"] == "Contact 000004"
    assert record["External_Id__c"] == "GEN-0-0000004"
    headers = {"Authorization": f"Bearer {await cc_token()}"}
    url = f"{org.my_domain_url}/services/data/v67.0/sobjects/Contact/{ids[4]}"
    async with client.patch(url, json={"Name": "Changed"}, headers=headers) as response:
        assert response.status == 204
    assert org.get_record(ids[4])["Name"] == "Changed"
    _, page, _ = await get("/services/data/v67.0/query/?q=SELECT+Id,+Name+FROM+Contact")
    assert page["totalSize"] == 10
    assert {r["Id"]: r["Name"] for r in page["records"]}[ids[4]] == "Changed"


async def test_faulted_rest_answers_report_usage(org, get):
    """Salesforce-style faults on REST still carry Sforce-Limit-Info; usage does not grow."""
    org.api_usage = 17
    org.faults.api.push(Fault.unable_to_lock_row())
    status, body, headers = await get("/services/data/v67.0/limits/")
    assert (status, body[0]["errorCode"]) == (400, "UNABLE_TO_LOCK_ROW")
    assert headers["Sforce-Limit-Info"] == "api-usage=17/100000"


async def test_the_new_fault_shapes(org, get):
    """server_unavailable sends Retry-After as given; request_limit_exceeded has both messages."""
    org.faults.api.push(
        Fault.server_unavailable(retry_after="2"),
        Fault.server_unavailable(),
        Fault.request_limit_exceeded(),
        Fault.request_limit_exceeded(concurrent=True),
    )
    status, body, headers = await get("/services/data/v67.0/limits/")
    assert (status, body[0]["errorCode"], headers["Retry-After"]) == (
        503,
        "SERVER_UNAVAILABLE",
        "2",
    )
    status, _, headers = await get("/services/data/v67.0/limits/")
    assert status == 503
    assert "Retry-After" not in headers
    _, body, _ = await get("/services/data/v67.0/limits/")
    assert body == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    status, body, _ = await get("/services/data/v67.0/limits/")
    assert status == 403
    assert body[0]["message"].startswith("ConcurrentRequests")


async def test_describe_lists_seeded_types(org, get):
    """A seeded custom type appears in the global describe."""
    org.seed_records("Invoice__c", 3)
    _, body, _ = await get("/services/data/v67.0/sobjects/")
    assert "Invoice__c" in {s["name"] for s in body["sobjects"]}
