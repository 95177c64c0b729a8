"""Zendesk webhook events (the ``zen:event-type:*`` shape) for changes made through the API.

As Zendesk sends them, ids in ``detail`` are strings and ticket enums are upper case
(``"status": "OPEN"``); ``event`` carries ``previous`` / ``current`` for changes.
"""

from __future__ import annotations

from typing import Any

import orjson

from sandbox.docstore import Doc
from sandbox.webhooks import random_uuid

from .wire import now_iso
from .world import AGENT_ID

__all__ = ["ACCOUNT_ID", "organization_events", "ticket_events"]

ACCOUNT_ID = 9000001
_TICKET_VERSION = "2022-11-06"
_ORG_VERSION = "2022-06-20"
#: ids of the organization fields, as the account's field definitions would number them
_FIELD_IDS = {
    "entitlement_status": 360001000001,
    "support_tier": 360001000002,
    "entitlement_ends": 360001000003,
    "billing_status": 360001000004,
}
_FIELD_TYPES = {
    "entitlement_status": "dropdown",
    "support_tier": "dropdown",
    "entitlement_ends": "date",
    "billing_status": "text",
}


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _upper(value: object) -> str | None:
    return None if value is None else str(value).upper()


def _envelope(
    kind: str, subject: str, version: str, detail: dict[str, Any], event: dict[str, Any]
) -> bytes:
    body = {
        "type": f"zen:event-type:{kind}",
        "account_id": ACCOUNT_ID,
        "id": random_uuid(),
        "time": now_iso(),
        "zendesk_event_version": version,
        "subject": subject,
        "detail": detail,
        "event": event,
    }
    return orjson.dumps(body)


def _ticket_detail(ticket: Doc) -> dict[str, Any]:
    return {
        "actor_id": str(AGENT_ID),
        "assignee_id": _str(ticket["assignee_id"]),
        "brand_id": "1",
        "created_at": ticket["created_at"],
        "custom_status": None,
        "description": ticket["description"],
        "external_id": _str(ticket["external_id"]),
        "form_id": None,
        "group_id": None,
        "id": str(ticket["id"]),
        "is_public": True,
        "organization_id": _str(ticket["organization_id"]),
        "priority": _upper(ticket["priority"]),
        "requester_id": _str(ticket["requester_id"]),
        "status": _upper(ticket["status"]),
        "subject": ticket["subject"],
        "submitter_id": _str(ticket["requester_id"]),
        "tags": ticket["tags"],
        "type": _upper(ticket["type"]),
        "updated_at": ticket["updated_at"],
        "via": {"channel": "web_service"},
    }


def ticket_events(before: Doc | None, after: Doc) -> list[bytes]:
    """Events for a ticket created (``before`` None) or changed in status / priority."""
    subject = f"zen:ticket:{after['id']}"
    detail = _ticket_detail(after)
    sequence = random_uuid().replace("-", "").upper()
    changes: list[tuple[str, dict[str, Any]]] = []
    if before is None:
        changes.append(("ticket.created", {}))
    else:
        for name in ("status", "priority"):
            if before[name] != after[name]:
                changes.append(
                    (
                        f"ticket.{name}_changed",
                        {"previous": _upper(before[name]), "current": _upper(after[name])},
                    )
                )
    return [
        _envelope(
            kind,
            subject,
            _TICKET_VERSION,
            detail,
            {
                **event,
                "meta": {"sequence": {"id": sequence, "position": n + 1, "total": len(changes)}},
            },
        )
        for n, (kind, event) in enumerate(changes)
    ]


def _org_detail(org: Doc) -> dict[str, Any]:
    return {
        "created_at": org["created_at"],
        "external_id": org["external_id"],
        "group_id": _str(org["group_id"]),
        "id": str(org["id"]),
        "name": org["name"],
        "shared_comments": org["shared_comments"],
        "shared_tickets": org["shared_tickets"],
        "updated_at": org["updated_at"],
    }


def organization_events(before: Doc | None, after: Doc) -> list[bytes]:
    """Events for an organization created, renamed, re-keyed or with changed fields."""
    subject = f"zen:organization:{after['id']}"
    detail = _org_detail(after)
    changes: list[tuple[str, dict[str, Any]]] = []
    if before is None:
        changes.append(("organization.created", {}))
    else:
        for name in ("name", "external_id"):
            if before[name] != after[name]:
                changes.append(
                    (
                        f"organization.{name}_changed",
                        {"previous": before[name], "current": after[name]},
                    )
                )
        if before["tags"] != after["tags"]:
            added = [t for t in after["tags"] if t not in before["tags"]]
            removed = [t for t in before["tags"] if t not in after["tags"]]
            changes.append(("organization.tags_changed", {"added": added, "removed": removed}))
        old, new = before["organization_fields"], after["organization_fields"]
        for key in _FIELD_IDS:
            if old.get(key) != new.get(key):
                changes.append(
                    (
                        "organization.custom_field_changed",
                        {
                            "custom_field": {
                                "id": str(_FIELD_IDS[key]),
                                "title": key,
                                "field_type": _FIELD_TYPES[key],
                            },
                            "previous": old.get(key),
                            "current": new.get(key),
                        },
                    )
                )
    return [_envelope(kind, subject, _ORG_VERSION, detail, event) for kind, event in changes]
