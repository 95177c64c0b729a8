"""The demo world: the same companies across the four systems, linked and slightly drifted.

``generate(customers, seed)`` is deterministic: the same arguments give the same world,
in every sandbox process. Each vendor module renders its own part of it in its own wire
shape; ``DemoData.manifest()`` lists the drift planted on purpose, so reconciliation can
be checked against the truth.

Links (the vendors' own cross-reference keys):
- ERP BusinessPartner ``bp`` (``"1000042"``) is the system of record;
- CRM Account carries ``ERP_Customer_Id__c = bp``;
- billing customer carries ``metadata[erp_bp] = bp`` and ``metadata[crm_account_id]``;
- support organization carries ``external_id = bp``;
- an ERP sales order's ``PurchaseOrderByCustomer`` is the CRM opportunity id it came from;
- an ERP billing document's ``PurchaseOrderByCustomer`` is the billing invoice id it posts.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = [
    "PRODUCTS",
    "DemoCompany",
    "DemoData",
    "DemoInvoice",
    "DemoOpportunity",
    "DemoOrder",
    "DemoProduct",
    "DemoSubscription",
    "DemoTicket",
    "Drift",
    "generate",
]

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
_BY_CODE = {p.code: p for p in PRODUCTS}

_COUNTRIES = {
    # country: (legal forms, currency, city)
    "DE": (("GmbH", "AG"), "EUR", "Berlin"),
    "FR": (("SAS", "SA"), "EUR", "Lyon"),
    "GB": (("Ltd", "PLC"), "GBP", "Leeds"),
    "US": (("Inc.", "LLC"), "USD", "Austin"),
    "NL": (("B.V.",), "EUR", "Utrecht"),
    "ES": (("S.L.",), "EUR", "Valencia"),
    "IT": (("S.r.l.",), "EUR", "Turin"),
    "SE": (("AB",), "SEK", "Malmo"),
}
_PREFIX = (
    "Nord", "Alp", "Blue", "Silver", "Iron", "Oak", "River", "Summit", "Harbor", "Vector",
    "Polar", "Cedar", "Atlas", "Orion", "Granite", "Meridian", "Beacon", "Falcon", "Copper",
    "Lumen", "Pioneer", "Quartz", "Sterling", "Tandem", "Vertex", "Willow", "Zenith", "Aurora",
)  # fmt: skip
_CORE = (
    "wind", "stone", "field", "bridge", "point", "gate", "line", "works", "forge", "wave",
    "path", "light", "peak", "port", "crest", "ridge", "haven", "spring",
)  # fmt: skip
_TRADE = (
    "Logistics", "Manufacturing", "Foods", "Pharma", "Energy", "Retail", "Software",
    "Engineering", "Textiles", "Chemicals", "Media", "Freight", "Robotics", "Health",
)  # fmt: skip
_INDUSTRY = {
    "Logistics": "Transportation", "Freight": "Transportation", "Manufacturing": "Manufacturing",
    "Robotics": "Manufacturing", "Engineering": "Manufacturing", "Textiles": "Manufacturing",
    "Foods": "Consumer Goods", "Retail": "Retail", "Pharma": "Healthcare", "Health": "Healthcare",
    "Energy": "Energy", "Chemicals": "Chemicals", "Software": "Technology", "Media": "Media",
}  # fmt: skip
_OWNERS = (
    "Maria Keller",
    "James Porter",
    "Aiko Tanaka",
    "Lucas Moreau",
    "Priya Raman",
    "Sven Lund",
)
_TERMS = ("NT14", "NT30", "NT30", "NT45", "NT60")
_SEGMENTS = ("Enterprise", "Mid-Market", "Mid-Market", "SMB", "SMB")
_OPEN_STAGES = ("Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review")
_SUB_STATUSES = (
    "active", "active", "active", "active", "trialing", "past_due", "canceled", "unpaid",
    "paused", "incomplete",
)  # fmt: skip
_INVOICE_STATUSES = ("paid", "paid", "paid", "open", "open", "draft", "uncollectible", "void")
_TICKET_TYPES = ("problem", "incident", "question", "task")
_TICKET_PRIORITIES = ("urgent", "high", "normal", "normal", "low")
_TICKET_STATUSES = ("new", "open", "open", "pending", "hold", "solved", "closed")
_SUBJECTS = (
    "Invoice total does not match the order",
    "Cannot log in after password reset",
    "Export to CSV times out",
    "Request for additional seats",
    "Integration webhook failing",
    "Question about renewal terms",
    "Payment failed but card is valid",
    "Data import stuck at 80%",
    "SSO configuration help",
    "Report shows wrong currency",
)


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
        return _BY_CODE[code]


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce-style id: 3-char key prefix, deterministic body."""
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    body = ""
    for _ in range(7):
        n, rem = divmod(n, 62)
        body = alphabet[rem] + body
    return f"{prefix}Dn000{body}AAQ"


