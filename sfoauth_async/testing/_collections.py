"""sObject Collections of the fake org: ``/composite/sobjects`` create, update, upsert, delete.

Up to 200 records per call; one result per record, in order; per-record errors that a real
org gives for the same mistakes (a required field missing, an unknown or deleted id, an id
in an insert); ``allOrNone`` rolls the whole call back when any record fails, and then every
valid record reports ``ALL_OR_NONE_OPERATION_ROLLED_BACK``.

Assumed where Salesforce's documentation is silent: more than 200 records answer 400
``EXCEEDED_ID_LIMIT``; a record of an upsert whose external id repeats an earlier record's
in the same call fails with ``DUPLICATE_EXTERNAL_ID``; an id that never existed answers
``INVALID_CROSS_REFERENCE_KEY`` and a deleted one ``ENTITY_IS_DELETED``; an id repeated in
one update or delete call fails with ``INVALID_ID_FIELD`` / ``duplicate id in list``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._http import json_response

if TYPE_CHECKING:
    from ._org import FakeSalesforceOrg

__all__ = ["COLLECTION_LIMIT", "CollectionsHandler"]

COLLECTION_LIMIT = 200
_PATH = re.compile(
    r"^/composite/sobjects(?:/(?P<sobject>[A-Za-z_][A-Za-z0-9_]*)/(?P<field>[A-Za-z_][A-Za-z0-9_]*))?$"
)
# Fields a record cannot be created without (a small, real subset).
_REQUIRED = {
    "account": ("Name",),
    "campaign": ("Name",),
    "contact": ("LastName",),
    "lead": ("LastName", "Company"),
    "opportunity": ("Name", "StageName", "CloseDate"),
}
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}


def _error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


def _errors(status: int, code: str, message: str) -> web.Response:
    return json_response([{"message": message, "errorCode": code}], status=status)


@dataclass
class _Outcome:
    """One record's fate, decided before anything is written."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    record_id: str | None = None
    created: bool | None = None
    apply: Callable[[], str] | None = None
    """Writes the record and returns its id; run only if the call commits."""


