"""``Store.run_unit``: a unit of work plus a lease, batched with others where it can be."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
import pytest
from anyio import lowlevel

from gateway.store import (
    LeaseLost,
    MessageStatus,
    Operation,
    OperationStatus,
    StaleOperation,
    StepStatus,
    Store,
    Transaction,
)
from gateway.store.sqlite import SQLiteStore, held

from .conftest import FakeClock
from .helpers import create_operation, enqueued_id, message

pytestmark = pytest.mark.anyio


async def _leased_step(store: Store, op_id: str, aggregate: str) -> int:
    """An operation with one leased message of its own, as the dispatcher holds it."""
    async with store.transaction() as tx:
        await create_operation(tx, op_id, aggregate=aggregate)
        await tx.add_steps(op_id, ["one", "two"])
    msg_id = await enqueued_id(store, message(aggregate, "one", operation_id=op_id))
    leased = await store.lease(f"w-{op_id}", limit=1, lease_seconds=60)
    assert [m.id for m in leased] == [msg_id]
    return msg_id


def _step_done(op_id: str, msg_id: int, owner: str, known: Operation | None) -> object:
    async def work(tx: Transaction) -> Operation:
        await tx.complete(msg_id, owner)
        await tx.upsert_step(op_id, "one", status=StepStatus.SUCCEEDED, result={"n": 1})
        await tx.enqueue(message(f"agg-{op_id}", "two", operation_id=op_id))
        operation = known or await tx.get_operation(op_id)
        assert operation is not None
        updated = await tx.update_operation(
            operation,
            status=OperationStatus.RUNNING,
            result={"one": {"n": 1}},
            verify=known is not None,
        )
        assert updated is not None
        return updated

    return work


async def test_a_unit_and_its_lease_commit_together(store: Store) -> None:
    msg_id = await _leased_step(store, "op-a", "agg-op-a")
    known = store.recent_operation("op-a")
    assert known is not None
    advanced, leased = await store.run_unit(
        _step_done("op-a", msg_id, "w-op-a", known),  # type: ignore[arg-type]
        owner="w-op-a",
        lease_limit=1,
        lease_seconds=60,
    )
    assert advanced.status is OperationStatus.RUNNING
    assert [m.step for m in leased] == ["two"]  # the step enqueued in the same unit
    assert leased[0].lease_owner == "w-op-a"
    assert leased[0].deliveries == 1
    done = await store.get_message(msg_id)
    assert done is not None
    assert done.status is MessageStatus.DONE
    assert await store.get_operation("op-a") == advanced
    assert store.recent_operation("op-a") == advanced
    steps = {s.name: s for s in await store.get_steps("op-a")}
    assert steps["one"].status is StepStatus.SUCCEEDED


async def test_a_unit_that_reads_runs_as_a_transaction(store: Store) -> None:
    msg_id = await _leased_step(store, "op-r", "agg-op-r")
    advanced, leased = await store.run_unit(
        _step_done("op-r", msg_id, "w-op-r", None),  # type: ignore[arg-type]
    )
    assert leased == []
    assert await store.get_operation("op-r") == advanced


async def test_concurrent_units_all_commit_and_a_missed_one_alone_fails(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    real_run_units = held._run_units

    def counted(raw: Any, prefix: str, units: Any, progress: list[int]) -> Any:
        batches.append(len(units))
        return real_run_units(raw, prefix, units, progress)

    monkeypatch.setattr(held, "_run_units", counted)
    ids = {f"op-{n}": await _leased_step(store, f"op-{n}", f"agg-op-{n}") for n in range(40)}
    # op-13's lease was taken over; op-27's operation was changed by another writer
    await store.defer(ids["op-13"], "w-op-13", available_at=store.clock())
    assert [m.id for m in await store.lease("thief", limit=50, lease_seconds=60)] == [ids["op-13"]]
    stale = store.recent_operation("op-27")
    async with store.transaction() as tx:
        await tx.update_operation("op-27", error="changed elsewhere")
    outcomes: dict[str, object] = {}

    async def one(op_id: str) -> None:
        known = stale if op_id == "op-27" else store.recent_operation(op_id)
        try:
            outcomes[op_id], _ = await store.run_unit(
                _step_done(op_id, ids[op_id], f"w-{op_id}", known),  # type: ignore[arg-type]
                owner=f"w-{op_id}",
                lease_limit=1,
                lease_seconds=60,
            )
        except (LeaseLost, StaleOperation) as exc:
            outcomes[op_id] = exc

    async with anyio.create_task_group() as tg:
        for op_id in ids:
            tg.start_soon(one, op_id)
    if isinstance(store, SQLiteStore):  # the units queued together went in one round trip
        assert max(batches) > 1
        assert sum(batches) == len(ids)
    assert isinstance(outcomes.pop("op-13"), LeaseLost)
    assert isinstance(outcomes.pop("op-27"), StaleOperation)
    for op_id, outcome in outcomes.items():
        assert isinstance(outcome, Operation)
        assert await store.get_operation(op_id) == outcome
        done = await store.get_message(ids[op_id])
        assert done is not None
        assert done.status is MessageStatus.DONE
    # the failed ones changed nothing
    untouched = await store.get_operation("op-27")
    assert untouched is not None
    assert (untouched.status, untouched.error) == (OperationStatus.PENDING, "changed elsewhere")
    taken = await store.get_message(ids["op-13"])
    assert taken is not None
    assert (taken.status, taken.lease_owner) == (MessageStatus.LEASED, "thief")


async def test_cancelled_callers_do_not_strand_the_units_queued_with_them(
    store: Store,
) -> None:
    ids = {f"op-c{n}": await _leased_step(store, f"op-c{n}", f"agg-op-c{n}") for n in range(10)}
    finished: list[str] = []

    async def one(op_id: str) -> None:
        known = store.recent_operation(op_id)
        await store.run_unit(_step_done(op_id, ids[op_id], f"w-{op_id}", known))  # type: ignore[arg-type]
        finished.append(op_id)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for op_id in ids:
                tg.start_soon(one, op_id)
            await lowlevel.checkpoint()  # every caller queued its unit; the first is flushing
            scope.cancel()
    # a caller that heard back saw its unit committed; the rest either committed (their
    # batch was flushing, shielded) or never ran: nothing is half done or stuck
    for op_id, msg_id in ids.items():
        stored = await store.get_message(msg_id)
        operation = await store.get_operation(op_id)
        assert stored is not None
        assert operation is not None
        assert (stored.status is MessageStatus.DONE) == (
            operation.status is OperationStatus.RUNNING
        )
        if op_id in finished:
            assert stored.status is MessageStatus.DONE
    # and the writer is free for the next unit: each committed unit's next message is due
    committed = [
        op_id
        for op_id, msg_id in ids.items()
        if (await store.get_message(msg_id)).status is MessageStatus.DONE  # type: ignore[union-attr]
    ]
    leased = await store.lease("next", limit=100, lease_seconds=60)
    assert sorted(m.operation_id or "" for m in leased) == sorted(committed)


async def test_the_lease_sees_the_step_its_own_unit_enqueued_on_a_running_clock(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Time moves between the unit's writes and its lease: the lease must still find the
    next step the unit just enqueued due (else each step waits for a poll)."""
    msg_id = await _leased_step(store, "op-t", "agg-op-t")
    known = store.recent_operation("op-t")

    def ticking() -> datetime:
        return clock.advance(0.000_001)  # every reading a microsecond later

    monkeypatch.setattr(store, "clock", ticking)
    _, leased = await store.run_unit(
        _step_done("op-t", msg_id, "w-op-t", known),  # type: ignore[arg-type]
        owner="w-op-t",
        lease_limit=1,
        lease_seconds=60,
    )
    assert [m.step for m in leased] == ["two"]
