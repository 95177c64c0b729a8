"""The read model's own rules, on a real SQLite store: versions, deletes, slices,
coverage, restart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from canonical import Invoice, System
from gateway.readmodel.kinds import Kind
from gateway.readmodel.model import Change, ReadModel, Source, version_at
from gateway.store import Store

pytestmark = pytest.mark.anyio

FEEDS = {System.BILLING: ("events",), System.ERP: ("orders",)}


def invoice(status: str, invoice_id: str = "in_1", customer: str = "cus_1") -> Invoice:
    return Invoice(System.BILLING, invoice_id, customer, status, Decimal("10.00"), "eur")


def change(status: str, at: float, **kwargs: str) -> Change:
    return Change.of(invoice(status, **kwargs), version_at(at))


async def test_an_older_state_never_overwrites_a_newer_one(store: Store) -> None:
    model = ReadModel(store, FEEDS)
    await model.apply([change("paid", 200.0)], source=Source.EVENTS)
    late = await model.apply([change("open", 100.0)], source=Source.CATCH_UP)
    assert late == []
    entry = model.record(System.BILLING, Kind.INVOICE, "in_1")
    assert entry is not None
    assert entry.value.status == "paid"
    # and so it stays after a restart (the store keeps the same rule)
    again = ReadModel(store, FEEDS)
    await again.load()
    entry = again.record(System.BILLING, Kind.INVOICE, "in_1")
    assert entry is not None
    assert entry.value.status == "paid"


async def test_a_delete_wins_over_an_older_update(store: Store) -> None:
    model = ReadModel(store, FEEDS)
    await model.apply([change("open", 100.0)], source=Source.CATCH_UP)
    gone = Change(System.BILLING, Kind.INVOICE, "in_1", "cus_1", None, version_at(300.0), True)
    [applied] = await model.apply([gone], source=Source.EVENTS)
    assert applied.deleted
    await model.apply([change("paid", 200.0)], source=Source.EVENTS)  # older: ignored
    assert model.record(System.BILLING, Kind.INVOICE, "in_1") is None
    model.feeds[(System.BILLING, "events")].complete_at = 300.0
    view = model.slice(System.BILLING, Kind.INVOICE, "cus_1", many=True)
    assert view is not None
    assert view.value == ()


async def test_the_same_change_twice_is_applied_once(store: Store) -> None:
    model = ReadModel(store, FEEDS)
    first = await model.apply([change("open", 100.0)], source=Source.EVENTS)
    second = await model.apply([change("open", 100.0)], source=Source.EVENTS)
    assert len(first) == 1
    assert second == []  # nothing a reader would see changed
    assert len(await store.read_rows()) == 1


async def test_a_slice_is_unknown_until_read_whole_or_fed_complete(store: Store) -> None:
    model = ReadModel(store, FEEDS)
    await model.apply([change("open", 100.0)], source=Source.EVENTS)
    # one invoice learned from an event does not make the customer's invoices known
    assert model.slice(System.BILLING, Kind.INVOICE, "cus_1", many=True) is None
    await model.apply(
        [], source=Source.READ_THROUGH, cover=[(System.BILLING, Kind.INVOICE, "cus_1", 150.0)]
    )
    view = model.slice(System.BILLING, Kind.INVOICE, "cus_1", many=True)
    assert view is not None
    assert view.as_of == 150.0
    assert [i.id for i in view.value] == ["in_1"]
    # the feed reaching its end later moves every slice's age forward
    await model.apply([], source=Source.CATCH_UP, feed=(System.BILLING, "events", "t:1", 500.0))
    view = model.slice(System.BILLING, Kind.INVOICE, "cus_1", many=True)
    assert view is not None
    assert view.as_of == 500.0
    # and a customer never read is known too (it has no invoices) once every feed completed
    empty = model.slice(System.BILLING, Kind.INVOICE, "cus_2", many=True)
    assert empty is not None
    assert empty.value == ()


async def test_a_slice_read_whole_deletes_what_is_no_longer_there(store: Store) -> None:
    model = ReadModel(store, FEEDS)
    await model.apply(
        [change("open", 100.0), change("open", 100.0, invoice_id="in_2")],
        source=Source.CATCH_UP,
    )
    changes = model.slice_changes(
        System.BILLING, Kind.INVOICE, "cus_1", [invoice("paid")], version_at(200.0)
    )
    assert {(c.id, c.deleted) for c in changes} == {("in_1", False), ("in_2", True)}
    await model.apply(changes, source=Source.READ_THROUGH)
    assert model.record(System.BILLING, Kind.INVOICE, "in_2") is None


async def test_watchers_see_changes_of_their_customers_only(store: Store) -> None:
    model = ReadModel(store, FEEDS)
    async with model.watch([(System.BILLING, "cus_1")]) as changes:
        await model.apply(
            [change("open", 1.0, customer="cus_2", invoice_id="in_9"), change("paid", 2.0)],
            source=Source.EVENTS,
        )
        seen = changes.receive_nowait()
        assert (seen.id, seen.customer, seen.created) == ("in_1", "cus_1", True)
        await model.apply([change("void", 3.0)], source=Source.EVENTS)
        update = changes.receive_nowait()
        assert update.changed_fields == ("status",)


def test_echo_stamps_of_each_vendor_are_recognised() -> None:
    from gateway.processes.reactions import _is_echo

    ours = {"type": "billing.invoice.paid", "data": {"request": {"idempotency_key": "op_1.x"}}}
    theirs = {"type": "billing.invoice.paid", "data": {"request": {"idempotency_key": None}}}
    opened = {"type": "support.ticket.created", "data": {"detail": {"external_id": "cw-op_9"}}}
    by_agent = {"type": "support.ticket.created", "data": {"detail": {"external_id": None}}}
    assert _is_echo(ours)
    assert _is_echo(opened)
    assert not _is_echo(theirs)
    assert not _is_echo(by_agent)