def _stripe_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=14))


def _tax_id(rng: random.Random, country: str) -> str:
    def digits(k: int) -> str:
        return "".join(rng.choices(string.digits, k=k))

    match country:
        case "DE":
            return "DE" + digits(9)
        case "FR":
            return "FR" + digits(2) + digits(9)
        case "GB":
            return "GB" + digits(9)
        case "US":
            return digits(2) + "-" + digits(7)
        case "NL":
            return "NL" + digits(9) + "B01"
        case "ES":
            return "ES" + rng.choice(string.ascii_uppercase) + digits(7) + rng.choice("ABCDEFGHJ")
        case "IT":
            return "IT" + digits(11)
        case _:
            return "SE" + digits(10) + "01"


def generate(customers: int = 200, seed: int = 42) -> DemoData:
    """The demo world for ``customers`` companies, the same for the same ``seed``."""
    rng = random.Random(seed)
    companies: list[DemoCompany] = []
    names: set[str] = set()
    opp_n = order_n = doc_n = ticket_n = 0
    for i in range(customers):
        country = rng.choice(sorted(_COUNTRIES))
        forms, currency, city = _COUNTRIES[country]
        trade = rng.choice(_TRADE)
        while True:
            base = f"{rng.choice(_PREFIX)}{rng.choice(_CORE)} {trade}"
            name = f"{base} {rng.choice(forms)}"
            if name not in names:
                names.add(name)
                break
        created = EPOCH - timedelta(days=rng.randint(90, 1500))
        company = DemoCompany(
            index=i,
            bp=str(1000000 + i),
            crm_id=sf_id("001", 1000 + i),
            billing_id=_stripe_id(rng, "cus_"),
            support_id=360000100000 + i,
            name=name,
            country=country,
            city=city,
            currency=currency,
            tax_id=_tax_id(rng, country),
            payment_terms=rng.choice(_TERMS),
            segment=rng.choice(_SEGMENTS),
            industry=_INDUSTRY[trade],
            owner=rng.choice(_OWNERS),
            email=f"billing@{base.split()[0].lower()}-{i}.example.com",
            support_tier="standard",
            entitlement_status="inactive",
            entitlement_ends=None,
            created=created,
        )
        # opportunities: at least one won deal, some open, some lost
        for k in range(rng.randint(1, 3)):
            opp_n += 1
            codes = tuple(sorted(rng.sample([p.code for p in PRODUCTS], k=rng.randint(1, 2))))
            amount = sum((_BY_CODE[c].unit_amount * 12 for c in codes), Decimal("0.00"))
            won = k == 0
            closed = won or rng.random() < 0.3
            stage = "Closed Won" if won else "Closed Lost" if closed else rng.choice(_OPEN_STAGES)
            close = (created + timedelta(days=rng.randint(10, 60))).date()
            if not closed:
                close = (EPOCH + timedelta(days=rng.randint(10, 120))).date()
            company.opportunities.append(
                DemoOpportunity(
                    id=sf_id("006", 5000 + opp_n),
                    name=f"{base} - {_BY_CODE[codes[0]].name}",
                    stage=stage,
                    amount=amount,
                    close_date=close,
                    is_closed=closed,
                    is_won=won,
                    products=codes,
                )
            )
        for opp in company.opportunities:
            if not opp.is_won:
                continue
            order_n += 1
            order_id = str(5000000 + order_n)
            opp.erp_order = order_id
            items = tuple(
                (
                    _BY_CODE[code].material,
                    Decimal(qty := rng.choice((1, 1, 2, 5))),
                    _BY_CODE[code].unit_amount * qty,
                )
                for code in opp.products
            )
            ordered = datetime.combine(opp.close_date, datetime.min.time(), UTC)
            company.orders.append(DemoOrder(order_id, opp.id, rng.choice("ABCCC"), items, ordered))
            status = rng.choice(_SUB_STATUSES)
            interval = max((_BY_CODE[c].interval for c in opp.products), key=len)
            length = timedelta(days=365 if interval == "year" else 30)
            period_start = EPOCH - timedelta(days=rng.randint(1, 25))
            sub = DemoSubscription(
                id=_stripe_id(rng, "sub_"),
                status=status,
                items=tuple(
                    (_BY_CODE[c].price, int(q))
                    for (_, q, _), c in zip(items, opp.products, strict=True)
                ),
                start=ordered,
                period_start=period_start,
                period_end=period_start + length,
                erp_order=order_id,
            )
            monthly = sum((amt for (_, _, amt) in items), Decimal("0.00"))
            for n in range(rng.randint(1, 3)):
                inv_status = rng.choice(_INVOICE_STATUSES)
                if n > 0 and inv_status == "draft":
                    inv_status = "paid"
                tax = (monthly * Decimal("0.19")).quantize(Decimal("0.01"))
                inv_created = period_start - length * n
                document = None
                posted = False
                if inv_status != "draft":
                    doc_n += 1
                    document = str(90000000 + doc_n)
                    posted = rng.random() < 0.9
                sub.invoices.append(
                    DemoInvoice(
                        id=_stripe_id(rng, "in_"),
                        status=inv_status,
                        subtotal=monthly,
                        tax=tax,
                        created=inv_created,
                        due=inv_created + timedelta(days=30),
                        erp_document=document,
                        posted=posted,
                    )
                )
            company.subscriptions.append(sub)
            if status in ("active", "trialing", "past_due"):
                tiers = [_BY_CODE[c].support_tier for c in opp.products]
                rank = ("standard", "premium", "enterprise")
                company.support_tier = max(tiers, key=rank.index)
                company.entitlement_status = "at_risk" if status == "past_due" else "active"
                company.entitlement_ends = sub.period_end.date()
            elif status in ("canceled", "unpaid"):
                company.entitlement_status = "expired"
                company.entitlement_ends = sub.period_end.date() - timedelta(days=30)
        for _ in range(rng.randint(0, 4)):
            ticket_n += 1
            t_created = EPOCH - timedelta(days=rng.randint(0, 200), minutes=rng.randint(0, 1440))
            subject = rng.choice(_SUBJECTS)
            company.tickets.append(
                DemoTicket(
                    id=ticket_n,
                    subject=subject,
                    description=f"{subject}. Reported by {company.name}.",
                    type=rng.choice(_TICKET_TYPES),
                    priority=rng.choice(_TICKET_PRIORITIES),
                    status=rng.choice(_TICKET_STATUSES),
                    created=t_created,
                    updated=t_created + timedelta(hours=rng.randint(1, 300)),
                    tags=tuple(sorted(rng.sample(["billing", "login", "api", "sso", "export"], 2))),
                )
            )
        companies.append(company)

    # every status shows up at least once, whatever the dice said
    _cover_statuses(companies)
    drift, orphans = _plant_drift(rng, companies)
    return DemoData(seed=seed, companies=companies, orphans=orphans, drift=drift)


