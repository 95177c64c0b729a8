"""Two workers on one message: a lease that lapsed is fenced, so the ERP gets one order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors import messages as m
from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes.context import Caller
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.write_path import WritePath
from gateway.store import LeaseLost, OperationStatus, open_store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import FAST, dispatching, wait_for
from tests.store.conftest import FakeClock

pytestmark = pytest.mark.anyio


async def test_a_worker_whose_lease_lapsed_sends_no_second_create(
    store_url: str, world: World, systems: FakeSystems, reference: ReferenceData
) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    world.add_opportunity("006F", "1000001")
    async with open_store(store_url, clock=clock) as store:
        write = WritePath(store, systems, reference)
        view = await write.submit(
            "closeOpportunity",
            {"opportunityId": "006F"},
            caller=Caller("demo-widget", "crm"),
            idempotency_key="k",
            correlation_id="c",
        )
        # worker A leases the ERP order step, then stalls (a long pause) past its lease
        stalled = Dispatcher(store, systems, policy=FAST, owner="worker-a")
        [taken] = await store.lease(stalled._token(), limit=1, lease_seconds=FAST.lease_seconds)
        assert taken.step == "erp_order"
        clock.advance(FAST.lease_seconds + 1)
        # worker B recovers the expired lease and runs the whole saga
        async with dispatching(store, systems):
            await wait_for(store, view.id, (OperationStatus.SUCCEEDED,))
        # A wakes up and goes on with what it held: its write must not go out
        calls_before = len(world.calls)
        follow, _ = await stalled._deliver(taken)
        assert follow is None
        assert stalled.fenced == 1
        assert len(world.calls) == calls_before
        with pytest.raises(LeaseLost):
            await store.complete(taken.id, taken.lease_owner or "")
    orders = [msg for system, msg in world.calls if isinstance(msg, m.EnsureSalesOrder)]
    assert len(orders) == 1
    assert [s for s, msg in world.calls if isinstance(msg, m.EnsureSalesOrder)] == [System.ERP]


async def test_a_dispatcher_fences_its_own_earlier_lease_too(
    store_url: str, world: World, systems: FakeSystems, reference: ReferenceData
) -> None:
    # the same dispatcher's leaser re-takes its own expired lease: the old worker's
    # token is not the new one's, so its settle is refused
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    world.add_opportunity("006E", "1000002")
    async with open_store(store_url, clock=clock) as store:
        write = WritePath(store, systems, reference)
        await write.submit(
            "closeOpportunity",
            {"opportunityId": "006E"},
            caller=Caller("demo-widget", "crm"),
            idempotency_key="k",
            correlation_id="c",
        )
        dispatcher = Dispatcher(store, systems, policy=FAST, owner="same")
        [first] = await store.lease(dispatcher._token(), limit=1, lease_seconds=FAST.lease_seconds)
        clock.advance(FAST.lease_seconds + 1)
        [again] = await store.lease(dispatcher._token(), limit=1, lease_seconds=FAST.lease_seconds)
        assert again.id == first.id
        assert again.lease_owner != first.lease_owner
        with pytest.raises(LeaseLost):
            await store.complete(first.id, first.lease_owner or "")
        assert not dispatcher._still_holds(first)
        assert dispatcher._still_holds(again)
