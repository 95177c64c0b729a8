"""Support's wire mapping: Zendesk organizations and tickets <-> the canonical model.

Customers are Zendesk organizations (``external_id`` = ERP BusinessPartner), entitlements
live in ``organization_fields``, cases are tickets. ``to_customer``, ``to_entitlement``
and ``to_case`` read one object (an unreadable one is a ``MalformedResponse``);
``CUSTOMER_FIELDS`` says where each canonical field support can change lives.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from actors.errors import MalformedResponse
from canonical.models import Case, Customer, Entitlement, System, XRef

__all__ = ["CUSTOMER_FIELDS", "to_case", "to_customer", "to_entitlement", "zendesk_time"]

#: canonical customer fields support can change, and where they live on an organization
CUSTOMER_FIELDS = {
    "name": ("name",),
    "support_tier": ("organization_fields", "support_tier"),
    "billing_status": ("organization_fields", "billing_status"),
}


def zendesk_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def zendesk_date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def to_customer(org: Any) -> Customer:
    try:
        org_id = str(org["id"])
        fields = org.get("organization_fields") or {}
        external_id = org.get("external_id")
        return Customer(
            system=System.SUPPORT,
            id=org_id,
            name=str(org["name"]),
            xref=XRef(erp=str(external_id) if external_id else None, support=org_id),
            support_tier=fields.get("support_tier"),
            updated_at=zendesk_time(org.get("updated_at")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedResponse(
            System.SUPPORT, f"organization without {exc}: {org!r:.120}"
        ) from exc


def to_entitlement(org: Any) -> Entitlement:
    try:
        fields = org.get("organization_fields") or {}
        return Entitlement(
            system=System.SUPPORT,
            organization_id=str(org["id"]),
            status=fields.get("entitlement_status") or "inactive",
            support_tier=fields.get("support_tier"),
            ends=zendesk_date(fields.get("entitlement_ends")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedResponse(
            System.SUPPORT, f"organization without {exc}: {org!r:.120}"
        ) from exc


def to_case(ticket: Any) -> Case:
    try:
        org_id = ticket.get("organization_id")
        return Case(
            system=System.SUPPORT,
            id=str(ticket["id"]),
            organization_id=str(org_id) if org_id is not None else None,
            subject=str(ticket.get("subject") or ""),
            status=str(ticket["status"]),
            priority=ticket.get("priority"),
            type=ticket.get("type"),
            description=ticket.get("description"),
            external_id=ticket.get("external_id"),
            tags=tuple(ticket.get("tags") or ()),
            created_at=zendesk_time(ticket.get("created_at")),
            updated_at=zendesk_time(ticket.get("updated_at")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedResponse(System.SUPPORT, f"ticket without {exc}: {ticket!r:.120}") from exc
