"""Inbox deduplication and the audit trail."""

from __future__ import annotations

import pytest

from gateway.store import NewAudit, Store, audit_keys

from .conftest import FakeClock
from .helpers import message

pytestmark = pytest.mark.anyio


async def test_inbox_records_each_event_once(store: Store, clock: FakeClock) -> None:
    payload = {"id": "evt_1", "type": "invoice.finalized"}
    async with store.transaction() as tx:
        assert await tx.record_inbox("billing", "evt_1", payload) is True
        # The handler's outbox messages commit with the inbox row.
        await tx.enqueue(message("cust-1", "erp.post_invoice"))
    async with store.transaction() as tx:
        assert await tx.record_inbox("billing", "evt_1", {"changed": True}) is False
        assert await tx.record_inbox("support", "evt_1", payload) is True  # other system
    event = await store.get_inbox("billing", "evt_1")
    assert event is not None
    assert (event.payload, event.processed_at, event.received_at) == (payload, None, clock.now)

    clock.advance(1)
    async with store.transaction() as tx:
        assert await tx.mark_inbox_processed("billing", "evt_1") is True
        assert await tx.mark_inbox_processed("billing", "evt_404") is False
    event = await store.get_inbox("billing", "evt_1")
    assert event is not None
    assert event.processed_at == clock.now


async def test_audit_by_correlation_and_subject(store: Store, clock: FakeClock) -> None:
    await store.append_audit(
        NewAudit(
            actor="demo-widget",
            action="closeOpportunity.accepted",
            subject="operation:op-1",
            correlation_id="corr-1",
            detail={"opportunity": "006A"},
        )
    )
    clock.advance(1)
    async with store.transaction() as tx:
        await tx.append_audit(
            NewAudit(
                actor="dispatcher",
                action="step.succeeded",
                subject="operation:op-1",
                correlation_id="corr-1",
                detail={"step": "erp.order"},
            )
        )
        await tx.append_audit(NewAudit(actor="ops", action="replay", subject="outbox:7"))
    trail = await store.audit_trace(["corr-1"])
    assert [e.action for e in trail] == ["closeOpportunity.accepted", "step.succeeded"]
    assert (trail[0].actor, trail[0].subject, trail[0].detail) == (
        "demo-widget",
        "operation:op-1",
        {"opportunity": "006A"},
    )
    assert trail[1].at == clock.now
    assert [e.actor for e in await store.audit_trace(subject="operation:op-1")] == [
        "demo-widget",
        "dispatcher",
    ]
    assert [e.detail for e in await store.audit_trace(subject="outbox:7")] == [None]
    assert len(await store.audit_trace(subject="operation:op-1", limit=1)) == 1


async def test_purge_inbox_drops_only_old_processed_events(store: Store, clock: FakeClock) -> None:
    async with store.transaction() as tx:
        for event in ("evt_old", "evt_unprocessed", "evt_new"):
            await tx.record_inbox("billing", event, {"id": event})
        await tx.mark_inbox_processed("billing", "evt_old")
        await tx.record_inbox("billing", "evt_unapplied", {"id": "evt_unapplied"})
        await tx.mark_inbox_processed("billing", "evt_unapplied")
        await tx.mark_applied([("billing", e) for e in ("evt_old", "evt_unprocessed", "evt_new")])
    cutoff = clock.advance(60)
    async with store.transaction() as tx:
        await tx.mark_inbox_processed("billing", "evt_new")
    assert await store.purge_inbox(before=cutoff) == 1
    assert await store.get_inbox("billing", "evt_old") is None
    # the read model has not applied it yet: kept, however old
    assert await store.get_inbox("billing", "evt_unapplied") is not None
    assert await store.get_inbox("billing", "evt_unprocessed") is not None
    assert await store.get_inbox("billing", "evt_new") is not None


async def test_read_rows_keep_the_newest_version(store: Store, clock: FakeClock) -> None:
    from gateway.store import ReadRow

    def row(version: str, name: str, *, deleted: bool = False) -> ReadRow:
        return ReadRow(
            system="billing",
            kind="invoice",
            id="in_1",
            customer="cus_1",
            version=version,
            data=None if deleted else {"name": name},
            deleted=deleted,
            learned_at=clock(),
            source="events",
        )

    async with store.transaction() as tx:
        await tx.put_read_rows([row("2026-12-01T00:00:02", "second")])
    async with store.transaction() as tx:
        await tx.put_read_rows([row("2026-12-01T00:00:01", "first")])  # older: ignored
    [kept] = await store.read_rows()
    assert kept.data == {"name": "second"}
    async with store.transaction() as tx:
        await tx.put_read_rows([row("2026-12-01T00:00:03", "", deleted=True)])
        await tx.cover_read("billing", "invoice", "cus_1", clock())
        await tx.set_read_feed("billing", "events", cursor="evt_9", complete_at=clock())
    [gone] = await store.read_rows(system="billing")
    assert gone.deleted
    assert gone.data is None
    assert [(c.kind, c.customer) for c in await store.read_coverage()] == [("invoice", "cus_1")]
    [feed] = await store.read_feeds()
    assert (feed.cursor, feed.complete_at) == ("evt_9", clock())


