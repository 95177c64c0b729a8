"""A small in-memory world of four fake system actors, for unit tests of the write path.

Each fake actor answers the messages the flows send with canonical records, records every
call (system, message) in order, duplicates included, and can be told to fail:
``fail(system, error, times)``.

Writes are de-duplicated only where the real systems de-duplicate them: billing and
support honour the Idempotency-Key the connectors send with every write; for the ERP and
the CRM only a redelivery (``first_delivery`` false) finds the effect of an earlier
delivery (the connector's check-before-create). A write marked ``first_delivery`` skips
that check, as the connectors do, so delivering it twice to the ERP makes two sales
orders, and a test's "exactly one order" can fail.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio

from actors import messages as m
from actors.errors import NotFound
from actors.messages import Message, Priority
from canonical import (
    Case,
    Customer,
    Entitlement,
    Invoice,
    Opportunity,
    Order,
    Subscription,
    SubscriptionItem,
    System,
    XRef,
)


@dataclass
class World:
    """What the four systems hold."""

    customers: dict[System, dict[str, Customer]] = field(default_factory=dict)
    opportunities: dict[str, Opportunity] = field(default_factory=dict)
    #: every sales order created, by the ERP's own order number (see ``order_for``)
    orders: dict[str, Order] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    entitlements: dict[str, Entitlement] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)
    #: every call that reached a fake actor, in order, repeated writes included
    calls: list[tuple[System, Message]] = field(default_factory=list)
    #: what a write answered, by idempotency key: a redelivery's lookup of its own effect
    by_key: dict[str, Any] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_company(self, bp: str, *, country: str = "DE", tax_id: str | None = None) -> None:
        crm, cus, org = f"001{bp}", f"cus_{bp}", f"9{bp}"
        tax_id = tax_id or f"DE{bp}99"  # one per company, as the ERP holds them
        xref = XRef(erp=bp, billing=cus, crm=crm, support=org)
        for system, native in (
            (System.ERP, bp),
            (System.CRM, crm),
            (System.BILLING, cus),
            (System.SUPPORT, org),
        ):
            self.customers.setdefault(system, {})[native] = Customer(
                system=system,
                id=native,
                name=f"Company {bp} GmbH",
                xref=xref,
                country=country,
                tax_id=tax_id,
                currency="EUR",
            )
        self.entitlements[org] = Entitlement(
            System.SUPPORT, org, "active", "premium", date(2027, 1, 1)
        )

    def order_for(self, purchase_order: str) -> Order:
        """The one sales order for ``purchase_order``; fails when there are none or several."""
        found = [o for o in self.orders.values() if o.purchase_order == purchase_order]
        assert len(found) == 1, f"{len(found)} sales orders for {purchase_order}: {found}"
        return found[0]

    def add_opportunity(
        self,
        opp_id: str,
        bp: str,
        *,
        closed: bool = False,
        products: tuple[str, ...] = ("CW-CORE",),
    ) -> None:
        self.opportunities[opp_id] = Opportunity(
            system=System.CRM,
            id=opp_id,
            account_id=f"001{bp}",
            name=f"Deal {opp_id}",
            stage="Closed Won" if closed else "Negotiation/Review",
            amount=Decimal("6000.00"),
            close_date=date(2026, 12, 1),
            is_closed=closed,
            is_won=closed,
            products=products,
        )


Failure = Callable[[Message], BaseException | None]

#: systems whose vendor keeps the Idempotency-Key a connector sends (Stripe, Zendesk)
KEYED = frozenset({System.BILLING, System.SUPPORT})


class FakeActor:
    def __init__(self, system: System, world: World) -> None:
        self.system = system
        self.world = world
        self.failures: list[tuple[Failure, int]] = []
        self.delay = 0.0
        self.gate: anyio.Event | None = None  # when set, calls wait for it
        self.entered = anyio.Event()  # set when a call reaches the gate
        self.priorities: list[Priority] = []
        self.breaker_state = "closed"

    def fail(self, error: Failure, times: int = 1_000_000) -> None:
        self.failures.append((error, times))

    async def ask(
        self,
        message: Message,
        *,
        priority: Priority,
        timeout: float | None = None,  # noqa: ASYNC109 - the actor's own signature
        deadline: float | None = None,
    ) -> Any:
        self.priorities.append(priority)
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        if self.delay:
            await anyio.sleep(self.delay)
        for index, (failure, times) in enumerate(self.failures):
            if times > 0:
                error = failure(message)
                if error is not None:
                    self.failures[index] = (failure, times - 1)
                    self.world.calls.append((self.system, message))
                    raise error
        self.world.calls.append((self.system, message))
        if not isinstance(message, m.Write):
            return self._answer(message)
        key = message.idempotency_key
        checked = self.system in KEYED or not message.first_delivery
        if checked and key in self.world.by_key:
            return self.world.by_key[key]
        result = self._answer(message)
        self.world.by_key[key] = result
        return result

    def _answer(self, message: Message) -> Any:
        w, s = self.world, self.system
        here = w.customers.setdefault(s, {})
        match message:
            case m.GetCustomers(ids=ids):
                return {i: here[i] for i in ids if i in here}
            case m.FindCustomersByTaxId(tax_id=tax_id):
                return tuple(c for c in here.values() if c.tax_id == tax_id)
            case m.FindCustomers(text=text, limit=limit):
                found = [c for c in here.values() if text.lower() in (c.name or "").lower()]
                return tuple(found[:limit])
            case m.FindCustomerByXRef(erp_bp=bp):
                return next((c for c in here.values() if c.xref.erp == bp), None)
            case m.GetOpportunity(id=opp_id):
                if opp_id not in w.opportunities:
                    raise NotFound(s, f"no opportunity {opp_id}")
                return w.opportunities[opp_id]
            case m.EnsureCustomer(customer=c, external_id=ext):
                existing = next(
                    (x for x in here.values() if x.xref.erp == (c.xref.erp or ext)), None
                )
                if existing is not None and s is not System.ERP:
                    return existing
                native = f"{s.value[:3]}-{next(w.counter)}"
                if s is System.ERP:
                    native = str(2000000 + next(w.counter))
                customer = Customer(
                    system=s,
                    id=native,
                    name=c.name,
                    xref=c.xref if s is not System.ERP else XRef(erp=native),
                    tax_id=c.tax_id,
                    country=c.country,
                )
                here[native] = customer
                return customer
            case m.EnsureSalesOrder(customer_id=bp, purchase_order=po, currency=cur):
                earlier = [o for o in w.orders.values() if o.purchase_order == po]
                if earlier and not message.first_delivery:  # the connector's check
                    return earlier[0]
                order = Order(
                    System.ERP, str(5100000 + next(w.counter)), bp, po, "A", Decimal("1"), cur
                )
                w.orders[order.id] = order
                return order
            case m.CreateSubscription(customer_id=cus, items=items, metadata=meta):
                sub = Subscription(
                    System.BILLING,
                    f"sub_{next(w.counter)}",
                    cus,
                    "active",
                    tuple(SubscriptionItem(p, q) for p, q in items),
                    current_period_end=datetime(2026, 12, 31, tzinfo=UTC),
                    erp_order=meta.get("erp_order"),
                )
                w.subscriptions[sub.id] = sub
                return sub
            case m.RenewSubscription(subscription_id=sub_id):
                sub = w.subscriptions[sub_id]
                end = (sub.current_period_end or datetime(2026, 12, 1, tzinfo=UTC)) + timedelta(
                    days=30
                )
                sub = Subscription(
                    sub.system,
                    sub.id,
                    sub.customer_id,
                    sub.status,
                    sub.items,
                    current_period_end=end,
                )
                w.subscriptions[sub_id] = sub
                return sub
            case m.GetSubscriptions(customer_ids=ids):
                return {
                    i: tuple(x for x in w.subscriptions.values() if x.customer_id == i) for i in ids
                }
            case m.SetEntitlement(organization_id=org, status=status, support_tier=tier, ends=ends):
                w.entitlements[org] = Entitlement(System.SUPPORT, org, status, tier, ends)
                return w.entitlements[org]
            case m.GetEntitlements(organization_ids=ids):
                return {i: w.entitlements[i] for i in ids if i in w.entitlements}
            case m.UpdateOpportunity(id=opp_id, fields=fields):
                opp = w.opportunities[opp_id]
                opp = Opportunity(
                    opp.system,
                    opp.id,
                    opp.account_id,
                    opp.name,
                    str(fields.get("StageName", opp.stage)),
                    opp.amount,
                    opp.close_date,
                    True,
                    True,
                    erp_order_number=str(fields.get("ERP_Order_Number__c")),
                    products=opp.products,
                )
                w.opportunities[opp_id] = opp
                return opp
            case m.GetInvoices(customer_ids=ids):
                return {
                    i: (Invoice(System.BILLING, "in_1", i, "open", Decimal("10"), "EUR"),)
                    for i in ids
                }
            case m.GetOrders(customer_ids=ids):
                return {i: tuple(o for o in w.orders.values() if o.customer_id == i) for i in ids}
            case m.GetCases(organization_ids=ids):
                return {
                    i: tuple(c for c in w.cases.values() if c.organization_id == i) for i in ids
                }
            case m.CreateCase():
                case = Case(
                    System.SUPPORT,
                    str(next(w.counter)),
                    message.organization_id,
                    message.subject,
                    "new",
                    message.priority,
                    message.type,
                    message.description,
                    message.external_id,
                    message.tags,
                )
                w.cases[case.id] = case
                return case
            case m.UpdateCase(id=case_id, fields=fields):
                old = w.cases[case_id]
                case = Case(
                    old.system,
                    old.id,
                    old.organization_id,
                    old.subject,
                    old.status,
                    str(fields.get("priority", old.priority)),
                    tags=tuple(fields.get("tags", old.tags)),
                )  # type: ignore[arg-type]
                w.cases[case_id] = case
                return case
        raise AssertionError(f"fake {s} does not answer {message!r}")


class FakeSystems:
    def __init__(self, world: World) -> None:
        self.world = world
        self.actors = {s: FakeActor(s, world) for s in System}

    def __getitem__(self, system: System) -> FakeActor:
        return self.actors[system]
