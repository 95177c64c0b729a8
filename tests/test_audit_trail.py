"""The vendor calls' audit writer: a bounded queue, batches, a final flush; retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actors.calls import VendorCall
from actors.connector import Endpoint, HttpConnector
from actors.context import CallContext, reset_call, set_call
from canonical import System
from gateway.observability.audit import AuditWriter, purge_audit, vendor_call_entry
from gateway.store import NewAudit, Store
from tests.servers import free_port

pytestmark = pytest.mark.anyio


def call(n: int, *, correlation_id: str | None = "corr-1") -> VendorCall:
    return VendorCall(
        system="erp",
        method="GET",
        path=f"/orders/{n}",
        status=200,
        latency_ms=1.5,
        attempt=1,
        outcome="ok",
        at=1_800_000_000.0 + n,
        correlation_id=correlation_id,
        actor="demo-widget",
    )


def test_an_entry_names_the_call() -> None:
    entry = vendor_call_entry(call(7, correlation_id=None))
    assert (entry.actor, entry.action, entry.subject) == (
        "demo-widget",
        "vendor.call",
        "erp:GET /orders/7",
    )
    assert entry.detail == {
        "system": "erp",
        "method": "GET",
        "path": "/orders/7",
        "status": 200,
        "latency_ms": 1.5,
        "attempt": 1,
        "outcome": "ok",
    }
    assert entry.at == datetime.fromtimestamp(1_800_000_007.0, UTC)


async def test_a_full_queue_drops_the_oldest_and_counts_them(store: Store) -> None:
    writer = AuditWriter(store, capacity=3)
    for n in range(5):
        writer.record(call(n))
    assert (writer.queued, writer.dropped) == (3, 2)
    assert await writer.flush() == 3
    trail = await store.audit_trace(["corr-1"])
    assert [e.subject for e in trail] == [f"erp:GET /orders/{n}" for n in (2, 3, 4)]
    assert writer.written == 3


async def test_batches_are_bounded_and_leaving_flushes_what_is_left(store: Store) -> None:
    async with AuditWriter(store, interval=3600.0, max_batch=2) as writer:
        for n in range(5):
            writer.record(call(n))
    assert writer.written == 5
    assert len(await store.audit_trace(["corr-1"])) == 5
    writer.record(call(9))  # after the final flush: counted, not kept
    assert writer.dropped == 1
    with pytest.raises(RuntimeError, match="Cannot reopen"):
        async with writer:
            pass


async def test_retention_purges_only_old_entries_in_batches(store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=100)
    writer = AuditWriter(store)
    for n in range(7):
        writer.record(call(n))  # 2027: in the future of ``old``
    await writer.flush()
    for n in range(5):
        await store.append_audit(
            NewAudit(
                actor="a", action="old", subject=f"operation:op_{n}", correlation_id="old", at=old
            )
        )
    batches: list[int] = []
    real = store.purge_audit

    async def counted(*, before: datetime, limit: int) -> int:
        deleted = await real(before=before, limit=limit)
        batches.append(deleted)
        return deleted

    store.purge_audit = counted  # type: ignore[method-assign]
    cutoff = datetime.now(UTC) - timedelta(days=90)
    assert await purge_audit(store, before=cutoff, batch=2) == 5
    assert batches == [2, 2, 1]
    assert await store.audit_trace(["old"]) == []
    assert len(await store.audit_trace(["corr-1"])) == 7


async def test_the_connector_reports_every_call_with_its_context() -> None:
    seen: list[VendorCall] = []

    class Probe(HttpConnector):
        system = System.ERP

    # nothing listens on this port: the call is refused, and still reported
    endpoint = Endpoint(base_url=f"http://127.0.0.1:{free_port()}", timeout=2.0)
    token = set_call(CallContext("corr-9", actor="demo-ops"))
    try:
        async with Probe(endpoint) as connector:
            connector.observe = seen.append
            with pytest.raises(Exception, match="failed"):
                await connector.request("GET", "/things/42?$format=json")
    finally:
        reset_call(token)
    (reported,) = seen
    assert (reported.system, reported.method, reported.path) == ("erp", "GET", "/things/42")
    assert (reported.status, reported.outcome, reported.attempt) == (None, "unavailable", 1)
    assert (reported.correlation_id, reported.actor) == ("corr-9", "demo-ops")
