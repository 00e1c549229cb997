"""The fake org's data beyond single records: generated tables, the recycle bin, query cursors.

- `GeneratedTable`: ``count`` records of one sObject type that exist only as a formula of
  their index, so a test can page through 100,000 Accounts without 100,000 dicts. A record is
  copied into the stored records the first time it is written (updated, upserted, deleted).
- The recycle bin: deleted records, which ``queryAll`` still returns (``IsDeleted: true``).
- `QueryCursor`: a query locator. Its records are fixed when the query runs (ids of stored
  and deleted records, the generated range); pages are read from any offset, so a page whose
  answer was lost can be asked for again, as Salesforce allows.
- External-id indexes, so that upserts of 100,000 records do not scan the table each time.
"""

from __future__ import annotations

import bisect
import secrets
import string
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from ._model import new_id

__all__ = ["GeneratedIds", "GeneratedTable", "OrgRecords", "QueryCursor", "Stored"]

Stored = tuple[str, dict[str, Any]]
"""(sObject type as given, fields with ``Id``)."""

_MARK = "GEN"  # characters 4-6 of every generated id; real ids here are random base62
_INDUSTRIES = (
    "Agriculture",
    "Banking",
    "Chemicals",
    "Communications",
    "Construction",
    "Education",
    "Electronics",
    "Energy",
    "Finance",
    "Healthcare",
    "Insurance",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Utilities",
)
_CITIES = (
    "Berlin",
    "London",
    "Madrid",
    "New York",
    "Paris",
    "San Francisco",
    "Singapore",
    "Sydney",
    "Tokyo",
    "Toronto",
)
_MAX_CURSORS = 1000  # Salesforce keeps few open locators per user; the fake keeps the latest
_LOCATOR_ALPHABET = string.ascii_letters + string.digits


@dataclass(eq=False)
class GeneratedTable:
    """``count`` records of ``sobject`` computed from their index ``0 <= i < count``.

    Fields: ``Id``, ``Name`` (``"<sobject> 000042"``), ``AccountNumber``, ``Industry``,
    ``AnnualRevenue``, ``NumberOfEmployees``, ``BillingCity``, ``External_Id__c``
    (``"GEN-<seed>-0000042"``) and ``IsDeleted``. The same ``seed`` gives the same values.
    """

    sobject: str
    count: int
    seed: int
    prefix: str
    shadowed: set[int] = field(default_factory=set)
    """Indexes copied into the stored records (or the recycle bin) by a write."""

    def id_of(self, index: int) -> str:
        """The 18-character id of record ``index``."""
        return new_id(self.prefix, f"{_MARK}{index:09d}")

    def index_of(self, record_id: str) -> int | None:
        """The index of a generated id of this table (15 or 18 characters), else ``None``."""
        if record_id[:3] != self.prefix or record_id[3:6] != _MARK or len(record_id) < 15:
            return None
        digits = record_id[6:15]
        if not digits.isdigit():
            return None
        index = int(digits)
        return index if index < self.count else None

    def external_id(self, index: int) -> str:
        """The ``External_Id__c`` value of record ``index``."""
        return f"GEN-{self.seed}-{index:07d}"

    def index_of_external_id(self, value: str) -> int | None:
        """The index whose ``External_Id__c`` is ``value``, else ``None``."""
        head = f"GEN-{self.seed}-"
        if not value.startswith(head) or not value[len(head) :].isdigit():
            return None
        index = int(value[len(head) :])
        return index if index < self.count and value == self.external_id(index) else None

    def fields(self, index: int) -> dict[str, Any]:
        """Record ``index``'s fields, computed afresh."""
        # A multiplicative hash of index and seed: cheap, deterministic, well spread.
        h = (index * 2654435761 + self.seed * 40503 + 12345) & 0xFFFFFFFF
        return {
            "Id": self.id_of(index),
            "Name": f"{self.sobject} {index:06d}",
            "AccountNumber": f"ACC-{index:07d}",
            "Industry": _INDUSTRIES[h % len(_INDUSTRIES)],
            "AnnualRevenue": float((h >> 8) % 50_000_000),
            "NumberOfEmployees": (h >> 4) % 10_000,
            "BillingCity": _CITIES[(h >> 12) % len(_CITIES)],
            "External_Id__c": self.external_id(index),
            "IsDeleted": False,
        }


