"""A create's plan in the ERP sandbox: the payload validated into a tree of planned records,
then server-set fields, deep-insert child keys and each entity set's business rules filled
in (a known material, an existing sold-to party, totals); no store access while planning
and no store writes while filling. ``sandbox.erp.writes`` stores a plan once it is whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.app import SandboxState
from sandbox.erp.errors import ODataError
from sandbox.erp.model import ENTITY_SETS, EntitySet, Nav
from sandbox.erp.seed import MATERIAL_PRICES, SALES_AREA
from sandbox.erp.wire import check_payload

__all__ = ["Planned", "check_posting_status", "fill", "flatten", "now_micros", "plan"]


def now_micros(state: SandboxState) -> int:
    """A strictly increasing change stamp, so two quick writes never share an ETag."""
    last = state.extra.get("clock", 0)
    assert isinstance(last, int)
    now = max(time.time_ns() // 1000, last + 1)
    state.extra["clock"] = now
    return now


@dataclass(slots=True)
class Planned:
    es: EntitySet
    doc: dict[str, Any]
    children: list[tuple[Nav, list[Planned]]] = field(default_factory=list)


def plan(es: EntitySet, body: Any) -> Planned:
    """Validate one entity (and its deep-insert children) into a plan; no store access."""
    props, nested = check_payload(es, body, creating=True)
    planned = Planned(es, props)
    for nav_name, items in nested.items():
        nav = es.nav_map[nav_name]
        child_es = ENTITY_SETS[nav.target]
        planned.children.append((nav, [plan(child_es, item) for item in items]))
    return planned


def fill(state: SandboxState, planned: Planned) -> None:
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
            fill(state, child)
    for key in es.keys:
        if not doc.get(key):
            raise ODataError(
                400, f"Key property '{key}' of '{es.name}' is missing", propertyref=key
            )
    for prop in es.props:
        doc.setdefault(prop.name, None)


def _no_rule(state: SandboxState, planned: Planned) -> None:
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


def _business_partner_rule(state: SandboxState, planned: Planned) -> None:
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


def _customer_rule(state: SandboxState, planned: Planned) -> None:
    doc = planned.doc
    doc.setdefault("CustomerAccountGroup", "CUST")
    for flag in ("OrderIsBlockedForCustomer", "DeliveryIsBlocked", "BillingIsBlockedForCustomer"):
        doc.setdefault(flag, "")
    doc.setdefault("PostingIsBlocked", False)
    doc.setdefault("DeletionIndicator", False)


def _sales_order_rule(state: SandboxState, planned: Planned) -> None:
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


def _price_item(item: Planned) -> Decimal:
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


def _billing_document_rule(state: SandboxState, planned: Planned) -> None:
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
    check_posting_status(doc)
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


def _credit_memo_request_rule(state: SandboxState, planned: Planned) -> None:
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


def check_posting_status(doc: dict[str, Any]) -> None:
    if doc.get("AccountingPostingStatus") not in ("A", "B", "C"):
        raise ODataError(
            400,
            "AccountingPostingStatus must be A (not posted), B (not completed) or C (posted)",
            propertyref="AccountingPostingStatus",
        )


def _bp_child_rule(state: SandboxState, planned: Planned) -> None:
    es, doc = planned.es, planned.doc
    if es.name == "A_BusinessPartnerTaxNumber":
        _require(doc, es, "BPTaxType", "BPTaxNumber")


_RULES: dict[str, Callable[[SandboxState, Planned], None]] = {
    "A_BusinessPartner": _business_partner_rule,
    "A_Customer": _customer_rule,
    "A_SalesOrder": _sales_order_rule,
    "A_BillingDocument": _billing_document_rule,
    "A_CreditMemoRequest": _credit_memo_request_rule,
    "A_BusinessPartnerTaxNumber": _bp_child_rule,
}


def flatten(planned: Planned) -> list[Planned]:
    out = [planned]
    for _, children in planned.children:
        for child in children:
            out.extend(flatten(child))
    return out
