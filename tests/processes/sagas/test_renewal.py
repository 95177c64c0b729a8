"""The renewal saga (renewSubscription) against fake actors, after a case escalation
(escalateCase) on the same customer."""

from __future__ import annotations

import pytest

from gateway.governance.reference import ReferenceData
from gateway.processes.write_path import WritePath
from gateway.store import Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import DONE, WIDGET, close_opportunity, dispatching, wait_for

pytestmark = pytest.mark.anyio


async def test_escalate_and_renew(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    opened = await write.submit(
        "openCase",
        {"customerId": "erp:1000002", "subject": "S", "description": "D"},
        caller=WIDGET,
        idempotency_key="o",
        correlation_id="c",
    )
    world.add_opportunity("006Q", "1000002")
    closed = await close_opportunity(write, "006Q", key="q")
    async with dispatching(store, systems):
        await wait_for(store, opened.id, DONE)
        await wait_for(store, closed.id, DONE)
        case_id = next(iter(world.cases))
        escalated = await write.submit(
            "escalateCase",
            {"customerId": "erp:1000002", "caseId": case_id, "reason": "CEO waiting"},
            caller=WIDGET,
            idempotency_key="e",
            correlation_id="c",
        )
        sub_id = next(iter(world.subscriptions))
        world.add_opportunity("006REN", "1000002")
        renewed = await write.submit(
            "renewSubscription",
            {"customerId": "erp:1000002", "subscriptionId": sub_id, "opportunityId": "006REN"},
            caller=WIDGET,
            idempotency_key="r",
            correlation_id="c",
        )
        await wait_for(store, escalated.id, DONE)
        await wait_for(store, renewed.id, DONE)
    assert world.cases[case_id].priority == "high"  # standard tier (CW-CORE) escalation
    assert "escalated" in world.cases[case_id].tags
    assert world.subscriptions[sub_id].current_period_end is not None
    renewal_order = world.opportunities["006REN"].erp_order_number
    assert renewal_order == world.order_for("006REN").id
    assert (
        world.entitlements["91000002"].ends == world.subscriptions[sub_id].current_period_end.date()
    )
