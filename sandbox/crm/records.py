"""Record operations of the CRM sandbox: create, read, update, delete, upsert, in transactions.

Every write goes through a ``Transaction``: it validates first (nothing touches the store
before the body is known good), journals each record's previous state, and holds the
change events until commit. A composite request with ``allOrNone`` shares one
transaction and rolls back by replaying the journal; every other request commits at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from sandbox.app import SandboxState
from sandbox.crm.events import change_event, change_origin, new_transaction_key
from sandbox.crm.replication import deleted_kind
from sandbox.crm.schema import (
    BASE,
    ObjectDef,
    SalesforceError,
    derive,
    format_datetime,
    object_def,
    validate_write,
)
from sandbox.demo import sf_id

__all__ = ["Transaction", "external_field", "find", "find_by_external_id", "render"]

#: new records count up from here, well past the demo world's ids
FIRST_NEW_ID = 100_000

_NOT_FOUND = "The requested resource does not exist"


def find(state: SandboxState, obj: ObjectDef, record_id: str) -> dict[str, Any] | None:
    """The record with this 18-character id, or the one a 15-character id abbreviates."""
    if len(record_id) == 18:
        return state.store.get(obj.name, record_id)
    if len(record_id) == 15 and record_id.isalnum():
        return next((r for r in state.store.iter(obj.name) if r["Id"][:15] == record_id), None)
    return None


def find_by_external_id(
    state: SandboxState, obj: ObjectDef, field_name: str, value: object
) -> list[dict[str, Any]]:
    """The records whose ``field_name`` equals ``value``, oldest first (an index look-up)."""
    return state.store.find(obj.name, ("field", field_name), _field_value(field_name), value)


class _Unhashable:
    """The index key of a field value no look-up value equals (a list, an object)."""


_UNHASHABLE = _Unhashable()


def _field_value(name: str) -> Callable[[dict[str, Any]], Hashable]:
    def value(record: dict[str, Any]) -> Hashable:
        found = record.get(name)
        return found if found is None or isinstance(found, str | int | float) else _UNHASHABLE

    return value


def external_field(obj: ObjectDef, name: str) -> str:
    """The external-id field named ``name`` on ``obj`` (``Id`` counts as one)."""
    fdef = obj.field_named(name)
    if fdef is None or not (fdef.external_id or fdef.name == "Id"):
        raise SalesforceError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {name}",
        )
    return fdef.name


def render(
    obj: ObjectDef, record: dict[str, Any], fields: list[str] | None = None
) -> dict[str, Any]:
    """The record as the REST API answers it: ``attributes`` first, then the fields."""
    out: dict[str, Any] = {
        "attributes": {"type": obj.name, "url": f"{BASE}/sobjects/{obj.name}/{record['Id']}"}
    }
    names = fields if fields is not None else list(obj.fields)
    for name in names:
        out[name] = record.get(name)
    return out


@dataclass(slots=True)
class Transaction:
    """One unit of writes: journaled for rollback, events released on commit."""

    state: SandboxState
    client: str | None
    key: str = field(default_factory=new_transaction_key)
    _journal: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    _events: list[tuple[str, str, str, dict[str, Any], datetime]] = field(default_factory=list)

    # ---------------------------------------------------------------- lifecycle

    async def commit(self) -> None:
        origin = change_origin(self.client)
        seq = itertools.count(1)
        for entity, record_id, change_type, fields, when in self._events:
            # replay ids only grow, also across /_sandbox/reset (which clears the counters):
            # a consumer that deduplicates by replay id must never see one twice
            replay_id = await self.state.store.next_number(
                "replay_id", start=int(when.timestamp() * 1000)
            )
            if not self.state.webhooks.enabled:
                continue  # the id is drawn all the same: replay ids never depend on a receiver
            event = change_event(
                entity=entity,
                record_id=record_id,
                change_type=change_type,
                fields=fields,
                origin=origin,
                transaction_key=self.key,
                sequence=next(seq),
                replay_id=replay_id,
                committed=when,
            )
            # pushed once committed (at the end of the request's batch, if any)
            self.state.store.after_commit(partial(self.state.webhooks.publish, orjson.dumps(event)))
        self._events.clear()
        self._journal.clear()

    async def rollback(self) -> None:
        store = self.state.store
        for kind, record_id, before in reversed(self._journal):
            if before is None:
                await store.delete(kind, record_id)
            else:
                await store.put(kind, record_id, before)
        self._journal.clear()
        self._events.clear()

    async def _put(
        self, obj: ObjectDef, record: dict[str, Any], before: dict[str, Any] | None
    ) -> None:
        self._journal.append((obj.name, record["Id"], before))
        await self.state.store.put(obj.name, record["Id"], record)

    # ---------------------------------------------------------------- checks

    def _check_unique(self, obj: ObjectDef, changes: dict[str, Any], own_id: str | None) -> None:
        for name, value in changes.items():
            fdef = obj.fields[name]
            if not fdef.unique or value is None:
                continue
            for other in find_by_external_id(self.state, obj, name, value):
                if other["Id"] != own_id:
                    raise SalesforceError(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{other['Id']}",
                        [name],
                    )

    def _check_references(self, obj: ObjectDef, changes: dict[str, Any]) -> None:
        for name, value in list(changes.items()):
            fdef = obj.fields[name]
            if fdef.type != "reference" or value is None or fdef.reference_to is None:
                continue
            target = object_def(fdef.reference_to)
            parent = find(self.state, target, value)
            if parent is None:
                raise SalesforceError(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"{fdef.label}: id value of incorrect type or no such record: {value}",
                    [name],
                )
            changes[name] = parent["Id"]  # a 15-character id is stored as its 18-char form

    # ---------------------------------------------------------------- writes

    async def create(
        self, obj: ObjectDef, body: object, *, allow_duplicate: bool = False
    ) -> dict[str, Any]:
        changes = validate_write(obj, body, creating=True)
        if not allow_duplicate:
            self._check_unique(obj, changes, None)
        self._check_references(obj, changes)
        now = datetime.now(UTC)
        number = await self.state.store.next_number(f"id:{obj.name}", start=FIRST_NEW_ID)
        stamp = format_datetime(now)
        record: dict[str, Any] = dict.fromkeys(obj.fields)
        record.update(changes)
        record.update(
            Id=sf_id(obj.prefix, number),
            CreatedDate=stamp,
            LastModifiedDate=stamp,
            SystemModstamp=stamp,
        )
        derive(obj, record)
        await self._put(obj, record, None)
        fields = {k: v for k, v in record.items() if v is not None}
        self._events.append((obj.name, record["Id"], "CREATE", fields, now))
        return record

    async def update(self, obj: ObjectDef, record_id: str, body: object) -> dict[str, Any]:
        current = find(self.state, obj, record_id)
        if current is None:
            raise SalesforceError(404, "NOT_FOUND", _NOT_FOUND)
        changes = validate_write(obj, body, creating=False, current=current)
        self._check_unique(obj, changes, current["Id"])
        self._check_references(obj, changes)
        record = {**current, **changes}
        derive(obj, record)
        changed = {k: v for k, v in record.items() if current.get(k) != v}
        if not changed:
            return current  # nothing to write: no new LastModifiedDate, no event
        now = datetime.now(UTC)
        stamp = format_datetime(now)
        record.update(LastModifiedDate=stamp, SystemModstamp=stamp)
        changed["LastModifiedDate"] = stamp
        await self._put(obj, record, current)
        self._events.append((obj.name, record["Id"], "UPDATE", changed, now))
        return record

    async def delete(self, obj: ObjectDef, record_id: str) -> None:
        current = find(self.state, obj, record_id)
        if current is None:
            raise SalesforceError(404, "NOT_FOUND", _NOT_FOUND)
        if obj.name == "Account":
            # deleting an account deletes its contacts and opportunities, as Salesforce does
            for child_name in ("Contact", "Opportunity"):
                child = object_def(child_name)
                for row in list(self.state.store.iter(child_name)):
                    if row.get("AccountId") == current["Id"]:
                        await self._remove(child, row)
        await self._remove(obj, current)

    async def _remove(self, obj: ObjectDef, record: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        self._journal.append((obj.name, record["Id"], record))
        await self.state.store.delete(obj.name, record["Id"])
        # the delete log that /sobjects/{Type}/deleted/ reads; rolled back with the rest
        entry = {"id": record["Id"], "deletedDate": format_datetime(now)}
        self._journal.append((deleted_kind(obj), record["Id"], None))
        await self.state.store.put(deleted_kind(obj), record["Id"], entry)
        self._events.append((obj.name, record["Id"], "DELETE", {}, now))

    async def upsert(
        self, obj: ObjectDef, field_name: str, value: str, body: object
    ) -> tuple[int, dict[str, Any] | list[str]]:
        """(201 | 200, result) or (300, matching record URLs)."""
        if not isinstance(body, dict):
            validate_write(obj, body, creating=False)  # raises the JSON_PARSER_ERROR
            raise AssertionError("unreachable")
        given = body.get(field_name)
        if given is not None and given != value:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"The {field_name} in the URL ({value}) and in the body ({given}) differ: "
                "leave the field out of the body",
                [field_name],
            )
        matches = find_by_external_id(self.state, obj, field_name, value)
        if len(matches) > 1:
            return 300, [f"{BASE}/sobjects/{obj.name}/{m['Id']}" for m in matches]
        if matches:
            record = await self.update(obj, matches[0]["Id"], body)
            return 200, {"id": record["Id"], "success": True, "errors": [], "created": False}
        record = await self.create(obj, {**body, field_name: value})
        return 201, {"id": record["Id"], "success": True, "errors": [], "created": True}
