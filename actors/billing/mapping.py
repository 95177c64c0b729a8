"""Billing's wire mapping: Stripe objects <-> the canonical model, and Stripe's encodings.

Requests are form-encoded with Stripe's bracketed keys (``form_encode``:
``metadata[erp_bp]=...``, ``items[0][price]=...``); search values are quoted and escaped
(``search_quote``). Amounts travel in cents, times as epoch seconds. ``to_customer``,
``to_subscription`` and ``to_invoice`` read one object (an unreadable one is a
``MalformedResponse``); ``list_data`` reads a list answer's ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from actors.errors import MalformedResponse
from canonical import Customer, Invoice, Subscription, SubscriptionItem, System, XRef

__all__ = [
    "form_encode",
    "list_data",
    "search_quote",
    "to_customer",
    "to_invoice",
    "to_subscription",
]


def form_encode(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as ``a[b]``, lists as ``a[0]``, bools lower-case."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        pairs.extend(_encode_value(name, value))
    return pairs


def _encode_value(name: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return form_encode(value, name)
    if isinstance(value, list | tuple):
        out: list[tuple[str, str]] = []
        for n, item in enumerate(value):
            out.extend(_encode_value(f"{name}[{n}]", item))
        return out
    if isinstance(value, bool):
        return [(name, "true" if value else "false")]
    if value is None:
        return [(name, "")]  # Stripe reads an empty value as "unset"
    return [(name, str(value))]


def search_quote(value: str) -> str:
    """A search-language string literal: single quotes, ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _moment(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


def _day(value: object) -> date | None:
    moment = _moment(value)
    return moment.date() if moment else None


def _money(value: object) -> Decimal | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


def _currency(value: object) -> str | None:
    return value.upper() if isinstance(value, str) else None


def to_customer(doc: Mapping[str, Any]) -> Customer:
    try:
        metadata = doc.get("metadata") or {}
        addr = doc.get("address") or {}
        return Customer(
            system=System.BILLING,
            id=str(doc["id"]),
            name=str(doc.get("name") or ""),
            xref=XRef(
                erp=metadata.get("erp_bp"),
                billing=str(doc["id"]),
                crm=metadata.get("crm_account_id"),
            ),
            country=addr.get("country"),
            currency=_currency(doc.get("currency")),
            email=doc.get("email"),
            updated_at=None,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedResponse(System.BILLING, f"unreadable customer: {exc!r}") from exc


def to_subscription(doc: Mapping[str, Any]) -> Subscription:
    try:
        items = tuple(
            SubscriptionItem(price=str(item["price"]["id"]), quantity=int(item["quantity"]))
            for item in list_data(doc["items"], "subscription items")
        )
        customer = doc["customer"]
        return Subscription(
            system=System.BILLING,
            id=str(doc["id"]),
            customer_id=str(customer["id"] if isinstance(customer, dict) else customer),
            status=str(doc["status"]),
            items=items,
            current_period_start=_moment(doc.get("current_period_start")),
            current_period_end=_moment(doc.get("current_period_end")),
            cancel_at_period_end=bool(doc.get("cancel_at_period_end")),
            erp_order=(doc.get("metadata") or {}).get("erp_order"),
            created_at=_moment(doc.get("created")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedResponse(System.BILLING, f"unreadable subscription: {exc!r}") from exc


def to_invoice(doc: Mapping[str, Any]) -> Invoice:
    try:
        customer = doc["customer"]
        total = _money(doc["total"])
        if total is None:
            raise ValueError(f"total is {doc['total']!r}, not cents")
        return Invoice(
            system=System.BILLING,
            id=str(doc["id"]),
            customer_id=str(customer["id"] if isinstance(customer, dict) else customer),
            status=str(doc["status"]),
            total=total,
            currency=_currency(doc.get("currency")) or "",
            amount_due=_money(doc.get("amount_remaining")),
            tax=_money(doc.get("tax")),
            billing_invoice=str(doc["id"]),
            erp_document=(doc.get("metadata") or {}).get("erp_billing_document"),
            due_date=_day(doc.get("due_date")),
            created_at=_moment(doc.get("created")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedResponse(System.BILLING, f"unreadable invoice: {exc!r}") from exc


def list_data(page: Any, what: str) -> list[dict[str, Any]]:
    data = page.get("data") if isinstance(page, dict) else None
    if not isinstance(data, list) or not all(isinstance(d, dict) and "id" in d for d in data):
        raise MalformedResponse(System.BILLING, f"{what}: a list answer without data")
    return data
