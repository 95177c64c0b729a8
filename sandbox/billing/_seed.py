"""The billing sandbox's demo world in Stripe's shape: customers, products, prices,
subscriptions and invoices seeded from ``sandbox.demo``, built with the object shapes of
``sandbox.billing._objects``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandbox.app import SandboxState
from sandbox.billing._objects import (
    address,
    cents,
    customer_doc,
    invoice_doc,
    line_item,
    price_doc,
    product_doc,
    subscription_doc,
    subscription_item,
    unix,
)
from sandbox.demo import PRODUCTS, DemoCompany, DemoInvoice, DemoSubscription

__all__ = ["seed"]

_LOCALES = {
    "DE": "de-DE",
    "FR": "fr-FR",
    "GB": "en-GB",
    "US": "en-US",
    "NL": "nl-NL",
    "ES": "es-ES",
    "IT": "it-IT",
    "SE": "sv-SE",
}


async def seed(state: SandboxState) -> None:
    """Render the demo world as Stripe objects (no events: seeding is not a change)."""
    demo = state.demo
    origin = unix(datetime(2022, 1, 1, tzinfo=UTC))
    products = [product_doc(p, origin) for p in PRODUCTS]
    prices = {p.price: price_doc(p, origin) for p in PRODUCTS}
    customers: list[tuple[str, dict[str, Any]]] = []
    subscriptions: list[tuple[str, dict[str, Any]]] = []
    invoices: list[tuple[str, dict[str, Any]]] = []
    for company in demo.companies:
        customer = _demo_customer(company)
        customers.append((customer["id"], customer))
        for sub in company.subscriptions:
            sub_doc, invs = _demo_subscription(company, customer, sub, prices)
            subscriptions.append((sub_doc["id"], sub_doc))
            invoices.extend((inv["id"], inv) for inv in invs)
    for orphan in demo.orphans:
        customers.append(
            (
                orphan.id,
                customer_doc(
                    orphan.id,
                    created=unix(datetime(2025, 6, 1, tzinfo=UTC)),
                    name=orphan.name,
                    email=orphan.email,
                    metadata={"erp_bp": orphan.erp_bp},
                ),
            )
        )
    await state.store.put_many("product", [(p["id"], p) for p in products])
    await state.store.put_many("price", list(prices.items()))
    await state.store.put_many("customer", customers)
    await state.store.put_many("subscription", subscriptions)
    # oldest first, so that insertion order agrees with creation order
    invoices.sort(key=lambda pair: int(pair[1]["created"]))
    await state.store.put_many("invoice", invoices)


def _demo_customer(company: DemoCompany) -> dict[str, Any]:
    return customer_doc(
        company.billing_id,
        created=unix(company.created),
        name=company.name,
        email=company.email,
        metadata={"erp_bp": company.bp, "crm_account_id": company.crm_id},
        addr=address(company.country, company.city),
        currency=company.currency.lower(),
        preferred_locales=[_LOCALES.get(company.country, "en-US")],
        delinquent=any(s.status in ("past_due", "unpaid") for s in company.subscriptions),
    )


def _demo_subscription(
    company: DemoCompany,
    customer: dict[str, Any],
    sub: DemoSubscription,
    prices: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    created = unix(sub.start)
    period = (unix(sub.period_start), unix(sub.period_end))
    items = [
        subscription_item(sub.id, prices[price], quantity, created, *period)
        for price, quantity in sub.items
    ]
    doc = subscription_doc(
        sub.id,
        customer=company.billing_id,
        created=created,
        status=sub.status,
        items=items,
        currency=company.currency.lower(),
        period=period,
        metadata={"erp_order": sub.erp_order} if sub.erp_order else {},
        collection_method="send_invoice",
        days_until_due=30,
        latest_invoice=sub.invoices[0].id if sub.invoices else None,
    )
    if sub.status == "canceled":
        doc["canceled_at"] = doc["ended_at"] = period[0]
    length = period[1] - period[0]
    invoices = [
        _demo_invoice(
            customer,
            doc,
            inv,
            (period[0] - n * length, period[1] - n * length),
            first=n == len(sub.invoices) - 1,
        )
        for n, inv in reversed(list(enumerate(sub.invoices)))  # oldest first: numbering
    ]
    return doc, invoices


def _demo_invoice(
    customer: dict[str, Any],
    sub: dict[str, Any],
    inv: DemoInvoice,
    period: tuple[int, int],
    *,
    first: bool,
) -> dict[str, Any]:
    created = unix(inv.created)
    lines = [line_item(inv.id, item, sub["currency"], period) for item in sub["items"]["data"]]
    doc = invoice_doc(
        inv.id,
        customer=customer,
        subscription=sub["id"],
        created=created,
        currency=sub["currency"],
        lines=lines,
        collection_method="send_invoice",
        days_until_due=30,
        billing_reason="subscription_create" if first else "subscription_cycle",
        period=period,
    )
    # the demo's own figures win: they are what the ERP's billing documents say
    doc["subtotal"], doc["tax"] = cents(inv.subtotal), cents(inv.tax)
    doc["total"] = doc["amount_due"] = cents(inv.total)
    doc["due_date"] = unix(inv.due)
    doc["status"] = inv.status
    transitions = doc["status_transitions"]
    if inv.status != "draft":
        doc["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        transitions["finalized_at"] = created
        doc["hosted_invoice_url"] = None
    if inv.erp_document:
        doc["metadata"] = {"erp_billing_document": inv.erp_document}
    if inv.status == "paid":
        doc["amount_paid"], doc["amount_remaining"], doc["paid"] = doc["total"], 0, True
        doc["attempted"], doc["attempt_count"] = True, 1
        transitions["paid_at"] = created + 86400 * 7
    else:
        doc["amount_remaining"] = 0 if inv.status == "void" else doc["total"]
    if inv.status == "void":
        transitions["voided_at"] = created + 86400
    if inv.status == "uncollectible":
        transitions["marked_uncollectible_at"] = created + 86400 * 45
    return doc
