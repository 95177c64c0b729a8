"""Look-ups people make every day: an order, an invoice, a case by its number, and the
product catalog. Answered from the read model (no vendor call), each with its customer.

A record the read model does not hold is NOT_FOUND once its system's initial load has
finished; before that the answer is SYSTEM_UNAVAILABLE ("not loaded yet"), since the
record may exist. Each answer says how old it is (``asOf``, ``ageSeconds``) and whether
that is past the freshness budget of its field group (``stale``); a look-up does not
refresh a single record from the vendor: the change feeds keep it within the catch-up
interval.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from canonical import Case, Invoice, Order, System
from gateway.graphql.context import Context, require_scope
from gateway.graphql.customer import Customer360
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.invoices import join_invoices
from gateway.graphql.types import (
    CaseRecord,
    InvoiceRecord,
    OrderRecord,
    SystemName,
    resolver,
)
from gateway.readmodel.kinds import Kind
from gateway.readmodel.model import ReadModel

__all__ = ["LookupQuery"]


@strawberry.type(description="How current a looked-up record is.")
class LookupFreshness:
    system: SystemName = strawberry.field(description="The system the record lives in.")
    as_of: datetime | None = strawberry.field(
        description="The last moment the read model was known to hold the record's state."
    )
    age_seconds: float | None = strawberry.field(description="Seconds since `asOf`.")
    stale: bool = strawberry.field(
        description="True when the age is past the field group's freshness budget."
    )


@strawberry.type(description="An ERP sales order and its customer.")
class OrderLookup:
    order: OrderRecord = strawberry.field(description="The order.")
    customer: Customer360 | None = strawberry.field(
        description="Its customer (null if the sold-to party is not in the registry yet)."
    )
    freshness: LookupFreshness = strawberry.field(description="How current the order is.")


@strawberry.type(
    description="An invoice (billing's, joined with the ERP document) and its customer."
)
class InvoiceLookup:
    invoice: InvoiceRecord = strawberry.field(description="The invoice.")
    customer: Customer360 | None = strawberry.field(description="Its customer.")
    freshness: LookupFreshness = strawberry.field(description="How current the invoice is.")


@strawberry.type(description="A support case and its customer.")
class CaseLookup:
    case: CaseRecord = strawberry.field(description="The case.")
    customer: Customer360 | None = strawberry.field(
        description="Its customer (null for a ticket without an organization)."
    )
    freshness: LookupFreshness = strawberry.field(description="How current the case is.")


@strawberry.type(description="A product of the catalog and what it is called in each system.")
class ProductRecord:
    code: str = strawberry.field(description="Crosswalk's product code.")
    name: str = strawberry.field(description="Display name.")
    erp_material: str = strawberry.field(description="ERP material number.")
    billing_price: str = strawberry.field(description="Billing price id (`price_...`).")
    unit_amount: Decimal = strawberry.field(description="List price per interval.")
    currency: str = strawberry.field(description="ISO 4217 currency of the list price.")
    interval: str = strawberry.field(description="`month` or `year`.")
    support_tier: str | None = strawberry.field(description="The support tier it entitles.")


def _model(context: Context) -> ReadModel:
    model = getattr(context.runtime, "read_model", None)
    if not isinstance(model, ReadModel):
        raise CodedError(ErrorCode.SYSTEM_UNAVAILABLE, "This gateway runs without a read model.")
    return model


def _missing(model: ReadModel, system: System, what: str) -> CodedError:
    if model.complete_at(system) is None:
        return CodedError(
            ErrorCode.SYSTEM_UNAVAILABLE,
            f"{what}: the read model has not finished loading {system} yet; try again shortly",
            system=str(system),
        )
    return CodedError(ErrorCode.NOT_FOUND, f"{what}: no such record")


def _freshness(
    context: Context, model: ReadModel, system: System, kind: Kind, customer: str, group: str
) -> LookupFreshness:
    as_of = model.as_of(system, kind, customer)
    age = None if as_of is None else max(0.0, time.time() - as_of)
    policies = getattr(context.runtime, "policies", None)
    policy = getattr(policies, "readmodel", None)
    budget = policy.budget(system, group) if policy is not None else 60.0
    return LookupFreshness(
        system=system,
        as_of=None if as_of is None else datetime.fromtimestamp(as_of, UTC),
        age_seconds=age,
        stale=age is None or age > budget,
    )


async def _customer(context: Context, system: System, native: str | None) -> Customer360 | None:
    if not native:
        return None
    canonical = await context.runtime.store.resolve(system, native)
    if canonical is None:
        return None
    xref = await context.runtime.store.get_xref(canonical)
    return None if xref is None else Customer360.of(xref)


@strawberry.type
class LookupQuery:
    @resolver("An ERP sales order by its number, with its customer. Needs order:read.")
    async def order(
        self,
        info: Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="ERP SalesOrder number.")],
    ) -> OrderLookup | None:
        context = require_scope(info, "order:read")
        model = _model(context)
        entry = model.record(System.ERP, Kind.ORDER, str(id))
        if entry is None or not isinstance(entry.value, Order):
            raise _missing(model, System.ERP, f"order {id!s:.40}")
        return OrderLookup(
            order=OrderRecord.of(entry.value),
            customer=await _customer(context, System.ERP, entry.customer),
            freshness=_freshness(context, model, System.ERP, Kind.ORDER, entry.customer, "orders"),
        )

    @resolver(
        "An invoice by its billing id (`in_...`) or its ERP billing document number, both "
        "halves joined, with its customer. Needs invoice:read."
    )
    async def invoice(
        self,
        info: Info[Context, None],
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="Billing invoice id or ERP document number."),
        ],
    ) -> InvoiceLookup | None:
        context = require_scope(info, "invoice:read")
        model = _model(context)
        key = str(id)
        billing = model.record(System.BILLING, Kind.INVOICE, key)
        erp = model.record(System.ERP, Kind.BILLING_DOCUMENT, key)
        billing_docs: list[Any] = []
        erp_docs: list[Any] = []
        if billing is not None and isinstance(billing.value, Invoice):
            billing_docs.append(billing.value)
            if billing.value.erp_document:
                other = model.record(System.ERP, Kind.BILLING_DOCUMENT, billing.value.erp_document)
                if other is not None:
                    erp_docs.append(other.value)
        elif erp is not None and isinstance(erp.value, Invoice):
            erp_docs.append(erp.value)
            if erp.value.billing_invoice:
                other = model.record(System.BILLING, Kind.INVOICE, erp.value.billing_invoice)
                if other is not None:
                    billing_docs.append(other.value)
        else:
            raise _missing(model, System.BILLING, f"invoice {key:.40}")
        [joined, *_] = join_invoices(billing_docs, erp_docs)
        if billing_docs:
            owner = billing_docs[0]
            system, kind, group = System.BILLING, Kind.INVOICE, "invoices"
        else:
            owner = erp_docs[0]
            system, kind, group = System.ERP, Kind.BILLING_DOCUMENT, "billing_documents"
        return InvoiceLookup(
            invoice=joined,
            customer=await _customer(context, system, owner.customer_id),
            freshness=_freshness(context, model, system, kind, owner.customer_id, group),
        )

    @resolver("A support case by its ticket id or external id, with its customer. Needs case:read.")
    async def case(
        self,
        info: Info[Context, None],
        id: Annotated[
            strawberry.ID, strawberry.argument(description="Zendesk ticket id or external id.")
        ],
    ) -> CaseLookup | None:
        context = require_scope(info, "case:read")
        model = _model(context)
        key = str(id)
        entry = model.record(System.SUPPORT, Kind.CASE, key)
        value = entry.value if entry is not None else None
        if not isinstance(value, Case):
            value = next(
                (
                    e.value
                    for _, e in model.records(System.SUPPORT, Kind.CASE)
                    if isinstance(e.value, Case) and e.value.external_id == key
                ),
                None,
            )
        if value is None:
            raise _missing(model, System.SUPPORT, f"case {key:.40}")
        org = value.organization_id or ""
        return CaseLookup(
            case=value,  # type: ignore[arg-type]  # Case answers as CaseRecord (same fields)
            customer=await _customer(context, System.SUPPORT, value.organization_id),
            freshness=_freshness(context, model, System.SUPPORT, Kind.CASE, org, "cases"),
        )

    @resolver(
        "The product catalog (policies/reference.toml) with each product's ERP material, "
        "billing price and support tier."
    )
    def products(self, info: Info[Context, None]) -> list[ProductRecord]:
        context = info.context
        reference = getattr(context.runtime.policies, "reference", None)
        if reference is None:
            return []
        return [
            ProductRecord(
                code=p.code,
                name=p.name,
                erp_material=p.material,
                billing_price=p.price,
                unit_amount=p.unit_amount,
                currency=p.currency,
                interval=p.interval,
                support_tier=p.support_tier,
            )
            for p in reference.products.values()
        ]
