"""The demo world's records: the product catalogue and the companies with their
opportunities, orders, invoices, subscriptions and tickets, the drift planted among them,
and the Salesforce-style ids they carry. ``sandbox.demo.world`` generates them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

#: the world's "today": fixed so that generated dates are reproducible
EPOCH = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DemoProduct:
    code: str
    name: str
    material: str  # ERP material
    price: str  # billing price id
    unit_amount: Decimal
    interval: str  # month | year
    support_tier: str


PRODUCTS: tuple[DemoProduct, ...] = (
    DemoProduct(
        "CW-CORE",
        "Core Platform",
        "MAT-1001",
        "price_core_monthly",
        Decimal("500.00"),
        "month",
        "standard",
    ),
    DemoProduct(
        "CW-PLUS",
        "Platform Plus",
        "MAT-1002",
        "price_plus_monthly",
        Decimal("1200.00"),
        "month",
        "premium",
    ),
    DemoProduct(
        "CW-ENT",
        "Enterprise Suite",
        "MAT-1003",
        "price_enterprise_yearly",
        Decimal("30000.00"),
        "year",
        "enterprise",
    ),
    DemoProduct(
        "CW-SEAT",
        "Additional Seat",
        "MAT-2001",
        "price_seat_monthly",
        Decimal("25.00"),
        "month",
        "standard",
    ),
    DemoProduct(
        "CW-SUPPORT",
        "Premium Support",
        "MAT-3001",
        "price_support_yearly",
        Decimal("5000.00"),
        "year",
        "premium",
    ),
)
PRODUCTS_BY_CODE = {p.code: p for p in PRODUCTS}


@dataclass(slots=True)
class DemoOpportunity:
    id: str  # 006...
    name: str
    stage: str
    amount: Decimal
    close_date: date
    is_closed: bool
    is_won: bool
    products: tuple[str, ...]
    erp_order: str | None = None  # set when won and ordered


@dataclass(slots=True)
class DemoOrder:
    id: str  # SalesOrder
    purchase_order: str  # the CRM opportunity id
    status: str  # OverallSDProcessStatus A|B|C
    items: tuple[tuple[str, Decimal, Decimal], ...]  # (material, quantity, net amount)
    created: datetime

    @property
    def net_amount(self) -> Decimal:
        return sum((item[2] for item in self.items), Decimal("0.00"))


@dataclass(slots=True)
class DemoInvoice:
    id: str  # in_...
    status: str
    subtotal: Decimal
    tax: Decimal
    created: datetime
    due: datetime
    erp_document: str | None  # BillingDocument, when finalized
    posted: bool

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax


@dataclass(slots=True)
class DemoSubscription:
    id: str  # sub_...
    status: str
    items: tuple[tuple[str, int], ...]  # (price id, quantity)
    start: datetime
    period_start: datetime
    period_end: datetime
    erp_order: str | None
    invoices: list[DemoInvoice] = field(default_factory=list)


@dataclass(slots=True)
class DemoTicket:
    id: int
    subject: str
    description: str
    type: str
    priority: str
    status: str
    created: datetime
    updated: datetime
    tags: tuple[str, ...]


@dataclass(slots=True)
class DemoCompany:
    index: int
    bp: str  # ERP BusinessPartner
    crm_id: str  # Salesforce Account id
    billing_id: str  # Stripe customer id
    support_id: int  # Zendesk organization id
    name: str
    country: str
    city: str
    currency: str
    tax_id: str
    payment_terms: str
    segment: str
    industry: str
    owner: str
    email: str
    support_tier: str
    entitlement_status: str
    entitlement_ends: date | None
    created: datetime
    opportunities: list[DemoOpportunity] = field(default_factory=list)
    orders: list[DemoOrder] = field(default_factory=list)
    subscriptions: list[DemoSubscription] = field(default_factory=list)
    tickets: list[DemoTicket] = field(default_factory=list)
    # what each system holds where it differs from the truth above (planted drift)
    crm_name: str | None = None
    crm_payment_terms: str | None = None
    in_support: bool = True


@dataclass(frozen=True, slots=True)
class Drift:
    kind: str  # name_mismatch | missing_in_support | orphan_billing | payment_terms_mismatch
    erp_bp: str | None
    system: str
    record_id: str | None
    field: str | None
    expected: str | None
    actual: str | None


@dataclass(slots=True)
class OrphanBillingCustomer:
    id: str
    name: str
    email: str
    erp_bp: str  # points at no business partner


@dataclass(slots=True)
class DemoData:
    seed: int
    companies: list[DemoCompany]
    orphans: list[OrphanBillingCustomer]
    drift: list[Drift]

    def manifest(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "customers": len(self.companies),
            "drift": [
                {
                    "kind": d.kind,
                    "erp_bp": d.erp_bp,
                    "system": d.system,
                    "record_id": d.record_id,
                    "field": d.field,
                    "expected": d.expected,
                    "actual": d.actual,
                }
                for d in self.drift
            ],
        }

    def product(self, code: str) -> DemoProduct:
        return PRODUCTS_BY_CODE[code]


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce-style id: 3-char key prefix, deterministic body."""
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    body = ""
    for _ in range(7):
        n, rem = divmod(n, 62)
        body = alphabet[rem] + body
    return f"{prefix}Dn000{body}AAQ"
