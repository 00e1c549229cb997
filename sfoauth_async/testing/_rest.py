"""REST and Bulk endpoints of the fake org (My Domain site only).

Enough of the REST API for a token client and an ETL job: the versions list, the resource
map, limits, a minimal SOQL query with real paging (``nextRecordsUrl``, query locators,
``Sforce-Query-Options: batchSize``) and ``queryAll``, describe, sObject CRUD, sObject
Collections (``_collections.py``), and Bulk API 1.0 job creation, all behind the same
session check as Salesforce's, with its exact 401 bodies and the ``Sforce-Limit-Info`` header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._collections import CollectionsHandler
from ._http import json_response
from ._model import AccessTokenRecord, new_id
from ._records import QueryCursor

if TYPE_CHECKING:
    from ._org import FakeSalesforceOrg

__all__ = [
    "API_VERSIONS",
    "DEFAULT_BATCH_SIZE",
    "KEY_PREFIXES",
    "LATEST_VERSION",
    "MIN_BATCH_SIZE",
    "RestSite",
]

API_VERSIONS = tuple(f"{major}.0" for major in range(31, 68))
LATEST_VERSION = API_VERSIONS[-1]

KEY_PREFIXES = {
    "account": "001",
    "contact": "003",
    "opportunity": "006",
    "lead": "00Q",
    "case": "500",
    "user": "005",
    "task": "00T",
    "event": "00U",
    "campaign": "701",
    "contract": "800",
    "order": "801",
    "product2": "01t",
}
_STANDARD_OBJECTS = (
    "Account",
    "Case",
    "Campaign",
    "Contact",
    "Contract",
    "Event",
    "Lead",
    "Opportunity",
    "Order",
    "Product2",
    "Task",
    "User",
)
_BULK_NS = "http://www.force.com/2009/06/asyncapi/dataload"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_SESSION_INVALID = "Session expired or invalid"
_NOT_FOR_REST = "This session is not valid for use with the REST API"
_API_SCOPES = frozenset({"api", "full"})
_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<sobject>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:.*?\bLIMIT\s+(?P<limit>\d+))?",
    re.IGNORECASE | re.DOTALL,
)
_SOBJECT_PATH = re.compile(r"^/sobjects/(?P<sobject>[A-Za-z_][A-Za-z0-9_]*)(?:/(?P<id>[^/]+))?$")
_MORE_PATH = re.compile(
    r"^/(?P<resource>query|queryAll)/(?P<locator>01g[A-Za-z0-9]+)-(?P<offset>\d+)$"
)
_BATCH_SIZE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
DEFAULT_BATCH_SIZE = 2000
MIN_BATCH_SIZE = 200


def _release(version: str) -> str:
    """The release name of an API version: v31.0 is Summer '14, v67.0 is Summer '26."""
    # Three releases a year; v32.0 opened the Winter '15 cycle.
    offset = int(float(version)) - 32
    season = ("Winter", "Spring", "Summer")[offset % 3]
    return f"{season} '{15 + offset // 3:02d}"


def _errors(status: int, error_code: str, message: str) -> web.Response:
    return json_response([{"message": message, "errorCode": error_code}], status=status)


def _not_found() -> web.Response:
    return _errors(404, "NOT_FOUND", "The requested resource does not exist")


class RestSite:
    """The REST and Bulk handlers of the My Domain site."""

    def __init__(self, org: FakeSalesforceOrg) -> None:
        self.org = org
        self.collections = CollectionsHandler(org)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register every REST and Bulk route on ``router``."""
        router.add_route("GET", "/services/data", self.versions)
        router.add_route("GET", "/services/data/", self.versions)
        router.add_route("*", r"/services/data/{version:v[0-9]+\.[0-9]+}{tail:.*}", self.data)
        router.add_route("*", "/services/async/{version}/job", self.bulk_job)

    # -- the session check ----------------------------------------------------------------------

    def _unauthorized(self, message: str) -> web.Response:
        self.org.stats.unauthorized += 1
        self.org.stats._changed()
        # No WWW-Authenticate: captured Salesforce 401s carry none (jsforce PR #1301).
        return _errors(401, "INVALID_SESSION_ID", message)

    def _session(self, token: str) -> AccessTokenRecord | None:
        return self.org._live_access_token(token) if token else None

    def _limit_info(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.org.api_usage}/{self.org.api_limit}"}

    # -- REST -------------------------------------------------------------------------------------

    async def versions(self, request: web.Request) -> web.Response:
        """``GET /services/data/``: no session needed and, as documented, no limit header."""
        org = self.org
        org.stats.api_requests += 1
        org.stats._changed()
        faulted = await org.faults.api._apply(request, org._closing_event())
        if faulted is not None:
            return faulted
        return json_response(
            [
                {
                    "label": _release(version),
                    "url": f"/services/data/v{version}",
                    "version": version,
                }
                for version in API_VERSIONS
            ]
        )

    async def data(self, request: web.Request) -> web.Response:
        """Everything under ``/services/data/vXX.X``: session check, then dispatch."""
        org = self.org
        org.stats.api_requests += 1
        org.stats._changed()
        faulted = await org.faults.api._apply(request, org._closing_event())
        if faulted is not None:
            # Salesforce's own error answers (a lock, a limit, an outage) still report usage.
            faulted.headers.setdefault(*self._limit_info().popitem())
            return faulted
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        # Salesforce still accepts the pre-standard "OAuth" scheme next to "Bearer".
        token = value.strip() if scheme.lower() in ("bearer", "oauth") else ""
        session = self._session(token)
        if session is None:
            return self._unauthorized(_SESSION_INVALID)
        if not _API_SCOPES & set(session.scopes):
            return self._unauthorized(_NOT_FOR_REST)
        if org.api_usage >= org.api_limit:
            response = _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        else:
            org.api_usage += 1
            response = await self._dispatch(request, session)
        response.headers.update(self._limit_info())
        return response

    async def _dispatch(self, request: web.Request, session: AccessTokenRecord) -> web.Response:
        version = request.match_info["version"][1:]
        if version not in API_VERSIONS:
            return _not_found()
        path = request.match_info["tail"].rstrip("/") or "/"
        resources: dict[str, Callable[[], web.Response]] = {
            "/": lambda: self._resources(version, session),
            "/limits": self._limits,
            "/query": lambda: self._query(request, version, session, include_deleted=False),
            "/queryAll": lambda: self._query(request, version, session, include_deleted=True),
            "/sobjects": lambda: self._describe_global(version),
        }
        if path in resources:
            return self._only(request, "GET") or resources[path]()
        more = _MORE_PATH.match(path)
        if more is not None:
            return self._only(request, "GET") or self._query_more(request, more)
        if self.collections.handles(path):
            return await self.collections.handle(request, path)
        match = _SOBJECT_PATH.match(path)
        if match is None:
            return _not_found()
        return await self._sobject(request, version, match["sobject"], match["id"])

    async def _sobject(
        self, request: web.Request, version: str, sobject: str, record_id: str | None
    ) -> web.Response:
        if record_id is None:
            if request.method == "POST":
                return await self._create(request, sobject)
            return self._only(request, "GET", "POST") or self._describe(version, sobject)
        if request.method in ("GET", "HEAD"):
            return self._read(version, sobject, record_id)
        if request.method == "PATCH":
            return await self._update(request, sobject, record_id)
        if request.method == "DELETE":
            return self._delete(sobject, record_id)
        return self._method_not_allowed(request, "GET", "PATCH", "DELETE")

    def _only(self, request: web.Request, *methods: str) -> web.Response | None:
        if request.method in methods or (request.method == "HEAD" and "GET" in methods):
            return None
        return self._method_not_allowed(request, *methods)

    @staticmethod
    def _method_not_allowed(request: web.Request, *methods: str) -> web.Response:
        return _errors(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{request.method}' not allowed. Allowed are {','.join(methods)}",
        )

    def _resources(self, version: str, session: AccessTokenRecord) -> web.Response:
        base = f"/services/data/v{version}"
        names = (
            "tooling",
            "metadata",
            "eclair",
            "folders",
            "chatter",
            "tabs",
            "appMenu",
            "quickActions",
            "queryAll",
            "commerce",
            "wave",
            "analytics",
            "search",
            "composite",
            "parameterizedSearch",
            "theme",
            "recent",
            "connect",
            "licensing",
            "limits",
            "process",
            "async-queries",
            "query",
            "jobs",
            "match",
            "localizedvalue",
            "mobile",
            "consent",
            "compactLayouts",
            "sobjects",
            "actions",
            "support",
        )
        resources = {name: f"{base}/{name}" for name in names}
        resources["identity"] = self.org.identity_url(session.user)
        return json_response(dict(sorted(resources.items())))

    def _limits(self) -> web.Response:
        org = self.org

        def limit(maximum: int, used: int = 0) -> dict[str, int]:
            return {"Max": maximum, "Remaining": max(maximum - used, 0)}

        return json_response(
            {
                "ConcurrentAsyncGetReportInstances": limit(200),
                "DailyApiRequests": limit(org.api_limit, org.api_usage),
                "DailyAsyncApexExecutions": limit(250000),
                "DailyBulkApiBatches": limit(15000),
                "DailyBulkV2QueryJobs": limit(10000),
                "DataStorageMB": limit(1024),
                "FileStorageMB": limit(1024),
                "HourlyODataCallout": limit(10000),
                "SingleEmail": limit(5000),
            }
        )

    def _represent(
        self,
        version: str,
        sobject: str,
        fields: dict[str, Any],
        wanted: list[str] | None = None,
        *,
        deleted: bool = False,
    ) -> dict[str, Any]:
        record_id = fields["Id"]
        attributes = {
            "type": sobject,
            "url": f"/services/data/v{version}/sobjects/{sobject}/{record_id}",
        }
        if wanted is None:
            return {"attributes": attributes, **fields, **({"IsDeleted": True} if deleted else {})}
        by_lower = {name.lower(): name for name in fields}
        projected: dict[str, Any] = {"attributes": attributes}
        for name in wanted:
            stored = by_lower.get(name.lower())
            if stored is not None:
                projected[stored] = fields[stored]
            else:
                projected[name] = deleted if name.lower() == "isdeleted" else None
        return projected

    def _query(
        self,
        request: web.Request,
        version: str,
        session: AccessTokenRecord,
        *,
        include_deleted: bool,
    ) -> web.Response:
        # Minimal SOQL: SELECT <fields> FROM <type> [... LIMIT n]; WHERE and ORDER BY are
        # ignored. Enough to page through a table, not a query engine. With private
        # sharing, each user sees only the records they own (or that have no owner).
        match = _QUERY.match(request.query.get("q", ""))
        if match is None:
            return _errors(
                400, "MALFORMED_QUERY", "unexpected token: the query must be SELECT ... FROM ..."
            )
        field_list = [name.strip() for name in match["fields"].split(",") if name.strip()]
        wanted = (
            None if any(name.upper().startswith("FIELDS(") for name in field_list) else field_list
        )
        cursor = self.org._data.open_query(
            sobject=match["sobject"],
            wanted=wanted,
            limit=int(match["limit"]) if match["limit"] is not None else None,
            include_deleted=include_deleted,
            version=version,
            visible_to=session.user.user_id if self.org.private_sharing else None,
        )
        return self._query_page(request, cursor, 0)

    def _query_more(self, request: web.Request, more: re.Match[str]) -> web.Response:
        cursor = self.org._data.cursors.get(more["locator"])
        offset = int(more["offset"])
        if cursor is None or cursor.resource != more["resource"] or offset > cursor.total_size:
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._query_page(request, cursor, offset)

    def _query_page(self, request: web.Request, cursor: QueryCursor, offset: int) -> web.Response:
        # Salesforce treats the batch size as a wish within 200-2,000 (assumed: clamped).
        wish = _BATCH_SIZE.search(request.headers.get("Sforce-Query-Options", ""))
        size = DEFAULT_BATCH_SIZE
        if wish is not None:
            size = min(max(int(wish[1]), MIN_BATCH_SIZE), DEFAULT_BATCH_SIZE)
        records = [
            self._represent(cursor.version, sobject, fields, cursor.wanted, deleted=deleted)
            for (sobject, fields), deleted in self.org._data.page(cursor, offset, size)
        ]
        end = min(offset + size, cursor.total_size)
        page: dict[str, Any] = {"totalSize": cursor.total_size, "done": end >= cursor.total_size}
        if not page["done"]:
            page["nextRecordsUrl"] = (
                f"/services/data/v{cursor.version}/{cursor.resource}/{cursor.locator}-{end}"
            )
        page["records"] = records
        return json_response(page)

    def _known_objects(self) -> list[str]:
        names = {name.lower(): name for name in _STANDARD_OBJECTS}
        for stored_type, _ in self.org._records.values():
            names.setdefault(stored_type.lower(), stored_type)
        for table in self.org._data.tables.values():
            names.setdefault(table.sobject.lower(), table.sobject)
        return sorted(names.values())

    def _object_summary(self, version: str, sobject: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{sobject}"
        return {
            "name": sobject,
            "label": sobject,
            "keyPrefix": KEY_PREFIXES.get(sobject.lower(), "a00"),
            "custom": sobject.endswith("__c"),
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def _describe_global(self, version: str) -> web.Response:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [self._object_summary(version, name) for name in self._known_objects()],
            }
        )

    def _describe(self, version: str, sobject: str) -> web.Response:
        return json_response(
            {"objectDescribe": self._object_summary(version, sobject), "recentItems": []}
        )

    @staticmethod
    async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return _errors(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        if not isinstance(body, dict):
            return _errors(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        return body

    async def _create(self, request: web.Request, sobject: str) -> web.Response:
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        body.pop("Id", None)
        body.pop("attributes", None)
        record_id = self.org.add_record(sobject, body)
        return json_response({"id": record_id, "success": True, "errors": []}, status=201)

    def _stored(self, sobject: str, record_id: str) -> tuple[str, dict[str, Any]] | None:
        # Salesforce takes the 15- and the 18-character form of an id.
        found = self.org._data.find(record_id)
        if found is None or found[0].lower() != sobject.lower():
            return None
        return found

    def _read(self, version: str, sobject: str, record_id: str) -> web.Response:
        found = self._stored(sobject, record_id)
        if found is None:
            return _not_found()
        return json_response(self._represent(version, found[0], found[1]))

    async def _update(self, request: web.Request, sobject: str, record_id: str) -> web.Response:
        found = self._stored(sobject, record_id)
        if found is None:
            return _not_found()
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        body.pop("Id", None)
        body.pop("attributes", None)
        stored = self.org._data.writable(found[1]["Id"])
        assert stored is not None
        stored[1].update(body)
        self.org._data.forget_indexes(stored[0])
        return web.Response(status=204)

    def _delete(self, sobject: str, record_id: str) -> web.Response:
        found = self._stored(sobject, record_id)
        if found is None:
            return _not_found()
        self.org._data.delete(found[1]["Id"])
        return web.Response(status=204)

    # -- Bulk API 1.0 -----------------------------------------------------------------------------

    async def bulk_job(self, request: web.Request) -> web.Response:
        """``POST /services/async/{version}/job``: create a job, or 400 ``InvalidSessionId``."""
        org = self.org
        org.stats.api_requests += 1
        org.stats._changed()
        faulted = await org.faults.api._apply(request, org._closing_event())
        if faulted is not None:
            return faulted
        token = request.headers.get("X-SFDC-Session", "").strip()
        if not token:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            token = value.strip() if scheme.lower() in ("bearer", "oauth") else ""
        session = self._session(token)
        if session is None or not _API_SCOPES & set(session.scopes):
            org.stats.unauthorized += 1
            org.stats._changed()
            # Bulk API 1.0 reports a dead session as a 400 with an XML body, not a 401.
            return self._bulk_xml(
                400,
                "<error",
                "<exceptionCode>InvalidSessionId</exceptionCode>"
                "<exceptionMessage>Invalid session id</exceptionMessage>",
                "</error>",
            )
        if request.method != "POST":
            return self._bulk_xml(
                405,
                "<error",
                "<exceptionCode>InvalidUrl</exceptionCode>"
                "<exceptionMessage>Only POST creates a job</exceptionMessage>",
                "</error>",
            )
        org.api_usage += 1
        body = await request.text()

        def element(name: str, default: str) -> str:
            found = re.search(rf"<{name}>\s*([^<]*?)\s*</{name}>", body)
            return escape(found.group(1) if found else default)

        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        version = request.match_info["version"]
        return self._bulk_xml(
            201,
            "<jobInfo",
            f"<id>{new_id('750')}</id>"
            f"<operation>{element('operation', 'insert')}</operation>"
            f"<object>{element('object', 'Account')}</object>"
            f"<createdById>{session.user.user_id}</createdById>"
            f"<createdDate>{now}</createdDate>"
            f"<systemModstamp>{now}</systemModstamp>"
            "<state>Open</state>"
            f"<concurrencyMode>{element('concurrencyMode', 'Parallel')}</concurrencyMode>"
            f"<contentType>{element('contentType', 'CSV')}</contentType>"
            "<numberBatchesQueued>0</numberBatchesQueued>"
            "<numberBatchesInProgress>0</numberBatchesInProgress>"
            "<numberBatchesCompleted>0</numberBatchesCompleted>"
            "<numberBatchesFailed>0</numberBatchesFailed>"
            "<numberBatchesTotal>0</numberBatchesTotal>"
            "<numberRecordsProcessed>0</numberRecordsProcessed>"
            "<numberRetries>0</numberRetries>"
            f"<apiVersion>{escape(version)}</apiVersion>",
            "</jobInfo>",
            headers=self._limit_info(),
        )

    @staticmethod
    def _bulk_xml(
        status: int, opening: str, content: str, closing: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        xml = f'{_XML_DECLARATION}{opening} xmlns="{_BULK_NS}">{content}{closing}'
        return web.Response(
            status=status,
            body=xml.encode(),
            headers={"Content-Type": "application/xml", **(headers or {})},
        )
