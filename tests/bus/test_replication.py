"""What a replica tells the others happens after its commit and never undoes it."""

from __future__ import annotations

import anyio
import pytest

from canonical import Customer, System
from gateway.bus import MemoryBus
from gateway.processes.replication import Replication
from gateway.readmodel.feeds import system_feeds
from gateway.readmodel.kinds import Kind
from gateway.readmodel.model import Change, ReadModel, Source, version_at
from gateway.store import OperationStatus, Store
from tests.store.helpers import create_operation

pytestmark = pytest.mark.anyio


class BrokenBus(MemoryBus):
    def publish(self, subject: str, data: bytes) -> None:
        raise RuntimeError("the bus is broken")


async def test_a_publish_that_fails_never_fails_what_was_committed(store: Store) -> None:
    model = ReadModel(store, system_feeds())
    async with BrokenBus("broken") as bus:
        Replication(bus, store, model).attach()
        customer = Customer(System.BILLING, "cus_1", "Acme")
        applied = await model.apply([Change.of(customer, version_at(1.0))], source=Source.EVENTS)
        assert [a.id for a in applied] == ["cus_1"]
        entry = model.record(System.BILLING, Kind.CUSTOMER, "cus_1")
        assert entry is not None
        assert entry.value == customer

        async with store.watch_operation("op-1") as watch:
            async with store.transaction() as tx:
                await create_operation(tx, "op-1")
            with anyio.fail_after(5):
                operation = await anext(watch)
        assert operation.status is OperationStatus.PENDING
        assert await store.get_operation("op-1") is not None
