"""``Customer360``: one customer across the four systems, resolved through the DataLoaders.

Each field reads only the systems it needs, so a query that asks for ``cases`` alone
touches only support. Field scopes are checked per field (``invoice:read`` on
``invoices``, ...): a missing scope nulls that field with FORBIDDEN and leaves the rest.
When a system fails, its fields come from last-known-good data (``stale: true`` with
``ageSeconds``) or are null with the coded error (``extensions.system``); ``freshness``
says per system what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar, cast

import strawberry
from strawberry.types import Info

from canonical import Customer, Invoice, System
from gateway.graphql.context import Context, require_scope
from gateway.graphql.freshness import freshness, stale_of
from gateway.graphql.golden import (
    GoldenRecord,
    golden_fields,
    golden_record,
    ownership,
    ownership_plan,
)
from gateway.graphql.invoices import join_invoices
from gateway.graphql.loaders import Fetched, SystemLoader
from gateway.graphql.paging import Connection, matches, paginate
from gateway.graphql.types import (
    Balance,
    CaseRecord,
    EntitlementRecord,
    Identity,
    InvoiceRecord,
    OpportunityRecord,
    OrderRecord,
    SourceFreshness,
    SubscriptionRecord,
    opportunity_status,
    resolver,
)
from gateway.store.records import XRefRecord

__all__ = ["Customer360"]

STATUS_HELP = "Only items whose status is one of these (case-insensitive)."
FIRST_HELP = "Page size, at most 100."
AFTER_HELP = "Cursor after which the page starts (`pageInfo.endCursor`)."


R = TypeVar("R")


def _as_records(page: Connection[Any], record: type[R]) -> Connection[R]:
    """``page`` typed as a connection of ``record``, whose GraphQL type it answers.

    ``Subscription`` (with its ``SubscriptionItem``s) and ``Case`` have every attribute of
    ``SubscriptionRecord`` and ``CaseRecord`` under the same name and type, and GraphQL
    reads those by attribute: copying each record into a strawberry object first would
    only cost an object per item and per field.
    """
    return cast(Connection[R], page)


@strawberry.type(
    name="Customer360",
    description="One customer as all four systems know it: identity, golden record, "
    "orders, subscriptions, invoices, balance, opportunities, cases and entitlements, "
    "with per-system freshness.",
)
class Customer360:
    xref: strawberry.Private[XRefRecord]

    # ------------------------------------------------------------ helpers

    def _load(self, info: Info[Context, None], loader_name: str, system: System) -> Any:
        native = self.xref.get(system)
        if native is None:
            return None
        loader: SystemLoader[Any] = getattr(info.context.loaders, loader_name)
        return loader.load(native)

    # ------------------------------------------------------------ fields

    id: strawberry.ID = strawberry.field(description="Crosswalk's canonical id for the customer.")
    name: str | None = strawberry.field(
        description="Display name from the cross-reference registry."
    )

    @classmethod
    def of(cls, xref: XRefRecord) -> Customer360:
        return cls(xref=xref, id=strawberry.ID(xref.canonical_id), name=xref.name)

    @resolver("The customer's id in Crosswalk and in every system.")
    def identity(self) -> Identity:
        x = self.xref
        return Identity(
            canonical_id=strawberry.ID(x.canonical_id),
            erp=x.erp,
            billing=x.billing,
            crm=x.crm,
            support=x.support,
            aliases=list(x.aliases),
        )

    @resolver("Master data, each field from the system that owns it. Needs customer:read.")
    async def golden(self, info: Info[Context, None]) -> GoldenRecord | None:
        context = require_scope(info, "customer:read")
        policy = ownership(context)
        plan = ownership_plan(policy)
        wanted, with_sources = golden_fields(info, policy)
        records: dict[System, Fetched[Customer]] = {}
        loaders = context.loaders
        ids = self.xref.ids()

        async def read(systems: set[System]) -> None:
            pending = {
                s: loaders.customers(s).load(ids[s])
                for s in systems
                if s in ids and s not in records
            }
            for system, future in pending.items():
                records[system] = await future

        # owners first; the fallback systems only for fields their owner left empty, so a
        # query for ERP-owned fields touches the ERP alone
        await read({plan[name][0] for name in wanted})
        empty = {
            name
            for name in wanted
            if (fetched := records.get(plan[name][0])) is None
            or (fetched.value is not None and getattr(fetched.value, name) is None)
            or (fetched.value is None and fetched.error is None)
        }
        if empty:
            await read({s for name in empty for s in plan[name][1]})
        return golden_record(records, policy, wanted, with_sources=with_sources)

    @resolver("ERP sales orders, newest first. Needs order:read.")
    async def orders(
        self,
        info: Info[Context, None],
        status: Annotated[list[str] | None, strawberry.argument(description=STATUS_HELP)] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[OrderRecord] | None:
        require_scope(info, "order:read")
        pending = self._load(info, "orders", System.ERP)
        fetched: Fetched[Any] | None = await pending if pending is not None else None
        orders = (fetched.value_or_raise() if fetched else None) or ()
        items = [OrderRecord.of(o) for o in orders if matches(o.status, status)]
        items.sort(key=lambda o: o.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        stale, age = stale_of([fetched] if fetched else [])
        return paginate(items, first, after, kind="order", stale=stale, age_seconds=age)

    @resolver("Billing subscriptions. Needs subscription:read.")
    async def subscriptions(
        self,
        info: Info[Context, None],
        status: Annotated[list[str] | None, strawberry.argument(description=STATUS_HELP)] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[SubscriptionRecord] | None:
        require_scope(info, "subscription:read")
        pending = self._load(info, "subscriptions", System.BILLING)
        fetched: Fetched[Any] | None = await pending if pending is not None else None
        subscriptions = (fetched.value_or_raise() if fetched else None) or ()
        # canonical records answer as they are (see ``_as_records``)
        items = [s for s in subscriptions if matches(s.status, status)]
        stale, age = stale_of([fetched] if fetched else [])
        page = paginate(items, first, after, kind="subscription", stale=stale, age_seconds=age)
        return _as_records(page, SubscriptionRecord)

    async def _invoices(
        self, info: Info[Context, None]
    ) -> tuple[list[InvoiceRecord], bool, float | None]:
        billing_pending = self._load(info, "invoices", System.BILLING)
        erp_pending = self._load(info, "billing_documents", System.ERP)
        billing: Fetched[Any] | None = (
            await billing_pending if billing_pending is not None else None
        )
        erp: Fetched[Any] | None = await erp_pending if erp_pending is not None else None
        # billing is where invoices live: without it (and no stale copy) there is no answer;
        # a missing ERP half only leaves posting status unknown (freshness says why)
        billing_invoices = (billing.value_or_raise() if billing else None) or ()
        erp_documents = (erp.value if erp else None) or ()
        joined = join_invoices(billing_invoices, erp_documents)
        stale, age = stale_of([f for f in (billing, erp) if f is not None])
        return joined, stale, age

    @resolver(
        "Invoices: billing's invoice joined with the ERP billing document and its "
        "posting status, newest first. Needs invoice:read."
    )
    async def invoices(
        self,
        info: Info[Context, None],
        status: Annotated[list[str] | None, strawberry.argument(description=STATUS_HELP)] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[InvoiceRecord] | None:
        require_scope(info, "invoice:read")
        joined, stale, age = await self._invoices(info)
        items = [i for i in joined if matches(i.status, status)]
        return paginate(items, first, after, kind="invoice", stale=stale, age_seconds=age)

    @resolver("What the customer owes, from billing. Needs invoice:read.")
    async def balance(self, info: Info[Context, None]) -> Balance | None:
        require_scope(info, "invoice:read")
        pending = self._load(info, "invoices", System.BILLING)
        fetched: Fetched[Any] | None = await pending if pending is not None else None
        invoices: Sequence[Invoice] = (fetched.value_or_raise() if fetched else None) or ()
        today = datetime.now(UTC).date()
        open_invoices = [i for i in invoices if i.status == "open"]
        overdue = [i for i in open_invoices if i.due_date is not None and i.due_date < today]

        def due(items: Sequence[Invoice]) -> Decimal:
            return sum((i.amount_due or Decimal(0) for i in items), Decimal(0))

        stale, age = stale_of([fetched] if fetched else [])
        return Balance(
            amount_due=due(open_invoices),
            currency=invoices[0].currency if invoices else None,
            open_invoices=len(open_invoices),
            overdue_invoices=len(overdue),
            overdue_amount=due(overdue),
            stale=stale,
            age_seconds=age,
        )

    @resolver(
        "CRM opportunities; `status` filters by `open`, `won`, `lost` or stage "
        "name. Needs opportunity:read."
    )
    async def opportunities(
        self,
        info: Info[Context, None],
        status: Annotated[list[str] | None, strawberry.argument(description=STATUS_HELP)] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[OpportunityRecord] | None:
        require_scope(info, "opportunity:read")
        pending = self._load(info, "opportunities", System.CRM)
        fetched: Fetched[Any] | None = await pending if pending is not None else None
        opportunities = (fetched.value_or_raise() if fetched else None) or ()
        items = [
            OpportunityRecord.of(o)
            for o in opportunities
            if matches(opportunity_status(o), status) or matches(o.stage, status)
        ]
        stale, age = stale_of([fetched] if fetched else [])
        return paginate(items, first, after, kind="opportunity", stale=stale, age_seconds=age)

    @resolver("Support cases, newest first. Needs case:read.")
    async def cases(
        self,
        info: Info[Context, None],
        status: Annotated[list[str] | None, strawberry.argument(description=STATUS_HELP)] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[CaseRecord] | None:
        require_scope(info, "case:read")
        pending = self._load(info, "cases", System.SUPPORT)
        fetched: Fetched[Any] | None = await pending if pending is not None else None
        cases = (fetched.value_or_raise() if fetched else None) or ()
        items = [c for c in cases if matches(c.status, status)]
        items.sort(key=lambda c: c.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        stale, age = stale_of([fetched] if fetched else [])
        page = paginate(items, first, after, kind="case", stale=stale, age_seconds=age)
        return _as_records(page, CaseRecord)

    @resolver("Support entitlements. Needs entitlement:read.")
    async def entitlements(
        self,
        info: Info[Context, None],
        status: Annotated[list[str] | None, strawberry.argument(description=STATUS_HELP)] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[EntitlementRecord] | None:
        require_scope(info, "entitlement:read")
        pending = self._load(info, "entitlements", System.SUPPORT)
        fetched: Fetched[Any] | None = await pending if pending is not None else None
        entitlement = fetched.value_or_raise() if fetched else None
        items = (
            [EntitlementRecord.of(entitlement)]
            if entitlement is not None and matches(entitlement.status, status)
            else []
        )
        stale, age = stale_of([fetched] if fetched else [])
        return paginate(items, first, after, kind="entitlement", stale=stale, age_seconds=age)

    @resolver(
        "Per system: when its data in this answer was read, whether it is stale "
        "(last-known-good) and why. Reflects the fields asked for in the same request."
    )
    async def freshness(self, info: Info[Context, None]) -> list[SourceFreshness]:
        context = info.context
        loaders = context.loaders
        ids = self.xref.ids()
        await loaders.settled(list(ids.items()))
        out: list[SourceFreshness] = []
        for system in System:
            native = ids.get(system)
            if native is None:
                out.append(
                    SourceFreshness(
                        system=system,
                        linked=False,
                        as_of=None,
                        stale=False,
                        age_seconds=None,
                        reason=f"not linked: no {system} id in the cross-reference registry",
                        error_code=None,
                    )
                )
                continue
            outcomes = loaders.outcomes_for(system, native)
            out.append(freshness(system, outcomes))
        return out
