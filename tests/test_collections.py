"""sObject Collections helpers: calls of 200, bounded concurrency, results in input order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sfoauth_async import (
    AsyncSession,
    ConfigurationError,
    RecordError,
    RecordResult,
    RequestLimitExceededError,
    RetryPolicy,
)
from sfoauth_async._collections import connection_limit
from sfoauth_async.testing import FakeSalesforceOrg, Fault

ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


class CallLog:
    """A client middleware that counts collection calls, in flight and in total."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Count the call while it runs."""
        if "/composite/sobjects" not in req.url.path:
            return await handler(req)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            resp = await handler(req)
        finally:
            self.in_flight -= 1
        self.calls.append((req.method, resp.status))
        return resp


@pytest.fixture
def log() -> CallLog:
    """A fresh call log."""
    return CallLog()


@pytest.fixture
async def sf(fake_org: FakeSalesforceOrg, log: CallLog) -> AsyncIterator[AsyncSession]:
    """A logged-in session whose collection calls are counted."""
    async with AsyncSession(fake_org.client_credentials_flow(), middlewares=(log,)) as session:
        await session.get_token()
        yield session


def accounts(count: int, start: int = 0) -> list[dict[str, Any]]:
    """``count`` Account rows with distinct names and external ids."""
    return [{"Name": f"Acme {n}", "Ext__c": f"E-{n}"} for n in range(start, start + count)]


async def test_create_in_calls_of_200_results_in_input_order(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, log: CallLog
) -> None:
    """450 records: three calls, 450 results, result i is the record of row i."""
    rows = accounts(450)
    results = await sf.create_records("Account", rows)
    assert len(log.calls) == 3
    assert log.calls == [("POST", 200)] * 3
    assert len(results) == 450
    assert all(r.success and r.errors == () and r.created is None for r in results)
    for row, result in zip(rows, results, strict=True):
        assert result.id is not None
        assert fake_org.get_record(result.id)["Name"] == row["Name"]  # type: ignore[index]