def _cover_statuses(companies: list[DemoCompany]) -> None:
    subs = [s for c in companies for s in c.subscriptions]
    for status, sub in zip(sorted(set(_SUB_STATUSES)), subs, strict=False):
        sub.status = status
    invoices = [inv for s in subs for inv in s.invoices if inv.erp_document]
    for status, inv in zip(("open", "paid", "uncollectible", "void"), invoices, strict=False):
        inv.status = status
    tickets = [t for c in companies for t in c.tickets]
    combos = [(p, s) for p in ("urgent", "high", "normal", "low") for s in _TICKET_STATUSES]
    for (priority, status), ticket in zip(combos, tickets, strict=False):
        ticket.priority, ticket.status = priority, status


def _plant_drift(
    rng: random.Random, companies: list[DemoCompany]
) -> tuple[list[Drift], list[OrphanBillingCustomer]]:
    """About 3% of customers drift, a quarter of them by each kind."""
    drift: list[Drift] = []
    orphans: list[OrphanBillingCustomer] = []
    count = max(4, round(len(companies) * 0.03)) if len(companies) >= 8 else 0
    chosen = rng.sample(companies, k=min(count, len(companies)))
    kinds = ("name_mismatch", "missing_in_support", "orphan_billing", "payment_terms_mismatch")
    for n, company in enumerate(chosen):
        kind = kinds[n % len(kinds)]
        if kind == "name_mismatch":
            first, rest = company.name.split(" ", 1)
            company.crm_name = f"{first}  {rest}".replace("  ", " ").upper()
            if company.crm_name == company.name:
                company.crm_name = company.name + " (old)"
            drift.append(
                Drift(
                    kind, company.bp, "crm", company.crm_id, "name", company.name, company.crm_name
                )
            )
        elif kind == "missing_in_support":
            company.in_support = False
            drift.append(Drift(kind, company.bp, "support", None, None, None, None))
        elif kind == "orphan_billing":
            orphan = OrphanBillingCustomer(
                id=_stripe_id(rng, "cus_"),
                name=company.name + " (duplicate)",
                email=company.email,
                erp_bp=str(1900000 + n),
            )
            orphans.append(orphan)
            drift.append(Drift(kind, orphan.erp_bp, "billing", orphan.id, None, None, None))
        else:
            other = next(t for t in ("NT14", "NT30", "NT45", "NT60") if t != company.payment_terms)
            company.crm_payment_terms = other
            drift.append(
                Drift(
                    kind,
                    company.bp,
                    "crm",
                    company.crm_id,
                    "payment_terms",
                    company.payment_terms,
                    other,
                )
            )
    return drift, orphans