class GeneratedIds(Sequence[str]):
    """The ids of a generated table, computed on access: ``ids[i]`` is record ``i``'s."""

    def __init__(self, table: GeneratedTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return self._table.count

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("generated record index out of range")
        return self._table.id_of(index)

    def __repr__(self) -> str:
        return f"<{len(self)} generated {self._table.sobject} ids>"


@dataclass(eq=False)
class QueryCursor:
    """One query's records, fixed when it ran, readable page by page from any offset."""

    locator: str
    resource: str
    """``"query"`` or ``"queryAll"``."""
    version: str
    wanted: list[str] | None
    listed: list[tuple[str, bool]]
    """Ids of stored (``False``) and deleted (``True``) records, in order."""
    table: GeneratedTable | None
    generated: int
    """How many generated records follow ``listed`` (the table's unshadowed records)."""
    skipped: list[int]
    """The table's shadowed indexes at query time, sorted."""
    total_size: int

    def entries(self, offset: int, size: int) -> Iterator[tuple[str | int, bool]]:
        """Up to ``size`` entries from ``offset``: a stored id or a generated index, deleted?"""
        end = min(offset + size, self.total_size)
        for position in range(offset, end):
            if position < len(self.listed):
                yield self.listed[position]
            else:
                yield self._generated_index(position - len(self.listed)), False

    def _generated_index(self, k: int) -> int:
        """The ``k``-th generated index that was not shadowed when the query ran."""
        index = k
        while True:
            below = bisect.bisect_right(self.skipped, index)
            if index - below == k and (below == 0 or self.skipped[below - 1] != index):
                return index
            index = k + below


class OrgRecords:
    """Stored records (the org's own dict), generated tables, recycle bin, cursors, indexes."""

    def __init__(self, stored: dict[str, Stored]) -> None:
        self.stored = stored
        self.tables: dict[str, GeneratedTable] = {}
        self.recycle_bin: dict[str, Stored] = {}
        self.cursors: OrderedDict[str, QueryCursor] = OrderedDict()
        self._indexes: dict[tuple[str, str], tuple[int, dict[str, str]]] = {}

    # -- generated tables ---------------------------------------------------------------------

    def seed(self, sobject: str, count: int, *, seed: int, prefix: str) -> GeneratedTable:
        """Make (or replace) the generated table of ``sobject``."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}.")
        table = GeneratedTable(sobject=sobject, count=count, seed=seed, prefix=prefix)
        self.tables[sobject.lower()] = table
        self.forget_indexes(sobject)
        return table

    def _generated(self, record_id: str) -> tuple[GeneratedTable, int] | None:
        for table in self.tables.values():
            index = table.index_of(record_id)
            if index is not None and index not in table.shadowed:
                return table, index
        return None

    # -- reading and writing one record -------------------------------------------------------

    def find(self, record_id: str) -> Stored | None:
        """A live record by 15- or 18-character id: stored, or generated (computed)."""
        found = self.stored.get(record_id)
        if found is None and len(record_id) == 15:
            found = next(
                (stored for key, stored in self.stored.items() if key[:15] == record_id), None
            )
        if found is not None:
            return found
        generated = self._generated(record_id)
        if generated is None:
            return None
        table, index = generated
        return table.sobject, table.fields(index)

    def writable(self, record_id: str) -> Stored | None:
        """Like `find`, but a generated record is first copied into the stored records."""
        generated = self._generated(record_id)
        if generated is not None:
            table, index = generated
            fields = table.fields(index)
            del fields["IsDeleted"]  # stored records carry it only when queried
            table.shadowed.add(index)
            self.stored[fields["Id"]] = (table.sobject, fields)
            self._bump_indexes()
        return self.find(record_id)

    def delete(self, record_id: str) -> None:
        """Move a live record (by its full id) to the recycle bin."""
        stored = self.writable(record_id)
        assert stored is not None
        del self.stored[stored[1]["Id"]]
        self.recycle_bin[stored[1]["Id"]] = stored
        self.forget_indexes(stored[0])

    def deleted(self, record_id: str) -> bool:
        """Whether the record is in the recycle bin."""
        return record_id in self.recycle_bin or any(
            key[:15] == record_id for key in self.recycle_bin if len(record_id) == 15
        )

    # -- external-id indexes ------------------------------------------------------------------

    def find_by(self, sobject: str, field_name: str, value: str) -> str | None:
        """The id of the live ``sobject`` record whose ``field_name`` is ``value``."""
        key = (sobject.lower(), field_name.lower())
        for _ in range(2):
            seen, index = self._indexes.get(key, (-1, {}))
            if seen != len(self.stored):
                index = self._build_index(*key)
            record_id = index.get(value)
            if record_id is None:
                break
            stored = self.stored.get(record_id)
            if stored is not None and _value(stored[1], field_name) == value:
                return record_id
            self._indexes.pop(key, None)  # stale: rebuild once
        table = self.tables.get(sobject.lower())
        if table is not None and field_name.lower() == "external_id__c":
            generated = table.index_of_external_id(value)
            if generated is not None and generated not in table.shadowed:
                return table.id_of(generated)
        return None

    def indexed(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """Tell the indexes of ``sobject`` that the stored record ``record_id`` now has these."""
        for (indexed_type, field_name), (_, index) in self._indexes.items():
            if indexed_type == sobject.lower():
                value = _value(fields, field_name)
                if value is not None:
                    index[value] = record_id
        self._bump_indexes()

    def forget_indexes(self, sobject: str | None = None) -> None:
        """Drop the indexes of ``sobject`` (all with ``None``): a write bypassed them."""
        for key in list(self._indexes):
            if sobject is None or key[0] == sobject.lower():
                del self._indexes[key]

    def _bump_indexes(self) -> None:
        size = len(self.stored)
        for key, (_, index) in self._indexes.items():
            self._indexes[key] = (size, index)

    def _build_index(self, sobject: str, field_name: str) -> dict[str, str]:
        index: dict[str, str] = {}
        for record_id, (stored_type, fields) in self.stored.items():
            if stored_type.lower() == sobject:
                value = _value(fields, field_name)
                if value is not None:
                    index.setdefault(value, record_id)
        self._indexes[(sobject, field_name)] = (len(self.stored), index)
        return index

    # -- queries ------------------------------------------------------------------------------

    def open_query(
        self,
        *,
        sobject: str,
        wanted: list[str] | None,
        limit: int | None,
        include_deleted: bool,
        version: str,
        visible_to: str | None = None,
    ) -> QueryCursor:
        """Fix a query's records now and keep a cursor on them.

        With ``visible_to`` (a user id), stored records owned by another user (their
        ``OwnerId``) are left out, as the organization-wide default "Private" does.
        """
        lowered = sobject.lower()

        def listed_here(stored: Stored) -> bool:
            owner = stored[1].get("OwnerId")
            return stored[0].lower() == lowered and (
                visible_to is None or owner is None or owner == visible_to
            )

        listed = [(rid, False) for rid, stored in self.stored.items() if listed_here(stored)]
        if include_deleted:
            bin_ = self.recycle_bin.items()
            listed += [(rid, True) for rid, stored in bin_ if listed_here(stored)]
        table = self.tables.get(lowered)
        generated = table.count - len(table.shadowed) if table is not None else 0
        total = len(listed) + generated
        if limit is not None:
            total = min(total, limit)
        cursor = QueryCursor(
            locator="01g" + "".join(secrets.choice(_LOCATOR_ALPHABET) for _ in range(15)),
            resource="queryAll" if include_deleted else "query",
            version=version,
            wanted=wanted,
            listed=listed,
            table=table,
            generated=generated,
            skipped=sorted(table.shadowed) if table is not None else [],
            total_size=total,
        )
        self.cursors[cursor.locator] = cursor
        while len(self.cursors) > _MAX_CURSORS:
            self.cursors.popitem(last=False)
        return cursor

    def page(self, cursor: QueryCursor, offset: int, size: int) -> list[tuple[Stored, bool]]:
        """The records of one page: (type and fields, deleted?), skipping vanished ones."""
        records: list[tuple[Stored, bool]] = []
        for entry, deleted in cursor.entries(offset, size):
            if isinstance(entry, int):
                assert cursor.table is not None
                records.append(((cursor.table.sobject, cursor.table.fields(entry)), False))
                continue
            source = self.recycle_bin if deleted else self.stored
            stored = source.get(entry) or self.recycle_bin.get(entry)
            if stored is not None:
                records.append((stored, entry in self.recycle_bin))
        return records


def _value(fields: dict[str, Any], field_name: str) -> str | None:
    """A field's value as text (field names are case-insensitive), or ``None`` if unset."""
    value = fields.get(field_name)
    if value is None:
        lowered = field_name.lower()
        value = next((v for k, v in fields.items() if k.lower() == lowered), None)
    return None if value is None or value == "" else str(value)
