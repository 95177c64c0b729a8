"""JSON forms of canonical values carried in outbox payloads and saga results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from canonical import Customer, System, XRef

__all__ = ["customer_from_payload", "customer_payload", "iso_date", "parse_date"]

_CUSTOMER_FIELDS = (
    "name",
    "legal_name",
    "tax_id",
    "country",
    "payment_terms",
    "credit_status",
    "currency",
    "email",
    "segment",
    "industry",
    "owner",
    "support_tier",
)


def customer_payload(
    values: Mapping[str, Any], xref: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A customer's canonical fields (``None`` left out) and its cross-reference ids."""
    body = {k: values[k] for k in _CUSTOMER_FIELDS if values.get(k) is not None}
    body["xref"] = dict(xref or {})
    return body


def customer_from_payload(system: System, body: Mapping[str, Any]) -> Customer:
    """The ``Customer`` to ensure in ``system`` (its native id is not known yet)."""
    xref = body.get("xref") or {}
    return Customer(
        system=system,
        id="",
        xref=XRef(
            erp=xref.get("erp"),
            billing=xref.get("billing"),
            crm=xref.get("crm"),
            support=xref.get("support"),
        ),
        **{k: body.get(k) for k in _CUSTOMER_FIELDS if k != "name"},
        name=body["name"],
    )


def iso_date(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


def parse_date(value: object) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None
