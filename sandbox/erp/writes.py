"""Writes to the ERP sandbox: deep inserts, MERGE/PUT updates, deletes, and their rules.

Every write is validated completely (properties, types, lengths, business rules such as
a known material or an existing sold-to party) before anything is stored; server-set
fields (numbers from the number ranges, totals, change stamps) are filled in then. The
change stamp (``_changed``, microseconds) is what the ETag is made from. A create's
validation, server-set fields and business rules are ``sandbox.erp.plan``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response

from sandbox.app import SandboxState
from sandbox.erp.errors import ODataError
from sandbox.erp.events import publish_change
from sandbox.erp.lookup import Lookup, invalidate
from sandbox.erp.model import ENTITY_SETS, EntitySet, Nav
from sandbox.erp.plan import Planned, check_posting_status, fill, flatten, now_micros, plan
from sandbox.erp.wire import Renderer, check_payload, etag_of

__all__ = ["DEEP_ONLY", "check_etag", "create", "delete", "read_body", "update", "write_lock"]

#: entity sets created only inside their parent's deep insert
DEEP_ONLY = {"A_Customer", "A_CustomerSalesArea", "A_SalesOrderItem"}
#: stands for the number a create draws from its number range once everything is valid
_PENDING = "\x00pending"
#: draws before giving up on a number range crowded by client-chosen keys
_MAX_DRAWS = 1000


async def read_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ODataError(
            415,
            f"Content type '{ctype or '(none)'}' is not supported: send application/json",
        )
    raw = await request.body()
    if not raw.strip():
        raise ODataError(400, "The request body is empty: send the entity as a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ODataError(
            400,
            f"The Data Services Request could not be understood due to malformed syntax: {exc}",
        ) from exc


def check_etag(request: Request, doc: dict[str, Any]) -> None:
    given = request.headers.get("if-match")
    if given is None:
        raise ODataError(428, "Precondition required: send If-Match with the entity's ETag")
    if given.strip() == "*":
        return
    current = etag_of(doc)
    if not any(tag.strip() == current for tag in _split_etags(given)):
        raise ODataError(
            412,
            "Precondition failed: the entity was changed since it was read; read it again",
        )


def _split_etags(header: str) -> list[str]:
    tags: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            tags.append("".join(current))
            current = []
        else:
            current.append(ch)
    tags.append("".join(current))
    return tags


def write_lock(state: SandboxState) -> anyio.Lock:
    lock = state.extra.get("write_lock")
    if not isinstance(lock, anyio.Lock):
        lock = anyio.Lock(fast_acquire=True)  # no loop round trip when free
        state.extra["write_lock"] = lock
    return lock


async def create(renderer: Renderer, state: SandboxState, es: EntitySet, body: Any) -> Response:
    """Validate, number and store one entity with its deep-insert children -> 201."""
    planned = plan(es, body)
    drawn = es.number_range is not None and not planned.doc.get(es.keys[0])
    if drawn:
        planned.doc[es.keys[0]] = _PENDING
    if es.name in ("A_BusinessPartnerAddress", "A_BusinessPartnerTaxNumber"):
        parent = planned.doc.get("BusinessPartner")
        if not parent or state.store.get("A_BusinessPartner", parent) is None:
            raise ODataError(
                400, f"Business partner {parent or '(none)'} does not exist",
                propertyref="BusinessPartner",
            )  # fmt: skip
        if es.name == "A_BusinessPartnerAddress" and not planned.doc.get("AddressID"):
            taken = {
                r["AddressID"] for r in state.store.iter(es.name) if r["BusinessPartner"] == parent
            }
            planned.doc["AddressID"] = str(
                next(n for n in range(1, len(taken) + 2) if str(n) not in taken)
            )
    fill(state, planned)
    rows = flatten(planned)
    seen: set[tuple[str, str]] = set()
    for row in rows:
        slot = (row.es.name, row.es.doc_id(row.es.key_of(row.doc)))
        if slot in seen or state.store.get(*slot) is not None:
            shown = row.es.name + row.es.key_segment(row.es.key_of(row.doc))
            raise ODataError(409, f"Entity {shown} already exists", propertyref=row.es.keys[0])
        seen.add(slot)
    try:
        # the number drawn, the entity and its deep-inserted children: one commit
        async with state.store.batch():
            if drawn:
                # only now, with everything valid, is a number drawn (the counter is stored too)
                number = await _draw(state, es)
                for row in rows:
                    for name, value in row.doc.items():
                        if value == _PENDING:
                            row.doc[name] = number
            for row in rows:
                await state.store.put(row.es.name, row.es.doc_id(row.es.key_of(row.doc)), row.doc)
    finally:
        invalidate(state)
    publish_change(state, es, planned.doc, created=True)
    expand = tuple(
        path for nav, _ in planned.children for path in _deep_paths(nav, planned.children)
    )
    entity = renderer.entity(es, planned.doc, expand=tuple(dict.fromkeys(expand)))
    uri = renderer.uri(es, planned.doc)
    return Response(
        orjson.dumps({"d": entity}),
        status_code=201,
        media_type="application/json",
        headers={"Location": uri, "ETag": etag_of(planned.doc)},
    )


async def _draw(state: SandboxState, es: EntitySet) -> str:
    """The next free number of ``es``'s range (clients may have taken some themselves)."""
    assert es.number_range is not None
    for _ in range(_MAX_DRAWS):
        number = str(await state.store.next_number(*es.number_range))
        if state.store.get(es.name, number) is None:
            return number
    raise ODataError(409, f"Number range of '{es.name}' has no free number near its current one")


