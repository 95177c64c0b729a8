"""Sagas and the dispatcher against fake actors: flows, idempotency, order, failures."""

from __future__ import annotations

import anyio
import pytest

from actors import messages as m
from actors.errors import BreakerOpen, Rejected, SystemUnavailable
from actors.messages import Priority
from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes import outbox_cli, quote_to_cash
from gateway.processes.commands import WritePath
from gateway.processes.context import Caller
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.errors import IdempotencyConflict, IdempotencyMismatch, ValidationFailed
from gateway.processes.replay import replay_dead_letter
from gateway.processes.saga import Flow, SagaView, Step, begin_saga, start_saga
from gateway.processes.views import load_operation_view
from gateway.store import MessageStatus, OperationStatus, StepStatus, Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import FAST, dispatching, wait_for

pytestmark = pytest.mark.anyio

WIDGET = Caller("demo-widget", "crm")
DONE = (OperationStatus.SUCCEEDED,)
STUCK = (OperationStatus.NEEDS_ATTENTION,)
ONBOARD = {
    "name": "Nordwind Logistics GmbH",
    "taxId": "DE 123 456 789",
    "country": "DE",
    "paymentTerms": "NT30",
}


async def test_onboarding_runs_every_step_and_links_the_registry(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="k1", correlation_id="corr-1"
    )
    assert view.status == "PENDING"
    assert [s.name for s in view.steps] == [
        "erp_partner",
        "crm_account",
        "billing_customer",
        "support_org",
    ]
    async with dispatching(store, systems):
        done = await wait_for(store, view.id, DONE)
    # validation first asks the ERP whether the company is already there (two reads)
    reads = [(s, type(msg)) for s, msg in world.calls if not isinstance(msg, m.Write)]
    assert reads == [(System.ERP, m.FindCustomersByTaxId), (System.ERP, m.FindCustomers)]
    order = [s for s, msg in world.calls if isinstance(msg, m.Write)]
    assert order == [System.ERP, System.CRM, System.BILLING, System.SUPPORT]
    erp = systems.actors[System.ERP].priorities
    assert erp[:2] == [Priority.INTERACTIVE, Priority.INTERACTIVE]
    writes = erp[2:] + [
        p for s, a in systems.actors.items() if s is not System.ERP for p in a.priorities
    ]
    assert all(p is Priority.TRANSACTIONAL for p in writes)
    xref = await store.get_xref(done.aggregate_key)
    assert xref is not None
    assert None not in (xref.erp, xref.crm, xref.billing, xref.support)
    keys = [msg.idempotency_key for _, msg in world.calls if isinstance(msg, m.Write)]
    assert keys == [
        f"{view.id}.{step}"
        for step in ("erp_partner", "crm_account", "billing_customer", "support_org")
    ]
    erp_call = next(msg for _, msg in world.calls if isinstance(msg, m.Write))
    assert isinstance(erp_call, m.EnsureCustomer)
    assert erp_call.customer.tax_id == "DE123456789"
    audit = await store.audit_for("corr-1")
    assert [a.action for a in audit] == ["mutation.onboardCustomer"] + ["saga.step"] * 4
    assert [(a.detail["step"], a.detail["status"]) for a in audit[1:]] == [
        (step, "SUCCEEDED")
        for step in ("erp_partner", "crm_account", "billing_customer", "support_org")
    ]
    assert {a.actor for a in audit} == {audit[0].actor}


async def test_close_opportunity_end_to_end(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    world.add_opportunity("006X", "1000001", products=("CW-PLUS", "CW-SEAT"))
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006X"},
        caller=WIDGET,
        idempotency_key="k",
        correlation_id="c",
    )
    async with dispatching(store, systems):
        await wait_for(store, view.id, DONE)
    order = world.orders["006X"]
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
        await write.submit(
            "closeOpportunity",
            {"opportunityId": "006X"},
            caller=WIDGET,
            idempotency_key="k2",
            correlation_id="c",
        )


