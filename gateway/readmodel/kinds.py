"""What the read model holds: per system, the kinds of record a customer 360 shows.

Each kind is read per customer by one batched actor message (the DataLoaders' own), so a
customer's *slice* of a kind (their orders, their cases) is one unit: read whole by a
read-through or an initial load, then kept complete by the feeds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.messages import (
    GetBillingDocuments,
    GetCases,
    GetCustomers,
    GetEntitlements,
    GetInvoices,
    GetOpportunities,
    GetOrders,
    GetSubscriptions,
    Message,
)
from canonical import (
    Case,
    Customer,
    Entitlement,
    Invoice,
    Opportunity,
    Order,
    Subscription,
    System,
)

__all__ = ["SLICES", "Kind", "SliceSpec", "identify", "slice_of", "spec_for"]


class Kind(enum.StrEnum):
    CUSTOMER = "customer"
    ORDER = "order"
    BILLING_DOCUMENT = "billing_document"
    INVOICE = "invoice"
    SUBSCRIPTION = "subscription"
    OPPORTUNITY = "opportunity"
    CASE = "case"
    ENTITLEMENT = "entitlement"


@dataclass(frozen=True, slots=True)
class SliceSpec:
    """One loader's records: ``many`` answers a tuple per customer, else one record."""

    loader: str
    system: System
    kind: Kind
    build: Callable[[tuple[str, ...]], Message]
    many: bool


SLICES: tuple[SliceSpec, ...] = (
    *(
        SliceSpec(f"customers:{system}", system, Kind.CUSTOMER, GetCustomers, False)
        for system in System
    ),
    SliceSpec("orders", System.ERP, Kind.ORDER, GetOrders, True),
    SliceSpec("billing_documents", System.ERP, Kind.BILLING_DOCUMENT, GetBillingDocuments, True),
    SliceSpec("invoices", System.BILLING, Kind.INVOICE, GetInvoices, True),
    SliceSpec("subscriptions", System.BILLING, Kind.SUBSCRIPTION, GetSubscriptions, True),
    SliceSpec("opportunities", System.CRM, Kind.OPPORTUNITY, GetOpportunities, True),
    SliceSpec("cases", System.SUPPORT, Kind.CASE, GetCases, True),
    SliceSpec("entitlements", System.SUPPORT, Kind.ENTITLEMENT, GetEntitlements, False),
)

_BY_LOADER = {spec.loader: spec for spec in SLICES}
_BY_KIND = {(spec.system, spec.kind): spec for spec in SLICES}


def slice_of(loader: str) -> SliceSpec | None:
    return _BY_LOADER.get(loader)


def spec_for(system: System, kind: Kind) -> SliceSpec:
    return _BY_KIND[(system, kind)]


def identify(value: Any) -> tuple[Kind, str, str]:
    """(kind, id, customer id) of a canonical record, all in the record's own system."""
    match value:
        case Customer():
            return Kind.CUSTOMER, value.id, value.id
        case Order():
            return Kind.ORDER, value.id, value.customer_id
        case Invoice() if value.system is System.ERP:
            return Kind.BILLING_DOCUMENT, value.id, value.customer_id
        case Invoice():
            return Kind.INVOICE, value.id, value.customer_id
        case Subscription():
            return Kind.SUBSCRIPTION, value.id, value.customer_id
        case Opportunity():
            return Kind.OPPORTUNITY, value.id, value.account_id
        case Case():
            return Kind.CASE, value.id, value.organization_id or ""
        case Entitlement():
            return Kind.ENTITLEMENT, value.organization_id, value.organization_id
    raise TypeError(f"{type(value).__name__} is not a record the read model keeps")