async def test_per_record_failures_are_results(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """A row without its required Name fails alone, as a result; the others are created."""
    rows = accounts(5)
    del rows[2]["Name"]
    results = await sf.create_records("Account", rows)
    assert [r.success for r in results] == [True, True, False, True, True]
    assert results[2] == RecordResult(
        id=None,
        success=False,
        errors=(
            RecordError(
                error_code="REQUIRED_FIELD_MISSING",
                message="Required fields are missing: [Name]",
                fields=("Name",),
            ),
        ),
    )
    assert len(fake_org._records) == 4


async def test_all_or_none_rolls_back_only_the_failing_call(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """With all_or_none, the call of 200 holding a bad row saves nothing; other calls save."""
    rows = accounts(400)
    rows[250]["Name"] = ""
    results = await sf.create_records("Account", rows, all_or_none=True)
    assert all(r.success for r in results[:200])
    assert not any(r.success for r in results[200:])
    assert results[250].errors[0].error_code == "REQUIRED_FIELD_MISSING"
    rolled_back = {r.errors[0].error_code for i, r in enumerate(results[200:], 200) if i != 250}
    assert rolled_back == {ROLLED_BACK}
    assert len(fake_org._records) == 200


async def test_update_needs_ids_and_reports_per_record(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, log: CallLog
) -> None:
    """Updates change the records; a deleted id fails with ENTITY_IS_DELETED; no Id: no call."""
    created = await sf.create_records("Account", accounts(3))
    gone = created[1].id
    assert gone is not None
    await sf.delete_records([gone])
    calls = len(log.calls)
    changes = [{"Id": r.id, "Rating": "Hot"} for r in created]
    results = await sf.update_records("Account", changes)
    assert [r.success for r in results] == [True, False, True]
    assert results[1].errors[0].error_code == "ENTITY_IS_DELETED"
    assert fake_org.get_record(created[0].id or "")["Rating"] == "Hot"  # type: ignore[index]
    with pytest.raises(ConfigurationError, match=r"records\[1\] has no Id"):
        await sf.update_records("Account", [{"Id": created[0].id}, {"Name": "no id"}])
    assert len(log.calls) == calls + 1


async def test_upsert_creates_then_updates(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, log: CallLog
) -> None:
    """Upserting twice: created=True the first time, created=False with the same ids after."""
    rows = accounts(250)
    first = await sf.upsert_records("Account", "Ext__c", rows)
    assert all(r.success and r.created is True for r in first)
    rows[7]["Name"] = "Renamed"
    second = await sf.upsert_records("Account", "Ext__c", rows)
    assert all(r.success and r.created is False for r in second)
    assert [r.id for r in second] == [r.id for r in first]
    assert fake_org.get_record(first[7].id or "")["Name"] == "Renamed"  # type: ignore[index]
    assert len(fake_org._records) == 250
    assert log.calls == [("PATCH", 200)] * 4
    with pytest.raises(ConfigurationError, match=r"records\[0\] has no Ext__c"):
        await sf.upsert_records("Account", "Ext__c", [{"Name": "no key"}])


async def test_upsert_reaches_seeded_records_by_external_id(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """Seeded records are matched by their External_Id__c and updated, not duplicated."""
    ids = fake_org.seed_records("Account", 1_000)
    rows = [{"External_Id__c": "GEN-0-0000999", "Name": "Last"}, {"External_Id__c": "X-1"}]
    results = await sf.upsert_records("Account", "External_Id__c", rows)
    assert (results[0].id, results[0].created) == (ids[999], False)
    assert not results[1].success  # X-1 is new, and has no Name
    assert results[1].errors[0].error_code == "REQUIRED_FIELD_MISSING"
    assert fake_org.get_record(ids[999])["Name"] == "Last"  # type: ignore[index]


async def test_delete_in_calls_of_200(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, log: CallLog
) -> None:
    """Deleting 401 ids takes three calls; deleting again fails per record."""
    ids = [r.id for r in await sf.create_records("Account", accounts(401))]
    assert all(ids)
    log.calls.clear()
    results = await sf.delete_records(ids)  # type: ignore[arg-type]
    assert all(r.success for r in results)
    assert [r.id for r in results] == ids
    assert log.calls == [("DELETE", 200)] * 3
    assert fake_org._records == {}
    again = await sf.delete_records(ids[:2])  # type: ignore[arg-type]
    assert [r.errors[0].error_code for r in again] == ["ENTITY_IS_DELETED"] * 2
    assert [r.id for r in again] == ids[:2]


@pytest.mark.parametrize("bad", ["001", "001xx000003DGb2AAG,003", 42, None, "001xx000003DGb2A!"])
async def test_malformed_ids_are_refused_before_sending(
    sf: AsyncSession, log: CallLog, bad: Any
) -> None:
    """An id that is not 15 or 18 letters and digits raises; nothing is sent."""
    with pytest.raises(ConfigurationError, match=r"ids\[1\]"):
        await sf.delete_records(["001xx000003DGb2AAG", bad])
    assert log.calls == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda sf: sf.create_records("Account;DROP", [{"Name": "x"}]), "sobject"),
        (lambda sf: sf.create_records("Account", [["Name", "x"]]), r"records\[0\]"),
        (lambda sf: sf.upsert_records("Account", "Ext/../x", [{"Ext": 1}]), "external_id_field"),
    ],
)
async def test_bad_arguments_are_refused_before_sending(
    sf: AsyncSession, log: CallLog, call: Any, match: str
) -> None:
    """Names that are not API names and records that are not mappings raise; nothing is sent."""
    with pytest.raises(ConfigurationError, match=match):
        await call(sf)
    assert log.calls == []


async def test_nothing_to_do_sends_nothing(sf: AsyncSession, log: CallLog) -> None:
    """Empty input: an empty result and no call."""
    assert await sf.create_records("Account", []) == []
    assert await sf.delete_records([]) == []
    assert log.calls == []