async def test_idempotency_replay_mismatch_conflict(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    world.add_opportunity("006Y", "1000002")
    write = WritePath(store, systems, reference)
    first = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006Y"},
        caller=WIDGET,
        idempotency_key="same",
        correlation_id="c",
    )
    again = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006Y"},
        caller=WIDGET,
        idempotency_key="same",
        correlation_id="c2",
    )
    assert again == first
    with pytest.raises(IdempotencyMismatch):
        await write.submit(
            "closeOpportunity",
            {"opportunityId": "006Z"},
            caller=WIDGET,
            idempotency_key="same",
            correlation_id="c",
        )
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
        tg.start_soon(
            lambda: write.submit(
                "closeOpportunity",
                {"opportunityId": "006W"},
                caller=WIDGET,
                idempotency_key="slow",
                correlation_id="c",
            )
        )
        with anyio.fail_after(5):
            await crm.entered.wait()
        with pytest.raises(IdempotencyConflict):
            await write.submit(
                "closeOpportunity",
                {"opportunityId": "006W"},
                caller=WIDGET,
                idempotency_key="slow",
                correlation_id="c",
            )
        with pytest.raises(IdempotencyMismatch):
            await write.submit(
                "closeOpportunity",
                {"opportunityId": "006Y"},
                caller=WIDGET,
                idempotency_key="slow",
                correlation_id="c",
            )
        crm.gate.set()
    ops = (await store.list_operations()).items
    assert len(ops) == 2


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
    view = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006B"},
        caller=WIDGET,
        idempotency_key="k",
        correlation_id="c",
    )
    async with dispatching(store, systems) as dispatcher:
        await wait_for(store, view.id, DONE)
    assert dispatcher.deferred == 20 > FAST.max_attempts
    assert dispatcher.dead == 0
    messages = await store.messages_for(view.id)
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
    view = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006R"},
        caller=WIDGET,
        idempotency_key="k",
        correlation_id="c",
    )
    async with dispatching(store, systems):
        stuck = await wait_for(store, view.id, STUCK)
        assert stuck.error is not None
        assert "support_entitlement" in stuck.error
        assert "organization is suspended" in stuck.error
        assert "Compensation" in stuck.error
        dead = await store.list_dead()
        assert [d.step for d in dead] == ["support_entitlement"]
        assert "1 dead letter" in await outbox_cli.dead(store)
        assert "dead" in await outbox_cli.status(store)
        replayed, after = await replay_dead_letter(store, dead[0].id)
        assert replayed
        assert after is not None
        assert after.status == "RUNNING"
        await wait_for(store, view.id, DONE)
    assert world.opportunities["006R"].erp_order_number == world.orders["006R"].id
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
    dead = await store.list_dead()
    assert dead[0].attempts == FAST.max_attempts
    assert dead[0].status is MessageStatus.DEAD


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
    closed = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006Q"},
        caller=WIDGET,
        idempotency_key="q",
        correlation_id="c",
    )
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
    assert renewal_order == world.orders["006REN"].id
    assert (
        world.entitlements["91000002"].ends == world.subscriptions[sub_id].current_period_end.date()
    )


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
    assert all(msg.attempts == 0 for msg in await store.messages_for(view.id))


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
    view = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006C"},
        caller=WIDGET,
        idempotency_key="k",
        correlation_id="c",
    )
    async with dispatching(store, systems):
        await wait_for(store, view.id, STUCK)
        dead = await store.list_dead()
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
    messages = await store.messages_for(view.id)
    assert messages[0].status is MessageStatus.DONE
    steps = {s.name: s.status for s in await store.get_steps(view.id)}
    assert steps["erp_partner"] is StepStatus.SUCCEEDED
    # the next step was not taken by the stopping dispatcher: it waits, unleased
    assert messages[1].status is MessageStatus.PENDING


