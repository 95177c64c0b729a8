"""Stripe objects as the sandbox stores and serves them (the demo world in that shape is
seeded by ``sandbox.billing._seed``).

Stored documents are the exact JSON objects the API answers with (``"object"``, ``id``,
``created`` as unix seconds, ``livemode: false``, ``metadata``); amounts are integers in
cents. Handlers never change a stored document in place: they ``clone`` it, change the
copy and put it back, so a failed write leaves the served state unchanged.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from sandbox.demo import DemoProduct

__all__ = [
    "API_VERSION",
    "CURRENCIES",
    "TAX_RATE",
    "add_interval",
    "clone",
    "customer_doc",
    "invoice_doc",
    "new_id",
    "recompute_invoice",
    "settle_invoice",
]

#: the API version events are rendered in (subscription periods still on the subscription)
API_VERSION = "2024-06-20"
#: every seeded price bills in these currencies at the same unit amount (sandbox shortcut)
CURRENCIES = ("eur", "gbp", "usd", "sek")
#: one flat tax rate on every invoice, as the demo world has it
TAX_RATE = Decimal("0.19")
_ALNUM = string.ascii_letters + string.digits
#: draws object ids: unique, not secret (a draw per character from the OS cost more than
#: the rest of a request); seeded from the OS, so a restart never repeats a sequence
_IDS = random.Random()


def new_id(prefix: str) -> str:
    return prefix + "".join(_IDS.choices(_ALNUM, k=14))


def clone(doc: dict[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    return copy


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def add_interval(start: int, interval: str, count: int = 1) -> int:
    """``start`` plus ``count`` calendar months or years, as Stripe bills periods."""
    moment = datetime.fromtimestamp(start, UTC)
    months = count * (12 if interval == "year" else 1)
    if interval in ("day", "week"):
        return start + count * 86400 * (7 if interval == "week" else 1)
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return unix(moment.replace(year=year, month=month, day=day))


def _invoice_prefix(customer_id: str) -> str:
    return hashlib.sha1(customer_id.encode(), usedforsecurity=False).hexdigest()[:8].upper()


def address(country: str | None = None, city: str | None = None) -> dict[str, Any]:
    return {
        "city": city,
        "country": country,
        "line1": None,
        "line2": None,
        "postal_code": None,
        "state": None,
    }


def customer_doc(
    customer_id: str,
    *,
    created: int,
    name: str | None,
    email: str | None,
    metadata: dict[str, str],
    addr: dict[str, Any] | None = None,
    currency: str | None = None,
    preferred_locales: list[str] | None = None,
    description: str | None = None,
    phone: str | None = None,
    delinquent: bool = False,
) -> dict[str, Any]:
    return {
        "id": customer_id,
        "object": "customer",
        "address": addr,
        "balance": 0,
        "created": created,
        "currency": currency,
        "default_source": None,
        "delinquent": delinquent,
        "description": description,
        "discount": None,
        "email": email,
        "invoice_prefix": _invoice_prefix(customer_id),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": phone,
        "preferred_locales": preferred_locales or [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def product_id(product: DemoProduct) -> str:
    return "prod_" + product.code.replace("-", "").lower()


def product_doc(product: DemoProduct, created: int) -> dict[str, Any]:
    return {
        "id": product_id(product),
        "object": "product",
        "active": True,
        "created": created,
        "default_price": product.price,
        "description": None,
        "images": [],
        "livemode": False,
        "metadata": {"erp_material": product.material, "product_code": product.code},
        "name": product.name,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price_doc(product: DemoProduct, created: int) -> dict[str, Any]:
    amount = cents(product.unit_amount)
    return {
        "id": product.price,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "eur",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": product.code,
        "metadata": {"erp_material": product.material, "product_code": product.code},
        "nickname": product.name,
        "product": product_id(product),
        "recurring": {
            "aggregate_usage": None,
            "interval": product.interval,
            "interval_count": 1,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def subscription_item(
    sub_id: str, price: dict[str, Any], quantity: int, created: int, start: int, end: int
) -> dict[str, Any]:
    return {
        "id": new_id("si_"),
        "object": "subscription_item",
        "created": created,
        "current_period_end": end,
        "current_period_start": start,
        "metadata": {},
        "price": price,
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def subscription_doc(
    sub_id: str,
    *,
    customer: str,
    created: int,
    status: str,
    items: list[dict[str, Any]],
    currency: str,
    period: tuple[int, int],
    metadata: dict[str, str],
    collection_method: str,
    days_until_due: int | None,
    latest_invoice: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "billing_cycle_anchor": period[0],
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "collection_method": collection_method,
        "created": created,
        "currency": currency,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "customer": customer,
        "days_until_due": days_until_due,
        "default_payment_method": None,
        "description": description,
        "discount": None,
        "ended_at": None,
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "total_count": len(items),
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "metadata": metadata,
        "pause_collection": None,
        "start_date": created,
        "status": status,
        "trial_end": None,
        "trial_start": None,
    }


def line_item(
    invoice_id: str,
    item: dict[str, Any],
    currency: str,
    period: tuple[int, int],
) -> dict[str, Any]:
    price = item["price"]
    quantity = int(item["quantity"])
    name = price.get("nickname") or price["id"]
    return {
        "id": new_id("il_"),
        "object": "line_item",
        "amount": int(price["unit_amount"]) * quantity,
        "currency": currency,
        "description": f"{quantity} x {name} (per {price['recurring']['interval']})",
        "discountable": True,
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "period": {"start": period[0], "end": period[1]},
        "price": price,
        "proration": False,
        "quantity": quantity,
        "subscription": item.get("subscription"),
        "subscription_item": item["id"],
        "type": "subscription",
    }


def invoice_doc(
    invoice_id: str,
    *,
    customer: dict[str, Any],
    subscription: str | None,
    created: int,
    currency: str,
    lines: list[dict[str, Any]],
    collection_method: str,
    days_until_due: int | None,
    billing_reason: str,
    metadata: dict[str, str] | None = None,
    period: tuple[int, int] | None = None,
    description: str | None = None,
    auto_advance: bool = False,
) -> dict[str, Any]:
    """A draft invoice; ``recompute_invoice`` fills the amounts from its lines."""
    start, end = period or (created, created)
    doc = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "DE",
        "amount_due": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": auto_advance,
        "billing_reason": billing_reason,
        "collection_method": collection_method,
        "created": created,
        "currency": currency,
        "customer": customer["id"],
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "days_until_due": days_until_due,
        "description": description,
        "due_date": (
            created + days_until_due * 86400
            if collection_method == "send_invoice" and days_until_due is not None
            else None
        ),
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "total_count": len(lines),
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": metadata or {},
        "number": None,
        "paid": False,
        "period_end": end,
        "period_start": start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": subscription,
        "subtotal": 0,
        "tax": 0,
        "total": 0,
        "webhooks_delivered_at": None,
    }
    recompute_invoice(doc)
    return doc


def recompute_invoice(doc: dict[str, Any]) -> None:
    """Amounts from the lines; credit notes issued before payment lower ``amount_due``."""
    subtotal = sum(int(line["amount"]) for line in doc["lines"]["data"])
    tax = cents(Decimal(subtotal) * TAX_RATE / 100)
    total = subtotal + tax
    doc["subtotal"], doc["tax"], doc["total"] = subtotal, tax, total
    settle_invoice(doc)


def settle_invoice(doc: dict[str, Any]) -> None:
    """``amount_due``/``_paid``/``_remaining`` from ``total``, status and pre-payment credits."""
    due = int(doc["total"]) - int(doc.get("pre_payment_credit_notes_amount") or 0)
    doc["amount_due"] = due
    paid = doc["status"] == "paid"
    doc["amount_paid"] = due if paid else 0
    doc["amount_remaining"] = 0 if paid or doc["status"] == "void" else due
