"""sf.query and sf.query_all against the fake org: paging, queryAll, batch size, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sfoauth_async import (
    APIError,
    AsyncSession,
    ConfigurationError,
    InvalidFieldError,
    MalformedQueryError,
    Query,
    RequestLimitExceededError,
    RetryPolicy,
    ServerUnavailableError,
)
from sfoauth_async.testing import FakeSalesforceOrg, Fault


class PageLog:
    """A client middleware that records each query request: path and Sforce-Query-Options."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Record, then pass the request on."""
        self.requests.append((req.url.path, req.headers.get("Sforce-Query-Options")))
        return await handler(req)


@pytest.fixture
def pages() -> PageLog:
    """A fresh request log."""
    return PageLog()


@pytest.fixture
async def sf(fake_org: FakeSalesforceOrg, pages: PageLog) -> AsyncIterator[AsyncSession]:
    """A session whose requests are logged by ``pages``."""
    async with AsyncSession(fake_org.client_credentials_flow(), middlewares=(pages,)) as session:
        yield session


async def test_query_follows_every_page(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, pages: PageLog
) -> None:
    """5,001 records come in three pages of 2,000, 2,000 and 1, each record once, in order."""
    ids = fake_org.seed_records("Account", 5_001)
    seen = [record["Id"] async for record in sf.query("SELECT Id, Name FROM Account")]
    assert seen == list(ids)
    assert len(pages.requests) == 3
    assert pages.requests[0][0] == "/services/data/v67.0/query/"
    assert pages.requests[1][0].startswith("/services/data/v67.0/query/01g")
    assert pages.requests[1][0].endswith("-2000")
    assert pages.requests[2][0].endswith("-4000")
    assert fake_org.stats.api_requests == 3


async def test_total_size_is_known_after_the_first_page(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """total_size is None before iteration, and the full count once the first record is out."""
    fake_org.seed_records("Contact", 4_500)
    contacts = sf.query("SELECT Id FROM Contact")
    assert isinstance(contacts, Query)
    assert contacts.total_size is None
    assert not contacts.done
    assert fake_org.stats.api_requests == 0  # nothing is sent before iterating
    first = await anext(contacts)
    assert first["attributes"]["type"] == "Contact"
    assert contacts.total_size == 4_500
    assert fake_org.stats.api_requests == 1
    rest = [record async for record in contacts]
    assert len(rest) == 4_499
    assert contacts.done
    assert "done, total_size=4500" in repr(contacts)


async def test_batch_size_is_sent_and_honoured(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, pages: PageLog
) -> None:
    """batch_size=500 sends Sforce-Query-Options on every page and gets pages of 500."""
    fake_org.seed_records("Account", 1_200)
    records = await sf.query_all("SELECT Id FROM Account", batch_size=500)
    assert len(records) == 1_200
    assert [options for _, options in pages.requests] == ["batchSize=500"] * 3


@pytest.mark.parametrize("batch_size", [199, 2001, 0, -1, 500.0, "500", True])
async def test_bad_batch_sizes_fail_before_sending(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, batch_size: Any
) -> None:
    """A batch size outside 200-2,000 (or not an int) raises at once; nothing is sent."""
    with pytest.raises(ConfigurationError, match="batch_size"):
        sf.query("SELECT Id FROM Account", batch_size=batch_size)
    with pytest.raises(ConfigurationError, match="batch_size"):
        await sf.query_all("SELECT Id FROM Account", batch_size=batch_size)
    assert fake_org.stats.api_requests == 0


@pytest.mark.parametrize("batch_size", [200, 2000])
async def test_the_batch_size_bounds_are_allowed(sf: AsyncSession, batch_size: int) -> None:
    """200 and 2,000 are both valid."""
    assert await sf.query_all("SELECT Id FROM Account", batch_size=batch_size) == []


async def test_include_deleted_uses_query_all(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, pages: PageLog
) -> None:
    """include_deleted=True goes to queryAll and also returns recycle-bin records."""
    kept = fake_org.add_record("Account", {"Name": "Kept"})
    gone = fake_org.add_record("Account", {"Name": "Gone"})
    async with sf.delete(f"sobjects/Account/{gone}") as resp:
        assert resp.status == 204
    live = await sf.query_all("SELECT Id, IsDeleted FROM Account")
    everything = await sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in live] == [(kept, False)]
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [(kept, False), (gone, True)]
    assert pages.requests[-1][0] == "/services/data/v67.0/queryAll/"