def _deep_paths(nav: Nav, children: list[tuple[Nav, list[Planned]]]) -> list[tuple[str, ...]]:
    """The $expand paths that show what a deep insert created."""
    paths: list[tuple[str, ...]] = []
    for child_nav, planned_children in children:
        if child_nav is not nav:
            continue
        paths.append((nav.name,))
        for child in planned_children:
            for grand_nav, _ in child.children:
                for sub in _deep_paths(grand_nav, child.children):
                    paths.append((nav.name, *sub))
    return paths


async def update(
    state: SandboxState, es: EntitySet, doc: dict[str, Any], body: Any, *, replace: bool
) -> dict[str, Any]:
    props, _ = check_payload(es, body, creating=False, allow_navs=False)
    for key in es.keys:
        if key in props and props.pop(key) != doc[key]:
            raise ODataError(400, f"Key property '{key}' cannot be changed", propertyref=key)
    new = dict(doc)
    if replace:
        for prop in es.props:
            if prop.updatable and prop.name not in es.keys:
                new[prop.name] = None
    new.update(props)
    category = new.get("BusinessPartnerCategory")
    if es.name == "A_BusinessPartner" and category not in ("1", "2", "3"):
        raise ODataError(
            400,
            "BusinessPartnerCategory must be 1, 2 or 3",
            propertyref="BusinessPartnerCategory",
        )
    if es.name == "A_BillingDocument":
        check_posting_status(new)
        try:
            net = Decimal(new.get("TotalNetAmount") or "0")
            tax = Decimal(new.get("TaxAmount") or "0")
        except ArithmeticError as exc:
            raise ODataError(400, "Invalid amounts", propertyref="TotalNetAmount") from exc
        new["TotalGrossAmount"] = str(net + tax)
    now = now_micros(state)
    new["_changed"] = now
    if "LastChangeDate" in es.prop_map:
        new["LastChangeDate"] = now // 86_400_000_000 * 86_400_000
    if "LastChangeDateTime" in es.prop_map:
        new["LastChangeDateTime"] = now // 1000
    try:
        await state.store.put(es.name, es.doc_id(es.key_of(doc)), new)
    finally:
        invalidate(state)
    publish_change(state, es, new, created=False)
    return new


async def delete(state: SandboxState, es: EntitySet, doc: dict[str, Any]) -> None:
    """Delete ``doc`` and its to-many children (a sales order's items)."""
    children = [(nav, list(Lookup(state)(nav, doc))) for nav in es.navs if nav.many]
    try:
        for nav, rows in children:
            target = ENTITY_SETS[nav.target]
            for row in rows:
                await state.store.delete(target.name, target.doc_id(target.key_of(row)))
        await state.store.delete(es.name, es.doc_id(es.key_of(doc)))
    finally:
        invalidate(state)
    publish_change(state, es, doc, created=False)
