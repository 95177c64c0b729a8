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
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.types import Info

from canonical import Customer, Invoice, System
from gateway.governance.ownership import OwnershipPolicy
from gateway.graphql.context import Context, require_scope
from gateway.graphql.errors import CodedError
from gateway.graphql.loaders import Fetched, SystemLoader
from gateway.graphql.types import (
    Balance,
    CaseRecord,
    Connection,
    DataSource,
    EntitlementRecord,
    FieldSource,
    Identity,
    InvoiceRecord,
    OpportunityRecord,
    OrderRecord,
    SourceFreshness,
    SubscriptionRecord,
    matches,
    opportunity_status,
    paginate,
    resolver,
)
from gateway.store.records import XRefRecord

__all__ = ["Customer360", "GoldenRecord"]

_DEFAULT_OWNERSHIP = OwnershipPolicy()

STATUS_HELP = "Only items whose status is one of these (case-insensitive)."
FIRST_HELP = "Page size, at most 100."
AFTER_HELP = "Cursor after which the page starts (`pageInfo.endCursor`)."


def ownership(context: Context) -> OwnershipPolicy:
    policy = getattr(context.runtime.policies, "ownership", None)
    return policy if isinstance(policy, OwnershipPolicy) else _DEFAULT_OWNERSHIP


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@strawberry.type(
    description="The customer's master data, each field taken from the system that owns it "
    "(policies/ownership.toml). A field whose owner failed without last-known-good data is "
    "null with that system's error; `sources` says where each value came from."
)
class GoldenRecord:
    # Plain values, computed once by ``Customer360.golden``: a field whose owner failed
    # holds the owner's CodedError, which GraphQL raises on that field alone.
    name: str | None = strawberry.field(description="Display name (ERP-owned).")
    legal_name: str | None = strawberry.field(description="Registered legal name (ERP-owned).")
    tax_id: str | None = strawberry.field(description="Tax id, e.g. VAT number (ERP-owned).")
    country: str | None = strawberry.field(description="Country, ISO 3166-1 alpha-2 (ERP-owned).")
    payment_terms: str | None = strawberry.field(
        description="Payment terms key, e.g. `NT30` (ERP-owned)."
    )
    credit_status: str | None = strawberry.field(description="Credit status (ERP-owned).")
    currency: str | None = strawberry.field(
        description="Billing currency, ISO 4217 (billing-owned)."
    )
    email: str | None = strawberry.field(description="Billing e-mail address (billing-owned).")
    segment: str | None = strawberry.field(description="Market segment (CRM-owned).")
    industry: str | None = strawberry.field(description="Industry (CRM-owned).")
    owner: str | None = strawberry.field(description="Account owner (CRM-owned).")
    support_tier: str | None = strawberry.field(description="Support tier (support-owned).")
    sources: list[FieldSource] = strawberry.field(description="Where each field's value came from.")


#: id(policy) -> (policy, field -> (owner, where to look)): policies are loaded once and
#: immutable, and ``OwnershipPolicy.sources`` builds a new tuple per call
_PLANS: dict[int, tuple[OwnershipPolicy, dict[str, tuple[System, tuple[System, ...]]]]] = {}


def _plan(policy: OwnershipPolicy) -> dict[str, tuple[System, tuple[System, ...]]]:
    cached = _PLANS.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    plan = {name: (policy.owner(name), policy.sources(name)) for name in policy.customer}
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[id(policy)] = (policy, plan)
    return plan


def _pick(
    records: dict[System, Fetched[Customer]], owner: System, sources: tuple[System, ...], name: str
) -> tuple[Any, System | None, bool]:
    for system in sources:
        fetched = records.get(system)
        if fetched is None:
            continue
        if system is owner and fetched.error is not None and not fetched.stale:
            raise fetched.error
        if fetched.value is None:
            continue
        value = getattr(fetched.value, name)
        if value is not None:
            return value, system, fetched.stale
    return None, None, False


def _golden_record(
    records: dict[System, Fetched[Customer]],
    policy: OwnershipPolicy,
    wanted: set[str],
    *,
    with_sources: bool = True,
) -> GoldenRecord:
    """The record for the ``wanted`` fields; ``sources`` only when the query asks for it."""
    plan = _plan(policy)
    values: dict[str, Any] = {}
    sources: list[FieldSource] = []
    for name, (owner, where) in plan.items():
        if name not in wanted:
            values[name] = None
            continue
        try:
            value, system, stale = _pick(records, owner, where, name)
        except CodedError as exc:
            values[name] = exc  # raised by GraphQL on this field only
            system, stale = None, False
        else:
            values[name] = None if value is None else str(value)
        if with_sources:
            sources.append(
                FieldSource(
                    field_name=_snake_to_camel(name), system=system, owner=owner, stale=stale
                )
            )
    return GoldenRecord(sources=sources, **values)


_CAMEL = {_snake_to_camel(f): f for f in OwnershipPolicy().customer}
#: id(field node) -> (node, names asked under it): documents are cached, so are their nodes
_SELECTIONS: dict[int, tuple[FieldNode, frozenset[str]]] = {}


def _names_under(node: FieldNode, fragments: dict[str, FragmentDefinitionNode]) -> frozenset[str]:
    cached = _SELECTIONS.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    names: set[str] = set()
    stack: list[SelectionSetNode] = [node.selection_set] if node.selection_set else []
    seen: set[str] = set()
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    stack.append(fragments[name].selection_set)
    result = frozenset(names)
    if len(_SELECTIONS) > 10_000:
        _SELECTIONS.clear()
    _SELECTIONS[id(node)] = (node, result)
    return result


