"""SOQL over HTTP: run a parsed query on the store, project the fields, page the answer.

Answers are ``{"totalSize","done","nextRecordsUrl","records"}``: the rows are fixed when
the query runs (a cursor, as in Salesforce) and served in batches; ``nextRecordsUrl``
(``/services/data/v60.0/query/<cursor>-<offset>``) names the next one while ``done`` is
false. Cursors expire after 15 minutes and only the newest ``MAX_CURSORS`` are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sandbox.app import SandboxState
from sandbox.crm.calls import Answer, Call
from sandbox.crm.records import find, render
from sandbox.crm.schema import BASE, ObjectDef, SalesforceError
from sandbox.crm.soql import FieldPath, Query, parse
from sandbox.crm.soql_eval import run

__all__ = ["CURSOR_TTL", "MAX_CURSORS", "QueryRunner"]

#: open query cursors kept at once (Salesforce allows a few per user) and how long
MAX_CURSORS = 100
CURSOR_TTL = 15 * 60.0


@dataclass(slots=True)
class _Cursor:
    records: list[dict[str, Any]]
    batch: int
    created: float


class QueryRunner:
    """Runs queries and keeps their cursors; ``batch_size`` is the default batch."""

    def __init__(self, *, batch_size: int = 2000) -> None:
        self.batch_size = batch_size
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_n = 0

    def reset(self) -> None:
        self._cursors.clear()

    def query(self, state: SandboxState, call: Call) -> Answer:
        """``GET /query?q=``: the first batch, and a cursor for the rest."""
        q = call.params.get("q")
        if q is None:
            raise SalesforceError(
                400, "MALFORMED_QUERY", "The q parameter is missing: pass q=SELECT ..."
            )
        query = parse(q)
        if query.count:
            total = len(self.select(state, query))
            return Answer(200, {"totalSize": total, "done": True, "records": []})
        batch = call.batch_size or self.batch_size
        return Answer(200, self._page(self.select(state, query), 0, batch))

    def select(self, state: SandboxState, query: Query) -> list[dict[str, Any]]:
        """The rows ``query`` selects, projected as the REST answer shows them (with
        ``attributes``, parents nested under their relationship name); for COUNT(), the
        chosen records unprojected (only their number matters)."""
        cache: dict[tuple[str, str], dict[str, Any] | None] = {}

        def resolve(record: dict[str, Any], path: FieldPath) -> Any:
            if path.via is None:
                return record.get(path.field.name)
            parent = self._parent(state, record, path, cache)
            return None if parent is None else parent.get(path.field.name)

        chosen = run(query, state.store.all(query.obj.name), resolve)
        if query.count:
            return chosen
        return [self._project(state, query.obj, r, query.fields, cache) for r in chosen]

    def _parent(
        self,
        state: SandboxState,
        record: dict[str, Any],
        path: FieldPath,
        cache: dict[tuple[str, str], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        assert path.via is not None
        assert path.target is not None
        ref = record.get(path.via.name)
        if ref is None:
            return None
        key = (path.target.name, ref)
        if key not in cache:
            cache[key] = find(state, path.target, ref)
        return cache[key]

    def _project(
        self,
        state: SandboxState,
        obj: ObjectDef,
        record: dict[str, Any],
        fields: tuple[FieldPath, ...],
        cache: dict[tuple[str, str], dict[str, Any] | None],
    ) -> dict[str, Any]:
        out = render(obj, record, [])
        for path in fields:
            if path.via is None:
                out[path.field.name] = record.get(path.field.name)
                continue
            assert path.via.relationship is not None
            assert path.target is not None
            parent = self._parent(state, record, path, cache)
            rel = path.via.relationship
            if parent is None:
                out[rel] = None
                continue
            nested = out.get(rel) or render(path.target, parent, [])
            nested[path.field.name] = parent.get(path.field.name)
            out[rel] = nested
        return out

    def _page(self, rows: list[dict[str, Any]], start: int, batch: int) -> dict[str, Any]:
        end = start + batch
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
        if end < len(rows):
            self._cursor_n += 1
            cursor_id = f"01gSB{self._cursor_n:08d}AAQ"
            self._cursors[cursor_id] = _Cursor(rows, batch, time.monotonic())
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)
            body["nextRecordsUrl"] = f"{BASE}/query/{cursor_id}-{end}"
        body["records"] = rows[start:end]
        return body

    def next_batch(self, locator: str) -> Answer:
        """``GET /query/{locator}``: the batch a ``nextRecordsUrl`` points at."""
        cursor_id, _, offset = locator.partition("-")
        cursor = self._cursors.get(cursor_id)
        if (
            cursor is None
            or not offset.isdigit()
            or time.monotonic() - cursor.created > CURSOR_TTL
            or int(offset) > len(cursor.records)
        ):
            raise SalesforceError(
                400, "INVALID_QUERY_LOCATOR", "invalid query locator: run the query again"
            )
        return Answer(200, self._page(cursor.records, int(offset), cursor.batch))
