"""`Query`: the records of a SOQL query, page after page, one page in memory at a time.

Salesforce answers a query with its first batch of records (2,000 by default) and, while
more remain, a ``nextRecordsUrl`` that holds a server-side cursor (a query locator). `Query`
follows those URLs as the caller iterates, so an extract of millions of records needs the
memory of one page. Every page goes through the session's own request path, with its token
refresh, 401 healing, usage tracking and API retries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import ClientResponse

from ._api_errors import APIError, api_error_from_response
from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._session import AsyncSession

__all__ = ["MAX_BATCH_SIZE", "MIN_BATCH_SIZE", "Query", "check_batch_size"]

MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000

Record = dict[str, Any]


def check_batch_size(batch_size: object) -> None:
    """Refuse a ``batch_size`` outside Salesforce's 200 to 2,000.

    Example:
        ```python
        check_batch_size(500)
        ```
    """
    if batch_size is None:
        return
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not MIN_BATCH_SIZE <= batch_size <= MAX_BATCH_SIZE
    ):
        raise ConfigurationError(
            f"batch_size must be a whole number of records from {MIN_BATCH_SIZE} to "
            f"{MAX_BATCH_SIZE} (Salesforce's Sforce-Query-Options range), got {batch_size!r}; "
            f"or None for Salesforce's default of {MAX_BATCH_SIZE}."
        )


class Query:
    """The records of one SOQL query, as an async iterator across all its pages.

    Made by `AsyncSession.query`; nothing is sent until iteration starts. Each page is
    fetched when the previous one is used up, and dropped when the next arrives. A `Query`
    can be iterated once; after an error, iterating it again resumes with the page that
    failed.

    Attributes:
        soql: The query.
        include_deleted: Whether it runs as ``queryAll`` (deleted and archived records too).
        batch_size: The requested page size, or ``None`` for Salesforce's default (2,000).

    Raises:
        APIError: On iteration, when Salesforce refuses a page (``MalformedQueryError``,
            ``InvalidFieldError``, ``RequestLimitExceededError``, ...).

    Example:
        ```python
        accounts = sf.query("SELECT Id, Name FROM Account")
        async for account in accounts:
            print(f"{account['Name']} (of {accounts.total_size})")
        ```
    """

    __slots__ = (
        "_next_url",
        "_page",
        "_session",
        "_started",
        "_total_size",
        "batch_size",
        "include_deleted",
        "soql",
    )

    def __init__(
        self,
        session: AsyncSession,
        soql: str,
        *,
        include_deleted: bool = False,
        batch_size: int | None = None,
    ) -> None:
        given: object = soql  # checked at run time: callers may not be type-checked
        if not isinstance(given, str) or not given.strip():
            raise ConfigurationError(f"soql must be a SOQL statement, got {soql!r}.")
        check_batch_size(batch_size)
        self._session = session
        self.soql = soql
        self.include_deleted = include_deleted
        self.batch_size = batch_size
        self._total_size: int | None = None
        self._next_url: str | None = None
        self._page: Iterator[Record] = iter(())
        self._started = False

    @property
    def total_size(self) -> int | None:
        """Salesforce's ``totalSize``: known once the first page arrived, ``None`` before.

        Example:
            ```python
            async for record in accounts:
                bar.total = accounts.total_size
                bar.update()
            ```
        """
        return self._total_size

    @property
    def done(self) -> bool:
        """Whether every page has been fetched (the last one may still be iterating).

        Example:
            ```python
            assert accounts.done
            ```
        """
        return self._started and self._next_url is None

    def __aiter__(self) -> AsyncIterator[Record]:
        return self

    async def __anext__(self) -> Record:
        record = next(self._page, None)
        if record is not None:
            return record
        # A used-up list iterator has already let go of its page, so at most one page is
        # held while the next one is fetched and parsed.
        while self._next_url is not None or not self._started:
            self._page = iter(await self._fetch())
            record = next(self._page, None)
            if record is not None:
                return record
        raise StopAsyncIteration

    async def _fetch(self) -> list[Record]:
        headers = (
            {"Sforce-Query-Options": f"batchSize={self.batch_size}"}
            if self.batch_size is not None
            else None
        )
        if self._next_url is not None:
            request = self._session.get(self._next_url, headers=headers)
        else:
            resource = "queryAll/" if self.include_deleted else "query/"
            request = self._session.get(resource, params={"q": self.soql}, headers=headers)
        async with request as resp:
            if resp.status >= 400:
                raise await api_error_from_response(resp)
            body = await resp.read()
            try:
                page = json.loads(body)
                records = page["records"]
                total_size = int(page["totalSize"])
                next_url = None if page.get("done", True) else str(page["nextRecordsUrl"])
            except (ValueError, TypeError, KeyError) as exc:
                raise _not_a_page(resp) from exc
            if not isinstance(records, list):
                raise _not_a_page(resp)
        # Only a page that arrived moves the query on: after an error, iterating again asks
        # for the same page.
        self._started = True
        self._total_size = total_size
        self._next_url = next_url
        return records

    def __repr__(self) -> str:
        state = (
            "not started"
            if not self._started
            else f"{'done' if self._next_url is None else 'paging'}, total_size={self._total_size}"
        )
        return f"<Query {self.soql[:60]!r} {state}>"


def _not_a_page(resp: ClientResponse) -> APIError:
    return APIError(
        resp.request_info,
        resp.history,
        status=resp.status,
        message="The query answer is not a page of records (with records, totalSize and, "
        "unless done, nextRecordsUrl).",
        headers=resp.headers,
    )