async def test_attributes_of_queried_records_are_replaced(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """Records read by a query can be sent back: their attributes are rewritten."""
    fake_org.add_record("Account", {"Name": "Acme"})
    rows = await sf.query_all("SELECT Id, Name FROM Account")
    rows[0]["Name"] = "Acme Corp"
    results = await sf.update_records("Account", rows)
    assert results[0].success
    assert fake_org.get_record(rows[0]["Id"])["Name"] == "Acme Corp"  # type: ignore[index]


async def test_calls_run_concurrently_up_to_the_connection_limit(
    fake_org: FakeSalesforceOrg, log: CallLog
) -> None:
    """2,000 records, connector limit 3: exactly 3 calls in flight at most, all 10 made."""
    release = asyncio.Event()
    fake_org.faults.api.push(*[Fault.hold(release) for _ in range(10)])
    connector = aiohttp.TCPConnector(limit=3)
    async with AsyncSession(
        fake_org.client_credentials_flow(), connector=connector, middlewares=(log,)
    ) as sf:
        await sf.get_token()
        assert connection_limit(sf.http) == 3
        load = asyncio.create_task(sf.create_records("Account", accounts(2_000)))
        async with asyncio.timeout(10):
            await fake_org.faults.api.wait_held(3)
        assert fake_org.stats.held == 3
        release.set()
        results = await load
    assert len(results) == 2_000
    assert len(log.calls) == 10
    assert log.most_in_flight == 3


def test_the_bound_follows_the_connector() -> None:
    """limit, limit_per_host or aiohttp's default of 100 when the connector has no limit."""

    async def bounds() -> list[int]:
        found = []
        for connector in (
            aiohttp.TCPConnector(limit=7),
            aiohttp.TCPConnector(limit=50, limit_per_host=4),
            aiohttp.TCPConnector(limit=0),
        ):
            async with aiohttp.ClientSession(connector=connector) as http:
                found.append(connection_limit(http))
        return found

    assert asyncio.run(bounds()) == [7, 4, 100]


async def test_a_failing_call_stops_the_load_and_keeps_what_finished(
    fake_org: FakeSalesforceOrg, log: CallLog
) -> None:
    """The third call hits the daily limit: no call starts after it, and exc.results says which."""
    connector = aiohttp.TCPConnector(limit=1)  # one call at a time: a deterministic order
    async with AsyncSession(
        fake_org.client_credentials_flow(), connector=connector, middlewares=(log,)
    ) as sf:
        await sf.get_token()
        fake_org.api_limit = 2
        rows = accounts(1_000)
        with pytest.raises(RequestLimitExceededError) as caught:
            await sf.create_records("Account", rows)
    exc = caught.value
    assert log.calls == [("POST", 200), ("POST", 200), ("POST", 403)]
    assert exc.results is not None
    assert len(exc.results) == 1_000
    assert all(r is not None and r.success for r in exc.results[:400])
    assert all(r is None for r in exc.results[400:])
    assert "400 of 1000 records" in "\n".join(exc.__notes__)


async def test_collections_keep_the_401_healing(fake_org: FakeSalesforceOrg) -> None:
    """Sessions end before a load: one refresh, and every call succeeds."""
    async with AsyncSession(fake_org.client_credentials_flow()) as sf:
        await sf.get_token()
        fake_org.expire_all_sessions()
        results = await sf.create_records("Account", accounts(600))
    assert all(r.success for r in results)
    assert fake_org.stats.token_requests_total == 2


async def test_a_locked_call_is_retried_with_a_policy(fake_org: FakeSalesforceOrg) -> None:
    """A whole call refused with UNABLE_TO_LOCK_ROW is sent again; records are created once."""
    policy = RetryPolicy(wait_initial_s=0.0, wait_max_s=0.0)
    async with AsyncSession(fake_org.client_credentials_flow(), api_retry=policy) as sf:
        await sf.get_token()
        fake_org.faults.api.push(Fault.unable_to_lock_row())
        results = await sf.upsert_records("Account", "Ext__c", accounts(10))
    assert all(r.success and r.created for r in results)
    assert len(fake_org._records) == 10
    assert fake_org.stats.api_requests == 2


def test_record_results_read_salesforce_shapes() -> None:
    """SaveResult, UpsertResult and DeleteResult shapes; anything else is refused."""
    assert RecordResult.from_json({"id": "001", "success": True, "errors": []}) == RecordResult(
        id="001", success=True
    )
    upsert = RecordResult.from_json({"id": "001", "success": True, "errors": [], "created": True})
    assert upsert.created is True
    failed = RecordResult.from_json(
        {"success": False, "errors": [{"statusCode": "X", "message": "m", "fields": ["A"]}]}
    )
    assert failed.errors == (RecordError(error_code="X", message="m", fields=("A",)),)
    for junk in (None, [], {"id": "001"}, {"success": "yes"}):
        with pytest.raises(ValueError, match="not a record result"):
            RecordResult.from_json(junk)


class Heard(logging.Handler):
    """A logging handler that sets an event when a record with ``text`` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        """Set the event on a matching record."""
        if self.text in record.getMessage():
            self.event.set()


async def test_after_a_failure_no_worker_takes_a_new_call(
    fake_org: FakeSalesforceOrg, log: CallLog
) -> None:
    """Two calls in flight, one fails: the other finishes, and none of the 8 left is sent."""
    release = asyncio.Event()
    heard = Heard("no new call starts")
    logger = logging.getLogger("sfoauth_async")
    logger.addHandler(heard)
    logger.setLevel(logging.INFO)
    connector = aiohttp.TCPConnector(limit=2)
    try:
        async with AsyncSession(
            fake_org.client_credentials_flow(), connector=connector, middlewares=(log,)
        ) as sf:
            await sf.get_token()
            fake_org.faults.api.push(Fault.hold(release), Fault.request_limit_exceeded())
            load = asyncio.create_task(sf.create_records("Account", accounts(2_000)))
            async with asyncio.timeout(10):
                await fake_org.faults.api.wait_held(1)
                await heard.event.wait()  # the failure is known before the held call ends
            release.set()
            with pytest.raises(RequestLimitExceededError) as caught:
                await load
    finally:
        logger.removeHandler(heard)
        logger.setLevel(logging.NOTSET)
    assert sorted(status for _, status in log.calls) == [200, 403]
    assert fake_org.stats.api_requests == 2
    assert caught.value.results is not None
    assert sum(r is not None for r in caught.value.results) == 200
