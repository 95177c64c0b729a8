"""Case-to-resolution: ``openCase`` and ``escalateCase``.

Validation: the customer exists and has a support organization; for ``openCase`` a
subject, a description, a known type and priority; for ``escalateCase`` the case is
that customer's and still open.

Steps, in order for the customer:

1. ``check_entitlement`` - the support organization's entitlement (status and tier);
2. ``invoice_status`` - the customer's billing invoices (open, past due, the latest);
3. ``order_status`` - the customer's ERP sales orders (open, the latest);
4. ``create_case`` / ``escalate_case`` - the case opened (``Idempotency-Key`` and
   ``external_id`` = ``cw-<operation>``) or escalated, with the SLA priority of the
   entitlement's tier (``policies/reference.toml`` ``[sla]``) and the invoice and order
   status in its description and tags.

Compensation policy: the three reads are enrichment. If one fails for good, it is
skipped (not dead-lettered): the case is opened or escalated without that information,
tagged ``crosswalk_partial``, and a missing entitlement answer means the no-entitlement
SLA. A customer waiting for help matters more than a complete case. Only the case write
itself dead-letters; then nothing was written and the operation shows NEEDS_ATTENTION.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from actors.messages import (
    CreateCase,
    GetCases,
    GetEntitlements,
    GetInvoices,
    GetOrders,
    UpdateCase,
)
from canonical import Case, System
from canonical.validation import Problems, check_required
from gateway.processes.context import Accepted, CommandContext
from gateway.processes.customers import resolve_customer
from gateway.processes.errors import ValidationFailed
from gateway.processes.payloads import iso_date
from gateway.processes.saga import Flow, SagaView, Step

__all__ = [
    "ESCALATE_FLOW",
    "OPEN_FLOW",
    "find_open_case",
    "validate_escalate",
    "validate_open",
]

_TYPES = ("problem", "incident", "question", "task")
_PRIORITIES = ("low", "normal", "high", "urgent")
_CLOSED = ("solved", "closed")


async def validate_open(ctx: CommandContext, data: Mapping[str, Any]) -> Accepted:
    problems = Problems()
    check_required(problems, "customerId", data.get("customerId"), max_len=120)
    check_required(problems, "subject", data.get("subject"), max_len=200)
    check_required(problems, "description", data.get("description"), max_len=10_000)
    kind = data.get("type") or "question"
    if kind not in _TYPES:
        problems.add("type", f"must be one of {', '.join(_TYPES)}, got {kind!r}")
    priority = data.get("priority")
    if priority is not None and priority not in _PRIORITIES:
        problems.add("priority", f"must be one of {', '.join(_PRIORITIES)}, got {priority!r}")
    if problems:
        raise ValidationFailed(problems.items)
    customer = await resolve_customer(
        ctx,
        problems,
        "customerId",
        str(data["customerId"]),
        need=(System.SUPPORT,),
        want=(System.BILLING,),
    )
    if customer is None:
        raise ValidationFailed(problems.items)
    accepted = {
        "request": dict(data),
        "customerId": data["customerId"],
        "subject": str(data["subject"]).strip(),
        "description": str(data["description"]).strip(),
        "type": kind,
        "priority": priority,
        "sla": _sla_table(ctx),
        **_ids(customer.ids),
    }
    return Accepted(
        input=accepted,
        canonical_id=customer.canonical_id,
        links=dict(customer.ids),
        name=customer.name,
    )


async def validate_escalate(ctx: CommandContext, data: Mapping[str, Any]) -> Accepted:
    problems = Problems()
    check_required(problems, "customerId", data.get("customerId"), max_len=120)
    check_required(problems, "caseId", data.get("caseId"), max_len=40)
    check_required(problems, "reason", data.get("reason"), max_len=2_000)
    if problems:
        raise ValidationFailed(problems.items)
    customer = await resolve_customer(
        ctx,
        problems,
        "customerId",
        str(data["customerId"]),
        need=(System.SUPPORT,),
        want=(System.BILLING,),
    )
    if customer is None:
        raise ValidationFailed(problems.items)
    organization = customer.ids[System.SUPPORT]
    case_id = str(data["caseId"]).strip()
    case = await find_open_case(
        ctx, problems, data, organization, closed="{status}; open a new case instead"
    )
    if problems or case is None:
        raise ValidationFailed(problems.items)
    accepted = {
        "request": dict(data),
        "customerId": data["customerId"],
        "caseId": case_id,
        "reason": str(data["reason"]).strip(),
        "currentPriority": case.priority,
        "currentTags": list(case.tags),
        "sla": _sla_table(ctx),
        **_ids(customer.ids),
    }
    return Accepted(
        input=accepted,
        canonical_id=customer.canonical_id,
        links=dict(customer.ids),
        name=customer.name,
    )


async def find_open_case(
    ctx: CommandContext,
    problems: Problems,
    data: Mapping[str, Any],
    organization: str,
    *,
    closed: str,
) -> Case | None:
    """The customer's case ``data["caseId"]`` if it is still open; else a problem on
    ``caseId`` (no such case, or ``closed`` with the case's status filled in)."""
    case_id = str(data["caseId"]).strip()
    cases: tuple[Case, ...] = (await ctx.ask(System.SUPPORT, GetCases((organization,)))).get(
        organization, ()
    )
    case = next((c for c in cases if c.id == case_id), None)
    if case is None:
        problems.add("caseId", f"customer {data['customerId']} has no case {case_id!r}")
    elif case.status in _CLOSED:
        problems.add("caseId", f"case {case_id} is " + closed.format(status=case.status))
    return case


def _ids(ids: Mapping[System, str]) -> dict[str, str | None]:
    return {
        "supportOrganization": ids[System.SUPPORT],
        "billingCustomer": ids.get(System.BILLING),
        "erpCustomer": ids.get(System.ERP),
    }


# ---------------------------------------------------------------- enrichment reads


def _entitlement_payload(view: SagaView) -> dict[str, Any]:
    return {"organization_ids": [view.input["supportOrganization"]]}


def _entitlement_message(payload: Mapping[str, Any], key: str) -> GetEntitlements:
    return GetEntitlements(tuple(payload["organization_ids"]))


def _entitlement_record(answer: Mapping[str, Any]) -> dict[str, Any]:
    entitlement = next(iter(answer.values()), None)
    if entitlement is None:
        return {"status": "none", "support_tier": None, "ends": None}
    return {
        "status": entitlement.status,
        "support_tier": entitlement.support_tier,
        "ends": iso_date(entitlement.ends),
    }


def _invoices_payload(view: SagaView) -> dict[str, Any] | None:
    billing = view.input.get("billingCustomer")
    return {"customer_ids": [billing]} if billing else None


def _invoices_message(payload: Mapping[str, Any], key: str) -> GetInvoices:
    return GetInvoices(tuple(payload["customer_ids"]))


def _invoices_record(answer: Mapping[str, Any]) -> dict[str, Any]:
    invoices = [inv for group in answer.values() for inv in group]
    today = datetime.now(UTC).date()
    open_ = [i for i in invoices if i.status == "open"]
    past_due = [i for i in open_ if i.due_date is not None and i.due_date < today]
    latest = max(
        invoices, key=lambda i: i.created_at or datetime.min.replace(tzinfo=UTC), default=None
    )
    return {
        "open": len(open_),
        "past_due": len(past_due),
        "uncollectible": sum(1 for i in invoices if i.status == "uncollectible"),
        "latest": None
        if latest is None
        else {
            "id": latest.id,
            "status": latest.status,
            "total": str(latest.total),
            "currency": latest.currency,
        },
    }


def _orders_payload(view: SagaView) -> dict[str, Any] | None:
    erp = view.input.get("erpCustomer")
    return {"customer_ids": [erp]} if erp else None


def _orders_message(payload: Mapping[str, Any], key: str) -> GetOrders:
    return GetOrders(tuple(payload["customer_ids"]))


def _orders_record(answer: Mapping[str, Any]) -> dict[str, Any]:
    orders = [order for group in answer.values() for order in group]
    latest = max(
        orders, key=lambda o: o.created_at or datetime.min.replace(tzinfo=UTC), default=None
    )
    return {
        "open": sum(1 for o in orders if o.status != "C"),
        "latest": None if latest is None else {"id": latest.id, "status": latest.status},
    }


def _sla(view: SagaView) -> tuple[str, str, bool]:
    """(tier, entitlement status, entitled) from the entitlement step's result."""
    entitlement = view.result("check_entitlement")
    status = str(entitlement.get("status") or "unknown")
    tier = entitlement.get("support_tier")
    return (str(tier) if tier else "none"), status, status in ("active", "at_risk")


def _summary(view: SagaView) -> tuple[str, list[str]]:
    tier, status, _ = _sla(view)
    invoices = view.result("invoice_status")
    orders = view.result("order_status")
    lines = [f"Entitlement: {status} ({tier} tier)"]
    tags = [f"entitlement_{status}"]
    if invoices:
        latest = invoices.get("latest") or {}
        lines.append(
            f"Invoices: {invoices.get('open', 0)} open, {invoices.get('past_due', 0)} past due"
            + (f"; latest {latest.get('id')} {latest.get('status')}" if latest else "")
        )
        if invoices.get("past_due"):
            tags.append("invoice_past_due")
    if orders:
        latest = orders.get("latest") or {}
        lines.append(
            f"Orders: {orders.get('open', 0)} open"
            + (f"; latest {latest.get('id')} status {latest.get('status')}" if latest else "")
        )
    if not (invoices and orders and view.result("check_entitlement")):
        tags.append("crosswalk_partial")
    return "\n".join(lines), tags


def _rank(priority: str | None) -> int:
    return _PRIORITIES.index(priority) if priority in _PRIORITIES else 0


# ---------------------------------------------------------------- the case writes


def _sla_table(ctx: CommandContext) -> dict[str, list[str]]:
    """The SLA rules as they are when the case is accepted (a later policy change does
    not alter a case already in flight)."""
    return {tier: [rule.open, rule.escalate] for tier, rule in ctx.reference.sla.items()}


def _rule(view: SagaView) -> tuple[str, str]:
    tier, _, entitled = _sla(view)
    table = view.input.get("sla") or {}
    rule = table.get(tier) if entitled else None
    rule = rule or table.get("none") or ["normal", "high"]
    return rule[0], rule[1]


def _create_payload(view: SagaView) -> dict[str, Any]:
    opening, _ = _rule(view)
    requested = view.input.get("priority")
    _, _, entitled = _sla(view)
    priority = requested if entitled and _rank(requested) > _rank(opening) else opening
    summary, tags = _summary(view)
    tier, _, _ = _sla(view)
    return {
        "organization_id": view.input["supportOrganization"],
        "subject": view.input["subject"],
        "description": f"{view.input['description']}\n\n-- Crosswalk context --\n{summary}",
        "priority": priority,
        "type": view.input["type"],
        "external_id": f"cw-{view.operation_id}",
        "tags": ["crosswalk", f"tier_{tier}", *tags],
    }


def _create_message(payload: Mapping[str, Any], key: str) -> CreateCase:
    return CreateCase(
        idempotency_key=key,
        organization_id=payload["organization_id"],
        subject=payload["subject"],
        description=payload["description"],
        priority=payload["priority"],
        type=payload["type"],
        external_id=payload["external_id"],
        tags=tuple(payload["tags"]),
    )


def _case_record(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "status": case.status,
        "priority": case.priority,
        "tags": list(case.tags),
    }


def _escalate_payload(view: SagaView) -> dict[str, Any]:
    _, escalated = _rule(view)
    current = view.input.get("currentPriority")
    priority = current if _rank(current) > _rank(escalated) else escalated
    _, tags = _summary(view)
    merged = sorted({*view.input.get("currentTags", []), "crosswalk", "escalated", *tags})
    return {"id": view.input["caseId"], "fields": {"priority": priority, "tags": merged}}


def _escalate_message(payload: Mapping[str, Any], key: str) -> UpdateCase:
    return UpdateCase(idempotency_key=key, id=payload["id"], fields=dict(payload["fields"]))


def _reads() -> tuple[Step, ...]:
    return (
        Step(
            "check_entitlement",
            System.SUPPORT,
            _entitlement_payload,
            _entitlement_message,
            _entitlement_record,
            optional=True,
        ),
        Step(
            "invoice_status",
            System.BILLING,
            _invoices_payload,
            _invoices_message,
            _invoices_record,
            optional=True,
        ),
        Step(
            "order_status",
            System.ERP,
            _orders_payload,
            _orders_message,
            _orders_record,
            optional=True,
        ),
    )


_READ_POLICY = {
    "check_entitlement": "skipped: the case gets the no-entitlement SLA",
    "invoice_status": "skipped: the case carries no invoice status",
    "order_status": "skipped: the case carries no order status",
}

OPEN_FLOW = Flow(
    kind="openCase",
    steps=(
        *_reads(),
        Step("create_case", System.SUPPORT, _create_payload, _create_message, _case_record),
    ),
    compensation={**_READ_POLICY, "create_case": "nothing was written; the case waits for replay"},
)

ESCALATE_FLOW = Flow(
    kind="escalateCase",
    steps=(
        *_reads(),
        Step("escalate_case", System.SUPPORT, _escalate_payload, _escalate_message, _case_record),
    ),
    compensation={
        **_READ_POLICY,
        "escalate_case": "the case is unchanged; the escalation waits for replay",
    },
)
