"""The CRM sandbox's REST resources, independent of HTTP so that composite can call them.

``CrmApi.dispatch(call)`` serves one call under ``/services/data/v60.0`` and answers an
``Answer`` (status, JSON body, headers). The Starlette layer (``sandbox.crm.app``) adds
authentication, limits and wire encoding; ``/composite`` runs its subrequests through
the same ``dispatch``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import anyio

from sandbox.app import SandboxState
from sandbox.crm.bulk import BulkQueryJobs
from sandbox.crm.calls import Answer, Call, not_allowed
from sandbox.crm.composite import run_composite
from sandbox.crm.describe import describe, describe_global, resources
from sandbox.crm.limits import ApiLimits
from sandbox.crm.query import QueryRunner
from sandbox.crm.records import Transaction, external_field, find, find_by_external_id, render
from sandbox.crm.replication import deleted, updated
from sandbox.crm.schema import BASE, ObjectDef, SalesforceError, object_def

__all__ = ["CrmApi"]


def _now() -> datetime:
    return datetime.now(UTC)


class CrmApi:
    """The resources. One per app; ``reset`` forgets cursors (the store is reseeded apart)."""

    def __init__(self, limits: ApiLimits, *, batch_size: int = 2000, bulk_polls: int = 2) -> None:
        self.limits = limits
        self.queries = QueryRunner(batch_size=batch_size)
        self.bulk = BulkQueryJobs(self.queries, polls_to_complete=bulk_polls)
        # writes run one at a time: a unique check and the insert it guards must not
        # interleave with another request's (two upserts of one external id, one record);
        # taken without a loop round trip when free
        self._writes = anyio.Lock(fast_acquire=True)
        #: where the delete log begins (``earliestDateAvailable``): the last seeding
        self.log_started = _now()

    def reset(self) -> None:
        self.queries.reset()
        self.bulk.reset()
        self.log_started = _now()

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
                    raise not_allowed(method, "GET")
                return Answer(200, resources())
            case ["limits"]:
                if method != "GET":
                    raise not_allowed(method, "GET")
                return Answer(200, self.limits.to_json())
            case ["sobjects"]:
                return Answer(200, describe_global())
            case ["query"]:
                if method != "GET":
                    raise not_allowed(method, "GET")
                return self.queries.query(state, call)
            case ["query", locator]:
                if method != "GET":
                    raise not_allowed(method, "GET")
                return self.queries.next_batch(locator)
            case ["jobs", "query", *rest]:
                return self.bulk.serve(state, method, rest, call.params, call.body)
            case ["composite"]:
                if method != "POST":
                    raise not_allowed(method, "POST")
                return await run_composite(state, call, dispatch=self.dispatch, lock=self._writes)
            case ["sobjects", name]:
                obj = object_def(name)
                if method == "GET":
                    return Answer(200, {"objectDescribe": describe(obj, brief=True)})
                if method != "POST":
                    raise not_allowed(method, "GET,POST")
                return await self._write(
                    state,
                    call,
                    txn,
                    lambda t: self._create(t, obj, call.body, call.allow_duplicate),
                )
            case ["sobjects", name, "updated"]:
                if method != "GET":
                    raise not_allowed(method, "GET")
                return Answer(200, updated(state, object_def(name), call.params, _now()))
            case ["sobjects", name, "deleted"]:
                if method != "GET":
                    raise not_allowed(method, "GET")
                obj = object_def(name)
                log_started = self.log_started
                return Answer(200, deleted(state, obj, call.params, _now(), log_started))
            case ["sobjects", name, "describe"]:
                if method != "GET":
                    raise not_allowed(method, "GET")
                return Answer(200, describe(object_def(name)))
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
        # the write's records, counters and change events: one commit, not one per write
        async with state.store.batch():
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
        raise not_allowed(method, "GET,PATCH,DELETE")

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
        raise not_allowed(method, "GET,PATCH,POST")
