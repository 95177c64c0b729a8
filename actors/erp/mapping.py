"""The ERP's wire mapping: SAP OData V2 entities <-> the canonical model.

Customers are business partners (``A_BusinessPartner``) with their address, tax number
and customer sales area expanded (``PartnerParts``); orders are ``A_SalesOrder`` with
``to_Item``; invoices are ``A_BillingDocument``. Dates travel as ``/Date(ms)/``, amounts
(``Edm.Decimal``) as strings. ``to_customer``, ``to_order`` and ``to_invoice`` read a row
(a row missing what the model needs is a ``MalformedResponse``); ``patches`` turns
canonical customer changes into the fields to set on each entity of a partner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from actors.errors import MalformedResponse, Rejected
from canonical.models import Customer, Invoice, Order, OrderItem, System, XRef

__all__ = [
    "SALES_AREA",
    "UPDATABLE",
    "PartnerParts",
    "credit_memo_request_id",
    "meta",
    "millis",
    "patches",
    "split_name",
    "to_customer",
    "to_invoice",
    "to_order",
]

T = TypeVar("T")

#: the sales area whose terms and currency are the customer's
SALES_AREA = {"SalesOrganization": "1010", "DistributionChannel": "10", "Division": "00"}
#: canonical customer fields the ERP keeps, and the entity that keeps each
UPDATABLE = {
    "name": "partner",
    "legal_name": "partner",
    "payment_terms": "sales_area",
    "currency": "sales_area",
    "tax_id": "tax",
    "country": "address",
    "credit_status": "customer",
}


def split_name(name: str) -> tuple[str, str]:
    """SAP keeps an organisation's name in 40-character parts (Name1, Name2 ...)."""
    return name[:40], name[40:80]


def meta(entity: Mapping[str, Any] | None, key: str) -> str | None:
    meta = entity.get("__metadata") if entity else None
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _results(value: Any) -> list[dict[str, Any]]:
    """An expanded to-many navigation's rows (``{"results": [...]}``); [] when deferred."""
    if isinstance(value, dict) and isinstance(value.get("results"), list):
        return [r for r in value["results"] if isinstance(r, dict)]
    return []


def _single(value: Any) -> dict[str, Any] | None:
    """An expanded to-one navigation (or None when deferred or absent)."""
    if isinstance(value, dict) and "__deferred" not in value:
        return value
    return None


class PartnerParts:
    """The expanded parts of one business partner."""

    def __init__(self, entity: Mapping[str, Any]) -> None:
        addresses = _results(entity.get("to_BusinessPartnerAddress"))
        taxes = _results(entity.get("to_BusinessPartnerTax"))
        self.address = addresses[0] if addresses else None
        self.tax = taxes[0] if taxes else None
        self.customer = _single(entity.get("to_Customer"))
        areas = _results(self.customer.get("to_CustomerSalesArea")) if self.customer else []
        wanted = [a for a in areas if all(a.get(k) == v for k, v in SALES_AREA.items())]
        chosen = wanted or areas
        self.sales_area: dict[str, Any] | None = chosen[0] if chosen else None
        self.country = (self.address or {}).get("Country") or None


def millis(value: Any) -> int:
    """An OData ``/Date(ms)/`` as epoch milliseconds (0 when absent or unreadable)."""
    try:
        moment = _date(value)
    except (ValueError, TypeError):
        return 0
    return 0 if moment is None else int(moment.timestamp() * 1000)


def _date(value: Any) -> datetime | None:
    """``/Date(1700000000000)/`` or ``/Date(1700000000000+0000)/`` as an aware UTC datetime."""
    if not value:
        return None
    text = str(value)
    if not (text.startswith("/Date(") and text.endswith(")/")):
        raise ValueError(f"not an OData date: {text!r}")
    inner = text[6:-2]
    for sign in "+-":
        head, sep, _ = inner[1:].partition(sign)
        if sep:
            inner = inner[0] + head
            break
    return datetime.fromtimestamp(int(inner) / 1000, UTC)


def to_customer(row: dict[str, Any]) -> Customer:
    return _translate("business partner", row, _customer)


def to_order(row: dict[str, Any]) -> Order:
    return _translate("sales order", row, _order)


def to_invoice(row: dict[str, Any]) -> Invoice:
    return _translate("billing document", row, _invoice)


def _translate(kind: str, row: dict[str, Any], build: Callable[[dict[str, Any]], T]) -> T:
    """``build(row)``; a row missing what the model needs is a MalformedResponse."""
    try:
        return build(row)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        raise MalformedResponse(
            System.ERP, f"{kind} could not be read ({type(exc).__name__}: {exc})"
        ) from exc


