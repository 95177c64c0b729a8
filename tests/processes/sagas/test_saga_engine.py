"""The saga engine under every flow, with flows built by hand: a step that cannot be
built, the accepted answer as stored, a stale remembered operation."""

from __future__ import annotations

import pytest

from actors import messages as m
from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes.saga import Flow, SagaView, Step, begin_saga, start_saga
from gateway.processes.views import load_operation_view
from gateway.processes.write_path import WritePath
from gateway.store import OperationStatus, StepStatus, Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import DONE, STUCK, close_opportunity, dispatching, wait_for

pytestmark = pytest.mark.anyio


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


async def test_the_accepted_answer_is_the_operation_as_stored(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    """The first answer (kept with the Idempotency-Key) is built from what the accepting
    unit wrote, not read back: it must equal a read of the stored operation and steps,
    also when the saga's first steps are skipped or nothing is left to do at all."""
    world.add_opportunity("006V", "1000001", products=("CW-PLUS",))
    write = WritePath(store, systems, reference)
    view = await close_opportunity(write, "006V", key="view")
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
    view = await close_opportunity(write, "006S", key="ks", correlation="cs")
    first = store.recent_operation(view.id)
    assert first is not None
    # another process's change: not seen by this process's memory of the operation
    async with store.transaction() as tx:
        await tx.update_operation(view.id, result={"note": "written elsewhere"})
    monkeypatch.setattr(store, "recent_operation", lambda _id: first)
    async with dispatching(store, systems):
        done = await wait_for(store, view.id, DONE)
    assert world.opportunities["006S"].erp_order_number == world.order_for("006S").id
    assert done.result is not None
    assert done.result["note"] == "written elsewhere"
    assert set(done.result) >= {"erp_order", "billing_subscription", "crm_stamp"}
