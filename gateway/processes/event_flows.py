"""The flows that events in the vendors' own screens start, step by step.

``gateway.processes.reactions`` decides from each webhook event which of these to start
(inside the transaction that applies the event); each is a saga (``saga.Flow``) whose
steps are optional and need no compensation: a status or note is set again by the next
event.

=================================  =====================================================
event                              flow (operation kind: steps)
=================================  =====================================================
billing ``invoice.finalized``      ``invoiceFinalized``: the ERP billing document
                                   posted (check-before-create on the invoice id), CRM
                                   ``Billing_Status__c`` open, support ``billing_status``
billing ``invoice.paid``           ``invoicePaid``: CRM billing status paid; an
                                   entitlement ``at_risk`` back to ``active``
billing ``invoice.payment_failed`` ``paymentFailed``: entitlement ``at_risk``; a CRM
                                   Task on the account for its owner
billing ``customer.subscription    ``subscriptionEnded``: entitlement ``expired``
.deleted``
support ``ticket.status_changed``  ``caseStatusToCrm``: a CRM Task on the account
                                   (open while the case is, completed once solved)
support ``ticket.created``         ``ticketEnriched``: an internal note with the
                                   entitlement, open invoices and the latest order
=================================  =====================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from actors.messages import (
    CreateTask,
    EnsureBillingDocument,
    SetEntitlement,
    UpdateCase,
    UpdateCustomer,
)
from canonical import System
from gateway.processes.saga import Flow, SagaView, Step

__all__ = ["EVENT_FLOWS"]


def _field(name: str) -> Callable[[SagaView], Any]:
    def prepare(view: SagaView) -> Any:
        value = view.input.get(name)
        return value if value else None

    return prepare


def _update(payload: Mapping[str, Any], key: str) -> UpdateCustomer:
    return UpdateCustomer(
        idempotency_key=key, id=str(payload["id"]), changes=dict(payload["changes"])
    )


def _entitlement(payload: Mapping[str, Any], key: str) -> SetEntitlement:
    ends = payload.get("ends")
    return SetEntitlement(
        idempotency_key=key,
        organization_id=str(payload["organization"]),
        status=str(payload["status"]),
        support_tier=payload.get("tier"),
        ends=date.fromisoformat(ends) if ends else None,
    )


def _post_document(payload: Mapping[str, Any], key: str) -> EnsureBillingDocument:
    return EnsureBillingDocument(
        idempotency_key=key,
        customer_id=str(payload["customer"]),
        billing_invoice=str(payload["invoice"]),
        net_amount=Decimal(str(payload["net"])),
        tax_amount=Decimal(str(payload["tax"])),
        currency=str(payload["currency"]),
    )


def _task(payload: Mapping[str, Any], key: str) -> CreateTask:
    return CreateTask(
        idempotency_key=key,
        account_id=str(payload["account"]),
        subject=str(payload["subject"]),
        priority=str(payload.get("priority") or "Normal"),
        status=str(payload.get("status") or "Not Started"),
        description=payload.get("description"),
    )


def _note(payload: Mapping[str, Any], key: str) -> UpdateCase:
    return UpdateCase(
        idempotency_key=key,
        id=str(payload["ticket"]),
        fields={"comment": {"body": str(payload["body"]), "public": False}},
    )


def _id_of(result: Any) -> Any:
    if isinstance(result, str):
        return {"id": result}
    return {"id": getattr(result, "id", None) or getattr(result, "organization_id", None)}


def _flow(kind: str, *steps: tuple[str, System, str, Callable[..., Any]]) -> Flow:
    return Flow(
        kind=kind,
        steps=tuple(
            Step(name, system, _field(field), build, _id_of, optional=True)
            for name, system, field, build in steps
        ),
        compensation={
            name: "nothing to undo: a status or note is set again by the next event"
            for name, *_ in steps
        },  # fmt: skip
    )


EVENT_FLOWS: dict[str, Flow] = {
    flow.kind: flow
    for flow in (
        _flow(
            "invoiceFinalized",
            ("erp_billing_document", System.ERP, "erp", _post_document),
            ("crm_billing_status", System.CRM, "crm", _update),
            ("support_billing_status", System.SUPPORT, "support", _update),
        ),
        _flow(
            "invoicePaid",
            ("crm_billing_status", System.CRM, "crm", _update),
            ("support_billing_status", System.SUPPORT, "support", _update),
            ("support_entitlement", System.SUPPORT, "entitlement", _entitlement),
        ),
        _flow(
            "paymentFailed",
            ("support_entitlement", System.SUPPORT, "entitlement", _entitlement),
            ("crm_task", System.CRM, "task", _task),
        ),
        _flow(
            "subscriptionEnded",
            ("support_entitlement", System.SUPPORT, "entitlement", _entitlement),
        ),
        _flow("ticketEnriched", ("support_note", System.SUPPORT, "note", _note)),
        _flow("caseStatusToCrm", ("crm_task", System.CRM, "task", _task)),
    )
}