async def test_a_saga_that_cannot_build_its_next_step_dead_letters(
    store: Store, systems: FakeSystems
) -> None:
    def broken(view: SagaView) -> dict[str, object]:
        raise KeyError("erp_id")

    flow = Flow(
        kind="brokenFlow",
        steps=(
            Step(
                "first",
                System.SUPPORT,
                lambda v: {"ids": ["91000001"]},
                lambda p, k: m.GetEntitlements(tuple(p["ids"])),
                lambda r: {"ok": True},
            ),
            Step("second", System.ERP, broken, lambda p, k: m.GetCustomers(()), lambda r: None),
        ),
    )
    async with store.transaction() as tx:
        await start_saga(
            tx,
            flow,
            operation_id="op_b",
            correlation_id="c",
            client_id="t",
            aggregate_key="cw_b",
            input={},
        )
    async with dispatching(store, systems, flows={"brokenFlow": flow}):
        stuck = await wait_for(store, "op_b", STUCK)
    assert stuck.error is not None
    assert "could not record the outcome" in stuck.error
    assert "erp_id" in stuck.error


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
            view = await write.submit(
                "closeOpportunity",
                {"opportunityId": "006RACE"},
                caller=WIDGET,
                idempotency_key=key,
                correlation_id=key,
            )
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


async def test_the_accepted_answer_is_the_operation_as_stored(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    """The first answer (kept with the Idempotency-Key) is built from what the accepting
    unit wrote, not read back: it must equal a read of the stored operation and steps,
    also when the saga's first steps are skipped or nothing is left to do at all."""
    world.add_opportunity("006V", "1000001", products=("CW-PLUS",))
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006V"},
        caller=WIDGET,
        idempotency_key="view",
        correlation_id="c",
    )
    assert view == await load_operation_view(store, view.id)
    assert [s.status for s in view.steps] == ["PENDING"] * 5

    def step(name: str, prepare: object) -> Step:
        return Step(name, System.SUPPORT, prepare, lambda p, k: m.GetEntitlements(()), dict)  # type: ignore[arg-type]

    for flow, expected in (
        (
            Flow("skipFirst", (step("a", lambda v: None), step("b", lambda v: {"x": 1}))),
            (OperationStatus.PENDING, [StepStatus.SKIPPED, StepStatus.PENDING]),
        ),
        (
            Flow("nothing", (step("a", lambda v: None),)),
            (OperationStatus.SUCCEEDED, [StepStatus.SKIPPED]),
        ),
    ):
        async with store.transaction() as tx:
            operation, steps = await begin_saga(
                tx,
                flow,
                operation_id=f"op_{flow.kind}",
                correlation_id="c",
                client_id="t",
                aggregate_key="cw_v",
                input={"n": (1, 2)},
            )
        assert operation == await store.get_operation(operation.id)
        assert steps == await store.get_steps(operation.id)
        assert (operation.status, [s.status for s in steps]) == expected


async def test_a_stale_remembered_operation_is_redone_from_a_fresh_read(
    store: Store,
    systems: FakeSystems,
    world: World,
    reference: ReferenceData,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dispatcher skips the operation read with the version this process remembers;
    when another process changed the row since, the step is recorded from a fresh read
    and nothing of the other change is lost."""
    world.add_opportunity("006S", "1000001", products=("CW-PLUS", "CW-SEAT"))
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "closeOpportunity",
        {"opportunityId": "006S"},
        caller=WIDGET,
        idempotency_key="ks",
        correlation_id="cs",
    )
    first = store.recent_operation(view.id)
    assert first is not None
    # another process's change: not seen by this process's memory of the operation
    async with store.transaction() as tx:
        await tx.update_operation(view.id, result={"note": "written elsewhere"})
    monkeypatch.setattr(store, "recent_operation", lambda _id: first)
    async with dispatching(store, systems):
        done = await wait_for(store, view.id, DONE)
    assert world.opportunities["006S"].erp_order_number == world.orders["006S"].id
    assert done.result is not None
    assert done.result["note"] == "written elsewhere"
    assert set(done.result) >= {"erp_order", "billing_subscription", "crm_stamp"}


async def test_onboarding_while_the_erp_cannot_answer_is_accepted_unchecked(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    # writes are accepted while a system is down and delivered later: the duplicate
    # check needs the ERP, so without it the onboarding goes ahead (and says so in the log)
    systems[System.ERP].fail(
        lambda msg: SystemUnavailable("erp", "down") if not isinstance(msg, m.Write) else None,
        times=2,
    )
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="k", correlation_id="c"
    )
    assert view.status == "PENDING"
