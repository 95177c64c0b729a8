"""The fake actors hide no duplicate: a write delivered twice shows twice, in the call log
and, where the real system would not de-duplicate it, in what the world holds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors import messages as m
from actors.messages import Priority
from canonical import System
from tests.processes.fakes import FakeSystems, World

pytestmark = pytest.mark.anyio

ORDER = m.EnsureSalesOrder(
    "k1",
    customer_id="1000001",
    purchase_order="006D",
    items=(("CW-CORE", Decimal("1")),),
    first_delivery=True,
)
SUBSCRIPTION = m.CreateSubscription("k2", customer_id="cus_1000001", items=(("price_1", 1),))


async def test_a_first_delivery_written_twice_makes_two_orders(
    systems: FakeSystems, world: World
) -> None:
    erp = systems[System.ERP]
    first = await erp.ask(ORDER, priority=Priority.TRANSACTIONAL)
    second = await erp.ask(ORDER, priority=Priority.TRANSACTIONAL)
    assert first.id != second.id
    assert world.calls == [(System.ERP, ORDER), (System.ERP, ORDER)]
    assert len(world.orders) == 2
    with pytest.raises(AssertionError, match="2 sales orders for 006D"):
        world.order_for("006D")


async def test_a_redelivery_finds_the_first_order_and_is_still_recorded(
    systems: FakeSystems, world: World
) -> None:
    erp = systems[System.ERP]
    first = await erp.ask(ORDER, priority=Priority.TRANSACTIONAL)
    again = m.EnsureSalesOrder(
        "k1", customer_id="1000001", purchase_order="006D", items=ORDER.items
    )
    assert await erp.ask(again, priority=Priority.TRANSACTIONAL) == first
    assert world.calls == [(System.ERP, ORDER), (System.ERP, again)]
    assert world.order_for("006D") == first


async def test_a_keyed_vendor_answers_a_repeated_key_once_but_both_calls_show(
    systems: FakeSystems, world: World
) -> None:
    billing = systems[System.BILLING]
    for _ in range(2):
        await billing.ask(SUBSCRIPTION, priority=Priority.TRANSACTIONAL)
    assert world.calls == [(System.BILLING, SUBSCRIPTION)] * 2
    assert len(world.subscriptions) == 1
