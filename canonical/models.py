"""Canonical records.

Connectors translate each vendor's wire format into these and back. A record always says
which ``system`` it came from and its ``id`` there; cross-reference keys (``XRef``) link
the same customer across systems. Money is ``Decimal``; times are aware UTC datetimes.
Fields a system does not have are ``None``: the golden record picks each field from the
system that owns it (``policies/ownership.toml``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


class System(enum.StrEnum):
    ERP = "erp"
    BILLING = "billing"
    CRM = "crm"
    SUPPORT = "support"


@dataclass(frozen=True, slots=True)
class XRef:
    """Every system's id for one customer, as far as they are known."""

    erp: str | None = None  # SAP BusinessPartner, e.g. "1000042"
    billing: str | None = None  # Stripe customer, "cus_..."
    crm: str | None = None  # Salesforce Account, "001..."
    support: str | None = None  # Zendesk organization id, as a string

    def get(self, system: System) -> str | None:
        value: str | None = getattr(self, system.value)
        return value


@dataclass(frozen=True, slots=True)
class Customer:
    system: System
    id: str
    name: str
    xref: XRef = field(default_factory=XRef)
    legal_name: str | None = None
    tax_id: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    payment_terms: str | None = None  # SAP terms key, e.g. "NT30"
    credit_status: str | None = None
    currency: str | None = None
    email: str | None = None
    segment: str | None = None
    industry: str | None = None
    owner: str | None = None
    support_tier: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderItem:
    material: str
    quantity: Decimal
    net_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """An ERP sales order."""

    system: System
    id: str
    customer_id: str  # native customer id in ``system``
    purchase_order: str | None  # PurchaseOrderByCustomer: the originating CRM opportunity
    status: str  # OverallSDProcessStatus: "A" open, "B" in process, "C" completed
    net_amount: Decimal
    currency: str
    items: tuple[OrderItem, ...] = ()
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice as billing sees it, or a billing document as the ERP sees it.

    ``erp_document`` / ``billing_invoice`` link the two halves; the experience API joins them.
    """

    system: System
    id: str
    customer_id: str
    status: str  # billing: draft|open|paid|uncollectible|void; ERP: posting status
    total: Decimal
    currency: str
    amount_due: Decimal | None = None
    tax: Decimal | None = None
    billing_invoice: str | None = None
    erp_document: str | None = None
    posted: bool | None = None
    due_date: date | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    system: System
    id: str
    invoice_id: str
    amount: Decimal
    currency: str
    status: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Product:
    """A sellable product: the ERP material and the billing price that bill it."""

    code: str  # canonical product code
    name: str
    material: str  # ERP material number
    price: str  # billing price id, "price_..."
    unit_amount: Decimal
    currency: str
    interval: str  # "month" | "year"
    support_tier: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionItem:
    price: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Subscription:
    system: System
    id: str
    customer_id: str
    status: str  # incomplete|trialing|active|past_due|canceled|unpaid|paused
    items: tuple[SubscriptionItem, ...] = ()
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    erp_order: str | None = None  # metadata[erp_order]
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Opportunity:
    system: System
    id: str
    account_id: str
    name: str
    stage: str
    amount: Decimal | None
    close_date: date | None
    is_closed: bool
    is_won: bool
    erp_order_number: str | None = None  # ERP_Order_Number__c
    products: tuple[str, ...] = ()  # canonical product codes (Products__c)
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Entitlement:
    """A support entitlement, kept on the support organization."""

    system: System
    organization_id: str
    status: str  # "active" | "at_risk" | "inactive" | "expired"
    support_tier: str | None
    ends: date | None


@dataclass(frozen=True, slots=True)
class Case:
    system: System
    id: str
    organization_id: str | None
    subject: str
    status: str  # new|open|pending|hold|solved|closed
    priority: str | None  # urgent|high|normal|low
    type: str | None = None  # problem|incident|question|task
    description: str | None = None
    external_id: str | None = None
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