async def test_unapplied_events_leave_once_marked(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.record_inbox("billing", "evt_a", {"id": "evt_a"})
        await tx.record_inbox("billing", "evt_b", {"id": "evt_b"})
    assert [e.event_id for e in await store.unapplied_events()] == ["evt_a", "evt_b"]
    async with store.transaction() as tx:
        await tx.mark_applied([("billing", "evt_a")])
    assert [e.event_id for e in await store.unapplied_events()] == ["evt_b"]


async def test_purges_go_in_batches_and_keep_what_is_not_due(
    store: Store, clock: FakeClock
) -> None:
    async with store.transaction() as tx:
        for n in range(7):
            await tx.record_inbox("billing", f"evt_{n}", {"n": n})
            await tx.mark_inbox_processed("billing", f"evt_{n}")
        await tx.mark_applied([("billing", f"evt_{n}") for n in range(6)])  # evt_6: not yet
    cutoff = clock.advance(60)
    counts = []
    while count := await store.purge_inbox(before=cutoff, limit=2):
        counts.append(count)
    assert counts == [2, 2, 2]
    assert await store.get_inbox("billing", "evt_6") is not None


async def test_audit_batches_are_found_by_correlation_and_business_key(
    store: Store, clock: FakeClock
) -> None:
    async with store.transaction() as tx:
        await tx.append_audit(
            *[
                NewAudit(
                    actor="demo-widget",
                    action="vendor.call",
                    subject="billing:GET /v1/invoices/in_1Abc",
                    correlation_id="corr-1",
                    detail={"system": "billing", "path": "/v1/invoices/in_1Abc", "status": 200},
                ),
                NewAudit(actor="crosswalk", action="vendor.call", subject="erp:GET /x", at=None),
                NewAudit(
                    actor="demo-widget",
                    action="saga.step",
                    subject="operation:op_9",
                    correlation_id="corr-2",
                    detail={"result": {"order": "5000012", "invoices": ["in_1Abc"]}},
                ),
            ]
        )
    await store.append_audit(
        NewAudit(
            actor="webhook:billing",
            action="webhook.received",
            subject="event:billing:evt_7",
            correlation_id="corr-3",
            detail={"subject": "in_1Abc"},
        )
    )
    trail = await store.audit_trace(["corr-1", "corr-2"])
    assert [e.action for e in trail] == ["vendor.call", "saga.step"]
    assert trail[0].at == clock.now
    assert await store.audit_correlations(["in_1Abc"]) == ["corr-3", "corr-2", "corr-1"]
    assert await store.audit_correlations(["in_1Abc"], actor="demo-widget") == ["corr-2", "corr-1"]
    assert await store.audit_correlations(["5000012"]) == ["corr-2"]
    assert await store.audit_correlations(["v1", "GET"]) == []  # no business keys
    assert [e.subject for e in await store.audit_trace(["corr-2"], actor="nobody")] == []

    page = await store.audit_by_keys(["in_1Abc", "op_9"], limit=2)
    assert [e.subject for e in page] == ["event:billing:evt_7", "operation:op_9"]
    rest = await store.audit_by_keys(["in_1Abc", "op_9"], before=page[-1].id, limit=2)
    assert [e.subject for e in rest] == ["billing:GET /v1/invoices/in_1Abc"]


def test_audit_keys_are_id_like_tokens() -> None:
    keys = audit_keys(
        "erp:GET /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('5000012')",
        {"method": "GET", "status": 200, "nested": [{"id": "cus_N1x"}], "v": "v59"},
    )
    assert keys == ["5000012", "cus_N1x"]


async def test_purge_audit_deletes_only_old_entries_in_batches(
    store: Store, clock: FakeClock
) -> None:
    for n in range(5):
        await store.append_audit(
            NewAudit(actor="a", action="old", subject=f"operation:op_{n}", correlation_id="old")
        )
    cutoff = clock.advance(60)
    await store.append_audit(
        NewAudit(actor="a", action="new", subject="operation:op_0", correlation_id="n")
    )
    assert await store.purge_audit(before=cutoff, limit=2) == 2
    assert await store.purge_audit(before=cutoff, limit=2) == 2
    assert await store.purge_audit(before=cutoff, limit=2) == 1
    assert await store.purge_audit(before=cutoff, limit=2) == 0
    assert [e.action for e in await store.audit_trace(["old", "n"])] == ["new"]
    # the purged entries' keys went with them
    assert await store.audit_correlations(["op_0"]) == ["n"]
    assert await store.audit_correlations(["op_3"]) == []
