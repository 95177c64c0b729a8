"""How the dispatcher delivers any saga's steps, against fake actors: breaker deferrals,
retries and dead letters, replay, a dead process's lease, draining on stop."""

from __future__ import annotations

import anyio
import pytest

from actors import messages as m
from actors.errors import BreakerOpen, Rejected, SystemUnavailable
from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes import outbox_cli
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.replay import replay_dead_letter
from gateway.processes.write_path import WritePath
from gateway.store import MessageStatus, StepStatus, Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import (
    DONE,
    FAST,
    ONBOARD,
    STUCK,
    WIDGET,
    close_opportunity,
    dispatching,
    wait_for,
)

pytestmark = pytest.mark.anyio


async def test_breaker_open_defers_without_spending_attempts(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    world.add_opportunity("006B", "1000001")
    billing = systems[System.BILLING]
    billing.fail(
        lambda msg: BreakerOpen("billing", "open")
        if isinstance(msg, m.CreateSubscription)
        else None,
        times=20,
    )
    write = WritePath(store, systems, reference)
    view = await close_opportunity(write, "006B", key="k")
    async with dispatching(store, systems) as dispatcher:
        await wait_for(store, view.id, DONE)
    assert dispatcher.deferred == 20 > FAST.max_attempts
    assert dispatcher.dead == 0
    messages = await store.list_messages(operation_id=view.id)
    assert all(msg.attempts == 0 for msg in messages)


async def test_rejected_dead_letters_then_replay_completes(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    world.add_opportunity("006R", "1000003")
    support = systems[System.SUPPORT]
    support.fail(
        lambda msg: Rejected("support", "organization is suspended")
        if isinstance(msg, m.SetEntitlement)
        else None,
        times=1,
    )
    write = WritePath(store, systems, reference)
    view = await close_opportunity(write, "006R", key="k")
    async with dispatching(store, systems):
        stuck = await wait_for(store, view.id, STUCK)
        assert stuck.error is not None
        assert "support_entitlement" in stuck.error
        assert "organization is suspended" in stuck.error
        assert "Compensation" in stuck.error
        dead = await store.list_messages(status=MessageStatus.DEAD)
        assert [d.step for d in dead] == ["support_entitlement"]
        assert "1 dead letter" in await outbox_cli.dead(store)
        assert "dead" in await outbox_cli.status(store)
        replayed, after = await replay_dead_letter(store, dead[0].id)
        assert replayed
        assert after is not None
        assert after.status == "RUNNING"
        await wait_for(store, view.id, DONE)
    assert world.opportunities["006R"].erp_order_number == world.order_for("006R").id
    assert len(world.orders) == 1


async def test_retryable_failures_back_off_then_dead_letter(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    erp = systems[System.ERP]
    erp.fail(
        lambda msg: SystemUnavailable("erp", "503") if isinstance(msg, m.EnsureCustomer) else None,
        times=2,
    )
    write = WritePath(store, systems, reference)
    ok = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="a", correlation_id="c"
    )
    async with dispatching(store, systems) as dispatcher:
        await wait_for(store, ok.id, DONE)
        assert dispatcher.retried == 2
        # only the outbox's first delivery of a write may skip check-before-create
        tries = [msg for _, msg in world.calls if isinstance(msg, m.EnsureCustomer)]
        assert [msg.first_delivery for msg in tries[:4]] == [True, False, False, True]
        erp.fail(
            lambda msg: SystemUnavailable("erp", "503")
            if isinstance(msg, m.EnsureCustomer)
            else None
        )
        other = {**ONBOARD, "name": "Suedwind Freight GmbH", "taxId": "DE 987 654 321"}
        doomed = await write.submit(
            "onboardCustomer", other, caller=WIDGET, idempotency_key="b", correlation_id="c"
        )
        stuck = await wait_for(store, doomed.id, STUCK)
    assert stuck.error is not None
    assert f"gave up after {FAST.max_attempts} attempts" in stuck.error
    dead = await store.list_messages(status=MessageStatus.DEAD)
    assert dead[0].attempts == FAST.max_attempts
    assert dead[0].status is MessageStatus.DEAD


async def test_failure_that_leaves_the_breaker_open_spends_no_attempt(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    erp = systems[System.ERP]
    erp.breaker_state = "open"
    erp.fail(
        lambda msg: SystemUnavailable("erp", "connection refused")
        if isinstance(msg, m.Write)
        else None,
        times=3 * FAST.max_attempts,
    )
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="k", correlation_id="c"
    )
    async with dispatching(store, systems) as dispatcher:
        await wait_for(store, view.id, DONE)
    assert dispatcher.dead == 0
    assert dispatcher.deferred == 3 * FAST.max_attempts
    assert all(msg.attempts == 0 for msg in await store.list_messages(operation_id=view.id))


async def test_outbox_cli_replay_reports(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    world.add_opportunity("006C", "1000001")
    systems[System.ERP].fail(
        lambda msg: Rejected("erp", "material blocked")
        if isinstance(msg, m.EnsureSalesOrder)
        else None,
        times=1,
    )
    write = WritePath(store, systems, reference)
    view = await close_opportunity(write, "006C", key="k")
    async with dispatching(store, systems):
        await wait_for(store, view.id, STUCK)
        dead = await store.list_messages(status=MessageStatus.DEAD)
        assert "not a dead letter" in await outbox_cli.replay(store, 999_999)
        assert "nothing replayed" in await outbox_cli.replay(store, None)
        report = await outbox_cli.replay(store, None, all=True)
        assert report == "replayed 1 dead letter(s)"
        await wait_for(store, view.id, DONE)
    assert await outbox_cli.dead(store) == "no dead letters"
    assert dead[0].system == "erp"


async def test_a_lease_held_by_a_dead_process_is_recovered(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="k", correlation_id="c"
    )
    # another dispatcher leased the first step, then died without a word
    taken = await store.lease("dead-process", limit=10, lease_seconds=0.3)
    assert [m.step for m in taken] == ["erp_partner"]
    async with dispatching(store, systems):
        await wait_for(store, view.id, DONE)
    keys = [msg.idempotency_key for _, msg in world.calls if isinstance(msg, m.Write)]
    assert keys[0] == f"{view.id}.erp_partner"
    assert len(keys) == 4


async def test_stop_drains_the_delivery_in_flight(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="k", correlation_id="c"
    )
    erp = systems[System.ERP]
    erp.gate = anyio.Event()
    dispatcher = Dispatcher(store, systems, policy=FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        with anyio.fail_after(5):
            await erp.entered.wait()
        dispatcher.stop()
        erp.gate.set()  # the call answers after the stop: its outcome is still recorded
    messages = await store.list_messages(operation_id=view.id)
    assert messages[0].status is MessageStatus.DONE
    steps = {s.name: s.status for s in await store.get_steps(view.id)}
    assert steps["erp_partner"] is StepStatus.SUCCEEDED
    # the next step was not taken by the stopping dispatcher: it waits, unleased
    assert messages[1].status is MessageStatus.PENDING
