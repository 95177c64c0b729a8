"""The quote-to-cash saga (closeOpportunity) against fake actors: the order, subscription,
entitlement and CRM stamp; idempotency keys; racing closes."""

from __future__ import annotations

import anyio
import pytest

from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes.context import Caller
from gateway.processes.errors import IdempotencyConflict, IdempotencyMismatch, ValidationFailed
from gateway.processes.sagas import quote_to_cash
from gateway.processes.write_path import WritePath
from gateway.store import StepStatus, Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import DONE, close_opportunity, dispatching, wait_for

pytestmark = pytest.mark.anyio


async def test_close_opportunity_end_to_end(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    world.add_opportunity("006X", "1000001", products=("CW-PLUS", "CW-SEAT"))
    write = WritePath(store, systems, reference)
    view = await close_opportunity(write, "006X", key="k")
    async with dispatching(store, systems):
        await wait_for(store, view.id, DONE)
    order = world.order_for("006X")
    sub = next(iter(world.subscriptions.values()))
    assert sub.erp_order == order.id
    assert world.entitlements["91000001"].support_tier == "premium"
    assert world.opportunities["006X"].erp_order_number == order.id
    steps = await store.get_steps(view.id)
    assert [s.status for s in steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,  # no yearly product: no annual subscription
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
    ]
    # closing it again is refused: the CRM says it is closed now
    with pytest.raises(Exception, match="already closed"):
        await close_opportunity(write, "006X", key="k2")


async def test_idempotency_replay_mismatch_conflict(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    world.add_opportunity("006Y", "1000002")
    write = WritePath(store, systems, reference)
    first = await close_opportunity(write, "006Y", key="same")
    again = await close_opportunity(write, "006Y", key="same", correlation="c2")
    assert again == first
    with pytest.raises(IdempotencyMismatch):
        await close_opportunity(write, "006Z", key="same")
    # another client may use the same key independently (it fails validation, not idempotency)
    other = Caller("someone-else")
    with pytest.raises(Exception, match="already being closed"):
        await write.submit(
            "closeOpportunity",
            {"opportunityId": "006Y"},
            caller=other,
            idempotency_key="same",
            correlation_id="c",
        )
    # in flight: the first request is still validating
    world.add_opportunity("006W", "1000003")
    crm = systems[System.CRM]
    crm.gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: close_opportunity(write, "006W", key="slow"))
        with anyio.fail_after(5):
            await crm.entered.wait()
        with pytest.raises(IdempotencyConflict):
            await close_opportunity(write, "006W", key="slow")
        with pytest.raises(IdempotencyMismatch):
            await close_opportunity(write, "006Y", key="slow")
        crm.gate.set()
    ops = (await store.list_operations()).items
    assert len(ops) == 2


async def test_racing_closes_of_one_opportunity_accept_exactly_one(
    store: Store,
    systems: FakeSystems,
    world: World,
    reference: ReferenceData,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.add_opportunity("006RACE", "1000002")
    write = WritePath(store, systems, reference)
    # both requests pass validation's own check before either writes: only the check inside
    # the accepting transaction can tell them apart
    checked = 0
    both_checked = anyio.Event()
    real = quote_to_cash.find_blocker

    async def check_then_wait(*args: object) -> object:
        nonlocal checked
        found = await real(*args)  # type: ignore[arg-type]
        checked += 1
        if checked == 2:
            both_checked.set()
        with anyio.fail_after(60):  # a guard against hanging, not a timing check
            await both_checked.wait()
        return found

    monkeypatch.setattr(quote_to_cash, "find_blocker", check_then_wait)
    outcomes: list[str] = []

    async def close(key: str) -> None:
        try:
            view = await close_opportunity(write, "006RACE", key=key, correlation=key)
        except ValidationFailed as exc:
            outcomes.append(exc.problems[0].reason)
        else:
            outcomes.append(view.id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(close, "first")
        tg.start_soon(close, "second")
    accepted = [o for o in outcomes if o.startswith("op_")]
    refused = [o for o in outcomes if not o.startswith("op_")]
    assert len(accepted) == 1
    assert len(refused) == 1
    assert "already being closed" in refused[0]
    assert len((await store.list_operations()).items) == 1
