"""Quote-to-cash: ``closeOpportunity``.

Validation (before anything is written): the CRM opportunity exists and is still open,
no other operation is closing it, its account is linked to an existing ERP business
partner that also has a billing customer and a support organization, the customer's
country and tax id are valid (tax jurisdiction), every product is in reference data with
a positive quantity (product mapping), and payment terms, if given, are known and the
caller may set them (field ownership: the ERP owns payment terms).

Steps, in order for the customer:

1. ``erp_order`` - ERP sales order, ``PurchaseOrderByCustomer`` = the opportunity id
   (SAP check-before-create on every redelivery: one order per opportunity, however often
   delivered; the first delivery needs no check, since only one operation per
   opportunity is ever accepted);
2. ``billing_subscription`` / ``billing_subscription_annual`` - the billing subscription
   for the monthly prices and the one for the yearly prices (each skipped when the deal
   has none: billing bills one interval per subscription), i.e. the invoice schedule,
   with metadata ``erp_order``, ``crm_opportunity_id`` (``Idempotency-Key``);
3. ``support_entitlement`` - support entitlement activated at the products' highest
   tier until the subscription's period end;
4. ``crm_stamp`` - the CRM opportunity stamped ``ERP_Order_Number__c`` and closed won.

Compensation policy: forward recovery. The ERP order is the authoritative record of the
sale; cancelling it is an accounting decision (credit memo), not something a gateway
does on its own. So a dead letter keeps what was done: an ERP order without a
subscription waits, unbilled, for the replay; a missing entitlement or CRM stamp is
replayed once the system accepts it. The operation shows NEEDS_ATTENTION with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from actors.errors import NotFound
from actors.messages import (
    CreateSubscription,
    EnsureSalesOrder,
    GetOpportunity,
    SetEntitlement,
    UpdateOpportunity,
)
from canonical import Opportunity, Order, Subscription, System
from canonical.validation import (
    Problems,
    check_country,
    check_owned,
    check_payment_terms,
    check_product,
    check_quantity,
    check_tax_id,
)
from gateway.processes.context import EVENTS_CLIENT, Accepted, CommandContext
from gateway.processes.customers import resolve_customer
from gateway.processes.errors import ValidationFailed
from gateway.processes.exclusive import Exclusive, find_blocker
from gateway.processes.payloads import iso_date, parse_date
from gateway.processes.saga import Flow, SagaView, Step
from gateway.store import OperationStatus

__all__ = ["FLOW", "validate"]

KIND = "closeOpportunity"


def _exclusive(opportunity_id: str) -> Exclusive:
    return Exclusive(
        field="opportunityId",
        value=opportunity_id,
        settled=frozenset({OperationStatus.FAILED, OperationStatus.COMPENSATED}),
        reason=f"opportunity {opportunity_id} is already being closed by operation {{id}} "
        "({status}); follow that operation instead",
    )


async def validate(ctx: CommandContext, data: Mapping[str, Any]) -> Accepted:
    problems = Problems()
    opportunity_id = str(data.get("opportunityId") or "").strip()
    if not opportunity_id or len(opportunity_id) > 35:
        problems.add("opportunityId", "is required: a CRM opportunity id (006...)")
        raise ValidationFailed(problems.items)
    try:
        opportunity: Opportunity = await ctx.ask(System.CRM, GetOpportunity(opportunity_id))
    except NotFound:
        problems.add("opportunityId", f"no opportunity {opportunity_id!r} in the CRM")
        raise ValidationFailed(problems.items) from None
    # a deal closed won in the CRM's own screen (the event path, never a client's call)
    closed_in_crm = (
        data.get("closedInCrm") is True
        and ctx.caller.client_id == EVENTS_CLIENT
        and opportunity.is_won
        and not opportunity.erp_order_number
    )
    if opportunity.is_closed and not closed_in_crm:
        problems.add(
            "opportunityId",
            f"opportunity {opportunity_id} is already closed ({opportunity.stage}"
            + (
                f", ERP order {opportunity.erp_order_number}"
                if opportunity.erp_order_number
                else ""
            )
            + ")",
        )
    lines = _lines(problems, ctx, data, opportunity)
    terms = data.get("paymentTerms")
    if terms is not None:
        check_payment_terms(problems, "paymentTerms", str(terms), ctx.reference)
        check_owned(problems, [("paymentTerms", "payment_terms")], ctx.caller.system, ctx.owner_of)
    customer = await resolve_customer(
        ctx,
        problems,
        "opportunityId",
        f"crm:{opportunity.account_id}",
        need=(System.ERP, System.BILLING, System.SUPPORT),
        read_erp=True,
    )
    currency = None
    if customer is not None and customer.erp is not None:
        erp = customer.erp
        if erp.country:
            if (
                check_country(problems, "customer.country", erp.country, ctx.reference)
                and erp.tax_id
            ):
                check_tax_id(problems, "customer.taxId", erp.tax_id, erp.country, ctx.reference)
            entry = ctx.reference.countries.get(erp.country)
            currency = erp.currency or (entry.currency if entry else None)
        else:
            currency = erp.currency
        if customer.canonical_id is not None:
            blocker = await find_blocker(
                ctx.store, customer.canonical_id, KIND, _exclusive(opportunity_id)
            )
            if blocker is not None:
                problems.items.append(_exclusive(opportunity_id).problem(blocker))
    if problems or customer is None:
        raise ValidationFailed(problems.items)
    tier = ctx.reference.highest_tier(
        [ctx.reference.products[line["product"]].support_tier for line in lines]
    )
    intervals = {line["interval"] for line in lines}
    accepted = {
        "request": dict(data),
        "opportunityId": opportunity_id,
        "accountId": opportunity.account_id,
        "lines": lines,
        "currency": currency or "EUR",
        "paymentTerms": terms,
        "invoiceSchedule": "+".join(
            name for name, key in (("monthly", "month"), ("yearly", "year")) if key in intervals
        ),
        "supportTier": tier,
        "erpCustomer": customer.ids[System.ERP],
        "billingCustomer": customer.ids[System.BILLING],
        "supportOrganization": customer.ids[System.SUPPORT],
    }
    return Accepted(
        input=accepted,
        canonical_id=customer.canonical_id,
        links=dict(customer.ids),
        name=customer.name,
        exclusive=_exclusive(opportunity_id),
    )


def _lines(
    problems: Problems, ctx: CommandContext, data: Mapping[str, Any], opportunity: Opportunity
) -> list[dict[str, Any]]:
    given = data.get("lines")
    if given:
        raw = [(str(line.get("product") or ""), line.get("quantity", 1)) for line in given]
    else:
        raw = [(code, 1) for code in opportunity.products]
        if not raw:
            problems.add(
                "lines", "the opportunity lists no products; give lines [{product, quantity}]"
            )
    lines = []
    for index, (code, quantity) in enumerate(raw):
        at = f"lines[{index}]"
        known = check_product(problems, f"{at}.product", code, ctx.reference)
        try:
            qty = int(quantity)
        except (TypeError, ValueError):
            problems.add(f"{at}.quantity", f"must be a whole number, got {quantity!r}")
            continue
        check_quantity(problems, f"{at}.quantity", qty)
        if known:
            product = ctx.reference.products[code]
            lines.append(
                {
                    "product": code,
                    "quantity": qty,
                    "material": product.material,
                    "price": product.price,
                    "interval": product.interval,
                }
            )
    return lines


# ---------------------------------------------------------------- steps


def _order_payload(view: SagaView) -> dict[str, Any]:
    return {
        "customer_id": view.input["erpCustomer"],
        "purchase_order": view.input["opportunityId"],
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
    return {
        "id": order.id,
        "status": order.status,
        "net_amount": str(order.net_amount),
        "currency": order.currency,
    }


def _subscription_payload(interval: str) -> Any:
    """Billing platforms bill one interval per subscription (Stripe refuses to mix month
    and year prices), so a deal with both gets one subscription per interval."""

    def prepare(view: SagaView) -> dict[str, Any] | None:
        lines = [line for line in view.input["lines"] if line.get("interval", "month") == interval]
        if not lines:
            return None
        order = view.result("erp_order")["id"]
        return {
            "customer_id": view.input["billingCustomer"],
            "items": [[line["price"], int(line["quantity"])] for line in lines],
            "metadata": {
                "erp_order": order,
                "erp_bp": view.input["erpCustomer"],
                "crm_opportunity_id": view.input["opportunityId"],
                "invoice_schedule": "yearly" if interval == "year" else "monthly",
                "crosswalk_operation": view.operation_id,
            },
        }

    return prepare


def _subscription_message(payload: Mapping[str, Any], key: str) -> CreateSubscription:
    return CreateSubscription(
        idempotency_key=key,
        customer_id=payload["customer_id"],
        items=tuple((p, int(q)) for p, q in payload["items"]),
        metadata=dict(payload["metadata"]),
    )


def subscription_record(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "status": subscription.status,
        "current_period_end": iso_date(subscription.current_period_end),
    }


def _entitlement_payload(view: SagaView) -> dict[str, Any]:
    ends = [
        view.result(step).get("current_period_end")
        for step in ("billing_subscription", "billing_subscription_annual")
    ]
    return {
        "organization_id": view.input["supportOrganization"],
        "status": "active",
        "support_tier": view.input["supportTier"],
        "ends": max((e for e in ends if e), default=None),
    }


def entitlement_message(payload: Mapping[str, Any], key: str) -> SetEntitlement:
    return SetEntitlement(
        idempotency_key=key,
        organization_id=payload["organization_id"],
        status=payload["status"],
        support_tier=payload.get("support_tier"),
        ends=parse_date(payload.get("ends")),
    )


def entitlement_record(entitlement: Any) -> dict[str, Any]:
    return {
        "status": getattr(entitlement, "status", None),
        "support_tier": getattr(entitlement, "support_tier", None),
        "ends": iso_date(getattr(entitlement, "ends", None)),
    }


def _stamp_payload(view: SagaView) -> dict[str, Any]:
    return {
        "id": view.input["opportunityId"],
        "fields": {
            "StageName": "Closed Won",
            "ERP_Order_Number__c": view.result("erp_order")["id"],
        },
    }


def stamp_message(payload: Mapping[str, Any], key: str) -> UpdateOpportunity:
    return UpdateOpportunity(idempotency_key=key, id=payload["id"], fields=dict(payload["fields"]))


def stamp_record(opportunity: Opportunity) -> dict[str, Any]:
    return {
        "id": opportunity.id,
        "stage": opportunity.stage,
        "erp_order_number": opportunity.erp_order_number,
    }


FLOW = Flow(
    kind=KIND,
    steps=(
        Step("erp_order", System.ERP, _order_payload, _order_message, _order_record),
        Step(
            "billing_subscription",
            System.BILLING,
            _subscription_payload("month"),
            _subscription_message,
            subscription_record,
        ),
        Step(
            "billing_subscription_annual",
            System.BILLING,
            _subscription_payload("year"),
            _subscription_message,
            subscription_record,
        ),
        Step(
            "support_entitlement",
            System.SUPPORT,
            _entitlement_payload,
            entitlement_message,
            entitlement_record,
        ),
        Step("crm_stamp", System.CRM, _stamp_payload, stamp_message, stamp_record),
    ),
    compensation={
        "erp_order": "nothing was written anywhere; subscription, entitlement and stamp wait",
        "billing_subscription": "the ERP order is kept (authoritative; cancelling it is a credit "
        "memo decision); billing, entitlement and stamp wait",
        "billing_subscription_annual": "the ERP order and the monthly subscription are kept; "
        "the annual subscription, entitlement and stamp wait",
        "support_entitlement": "order and subscription are kept; entitlement and CRM stamp wait",
        "crm_stamp": "order, subscription and entitlement are kept; only the CRM stamp waits",
    },
)
