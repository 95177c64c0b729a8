"""Renewal-to-revenue: ``renewSubscription``.

Validation: the customer exists with ERP, billing and support records; the subscription
is that customer's and not canceled; its prices map to products in reference data; the
renewal opportunity, if given, exists in the CRM and is still open; no other renewal of
this subscription is running.

Steps, in order for the customer:

1. ``billing_renewal`` - the billing subscription extended by one period
   (``RenewSubscription``, ``Idempotency-Key``);
2. ``erp_order`` - the renewal's ERP sales order, ``PurchaseOrderByCustomer`` = the
   renewal opportunity id, or ``<subscription>-<new period end>`` without one (SAP
   check-before-create: one order per renewal period);
3. ``support_entitlement`` - the entitlement extended to the new period end;
4. ``crm_renewal`` - the renewal opportunity closed won with the ERP order number
   (skipped when no opportunity was given).

Compensation policy: forward recovery. A renewed subscription is what the customer is
billed by; the ERP order, entitlement and CRM close follow it and are replayed after the
cause is fixed. Undoing a renewal would bill the customer wrongly, so nothing is undone;
the operation shows NEEDS_ATTENTION with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from actors.errors import NotFound
from actors.messages import EnsureSalesOrder, GetOpportunity, GetSubscriptions, RenewSubscription
from canonical import Opportunity, Order, Subscription, System
from canonical.validation import Problems, check_required
from gateway.processes.context import Accepted, CommandContext
from gateway.processes.customers import resolve_customer
from gateway.processes.errors import ValidationFailed
from gateway.processes.exclusive import Exclusive, find_blocker
from gateway.processes.saga import Flow, SagaView, Step
from gateway.processes.sagas.quote_to_cash import (
    entitlement_message,
    entitlement_record,
    stamp_message,
    stamp_record,
    subscription_record,
)
from gateway.store import OperationStatus

__all__ = ["FLOW", "validate"]

KIND = "renewSubscription"
_NOT_RENEWABLE = ("canceled", "incomplete_expired")


async def validate(ctx: CommandContext, data: Mapping[str, Any]) -> Accepted:
    problems = Problems()
    customer_id = data.get("customerId")
    subscription_id = data.get("subscriptionId")
    check_required(problems, "customerId", customer_id, max_len=120)
    check_required(problems, "subscriptionId", subscription_id, max_len=100)
    if problems:
        raise ValidationFailed(problems.items)
    assert isinstance(customer_id, str)
    assert isinstance(subscription_id, str)
    customer = await resolve_customer(
        ctx,
        problems,
        "customerId",
        customer_id,
        need=(System.ERP, System.BILLING, System.SUPPORT),
    )
    if customer is None:
        raise ValidationFailed(problems.items)
    billing_id = customer.ids[System.BILLING]
    subscriptions = (await ctx.ask(System.BILLING, GetSubscriptions((billing_id,)))).get(
        billing_id, ()
    )
    subscription: Subscription | None = next(
        (s for s in subscriptions if s.id == subscription_id), None
    )
    lines: list[dict[str, Any]] = []
    if subscription is None:
        problems.add(
            "subscriptionId", f"customer {customer_id} has no subscription {subscription_id!r}"
        )
    elif subscription.status in _NOT_RENEWABLE:
        problems.add(
            "subscriptionId",
            f"subscription {subscription_id} is {subscription.status}; it cannot be renewed",
        )
    else:
        for item in subscription.items:
            product = ctx.reference.product_by_price(item.price)
            if product is None:
                problems.add(
                    "subscriptionId", f"price {item.price} maps to no product in reference data"
                )
                continue
            lines.append(
                {
                    "product": product.code,
                    "quantity": item.quantity,
                    "material": product.material,
                    "price": product.price,
                }
            )
    opportunity_id = data.get("opportunityId")
    if opportunity_id:
        try:
            opportunity: Opportunity = await ctx.ask(
                System.CRM, GetOpportunity(str(opportunity_id))
            )
        except NotFound:
            problems.add("opportunityId", f"no opportunity {opportunity_id!r} in the CRM")
        else:
            if opportunity.is_closed:
                problems.add(
                    "opportunityId",
                    f"opportunity {opportunity_id} is already closed ({opportunity.stage})",
                )
    exclusive = Exclusive(
        field="subscriptionId",
        value=subscription_id,
        settled=frozenset(
            {OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.COMPENSATED}
        ),
        reason=f"subscription {subscription_id} is already being renewed by operation {{id}} "
        "({status})",
    )
    if customer.canonical_id is not None:
        blocker = await find_blocker(ctx.store, customer.canonical_id, KIND, exclusive)
        if blocker is not None:
            problems.items.append(exclusive.problem(blocker))
    if problems:
        raise ValidationFailed(problems.items)
    erp = customer.erp
    accepted = {
        "request": dict(data),
        "customerId": customer_id,
        "subscriptionId": subscription_id,
        "opportunityId": opportunity_id or None,
        "lines": lines,
        "currency": (erp.currency if erp else None) or "EUR",
        "supportTier": ctx.reference.highest_tier(
            [ctx.reference.products[x["product"]].support_tier for x in lines]
        ),
        "erpCustomer": customer.ids[System.ERP],
        "billingCustomer": billing_id,
        "supportOrganization": customer.ids[System.SUPPORT],
    }
    return Accepted(
        input=accepted,
        canonical_id=customer.canonical_id,
        links=dict(customer.ids),
        name=customer.name,
        exclusive=exclusive,
    )


def _renew_payload(view: SagaView) -> dict[str, Any]:
    return {
        "subscription_id": view.input["subscriptionId"],
        "metadata": {"crosswalk_operation": view.operation_id},
    }


def _renew_message(payload: Mapping[str, Any], key: str) -> RenewSubscription:
    return RenewSubscription(
        idempotency_key=key,
        subscription_id=payload["subscription_id"],
        metadata=dict(payload["metadata"]),
    )


def _order_payload(view: SagaView) -> dict[str, Any]:
    period_end = view.result("billing_renewal").get("current_period_end") or view.operation_id[:10]
    reference = (
        view.input.get("opportunityId")
        or f"{view.input['subscriptionId'][:24]}-{str(period_end).replace('-', '')}"
    )
    return {
        "customer_id": view.input["erpCustomer"],
        "purchase_order": reference[:35],
        "items": [[line["material"], str(line["quantity"])] for line in view.input["lines"]],
        "currency": view.input["currency"],
    }


def _order_message(payload: Mapping[str, Any], key: str) -> EnsureSalesOrder:
    return EnsureSalesOrder(
        idempotency_key=key,
        customer_id=payload["customer_id"],
        purchase_order=payload["purchase_order"],
        items=tuple((m, Decimal(q)) for m, q in payload["items"]),
        currency=payload["currency"],
    )


def _order_record(order: Order) -> dict[str, Any]:
    return {"id": order.id, "status": order.status, "purchase_order": order.purchase_order}


def _entitlement_payload(view: SagaView) -> dict[str, Any]:
    return {
        "organization_id": view.input["supportOrganization"],
        "status": "active",
        "support_tier": view.input["supportTier"],
        "ends": view.result("billing_renewal").get("current_period_end"),
    }


def _crm_payload(view: SagaView) -> dict[str, Any] | None:
    if not view.input.get("opportunityId"):
        return None
    return {
        "id": view.input["opportunityId"],
        "fields": {
            "StageName": "Closed Won",
            "ERP_Order_Number__c": view.result("erp_order")["id"],
        },
    }


FLOW = Flow(
    kind=KIND,
    steps=(
        Step(
            "billing_renewal", System.BILLING, _renew_payload, _renew_message, subscription_record
        ),
        Step("erp_order", System.ERP, _order_payload, _order_message, _order_record),
        Step(
            "support_entitlement",
            System.SUPPORT,
            _entitlement_payload,
            entitlement_message,
            entitlement_record,
        ),
        Step("crm_renewal", System.CRM, _crm_payload, stamp_message, stamp_record),
    ),
    compensation={
        "billing_renewal": "nothing was renewed; order, entitlement and CRM close wait",
        "erp_order": "the billing renewal is kept (the customer is billed by it); the order waits",
        "support_entitlement": "renewal and order are kept; the entitlement extension waits",
        "crm_renewal": "renewal, order and entitlement are kept; only the CRM close waits",
    },
)
