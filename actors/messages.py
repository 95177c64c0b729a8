"""Messages a system actor understands: the contract between the gateway and the connectors.

Every message is a frozen dataclass. The gateway sends one to a system's actor with a
priority and a deadline; the actor hands it to the system's connector, whose
``handle(message)`` answers with the result type named in each docstring, or raises an
error from ``actors.errors``.

Reads are batched by design: they take a tuple of native ids and answer a dict keyed by
those ids (absent ids are simply missing from the dict), so a DataLoader can turn fifty
customers' invoices into one upstream call where the vendor allows it.

Writes carry an ``idempotency_key`` derived by the caller from (operation, step). The
connector turns it into the vendor's own mechanism (Stripe and Zendesk
``Idempotency-Key``, Salesforce upsert by external id, SAP check-before-create on
``BusinessPartnerIDByExtSystem`` / ``PurchaseOrderByCustomer``), so delivering the same
message twice has one effect.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import ClassVar, Generic, TypeVar

from canonical import Customer

T = TypeVar("T")


class Priority(enum.IntEnum):
    """Mailbox classes, most urgent first; FIFO within a class."""

    INTERACTIVE = 0  # a person is waiting (GraphQL reads)
    TRANSACTIONAL = 1  # outbox deliveries
    SYNC = 2  # webhook-driven propagation
    BATCH = 3  # reconciliation, discovery


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    #: safe to retry and to coalesce with an identical concurrent message
    read: ClassVar[bool] = True


# ---------------------------------------------------------------- reads, every system


@dataclass(frozen=True, slots=True)
class GetCustomers(Message):
    """-> dict[str, Customer] keyed by native id (ERP BusinessPartner, cus_, 001, org id)."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FindCustomers(Message):
    """-> tuple[Customer, ...]: name contains ``text`` (case-insensitive), at most ``limit``."""

    text: str
    limit: int = 20


@dataclass(frozen=True, slots=True)
class FindCustomersByTaxId(Message):
    """-> tuple[Customer, ...]: the customers registered under ``tax_id`` (ERP only:
    SAP ``A_BusinessPartnerTaxNumber``), compared without spaces and dots."""

    tax_id: str


@dataclass(frozen=True, slots=True)
class ListCustomers(Message):
    """-> Page[Customer]: every customer, for discovery sync and reconciliation."""

    cursor: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class FindCustomerByXRef(Message):
    """-> Customer | None: the customer carrying the ERP cross-reference ``erp_bp``.

    ERP: BusinessPartner itself (or BusinessPartnerIDByExtSystem); CRM: ERP_Customer_Id__c;
    billing: metadata['erp_bp'] search; support: organization external_id.
    """

    erp_bp: str


# ---------------------------------------------------------------- reads, per system


@dataclass(frozen=True, slots=True)
class GetOrders(Message):
    """ERP -> dict[str, tuple[Order, ...]] keyed by SoldToParty (BusinessPartner)."""

    customer_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetBillingDocuments(Message):
    """ERP -> dict[str, tuple[Invoice, ...]] keyed by SoldToParty; Invoice.erp_document set."""

    customer_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetBillingDocument(Message):
    """ERP -> Invoice for one BillingDocument id (raises NotFound)."""

    id: str


@dataclass(frozen=True, slots=True)
class GetSubscriptions(Message):
    """billing -> dict[str, tuple[Subscription, ...]] keyed by cus_ id."""

    customer_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetInvoices(Message):
    """billing -> dict[str, tuple[Invoice, ...]] keyed by cus_ id; Invoice.billing_invoice set."""

    customer_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetOpportunities(Message):
    """CRM -> dict[str, tuple[Opportunity, ...]] keyed by AccountId."""

    account_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetOpportunity(Message):
    """CRM -> Opportunity (raises NotFound)."""

    id: str


@dataclass(frozen=True, slots=True)
class GetCases(Message):
    """support -> dict[str, tuple[Case, ...]] keyed by organization id."""

    organization_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetEntitlements(Message):
    """support -> dict[str, Entitlement] keyed by organization id."""

    organization_ids: tuple[str, ...]


# ---------------------------------------------------------------- change feeds


@dataclass(frozen=True, slots=True)
class ChangedRecord:
    """One record a change feed reported.

    ``value`` is the canonical record as the feed read it. When the feed names a record
    without its state (Stripe's events carry a state of their own moment, Salesforce's
    ``updated`` only ids), ``value`` is None and the gateway reads ``customer``'s slice of
    ``kind`` back; ``deleted`` marks a record the system no longer has.
    """

    kind: str  # the read model's kinds: customer, order, invoice, case, ...
    id: str
    customer: str | None
    value: object | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ChangePage:
    records: tuple[ChangedRecord, ...]
    #: where the next read of this feed continues (store it with what this page applied)
    cursor: str
    #: another page is ready now; False once the feed reached its end
    more: bool


@dataclass(frozen=True, slots=True)
class GetChanges(Message):
    """-> ChangePage: what changed in ``feed`` since ``cursor``.

    ``cursor`` None starts from the beginning: every record (the initial load), listed
    with the system's bulk paths, after which the cursor continues with the changes made
    since that listing began. Cursors are the connector's own text; the gateway stores
    them and never looks inside. Feeds per system: ``FEEDS`` below.
    """

    feed: str
    cursor: str | None = None
    limit: int = 100


