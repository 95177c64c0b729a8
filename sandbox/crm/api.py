"""The CRM sandbox's REST resources, independent of HTTP so that composite can call them.

``CrmApi.dispatch(call)`` serves one call under ``/services/data/v60.0`` and answers an
``Answer`` (status, JSON body, headers). The Starlette layer (``sandbox.crm.app``) adds
authentication, limits and wire encoding; ``/composite`` runs its subrequests through
the same ``dispatch``.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio

from sandbox.app import SandboxState
from sandbox.crm.limits import ApiLimits
from sandbox.crm.records import Transaction, external_field, find, find_by_external_id, render
from sandbox.crm.schema import (
    API_VERSION,
    BASE,
    OBJECTS,
    ObjectDef,
    SalesforceError,
    object_def,
)
from sandbox.crm.soql import FieldPath, parse, run

__all__ = ["Answer", "Call", "CrmApi"]

#: open query cursors kept at once (Salesforce allows a few per user) and how long
MAX_CURSORS = 100
CURSOR_TTL = 15 * 60.0
MAX_COMPOSITE = 25
_REF = re.compile(r"@\{([A-Za-z0-9_]+)\.([A-Za-z0-9_.\[\]]+)\}")


@dataclass(slots=True)
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    method: str
    path: str  # below BASE, e.g. "/sobjects/Account"
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    client: str | None = None
    batch_size: int | None = None  # Sforce-Query-Options: batchSize=N
    allow_duplicate: bool = False  # sandbox-only: X-Sandbox-Allow-Duplicate: true
    locked: bool = False  # the caller (a composite request) holds the write lock already


@dataclass(slots=True)
class _Cursor:
    records: list[dict[str, Any]]
    batch: int
    created: float


def _not_allowed(method: str, allowed: str) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )


class CrmApi:
    """The resources. One per app; ``reset`` forgets cursors (the store is reseeded apart)."""

    def __init__(self, limits: ApiLimits, *, batch_size: int = 2000) -> None:
        self.limits = limits
        self.batch_size = batch_size
        # writes run one at a time: a unique check and the insert it guards must not
        # interleave with another request's (two upserts of one external id, one record)
        self._writes = anyio.Lock()
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_n = 0

    def reset(self) -> None:
        self._cursors.clear()

    # ---------------------------------------------------------------- dispatch

    async def dispatch(
        self, state: SandboxState, call: Call, txn: Transaction | None = None
    ) -> Answer:
        """Serve one call. With ``txn`` the writes join it; else each commits on its own."""
        parts = (
            [unquote(p) for p in call.path.strip("/").split("/")] if call.path.strip("/") else []
        )
        method = call.method.upper()
        match parts:
            case []:
                if method != "GET":
                    raise _not_allowed(method, "GET")
                return Answer(200, self._resources())
            case ["limits"]:
                if method != "GET":
                    raise _not_allowed(method, "GET")
                return Answer(200, self.limits.to_json())
            case ["sobjects"]:
                return Answer(200, self._describe_global())
            case ["query"]:
                if method != "GET":
                    raise _not_allowed(method, "GET")
                return self._query(state, call)
            case ["query", locator]:
                if method != "GET":
                    raise _not_allowed(method, "GET")
                return self._next_batch(locator)
            case ["composite"]:
                if method != "POST":
                    raise _not_allowed(method, "POST")
                return await self._composite(state, call)
            case ["sobjects", name]:
                obj = object_def(name)
                if method == "GET":
                    return Answer(200, {"objectDescribe": self._describe(obj, brief=True)})
                if method != "POST":
                    raise _not_allowed(method, "GET,POST")
                return await self._write(
                    state,
                    call,
                    txn,
                    lambda t: self._create(t, obj, call.body, call.allow_duplicate),
                )
            case ["sobjects", name, "describe"]:
                if method != "GET":
                    raise _not_allowed(method, "GET")
                return Answer(200, self._describe(object_def(name)))
            case ["sobjects", name, record_id]:
                obj = object_def(name)
                return await self._record(state, call, txn, obj, record_id)
            case ["sobjects", name, ext_field, value]:
                obj = object_def(name)
                return await self._by_external_id(state, call, txn, obj, ext_field, value)
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")

    async def _write(
        self, state: SandboxState, call: Call, txn: Transaction | None, action: Any
    ) -> Answer:
        """Run ``action`` in ``txn``, or in a transaction of its own under the write lock."""
        if txn is not None:
            answer: Answer = await action(txn)
            return answer
        if call.locked:
            return await self._own_transaction(state, call, action)
        async with self._writes:
            return await self._own_transaction(state, call, action)

    async def _own_transaction(self, state: SandboxState, call: Call, action: Any) -> Answer:
        own = Transaction(state, call.client)
        try:
            answer: Answer = await action(own)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await own.rollback()
            raise
        await own.commit()
        return answer

    # ---------------------------------------------------------------- records

    async def _create(
        self, txn: Transaction, obj: ObjectDef, body: Any, allow_duplicate: bool
    ) -> Answer:
        record = await txn.create(obj, body, allow_duplicate=allow_duplicate)
        return Answer(
            201,
            {"id": record["Id"], "success": True, "errors": []},
            {"Location": f"{BASE}/sobjects/{obj.name}/{record['Id']}"},
        )

    async def _record(
        self,
        state: SandboxState,
        call: Call,
        txn: Transaction | None,
        obj: ObjectDef,
        record_id: str,
    ) -> Answer:
        method = call.method.upper()
        if method == "GET":
            record = find(state, obj, record_id)
            if record is None:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            return Answer(200, render(obj, record, self._fields_param(obj, call)))
        if method == "PATCH":

            async def update(t: Transaction) -> Answer:
                await t.update(obj, record_id, call.body)
                return Answer(204)

            return await self._write(state, call, txn, update)
        if method == "DELETE":

            async def delete(t: Transaction) -> Answer:
                await t.delete(obj, record_id)
                return Answer(204)

            return await self._write(state, call, txn, delete)
        raise _not_allowed(method, "GET,PATCH,DELETE")

    def _fields_param(self, obj: ObjectDef, call: Call) -> list[str] | None:
        raw = call.params.get("fields")
        if raw is None:
            return None
        names: list[str] = []
        for name in (n.strip() for n in raw.split(",")):
            fdef = obj.field_named(name)
            if fdef is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                )
            names.append(fdef.name)
        return names

    async def _by_external_id(
        self,
        state: SandboxState,
        call: Call,
        txn: Transaction | None,
        obj: ObjectDef,
        ext_field: str,
        value: str,
    ) -> Answer:
        method = call.method.upper()
        name = external_field(obj, ext_field)
        if method == "GET":
            matches = (
                [r for r in [find(state, obj, value)] if r]
                if name == "Id"
                else find_by_external_id(state, obj, name, value)
            )
            if not matches:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if len(matches) > 1:
                return Answer(300, [f"{BASE}/sobjects/{obj.name}/{m['Id']}" for m in matches])
            return Answer(200, render(obj, matches[0], self._fields_param(obj, call)))
        if method in ("PATCH", "POST"):

            async def upsert(t: Transaction) -> Answer:
                status, body = await t.upsert(obj, name, value, call.body)
                headers = {}
                if status in (200, 201) and isinstance(body, dict):
                    headers["Location"] = f"{BASE}/sobjects/{obj.name}/{body['id']}"
                return Answer(status, body, headers)

            return await self._write(state, call, txn, upsert)
        raise _not_allowed(method, "GET,PATCH,POST")

    # ---------------------------------------------------------------- query

    def _query(self, state: SandboxState, call: Call) -> Answer:
        q = call.params.get("q")
        if q is None:
            raise SalesforceError(
                400, "MALFORMED_QUERY", "The q parameter is missing: pass q=SELECT ..."
            )
        query = parse(q)
        cache: dict[tuple[str, str], dict[str, Any] | None] = {}

        def resolve(record: dict[str, Any], path: FieldPath) -> Any:
            if path.via is None:
                return record.get(path.field.name)
            parent = self._parent(state, record, path, cache)
            return None if parent is None else parent.get(path.field.name)

        chosen = run(query, state.store.all(query.obj.name), resolve)
        if query.count:
            return Answer(200, {"totalSize": len(chosen), "done": True, "records": []})
        rows = [self._project(state, query.obj, r, query.fields, cache) for r in chosen]
        batch = call.batch_size or self.batch_size
        return Answer(200, self._page(rows, 0, batch))

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

    def _next_batch(self, locator: str) -> Answer:
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

    # ---------------------------------------------------------------- composite

    async def _composite(self, state: SandboxState, call: Call) -> Answer:
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", 'Send {"allOrNone": ..., "compositeRequest": [...]}'
            )
        subs: list[dict[str, Any]] = body["compositeRequest"]
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "allOrNone must be true or false")
        if not 1 <= len(subs) <= MAX_COMPOSITE:
            raise SalesforceError(
                400,
                "INVALID_INPUT",
                f"A composite request takes 1 to {MAX_COMPOSITE} subrequests, not {len(subs)}",
            )
        seen: set[str] = set()
        for sub in subs:
            if (
                not isinstance(sub, dict)
                or not isinstance(sub.get("method"), str)
                or not isinstance(sub.get("url"), str)
                or not isinstance(sub.get("referenceId"), str)
                or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", sub["referenceId"])
            ):
                raise SalesforceError(
                    400,
                    "JSON_PARSER_ERROR",
                    "Each subrequest needs method, url and a referenceId of letters, digits, _",
                )
            if sub["referenceId"] in seen:
                raise SalesforceError(
                    400, "INVALID_INPUT", f"Duplicate referenceId provided: {sub['referenceId']}"
                )
            seen.add(sub["referenceId"])

        async with self._writes:
            results = await self._run_subrequests(state, call, subs, all_or_none)
        return Answer(200, {"compositeResponse": results})

    async def _run_subrequests(
        self, state: SandboxState, call: Call, subs: list[dict[str, Any]], all_or_none: bool
    ) -> list[dict[str, Any]]:
        shared = Transaction(state, call.client) if all_or_none else None
        results: list[dict[str, Any]] = []
        bodies: dict[str, Any] = {}
        failed_at: int | None = None
        try:
            for index, sub in enumerate(subs):
                ref = sub["referenceId"]
                try:
                    answer = await self._subrequest(state, call, sub, bodies, shared)
                except SalesforceError as exc:
                    answer = Answer(exc.status, exc.body())
                results.append(_sub_result(ref, answer))
                if 200 <= answer.status < 300:
                    bodies[ref] = answer.body
                elif all_or_none:
                    failed_at = index
                    break
        except BaseException:
            if shared is not None:
                with anyio.CancelScope(shield=True):
                    await shared.rollback()
            raise
        if shared is None:
            return results
        if failed_at is None:
            await shared.commit()
            return results
        await shared.rollback()
        halted = Answer(400, [_halted()])
        for index, sub in enumerate(subs):
            if index != failed_at:
                result = _sub_result(sub["referenceId"], halted)
                if index < len(results):
                    results[index] = result
                else:
                    results.append(result)
        return results

    async def _subrequest(
        self,
        state: SandboxState,
        call: Call,
        sub: dict[str, Any],
        bodies: dict[str, Any],
        txn: Transaction | None,
    ) -> Answer:
        url = _resolve_refs(sub["url"], bodies)
        split = urlsplit(url)
        if not split.path.startswith(BASE + "/") and split.path != BASE:
            raise SalesforceError(
                400,
                "INVALID_INPUT",
                f"The subrequest url must start with {BASE}/, not {split.path}",
            )
        inner = Call(
            method=sub["method"],
            path=split.path[len(BASE) :],
            params=dict(parse_qsl(split.query)),
            body=_resolve_refs(sub.get("body"), bodies),
            client=call.client,
            batch_size=call.batch_size,
            allow_duplicate=call.allow_duplicate,
            locked=True,
        )
        if inner.path.strip("/") == "composite":
            raise SalesforceError(400, "INVALID_INPUT", "A composite request cannot nest another")
        return await self.dispatch(state, inner, txn)

    # ---------------------------------------------------------------- describe

    def _resources(self) -> dict[str, str]:
        return {name: f"{BASE}/{name}" for name in ("sobjects", "query", "composite", "limits")}

    def _describe_global(self) -> dict[str, Any]:
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [self._describe(o, brief=True) for o in OBJECTS.values()],
        }

    def _describe(self, obj: ObjectDef, *, brief: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": obj.name,
            "label": obj.name,
            "keyPrefix": obj.prefix,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "urls": {
                "sobject": f"{BASE}/sobjects/{obj.name}",
                "describe": f"{BASE}/sobjects/{obj.name}/describe",
                "rowTemplate": f"{BASE}/sobjects/{obj.name}/{{ID}}",
            },
        }
        if brief:
            return info
        info["fields"] = [
            {
                "name": f.name,
                "label": f.label or f.name,
                "type": f.type,
                "length": f.length
                if f.type not in ("currency", "date", "datetime", "boolean")
                else 0,
                "nillable": not f.required and f.type != "boolean",
                "createable": f.writable,
                "updateable": f.writable,
                "externalId": f.external_id,
                "unique": f.unique,
                "idLookup": f.name == "Id" or f.external_id,
                "referenceTo": [f.reference_to] if f.reference_to else [],
                "relationshipName": f.relationship,
            }
            for f in obj.fields.values()
        ]
        return info


def versions() -> list[dict[str, str]]:
    return [{"label": "Spring '24", "url": BASE, "version": API_VERSION}]


def _halted() -> dict[str, Any]:
    return {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same "
        "transaction failed.",
    }


def _sub_result(ref: str, answer: Answer) -> dict[str, Any]:
    return {
        "body": answer.body,
        "httpHeaders": answer.headers,
        "httpStatusCode": answer.status,
        "referenceId": ref,
    }


def _lookup(bodies: dict[str, Any], ref: str, path: str) -> Any:
    if ref not in bodies:
        raise SalesforceError(
            400,
            "PROCESSING_HALTED",
            f"Invalid reference specified. No value for {ref}.{path} found in {ref}: "
            "it failed or runs later",
        )
    value: Any = bodies[ref]
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            value = value[int(step[1:-1])] if step.startswith("[") else value[step]
        except (KeyError, IndexError, TypeError):
            raise SalesforceError(
                400,
                "PROCESSING_HALTED",
                f"Invalid reference specified. No value for {ref}.{path} found in {ref}",
            ) from None
    return value


def _resolve_refs(value: Any, bodies: dict[str, Any]) -> Any:
    """Replace ``@{ref.path}`` in strings (whole-string references keep the value's type)."""
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:
            return _lookup(bodies, whole.group(1), whole.group(2))
        return _REF.sub(lambda m: str(_lookup(bodies, m.group(1), m.group(2))), value)
    if isinstance(value, dict):
        return {k: _resolve_refs(v, bodies) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, bodies) for v in value]
    return value
