"""Inbox deduplication and the audit trail."""

from __future__ import annotations

import pytest

from gateway.store import Store

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
    first = await store.append_audit(
        actor="demo-widget",
        action="closeOpportunity.accepted",
        subject="operation:op-1",
        correlation_id="corr-1",
        detail={"opportunity": "006A"},
    )
    clock.advance(1)
    async with store.transaction() as tx:
        await tx.append_audit(
            actor="dispatcher",
            action="step.succeeded",
            subject="operation:op-1",
            correlation_id="corr-1",
            detail={"step": "erp.order"},
        )
        await tx.append_audit(actor="ops", action="replay", subject="outbox:7")
    trail = await store.audit_for("corr-1")
    assert [e.action for e in trail] == ["closeOpportunity.accepted", "step.succeeded"]
    assert trail[0] == first
    assert trail[1].at == clock.now
    assert [e.actor for e in await store.audit_for_subject("operation:op-1")] == [
        "demo-widget",
        "dispatcher",
    ]
    assert [e.detail for e in await store.audit_for_subject("outbox:7")] == [None]
    assert len(await store.audit_for_subject("operation:op-1", limit=1)) == 1


async def test_purge_inbox_drops_only_old_processed_events(store: Store, clock: FakeClock) -> None:
    async with store.transaction() as tx:
        for event in ("evt_old", "evt_unprocessed", "evt_new"):
            await tx.record_inbox("billing", event, {"id": event})
        await tx.mark_inbox_processed("billing", "evt_old")
    cutoff = clock.advance(60)
    async with store.transaction() as tx:
        await tx.mark_inbox_processed("billing", "evt_new")
    assert await store.purge_inbox(before=cutoff) == 1
    assert await store.get_inbox("billing", "evt_old") is None
    assert await store.get_inbox("billing", "evt_unprocessed") is not None
    assert await store.get_inbox("billing", "evt_new") is not None