#: each system's change feeds, read in this order by the catch-up
FEEDS: dict[str, tuple[str, ...]] = {
    "erp": ("customers", "orders", "billing_documents"),
    "billing": ("events", "customers", "invoices", "subscriptions"),
    "crm": ("customers", "opportunities"),
    "support": ("organizations", "tickets"),
}


# ---------------------------------------------------------------- writes


@dataclass(frozen=True, slots=True)
class Write(Message):
    read: ClassVar[bool] = False
    idempotency_key: str
    #: the sender knows no earlier attempt of this write can have reached the system (the
    #: outbox's first delivery of it), so a connector may skip a check-before-create lookup
    #: that only guards against its own earlier attempts
    first_delivery: bool = field(default=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class EnsureCustomer(Write):
    """Create the customer in this system unless it already exists -> Customer.

    ``customer`` holds the canonical fields; its ``xref`` carries the keys this system links
    by (ERP: BusinessPartnerIDByExtSystem = ``external_id``; CRM: upsert by
    ERP_Customer_Id__c = ``xref.erp``; billing: metadata erp_bp / crm_account_id with the
    idempotency key; support: create_or_update by external_id = ``xref.erp``).
    """

    customer: Customer
    external_id: str


@dataclass(frozen=True, slots=True)
class UpdateCustomer(Write):
    """Change some canonical fields of an existing customer -> Customer.

    ``changes`` maps canonical field names (``name``, ``payment_terms``, ...) to new values.
    ERP uses ETag / If-Match and re-reads on 412.
    """

    id: str
    changes: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnsureSalesOrder(Write):
    """ERP: create a sales order unless one with this PurchaseOrderByCustomer exists -> Order.

    On a ``first_delivery`` the lookup is skipped: the purchase order number is the deal's
    (one operation per opportunity is ever accepted), so only an earlier delivery of this
    same write could have created the order.
    """

    customer_id: str
    purchase_order: str
    items: tuple[tuple[str, Decimal], ...]  # (material, quantity)
    currency: str = "EUR"


@dataclass(frozen=True, slots=True)
class EnsureCreditMemoRequest(Write):
    """ERP: a credit memo request unless one with this PurchaseOrderByCustomer exists for
    the customer -> the CreditMemoRequest id (str).

    ``customer_id`` is the SoldToParty, ``billing_document`` the ReferenceSDDocument,
    ``reason`` the SDDocumentReason; ``amount`` is the net value in ``currency``. As for
    sales orders, a ``first_delivery`` skips the lookup.
    """

    customer_id: str
    purchase_order: str
    amount: Decimal
    currency: str
    reason: str
    billing_document: str | None = None


@dataclass(frozen=True, slots=True)
class CreateSubscription(Write):
    """billing: subscription with its invoice schedule -> Subscription (Idempotency-Key)."""

    customer_id: str
    items: tuple[tuple[str, int], ...]  # (price id, quantity)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RenewSubscription(Write):
    """billing: extend a subscription by one period -> Subscription (Idempotency-Key)."""

    subscription_id: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreateCreditNote(Write):
    """billing: a credit note on an open or paid invoice -> the credit note id (str).

    ``amount`` is in the invoice's currency units (Decimal("12.50")), ``reason`` one of
    Stripe's (duplicate, fraudulent, order_change, product_unsatisfactory) or None. Sent
    with the Idempotency-Key and stamped ``metadata[crosswalk_key]``, so a redelivery after
    Stripe's 24-hour key window finds the first one among the invoice's credit notes.
    """

    invoice_id: str
    amount: Decimal
    reason: str | None = None
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateOpportunity(Write):
    """CRM: PATCH an opportunity -> Opportunity. ``fields`` are Salesforce field names."""

    id: str
    fields: dict[str, str | bool | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnsureBillingDocument(Write):
    """ERP: the billing document of a billing invoice, posted -> Invoice. Check-before-create
    on ``PurchaseOrderByCustomer`` = the billing invoice id (SAP has no idempotency key),
    so a redelivery, or a second event about the same invoice, finds the first one."""

    customer_id: str  # SoldToParty
    billing_invoice: str  # in_..., stored as PurchaseOrderByCustomer
    net_amount: Decimal
    tax_amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class CreateTask(Write):
    """CRM: a Task on an account for its owner -> the Task id (str). Upserted by
    ``Crosswalk_Key__c`` = the idempotency key, so a redelivery finds the first one."""

    account_id: str
    subject: str
    priority: str = "Normal"  # High | Normal | Low
    status: str = "Not Started"
    due: date | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class SetEntitlement(Write):
    """support: set an organization's entitlement (organization_fields) -> Entitlement."""

    organization_id: str
    status: str
    support_tier: str | None = None
    ends: date | None = None


@dataclass(frozen=True, slots=True)
class CreateCase(Write):
    """support: POST /tickets with Idempotency-Key and external_id -> Case."""

    organization_id: str
    subject: str
    description: str
    priority: str = "normal"
    type: str = "question"
    external_id: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdateCase(Write):
    """support: PUT /tickets/{id} -> Case. ``fields`` are Zendesk ticket fields."""

    id: str
    fields: dict[str, object] = field(default_factory=dict)