def _golden_fields(info: Info[Context, None], policy: OwnershipPolicy) -> tuple[set[str], bool]:
    """The golden-record fields this request asks for (all of them for ``sources``), and
    whether it asks for ``sources``."""
    raw = info._raw_info
    names: frozenset[str] = frozenset()
    for node in raw.field_nodes:
        names |= _names_under(node, raw.fragments)
    if "sources" in names:
        return set(policy.customer), True
    return {_CAMEL[n] for n in names if n in _CAMEL and _CAMEL[n] in policy.customer}, False


R = TypeVar("R")


def _as_records(page: Connection[Any], record: type[R]) -> Connection[R]:
    """``page`` typed as a connection of ``record``, whose GraphQL type it answers.

    ``Subscription`` (with its ``SubscriptionItem``s) and ``Case`` have every attribute of
    ``SubscriptionRecord`` and ``CaseRecord`` under the same name and type, and GraphQL
    reads those by attribute: copying each record into a strawberry object first would
    only cost an object per item and per field.
    """
    return cast(Connection[R], page)


def _stale_of(fetched: Sequence[Fetched[Any]]) -> tuple[bool, float | None]:
    ages = [f.age_seconds or 0.0 for f in fetched if f.stale]
    return (True, max(ages)) if ages else (False, None)


def _join_invoices(billing: Sequence[Invoice], erp: Sequence[Invoice]) -> list[InvoiceRecord]:
    by_document = {doc.id: doc for doc in erp}
    by_billing = {doc.billing_invoice: doc for doc in erp if doc.billing_invoice}
    used: set[str] = set()
    joined: list[InvoiceRecord] = []
    for inv in billing:
        doc = by_document.get(inv.erp_document or "") or by_billing.get(inv.id)
        if doc is not None:
            used.add(doc.id)
        joined.append(
            InvoiceRecord(
                id=strawberry.ID(inv.id),
                status=inv.status,
                total=inv.total,
                currency=inv.currency,
                amount_due=inv.amount_due,
                tax=inv.tax,
                due_date=inv.due_date,
                created_at=inv.created_at,
                billing_invoice_id=inv.id,
                erp_document_id=doc.id if doc else inv.erp_document,
                posted=doc.posted if doc else None,
                posting_status=doc.status if doc else None,
                sources=[System.BILLING, System.ERP] if doc else [System.BILLING],
            )
        )
    for doc in erp:
        if doc.id in used:
            continue
        joined.append(
            InvoiceRecord(
                id=strawberry.ID(doc.id),
                status=doc.status,
                total=doc.total,
                currency=doc.currency,
                amount_due=doc.amount_due,
                tax=doc.tax,
                due_date=doc.due_date,
                created_at=doc.created_at,
                billing_invoice_id=doc.billing_invoice,
                erp_document_id=doc.id,
                posted=doc.posted,
                posting_status=doc.status,
                sources=[System.ERP],
            )
        )
    joined.sort(key=lambda i: i.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return joined


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
        plan = _plan(policy)
        wanted, with_sources = _golden_fields(info, policy)
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
        return _golden_record(records, policy, wanted, with_sources=with_sources)

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
        stale, age = _stale_of([fetched] if fetched else [])
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
        stale, age = _stale_of([fetched] if fetched else [])
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
        joined = _join_invoices(billing_invoices, erp_documents)
        stale, age = _stale_of([f for f in (billing, erp) if f is not None])
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

        stale, age = _stale_of([fetched] if fetched else [])
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
        stale, age = _stale_of([fetched] if fetched else [])
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
        stale, age = _stale_of([fetched] if fetched else [])
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
        stale, age = _stale_of([fetched] if fetched else [])
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
            out.append(_freshness(system, outcomes))
        return out


_SOURCE_ORDER = ("LAST_KNOWN_GOOD", "READ_THROUGH", "CATCH_UP", "EVENTS", "LIVE")


def _source(outcomes: Sequence[Fetched[Any]]) -> DataSource | None:
    """The least fresh source among the outcomes (what the answer is only as good as)."""
    names = {o.source for o in outcomes if o.value is not None or o.error is None}
    for name in _SOURCE_ORDER:
        if name in names:
            return DataSource[name]
    return None


def _freshness(system: System, outcomes: Sequence[Fetched[Any]]) -> SourceFreshness:
    if not outcomes:
        return SourceFreshness(
            system=system,
            linked=True,
            as_of=None,
            stale=False,
            age_seconds=None,
            reason="not read: no field of this request needed it",
            error_code=None,
        )
    failed = [o for o in outcomes if o.error is not None]
    stale = [o for o in outcomes if o.stale]
    as_of = min(o.as_of for o in outcomes)
    source = _source(outcomes)
    if not failed:
        if stale:  # the read model's copy, past its budget, not refreshed (quota, breaker)
            return SourceFreshness(
                system=system,
                linked=True,
                as_of=as_of,
                stale=True,
                age_seconds=max(o.age_seconds or 0.0 for o in stale),
                reason=next((o.reason for o in stale if o.reason), None),
                error_code=None,
                source=source,
            )
        return SourceFreshness(
            system=system,
            linked=True,
            as_of=as_of,
            stale=False,
            age_seconds=None,
            reason=None,
            error_code=None,
            source=source,
        )
    error = failed[0].error
    assert error is not None
    age = max((o.age_seconds or 0.0 for o in stale), default=None)
    shown = "the read model" if source and source.name in _LOCAL else "last-known-good data"
    reason = (
        f"{error.message}; showing {shown}"
        if stale
        else f"{error.message}; no last-known-good data"
    )
    return SourceFreshness(
        system=system,
        linked=True,
        as_of=as_of,
        stale=bool(stale),
        age_seconds=age,
        reason=reason,
        error_code=str(error.code),
        source=source,
    )


_LOCAL = frozenset({"EVENTS", "CATCH_UP", "READ_THROUGH"})
