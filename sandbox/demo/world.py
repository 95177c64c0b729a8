"""The demo world generated: ``generate(customers, seed)`` draws the companies (names,
countries, terms, segments, owners) and their records from one seeded random source, then
covers every status and plants the drift that ``DemoData.manifest()`` lists.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sandbox.demo.records import (
    EPOCH,
    PRODUCTS,
    PRODUCTS_BY_CODE,
    DemoCompany,
    DemoData,
    DemoInvoice,
    DemoOpportunity,
    DemoOrder,
    DemoSubscription,
    DemoTicket,
    Drift,
    OrphanBillingCustomer,
    sf_id,
)

__all__ = ["generate"]


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
            amount = sum((PRODUCTS_BY_CODE[c].unit_amount * 12 for c in codes), Decimal("0.00"))
            won = k == 0
            closed = won or rng.random() < 0.3
            stage = "Closed Won" if won else "Closed Lost" if closed else rng.choice(_OPEN_STAGES)
            close = (created + timedelta(days=rng.randint(10, 60))).date()
            if not closed:
                close = (EPOCH + timedelta(days=rng.randint(10, 120))).date()
            company.opportunities.append(
                DemoOpportunity(
                    id=sf_id("006", 5000 + opp_n),
                    name=f"{base} - {PRODUCTS_BY_CODE[codes[0]].name}",
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
                    PRODUCTS_BY_CODE[code].material,
                    Decimal(qty := rng.choice((1, 1, 2, 5))),
                    PRODUCTS_BY_CODE[code].unit_amount * qty,
                )
                for code in opp.products
            )
            ordered = datetime.combine(opp.close_date, datetime.min.time(), UTC)
            company.orders.append(DemoOrder(order_id, opp.id, rng.choice("ABCCC"), items, ordered))
            status = rng.choice(_SUB_STATUSES)
            interval = max((PRODUCTS_BY_CODE[c].interval for c in opp.products), key=len)
            length = timedelta(days=365 if interval == "year" else 30)
            period_start = EPOCH - timedelta(days=rng.randint(1, 25))
            sub = DemoSubscription(
                id=_stripe_id(rng, "sub_"),
                status=status,
                items=tuple(
                    (PRODUCTS_BY_CODE[c].price, int(q))
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
                tiers = [PRODUCTS_BY_CODE[c].support_tier for c in opp.products]
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
