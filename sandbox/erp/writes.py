"""Writes to the ERP sandbox: deep inserts, MERGE/PUT updates, deletes, and their rules.

Every write is validated completely (properties, types, lengths, business rules such as
a known material or an existing sold-to party) before anything is stored; server-set
fields (numbers from the number ranges, totals, change stamps) are filled in then. The
change stamp (``_changed``, microseconds) is what the ETag is made from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response

from sandbox.app import SandboxState
from sandbox.erp.errors import ODataError
from sandbox.erp.events import publish_change
from sandbox.erp.model import ENTITY_SETS, EntitySet, Nav
from sandbox.erp.odata import Lookup, Renderer, check_payload, etag_of, invalidate
from sandbox.erp.seed import MATERIAL_PRICES, SALES_AREA

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


def now_micros(state: SandboxState) -> int:
    """A strictly increasing change stamp, so two quick writes never share an ETag."""
    last = state.extra.get("clock", 0)
    assert isinstance(last, int)
    now = max(time.time_ns() // 1000, last + 1)
    state.extra["clock"] = now
    return now


def write_lock(state: SandboxState) -> anyio.Lock:
    lock = state.extra.get("write_lock")
    if not isinstance(lock, anyio.Lock):
        lock = anyio.Lock(fast_acquire=True)  # no loop round trip when free
        state.extra["write_lock"] = lock
    return lock


@dataclass(slots=True)
class _Planned:
    es: EntitySet
    doc: dict[str, Any]
    children: list[tuple[Nav, list[_Planned]]] = field(default_factory=list)


def _plan(es: EntitySet, body: Any) -> _Planned:
    """Validate one entity (and its deep-insert children) into a plan; no store access."""
    props, nested = check_payload(es, body, creating=True)
    planned = _Planned(es, props)
    for nav_name, items in nested.items():
        nav = es.nav_map[nav_name]
        child_es = ENTITY_SETS[nav.target]
        planned.children.append((nav, [_plan(child_es, item) for item in items]))
    return planned


def _fill(state: SandboxState, planned: _Planned) -> None:
    """Server-set fields, defaults and business rules, in place; still no store writes."""
    es, doc = planned.es, planned.doc
    now = now_micros(state)
    today = now // 86_400_000_000 * 86_400_000
    doc["_changed"] = now
    for prop in es.props:
        if prop.type == "Edm.DateTime" and not prop.creatable:
            doc[prop.name] = today
        elif prop.type == "Edm.DateTimeOffset":
            doc[prop.name] = now // 1000
    _RULES.get(es.name, _no_rule)(state, planned)
    for nav, children in planned.children:
        for n, child in enumerate(children, 1):
            for a, b in nav.link:
                if child.doc.get(b) not in (None, "", doc[a]):
                    raise ODataError(
                        400,
                        f"'{nav.name}/{b}' must be its parent's {a} or left out",
                        propertyref=b,
                    )
                child.doc[b] = doc[a]
            _CHILD_KEYS.get(child.es.name, _no_rule_n)(child.doc, n)
            _fill(state, child)
    for key in es.keys:
        if not doc.get(key):
            raise ODataError(
                400, f"Key property '{key}' of '{es.name}' is missing", propertyref=key
            )
    for prop in es.props:
        doc.setdefault(prop.name, None)


def _no_rule(state: SandboxState, planned: _Planned) -> None:
    return None


def _no_rule_n(doc: dict[str, Any], n: int) -> None:
    return None


def _item_key(doc: dict[str, Any], n: int) -> None:
    doc.setdefault("SalesOrderItem", str(n * 10))


def _address_key(doc: dict[str, Any], n: int) -> None:
    doc.setdefault("AddressID", str(n))


def _sales_area_key(doc: dict[str, Any], n: int) -> None:
    for key, value in SALES_AREA.items():
        doc.setdefault(key, value)


_CHILD_KEYS: dict[str, Callable[[dict[str, Any], int], None]] = {
    "A_SalesOrderItem": _item_key,
    "A_BusinessPartnerAddress": _address_key,
    "A_CustomerSalesArea": _sales_area_key,
}


def _require(doc: dict[str, Any], es: EntitySet, *names: str) -> None:
    for name in names:
        if doc.get(name) in (None, ""):
            raise ODataError(400, f"Property '{name}' of '{es.name}' is required", propertyref=name)


def _business_partner_rule(state: SandboxState, planned: _Planned) -> None:
    doc = planned.doc
    doc.setdefault("BusinessPartnerCategory", "2")
    if doc["BusinessPartnerCategory"] not in ("1", "2", "3"):
        raise ODataError(
            400,
            "BusinessPartnerCategory must be 1 (person), 2 (organisation) or 3 (group)",
            propertyref="BusinessPartnerCategory",
        )
    name = (doc.get("OrganizationBPName1") or doc.get("BusinessPartnerFullName") or "").strip()
    if not name:
        raise ODataError(
            400,
            "An organisation needs OrganizationBPName1 (or BusinessPartnerFullName)",
            propertyref="OrganizationBPName1",
        )
    doc.setdefault("OrganizationBPName1", name[:40])
    doc.setdefault("BusinessPartnerFullName", name)
    doc.setdefault("SearchTerm1", name.split()[0].upper()[:20])
    doc.setdefault("BusinessPartnerGrouping", "BP02")
    doc.setdefault("BusinessPartnerIsBlocked", False)
    doc.setdefault("Language", "EN")
    has_customer = any(nav.name == "to_Customer" for nav, _ in planned.children)
    doc["Customer"] = doc["BusinessPartner"] if has_customer else ""
    for nav, children in planned.children:
        if nav.name == "to_Customer":
            for child in children:
                child.doc.setdefault("CustomerName", name[:80])
                child.doc.setdefault("CustomerFullName", name)


def _customer_rule(state: SandboxState, planned: _Planned) -> None:
    doc = planned.doc
    doc.setdefault("CustomerAccountGroup", "CUST")
    for flag in ("OrderIsBlockedForCustomer", "DeliveryIsBlocked", "BillingIsBlockedForCustomer"):
        doc.setdefault(flag, "")
    doc.setdefault("PostingIsBlocked", False)
    doc.setdefault("DeletionIndicator", False)


def _sales_order_rule(state: SandboxState, planned: _Planned) -> None:
    doc, es = planned.doc, planned.es
    _require(doc, es, "SalesOrderType", "SoldToParty")
    if state.store.get("A_Customer", doc["SoldToParty"]) is None:
        raise ODataError(
            400,
            f"Sold-to party {doc['SoldToParty']} is not a customer",
            propertyref="SoldToParty",
        )
    items = [c for nav, children in planned.children if nav.name == "to_Item" for c in children]
    if not items:
        raise ODataError(
            400, "A sales order needs at least one item (to_Item)", propertyref="to_Item"
        )
    doc.setdefault("SalesOrganization", SALES_AREA["SalesOrganization"])
    doc.setdefault("DistributionChannel", SALES_AREA["DistributionChannel"])
    doc.setdefault("OrganizationDivision", SALES_AREA["Division"])
    doc.setdefault("TransactionCurrency", "EUR")
    doc["OverallSDProcessStatus"] = "A"
    if not doc.get("CustomerPaymentTerms"):
        area_id = "\x1f".join((doc["SoldToParty"], *SALES_AREA.values()))
        area = state.store.get("A_CustomerSalesArea", area_id) or {}
        doc["CustomerPaymentTerms"] = area.get("CustomerPaymentTerms") or ""
    total = Decimal("0.00")
    for item in items:
        item.doc["TransactionCurrency"] = doc["TransactionCurrency"]
        total += _price_item(item)
    doc["TotalNetAmount"] = str(total)


def _price_item(item: _Planned) -> Decimal:
    doc, es = item.doc, item.es
    _require(doc, es, "Material", "RequestedQuantity")
    price = MATERIAL_PRICES.get(doc["Material"])
    if price is None:
        raise ODataError(400, f"Material {doc['Material']} does not exist", propertyref="Material")
    quantity = Decimal(doc["RequestedQuantity"])
    if not 0 < quantity < 1_000_000_000:
        raise ODataError(
            400, "RequestedQuantity must be above 0 and below 1e9", propertyref="RequestedQuantity"
        )
    doc["RequestedQuantity"] = str(quantity.quantize(Decimal("0.001")))
    amount = (price[0] * quantity).quantize(Decimal("0.01"))
    doc["NetAmount"] = str(amount)
    doc.setdefault("SalesOrderItemCategory", "TAN")
    doc.setdefault("SalesOrderItemText", price[1])
    doc.setdefault("RequestedQuantityUnit", "EA")
    return amount


def _billing_document_rule(state: SandboxState, planned: _Planned) -> None:
    doc, es = planned.doc, planned.es
    _require(doc, es, "SoldToParty", "TotalNetAmount")
    if state.store.get("A_Customer", doc["SoldToParty"]) is None:
        raise ODataError(
            400,
            f"Sold-to party {doc['SoldToParty']} is not a customer",
            propertyref="SoldToParty",
        )
    doc.setdefault("TaxAmount", "0.00")
    doc.setdefault("AccountingPostingStatus", "C")
    _check_posting_status(doc)
    doc["TotalGrossAmount"] = str(Decimal(doc["TotalNetAmount"]) + Decimal(doc["TaxAmount"]))
    doc.setdefault("BillingDocumentType", "F2")
    doc.setdefault("SDDocumentCategory", "M")
    for key, value in SALES_AREA.items():
        doc.setdefault(key, value)
    doc.setdefault("CompanyCode", "1010")
    doc.setdefault("PayerParty", doc["SoldToParty"])
    doc.setdefault("TransactionCurrency", "EUR")
    doc.setdefault("BillingDocumentIsCancelled", False)
    doc.setdefault("BillingDocumentDate", doc["CreationDate"])


def _credit_memo_request_rule(state: SandboxState, planned: _Planned) -> None:
    doc, es = planned.doc, planned.es
    _require(doc, es, "SoldToParty", "TotalNetAmount", "SDDocumentReason")
    if state.store.get("A_Customer", doc["SoldToParty"]) is None:
        raise ODataError(
            400,
            f"Sold-to party {doc['SoldToParty']} is not a customer",
            propertyref="SoldToParty",
        )
    if Decimal(doc["TotalNetAmount"]) <= 0:
        raise ODataError(
            400, "TotalNetAmount of a credit memo request must be above 0",
            propertyref="TotalNetAmount",
        )  # fmt: skip
    reference = doc.get("ReferenceSDDocument")
    if reference:
        billed = state.store.get("A_BillingDocument", reference)
        if billed is None:
            raise ODataError(
                400,
                f"Reference document {reference} is not a billing document",
                propertyref="ReferenceSDDocument",
            )
        if billed["SoldToParty"] != doc["SoldToParty"]:
            raise ODataError(
                400,
                f"Billing document {reference} belongs to sold-to party "
                f"{billed['SoldToParty']}, not {doc['SoldToParty']}",
                propertyref="ReferenceSDDocument",
            )
    doc.setdefault("CreditMemoRequestType", "CR")
    doc.setdefault("SalesOrganization", SALES_AREA["SalesOrganization"])
    doc.setdefault("DistributionChannel", SALES_AREA["DistributionChannel"])
    doc.setdefault("OrganizationDivision", SALES_AREA["Division"])
    doc.setdefault("TransactionCurrency", "EUR")
    doc.setdefault("CreditMemoRequestDate", doc["CreationDate"])
    doc["TotalNetAmount"] = str(Decimal(doc["TotalNetAmount"]).quantize(Decimal("0.01")))
    doc["OverallSDProcessStatus"] = "A"


def _check_posting_status(doc: dict[str, Any]) -> None:
    if doc.get("AccountingPostingStatus") not in ("A", "B", "C"):
        raise ODataError(
            400,
            "AccountingPostingStatus must be A (not posted), B (not completed) or C (posted)",
            propertyref="AccountingPostingStatus",
        )


def _bp_child_rule(state: SandboxState, planned: _Planned) -> None:
    es, doc = planned.es, planned.doc
    if es.name == "A_BusinessPartnerTaxNumber":
        _require(doc, es, "BPTaxType", "BPTaxNumber")


_RULES: dict[str, Callable[[SandboxState, _Planned], None]] = {
    "A_BusinessPartner": _business_partner_rule,
    "A_Customer": _customer_rule,
    "A_SalesOrder": _sales_order_rule,
    "A_BillingDocument": _billing_document_rule,
    "A_CreditMemoRequest": _credit_memo_request_rule,
    "A_BusinessPartnerTaxNumber": _bp_child_rule,
}


def _flatten(planned: _Planned) -> list[_Planned]:
    out = [planned]
    for _, children in planned.children:
        for child in children:
            out.extend(_flatten(child))
    return out


async def create(renderer: Renderer, state: SandboxState, es: EntitySet, body: Any) -> Response:
    """Validate, number and store one entity with its deep-insert children -> 201."""
    planned = _plan(es, body)
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
    _fill(state, planned)
    rows = _flatten(planned)
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


def _deep_paths(nav: Nav, children: list[tuple[Nav, list[_Planned]]]) -> list[tuple[str, ...]]:
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
        _check_posting_status(new)
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
