"""The case-to-resolution saga (openCase) against fake actors: order per customer,
parallel across customers, optional enrichment skipped."""

from __future__ import annotations

import pytest

from actors import messages as m
from actors.errors import Rejected
from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes.write_path import WritePath
from gateway.store import StepStatus, Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import DONE, WIDGET, dispatching, wait_for

pytestmark = pytest.mark.anyio


async def test_order_per_customer_parallel_across_customers(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    ids = []
    for n in range(3):
        for bp in ("1000001", "1000002"):
            ids.append(
                (
                    await write.submit(
                        "openCase",
                        {"customerId": f"erp:{bp}", "subject": f"Case {n}", "description": "d"},
                        caller=WIDGET,
                        idempotency_key=f"{bp}-{n}",
                        correlation_id="c",
                    )
                ).id
            )
    for actor in systems.actors.values():
        actor.delay = 0.02
    running: dict[str, int] = {}
    overlap = {"max": 0}
    support = systems[System.SUPPORT]
    original = support.ask

    async def tracking(message: m.Message, **kw: object) -> object:
        org = getattr(message, "organization_id", None) or next(
            iter(getattr(message, "organization_ids", ("?",)))
        )
        running[org] = running.get(org, 0) + 1
        assert running[org] == 1, "two calls for one customer at once"
        overlap["max"] = max(overlap["max"], sum(running.values()))
        try:
            return await original(message, **kw)  # type: ignore[arg-type]
        finally:
            running[org] -= 1

    support.ask = tracking  # type: ignore[method-assign]
    async with dispatching(store, systems):
        for op in ids:
            await wait_for(store, op, DONE)
    assert overlap["max"] == 2, "the two customers were not served in parallel"
    # per customer, cases were created in submission order
    for bp in ("1000001", "1000002"):
        subjects = [c.subject for c in world.cases.values() if c.organization_id == f"9{bp}"]
        assert subjects == ["Case 0", "Case 1", "Case 2"]
    case = next(iter(world.cases.values()))
    assert case.priority == "high"  # premium tier SLA
    assert "Entitlement: active (premium tier)" in (case.description or "")


async def test_optional_enrichment_failure_is_skipped(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    systems[System.BILLING].fail(
        lambda msg: Rejected("billing", "no") if isinstance(msg, m.GetInvoices) else None
    )
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "openCase",
        {
            "customerId": "erp:1000001",
            "subject": "Login",
            "description": "Cannot log in",
            "priority": "urgent",
        },
        caller=WIDGET,
        idempotency_key="k",
        correlation_id="c",
    )
    async with dispatching(store, systems):
        await wait_for(store, view.id, DONE)
    steps = {s.name: s for s in await store.get_steps(view.id)}
    assert steps["invoice_status"].status is StepStatus.SKIPPED
    case = next(iter(world.cases.values()))
    assert "crosswalk_partial" in case.tags
    assert case.priority == "urgent"  # entitled: a higher request stands