class CollectionsHandler:
    """Answers ``/composite/sobjects`` requests against the org's records."""

    def __init__(self, org: FakeSalesforceOrg) -> None:
        self.org = org

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` (below ``/services/data/vXX.X``) is a collections resource."""
        return _PATH.match(path) is not None

    async def handle(self, request: web.Request, path: str) -> web.Response:
        """Dispatch by method and path; the session was checked already."""
        match = _PATH.match(path)
        assert match is not None
        sobject, external_id = match["sobject"], match["field"]
        if request.method == "DELETE" and sobject is None:
            ids = [i for i in request.query.get("ids", "").split(",") if i]
            if len(ids) > COLLECTION_LIMIT:
                return self._too_many()
            all_or_none = request.query.get("allOrNone", "false").lower() == "true"
            outcomes = self._once_each(ids, self._delete)
            return self._commit(outcomes, all_or_none=all_or_none, upsert=False, keep_ids=True)
        if request.method not in ("POST", "PATCH") or (
            request.method == "POST" and sobject is not None
        ):
            allowed = "PATCH" if sobject is not None else "POST,PATCH,DELETE"
            return _errors(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}",
            )
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        records, all_or_none = body
        if len(records) > COLLECTION_LIMIT:
            return self._too_many()
        if sobject is not None and external_id is not None:
            outcomes = self._upserts(records, sobject, external_id)
        elif request.method == "POST":
            outcomes = [self._create(record) for record in records]
        else:
            outcomes = self._once_each(records, self._update)
        return self._commit(outcomes, all_or_none=all_or_none, upsert=sobject is not None)

    # -- request parsing ----------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> tuple[list[dict[str, Any]], bool] | web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return _errors(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _errors(
                400, "JSON_PARSER_ERROR", "The request body needs a list of records in 'records'"
            )
        return records, bool(body.get("allOrNone", False))

    @staticmethod
    def _too_many() -> web.Response:
        return _errors(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into "
            f"this call",
        )

    # -- per-record decisions -----------------------------------------------------------------

    @staticmethod
    def _missing(sobject: str, fields: dict[str, Any]) -> list[str]:
        return [
            name for name in _REQUIRED.get(sobject.lower(), ()) if fields.get(name) in (None, "")
        ]

    def _not_live(self, record_id: str) -> list[dict[str, Any]]:
        if self.org._data.deleted(record_id):
            return [_error("ENTITY_IS_DELETED", "entity is deleted")]
        return [_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]

    def _insert(self, sobject: str, fields: dict[str, Any]) -> _Outcome:
        missing = self._missing(sobject, fields)
        if missing:
            message = f"Required fields are missing: [{', '.join(missing)}]"
            return _Outcome(errors=[_error("REQUIRED_FIELD_MISSING", message, missing)])

        def insert() -> str:
            record_id = self.org.add_record(sobject, fields)
            self.org._data.indexed(sobject, record_id, fields)
            return record_id

        return _Outcome(created=True, apply=insert)

    def _change(self, record_id: str, sobject: str | None, fields: dict[str, Any]) -> _Outcome:
        found = self.org._data.find(record_id)
        if found is None or (sobject is not None and found[0].lower() != sobject.lower()):
            return _Outcome(errors=self._not_live(record_id), record_id=record_id)
        emptied = [name for name in self._missing(found[0], fields) if name in fields]
        if emptied:
            message = f"Required fields are missing: [{', '.join(emptied)}]"
            return _Outcome(
                errors=[_error("REQUIRED_FIELD_MISSING", message, emptied)], record_id=record_id
            )

        def update() -> str:
            stored = self.org._data.writable(record_id)
            assert stored is not None
            stored[1].update(fields)
            self.org._data.indexed(stored[0], stored[1]["Id"], stored[1])
            return str(stored[1]["Id"])

        return _Outcome(record_id=found[1]["Id"], created=False, apply=update)

    @staticmethod
    def _split(record: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        attributes = record.get("attributes")
        sobject = attributes.get("type") if isinstance(attributes, dict) else None
        fields = {k: v for k, v in record.items() if k != "attributes"}
        return (sobject if isinstance(sobject, str) and sobject else None), fields

    def _create(self, record: dict[str, Any]) -> _Outcome:
        sobject, fields = self._split(record)
        if sobject is None:
            return _Outcome(errors=[_error("INVALID_TYPE", "Must send a concrete entity type.")])
        if fields.get("Id"):
            return _Outcome(
                errors=[_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])]
            )
        return self._insert(sobject, fields)

    def _update(self, record: dict[str, Any]) -> _Outcome:
        sobject, fields = self._split(record)
        record_id = fields.pop("Id", None)
        if not isinstance(record_id, str) or not record_id:
            error = _error("MISSING_ARGUMENT", "Id not specified in an update call")
            return _Outcome(errors=[error])
        return self._change(record_id, sobject, fields)

    def _upserts(
        self, records: list[dict[str, Any]], sobject: str, external_id: str
    ) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        seen: set[str] = set()
        for record in records:
            _, fields = self._split(record)
            value = fields.get(external_id)
            if fields.get("Id"):
                outcomes.append(
                    _Outcome(errors=[_error("INVALID_FIELD", "cannot specify Id in an upsert")])
                )
            elif value in (None, ""):
                message = f"{external_id} not specified in an upsert call"
                outcomes.append(_Outcome(errors=[_error("MISSING_ARGUMENT", message)]))
            elif str(value) in seen:
                message = f"Duplicate external id specified: {value}"
                outcomes.append(
                    _Outcome(errors=[_error("DUPLICATE_EXTERNAL_ID", message, [external_id])])
                )
            else:
                seen.add(str(value))
                existing = self.org._data.find_by(sobject, external_id, str(value))
                if existing is None:
                    outcomes.append(self._insert(sobject, fields))
                else:
                    outcomes.append(self._change(existing, sobject, fields))
        return outcomes

    def _delete(self, record_id: str) -> _Outcome:
        if self.org._data.find(record_id) is None:
            return _Outcome(errors=self._not_live(record_id), record_id=record_id)

        def delete() -> str:
            stored = self.org._data.find(record_id)
            assert stored is not None
            self.org._data.delete(stored[1]["Id"])
            return str(stored[1]["Id"])

        return _Outcome(record_id=record_id, apply=delete)

    @staticmethod
    def _once_each(items: list[Any], decide: Callable[[Any], _Outcome]) -> list[_Outcome]:
        """Decide each item; a record id already seen in this call fails instead."""
        outcomes: list[_Outcome] = []
        seen: set[str] = set()
        for item in items:
            record_id = item.get("Id") if isinstance(item, dict) else item
            if isinstance(record_id, str) and record_id[:15] in seen:
                error = _error("INVALID_ID_FIELD", "duplicate id in list", ["Id"])
                outcomes.append(_Outcome(errors=[error], record_id=record_id))
                continue
            if isinstance(record_id, str):
                seen.add(record_id[:15])
            outcomes.append(decide(item))
        return outcomes

    # -- answering ----------------------------------------------------------------------------

    def _commit(
        self,
        outcomes: list[_Outcome],
        *,
        all_or_none: bool,
        upsert: bool,
        keep_ids: bool = False,
    ) -> web.Response:
        rolled_back = all_or_none and any(outcome.errors for outcome in outcomes)
        results: list[dict[str, Any]] = []
        for outcome in outcomes:
            result: dict[str, Any]
            if outcome.errors:
                result = {"success": False, "errors": outcome.errors}
                if keep_ids and outcome.record_id:
                    result = {"id": outcome.record_id, **result}
            elif rolled_back:
                result = {"success": False, "errors": [_ROLLED_BACK]}
            else:
                assert outcome.apply is not None
                result = {"id": outcome.apply(), "success": True, "errors": []}
            if upsert:
                result["created"] = bool(outcome.created) and result["success"]
            results.append(result)
        return json_response(results)