async def test_query_all_pages_with_query_all_locators(
    fake_org: FakeSalesforceOrg, sf: AsyncSession, pages: PageLog
) -> None:
    """Pages of a queryAll follow queryAll locators."""
    fake_org.seed_records("Account", 300)
    records = await sf.query_all("SELECT Id FROM Account", include_deleted=True, batch_size=200)
    assert len(records) == 300
    assert pages.requests[1][0].startswith("/services/data/v67.0/queryAll/01g")


@pytest.mark.parametrize("raise_for_status", [False, True])
@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        (Fault.json(400, [{"errorCode": "MALFORMED_QUERY", "message": "bad"}]),
         MalformedQueryError),
        (Fault.json(400, [{"errorCode": "INVALID_FIELD", "message": "No such column"}]),
         InvalidFieldError),
        (Fault.request_limit_exceeded(), RequestLimitExceededError),
    ],
)  # fmt: skip
async def test_refused_pages_raise_api_errors(
    fake_org: FakeSalesforceOrg, fault: Fault, cls: type, raise_for_status: bool
) -> None:
    """A refused page raises its APIError class whatever raise_for_status says."""
    fake_org.faults.api.push(fault)
    async with AsyncSession(
        fake_org.client_credentials_flow(), raise_for_status=raise_for_status
    ) as sf:
        with pytest.raises(cls):
            await sf.query_all("SELECT Id FROM Account")


async def test_a_real_malformed_query(sf: AsyncSession) -> None:
    """The org's own MALFORMED_QUERY answer raises MalformedQueryError."""
    with pytest.raises(MalformedQueryError) as caught:
        await sf.query_all("DELETE FROM Account")
    assert caught.value.status == 400


async def test_iteration_resumes_with_the_page_that_failed(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """After an error on page 2, iterating again fetches page 2: no record lost or repeated."""
    ids = fake_org.seed_records("Account", 2_500)
    accounts = sf.query("SELECT Id FROM Account")
    seen = [(await anext(accounts))["Id"] for _ in range(2_000)]
    fake_org.faults.api.push(Fault.server_unavailable())
    with pytest.raises(ServerUnavailableError):
        await anext(accounts)
    seen += [record["Id"] async for record in accounts]
    assert seen == list(ids)


async def test_a_session_that_expires_mid_extract_heals_once(
    fake_org: FakeSalesforceOrg, sf: AsyncSession
) -> None:
    """Sessions end between two pages: one refresh, one replayed page, every record."""
    fake_org.seed_records("Account", 4_000)
    count = 0
    async for _ in sf.query("SELECT Id FROM Account"):
        count += 1
        if count == 1_000:
            fake_org.expire_all_sessions()
    assert count == 4_000
    assert fake_org.stats.token_requests_total == 2
    assert fake_org.stats.unauthorized == 1


async def test_pages_are_retried_with_a_policy(fake_org: FakeSalesforceOrg) -> None:
    """Query pages are GETs: with api_retry, an outage on a page is ridden out."""
    fake_org.seed_records("Account", 3_000)
    policy = RetryPolicy(wait_initial_s=0.0, wait_max_s=0.0)
    async with AsyncSession(fake_org.client_credentials_flow(), api_retry=policy) as sf:
        accounts = sf.query("SELECT Id FROM Account")
        first = await anext(accounts)
        fake_org.faults.api.push(Fault.server_unavailable(), Fault.drop())
        rest = [record async for record in accounts]
    assert len(rest) + 1 == 3_000
    assert first["Id"] not in {r["Id"] for r in rest}
    assert fake_org.stats.api_requests == 4


async def test_soql_must_be_text(sf: AsyncSession) -> None:
    """An empty or non-string query is refused at once."""
    for soql in ("", "   ", None):
        with pytest.raises(ConfigurationError, match="soql"):
            sf.query(soql)  # type: ignore[arg-type]


async def test_a_page_that_is_not_a_page(fake_org: FakeSalesforceOrg, sf: AsyncSession) -> None:
    """A 200 answer without records raises APIError instead of ending quietly."""
    fake_org.faults.api.push(Fault.json(200, {"totalSize": 3}))
    with pytest.raises(APIError, match="not a page of records") as caught:
        await sf.query_all("SELECT Id FROM Account")
    assert caught.value.status == 200
