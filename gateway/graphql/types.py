"""GraphQL object types of the read side: the systems' records, a customer's identity, and
where each part of an answer came from.

These are plain values built from canonical records (``canonical``). Elsewhere:
connections and cursors in ``gateway.graphql.paging``; ``Query.systems``'s types in
``gateway.graphql.system_status``; the types with resolvers in
``gateway.graphql.customer`` (``Customer360``) and ``gateway.graphql.golden``
(``GoldenRecord``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

import strawberry

from canonical import Case, Entitlement, Opportunity, Order, Subscription, System

__all__ = [
    "Balance",
    "CaseRecord",
    "DataSource",
    "EntitlementRecord",
    "FieldSource",
    "Identity",
    "InvoiceRecord",
    "OpportunityRecord",
    "OrderItemRecord",
    "OrderRecord",
    "SourceFreshness",
    "SubscriptionItemRecord",
    "SubscriptionRecord",
    "SystemName",
    "opportunity_status",
    "resolver",
]

if TYPE_CHECKING:
    SystemName = System
else:
    SystemName = strawberry.enum(
        System,
        name="SystemName",
        description="A back-office system behind Crosswalk.",
    )

field = strawberry.field

F = TypeVar("F", bound=Callable[..., Any])


def resolver(description: str, *, name: str | None = None) -> Callable[[F], F]:
    """``@strawberry.field(description=...)`` for a resolver method, typed for mypy."""
    return cast(Callable[[F], F], strawberry.field(description=description, name=name))


@strawberry.type(description="A customer's id in Crosswalk and in every system that knows it.")
class Identity:
    canonical_id: strawberry.ID = field(description="Crosswalk's own id for the customer.")
    erp: str | None = field(description="SAP BusinessPartner, e.g. `1000042`.")
    billing: str | None = field(description="Stripe customer id, `cus_...`.")
    crm: str | None = field(description="Salesforce Account id, `001...`.")
    support: str | None = field(description="Zendesk organization id.")
    aliases: list[str] = field(
        description="Canonical ids of records merged into this one; they still resolve here."
    )


@strawberry.type(description="Where one golden-record field came from.")
class FieldSource:
    field_name: str = strawberry.field(
        name="field", description="The golden-record field, e.g. `legalName`."
    )
    system: SystemName | None = strawberry.field(
        description="The system the value came from; null when no system had a value."
    )
    owner: SystemName = strawberry.field(
        description="The system that owns the field by policy (policies/ownership.toml)."
    )
    stale: bool = strawberry.field(description="True when the value is last-known-good data.")


@strawberry.enum(description="Where a system's part of an answer came from.")
class DataSource(enum.Enum):
    LIVE = strawberry.enum_value("LIVE", description="Asked the system during this request.")
    EVENTS = strawberry.enum_value(
        "EVENTS", description="The read model, last changed by the system's webhook events."
    )
    CATCH_UP = strawberry.enum_value(
        "CATCH_UP", description="The read model, last changed by the system's change feed."
    )
    READ_THROUGH = strawberry.enum_value(
        "READ_THROUGH", description="The read model, filled by an earlier read of the system."
    )
    LAST_KNOWN_GOOD = strawberry.enum_value(
        "LAST_KNOWN_GOOD", description="The gateway's cache of an earlier answer."
    )


@strawberry.type(
    description="How fresh one system's part of the answer is: when it was read, whether it "
    "is stale (older than its freshness budget, or last-known-good because the system "
    "failed), where it came from, and why."
)
class SourceFreshness:
    system: SystemName = field(description="The system.")
    linked: bool = field(
        description="Whether the customer is known in this system (cross-reference registry)."
    )
    as_of: datetime | None = field(
        description="When the data shown from this system was read from it."
    )
    stale: bool = field(description="True when some data shown is last-known-good.")
    age_seconds: float | None = field(description="Age of the stale data in seconds.")
    reason: str | None = field(description="Why the data is stale or missing.")
    error_code: str | None = field(
        description="The `extensions.code` of the failure, when the system failed."
    )
    source: DataSource | None = field(
        default=None,
        description="Where the data came from (the oldest source when several fields read "
        "this system); null when nothing was read.",
    )


@strawberry.type(name="OrderItem", description="A line of an ERP sales order.")
class OrderItemRecord:
    material: str = field(description="ERP material number.")
    quantity: Decimal = field(description="Ordered quantity.")
    net_amount: Decimal | None = field(description="Net amount of the line.")


@strawberry.type(name="Order", description="An ERP sales order (the system of record).")
class OrderRecord:
    id: strawberry.ID = field(description="ERP SalesOrder number.")
    purchase_order: str | None = field(
        description="PurchaseOrderByCustomer: the CRM opportunity the order came from."
    )
    status: str = field(
        description="OverallSDProcessStatus: `A` open, `B` in process, `C` completed."
    )
    net_amount: Decimal = field(description="Net value of the order.")
    currency: str = field(description="ISO 4217 currency.")
    items: list[OrderItemRecord] = field(description="Order lines.")
    created_at: datetime | None = field(description="When the order was created.")

    @classmethod
    def of(cls, order: Order) -> OrderRecord:
        return cls(
            id=strawberry.ID(order.id),
            purchase_order=order.purchase_order,
            status=order.status,
            net_amount=order.net_amount,
            currency=order.currency,
            items=[
                OrderItemRecord(material=i.material, quantity=i.quantity, net_amount=i.net_amount)
                for i in order.items
            ],
            created_at=order.created_at,
        )


@strawberry.type(
    name="Invoice",
    description="One invoice as the customer sees it: billing's invoice joined with the ERP "
    "billing document it was posted as (billing `metadata[erp_billing_document]` / ERP "
    "`PurchaseOrderByCustomer = in_...`).",
)
class InvoiceRecord:
    id: strawberry.ID = field(
        description="The billing invoice id (`in_...`), or the ERP document if billing has none."
    )
    status: str = field(
        description="Billing status: draft, open, paid, uncollectible, void (ERP's when only "
        "the ERP knows the invoice)."
    )
    total: Decimal = field(description="Invoice total including tax.")
    currency: str = field(description="ISO 4217 currency.")
    amount_due: Decimal | None = field(description="What is still to be paid.")
    tax: Decimal | None = field(description="Tax amount.")
    due_date: date | None = field(description="When payment is due.")
    created_at: datetime | None = field(description="When the invoice was created.")
    billing_invoice_id: str | None = field(description="The billing system's invoice id.")
    erp_document_id: str | None = field(description="The ERP BillingDocument number.")
    posted: bool | None = field(
        description="Whether the ERP has posted the document to accounting; null if the ERP "
        "part is unknown."
    )
    posting_status: str | None = field(description="The ERP document's posting status.")
    sources: list[SystemName] = field(description="The systems this invoice was seen in.")


@strawberry.type(name="SubscriptionItem", description="A line of a billing subscription.")
class SubscriptionItemRecord:
    price: str = field(description="Billing price id, `price_...`.")
    quantity: int = field(description="Quantity.")


@strawberry.type(name="Subscription", description="A billing subscription.")
class SubscriptionRecord:
    id: strawberry.ID = field(description="Billing subscription id, `sub_...`.")
    status: str = field(
        description="incomplete, trialing, active, past_due, canceled, unpaid or paused."
    )
    items: list[SubscriptionItemRecord] = field(description="Subscribed prices.")
    current_period_start: datetime | None = field(description="Start of the current period.")
    current_period_end: datetime | None = field(description="End of the current period.")
    cancel_at_period_end: bool = field(description="Whether it ends with the current period.")
    erp_order: str | None = field(description="The ERP sales order it bills (metadata).")
    created_at: datetime | None = field(description="When it was created.")

    @classmethod
    def of(cls, s: Subscription) -> SubscriptionRecord:
        return cls(
            id=strawberry.ID(s.id),
            status=s.status,
            items=[SubscriptionItemRecord(price=i.price, quantity=i.quantity) for i in s.items],
            current_period_start=s.current_period_start,
            current_period_end=s.current_period_end,
            cancel_at_period_end=s.cancel_at_period_end,
            erp_order=s.erp_order,
            created_at=s.created_at,
        )


@strawberry.type(description="What the customer owes, from its billing invoices.")
class Balance:
    amount_due: Decimal = field(description="Sum still due on open invoices.")
    currency: str | None = field(
        description="Currency of the amounts; null when the customer has no invoices."
    )
    open_invoices: int = field(description="Invoices still open.")
    overdue_invoices: int = field(description="Open invoices past their due date.")
    overdue_amount: Decimal = field(description="Sum due on overdue invoices.")
    stale: bool = field(description="True when computed from last-known-good invoices.")
    age_seconds: float | None = field(description="Age of stale data in seconds.")


@strawberry.type(name="Opportunity", description="A CRM opportunity.")
class OpportunityRecord:
    id: strawberry.ID = field(description="Salesforce Opportunity id, `006...`.")
    name: str = field(description="Opportunity name.")
    stage: str = field(description="StageName, e.g. `Prospecting`, `Closed Won`.")
    status: str = field(description="`open`, `won` or `lost`, derived from the stage.")
    amount: Decimal | None = field(description="Expected amount.")
    close_date: date | None = field(description="Expected or actual close date.")
    erp_order_number: str | None = field(description="The ERP sales order it became.")
    products: list[str] = field(description="Canonical product codes.")
    updated_at: datetime | None = field(description="Last change in the CRM.")

    @classmethod
    def of(cls, o: Opportunity) -> OpportunityRecord:
        return cls(
            id=strawberry.ID(o.id),
            name=o.name,
            stage=o.stage,
            status=opportunity_status(o),
            amount=o.amount,
            close_date=o.close_date,
            erp_order_number=o.erp_order_number,
            products=list(o.products),
            updated_at=o.updated_at,
        )


def opportunity_status(o: Opportunity) -> str:
    if not o.is_closed:
        return "open"
    return "won" if o.is_won else "lost"


@strawberry.type(name="Case", description="A support case (a Zendesk ticket).")
class CaseRecord:
    id: strawberry.ID = field(description="Zendesk ticket id.")
    subject: str = field(description="Subject line.")
    status: str = field(description="new, open, pending, hold, solved or closed.")
    priority: str | None = field(description="urgent, high, normal or low.")
    type: str | None = field(description="problem, incident, question or task.")
    external_id: str | None = field(description="The id the case was opened under elsewhere.")
    tags: list[str] = field(description="Ticket tags.")
    created_at: datetime | None = field(description="When the case was opened.")
    updated_at: datetime | None = field(description="Last change.")

    @classmethod
    def of(cls, c: Case) -> CaseRecord:
        return cls(
            id=strawberry.ID(c.id),
            subject=c.subject,
            status=c.status,
            priority=c.priority,
            type=c.type,
            external_id=c.external_id,
            tags=list(c.tags),
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


@strawberry.type(name="Entitlement", description="A support entitlement of the customer.")
class EntitlementRecord:
    status: str = field(description="active, at_risk, inactive or expired.")
    support_tier: str | None = field(description="Support tier, e.g. `gold`.")
    ends: date | None = field(description="When the entitlement ends.")

    @classmethod
    def of(cls, e: Entitlement) -> EntitlementRecord:
        return cls(status=e.status, support_tier=e.support_tier, ends=e.ends)