def _customer(row: dict[str, Any]) -> Customer:
    parts = PartnerParts(row)
    bp = row["BusinessPartner"]
    external = row.get("BusinessPartnerIDByExtSystem") or None
    names = [row.get("OrganizationBPName1") or "", row.get("OrganizationBPName2") or ""]
    legal = "".join(names).strip() or None
    customer = parts.customer or {}
    blocked = bool(
        row.get("BusinessPartnerIsBlocked")
        or customer.get("OrderIsBlockedForCustomer")
        or customer.get("PostingIsBlocked")
        or customer.get("BillingIsBlockedForCustomer")
    )
    area = parts.sales_area or {}
    return Customer(
        system=System.ERP,
        id=bp,
        name=row.get("BusinessPartnerFullName") or legal or bp,
        # the demo world onboards from the CRM, so an external id shaped like a Salesforce
        # account id (001...) is the CRM cross-reference
        xref=XRef(erp=bp, crm=external if external and external.startswith("001") else None),
        legal_name=legal,
        tax_id=(parts.tax or {}).get("BPTaxNumber") or None,
        country=parts.country,
        payment_terms=area.get("CustomerPaymentTerms") or None,
        credit_status="blocked" if blocked else "ok",
        currency=area.get("Currency") or None,
        updated_at=_date(row.get("LastChangeDate")),
    )


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal("0")


def _order(row: dict[str, Any]) -> Order:
    items = tuple(
        OrderItem(
            material=item["Material"],
            quantity=_decimal(item.get("RequestedQuantity")),
            net_amount=_decimal(item["NetAmount"]) if item.get("NetAmount") else None,
        )
        for item in _results(row.get("to_Item"))
    )
    return Order(
        system=System.ERP,
        id=row["SalesOrder"],
        customer_id=row["SoldToParty"],
        purchase_order=row.get("PurchaseOrderByCustomer") or None,
        status=row.get("OverallSDProcessStatus") or "A",
        net_amount=_decimal(row.get("TotalNetAmount")),
        currency=row.get("TransactionCurrency") or "",
        items=items,
        created_at=_date(row.get("CreationDate")),
    )


def _invoice(row: dict[str, Any]) -> Invoice:
    posted = row.get("AccountingPostingStatus") == "C"
    if row.get("BillingDocumentIsCancelled"):
        status = "cancelled"
    else:
        status = "posted" if posted else "not_posted"
    return Invoice(
        system=System.ERP,
        id=row["BillingDocument"],
        customer_id=row["SoldToParty"],
        status=status,
        total=_decimal(row.get("TotalGrossAmount")),
        currency=row.get("TransactionCurrency") or "",
        tax=_decimal(row.get("TaxAmount")),
        billing_invoice=row.get("PurchaseOrderByCustomer") or None,
        erp_document=row["BillingDocument"],
        posted=posted,
        created_at=_date(row.get("BillingDocumentDate") or row.get("CreationDate")),
    )


def patches(
    entity: dict[str, Any], changes: Mapping[str, str | None]
) -> dict[str, tuple[str | None, str | None, dict[str, Any]]]:
    """Per target entity: (its uri or None to create it, its ETag, the fields to set)."""
    parts = PartnerParts(entity)
    out: dict[str, tuple[str | None, str | None, dict[str, Any]]] = {}

    def put(target: str, part: dict[str, Any] | None, fields: dict[str, Any]) -> None:
        uri, etag = (meta(part, "uri"), meta(part, "etag")) if part else (None, None)
        out.setdefault(target, (uri, etag, {}))[2].update(fields)

    for name, value in changes.items():
        text = value or ""
        match name:
            case "name":
                put("partner", entity, {"BusinessPartnerFullName": text})
                if "legal_name" not in changes:
                    name1, name2 = split_name(text)
                    put("partner", entity, {"OrganizationBPName1": name1})
                    put("partner", entity, {"OrganizationBPName2": name2})
            case "legal_name":
                name1, name2 = split_name(text)
                put("partner", entity, {"OrganizationBPName1": name1})
                put("partner", entity, {"OrganizationBPName2": name2})
            case "payment_terms":
                put("sales_area", parts.sales_area, {"CustomerPaymentTerms": text})
            case "currency":
                put("sales_area", parts.sales_area, {"Currency": text})
            case "tax_id":
                put("tax", parts.tax, {"BPTaxNumber": text})
            case "country":
                put("address", parts.address, {"Country": text})
            case "credit_status":
                if text not in ("ok", "blocked"):
                    raise Rejected(
                        System.ERP,
                        f"credit_status {text!r} is not one the ERP can set (ok, blocked)",
                        details={"credit_status": "expected ok or blocked"},
                    )
                block = "01" if text == "blocked" else ""
                put("customer", parts.customer, {"OrderIsBlockedForCustomer": block})
    return out


def credit_memo_request_id(entity: Mapping[str, Any]) -> str:
    number = entity.get("CreditMemoRequest")
    if not isinstance(number, str) or not number:
        raise MalformedResponse(System.ERP, "a credit memo request without CreditMemoRequest")
    return number
