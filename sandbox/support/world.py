"""The support system's records: the demo world rendered as Zendesk organizations,
users, tickets and SLA policies, and the render step that adds each record's ``url``.

Records are stored in their wire shape without ``url`` (which depends on the host the
client called), under the kinds ``organization``, ``user``, ``ticket`` and ``sla_policy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.app import SandboxState
from sandbox.demo import DemoCompany
from sandbox.docstore import Doc

from .wire import AGENT_EMAIL, iso, iso_date

__all__ = [
    "AGENT_ID",
    "DELETED_TICKET",
    "ORG",
    "SLA",
    "TICKET",
    "USER",
    "find_organizations",
    "next_id",
    "render",
    "seed_world",
]

ORG, USER, TICKET, SLA = "organization", "user", "ticket", "sla_policy"
#: deleted tickets, kept for the incremental export (``"status": "deleted"``)
DELETED_TICKET = "deleted_ticket"

#: the agent the API token belongs to; the default requester and assignee
AGENT_ID = 372000000001
_ORG_USER_BASE = 372000100000
#: first ids handed out to records created through the API (counters persist)
_FIRST_NEW = {ORG: 360900000001, USER: 372900000001, TICKET: 100001}
_URL_PATH = {ORG: "organizations", USER: "users", TICKET: "tickets", SLA: "slas/policies"}

#: SLA targets in minutes: (first_reply_time, next_reply_time) by priority, per support tier
_SLA_TARGETS: dict[str, dict[str, tuple[int, int]]] = {
    "enterprise": {"urgent": (30, 60), "high": (60, 120), "normal": (240, 480), "low": (480, 960)},
    "premium": {"urgent": (60, 120), "high": (240, 480), "normal": (480, 960), "low": (1440, 2880)},
    "standard": {
        "urgent": (240, 480),
        "high": (480, 960),
        "normal": (1440, 2880),
        "low": (2880, 5760),
    },
}


async def next_id(state: SandboxState, kind: str) -> int:
    return await state.store.next_number(kind, start=_FIRST_NEW[kind])


#: what an organization is looked up by, as the handlers compare it
_ORG_KEYS: dict[str, Callable[[Doc], Any]] = {
    "external_id": lambda org: org["external_id"],
    "name": lambda org: org["name"].lower(),
}


def find_organizations(state: SandboxState, by: str, value: object) -> list[Doc]:
    """The organizations whose ``by`` (``external_id``, or ``name`` lowercased) equals
    ``value``, oldest first: through the store's index, not a scan per request."""
    return state.store.find(ORG, ("org", by), _ORG_KEYS[by], value)


def render(kind: str, doc: Doc, base_url: str) -> dict[str, Any]:
    """The record as the API answers it: ``url`` first, as Zendesk orders it."""
    return {"url": f"{base_url}/api/v2/{_URL_PATH[kind]}/{doc['id']}.json", **doc}


def _organization(company: DemoCompany) -> Doc:
    stamp = iso(company.created)
    domain = company.email.split("@", 1)[1]
    billing = company.subscriptions[0].status if company.subscriptions else None
    return {
        "id": company.support_id,
        "external_id": company.bp,
        "name": company.name,
        "domain_names": [domain],
        "details": f"{company.industry}, {company.city} ({company.country})",
        "notes": "",
        "group_id": None,
        "shared_tickets": False,
        "shared_comments": False,
        "tags": [company.segment.lower().replace("-", "_")],
        "organization_fields": {
            "entitlement_status": company.entitlement_status,
            "support_tier": company.support_tier,
            "entitlement_ends": iso_date(company.entitlement_ends),
            "billing_status": billing,
        },
        "created_at": stamp,
        "updated_at": stamp,
    }


def _user(uid: int, name: str, email: str, role: str, org: int | None, created: str) -> Doc:
    return {
        "id": uid,
        "name": name,
        "email": email,
        "role": role,
        "organization_id": org,
        "external_id": None,
        "tags": [],
        "active": True,
        "verified": True,
        "created_at": created,
        "updated_at": created,
    }


def _tickets(company: DemoCompany, requester: int) -> list[Doc]:
    docs = []
    for t in company.tickets:
        docs.append(
            {
                "id": t.id,
                "external_id": None,
                "type": t.type,
                "subject": t.subject,
                "description": t.description,
                "priority": t.priority,
                "status": t.status,
                "requester_id": requester,
                "assignee_id": None if t.status == "new" else AGENT_ID,
                "organization_id": company.support_id,
                "tags": list(t.tags),
                "custom_fields": [],
                "created_at": iso(t.created),
                "updated_at": iso(t.updated),
            }
        )
    return docs


def _sla_policies(created: str) -> list[Doc]:
    docs = []
    for position, (tier, targets) in enumerate(
        (t, _SLA_TARGETS[t]) for t in ("enterprise", "premium", "standard")
    ):
        metrics = []
        for priority, (first, following) in targets.items():
            hours = tier == "standard" or priority == "low"
            for metric, target in (("first_reply_time", first), ("next_reply_time", following)):
                metrics.append(
                    {
                        "priority": priority,
                        "metric": metric,
                        "target": target,
                        "business_hours": hours,
                    }
                )
        docs.append(
            {
                "id": 360000200001 + position,
                "title": f"{tier.capitalize()} support",
                "description": f"Reply targets for organizations on the {tier} support tier.",
                "position": position + 1,
                "filter": {
                    "all": [
                        {
                            "field": "organization.custom_fields.support_tier",
                            "operator": "is",
                            "value": tier,
                        }
                    ],
                    "any": [],
                },
                "policy_metrics": metrics,
                "created_at": created,
                "updated_at": created,
            }
        )
    return docs


async def seed_world(state: SandboxState) -> None:
    """Write the demo world in a few big batches (no webhooks: seeding is not a change)."""
    companies = [c for c in state.demo.companies if c.in_support]
    first = min((c.created for c in state.demo.companies), default=None)
    since = iso(first) if first else "2020-01-01T00:00:00Z"
    users = [(str(AGENT_ID), _user(AGENT_ID, "Sandbox Agent", AGENT_EMAIL, "admin", None, since))]
    tickets: list[Doc] = []
    for company in companies:
        uid = _ORG_USER_BASE + company.index
        contact = company.email.replace("billing@", "support@")
        name = f"{company.name} Support Contact"
        users.append(
            (
                str(uid),
                _user(uid, name, contact, "end-user", company.support_id, iso(company.created)),
            )
        )
        tickets.extend(_tickets(company, uid))
    store = state.store
    await store.put_many(ORG, [(str(c.support_id), _organization(c)) for c in companies])
    await store.put_many(USER, users)
    await store.put_many(TICKET, [(str(t["id"]), t) for t in sorted(tickets, key=_by_id)])
    await store.put_many(SLA, [(str(p["id"]), p) for p in _sla_policies(since)])


def _by_id(doc: Doc) -> int:
    value: int = doc["id"]
    return value
