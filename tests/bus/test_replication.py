"""What a replica tells the others happens after its commit and never undoes it."""

from __future__ import annotations

import time

import anyio
import orjson
import pytest

from canonical import Customer, System
from gateway.bus import MemoryBus, Message
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


async def test_operations_committed_together_travel_in_one_message(store: Store) -> None:
    async with (
        MemoryBus("together") as a,
        MemoryBus("together") as b,
        b.subscribe("operations") as news,
    ):
        replication = Replication(a, store, None)
        replication.attach()
        async with anyio.create_task_group() as tg:
            tg.start_soon(replication.run, time.time())
            async with store.transaction() as tx:
                for i in range(3):
                    await create_operation(tx, f"op-{i}")
            with anyio.fail_after(5):
                message = await anext(news)
            tg.cancel_scope.cancel()
    assert isinstance(message, Message)
    assert orjson.loads(message.data) == {"operations": [[f"op-{i}", "PENDING"] for i in range(3)]}
    assert a.published == 1
