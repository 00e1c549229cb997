"""`APIError` and its subclasses: Salesforce's REST error answers, typed.

```text
SFOAuthError
├── APIError (aiohttp.ClientResponseError)   the REST API answered with an error status
│   ├── RequestLimitExceededError            REQUEST_LIMIT_EXCEEDED: the org's daily API limit
│   │   └── ConcurrentRequestLimitError      ... the concurrent long-running request limit
│   ├── UnableToLockRowError                 UNABLE_TO_LOCK_ROW: another transaction holds it
│   ├── ServerUnavailableError               SERVER_UNAVAILABLE, or HTTP 502/503/504
│   ├── InvalidSessionIdError                INVALID_SESSION_ID still, after one refresh
│   ├── MalformedQueryError                  MALFORMED_QUERY: the SOQL does not parse
│   ├── InvalidFieldError                    INVALID_FIELD: no such field, or no access to it
│   ├── NotFoundError                        NOT_FOUND, or HTTP 404
│   ├── EntityIsDeletedError                 ENTITY_IS_DELETED: the record is in the recycle bin
│   └── DuplicateValueError                  DUPLICATE_VALUE: a unique field already has it
└── APIUsageLimitError                       api_usage_limit reached; nothing was sent
```

Salesforce answers errors with a JSON array, ``[{"message": ..., "errorCode": ...,
"fields": [...]}]``; `api_error_from_response` reads it and picks the class of the first
error's code. An `APIError` is also an `aiohttp.ClientResponseError`, so code written for
aiohttp's ``raise_for_status`` keeps working. Neither its message nor its repr carries the
bearer token: the request headers it keeps have ``Authorization`` removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import SFOAuthError

if TYPE_CHECKING:
    from ._collections import RecordResult
    from ._usage import APIUsage

__all__ = [
    "APIError",
    "APIUsageLimitError",
    "ConcurrentRequestLimitError",
    "DuplicateValueError",
    "EntityIsDeletedError",
    "InvalidFieldError",
    "InvalidSessionIdError",
    "MalformedQueryError",
    "NotFoundError",
    "RequestLimitExceededError",
    "ServerUnavailableError",
    "UnableToLockRowError",
    "api_error_from_response",
    "error_list",
]


class APIError(aiohttp.ClientResponseError, SFOAuthError):
    """The REST API answered with an error status (4xx or 5xx).

    Raised by the query and sObject Collections helpers, and by every request of an
    ``AsyncSession(..., raise_for_status=True)``, after any 401 healing and API retries.
    The subclass says which error Salesforce reported; ``str()`` gives its code and message.

    Attributes:
        status: The HTTP status.
        error_code: The first error's ``errorCode`` (e.g. ``"MALFORMED_QUERY"``), or
            ``None`` when the body had none (an HTML maintenance page, ...).
        errors: Salesforce's whole error list, as sent (dicts with ``message``,
            ``errorCode`` and sometimes ``fields``).
        fields: Every field any error named, in order, without repeats.
        message: The first error's message (or the HTTP reason when there is none).
        request_info: Method, URL and request headers, with ``Authorization`` removed.
        headers: The response headers.
        results: Set by the sObject Collections helpers when a call of a load failed: one
            entry per input record, the `RecordResult` of records whose call had finished
            and ``None`` for the others. ``None`` on errors raised elsewhere.

    Example:
        ```python
        try:
            rows = await sf.query_all("SELECT Id, Nmae FROM Account")
        except APIError as exc:
            print(exc.status, exc.error_code, exc.fields)  # 400 INVALID_FIELD ...
        ```
    """

    transient: ClassVar[bool] = False
    advice: ClassVar[str] = ""
    """What to do about this error, appended to the message."""

    def __init__(
        self,
        request_info: aiohttp.RequestInfo,
        history: tuple[aiohttp.ClientResponse, ...] = (),
        *,
        status: int,
        errors: Sequence[dict[str, Any]] = (),
        message: str = "",
        headers: CIMultiDictProxy[str] | None = None,
    ) -> None:
        self.errors: list[dict[str, Any]] = list(errors)
        first = self.errors[0] if self.errors else {}
        code = first.get("errorCode")
        self.error_code: str | None = code if isinstance(code, str) and code else None
        said = first.get("message")
        fields: dict[str, None] = {}
        for error in self.errors:
            named = error.get("fields")
            if isinstance(named, list):
                fields.update((str(name), None) for name in named)
        self.fields: tuple[str, ...] = tuple(fields)
        self.results: list[RecordResult | None] | None = None
        super().__init__(
            _without_authorization(request_info),
            history,
            status=status,
            message=said if isinstance(said, str) and said else message,
            headers=headers,
        )

    def __str__(self) -> str:
        what = f"{self.error_code}: {self.message}" if self.error_code else self.message
        info = self.request_info
        where = f"HTTP {self.status} from {info.method} {info.real_url.with_query(None)}"
        advice = f" {self.advice}" if self.advice else ""
        return f"{what} ({where}).{advice}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_code={self.error_code!r}, "
            f"message={self.message!r})"
        )


class RequestLimitExceededError(APIError):
    """``REQUEST_LIMIT_EXCEEDED``: the org has used up its daily API allocation.

    Salesforce answers HTTP 403 ``TotalRequests Limit exceeded.`` until the rolling 24 hours
    let enough calls age out. Never retried: no wait within a job helps, and retries would
    only lengthen the outage for every integration of the org. ``transient`` is ``False``
    for the same reason. Set ``api_usage_limit=`` on the session to stop short of it.

    Example:
        ```python
        except RequestLimitExceededError:
            log.error("The org's API allocation is exhausted; run the job later.")
        ```
    """

    advice = (
        "The org's daily API allocation (a rolling 24 hours) is used up; calls succeed again "
        "as older ones age out. Stop early next time with AsyncSession(api_usage_limit=0.9)."
    )


class ConcurrentRequestLimitError(RequestLimitExceededError):
    """``REQUEST_LIMIT_EXCEEDED`` for too many concurrent long-running requests.

    The message names ``ConcurrentRequests`` or ``ConcurrentPerOrgLongTxn``: more requests
    lasting 20 s or more were running than the org allows (25 for production orgs). Transient:
    an ``api_retry`` policy retries it, for any method, since Salesforce refused the call.

    Example:
        ```python
        except ConcurrentRequestLimitError:
            await asyncio.sleep(5)  # or set api_retry= and let the session wait
        ```
    """

    transient = True
    advice = (
        "Too many long-running requests (20 s or more) are running at once in the org; run "
        "fewer at a time, or let AsyncSession(api_retry=RetryPolicy()) retry."
    )


class UnableToLockRowError(APIError):
    """``UNABLE_TO_LOCK_ROW``: another transaction holds a lock on a record this call needs.

    Transient: an ``api_retry`` policy retries it, for any method, since the call was
    rolled back.

    Example:
        ```python
        except UnableToLockRowError:
            ...  # retry later, or load parent records in fewer concurrent calls
        ```
    """

    transient = True
    advice = (
        "Another transaction locked the record; retry (AsyncSession(api_retry=RetryPolicy())), "
        "and avoid updating children of one parent from concurrent calls."
    )


class ServerUnavailableError(APIError):
    """``SERVER_UNAVAILABLE``, or HTTP 502, 503 or 504: Salesforce could not serve the call.

    Transient: an ``api_retry`` policy retries it for idempotent methods (GET, HEAD,
    OPTIONS, PUT, DELETE), honouring ``Retry-After``.

    Example:
        ```python
        except ServerUnavailableError as exc:
            print("Salesforce is unavailable:", exc.status)
        ```
    """

    transient = True
    advice = "Salesforce is unavailable or overloaded; retry later (see status.salesforce.com)."


class InvalidSessionIdError(APIError):
    """``INVALID_SESSION_ID`` even after the session refreshed its token once.

    The session heals an expired token once per request; this error means the new token was
    refused too, or the message says a new token cannot help ("This session is not valid for
    use with the REST API": the app lacks the ``api`` scope, or needs a high-assurance
    session).

    Example:
        ```python
        except InvalidSessionIdError as exc:
            print("Check the connected app's OAuth scopes:", exc.message)
        ```
    """

    advice = (
        "A fresh token was refused too: check that the connected app has the 'api' scope and "
        "that the user's profile allows API access."
    )


class MalformedQueryError(APIError):
    """``MALFORMED_QUERY``: the SOQL does not parse.

    Example:
        ```python
        except MalformedQueryError as exc:
            print("Fix the SOQL:", exc.message)
        ```
    """

    advice = "Fix the SOQL statement; the message points at the unexpected token."


class InvalidFieldError(APIError):
    """``INVALID_FIELD``: a field does not exist, or the user cannot see it.

    Example:
        ```python
        except InvalidFieldError as exc:
            print("Unknown or hidden field:", exc.message)
        ```
    """

    advice = (
        "Check the field's API name (custom fields end in __c) and the user's field-level security."
    )


class NotFoundError(APIError):
    """``NOT_FOUND``, or HTTP 404: no such resource or record.

    Example:
        ```python
        except NotFoundError:
            print("No such record")
        ```
    """

    advice = "Check the record id, the sObject name and the URL path."


class EntityIsDeletedError(APIError):
    """``ENTITY_IS_DELETED``: the record is in the recycle bin.

    Example:
        ```python
        except EntityIsDeletedError:
            print("Already deleted")
        ```
    """

    advice = "The record is deleted; undelete it first, or skip it."


class DuplicateValueError(APIError):
    """``DUPLICATE_VALUE``: a unique field (often an external id) already has this value.

    Example:
        ```python
        except DuplicateValueError as exc:
            print("Duplicate in", exc.fields)
        ```
    """

    advice = "A unique field already holds this value; upsert on it instead of inserting."


class APIUsageLimitError(SFOAuthError):
    """The session's ``api_usage_limit`` is reached: the call was refused before it was sent.

    ``AsyncSession(flow, api_usage_limit=0.9)`` stops sending once the latest
    ``Sforce-Limit-Info`` shows 90 % of the org's daily API allocation used, so that a
    runaway job leaves the rest to the org's other integrations. Not transient: usage is
    counted over a rolling 24 hours, so no retry within a job can pass.

    Attributes:
        usage: The usage the decision was made on.
        limit: The session's ``api_usage_limit``.

    Example:
        ```python
        except APIUsageLimitError as exc:
            log.warning("Stopped at %.0f%% of the daily API limit", exc.usage.fraction * 100)
        ```
    """

    def __init__(self, message: str, *, usage: APIUsage, limit: float) -> None:
        super().__init__(message)
        self.usage = usage
        self.limit = limit
        self.results: list[RecordResult | None] | None = None


_CLASSES: dict[str, type[APIError]] = {
    "REQUEST_LIMIT_EXCEEDED": RequestLimitExceededError,
    "UNABLE_TO_LOCK_ROW": UnableToLockRowError,
    "SERVER_UNAVAILABLE": ServerUnavailableError,
    "INVALID_SESSION_ID": InvalidSessionIdError,
    "MALFORMED_QUERY": MalformedQueryError,
    "INVALID_FIELD": InvalidFieldError,
    "NOT_FOUND": NotFoundError,
    "ENTITY_IS_DELETED": EntityIsDeletedError,
    "DUPLICATE_VALUE": DuplicateValueError,
}
_CLASSES_BY_STATUS: dict[int, type[APIError]] = {
    404: NotFoundError,
    502: ServerUnavailableError,
    503: ServerUnavailableError,
    504: ServerUnavailableError,
}


def is_concurrency_limit(message: str) -> bool:
    """Whether a ``REQUEST_LIMIT_EXCEEDED`` message is about concurrent requests.

    Salesforce sends the same code for the daily allocation (``TotalRequests Limit
    exceeded.``) and for concurrent long-running requests (``ConcurrentRequests ...`` or
    ``ConcurrentPerOrgLongTxn ...``); only the message tells them apart.

    Example:
        ```python
        assert is_concurrency_limit("ConcurrentPerOrgLongTxn Limit exceeded")
        ```
    """
    return "concurrent" in message.lower()


def error_list(body: bytes) -> list[dict[str, Any]]:
    """Salesforce's error list from a response body; empty when the body holds none.

    REST errors are a JSON array of ``{"message", "errorCode", "fields"}``; a single object
    of that shape is taken as a one-item list, and an OAuth-style ``{"error",
    "error_description"}`` is mapped onto it.

    Example:
        ```python
        body = b'[{"message": "Bad field", "errorCode": "INVALID_FIELD"}]'
        assert error_list(body)[0]["errorCode"] == "INVALID_FIELD"
        ```
    """
    try:
        parsed = json.loads(body)
    except ValueError:  # HTML maintenance pages, XML, empty bodies
        return []
    if isinstance(parsed, dict):
        if "errorCode" in parsed:
            parsed = [parsed]
        elif isinstance(parsed.get("error"), str):
            parsed = [{"errorCode": parsed["error"], "message": parsed.get("error_description")}]
    if not isinstance(parsed, list):
        return []
    return [error for error in parsed if isinstance(error, dict)]


def error_class(status: int, errors: Sequence[dict[str, Any]]) -> type[APIError]:
    """The `APIError` subclass for an answer's status and error list.

    Example:
        ```python
        assert error_class(400, [{"errorCode": "MALFORMED_QUERY"}]) is MalformedQueryError
        ```
    """
    first = errors[0] if errors else {}
    code = first.get("errorCode")
    cls = _CLASSES.get(code) if isinstance(code, str) else None
    if cls is RequestLimitExceededError and is_concurrency_limit(str(first.get("message", ""))):
        return ConcurrentRequestLimitError
    return cls or _CLASSES_BY_STATUS.get(status, APIError)


async def api_error_from_response(resp: aiohttp.ClientResponse) -> APIError:
    """Read an error response and build its typed `APIError` (the response is not released).

    Example:
        ```python
        if resp.status >= 400:
            exc = await api_error_from_response(resp)
            resp.release()
            raise exc
        ```
    """
    errors = error_list(await resp.read())
    cls = error_class(resp.status, errors)
    return cls(
        resp.request_info,
        resp.history,
        status=resp.status,
        errors=errors,
        message=resp.reason or f"HTTP {resp.status}",
        headers=resp.headers,
    )


def _without_authorization(info: aiohttp.RequestInfo) -> aiohttp.RequestInfo:
    """``info`` without its ``Authorization`` header, so the error never holds the token."""
    if hdrs.AUTHORIZATION not in info.headers:
        return info
    headers = CIMultiDict(info.headers)
    del headers[hdrs.AUTHORIZATION]
    return aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)
