"""Flows started by what happens in the vendors' own screens.

The read model's event consumer hands each batch of webhook events here, inside the
transaction that applies them, so an event starts its flows exactly once: the flows'
operations, their first outbox messages and the events' marks commit together (a crash
re-applies the batch, and the operations, keyed by the event, are not written twice).

The flows an event starts, and their steps, are in ``gateway.processes.event_flows``.

After the batch commits (``after``), with the read model current:

- an opportunity Closed Won in the CRM itself (not through Crosswalk) starts the same
  quote-to-cash process as ``closeOpportunity``, once: the mutation's idempotency key is
  the opportunity, and its exclusivity refuses a second one, however many events and
  catch-up passes report it;
- master data: a change in the system that owns a field (``policies/ownership.toml``)
  is propagated to the others (the reconciliation's repair, for that customer only); a
  change to a field another system owns is not propagated and is recorded in the audit
  trail as ``governance.rejected`` (reconciliation reports it too).

Echoes of Crosswalk's own writes start nothing: the webhook receiver stores Salesforce
events whose ``changeOrigin`` names our client as already processed; Stripe events
carrying one of our idempotency keys (``op_...``) and Zendesk tickets we opened
(``external_id`` ``cw-...``, so ``openCase`` tickets get no second note) are recognised
here. SAP's events carry only keys: an echo there costs one read-back and starts nothing,
since no ERP event starts a flow that writes to the ERP.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from canonical import (
    Customer,
    Entitlement,
    Invoice,
    Opportunity,
    Order,
    System,
)
from gateway.governance.ownership import OwnershipPolicy
from gateway.processes.context import EVENTS_CLIENT
from gateway.processes.errors import ValidationFailed
from gateway.processes.event_flows import EVENT_FLOWS
from gateway.processes.reconcile import find_drift_for, repair
from gateway.processes.saga import begin_saga
from gateway.processes.signal import outbox_signal
from gateway.readmodel.kinds import Kind
from gateway.readmodel.model import Applied, ReadModel
from gateway.store import InboxEvent, NewAudit, Store, Transaction

__all__ = ["Reactions", "Submit"]

log = logging.getLogger(__name__)


Submit = Callable[[str, Mapping[str, Any], str, str], Awaitable[Any]]


def _operation_id(kind: str, system: str, event_id: str) -> str:
    digest = hashlib.sha256(f"{kind}|{system}|{event_id}".encode()).hexdigest()[:24]
    return f"op_evt_{digest}"


def _entitlement_payload(
    model: ReadModel, org: str | None, status: str, *, only_from: str | None = None
) -> dict[str, Any] | None:
    if not org:
        return None
    entry = model.record(System.SUPPORT, Kind.ENTITLEMENT, org)
    current = entry.value if entry is not None and isinstance(entry.value, Entitlement) else None
    if only_from is not None and (current is None or current.status != only_from):
        return None
    if current is not None and current.status == status:
        return None  # already so: nothing to write
    return {
        "organization": org,
        "status": status,
        "tier": current.support_tier if current else None,
        "ends": current.ends.isoformat() if current and current.ends else None,
    }


def _money(amount: Decimal | None, currency: str | None) -> str:
    return f"{amount or 0:.2f} {(currency or '').upper()}".strip()


class Reactions:
    """What the read model's feeds call when events and changes are applied."""

    def __init__(
        self,
        store: Store,
        model: ReadModel,
        ownership: OwnershipPolicy,
        *,
        submit: Submit | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.ownership = ownership
        #: submit(mutation, input, idempotency key, correlation id): the write path
        self.submit = submit
        self.started = 0
        self._flows_written = False

    # ------------------------------------------------------------ inside the unit

    async def within(
        self, tx: Transaction, *, system: System, events: Sequence[InboxEvent]
    ) -> None:
        """Start the flows ``events`` call for (in the transaction that applies them)."""
        for event in events:
            if event.processed_at is not None:
                continue  # an echo of our own write, or already handled
            envelope = event.payload if isinstance(event.payload, Mapping) else {}
            if _is_echo(envelope):
                await tx.mark_inbox_processed(event.system, event.event_id)
                continue
            for kind, customer, data in await self._plan(tx, system, envelope):
                operation_id = _operation_id(kind, event.system, event.event_id)
                if await tx.get_operation(operation_id) is not None:
                    continue
                await begin_saga(
                    tx,
                    EVENT_FLOWS[kind],
                    operation_id=operation_id,
                    correlation_id=f"event-{event.system}-{event.event_id}"[:120],
                    client_id=EVENTS_CLIENT,
                    aggregate_key=customer,
                    input={**data, "event": {"system": event.system, "id": event.event_id,
                                             "type": envelope.get("type")}},
                )  # fmt: skip
                self.started += 1
                self._flows_written = True
            await tx.mark_inbox_processed(event.system, event.event_id)

    async def _plan(
        self, tx: Transaction, system: System, envelope: Mapping[str, Any]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        kind = str(envelope.get("type") or "")
        data = envelope.get("data") if isinstance(envelope.get("data"), Mapping) else {}
        assert isinstance(data, Mapping)
        if system is System.BILLING:
            obj = (
                (data.get("data") or {}).get("object")
                if isinstance(data.get("data"), Mapping)
                else None
            )
            if not isinstance(obj, Mapping):
                return []
            owner = obj.get("customer")
            billing_id = str(owner["id"] if isinstance(owner, Mapping) else owner or "")
            ids = await self._ids(tx, System.BILLING, billing_id)
            if ids is None:
                return []
            canonical, linked = ids
            crm, org = linked.get(System.CRM), linked.get(System.SUPPORT)
            if kind == "billing.invoice.finalized":
                erp = linked.get(System.ERP)
                total, tax = obj.get("total"), obj.get("tax") or 0
                document = (
                    {
                        "customer": erp,
                        "invoice": str(obj.get("id")),
                        "net": str(Decimal(int(total) - int(tax)) / 100),
                        "tax": str(Decimal(int(tax)) / 100),
                        "currency": str(obj.get("currency") or "eur"),
                    }
                    if erp and isinstance(total, int)
                    else None
                )
                return [("invoiceFinalized", canonical, {
                    "erp": document,
                    "crm": {"id": crm, "changes": {"billing_status": "open"}} if crm else None,
                    "support": {"id": org, "changes": {"billing_status": "open"}} if org else None,
                })]  # fmt: skip
            if kind == "billing.invoice.paid":
                return [("invoicePaid", canonical, {
                    "crm": {"id": crm, "changes": {"billing_status": "paid"}} if crm else None,
                    "support": {"id": org, "changes": {"billing_status": "paid"}} if org else None,
                    "entitlement": _entitlement_payload(self.model, org, "active",
                                                        only_from="at_risk"),
                })]  # fmt: skip
            if kind == "billing.invoice.payment_failed":
                amount = obj.get("amount_remaining")
                due = (
                    _money(Decimal(amount) / 100, str(obj.get("currency") or ""))
                    if isinstance(amount, int)
                    else "an amount"
                )
                return [("paymentFailed", canonical, {
                    "entitlement": _entitlement_payload(self.model, org, "at_risk"),
                    "task": {
                        "account": crm,
                        "subject": f"Payment failed: invoice {obj.get('id')}",
                        "priority": "High",
                        "description": f"Billing could not collect {due} for invoice "
                        f"{obj.get('id')}. Support marked the entitlement at risk.",
                    } if crm else None,
                })]  # fmt: skip
            if kind == "billing.subscription.deleted":
                return [("subscriptionEnded", canonical, {
                    "entitlement": _entitlement_payload(self.model, org, "expired"),
                })]  # fmt: skip
            return []
        if system is System.SUPPORT and kind == "support.ticket.status_changed":
            detail = data.get("detail") if isinstance(data.get("detail"), Mapping) else {}
            change = data.get("event") if isinstance(data.get("event"), Mapping) else {}
            assert isinstance(detail, Mapping)
            assert isinstance(change, Mapping)
            org = detail.get("organization_id")
            ids = await self._ids(tx, System.SUPPORT, str(org)) if org else None
            if ids is None or not ids[1].get(System.CRM):
                return []
            canonical, linked = ids
            status = str(change.get("current") or detail.get("status") or "").lower()
            closed = status in ("solved", "closed")
            priority = str(detail.get("priority") or "").lower()
            return [("caseStatusToCrm", canonical, {
                "task": {
                    "account": linked[System.CRM],
                    "subject": f"Case {envelope.get('subject', '').rpartition(':')[2]} "
                    f"{status}: {detail.get('subject') or ''}"[:255],
                    "priority": "High" if priority in ("urgent", "high") and not closed
                    else "Normal",
                    "status": "Completed" if closed else "Not Started",
                    "description": f"Support case status {change.get('previous') or '?'} -> "
                    f"{status}. Sales: an open escalation on this account"
                    if not closed else f"Support case {status}.",
                },
            })]  # fmt: skip
        if system is System.SUPPORT and kind == "support.ticket.created":
            detail = data.get("detail") if isinstance(data.get("detail"), Mapping) else {}
            assert isinstance(detail, Mapping)
            org = detail.get("organization_id")
            ticket = str(envelope.get("subject") or detail.get("id") or "")
            if not org or not ticket:
                return []
            ids = await self._ids(tx, System.SUPPORT, str(org))
            if ids is None:
                return []
            canonical, linked = ids
            return [("ticketEnriched", canonical, {
                "note": {"ticket": ticket, "body": self._ticket_note(linked)},
            })]  # fmt: skip
        return []

    async def _ids(
        self, tx: Transaction, system: System, native: str
    ) -> tuple[str, dict[System, str]] | None:
        if not native:
            return None
        canonical = await tx.resolve(system, native)
        if canonical is None:
            return None
        xref = await tx.get_xref(canonical)
        if xref is None:
            return None
        return xref.canonical_id, {s: v for s, v in xref.ids().items() if isinstance(s, System)}

    def _ticket_note(self, linked: Mapping[System, str]) -> str:
        model = self.model
        lines = ["Crosswalk: what the other systems know about this customer"]
        org = linked.get(System.SUPPORT)
        entitlement = model.record(System.SUPPORT, Kind.ENTITLEMENT, org) if org else None
        if entitlement is not None and isinstance(entitlement.value, Entitlement):
            e = entitlement.value
            ends = f", ends {e.ends.isoformat()}" if e.ends else ""
            lines.append(f"- Entitlement: {e.status} ({e.support_tier or 'no tier'}{ends})")
        else:
            lines.append("- Entitlement: none on record")
        billing = linked.get(System.BILLING)
        view = model.slice(System.BILLING, Kind.INVOICE, billing, many=True) if billing else None
        invoices = [i for i in (view.value if view else ()) if isinstance(i, Invoice)]
        open_invoices = [i for i in invoices if i.status == "open"]
        if open_invoices:
            due = sum((i.amount_due or Decimal(0) for i in open_invoices), Decimal(0))
            lines.append(
                f"- Open invoices: {len(open_invoices)}, "
                f"{_money(due, open_invoices[0].currency)} due"
            )
        else:
            lines.append("- Open invoices: none")
        erp = linked.get(System.ERP)
        orders_view = model.slice(System.ERP, Kind.ORDER, erp, many=True) if erp else None
        orders = [o for o in (orders_view.value if orders_view else ()) if isinstance(o, Order)]
        if orders:
            latest = max(orders, key=lambda o: (o.created_at is not None, o.created_at, o.id))
            status = {"A": "open", "B": "in process", "C": "completed"}.get(
                latest.status, latest.status
            )
            lines.append(f"- Latest ERP order: {latest.id}, {status}")
        else:
            lines.append("- Latest ERP order: none")
        return "\n".join(lines)

    # ------------------------------------------------------------ after the unit

    async def after(self, system: System, applied: Sequence[Applied]) -> None:
        """React to changes the read model took (webhook read-backs and catch-up pages).

        Only changes to records the read model already held count: the initial load
        (every record "created") changes nothing in the world."""
        if self._flows_written:
            # the flows the events started are committed: wake the dispatcher now
            self._flows_written = False
            outbox_signal(self.store).notify()
        changed = [a for a in applied if not a.created and not a.deleted]
        if system is System.CRM:
            for change in changed:
                if change.kind is not Kind.OPPORTUNITY or "is_won" not in change.changed_fields:
                    continue
                entry = self.model.record(System.CRM, Kind.OPPORTUNITY, change.id)
                value = entry.value if entry is not None else None
                if isinstance(value, Opportunity) and value.is_won and not value.erp_order_number:
                    await self._closed_won(value)
        fields = set(self.ownership.customer)
        customers = sorted(
            {
                a.customer
                for a in changed
                if a.kind is Kind.CUSTOMER and fields.intersection(a.changed_fields)
            }
        )
        for native in customers:
            try:
                await self._master_data(system, native)
            except Exception:  # one customer's propagation never stops the feed
                log.exception("master data of %s %s not propagated", system, native)

    async def _closed_won(self, opportunity: Opportunity) -> None:
        if self.submit is None:
            return
        try:
            await self.submit(
                "closeOpportunity",
                {"opportunityId": opportunity.id, "closedInCrm": True},
                f"closed-won:{opportunity.id}",
                f"closed-won-{opportunity.id}",
            )
        except ValidationFailed as exc:
            # already turned into an order (or being), or not a deal we can fulfil
            log.info("closed-won %s not started: %s", opportunity.id, exc)
        except Exception:  # a failed start is retried by the next event or catch-up pass
            log.exception("closed-won %s could not be started", opportunity.id)

    async def _master_data(self, system: System, native: str) -> None:
        entry = self.model.record(system, Kind.CUSTOMER, native)
        if entry is None or not isinstance(entry.value, Customer):
            return
        bp = native if system is System.ERP else entry.value.xref.erp
        if not bp:
            return
        findings = [f for f in find_drift_for(self.model, self.ownership, bp) if f.field]
        owned_here = [f for f in findings if self.ownership.customer.get(f.field or "") == system]
        if owned_here:
            written = await repair(
                self.store, self.model, owned_here, correlation_id=f"master-{bp}"
            )
            if written:
                outbox_signal(self.store).notify()
        rejected = [f for f in findings if f.system == str(system) and f not in owned_here]
        for finding in rejected:
            await self.store.append_audit(
                NewAudit(
                    actor=EVENTS_CLIENT,
                    action="governance.rejected",
                    subject=f"{system}:{finding.record_id}",
                    correlation_id=f"master-{bp}",
                    detail={
                        **finding.to_json(),
                        "reason": f"{finding.field} is owned by "
                        f"{self.ownership.customer.get(finding.field or '')}: not propagated",
                    },
                )
            )


def _is_echo(envelope: Mapping[str, Any]) -> bool:
    """Whether an event reports one of our own writes, by the stamp each vendor carries:
    a Stripe event's request names our idempotency key (``op_...``); a Zendesk ticket we
    opened carries our ``external_id`` (``cw-<operation>``). (Salesforce's echoes are
    stored processed by the webhook receiver, from ``changeOrigin``; SAP's events carry
    keys only, and start no flow that writes back to the ERP.)"""
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        return False
    request = data.get("request")
    key = request.get("idempotency_key") if isinstance(request, Mapping) else None
    if isinstance(key, str) and key.startswith("op_"):
        return True
    detail = data.get("detail")
    external = detail.get("external_id") if isinstance(detail, Mapping) else None
    return (
        str(envelope.get("type") or "") == "support.ticket.created"
        and isinstance(external, str)
        and external.startswith("cw-")
    )
