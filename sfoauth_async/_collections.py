"""sObject Collections: create, update, upsert and delete many records in calls of 200.

Each helper checks every input first (so a bad record fails before anything is sent),
splits the input into calls of 200 records (Salesforce's maximum per call), runs those calls
concurrently within a bound, and returns one `RecordResult` per input record, in input
order. Per-record failures (a validation rule, a missing required field, a duplicate) are
results, not exceptions. A call that fails as a whole raises its `APIError`: no new call
starts, the calls in flight finish, and the error carries the results gathered so far in
``results``. ``all_or_none`` is Salesforce's ``allOrNone``, and applies to each call of 200:
a failing record rolls back its own call, never the calls before it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from ._api_errors import APIError, APIUsageLimitError, api_error_from_response
from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._session import AsyncSession

__all__ = [
    "CHUNK_SIZE",
    "RecordError",
    "RecordResult",
    "connection_limit",
    "create_records",
    "delete_records",
    "update_records",
    "upsert_records",
]

log = logging.getLogger("sfoauth_async")

CHUNK_SIZE = 200
"""Records per sObject Collections call: Salesforce's maximum."""

DEFAULT_CONCURRENCY = 100
"""Calls in flight when the session's connector sets no limit (aiohttp's own default)."""

_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")

Fields = Mapping[str, Any]
SendChunk = Callable[[Sequence[Any]], Awaitable[list["RecordResult"]]]


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why Salesforce refused one record of a collection call.

    Attributes:
        error_code: Salesforce's ``statusCode``, e.g. ``"REQUIRED_FIELD_MISSING"``.
        message: Salesforce's message.
        fields: The fields it blames, if any.

    Example:
        ```python
        for error in result.errors:
            print(error.error_code, error.message, error.fields)
        ```
    """

    error_code: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What became of one input record of a collection call.

    Attributes:
        id: The record's id (new for a create), or ``None`` when Salesforce gave none.
        success: Whether the record was saved (or deleted).
        errors: Why not, when ``success`` is ``False``. With ``all_or_none=True``, records
            that were valid but rolled back carry ``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
        created: For an upsert, whether the record was created (``True``) or updated
            (``False``); ``None`` for the other operations.

    Example:
        ```python
        results = await sf.create_records("Account", [{"Name": "Acme"}, {"Name": ""}])
        failed = [(row, r.errors) for row, r in enumerate(results) if not r.success]
        ```
    """

    id: str | None
    success: bool
    errors: tuple[RecordError, ...] = ()
    created: bool | None = None

    @classmethod
    def from_json(cls, item: object) -> RecordResult:
        """Read one ``SaveResult`` / ``UpsertResult`` / ``DeleteResult`` of Salesforce's.

        Raises:
            ValueError: ``item`` has no boolean ``success``.

        Example:
            ```python
            result = RecordResult.from_json({"id": "001...", "success": True, "errors": []})
            ```
        """
        success = item.get("success") if isinstance(item, dict) else None
        if not isinstance(success, bool):
            raise ValueError(f"not a record result: {item!r:.200}")  # noqa: TRY004 - bad data
        assert isinstance(item, dict)
        record_id = item.get("id")
        if not isinstance(record_id, str) or not record_id:
            record_id = None
        created = item.get("created")
        if not isinstance(created, bool):
            created = None
        found = item.get("errors")
        if not found:
            # The common case of a load, kept cheap: 100,000 records make 100,000 results.
            return cls(record_id, success, (), created)
        errors = tuple(
            RecordError(
                error_code=str(error.get("statusCode") or error.get("errorCode") or ""),
                message=str(error.get("message") or ""),
                fields=tuple(str(name) for name in error.get("fields") or ()),
            )
            for error in found
            if isinstance(error, dict)
        )
        return cls(record_id, success, errors, created)


def connection_limit(http: aiohttp.ClientSession) -> int:
    """How many calls a session may have in flight: its connector's connection limit.

    The smaller of ``limit`` and ``limit_per_host`` when set; `DEFAULT_CONCURRENCY` when the
    connector has no limit at all.

    Example:
        ```python
        assert connection_limit(aiohttp.ClientSession()) == 100
        ```
    """
    connector = http.connector
    limits = [n for n in (connector.limit, connector.limit_per_host) if n] if connector else []
    return min(limits) if limits else DEFAULT_CONCURRENCY


def _api_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _API_NAME.fullmatch(value):
        raise ConfigurationError(
            f"{what} must be an API name such as 'Account' or 'External_Id__c', got {value!r}."
        )
    return value


def _fields(records: Iterable[Fields], *, required: str | None = None) -> list[Fields]:
    """The records as a list, each checked to be a mapping (holding ``required``)."""
    checked = list(records)
    for index, record in enumerate(checked):
        if type(record) is not dict and not isinstance(record, Mapping):
            raise ConfigurationError(
                f"records[{index}] must be a mapping of field names to values, got "
                f"{type(record).__name__}."
            )
        if required is not None and record.get(required) in (None, ""):
            raise ConfigurationError(
                f"records[{index}] has no {required}; every record of this call needs one. "
                f"Nothing was sent."
            )
    return checked


def _payload(sobject: str, records: Sequence[Fields], *, all_or_none: bool) -> dict[str, Any]:
    attributes = {"type": sobject}
    # Records read by a query carry their own "attributes" (with a URL): ours replace them.
    return {
        "allOrNone": all_or_none,
        "records": [{**r, "attributes": attributes} for r in records],
    }


async def _results(resp: aiohttp.ClientResponse, expected: int) -> list[RecordResult]:
    if resp.status >= 400:
        raise await api_error_from_response(resp)
    try:
        items = json.loads(await resp.read())
        results = [RecordResult.from_json(item) for item in items]
        if len(results) != expected:
            raise ValueError(f"{expected} results expected")  # noqa: TRY301
    except (ValueError, TypeError) as exc:
        raise APIError(
            resp.request_info,
            resp.history,
            status=resp.status,
            message=f"The sObject Collections answer is not a list of {expected} record "
            f"results, one per record sent.",
            headers=resp.headers,
        ) from exc
    return results


async def _in_chunks(
    items: Sequence[Any], send: SendChunk, max_concurrency: int
) -> list[RecordResult]:
    """Send ``items`` in chunks of `CHUNK_SIZE`, at most ``max_concurrency`` at a time."""
    results: list[RecordResult | None] = [None] * len(items)
    starts = iter(range(0, len(items), CHUNK_SIZE))
    failures: list[Exception] = []

    async def worker() -> None:
        # Workers share one iterator of chunk starts: each chunk is taken exactly once.
        for start in starts:
            if failures:
                return
            chunk = items[start : start + CHUNK_SIZE]
            try:
                results[start : start + len(chunk)] = await send(chunk)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others end
                failures.append(exc)
                if len(failures) == 1:
                    log.info(
                        "A call of %d records failed (%s); no new call starts, and the calls "
                        "in flight finish before the error is raised.",
                        len(chunk),
                        type(exc).__name__,
                    )
                return

    chunks = -(-len(items) // CHUNK_SIZE)
    await asyncio.gather(*(worker() for _ in range(min(max(max_concurrency, 1), chunks))))
    if failures:
        failure = failures[0]
        done = sum(result is not None for result in results)
        if isinstance(failure, APIError | APIUsageLimitError):
            failure.results = results
        failure.add_note(
            f"{done} of {len(items)} records were in calls that finished before or while this "
            f"error happened; the other calls were not sent."
        )
        raise failure
    return [result for result in results if result is not None]


async def _save(
    session: AsyncSession,
    method: str,
    path: str,
    sobject: str,
    checked: list[Fields],
    *,
    all_or_none: bool,
    max_concurrency: int,
) -> list[RecordResult]:
    """Send checked records to a collections resource, in calls of `CHUNK_SIZE`."""

    async def send(chunk: Sequence[Fields]) -> list[RecordResult]:
        payload = _payload(sobject, chunk, all_or_none=all_or_none)
        async with session.request(method, path, json=payload) as resp:
            return await _results(resp, len(chunk))

    return await _in_chunks(checked, send, max_concurrency)


async def create_records(
    session: AsyncSession,
    sobject: str,
    records: Iterable[Fields],
    *,
    all_or_none: bool = False,
    max_concurrency: int,
) -> list[RecordResult]:
    """``POST composite/sobjects`` in calls of 200; see `AsyncSession.create_records`.

    Example:
        ```python
        results = await create_records(sf, "Account", rows, max_concurrency=10)
        ```
    """
    sobject = _api_name(sobject, "sobject")
    return await _save(
        session,
        "POST",
        "composite/sobjects",
        sobject,
        _fields(records),
        all_or_none=all_or_none,
        max_concurrency=max_concurrency,
    )


async def update_records(
    session: AsyncSession,
    sobject: str,
    records: Iterable[Fields],
    *,
    all_or_none: bool = False,
    max_concurrency: int,
) -> list[RecordResult]:
    """``PATCH composite/sobjects`` in calls of 200; every record needs its ``Id``.

    Example:
        ```python
        results = await update_records(sf, "Account", rows, max_concurrency=10)
        ```
    """
    sobject = _api_name(sobject, "sobject")
    return await _save(
        session,
        "PATCH",
        "composite/sobjects",
        sobject,
        _fields(records, required="Id"),
        all_or_none=all_or_none,
        max_concurrency=max_concurrency,
    )


async def upsert_records(
    session: AsyncSession,
    sobject: str,
    external_id_field: str,
    records: Iterable[Fields],
    *,
    all_or_none: bool = False,
    max_concurrency: int,
) -> list[RecordResult]:
    """``PATCH composite/sobjects/{sobject}/{external_id_field}`` in calls of 200.

    Example:
        ```python
        results = await upsert_records(sf, "Account", "Ext__c", rows, max_concurrency=10)
        ```
    """
    sobject = _api_name(sobject, "sobject")
    external_id_field = _api_name(external_id_field, "external_id_field")
    return await _save(
        session,
        "PATCH",
        f"composite/sobjects/{sobject}/{external_id_field}",
        sobject,
        _fields(records, required=external_id_field),
        all_or_none=all_or_none,
        max_concurrency=max_concurrency,
    )


async def delete_records(
    session: AsyncSession,
    ids: Iterable[str],
    *,
    all_or_none: bool = False,
    max_concurrency: int,
) -> list[RecordResult]:
    """``DELETE composite/sobjects?ids=...`` in calls of 200 ids.

    Example:
        ```python
        results = await delete_records(sf, ["001...", "003..."], max_concurrency=10)
        ```
    """
    checked: list[object] = list(ids)
    for index, record_id in enumerate(checked):
        if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
            raise ConfigurationError(
                f"ids[{index}] must be a 15- or 18-character Salesforce id, got {record_id!r}. "
                f"Nothing was sent."
            )

    async def send(chunk: Sequence[str]) -> list[RecordResult]:
        params = {"ids": ",".join(chunk), "allOrNone": "true" if all_or_none else "false"}
        async with session.delete("composite/sobjects", params=params) as resp:
            return await _results(resp, len(chunk))

    return await _in_chunks(checked, send, max_concurrency)
